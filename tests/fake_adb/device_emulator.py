"""The fake adb's devices: everything `tests/fake_adb/adb` does, as a function.

`run(argv, scenario_path)` emulates one `adb ARGV` against the devices described in the
JSON scenario file, with the real client's messages (adb 1.0.41), and returns (exit code,
stdout, stderr). The `adb` script next to this file calls it in a process of its own (the
end-to-end tests); the other tests call it in-process through `Adb._spawn`, which is what
makes the adb tests fast. Only what mai-sr uses is emulated: `version`, `devices [-l]`,
`[-s SERIAL] get-state`, `push`, `pull`, and `shell` running getprop, chmod, ls [-l], rm,
mkdir, touch, env, sha256sum/md5sum, `command -v` and benchmark_model, whose output is a
transcript from tests/fake_adb/transcripts/. A shell line is parsed as the device's sh
parses it (quotes, `;`, `&&`, `|`), so an unquoted value runs as a command.

Scenario:
  {"devices": [{"serial": "S", "state": "device" | "unauthorized" | "offline",
                "model": "VS680", "props": {"ro.product.cpu.abi": "arm64-v8a", ...},
                "transcripts": {"": "default.txt", "--enable_op_profiling=true": "p.txt"},
                "exit_codes": {"p.txt": 0},        # default 0
                "offline_after": 5,                # goes offline after 5 commands
                "preinstalled": ["/vendor/bin/benchmark_model"],
                "tool": "classic" | "litert",      # tool of preinstalled and unmarked binaries
                "lacks_flags": ["result_file_path"],  # flags this build does not know
                "lacks_sha256sum": true,           # an old toybox: md5sum only
                "system_libs": ["/vendor/lib64/libneuron_adapter.so"],  # the image's own
                "adapter_fails": true,             # no NeuronAdapter loads (MediaTek)
                "hexagon": "75"}]}                 # the SoC's real Hexagon version (QNN)

Which tool a pushed binary is comes from its bytes, as on a device: a file holding the
string "dispatch_library_path" is LiteRT's CompiledModel tool, one holding "use_nnapi" the
classic tool (both strings are flag names each real binary contains); any other file is the
device's "tool". `BINARY --help` prints that tool's flag table the way
`BenchmarkModel::ParseFlags` does (transcripts/SOURCES.md). A transcript is chosen by the
most flags of its key that the command line contains. Like the real tools, benchmark_model
does not refuse a flag it does not know: it logs "WARN: Unconsumed cmdline flags: ..." and
runs without it. With --result_file_path (when the tool knows it) the run writes the
BenchmarkResult proto whose fields are in the transcript's sidecar `<name>.result.json`.
The NPU run checks that --dispatch_library_path holds a libLiteRtDispatch_*.so (and, on a
MediaTek SoC, that a NeuronAdapter library is there or in the system image), the QNN run
that the library paths hold the stub and skel of the device's Hexagon version; without them
the run falls back to the CPU as the real ones do. With --compiler_cache_path (an existing
folder) a JIT-compiling run leaves `<hash>.tflite` there and the next run of the same model
loads it (litert/core/cache/compilation_cache.cc). State (pushed files, folders, command
counts) lives in SCENARIO + ".state.json"; every invocation is appended to SCENARIO + ".log".
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shlex
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
TRANSCRIPTS = HERE / "transcripts"
# Flags of BenchmarkModel::GetFlags shared by both tools, then each tool's own
# (benchmark_tflite_model.cc and its delegate providers; benchmark_litert_model.h).
COMMON_FLAGS = {"graph", "num_threads", "num_runs", "warmup_runs", "min_secs", "max_secs",
                "warmup_min_secs", "report_peak_memory_footprint", "result_file_path"}
TOOL_FLAGS = {
    "classic": COMMON_FLAGS | {
        "use_nnapi", "nnapi_accelerator_name", "use_xnnpack", "use_gpu",
        "enable_op_profiling", "disable_nnapi_cpu", "external_delegate_path",
        "external_delegate_options"},
    "litert": COMMON_FLAGS | {
        "use_cpu", "use_gpu", "use_npu", "dispatch_library_path",
        "compiler_plugin_library_path", "compiler_cache_path", "require_full_delegation",
        "use_profiler", "signature_to_run_for", "mediatek_nerun_pilot_version"},
}
# The bytes that say which tool a binary is (flag names compiled into each).
TOOL_MARKERS = ((b"dispatch_library_path", "litert"), (b"use_nnapi", "classic"))
# `--help` flag tables: (name, default, type, help). The shared rows and LiteRT's are the
# sources' own text (benchmark_model.cc BenchmarkModel::GetFlags, benchmark_litert_model.h
# GetFlags); the classic tool's delegate-provider rows are abbreviated.
SHARED_HELP = [
    ("num_runs", "50", "int32", "expected number of runs, see also min_secs, max_secs"),
    ("min_secs", "1", "float", "minimum number of seconds to rerun for, potentially making "
     "the actual number of runs to be greater than num_runs"),
    ("num_threads", "-1", "int32", "number of threads"),
    ("warmup_runs", "1", "int32", "minimum number of runs performed on initialization, to "
     "allow performance characteristics to settle, see also warmup_min_secs"),
    ("report_peak_memory_footprint", "false", "bool", "Report the peak memory footprint by "
     "periodically checking the memory footprint."),
]
TOOL_HELP = {
    "litert": [
        ("graph", "", "string", "The path to the model file."),
        ("use_cpu", "true", "bool", "Whether to use CPU accelerator."),
        ("use_gpu", "false", "bool", "Whether to use GPU accelerator."),
        ("use_npu", "false", "bool", "Whether to use NPU accelerator."),
        ("dispatch_library_path", "", "string", "Dispatch library path."),
        ("compiler_plugin_library_path", "", "string",
         "Compiler plugin library path. Only for JIT compilation."),
        ("compiler_cache_path", "", "string",
         "Compiler plugin cache path, used to store JIT-compiled models."),
        ("require_full_delegation", "false", "bool", "Whether to require full delegation."),
        ("result_file_path", "", "string",
         "Path to save the benchmark result in binary proto format."),
        ("mediatek_nerun_pilot_version", "version8", "string",
         "Which version of the MediaTek NPU SDK to use."),
    ],
    "classic": [
        ("graph", "", "string", "graph file name"),
        ("enable_op_profiling", "false", "bool", "enable op profiling"),
        ("result_file_path", "", "string", "file path to write the benchmark result proto"),
        ("use_xnnpack", "false", "bool", "explicitly apply the XNNPACK delegate"),
        ("use_gpu", "false", "bool", "use gpu"),
        ("use_nnapi", "false", "bool", "use nnapi delegate api"),
        ("nnapi_accelerator_name", "", "string", "the name of the nnapi accelerator to use"),
        ("external_delegate_path", "", "string", "The library path for the underlying "
         "external."),
        ("external_delegate_options", "", "string", "A list of options to be passed to the "
         "external delegate library."),
    ],
}
VENDOR_PREFIXES = ("qualcomm_", "mediatek_", "google_tensor_", "samsung_")
NEURON_ADAPTERS = ("libneuronusdk_adapter.mtk.so", "libneuronusdk_adapter.9.mtk.so",
                   "libneuronusdk_adapter.so", "libneuron_adapter_mgvi.so",
                   "libneuron_adapter.so")
# benchmark_result.proto (tensorflow/lite/tools/benchmark/proto): message -> field -> (number,
# wire type). Encoded by hand here, so the runner's protobuf-based reader is checked
# against an independent writer.
PROTO_FIELDS = {
    "latency_metrics": (2, {"avg_ms": 1, "min_ms": 2, "max_ms": 3, "stddev_ms": 4,
                            "median_ms": 5, "p5_ms": 6, "p95_ms": 7, "init_ms": 8,
                            "first_inference_ms": 9, "average_warm_up_ms": 10}),
    "memory_metrics": (3, {"init_footprint_kb": 1, "overall_footprint_kb": 2,
                           "peak_mem_mb": 3}),
    "misc_metrics": (4, {"model_size_mb": 1, "num_runs": 2, "num_warmup_runs": 3,
                         "model_throughput_in_mb_per_sec": 4}),
}
VARINT_FIELDS = {"init_footprint_kb", "overall_footprint_kb", "num_runs", "num_warmup_runs"}
ELF_MACHINES = {"arm64-v8a": 183, "armeabi-v7a": 40, "x86_64": 62, "x86": 3}


class Exit(Exception):
    """The emulated process ends with this code (its message already written)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class Session:
    """One adb invocation: the scenario, the persistent state, and the output streams."""

    def __init__(self, scenario_path: Path, merge: bool):
        self.scenario = json.loads(scenario_path.read_text())
        self.state_path = Path(str(scenario_path) + ".state.json")
        self.state = (json.loads(self.state_path.read_text()) if self.state_path.exists()
                      else {})
        for key, empty in (("files", {}), ("commands", {}), ("offline", []), ("dirs", {})):
            self.state.setdefault(key, empty)
        self.out = io.StringIO()
        self.err = self.out if merge else io.StringIO()

    def say(self, text: str) -> None:
        self.out.write(text + "\n")

    def fail(self, message: str, code: int = 1):
        self.err.write(message + "\n")
        raise Exit(code)

    def save(self) -> None:
        self.state_path.write_text(json.dumps(self.state))


# ---------------------------------------------------------------- devices


def device_state(dev, state):
    return "offline" if dev["serial"] in state["offline"] else dev.get("state", "device")


def list_devices(s: Session, long: bool) -> None:
    devices = s.scenario.get("devices", [])
    lines = ["List of devices attached"]
    for d in devices:
        st = device_state(d, s.state)
        line = f"{d['serial']}\t{st}" if not long else f"{d['serial']:<22} {st}"
        if long:
            extra = ["usb:1-1"]
            if st == "device":
                model = d.get("model", "Model").replace(" ", "_")
                extra += [f"product:{d.get('product', 'product')}", f"model:{model}",
                          f"device:{d.get('device', 'device')}"]
            extra.append(f"transport_id:{devices.index(d) + 1}")
            line += " " + " ".join(extra)
        lines.append(line)
    s.say("\n".join(lines) + "\n")


def select(s: Session, serial):
    devices = s.scenario.get("devices", [])
    if serial is None:
        if not devices:
            s.fail("adb: no devices/emulators found")
        if len(devices) > 1:
            s.fail("adb: more than one device/emulator")
        return devices[0]
    for d in devices:
        if d["serial"] == serial:
            return d
    s.fail(f"adb: device '{serial}' not found")


def check_online(s: Session, dev) -> None:
    st = device_state(dev, s.state)
    if st == "unauthorized":
        s.fail("adb: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set\n"
               "Try 'adb kill-server' if that seems wrong.\n"
               "Otherwise check for a confirmation dialog on your device.")
    if st == "offline":
        s.fail("adb: device offline")
    count = s.state["commands"].get(dev["serial"], 0) + 1
    s.state["commands"][dev["serial"]] = count
    limit = dev.get("offline_after")
    if limit is not None and count > limit:
        s.state["offline"].append(dev["serial"])
        s.fail("adb: device offline")


# ---------------------------------------------------------------- files


def elf_machine(head: bytes):
    if head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little")


def push(s: Session, dev, local, remote) -> None:
    if not os.path.exists(local):
        s.fail(f"adb: error: cannot stat '{local}': No such file or directory")
    if remote.endswith("/"):
        remote += os.path.basename(local)
    data = Path(local).read_bytes()
    tool = next((kind for marker, kind in TOOL_MARKERS if marker in data), None)
    s.state["files"].setdefault(dev["serial"], {})[remote] = {
        "size": len(data), "mode": "644", "elf_machine": elf_machine(data[:20]), "tool": tool,
        "sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()}
    s.say(f"{local}: 1 file pushed, 0 skipped. 4.2 MB/s ({len(data)} bytes in 0.001s)")


def pull(s: Session, dev, remote, local) -> None:
    info = s.state["files"].setdefault(dev["serial"], {}).get(remote)
    if info is None:
        s.fail(f"adb: error: failed to stat remote object '{remote}': No such file or directory")
    Path(local).write_bytes(base64.b64decode(info.get("data", "")))
    s.say(f"{remote}: 1 file pulled, 0 skipped. 0.1 MB/s ({info['size']} bytes in 0.001s)")


def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def encode_benchmark_result(values):
    """proto2 wire format: float fields are wire type 5, ints varints (type 0), messages
    length-delimited (type 2)."""
    out = b""
    for message, fields in values.items():
        number, numbers = PROTO_FIELDS[message]
        body = b""
        for name, value in fields.items():
            if name in VARINT_FIELDS:
                body += varint(numbers[name] << 3) + varint(int(value))
            else:
                body += varint(numbers[name] << 3 | 5) + struct.pack("<f", float(value))
        out += varint(number << 3 | 2) + varint(len(body)) + body
    return out


def files_in(files, folder):
    return {os.path.basename(p) for p in files if os.path.dirname(p) == folder.rstrip("/")}


# ---------------------------------------------------------------- benchmark_model


def binary_tool(dev, files, binary):
    """Which tool a device binary is: from its bytes when pushed, else the device's."""
    info = files.get(binary) or {}
    return info.get("tool") or dev.get("tool", "classic")


def check_executable(s: Session, dev, files, binary) -> None:
    info = files.get(binary)
    if info is None and binary not in dev.get("preinstalled", []):
        s.fail(f"/system/bin/sh: {binary}: inaccessible or not found", 127)
    if info is not None:
        if "x" not in info["mode"] and not info["mode"].startswith("7"):
            s.fail(f"/system/bin/sh: {binary}: can't execute: Permission denied", 126)
        props = dev.get("props", {})
        abis = props.get("ro.product.cpu.abilist", props.get("ro.product.cpu.abi", "arm64-v8a"))
        if info["elf_machine"] not in [None] + [ELF_MACHINES.get(a) for a in abis.split(",")]:
            s.fail(f"/system/bin/sh: {binary}: not executable: 64-bit ELF file", 126)


def usage_text(binary, tool):
    """`--help`: BenchmarkModel::ParseFlags logs Flags::Usage at ERROR, then
    benchmark_main's "Benchmarking failed." (exit 1)."""
    rows = SHARED_HELP + TOOL_HELP[tool]
    width = max(len(f"--{n}={d}") for n, d, _, _ in rows)
    lines = [f"ERROR: usage: {binary} <flags>", "Flags:"]
    lines += [f"\t{f'--{n}={d}':<{width}}\t{t}\toptional\t{h}" for n, d, t, h in rows]
    return "INFO: STARTING!\n" + "\n".join(lines) + "\n\nERROR: Benchmarking failed.\n"


def fallback_transcript(dev, files, flags, env):
    """The transcript of a run whose NPU libraries are not where the tool looks."""
    if "use_npu" in flags:
        folder = flags.get("dispatch_library_path", "")
        present = files_in(files, folder)
        if not any(n.startswith("libLiteRtDispatch_") for n in present):
            return dev.get("npu_no_dispatch_transcript", "litert_npu_no_dispatch.txt")
        mediatek = dev.get("props", {}).get("ro.soc.manufacturer", "").lower() == "mediatek"
        system = {os.path.basename(p) for p in dev.get("system_libs", [])}
        if mediatek and (dev.get("adapter_fails") or not (present | system) & set(NEURON_ADAPTERS)):
            return dev.get("mediatek_no_adapter_transcript", "mediatek_npu_no_adapter.txt")
    if "external_delegate_path" in flags and "backend_type:htp" in flags.get(
            "external_delegate_options", ""):
        hexagon = dev.get("hexagon", "75")
        stub_ok = f"libQnnHtpV{hexagon}Stub.so" in files_in(files, env.get("LD_LIBRARY_PATH", ""))
        skel_ok = f"libQnnHtpV{hexagon}Skel.so" in files_in(files, env.get("ADSP_LIBRARY_PATH", ""))
        if not (stub_ok and skel_ok):
            return dev.get("qnn_fallback_transcript", "qnn_not_executed.txt")
    return None


def parse_flags(dev, tool, args):
    known = TOOL_FLAGS[tool] - set(dev.get("lacks_flags", []))
    flags, unknown = {}, []
    for a in args:
        key, _, value = a.lstrip("-").partition("=")
        vendor = tool == "litert" and key.startswith(VENDOR_PREFIXES)
        if not a.startswith("--") or not (key in known or vendor) or key in dev.get(
                "lacks_flags", []):
            unknown.append(a)
            continue
        flags[key] = value
    return flags, unknown


def cached_compilation(s: Session, files, flags):
    """The --compiler_cache_path file of this model, when the folder exists (else None)."""
    folder = flags.get("compiler_cache_path", "").rstrip("/")
    if not folder or folder not in s.state["dirs"].get(s.serial, []):
        return None
    model = files[flags["graph"]]
    return f"{folder}/{int(model['sha256'][:15], 16)}.tflite"


def choose_transcript(s: Session, dev, files, args, flags, env):
    transcripts = dev.get("transcripts", {"": "vs680_nnapi.txt"})
    best = max((k for k in transcripts if all(f in args for f in k.split())),
               key=lambda k: len(k.split()))
    name = fallback_transcript(dev, files, flags, env) or transcripts[best]
    cache = cached_compilation(s, files, flags)
    if cache and cache in files:
        name = dev.get("cache_hit_transcript", "litert_npu_jit_cached.txt")
    return name, cache


def run_benchmark(s: Session, dev, files, binary, args, env=None):
    check_executable(s, dev, files, binary)
    tool = binary_tool(dev, files, binary)
    if args[:1] == ["--help"]:
        s.err.write(usage_text(binary, tool))
        return 1
    flags, unknown = parse_flags(dev, tool, args)
    graph = flags.get("graph", "")
    if graph not in files:
        s.fail(f"INFO: STARTING!\nERROR: Failed to mmap model {graph}\n"
               "ERROR: Benchmarking failed.")
    name, cache = choose_transcript(s, dev, files, args, flags, env or {})
    text = (TRANSCRIPTS / name).read_text()
    for key, value in (("{graph}", graph), ("{dispatch_dir}", flags.get("dispatch_library_path", "")),
                       ("{delegate_path}", flags.get("external_delegate_path", "")),
                       ("{delegate_options}", flags.get("external_delegate_options", "")),
                       ("{cache_dir}", flags.get("compiler_cache_path", ""))):
        text = text.replace(key, value)
    if unknown:
        first, _, rest = text.partition("\n")
        text = f"{first}\nWARN: Unconsumed cmdline flags: {' '.join(unknown)}\n{rest}"
    code = dev.get("exit_codes", {}).get(name, 0)
    if cache and code == 0 and "compiler plugins were applied successfully" in text:
        files[cache] = {"size": files[graph]["size"], "mode": "644", "elf_machine": None}
    sidecar = (TRANSCRIPTS / name).with_suffix(".result.json")
    result_path = flags.get("result_file_path")
    if result_path and sidecar.exists() and code == 0:
        data = encode_benchmark_result(json.loads(sidecar.read_text()))
        files[result_path] = {"size": len(data), "mode": "644", "elf_machine": None,
                              "data": base64.b64encode(data).decode()}
    s.err.write(text)
    return code


# ---------------------------------------------------------------- the shell


def ls(s: Session, dev, files, args) -> int:
    if args[:1] == ["-l"]:
        folder = args[-1].rstrip("/")
        for path, info in sorted(files.items()):
            if os.path.dirname(path) == folder:
                s.say(f"-rw-rw-rw- 1 shell shell {info['size']} 2026-11-30 12:00 "
                      f"{os.path.basename(path)}")
        return 0
    code = 0
    present = set(files) | set(dev.get("preinstalled", [])) | set(dev.get("system_libs", []))
    for path in args:
        if path in present:
            s.say(path)
        else:
            s.err.write(f"ls: {path}: No such file or directory\n")
            code = 1
    return code


def digest(s: Session, dev, files, tool, args) -> int:
    if tool == "sha256sum" and dev.get("lacks_sha256sum"):
        s.fail("/system/bin/sh: sha256sum: inaccessible or not found", 127)
    code = 0
    for path in args:
        info = files.get(path)
        if info is None or tool[:-3] not in info:
            s.err.write(f"{tool}: {path}: No such file or directory\n")
            code = 1
        else:
            s.say(f"{info[tool[:-3]]}  {path}")
    return code


def shell(s: Session, dev, words):
    files = s.state["files"].setdefault(dev["serial"], {})
    cmd, args = words[0], words[1:]
    if cmd == "getprop":
        props = dev.get("props", {})
        s.say(props.get(args[0], "") if args else
              "\n".join(f"[{k}]: [{v}]" for k, v in props.items()))
    elif cmd == "chmod":
        mode, path = args
        if path not in files:
            s.fail(f"chmod: {path}: No such file or directory")
        files[path]["mode"] = mode
    elif cmd == "ls":
        return ls(s, dev, files, args)
    elif cmd in ("sha256sum", "md5sum"):
        return digest(s, dev, files, cmd, args)
    elif cmd == "rm":
        for path in (a for a in args if not a.startswith("-")):
            files.pop(path, None)
    elif cmd == "mkdir":
        dirs = s.state["dirs"].setdefault(dev["serial"], [])
        dirs += [a.rstrip("/") for a in args if not a.startswith("-") and a not in dirs]
    elif cmd == "touch":
        for path in args:
            files[path] = {"size": 0, "mode": "644", "elf_machine": None}
    elif cmd == "command" and args[:1] == ["-v"]:
        hits = [p for p in dev.get("preinstalled", []) + list(files)
                if os.path.basename(p) == args[1]]
        if not hits:
            raise Exit(1)
        s.say(hits[0])
    elif cmd == "env":
        env = {}
        while args and "=" in args[0]:
            key, _, value = args.pop(0).partition("=")
            env[key] = value
        if args and os.path.basename(args[0]) == "benchmark_model":
            return run_benchmark(s, dev, files, args[0], args[1:], env)
        s.fail(f"env: {args[0] if args else ''}: No such file or directory", 127)
    elif os.path.basename(cmd) == "benchmark_model":
        return run_benchmark(s, dev, files, cmd, args)
    else:
        s.fail(f"/system/bin/sh: {cmd}: inaccessible or not found", 127)
    return 0


def sh_commands(line):
    """Split a command line the way the device's sh does: quotes, then ; && || | &."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    commands, words = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            commands.append(words)
            words = []
        else:
            words.append(token)
    commands.append(words)
    return [c for c in commands if c]


def dispatch(s: Session, argv) -> int:
    if argv[:1] in (["start-server"], ["devices"]):
        if argv[:1] == ["devices"]:
            list_devices(s, "-l" in argv)
        return 0
    serial = None
    if argv[:1] == ["-s"]:
        serial, argv = argv[1], argv[2:]
    dev = select(s, serial)
    s.serial = dev["serial"]
    check_online(s, dev)
    if argv[:1] == ["get-state"]:
        s.say(device_state(dev, s.state))
    elif argv[:1] == ["push"]:
        push(s, dev, argv[1], argv[2])
    elif argv[:1] == ["pull"]:
        pull(s, dev, argv[1], argv[2])
    elif argv[:1] == ["shell"]:
        # adb joins the words with spaces and the device's sh parses them again,
        # separators (; && || | &) included: each command runs in turn.
        code = 0
        for words in sh_commands(" ".join(argv[1:])):
            code = shell(s, dev, words) or 0
        return code
    else:
        s.fail(f"adb: unknown command {argv[0] if argv else ''}")
    return 0


def run(argv, scenario_path, *, merge: bool = False, exe: str = "adb"):
    """Emulate `adb ARGV`: (exit code, stdout, stderr); with `merge`, stderr is in stdout
    in the order written (as `2>&1`) and the third item is empty."""
    if argv[:1] == ["version"]:
        return 0, ("Android Debug Bridge version 1.0.41\nVersion 36.0.0-fake\n"
                   f"Installed as {exe}\n"), ""
    scenario_path = Path(scenario_path)
    with open(str(scenario_path) + ".log", "a") as log:
        log.write(json.dumps(list(argv)) + "\n")
    s = Session(scenario_path, merge)
    s.serial = None
    try:
        code = dispatch(s, list(argv))
    except Exit as done:
        code = done.code
    finally:
        s.save()
    return code, s.out.getvalue(), "" if merge else s.err.getvalue()
