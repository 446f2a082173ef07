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

and the output is parsed by `mai_sr.device.benchmark_output`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from mai_sr.device.base import check_model_file
from mai_sr.device.benchmark_output import output_tail, parse_benchmark_output
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
DELEGATE_NAMES = {"nnapi": "NNAPI", "xnnpack": "XNNPACK", "gpu": "GPU", "cpu": None}
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
        group.add_argument("--delegate", choices=tuple(DELEGATE_FLAGS), default="nnapi")
        group.add_argument("--nnapi-accelerator", help="NNAPI accelerator name")
        group.add_argument("--op-profiling", action="store_true",
                           help="--enable_op_profiling=true")
        group.add_argument("--memory", dest="report_memory", action="store_true",
                           help="--report_peak_memory_footprint=true")

    def __init__(self, *, adb: str | None = None, serial: str | None = None,
                 benchmark_binary: str | None = None, delegate: str = "nnapi",
                 nnapi_accelerator: str | None = None, threads: int | None = None,
                 min_runs: int | None = None, warmup_runs: int | None = None,
                 min_seconds: float | None = None, op_profiling: bool = False,
                 report_memory: bool = False, timeout: float = 900.0):
        """Options map onto benchmark_model flags (None keeps the tool's default):
        threads -> --num_threads, min_runs -> --num_runs, warmup_runs -> --warmup_runs,
        min_seconds -> --min_secs, delegate nnapi|cpu|xnnpack|gpu, nnapi_accelerator ->
        --nnapi_accelerator_name, op_profiling -> --enable_op_profiling,
        report_memory -> --report_peak_memory_footprint. `timeout` bounds one run (s)."""
        if delegate not in DELEGATE_FLAGS:
            raise MaiSrError(f"--delegate {delegate}: choose from {', '.join(DELEGATE_FLAGS)}")
        if nnapi_accelerator and delegate != "nnapi":
            raise MaiSrError("--nnapi-accelerator needs --delegate nnapi")
        if nnapi_accelerator is not None and not ACCELERATOR_NAME.fullmatch(nnapi_accelerator):
            raise MaiSrError(f"--nnapi-accelerator {nnapi_accelerator!r}: not an NNAPI device "
                             "name (letters, digits and . _ : - only, e.g. synap-npu)")
        if benchmark_binary and not Path(benchmark_binary).is_file():
            raise MaiSrError(f"--benchmark-binary {benchmark_binary}: file not found")
        self.adb = Adb(adb)
        self.serial = serial
        self.benchmark_binary = Path(benchmark_binary) if benchmark_binary else None
        self.delegate = delegate
        self.nnapi_accelerator = nnapi_accelerator
        self.threads, self.min_runs = threads, min_runs
        self.warmup_runs, self.min_seconds = warmup_runs, min_seconds
        self.op_profiling, self.report_memory = op_profiling, report_memory
        self.timeout = timeout

    def benchmark_flags(self, remote_model: str) -> list[str]:
        """The benchmark_model command-line flags for one run."""
        flags = [f"--graph={remote_model}"]
        for flag, value in (("num_threads", self.threads), ("num_runs", self.min_runs),
                            ("warmup_runs", self.warmup_runs), ("min_secs", self.min_seconds)):
            if value is not None:
                text = f"{value:g}" if isinstance(value, float) else str(value)
                flags.append(f"--{flag}={text}")
        flags += DELEGATE_FLAGS[self.delegate]
        if self.nnapi_accelerator:
            flags.append(f"--nnapi_accelerator_name={self.nnapi_accelerator}")
        if self.op_profiling:
            flags.append("--enable_op_profiling=true")
        if self.report_memory:
            flags.append("--report_peak_memory_footprint=true")
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

    def _bench_device(self, device: AndroidDevice, model: Path) -> BenchResult:
        device.check_ready()
        facts = device_facts(self.adb, device.serial)
        binary = self._benchmark_binary_on(facts)
        remote_model = _remote_model_path(model)
        self.adb.check("push", str(model), remote_model, serial=device.serial,
                       action="push of the model")
        try:
            proc = self.adb.run("shell", binary, *self.benchmark_flags(remote_model),
                                serial=device.serial, timeout=self.timeout)
        finally:
            self.adb.run("shell", "rm", "-f", remote_model, serial=device.serial)
        source = f"device {device.serial}: benchmark_model"
        if proc.returncode != 0:
            if re.search(r"^adb: .*(offline|unauthorized)", proc.stdout, flags=re.M):
                raise device_error(device.serial, "the benchmark run", proc.stdout)
            raise MaiSrError(f"{source} exited with code {proc.returncode}: "
                             f"{output_tail(proc.stdout)}")
        parsed = parse_benchmark_output(proc.stdout, source=source)
        return parsed.to_bench_result(runner=self.name, model=str(model), device=facts,
                                      requested_delegate=DELEGATE_NAMES[self.delegate])


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
