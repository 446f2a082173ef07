"""The two `benchmark_model`s: which one a binary is, where each lives on the device, and
what to say when the right one is missing.

Google ships two tools under one name. TFLite's classic `benchmark_model`
(tensorflow/lite/tools/benchmark) runs the interpreter with NNAPI, GPU, XNNPACK or an
external delegate (Qualcomm's QNN); LiteRT's CompiledModel `benchmark_model`
(google-ai-edge/LiteRT, litert/tools/benchmark_litert_model.h) runs the CompiledModel API
with `--use_npu` and a vendor dispatch library. Neither refuses a flag it does not know, so
the wrong one "runs" and times the CPU. A binary is therefore told apart by what it says,
never by its name: both print their flag table for `--help` (`BenchmarkModel::ParseFlags`
logs `Flags::Usage`, tensorflow/lite/tools/command_line_flags.cc: "usage: PATH <flags>",
"Flags:", then one "\t--name=default\ttype\toptional\thelp" line per flag), and only
LiteRT's lists `--use_npu` and `--dispatch_library_path`, only the classic one its
delegate providers' `--use_nnapi`, `--use_xnnpack` and `--external_delegate_path`.

Each tool has its own device path, so a run of one never reuses the other's binary; a
binary is pushed again only when the device copy's hash differs from the local file's.
"""

from __future__ import annotations

import re
from pathlib import Path

from mai_sr.device.android.client import Adb, device_error
from mai_sr.device.android.libraries import file_digest, parse_hash_lines
from mai_sr.device.benchmark_output import output_tail
from mai_sr.errors import MaiSrError

CLASSIC, LITERT = "classic", "litert"
TOOL_NAMES = {CLASSIC: "TFLite's classic benchmark_model",
              LITERT: "LiteRT's CompiledModel benchmark_model"}
REMOTE_DIR = "/data/local/tmp"
# The classic tool keeps the path every TFLite guide uses; LiteRT's gets a folder of its own.
REMOTE_BINARIES = {CLASSIC: f"{REMOTE_DIR}/benchmark_model",
                   LITERT: f"{REMOTE_DIR}/mai_sr_litert/benchmark_model"}
# Flags only one tool's --help lists (see the module docstring).
TOOL_FLAGS = {LITERT: ("use_npu", "dispatch_library_path"),
              CLASSIC: ("use_nnapi", "use_xnnpack", "external_delegate_path")}
# LiteRT's prebuilt Android binaries, the folder LiteRT-CLI's `litert benchmark --android`
# downloads from (google-ai-edge/LiteRT-CLI, litert_cli/core/constants.py
# LITERT_BINARIES_BASE_URL_ANDROID); VERSION is an ai-edge-litert release or "latest".
LITERT_PREBUILT_URL = "https://storage.googleapis.com/litert/binaries/VERSION/android_arm64/"
HOW_TO_GET = {
    LITERT: (f"LiteRT's prebuilt Android binary ({LITERT_PREBUILT_URL}benchmark_model, VERSION "
             "an ai-edge-litert release such as 2.1.4, or latest), or build it in a "
             "google-ai-edge/LiteRT checkout with bazel build -c opt --config=android_arm64 "
             "//litert/tools:benchmark_model"),
    CLASSIC: ("TFLite's classic benchmark_model built for the device (bazel build -c opt "
              "--config=android_arm64 //tensorflow/lite/tools/benchmark:benchmark_model, or "
              "the nightly prebuilt android_aarch64_benchmark_model linked from LiteRT's "
              "performance-measurement page)"),
}
# ELF e_machine values (System V ABI) of the binaries each Android ABI can execute.
ELF_MACHINE_NAMES = {3: "x86", 40: "32-bit ARM", 62: "x86_64", 183: "arm64 (AArch64)"}
ABI_MACHINES = {"arm64-v8a": 183, "armeabi-v7a": 40, "armeabi": 40, "x86_64": 62, "x86": 3}
_USAGE_FLAG = re.compile(r"^\s*--([a-z][a-z0-9_]*)=", re.M)


def tool_for(delegate: str) -> str:
    """The tool a `--delegate` needs: LiteRT's for npu, the classic one for the rest."""
    return LITERT if delegate == "npu" else CLASSIC


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


def identify_tool(help_text: str) -> str | None:
    """CLASSIC, LITERT or None, from a binary's `--help` flag table."""
    flags = set(_USAGE_FLAG.findall(help_text))
    if any(f in flags for f in TOOL_FLAGS[LITERT]):
        return LITERT
    if any(f in flags for f in TOOL_FLAGS[CLASSIC]):
        return CLASSIC
    return None


def probe_tool(adb: Adb, serial: str, remote: str) -> str:
    """Run `REMOTE --help` on the device and say which tool it is; a one-line error when it
    is neither (not executable there, or some other program)."""
    proc = adb.run("shell", remote, "--help", serial=serial)
    if re.search(r"^adb: .*(offline|unauthorized)", proc.stdout, flags=re.M):
        raise device_error(serial, f"the {remote} --help probe", proc.stdout)
    kind = identify_tool(proc.stdout)
    if kind is None:
        raise MaiSrError(f"device {serial}: {remote} is not a benchmark_model: its --help lists "
                         f"neither --use_npu nor --use_nnapi/--use_xnnpack "
                         f"({output_tail(proc.stdout, 2) or 'no output'})")
    return kind


def mismatch_error(serial: str, where: str, found: str, needed: str, delegate: str) -> MaiSrError:
    """One line naming the tool found and the one `--delegate` needs."""
    return MaiSrError(f"device {serial}: {where} is {TOOL_NAMES[found]}, but --delegate {delegate} "
                      f"needs {TOOL_NAMES[needed]}: pass --benchmark-binary PATH with "
                      f"{HOW_TO_GET[needed]}")


def missing_error(serial: str, needed: str, delegate: str) -> MaiSrError:
    """One line naming the tool `--delegate` needs and where it comes from."""
    return MaiSrError(f"device {serial} has no {TOOL_NAMES[needed]} (not at "
                      f"{REMOTE_BINARIES[needed]} nor on its PATH), which --delegate {delegate} "
                      f"needs: pass --benchmark-binary PATH with {HOW_TO_GET[needed]}")


def remote_digests(adb: Adb, serial: str, paths: list[str]) -> tuple[str, dict[str, str]]:
    """(algorithm, {device path: hex digest}) of the files that exist: toybox's `sha256sum`,
    or `md5sum` on a device without it. Missing files are simply absent from the dict."""
    for algorithm in ("sha256", "md5"):
        proc = adb.run("shell", f"{algorithm}sum", *paths, serial=serial)
        if "inaccessible or not found" in proc.stdout and proc.returncode == 127:
            continue  # no such tool on this device: try the next
        if re.search(r"^adb: .*(offline|unauthorized)", proc.stdout, flags=re.M):
            raise device_error(serial, f"{algorithm}sum", proc.stdout)
        return algorithm, parse_hash_lines(proc.stdout)
    return "", {}


def push_if_changed(adb: Adb, serial: str, pairs: list[tuple[Path, str]], what: str) -> list[str]:
    """Push each (local file, device path) whose device copy is missing or differs by hash;
    returns the device paths pushed (empty on a second run with the same files)."""
    algorithm, on_device = remote_digests(adb, serial, [remote for _, remote in pairs])
    pushed = []
    for local, remote in pairs:
        if algorithm and on_device.get(remote) == file_digest(local, algorithm):
            continue
        adb.check("push", str(local), remote, serial=serial, action=f"push of {what or local.name}")
        pushed.append(remote)
    return pushed
