"""The adb client and what it tells about devices: discovery, readiness, system properties.

Drives a real `adb` client: `--adb PATH`, else $ADB, else `adb` on PATH, else the one the
`adbutils` package bundles (`pip install mai-sr[adb]`). Every call is one `adb ...` process
(:meth:`Adb._spawn`), so a device farm, an emulator and the tests' fake adb look the same.
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

from mai_sr.device.benchmark_output import output_tail
from mai_sr.errors import MaiSrError

HOW_TO_GET_ADB = ("install Android platform-tools (Debian/Ubuntu: `apt install adb`) or "
                  "`pip install mai-sr[adb]` (adbutils bundles adb), or pass --adb PATH")


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
            args = ["shell", self.shell_line(args[1:])]
        elif args[:1] == ["push"]:
            args = ["push"] + [os.path.abspath(a) for a in args[1:-1]] + args[-1:]
        cmd = [self.exe] + (["-s", serial] if serial else []) + args
        try:
            return self._spawn(cmd, merge=merge, timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            raise MaiSrError(f"`adb {' '.join(cmd[1:])}` timed out after "
                             f"{timeout or self.timeout:.0f} s") from None
        except OSError as exc:
            raise MaiSrError(f"cannot run adb ({self.exe}): {exc.strerror}") from None

    @staticmethod
    def shell_line(words) -> str:
        """The command line the device's sh runs for `adb shell WORDS`: each word quoted."""
        return " ".join(shlex.quote(str(word)) for word in words)

    @staticmethod
    def _spawn(cmd: list[str], *, merge: bool, timeout: float) -> subprocess.CompletedProcess:
        """One adb process (the seam the tests' in-process fake adb replaces)."""
        return subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT if merge else subprocess.PIPE,
                              text=True, errors="replace", timeout=timeout)

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


def add_device_options(group) -> None:
    """--adb and --serial: how `mai-sr bench --runner adb` and `mai-sr push` find devices."""
    group.add_argument("--adb", metavar="PATH",
                       help="adb executable (default: $ADB, PATH, or adbutils' bundled adb)")
    group.add_argument("--serial", help="device serial; 'all' benchmarks every attached device")
