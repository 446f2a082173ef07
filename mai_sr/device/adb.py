"""Benchmark on Android devices over adb with TFLite's `benchmark_model`, and push models to
AI Benchmark's custom-model slot (the Mobile AI 2022 challenge report, *Efficient and Accurate
Quantized Image Super-Resolution on Mobile NPUs*, Ignatov et al., ECCV 2022 Workshops,
section 2.2).

Drives a real `adb` client: `--adb PATH`, else $ADB, else `adb` on PATH, else the one the
`adbutils` package bundles (`pip install mai-sr[adb]`). Per device:

    adb devices -l                       discovery; unauthorized/offline devices are refused
    adb -s S shell getprop               model, SoC platform, SDK level, CPU ABI
    adb -s S push benchmark_model /data/local/tmp/   (a user-supplied build matching the ABI)
    adb -s S shell chmod 755 /data/local/tmp/benchmark_model
    adb -s S push model.tflite /data/local/tmp/
    adb -s S shell /data/local/tmp/benchmark_model --graph=... --use_nnapi=true ...
    adb -s S pull /data/local/tmp/mai_sr_result.pb ...   (--result_file_path, if written)

and the output is parsed by `mai_sr.device.benchmark_output` (the classic tool) or
`mai_sr.device.litert_output` (LiteRT's CompiledModel tool, `--delegate npu`), the proto by
`mai_sr.device.benchmark_proto`.

Delegates: nnapi, gpu, xnnpack, cpu (classic tool); npu (CompiledModel tool with
--use_npu=true and the vendor dispatch / compiler-plugin libraries of --npu-libs); qnn
(classic tool with Qualcomm's QNN TFLite delegate loaded as an external delegate, libraries
from a local QAIRT SDK). A run of any accelerator delegate (nnapi, gpu, npu, qnn) that did not
run entirely on it is an error unless `allow_fallback` (:mod:`mai_sr.device.placement`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from mai_sr.device.base import check_model_file
from mai_sr.device.benchmark_output import output_tail, parse_benchmark_output
from mai_sr.device.litert_output import NPU_FAILURE_MARKERS, parse_litert_output
from mai_sr.device.placement import (ACCELERATOR_UNITS, check_fallback, check_ignored_flags,
                                     placement_fields, time_owner)
from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult

REMOTE_DIR = "/data/local/tmp"
REMOTE_BINARY = f"{REMOTE_DIR}/benchmark_model"
AI_BENCHMARK_MODEL = "/sdcard/Download/model.tflite"  # the file AI Benchmark's PRO mode loads
HOW_TO_GET_ADB = ("install Android platform-tools (Debian/Ubuntu: `apt install adb`) or "
                  "`pip install mai-sr[adb]` (adbutils bundles adb), or pass --adb PATH")
HOW_TO_GET_BENCHMARK_MODEL = (
    "pass --benchmark-binary PATH: TFLite's benchmark_model built for the device "
    "(bazel build -c opt --config=android_arm64 //tensorflow/lite/tools/benchmark:benchmark_model, "
    "or the nightly prebuilt android_aarch64_benchmark_model linked from the TFLite "
    "performance-measurement docs)")
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
# Half the last digit of the CompiledModel tool's "%.2f ms" (plus float32 slack)
PRINTED_MS_ROUNDING = 0.0051
REMOTE_NPU_DIR = f"{REMOTE_DIR}/mai_sr_npu"
REMOTE_QNN_DIR = f"{REMOTE_DIR}/mai_sr_qnn"
# NNAPI is deprecated from Android 15 (API level 35; Android NDK Neural Networks API guide).
NNAPI_DEPRECATED_FROM_SDK = 35
# SoC -> Hexagon (HTP) architecture of its skel/stub libraries: LiteRT-CLI
# (google-ai-edge/LiteRT-CLI, litert_cli/core/constants.py QNN_SOC_VERSION_MAP); SM8475 from
# the same HTP generation as SM8450 (ExecuTorch's Qualcomm examples).
HEXAGON_VERSIONS = {"SM8350": "68", "SM8450": "69", "SM8475": "69", "SM8550": "73",
                    "SM8650": "75", "SM8750": "79", "SM8850": "81"}
# QNN delegate htp_performance_mode values (Qualcomm AI Engine Direct Delegate, "External
# Delegate Options"): the number the delegate parses, by name.
QNN_PERFORMANCE_MODES = {"default": 0, "sustained_high_performance": 1, "burst": 2,
                         "high_performance": 3, "power_saver": 4, "low_power_saver": 5,
                         "high_power_saver": 6, "low_balanced": 7, "balanced": 8}
QNN_BACKENDS = ("htp", "gpu")
# Vendor flags of the CompiledModel tool (litert/tools/flags/vendors/*_flags.cc).
VENDOR_FLAG_PREFIXES = ("qualcomm_", "mediatek_", "google_tensor_", "samsung_")
DISPATCH_LIBRARY_VENDORS = {"qualcomm": "Qualcomm", "mediatek": "MediaTek",
                            "google": "GoogleTensor", "samsung": "Samsung"}
_FLAG_NAME = re.compile(r"[a-z][a-z0-9_]*")
_FLAG_VALUE = re.compile(r"[A-Za-z0-9._/:,+-]+")
# NNAPI device names as ANeuralNetworksDevice_getName reports them ("synap-npu",
# "google-edgetpu", "qti-dsp", "nnapi-reference"): anything else is refused before it can
# reach a device shell, on top of the quoting in Adb.run.
ACCELERATOR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# ELF e_machine values (System V ABI) of the binaries each Android ABI can execute.
ELF_MACHINE_NAMES = {3: "x86", 40: "32-bit ARM", 62: "x86_64", 183: "arm64 (AArch64)"}
ABI_MACHINES = {"arm64-v8a": 183, "armeabi-v7a": 40, "armeabi": 40, "x86_64": 62, "x86": 3}


# ---------------------------------------------------------------- the adb client


def _bundled_adb() -> str | None:
    """adbutils' bundled adb binary, found without importing adbutils."""
    spec = importlib.util.find_spec("adbutils")
    if spec is None or not spec.origin:
        return None
    exe = Path(spec.origin).parent / "binaries" / ("adb.exe" if os.name == "nt" else "adb")
    return str(exe) if exe.is_file() else None


def _executable(path: str, what: str) -> str:
    resolved = shutil.which(path)
    if resolved is None:
        raise MaiSrError(f"{what} {path}: no such executable; {HOW_TO_GET_ADB}")
    return resolved


def find_adb(explicit: str | None = None) -> str:
    """The adb executable: `explicit`, else $ADB, else PATH, else adbutils' bundled one."""
    if explicit:
        return _executable(explicit, "--adb")
    if os.environ.get("ADB"):
        return _executable(os.environ["ADB"], "$ADB")
    found = shutil.which("adb") or _bundled_adb()
    if not found:
        raise MaiSrError(f"no adb found: {HOW_TO_GET_ADB}")
    return found


class Adb:
    """A thin wrapper over the adb client process: every call is one `adb ...` command."""

    def __init__(self, exe: str | None = None, timeout: float = 120.0):
        self.exe = find_adb(exe)
        self.timeout = timeout

    def run(self, *args: str, serial: str | None = None, timeout: float | None = None,
            merge: bool = True) -> subprocess.CompletedProcess:
        """Run `adb [-s serial] ARGS`.

        `adb shell` joins its words with spaces and the device's sh parses the result again,
        so every word after "shell" is quoted here: a value such as `npu;touch /data/pwned`
        or `npu --use_gpu=true` reaches the device as one literal word, never as a second
        command or an extra flag. Local paths given to `push` are made absolute so that a
        file named `-x.tflite` is not read as an option.
        """
        args = list(args)
        if args[:1] == ["shell"]:
            args = ["shell", " ".join(shlex.quote(str(word)) for word in args[1:])]
        elif args[:1] == ["push"]:
            args = ["push"] + [os.path.abspath(a) for a in args[1:-1]] + args[-1:]
        cmd = [self.exe] + (["-s", serial] if serial else []) + args
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                                  text=True, errors="replace", timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            raise MaiSrError(f"`adb {' '.join(cmd[1:])}` timed out after "
                             f"{timeout or self.timeout:.0f} s") from None
        except OSError as exc:
            raise MaiSrError(f"cannot run adb ({self.exe}): {exc.strerror}") from None

    def check(self, *args: str, serial: str, action: str, timeout: float | None = None) -> str:
        """Run a device command; its output, or a one-line error saying what went wrong."""
        proc = self.run(*args, serial=serial, timeout=timeout)
        if proc.returncode != 0:
            raise device_error(serial, action, proc.stdout)
        return proc.stdout


UNAUTHORIZED = "is unauthorized: unlock it and accept the 'Allow USB debugging' prompt, then retry"
RECONNECT = "reconnect it (`adb reconnect`) and retry"


def device_error(serial: str, action: str, output: str) -> MaiSrError:
    """Name the usual adb failures in words a user can act on."""
    text = output.lower()
    if "unauthorized" in text:
        return MaiSrError(f"device {serial} {UNAUTHORIZED}")
    if "offline" in text:
        return MaiSrError(f"device {serial} went offline during {action}: {RECONNECT}")
    if "not found" in text and "device" in text and "'" in text:
        return MaiSrError(f"device {serial} is not attached (adb: {output_tail(output, 1)})")
    return MaiSrError(f"device {serial}: {action} failed: {output_tail(output)}")


# ---------------------------------------------------------------- devices


@dataclass(frozen=True)
class AndroidDevice:
    """One line of `adb devices -l`."""

    serial: str
    state: str  # "device" (ready), "unauthorized", "offline", "recovery", ...
    attrs: dict = field(default_factory=dict)  # product, model, device, transport_id, usb

    def check_ready(self) -> None:
        if self.state == "unauthorized":
            raise MaiSrError(f"device {self.serial} {UNAUTHORIZED}")
        if self.state == "offline":
            raise MaiSrError(f"device {self.serial} is offline: {RECONNECT}")
        if self.state != "device":
            raise MaiSrError(f"device {self.serial} is in state '{self.state}', not ready")


def parse_devices(text: str) -> list[AndroidDevice]:
    """Parse `adb devices -l` output (server start-up chatter and the header are skipped)."""
    devices = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("List of devices", "*", "adb ")):
            continue
        words = line.split()
        if len(words) < 2:
            continue
        attrs = dict(w.split(":", 1) for w in words[2:] if ":" in w)
        devices.append(AndroidDevice(words[0], words[1], attrs))
    return devices


def list_devices(adb: Adb) -> list[AndroidDevice]:
    proc = adb.run("devices", "-l", merge=False)
    if proc.returncode != 0:
        raise MaiSrError(f"`adb devices -l` failed: {output_tail(proc.stderr or proc.stdout)}")
    return parse_devices(proc.stdout)


def select_devices(devices: list[AndroidDevice], serial: str | None) -> list[AndroidDevice]:
    """The devices to use: the one attached, the one named, or all of them for 'all'."""
    if not devices:
        raise MaiSrError("no Android device attached (`adb devices -l` lists none): connect "
                         "one with USB debugging enabled")
    if serial == "all":
        return list(devices)
    if serial is None:
        if len(devices) > 1:
            names = ", ".join(f"{d.serial} ({d.state})" for d in devices)
            raise MaiSrError(f"{len(devices)} devices attached ({names}): pass --serial "
                             "SERIAL, or --serial all to use every one")
        return list(devices)
    for d in devices:
        if d.serial == serial:
            return [d]
    listed = ", ".join(d.serial for d in devices)
    raise MaiSrError(f"--serial {serial}: no such device attached (attached: {listed})")


def parse_getprop(text: str) -> dict[str, str]:
    """`getprop` output lines "[key]: [value]" -> dict."""
    return dict(re.findall(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, flags=re.M))


def device_facts(adb: Adb, serial: str) -> dict:
    """Model, SoC platform, SDK level and CPU ABI from the device's system properties."""
    props = parse_getprop(adb.check("shell", "getprop", serial=serial, action="getprop"))
    sdk = props.get("ro.build.version.sdk", "")
    return {"serial": serial,
            "model": props.get("ro.product.model"),
            "manufacturer": props.get("ro.product.manufacturer"),
            "platform": props.get("ro.board.platform"),
            "sdk": int(sdk) if sdk.isdigit() else None,
            # the SoC as LiteRT-CLI reads it: ro.soc.model (Android 12+), else the platform
            "soc": props.get("ro.soc.model") or props.get("ro.board.platform"),
            "soc_manufacturer": props.get("ro.soc.manufacturer"),
            "abi": props.get("ro.product.cpu.abi"),
            "abilist": props.get("ro.product.cpu.abilist") or props.get("ro.product.cpu.abi")}


def elf_machine(path: Path) -> int:
    """The ELF header's e_machine (which CPU the binary is built for)."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise MaiSrError(f"{path}: not an ELF executable, so not a benchmark_model build")
    byteorder = "little" if head[5] == 1 else "big"
    return int.from_bytes(head[18:20], byteorder)


def check_binary_abi(path: Path, facts: dict) -> None:
    """Refuse a benchmark_model built for a CPU the device cannot execute."""
    machine = elf_machine(path)
    abis = [a.strip() for a in (facts.get("abilist") or "").split(",") if a.strip()]
    allowed = {ABI_MACHINES[a] for a in abis if a in ABI_MACHINES}
    if allowed and machine not in allowed:
        built = ELF_MACHINE_NAMES.get(machine, f"e_machine {machine}")
        raise MaiSrError(f"{path}: benchmark_model is built for {built}, but device "
                         f"{facts['serial']} runs {facts.get('abi')}; use a build for "
                         f"{facts.get('abi')} (e.g. android_aarch64_benchmark_model for arm64-v8a)")


def add_device_options(group) -> None:
    """--adb and --serial: how `mai-sr bench --runner adb` and `mai-sr push` find devices."""
    group.add_argument("--adb", metavar="PATH",
                       help="adb executable (default: $ADB, PATH, or adbutils' bundled adb)")
    group.add_argument("--serial", help="device serial; 'all' benchmarks every attached device")


# ---------------------------------------------------------------- NPU and QNN set-up


def soc_vendor(facts: dict) -> str | None:
    """qualcomm | mediatek | google | samsung, from ro.soc.manufacturer or the SoC name."""
    maker = (facts.get("soc_manufacturer") or "").lower()
    soc = (facts.get("soc") or "").lower()
    if maker in ("qti", "qualcomm") or re.match(r"(sm|sdm|qcs|qcm|sa)\d", soc):
        return "qualcomm"
    if maker == "mediatek" or re.match(r"mt\d", soc):
        return "mediatek"
    if maker == "google" or re.match(r"(gs\d|zuma|tensor)", soc):
        return "google"
    if maker in ("samsung", "slsi") or re.match(r"(s5e|exynos)", soc):
        return "samsung"
    return None


def hexagon_version(facts: dict, override: str | None = None) -> str:
    """The Hexagon (HTP) version whose stub/skel libraries the device's SoC loads."""
    if override:
        return override
    soc = (facts.get("soc") or "").upper()
    if soc in HEXAGON_VERSIONS:
        return HEXAGON_VERSIONS[soc]
    known = ", ".join(f"{k} v{v}" for k, v in HEXAGON_VERSIONS.items())
    raise MaiSrError(f"device {facts['serial']}: SoC {soc or '(unknown)'} has no known Hexagon "
                     f"version (known: {known}); pass --hexagon-version NN")


def key_value_options(items, what: str) -> list[tuple[str, str]]:
    """KEY=VALUE strings -> pairs. The key must be a flag-like name; the value is checked by
    whoever passes it on (it reaches the device as one quoted word either way)."""
    pairs = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not _FLAG_NAME.fullmatch(key):
            raise MaiSrError(f"{what} {item!r}: expected KEY=VALUE with a lower-case key "
                             "(letters, digits, _)")
        pairs.append((key, value))
    return pairs


def external_delegate_options(options: list[tuple[str, str]]) -> str:
    """The `k:v;k:v` string of --external_delegate_options.

    tflite/tools/delegates/external_delegate_provider.cc splits it on ';', then each item on
    ':', and silently drops an item that does not split into exactly two parts: an empty
    value, a value holding ':' or ';', or a key holding one. Those are refused here, so no
    option is lost without a word.
    """
    items = []
    for key, value in options:
        for part, name in ((key, "name"), (value, "value")):
            if not part or ":" in part or ";" in part:
                raise MaiSrError(f"QNN delegate option {key}={value}: the {name} "
                                 f"{'is empty' if not part else 'contains : or ;'}, so "
                                 "benchmark_model's option parser would drop it silently")
        items.append(f"{key}:{value}")
    return ";".join(items)


def _find_library(root: Path, name: str, *subdirs: str) -> Path | None:
    """`name` in one of root/<subdir> (QAIRT SDK layout) or directly in root."""
    for sub in subdirs + ("",):
        path = root / sub / name if sub else root / name
        if path.is_file():
            return path
    return None


def qairt_libraries(root: Path, backend: str, hexagon: str) -> list[Path]:
    """The local QAIRT files the QNN delegate needs on the device (SDK layout
    lib/aarch64-android and lib/hexagon-vNN/unsigned, or all in one folder)."""
    android = "lib/aarch64-android"
    names = ["libQnnTFLiteDelegate.so", "libQnnSystem.so"]
    if backend == "htp":
        names += ["libQnnHtp.so", "libQnnHtpPrepare.so", f"libQnnHtpV{hexagon}Stub.so"]
    else:
        names += ["libQnnGpu.so"]
    found, missing = [], []
    for name in names:
        path = _find_library(root, name, android)
        (found if path else missing).append(path or name)
    if backend == "htp":
        skel = f"libQnnHtpV{hexagon}Skel.so"
        path = _find_library(root, skel, f"lib/hexagon-v{hexagon}/unsigned")
        if path:
            found.append(path)
        else:
            have = sorted(p.name for p in root.glob("lib/hexagon-v*"))
            missing.append(f"lib/hexagon-v{hexagon}/unsigned/{skel}"
                           + (f" (the folder has {', '.join(have)})" if have else ""))
    if missing:
        raise MaiSrError(f"--qairt {root}: missing {', '.join(map(str, missing))} "
                         f"(needed for the QNN {backend} backend on Hexagon v{hexagon})")
    return found


def npu_libraries(folder: Path, facts: dict, hexagon: str | None) -> tuple[list[Path], bool]:
    """The .so files of --npu-libs to push, and whether a compiler plugin (on-device
    compilation) is among them. Refuses a folder without the SoC vendor's dispatch library,
    or (Qualcomm) without the skel of the SoC's Hexagon version."""
    libs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".so")
    dispatch = [p.name for p in libs if p.name.startswith("libLiteRtDispatch_")]
    vendor = soc_vendor(facts)
    wanted = f"libLiteRtDispatch_{DISPATCH_LIBRARY_VENDORS[vendor]}.so" if vendor else None
    if not dispatch or (wanted and wanted not in dispatch):
        raise MaiSrError(f"--npu-libs {folder}: no {wanted or 'libLiteRtDispatch_*.so'} "
                         f"(device {facts['serial']} has SoC {facts.get('soc')}"
                         f"{', ' + vendor if vendor else ''}; the folder has "
                         f"{', '.join(dispatch) or 'no dispatch library'})")
    if vendor == "qualcomm" and hexagon:
        for name in (f"libQnnHtpV{hexagon}Skel.so", f"libQnnHtpV{hexagon}Stub.so", "libQnnHtp.so"):
            if not (folder / name).is_file():
                raise MaiSrError(f"--npu-libs {folder}: no {name} (SoC {facts.get('soc')} "
                                 f"runs Hexagon v{hexagon}; copy it from the QAIRT SDK)")
    plugin = any(p.name.startswith("libLiteRtCompilerPlugin_") for p in libs)
    return libs, plugin


def parse_ls_long(text: str) -> dict[str, int]:
    """`ls -l DIR` (toybox) -> {name: size}."""
    sizes = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 8 and words[0][:1] in "-l" and words[4].isdigit():
            sizes[words[-1]] = int(words[4])
    return sizes


# ---------------------------------------------------------------- the runner


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

    def __init__(self, *, adb: str | None = None, serial: str | None = None,
                 benchmark_binary: str | None = None, delegate: str = "nnapi",
                 nnapi_accelerator: str | None = None, threads: int | None = None,
                 min_runs: int | None = None, warmup_runs: int | None = None,
                 min_seconds: float | None = None, op_profiling: bool = False,
                 report_memory: bool = False, npu_libs: str | None = None,
                 npu_options: list[str] | None = None, qairt: str | None = None,
                 qnn_backend: str = "htp", qnn_performance_mode: str | None = None,
                 qnn_options: list[str] | None = None, hexagon_version: str | None = None,
                 allow_fallback: bool = False, timeout: float = 900.0):
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
        version chosen from the SoC. `allow_fallback` records a run that fell back to the
        CPU instead of failing. `timeout` bounds one run (s)."""
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
                if not _FLAG_VALUE.fullmatch(value):
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

    def _benchmark_binary_on(self, facts: dict) -> str:
        """Push the user's benchmark_model, or find one already on the device."""
        serial = facts["serial"]
        if self.benchmark_binary:
            check_binary_abi(self.benchmark_binary, facts)
            self.adb.check("push", str(self.benchmark_binary), REMOTE_BINARY, serial=serial,
                           action="push of benchmark_model")
            self.adb.check("shell", "chmod", "755", REMOTE_BINARY, serial=serial,
                           action="chmod of benchmark_model")
            return REMOTE_BINARY
        if self.adb.run("shell", "ls", REMOTE_BINARY, serial=serial).returncode == 0:
            return REMOTE_BINARY
        # Some boards ship one (Synaptics' SyNAP images have /vendor/bin/benchmark_model).
        found = self.adb.run("shell", "command", "-v", "benchmark_model", serial=serial)
        path = found.stdout.strip().splitlines()[-1] if found.stdout.strip() else ""
        if found.returncode == 0 and path.startswith("/"):
            return path
        if "offline" in found.stdout or "unauthorized" in found.stdout:
            raise device_error(serial, "the benchmark_model lookup", found.stdout)
        raise MaiSrError(f"device {serial} has no benchmark_model (not in {REMOTE_DIR} nor on "
                         f"its PATH): {HOW_TO_GET_BENCHMARK_MODEL}")

    def _push_libraries(self, serial: str, libs: list[Path], remote_dir: str) -> None:
        """Push the libraries the device does not have yet (same name and size are kept), so
        a second run pushes nothing."""
        self.adb.check("shell", "mkdir", "-p", remote_dir, serial=serial,
                       action=f"mkdir of {remote_dir}")
        listing = self.adb.run("shell", "ls", "-l", remote_dir, serial=serial)
        on_device = parse_ls_long(listing.stdout) if listing.returncode == 0 else {}
        for lib in libs:
            if on_device.get(lib.name) != lib.stat().st_size:
                self.adb.check("push", str(lib), f"{remote_dir}/{lib.name}", serial=serial,
                               action=f"push of {lib.name}")

    def _prepare_delegate(self, facts: dict) -> dict:
        """Check and push what npu/qnn need; returns the run set-up (remote folder, env,
        Hexagon version...). Nothing for the classic delegates."""
        serial = facts["serial"]
        if self.delegate == "npu":
            hexagon = None
            if soc_vendor(facts) == "qualcomm":
                hexagon = hexagon_version(facts, self.hexagon_version)
            libs, plugin = npu_libraries(self.npu_libs, facts, hexagon)
            self._push_libraries(serial, libs, REMOTE_NPU_DIR)
            return {"remote_dir": REMOTE_NPU_DIR, "compiler_plugin": plugin, "hexagon": hexagon,
                    "env": [f"LD_LIBRARY_PATH={REMOTE_NPU_DIR}",
                            f"ADSP_LIBRARY_PATH={REMOTE_NPU_DIR}"]}
        if self.delegate == "qnn":
            hexagon = hexagon_version(facts, self.hexagon_version)
            libs = qairt_libraries(self.qairt, self.qnn_backend, hexagon)
            self._push_libraries(serial, libs, REMOTE_QNN_DIR)
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
        with tempfile.TemporaryDirectory(prefix="mai_sr_result_") as tmp:
            local_result = Path(tmp) / "result.pb"
            try:
                proc = self.adb.run("shell", *env, binary,
                                    *self.benchmark_flags(remote_model, setup),
                                    serial=device.serial, timeout=self.timeout)
                pulled = self.adb.run("pull", REMOTE_RESULT, str(local_result),
                                      serial=device.serial)
                proto = local_result.read_bytes() if (pulled.returncode == 0
                                                      and local_result.is_file()) else None
            finally:
                self.adb.run("shell", "rm", "-f", remote_model, REMOTE_RESULT,
                             serial=device.serial)
        return self._result(proc, proto, device.serial, model, facts, setup)

    def _result(self, proc, proto: bytes | None, serial: str, model: Path, facts: dict,
                setup: dict) -> BenchResult:
        """Parse one run: text, then the proto where the tool wrote one; fallback checks."""
        source = f"device {serial}: benchmark_model"
        if proc.returncode != 0:
            if re.search(r"^adb: .*(offline|unauthorized)", proc.stdout, flags=re.M):
                raise device_error(serial, "the benchmark run", proc.stdout)
            # LiteRT's NPU-runtime error says more than the tool's closing lines
            cause = next((ln.strip() for ln in proc.stdout.splitlines()
                          if any(m in ln for m in NPU_FAILURE_MARKERS)), None)
            raise MaiSrError(f"{source} exited with code {proc.returncode}: "
                             + (f"\"{cause}\" ... " if cause else "")
                             + output_tail(proc.stdout))
        text = proc.stdout
        # One fallback rule for every accelerator delegate (mai_sr.device.placement)
        unit = ACCELERATOR_UNITS.get(self.delegate)
        if unit:
            try:
                parsed = (parse_litert_output(text, source=source)
                          if "BENCHMARK RESULTS" in text
                          else parse_benchmark_output(text, source=source))
            except MaiSrError:
                # no timings: if the tool ignored flags (a classic benchmark_model given
                # --use_npu), say so rather than "no timings"
                shared = parse_benchmark_output(text, source=source, require_timings=False)
                check_fallback(shared, text, unit=unit, source=source, allow_fallback=False)
                raise
            notes = check_fallback(parsed, text, unit=unit, source=source,
                                   allow_fallback=self.allow_fallback)
        else:
            parsed = parse_benchmark_output(text, source=source)
            notes = check_ignored_flags(parsed, source=source, allow_fallback=self.allow_fallback)
        device = dict(facts)
        if self.delegate == "nnapi" and parsed.available_accelerators:
            # what the device offered, whichever one ran (a scalar, as device records hold)
            device["nnapi_accelerators"] = ",".join(parsed.available_accelerators)
        if setup.get("hexagon"):
            device["hexagon_version"] = setup["hexagon"]
        result = parsed.to_bench_result(runner=self.name, model=str(model), device=device,
                                        requested_delegate=DELEGATE_NAMES[self.delegate])
        delegate = dict(result.delegate)
        if unit:
            # the unit's own counts, not those of whichever delegate's line came first
            delegate.update(placement_fields(parsed, text, unit))
        else:
            delegate["timed_on"] = time_owner(delegate.get("name"), "full")
        notes = list(result.notes) + notes
        if self.delegate == "nnapi" and (facts.get("sdk") or 0) >= NNAPI_DEPRECATED_FROM_SDK:
            notes.append(f"NNAPI is deprecated from Android 15 (API level "
                         f"{NNAPI_DEPRECATED_FROM_SDK}); this device runs API level "
                         f"{facts['sdk']}: its vendor NNAPI driver may be gone or unmaintained. "
                         "Use --delegate npu (LiteRT CompiledModel) or --delegate qnn "
                         "(Qualcomm) for the NPU")
        result = dataclasses.replace(result, delegate=delegate, notes=notes)
        if proto:
            from mai_sr.device.benchmark_proto import parse_benchmark_result

            result = apply_benchmark_result(result, parse_benchmark_result(
                proto, source=f"{source} --result_file_path"))
        return result


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


# ---------------------------------------------------------------- AI Benchmark


AI_BENCHMARK_STEPS = """\
Run it in AI Benchmark (Mobile AI 2022 challenge report, section 2.2):
  1. Install AI Benchmark (https://ai-benchmark.com/download or Google Play) and run its
     standard tests once.
  2. Enter PRO Mode and select the Custom Model tab.
  3. The model is already in place: Download/model.tflite, the file name the app loads.
  4. Select the mode (INT8 for these models) and the acceleration option (e.g. NNAPI),
     then run the model."""


def push_model(model_path, *, adb: str | None = None, serial: str | None = None) -> list[str]:
    """Copy a model to /sdcard/Download/model.tflite on the selected device(s), where AI
    Benchmark's PRO-mode Custom Model tab loads it. Returns the serials written."""
    model = check_model_file(model_path)
    client = Adb(adb)
    written = []
    for device in select_devices(list_devices(client), serial):
        device.check_ready()
        client.check("push", str(model), AI_BENCHMARK_MODEL, serial=device.serial,
                     action="push of the model")
        written.append(device.serial)
    return written
