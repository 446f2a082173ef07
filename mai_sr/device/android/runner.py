"""The adb runner: `benchmark_model` on one Android device, or on every attached one.

Per device:

    adb devices -l                        discovery; unauthorized/offline devices are refused
    adb -s S shell getprop                model, SoC, SDK level, CPU ABI (client.device_facts)
    adb -s S shell sha256sum ...          what is already there (pushed again only if it differs)
    adb -s S push LIBS /data/local/tmp/mai_sr_npu/ (or mai_sr_qnn/)   npu and qnn only
    adb -s S push benchmark_model /data/local/tmp/benchmark_model     the classic tool, or
                                         /data/local/tmp/mai_sr_litert/benchmark_model (LiteRT's)
    adb -s S shell BINARY --help          which tool it is (tools.identify_tool)
    adb -s S push model.tflite /data/local/tmp/
    adb -s S shell [env LD_LIBRARY_PATH=...] BINARY --graph=... --use_nnapi=true ...
    adb -s S pull /data/local/tmp/mai_sr_result.pb ...   (--result_file_path, if written)

The output is parsed by `mai_sr.device.benchmark_output` (the classic tool) or
`mai_sr.device.litert_output` (LiteRT's CompiledModel tool, `--delegate npu`), the proto by
`mai_sr.device.benchmark_proto`, and judged by the one fallback rule of
`mai_sr.device.placement`. Each result keeps the device command line and the tool's output.

Delegates: nnapi, gpu, xnnpack, cpu (classic tool); npu (CompiledModel tool with
--use_npu=true and the vendor dispatch / compiler-plugin libraries of --npu-libs); qnn
(classic tool with Qualcomm's QNN TFLite delegate loaded as an external delegate, libraries
from a local QAIRT SDK).
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
from pathlib import Path

from tqdm import tqdm

from mai_sr.device.android.client import (Adb, AndroidDevice, add_device_options,
                                          device_error, device_facts, list_devices,
                                          select_devices)
from mai_sr.device.android.libraries import (FLAG_VALUE, QNN_BACKENDS, QNN_PERFORMANCE_MODES,
                                             VENDOR_FLAG_PREFIXES, external_delegate_options,
                                             hexagon_version, key_value_options,
                                             neuron_adapter_paths, npu_libraries,
                                             qairt_libraries, soc_vendor,
                                             system_neuron_adapters)
from mai_sr.device.android.tools import (REMOTE_BINARIES, REMOTE_DIR, TOOL_NAMES,
                                         check_binary_abi, mismatch_error, missing_error,
                                         probe_tool, push_if_changed, tool_for)
from mai_sr.device.base import check_model_file, format_result
from mai_sr.device.benchmark_output import output_tail, parse_benchmark_output
from mai_sr.device.litert_output import NPU_FAILURE_MARKERS, parse_litert_output
from mai_sr.device.placement import (ACCELERATOR_UNITS, check_fallback, check_ignored_flags,
                                     placement_fields, time_owner)
from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult

DELEGATE_FLAGS = {
    "nnapi": ["--use_nnapi=true"],
    "cpu": ["--use_xnnpack=false"],
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
}
DELEGATE_NAMES = {"nnapi": "NNAPI", "xnnpack": "XNNPACK", "gpu": "GPU", "cpu": None,
                  "npu": "NPU", "qnn": "QNN"}
DELEGATES = ("nnapi", "cpu", "xnnpack", "gpu", "npu", "qnn")
REMOTE_RESULT = f"{REMOTE_DIR}/mai_sr_result.pb"
REMOTE_NPU_DIR = f"{REMOTE_DIR}/mai_sr_npu"
REMOTE_QNN_DIR = f"{REMOTE_DIR}/mai_sr_qnn"
# LiteRT's on-device compilation cache (--compiler_cache_path): the folder must exist, or
# LiteRT silently caches nothing (litert/core/cache/compilation_cache.cc,
# CompilationCache::Create: "Cache root path does not exist").
REMOTE_NPU_CACHE = f"{REMOTE_DIR}/mai_sr_npu_cache"
# Half the last digit of the CompiledModel tool's "%.2f ms" (plus float32 slack)
PRINTED_MS_ROUNDING = 0.0051
# NNAPI is deprecated from Android 15 (API level 35; Android NDK Neural Networks API guide).
NNAPI_DEPRECATED_FROM_SDK = 35
# NNAPI device names as ANeuralNetworksDevice_getName reports them ("synap-npu",
# "google-edgetpu", "qti-dsp", "nnapi-reference"): anything else is refused before it can
# reach a device shell, on top of the quoting in Adb.run.
ACCELERATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# How LiteRT initialised the NPU graph (litert/runtime/compiled_model.cc log lines): loaded
# from the --compiler_cache_path cache, compiled on the device by a compiler plugin, or
# neither (an ahead-of-time compiled model).
NPU_CACHE_HIT = "Flatbuffer model initialized from cached model."
NPU_JIT_START = "Applying compiler plugins..."
NPU_JIT_DONE = "compiler plugins were applied successfully"
NEURON_VERSION = re.compile(r"Neuron api version: (\d+\.\d+\.\d+)")


def _remote_model_path(model: Path) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model.name)
    return f"{REMOTE_DIR}/mai_sr_{safe}"


class AdbRunner:
    """`benchmark_model` on one Android device, or on every attached one (`serial="all"`)."""

    name = "adb"

    @classmethod
    def add_cli_options(cls, group) -> None:
        """`mai-sr bench --runner adb` options; each dest is a constructor keyword."""
        add_device_options(group)
        group.add_argument("--benchmark-binary",
                           help="benchmark_model built for the device ABI")
        group.add_argument("--delegate", choices=DELEGATES, default="nnapi",
                           help="nnapi (default), gpu, xnnpack, cpu: TFLite's benchmark_model; "
                                "npu: LiteRT's CompiledModel benchmark_model with --npu-libs; "
                                "qnn: Qualcomm's QNN delegate with --qairt")
        group.add_argument("--nnapi-accelerator", help="NNAPI accelerator name")
        group.add_argument("--op-profiling", action="store_true",
                           help="--enable_op_profiling=true")
        group.add_argument("--memory", dest="report_memory", action="store_true",
                           help="--report_peak_memory_footprint=true")
        cls.add_npu_cli_options(group)
        group.add_argument("--verbose", action="store_true", default=None,
                           help="print the device command line with each result")

    def __init__(self, *, adb: str | None = None, serial: str | None = None,
                 benchmark_binary: str | None = None, delegate: str = "nnapi",
                 nnapi_accelerator: str | None = None, threads: int | None = None,
                 min_runs: int | None = None, warmup_runs: int | None = None,
                 min_seconds: float | None = None, op_profiling: bool = False,
                 report_memory: bool = False, npu_libs: str | None = None,
                 npu_options: list[str] | None = None, qairt: str | None = None,
                 qnn_backend: str = "htp", qnn_performance_mode: str | None = None,
                 qnn_options: list[str] | None = None, hexagon_version: str | None = None,
                 allow_fallback: bool = False, compiler_cache: bool = False,
                 verbose: bool = False, timeout: float = 900.0):
        """Options map onto benchmark_model flags (None keeps the tool's default):
        threads -> --num_threads, min_runs -> --num_runs, warmup_runs -> --warmup_runs,
        min_seconds -> --min_secs, delegate nnapi|cpu|xnnpack|gpu|npu|qnn, nnapi_accelerator
        -> --nnapi_accelerator_name, op_profiling -> --enable_op_profiling,
        report_memory -> --report_peak_memory_footprint.

        npu: `npu_libs` is a local folder with the vendor dispatch library
        (libLiteRtDispatch_<Vendor>.so), optionally the compiler plugin
        (libLiteRtCompilerPlugin_<Vendor>.so, for on-device compilation) and the vendor
        runtime (Qualcomm: libQnnHtp.so, libQnnHtpV<NN>Stub.so/Skel.so, ...); `npu_options`
        are vendor flags KEY=VALUE passed as --KEY=VALUE (qualcomm_*, mediatek_*,
        google_tensor_*, samsung_*). qnn: `qairt` is a local QAIRT SDK folder,
        `qnn_backend` htp|gpu, `qnn_performance_mode` a name of QNN_PERFORMANCE_MODES,
        `qnn_options` further delegate options KEY=VALUE, `hexagon_version` overrides the
        version chosen from the SoC. `compiler_cache` gives the npu run an on-device
        compilation cache (--compiler_cache_path), so a second run loads what the first
        compiled. `allow_fallback` records a run that fell back to the CPU instead of
        failing. `verbose` makes `format_result` print the device command. `timeout` bounds
        one run (s)."""
        if delegate not in DELEGATES:
            raise MaiSrError(f"--delegate {delegate}: choose from {', '.join(DELEGATES)}")
        if nnapi_accelerator and delegate != "nnapi":
            raise MaiSrError("--nnapi-accelerator needs --delegate nnapi")
        if nnapi_accelerator is not None and not ACCELERATOR_NAME.fullmatch(nnapi_accelerator):
            raise MaiSrError(f"--nnapi-accelerator {nnapi_accelerator!r}: not an NNAPI device "
                             "name (letters, digits and . _ : - only, e.g. synap-npu)")
        if benchmark_binary and not Path(benchmark_binary).is_file():
            raise MaiSrError(f"--benchmark-binary {benchmark_binary}: file not found")
        self._check_npu_qnn_options(delegate, npu_libs, npu_options, qairt, qnn_backend,
                                    qnn_performance_mode, qnn_options, hexagon_version,
                                    op_profiling)
        if compiler_cache and delegate != "npu":
            raise MaiSrError("--compiler-cache needs --delegate npu (LiteRT's on-device "
                             "compilation cache)")
        self.adb = Adb(adb)
        self.serial = serial
        self.benchmark_binary = Path(benchmark_binary) if benchmark_binary else None
        self.delegate = delegate
        self.nnapi_accelerator = nnapi_accelerator
        self.threads, self.min_runs = threads, min_runs
        self.warmup_runs, self.min_seconds = warmup_runs, min_seconds
        self.op_profiling, self.report_memory = op_profiling, report_memory
        self.npu_libs = Path(npu_libs) if npu_libs else None
        self.npu_options = key_value_options(npu_options, "--npu-option")
        self.qairt = Path(qairt) if qairt else None
        self.qnn_backend = qnn_backend
        self.qnn_performance_mode = qnn_performance_mode
        self.qnn_options = key_value_options(qnn_options, "--qnn-option")
        self.hexagon_version = hexagon_version
        self.allow_fallback = allow_fallback
        self.compiler_cache, self.verbose = compiler_cache, verbose
        self.timeout = timeout
        if delegate == "qnn":  # refuse a dropped option before touching a device
            external_delegate_options(self._qnn_option_pairs("/dir", "75"))

    @staticmethod
    def add_npu_cli_options(group) -> None:
        """The npu/qnn options (dest = constructor keyword), in the adb runner's group."""
        group.add_argument("--npu-libs", metavar="DIR",
                           help="--delegate npu: local folder with the vendor's "
                                "libLiteRtDispatch_<Vendor>.so, its runtime libraries and, for "
                                "on-device compilation, libLiteRtCompilerPlugin_<Vendor>.so "
                                "(pushed once to the device and reused)")
        group.add_argument("--npu-option", dest="npu_options", action="append",
                           metavar="KEY=VALUE",
                           help="--delegate npu: vendor flag passed as --KEY=VALUE (qualcomm_*, "
                                "mediatek_*, google_tensor_*, samsung_*), e.g. "
                                "qualcomm_htp_performance_mode=burst; repeatable")
        group.add_argument("--qairt", metavar="DIR",
                           help="--delegate qnn: local Qualcomm AI Runtime (QAIRT) SDK folder "
                                "(lib/aarch64-android, lib/hexagon-vNN/unsigned)")
        group.add_argument("--qnn-backend", choices=QNN_BACKENDS, default="htp",
                           help="--delegate qnn: QNN backend (default htp, the NPU)")
        group.add_argument("--qnn-performance-mode", choices=tuple(QNN_PERFORMANCE_MODES),
                           help="--delegate qnn: HTP performance mode (e.g. burst)")
        group.add_argument("--qnn-option", dest="qnn_options", action="append",
                           metavar="KEY=VALUE",
                           help="--delegate qnn: further QNN delegate option, e.g. "
                                "htp_precision=1; repeatable (refused if benchmark_model's "
                                "option parser would drop it)")
        group.add_argument("--compiler-cache", action="store_true", default=None,
                           help="--delegate npu: keep LiteRT's on-device compilation in "
                                f"{REMOTE_NPU_CACHE} (--compiler_cache_path), so the next run "
                                "loads it instead of compiling again")
        group.add_argument("--hexagon-version", metavar="NN",
                           help="Hexagon version of the QNN stub/skel libraries (default: from "
                                "the SoC, e.g. SM8650 -> 75)")
        group.add_argument("--allow-fallback", action="store_true", default=None,
                           help="record a run whose accelerator delegate (nnapi, gpu, npu, qnn) "
                                "took only some nodes or none as a CPU or mixed time (the result "
                                "says how many nodes ran where) instead of failing")

    @staticmethod
    def _check_npu_qnn_options(delegate, npu_libs, npu_options, qairt, qnn_backend,
                               qnn_performance_mode, qnn_options, hexagon_version,
                               op_profiling) -> None:
        if (npu_libs or npu_options) and delegate != "npu":
            raise MaiSrError("--npu-libs and --npu-option need --delegate npu")
        if (qairt or qnn_options or qnn_performance_mode) and delegate != "qnn":
            raise MaiSrError("--qairt, --qnn-option and --qnn-performance-mode need --delegate qnn")
        if delegate == "npu":
            if not npu_libs:
                raise MaiSrError("--delegate npu needs --npu-libs DIR: a folder with the "
                                 "vendor's libLiteRtDispatch_<Vendor>.so (and its runtime "
                                 "libraries); see the README's Android section")
            if not Path(npu_libs).is_dir():
                raise MaiSrError(f"--npu-libs {npu_libs}: no such folder")
            for key, value in key_value_options(npu_options, "--npu-option"):
                if not key.startswith(VENDOR_FLAG_PREFIXES):
                    raise MaiSrError(f"--npu-option {key}={value}: vendor flags start with "
                                     f"{', '.join(VENDOR_FLAG_PREFIXES)}")
                if not FLAG_VALUE.fullmatch(value):
                    raise MaiSrError(f"--npu-option {key}={value!r}: the value must be "
                                     "non-empty letters, digits and . _ / : , + - only")
            if op_profiling:
                raise MaiSrError("--op-profiling is the classic benchmark_model's; the "
                                 "CompiledModel tool of --delegate npu has no such table")
        if delegate == "qnn":
            if not qairt:
                raise MaiSrError("--delegate qnn needs --qairt DIR: the Qualcomm AI Runtime "
                                 "(QAIRT) SDK folder with lib/aarch64-android/"
                                 "libQnnTFLiteDelegate.so; see the README's Android section")
            if not Path(qairt).is_dir():
                raise MaiSrError(f"--qairt {qairt}: no such folder")
            if qnn_backend not in QNN_BACKENDS:
                raise MaiSrError(f"--qnn-backend {qnn_backend}: choose from "
                                 f"{', '.join(QNN_BACKENDS)}")
            if qnn_performance_mode and qnn_performance_mode not in QNN_PERFORMANCE_MODES:
                raise MaiSrError(f"--qnn-performance-mode {qnn_performance_mode}: choose from "
                                 f"{', '.join(QNN_PERFORMANCE_MODES)}")
        if hexagon_version is not None and not re.fullmatch(r"\d{2}", hexagon_version):
            raise MaiSrError(f"--hexagon-version {hexagon_version!r}: two digits, e.g. 75")

    def _qnn_option_pairs(self, remote_dir: str, hexagon: str) -> list[tuple[str, str]]:
        """The QNN delegate's options, built from the named CLI options."""
        backend_library = "libQnnHtp.so" if self.qnn_backend == "htp" else "libQnnGpu.so"
        pairs = [("backend_type", self.qnn_backend),
                 ("library_path", f"{remote_dir}/{backend_library}")]
        if self.qnn_backend == "htp":
            pairs.append(("skel_library_dir", remote_dir))
            if self.qnn_performance_mode:
                pairs.append(("htp_performance_mode",
                              str(QNN_PERFORMANCE_MODES[self.qnn_performance_mode])))
        named = {k for k, _ in pairs}
        for key, value in self.qnn_options:
            if key in named:
                raise MaiSrError(f"--qnn-option {key}: set by mai-sr from its own options; "
                                 "use those (--qnn-backend, --qnn-performance-mode, --qairt)")
            pairs.append((key, value))
        return pairs

    def benchmark_flags(self, remote_model: str, setup: dict | None = None) -> list[str]:
        """The benchmark_model command-line flags for one run (`setup`: what
        `_prepare_delegate` put on the device for npu and qnn)."""
        setup = setup or {}
        flags = [f"--graph={remote_model}"]
        for flag, value in (("num_threads", self.threads), ("num_runs", self.min_runs),
                            ("warmup_runs", self.warmup_runs), ("min_secs", self.min_seconds)):
            if value is not None:
                text = f"{value:g}" if isinstance(value, float) else str(value)
                flags.append(f"--{flag}={text}")
        if self.delegate == "npu":
            remote = setup.get("remote_dir", REMOTE_NPU_DIR)
            flags += ["--use_npu=true", f"--dispatch_library_path={remote}"]
            if setup.get("compiler_plugin"):
                flags.append(f"--compiler_plugin_library_path={remote}")
            if self.compiler_cache:
                flags.append(f"--compiler_cache_path={REMOTE_NPU_CACHE}")
            flags += [f"--{key}={value}" for key, value in self.npu_options]
        elif self.delegate == "qnn":
            remote = setup.get("remote_dir", REMOTE_QNN_DIR)
            options = external_delegate_options(
                self._qnn_option_pairs(remote, setup.get("hexagon", "")))
            flags += [f"--external_delegate_path={remote}/libQnnTFLiteDelegate.so",
                      f"--external_delegate_options={options}"]
        else:
            flags += DELEGATE_FLAGS[self.delegate]
        if self.nnapi_accelerator:
            flags.append(f"--nnapi_accelerator_name={self.nnapi_accelerator}")
        if self.op_profiling:
            flags.append("--enable_op_profiling=true")
        if self.report_memory:
            flags.append("--report_peak_memory_footprint=true")
        if setup.get("result_file"):
            flags.append(f"--result_file_path={setup['result_file']}")
        return flags

    def bench(self, model_path) -> BenchResult | list[BenchResult]:
        """One result for one device; a list (one per device) when serial is 'all'.

        In a farm run a failing device yields a BenchResult with `error` set and the others
        still run; otherwise a failure raises MaiSrError.
        """
        model = check_model_file(model_path)
        devices = select_devices(list_devices(self.adb), self.serial)
        if self.serial != "all":
            return self._bench_device(devices[0], model)
        results = []
        for device in tqdm(devices, desc="devices", unit="device", disable=None):
            try:
                results.append(self._bench_device(device, model))
            except MaiSrError as exc:
                results.append(BenchResult(runner=self.name, model=str(model),
                                           avg_ms=float("nan"),
                                           device={"serial": device.serial,
                                                   "state": device.state},
                                           error=str(exc)))
        return results

    def format_result(self, result: BenchResult) -> str:
        """`mai_sr.device.format_result`, plus the device command line with --verbose."""
        text = format_result(result)
        if self.verbose and result.command:
            text += f"\n  command: adb -s {result.device.get('serial')} shell {result.command}"
        return text

    def _benchmark_binary_on(self, facts: dict) -> str:
        """The device path of the tool this delegate needs: the user's binary pushed to that
        tool's own path (again only when its hash differs), else the copy an earlier run
        left there, else one on the device's PATH. Each is identified by its --help, and the
        wrong tool is refused in one line naming both."""
        serial, needed = facts["serial"], tool_for(self.delegate)
        remote = REMOTE_BINARIES[needed]
        if self.benchmark_binary:
            check_binary_abi(self.benchmark_binary, facts)
            if remote.rsplit("/", 1)[0] != REMOTE_DIR:
                self.adb.check("shell", "mkdir", "-p", remote.rsplit("/", 1)[0], serial=serial,
                               action="mkdir for benchmark_model")
            push_if_changed(self.adb, serial, [(self.benchmark_binary, remote)], "benchmark_model")
            self.adb.check("shell", "chmod", "755", remote, serial=serial,
                           action="chmod of benchmark_model")
            found = probe_tool(self.adb, serial, remote)
            if found != needed:
                self.adb.run("shell", "rm", "-f", remote, serial=serial)  # never reused
                raise mismatch_error(serial, f"--benchmark-binary {self.benchmark_binary}",
                                     found, needed, self.delegate)
            return remote
        if self.adb.run("shell", "ls", remote, serial=serial).returncode == 0:
            found = probe_tool(self.adb, serial, remote)
            if found != needed:
                raise mismatch_error(serial, remote, found, needed, self.delegate)
            return remote
        # Some boards ship one (Synaptics' SyNAP images have /vendor/bin/benchmark_model).
        lookup = self.adb.run("shell", "command", "-v", "benchmark_model", serial=serial)
        path = lookup.stdout.strip().splitlines()[-1] if lookup.stdout.strip() else ""
        if lookup.returncode == 0 and path.startswith("/"):
            if probe_tool(self.adb, serial, path) == needed:
                return path
        elif "offline" in lookup.stdout or "unauthorized" in lookup.stdout:
            raise device_error(serial, "the benchmark_model lookup", lookup.stdout)
        raise missing_error(serial, needed, self.delegate)

    def _push_libraries(self, serial: str, libs: list[Path], remote_dir: str) -> None:
        """Push the libraries the device lacks or holds a different copy of (by hash), so a
        second run pushes nothing."""
        self.adb.check("shell", "mkdir", "-p", remote_dir, serial=serial,
                       action=f"mkdir of {remote_dir}")
        push_if_changed(self.adb, serial, [(lib, f"{remote_dir}/{lib.name}") for lib in libs], "")

    def _npu_setup(self, facts: dict) -> dict:
        """Check and push what --delegate npu needs: the vendor's dispatch library and
        runtime (Qualcomm: the SoC's Hexagon stub/skel; MediaTek: a NeuronAdapter, the
        phone's own or one from --npu-libs), the cache folder with --compiler-cache."""
        serial, vendor = facts["serial"], soc_vendor(facts)
        hexagon = hexagon_version(facts, self.hexagon_version) if vendor == "qualcomm" else None
        adapters = []
        if vendor == "mediatek":
            listing = self.adb.run("shell", "ls", *neuron_adapter_paths(), serial=serial)
            adapters = system_neuron_adapters(listing.stdout)
        libs, plugin = npu_libraries(self.npu_libs, facts, hexagon, adapters)
        self._push_libraries(serial, libs, REMOTE_NPU_DIR)
        if self.compiler_cache:
            self.adb.check("shell", "mkdir", "-p", REMOTE_NPU_CACHE, serial=serial,
                           action=f"mkdir of {REMOTE_NPU_CACHE}")
        setup = {"remote_dir": REMOTE_NPU_DIR, "compiler_plugin": plugin, "hexagon": hexagon,
                 "env": [f"LD_LIBRARY_PATH={REMOTE_NPU_DIR}",
                         f"ADSP_LIBRARY_PATH={REMOTE_NPU_DIR}"]}
        if adapters:
            setup["neuron_adapter"] = adapters[0]
        return setup

    def _prepare_delegate(self, facts: dict) -> dict:
        """Check and push what npu/qnn need; returns the run set-up (remote folder, env,
        Hexagon version...). Nothing for the classic delegates."""
        if self.delegate == "npu":
            return self._npu_setup(facts)
        if self.delegate == "qnn":
            hexagon = hexagon_version(facts, self.hexagon_version)
            libs = qairt_libraries(self.qairt, self.qnn_backend, hexagon)
            self._push_libraries(facts["serial"], libs, REMOTE_QNN_DIR)
            return {"remote_dir": REMOTE_QNN_DIR, "hexagon": hexagon,
                    "env": [f"LD_LIBRARY_PATH={REMOTE_QNN_DIR}",
                            f"ADSP_LIBRARY_PATH={REMOTE_QNN_DIR}"]}
        return {}

    def _bench_device(self, device: AndroidDevice, model: Path) -> BenchResult:
        device.check_ready()
        facts = device_facts(self.adb, device.serial)
        setup = self._prepare_delegate(facts)
        binary = self._benchmark_binary_on(facts)
        remote_model = _remote_model_path(model)
        setup["result_file"] = REMOTE_RESULT
        self.adb.check("push", str(model), remote_model, serial=device.serial,
                       action="push of the model")
        # `env` sets the library paths as a command, so they stay quoted words like the rest
        env = ["env", *setup["env"]] if setup.get("env") else []
        words = [*env, binary, *self.benchmark_flags(remote_model, setup)]
        with tempfile.TemporaryDirectory(prefix="mai_sr_result_") as tmp:
            local_result = Path(tmp) / "result.pb"
            try:
                proc = self.adb.run("shell", *words, serial=device.serial, timeout=self.timeout)
                pulled = self.adb.run("pull", REMOTE_RESULT, str(local_result),
                                      serial=device.serial)
                proto = local_result.read_bytes() if (pulled.returncode == 0
                                                      and local_result.is_file()) else None
            finally:
                self.adb.run("shell", "rm", "-f", remote_model, REMOTE_RESULT,
                             serial=device.serial)
        setup["command"] = Adb.shell_line(words)
        return self._result(proc, proto, device.serial, model, facts, setup)

    def _parse(self, proc, serial: str, source: str) -> tuple:
        """(parsed output, notes): the fallback rule for accelerator delegates, the
        ignored-flags rule for the others."""
        text = proc.stdout
        if proc.returncode != 0:
            if re.search(r"^adb: .*(offline|unauthorized)", text, flags=re.M):
                raise device_error(serial, "the benchmark run", text)
            # LiteRT's NPU-runtime error says more than the tool's closing lines
            cause = next((ln.strip() for ln in text.splitlines()
                          if any(m in ln for m in NPU_FAILURE_MARKERS)), None)
            raise MaiSrError(f"{source} exited with code {proc.returncode}: "
                             + (f"\"{cause}\" ... " if cause else "") + output_tail(text))
        unit = ACCELERATOR_UNITS.get(self.delegate)
        if not unit:
            parsed = parse_benchmark_output(text, source=source)
            return parsed, check_ignored_flags(parsed, source=source,
                                               allow_fallback=self.allow_fallback)
        try:
            parsed = (parse_litert_output(text, source=source) if "BENCHMARK RESULTS" in text
                      else parse_benchmark_output(text, source=source))
        except MaiSrError:
            # no timings: if the tool ignored flags, say so rather than "no timings"
            shared = parse_benchmark_output(text, source=source, require_timings=False)
            check_fallback(shared, text, unit=unit, source=source, allow_fallback=False)
            raise
        return parsed, check_fallback(parsed, text, unit=unit, source=source,
                                      allow_fallback=self.allow_fallback)

    def _result(self, proc, proto: bytes | None, serial: str, model: Path, facts: dict,
                setup: dict) -> BenchResult:
        """Parse one run: text, then the proto where the tool wrote one; fallback checks;
        the command line and the raw output kept with the result."""
        source = f"device {serial}: benchmark_model"
        parsed, notes = self._parse(proc, serial, source)
        text = proc.stdout
        result = parsed.to_bench_result(runner=self.name, model=str(model),
                                        device=self._device_record(facts, setup, parsed, text),
                                        requested_delegate=DELEGATE_NAMES[self.delegate])
        delegate = dict(result.delegate)
        unit = ACCELERATOR_UNITS.get(self.delegate)
        if unit:
            # the unit's own counts, not those of whichever delegate's line came first
            delegate.update(placement_fields(parsed, text, unit))
        else:
            delegate["timed_on"] = time_owner(delegate.get("name"), "full")
        notes = list(result.notes) + notes
        if self.delegate == "npu":
            delegate["npu_compilation"] = npu_compilation(text)
            if delegate["npu_compilation"] == "cache":
                notes.append(f"NPU compilation loaded from the on-device cache "
                             f"({REMOTE_NPU_CACHE}): \"{NPU_CACHE_HIT}\"")
        if self.delegate == "nnapi" and (facts.get("sdk") or 0) >= NNAPI_DEPRECATED_FROM_SDK:
            notes.append(f"NNAPI is deprecated from Android 15 (API level "
                         f"{NNAPI_DEPRECATED_FROM_SDK}); this device runs API level "
                         f"{facts['sdk']}: its vendor NNAPI driver may be gone or unmaintained. "
                         "Use --delegate npu (LiteRT CompiledModel) or --delegate qnn "
                         "(Qualcomm) for the NPU")
        result = dataclasses.replace(result, delegate=delegate, notes=notes,
                                     command=setup.get("command"), raw_output=text)
        if proto:
            from mai_sr.device.benchmark_proto import parse_benchmark_result

            result = apply_benchmark_result(result, parse_benchmark_result(
                proto, source=f"{source} --result_file_path"))
        return result

    def _device_record(self, facts: dict, setup: dict, parsed, text: str) -> dict:
        """The result's `device` dict: getprop facts plus what this run learnt."""
        device = dict(facts)
        if self.delegate == "nnapi" and parsed.available_accelerators:
            # what the device offered, whichever one ran (a scalar, as device records hold)
            device["nnapi_accelerators"] = ",".join(parsed.available_accelerators)
        if setup.get("hexagon"):
            device["hexagon_version"] = setup["hexagon"]
        if setup.get("neuron_adapter"):
            device["neuron_adapter"] = setup["neuron_adapter"]
        version = NEURON_VERSION.search(text)
        if version:
            device["neuron_api_version"] = version.group(1)
        device["benchmark_tool"] = TOOL_NAMES[tool_for(self.delegate)]
        return device


def npu_compilation(text: str) -> str:
    """How LiteRT got the NPU graph: "cache" (--compiler_cache_path hit), "jit" (compiled on
    the device now), "jit failed" (its compiler plugin could not) or "aot" (the model was
    compiled ahead of time)."""
    if NPU_CACHE_HIT in text:
        return "cache"
    if NPU_JIT_DONE in text:
        return "jit"
    return "jit failed" if NPU_JIT_START in text else "aot"


def apply_benchmark_result(result: BenchResult, proto: dict) -> BenchResult:
    """Take the timings from the tool's BenchmarkResult proto (unrounded float32 ms) over
    the text's, keeping the text's value for any field the proto lacks.

    The proto must agree with the printed average to the text's rounding (the CompiledModel
    tool prints ms with 2 decimals, the classic one microseconds to 6 digits); a file that
    does not (left over from another run) is ignored, with a note.
    """
    latency = proto.get("latency_metrics", {})
    misc = proto.get("misc_metrics", {})
    memory = proto.get("memory_metrics", {})
    fields = {"avg_ms": "avg_ms", "min_ms": "min_ms", "max_ms": "max_ms",
              "std_ms": "stddev_ms", "median_ms": "median_ms", "init_ms": "init_ms",
              "first_ms": "first_inference_ms", "warmup_avg_ms": "average_warm_up_ms"}
    changes = {ours: float(latency[theirs]) for ours, theirs in fields.items()
               if theirs in latency}
    text_avg = result.avg_ms
    if "avg_ms" in changes and text_avg is not None and text_avg == text_avg:
        if abs(changes["avg_ms"] - text_avg) > PRINTED_MS_ROUNDING + 1e-5 * text_avg:
            return dataclasses.replace(result, notes=list(result.notes) + [
                f"ignored the BenchmarkResult file: its average ({changes['avg_ms']:g} ms) is "
                f"not the printed one ({text_avg:g} ms)"])
    if "num_runs" in misc:
        changes["count"] = int(misc["num_runs"])
    if memory.get("peak_mem_mb", 0) > 0:
        changes["peak_memory_mb"] = float(memory["peak_mem_mb"])
    notes = list(result.notes) + ["timings from the BenchmarkResult proto (--result_file_path)"]
    return dataclasses.replace(result, notes=notes, **changes)
