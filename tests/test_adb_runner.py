"""The adb runner and `mai-sr push`, run against a fake `adb`.

The fake (tests/fake_adb/device_emulator.py) emulates the adb client (device listing,
getprop, push, shell with chmod/ls/rm/sha256sum and benchmark_model) from a JSON scenario;
its benchmark_model prints transcripts in the real format (sources in
tests/fake_adb/transcripts/SOURCES.md), so the runner code under test is exactly what runs
against a device. Most tests call it in-process, through `Adb._spawn`, the one place the
client starts a process; the `fake_process` tests run tests/fake_adb/adb as a real
executable found on PATH, end to end.
"""

import json
import os
import shlex
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mai_sr.cli import main
from mai_sr.device import adb as adb_module
from mai_sr.device import get_runner
from mai_sr.device.adb import AdbRunner, find_adb, push_model
from mai_sr.device.android import client as client_module
from mai_sr.device.base import schema_errors
from mai_sr.errors import MaiSrError

FAKE_ADB_DIR = Path(__file__).parent / "fake_adb"
sys.path.insert(0, str(FAKE_ADB_DIR))
import device_emulator  # noqa: E402

ARM64_PROPS = {"ro.product.model": "VS680 EVK", "ro.product.manufacturer": "Synaptics",
               "ro.board.platform": "vs680", "ro.build.version.sdk": "30",
               "ro.product.cpu.abi": "arm64-v8a",
               "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi"}
# What makes a fake binary one tool or the other: a flag name each real binary holds.
TOOL_MARKERS = {"classic": b"--use_nnapi", "litert": b"--dispatch_library_path", None: b""}


def elf_binary(path, machine, tool=None):
    """A file with a 64-bit little-endian ELF header for CPU `machine` (183 = AArch64), and
    `tool`'s flag name among its bytes (None: neither, so the device's default tool)."""
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HH", 2, machine)
    path.write_bytes(header + bytes(44) + TOOL_MARKERS[tool])
    return path


def device(serial, transcript="vs680_nnapi.txt", **extra):
    return {"serial": serial, "state": "device", "model": "VS680 EVK",
            "props": dict(ARM64_PROPS), "transcripts": {"": transcript}, **extra}


class FakeAdb:
    """The scenario, the fake adb on PATH, and (unless `process`) the in-process emulator
    behind `Adb._spawn`."""

    def __init__(self, tmp_path, monkeypatch, process=False):
        self.scenario = tmp_path / "scenario.json"
        monkeypatch.setenv("FAKE_ADB_SCENARIO", str(self.scenario))
        monkeypatch.setenv("PATH", f"{FAKE_ADB_DIR}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("ADB", raising=False)
        self.binary = elf_binary(tmp_path / "benchmark_model", 183)
        self.classic = elf_binary(tmp_path / "android_aarch64_benchmark_model", 183, "classic")
        self.litert = elf_binary(tmp_path / "litert_benchmark_model", 183, "litert")
        if not process:
            monkeypatch.setattr(client_module.Adb, "_spawn", staticmethod(self.spawn))

    def spawn(self, cmd, *, merge, timeout):
        code, out, err = device_emulator.run(cmd[1:], self.scenario, merge=merge, exe=cmd[0])
        return subprocess.CompletedProcess(cmd, code, out, err)

    def devices(self, *devices):
        self.scenario.write_text(json.dumps({"devices": list(devices)}))

    def raw_commands(self):
        """Every adb argv as the client received it."""
        log = Path(str(self.scenario) + ".log")
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def commands(self):
        """As raw_commands, with each `shell` line split into words as the device's sh does."""
        split = []
        for argv in self.raw_commands():
            if "shell" in argv:
                at = argv.index("shell") + 1
                argv = argv[:at] + [w for part in argv[at:] for w in shlex.split(part)]
            split.append(argv)
        return split

    def benchmark_command(self):
        """The last benchmark_model run's command line (not a --help probe), split into words."""
        return next(c for c in reversed(self.commands())
                    if any(w.endswith("benchmark_model") for w in c[3:4] + c[5:8])
                    and c[-1] != "--help")

    def pushes(self):
        return [c for c in self.raw_commands() if "push" in c]

    def files(self, serial):
        state = json.loads(Path(str(self.scenario) + ".state.json").read_text())
        return state["files"].get(serial, {})


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return FakeAdb(tmp_path, monkeypatch)


@pytest.fixture
def fake_process(tmp_path, monkeypatch):
    """The fake adb as a separate executable, for the end-to-end tests."""
    return FakeAdb(tmp_path, monkeypatch, process=True)


@pytest.fixture
def model(tmp_path):
    """A real TFLite file (the runner parses it before pushing): the shipped ABPN."""
    from mai_sr.pretrained import pretrained_path

    path = tmp_path / "abpn int8.tflite"
    path.write_bytes(pretrained_path("abpn", "fixed").read_bytes())
    return path


def test_finds_the_fake_adb_on_path(fake):
    assert find_adb() == str(FAKE_ADB_DIR / "adb")


@pytest.mark.slow  # ten adb processes: seconds on a loaded 2-core machine
def test_single_device_nnapi_run_pushes_chmods_and_parses(fake_process, model):
    fake = fake_process  # end to end: the fake adb is a separate executable
    fake.devices(device("VS680A"))
    runner = AdbRunner(benchmark_binary=str(fake.classic), nnapi_accelerator="synap-npu",
                       threads=2, min_runs=50, warmup_runs=1)
    result = runner.bench(model)
    assert result.runner == "adb" and result.model == str(model)
    assert result.avg_ms == pytest.approx(36.9073)  # vs680_nnapi.txt "Inference (avg): 36907.3"
    assert result.delegate["fully_delegated"] is True and result.delegate["accelerator"] == "synap-npu"
    assert result.device == {"serial": "VS680A", "model": "VS680 EVK", "manufacturer": "Synaptics",
                             "platform": "vs680", "sdk": 30, "abi": "arm64-v8a",
                             "abilist": "arm64-v8a,armeabi-v7a,armeabi",
                             "soc": "vs680", "soc_manufacturer": None,  # no ro.soc.model
                             "nnapi_accelerators": "synap-npu,nnapi-reference",
                             "benchmark_tool": "TFLite's classic benchmark_model"}
    remote = "/data/local/tmp/mai_sr_abpn_int8.tflite"  # the space is made safe for sh
    binary = "/data/local/tmp/benchmark_model"
    run = [binary, f"--graph={remote}", "--num_threads=2", "--num_runs=50", "--warmup_runs=1",
           "--use_nnapi=true", "--nnapi_accelerator_name=synap-npu",
           "--result_file_path=/data/local/tmp/mai_sr_result.pb"]
    assert fake.commands() == [
        ["devices", "-l"],
        ["-s", "VS680A", "shell", "getprop"],
        ["-s", "VS680A", "shell", "sha256sum", binary],   # not there yet: pushed
        ["-s", "VS680A", "push", str(fake.classic), binary],
        ["-s", "VS680A", "shell", "chmod", "755", binary],
        ["-s", "VS680A", "shell", binary, "--help"],      # which tool it is
        ["-s", "VS680A", "push", str(model), remote],
        ["-s", "VS680A", "shell", *run],
        # this transcript has no BenchmarkResult sidecar: no file, the text is parsed
        ["-s", "VS680A", "pull", "/data/local/tmp/mai_sr_result.pb", fake.commands()[-2][-1]],
        ["-s", "VS680A", "shell", "rm", "-f", remote, "/data/local/tmp/mai_sr_result.pb"],
    ]
    assert remote not in fake.files("VS680A")  # cleaned up; the binary stays for next time
    assert binary in fake.files("VS680A")
    # what ran is kept: the device command line, and the tool's output as printed
    assert result.command == " ".join(shlex.quote(w) for w in run)
    assert shlex.split(result.command) == run
    assert result.raw_output == (FAKE_ADB_DIR / "transcripts" / "vs680_nnapi.txt").read_text() \
        .replace("{graph}", remote)
    assert not schema_errors(result.to_dict())


@pytest.mark.parametrize("delegate, flags", [
    ("cpu", ["--use_xnnpack=false"]), ("xnnpack", ["--use_xnnpack=true"]),
    ("gpu", ["--use_gpu=true"]), ("nnapi", ["--use_nnapi=true"])])
def test_delegate_flags(fake, delegate, flags):
    runner = AdbRunner(delegate=delegate, min_seconds=2.5)
    assert runner.benchmark_flags("/m.tflite") == ["--graph=/m.tflite", "--min_secs=2.5"] + flags


def test_cpu_run_end_to_end(fake, model):
    fake.devices(device("P1", transcript="cpu_xnnpack.txt"))
    result = AdbRunner(benchmark_binary=str(fake.binary), delegate="cpu").bench(model)
    assert fake.benchmark_command()[-2] == "--use_xnnpack=false"
    assert result.avg_ms == pytest.approx(104.311) and result.median_ms == pytest.approx(104.046)
    assert not any("did not run" in n for n in result.notes)


def test_op_profiling_and_memory_flags_give_layers_and_peak(fake, model):
    dev = device("VS680A")
    dev["transcripts"]["--enable_op_profiling=true --report_peak_memory_footprint=true"] = \
        "vs680_nnapi_profile.txt"
    fake.devices(dev)
    # the profiled run left 1 of 12 nodes on the CPU: a mixed time, recorded only when asked
    with pytest.raises(MaiSrError, match=r"NNAPI delegate took 11 of 12 nodes"):
        AdbRunner(benchmark_binary=str(fake.binary), op_profiling=True,
                  report_memory=True).bench(model)
    result = AdbRunner(benchmark_binary=str(fake.binary), op_profiling=True,
                       report_memory=True, allow_fallback=True).bench(model)
    assert result.delegate["coverage"] == "partial" and result.delegate["timed_on"] == "mixed"
    assert fake.benchmark_command()[-3:-1] == ["--enable_op_profiling=true",
                                               "--report_peak_memory_footprint=true"]
    assert result.peak_memory_mb == pytest.approx(31.4375)
    assert [l["unit"] for l in result.layers] == ["NNAPI", "CPU", "NNAPI"]
    assert result.delegate["fully_delegated"] is False  # partial delegation reported
    assert not schema_errors(result.to_dict())


def test_refuses_a_binary_for_another_cpu_before_pushing(fake, model, tmp_path):
    fake.devices(device("VS680A"))
    x86 = elf_binary(tmp_path / "linux_x86-64_benchmark_model", 62)
    with pytest.raises(MaiSrError, match=r"built for x86_64, but device VS680A runs arm64-v8a"):
        AdbRunner(benchmark_binary=str(x86)).bench(model)
    assert not any("push" in c for c in fake.commands())


def test_accepts_32_bit_arm_binary_on_arm64_device(fake, model, tmp_path):
    fake.devices(device("VS680A"))
    arm32 = elf_binary(tmp_path / "android_arm_benchmark_model", 40)
    assert AdbRunner(benchmark_binary=str(arm32)).bench(model).avg_ms > 0


def test_refuses_a_non_elf_binary(fake, model, tmp_path):
    fake.devices(device("VS680A"))
    script = tmp_path / "benchmark_model.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(MaiSrError, match="not an ELF executable"):
        AdbRunner(benchmark_binary=str(script)).bench(model)


def test_missing_local_binary_file(fake, tmp_path):
    with pytest.raises(MaiSrError, match="--benchmark-binary .*nope: file not found"):
        AdbRunner(benchmark_binary=str(tmp_path / "nope"))


def test_binary_missing_on_device_says_how_to_get_one(fake, model):
    fake.devices(device("VS680A"))
    with pytest.raises(MaiSrError) as err:
        AdbRunner().bench(model)
    message = str(err.value)
    assert message.startswith("device VS680A has no TFLite's classic benchmark_model (not at "
                              "/data/local/tmp/benchmark_model nor on its PATH), which --delegate "
                              "nnapi needs: pass --benchmark-binary PATH with TFLite's classic")
    assert "android_aarch64_benchmark_model" in message and "\n" not in message
    assert not any(c[-1:] == ["/data/local/tmp/benchmark_model"] and "push" in c
                   for c in fake.commands())


def test_uses_a_preinstalled_benchmark_model(fake, model):
    # SyNAP board images ship /vendor/bin/benchmark_model (Synaptics SyNAP docs).
    fake.devices(device("VS680A", preinstalled=["/vendor/bin/benchmark_model"]))
    result = AdbRunner().bench(model)
    assert result.avg_ms == pytest.approx(36.9073)
    assert fake.benchmark_command()[3] == "/vendor/bin/benchmark_model"


def test_no_device(fake, model):
    fake.devices()
    with pytest.raises(MaiSrError, match="no Android device attached"):
        AdbRunner().bench(model)


def test_several_devices_without_serial(fake, model):
    fake.devices(device("A1"), device("B2"))
    with pytest.raises(MaiSrError, match=r"2 devices attached \(A1 \(device\), B2 \(device\)\): "
                                         r"pass --serial"):
        AdbRunner().bench(model)


def test_serial_selects_one_of_several_and_unknown_serial_fails(fake, model):
    fake.devices(device("A1", transcript="cpu_xnnpack.txt"), device("B2"))
    result = AdbRunner(serial="B2", benchmark_binary=str(fake.binary)).bench(model)
    assert result.device["serial"] == "B2" and result.avg_ms == pytest.approx(36.9073)
    with pytest.raises(MaiSrError, match="--serial C3: no such device attached"):
        AdbRunner(serial="C3").bench(model)


@pytest.mark.parametrize("state, message", [
    ("unauthorized", "is unauthorized: unlock it and accept the 'Allow USB debugging' prompt"),
    ("offline", "is offline: reconnect it")])
def test_unauthorized_and_offline_devices(fake, model, state, message):
    fake.devices(dict(device("Z9"), state=state))
    with pytest.raises(MaiSrError, match=message):
        AdbRunner(benchmark_binary=str(fake.binary)).bench(model)
    assert fake.commands() == [["devices", "-l"]]


def test_device_going_offline_mid_run(fake, model):
    # getprop, sha256sum, push binary, chmod, --help succeed; the model push finds the
    # device offline
    fake.devices(device("VS680A", offline_after=5))
    with pytest.raises(MaiSrError, match="device VS680A went offline during push of the model"):
        AdbRunner(benchmark_binary=str(fake.binary)).bench(model)


def test_nnapi_unavailable_is_an_error_or_a_cpu_time_when_allowed(fake, model):
    fake.devices(device("OLD1", transcript="nnapi_unsupported.txt"))
    with pytest.raises(MaiSrError, match=r"the NNAPI delegate took no node .*--allow-fallback"):
        AdbRunner(benchmark_binary=str(fake.binary)).bench(model)
    result = AdbRunner(benchmark_binary=str(fake.binary), allow_fallback=True).bench(model)
    assert result.avg_ms == pytest.approx(398.742)
    assert result.delegate["fully_delegated"] is False and result.delegate["delegated_nodes"] == 0
    assert result.delegate["coverage"] == "none" and result.delegate["timed_on"] == "CPU"
    assert any("NNAPI delegate did not run the graph" in n for n in result.notes)
    assert any(n.startswith("CPU time, not NNAPI") for n in result.notes)


def test_nnapi_accelerator_missing_is_an_error_quoting_the_tool(fake, model):
    dev = device("VS680A", transcript="nnapi_accelerator_missing.txt")
    dev["exit_codes"] = {"nnapi_accelerator_missing.txt": 1}
    fake.devices(dev)
    with pytest.raises(MaiSrError) as err:
        AdbRunner(benchmark_binary=str(fake.binary), nnapi_accelerator="synap-npu").bench(model)
    assert "exited with code 1" in str(err.value)
    assert "Could not find the specified NNAPI accelerator: synap-npu" in str(err.value)
    assert fake.commands()[-1][-4:] == ["rm", "-f", "/data/local/tmp/mai_sr_abpn_int8.tflite",
                                        "/data/local/tmp/mai_sr_result.pb"]


def test_partial_delegation_on_a_phone(fake, model):
    phone = device("PHONE1", transcript="phone_nnapi_partial.txt")
    phone["props"].update({"ro.product.model": "Pixel 3", "ro.build.version.sdk": "28"})
    fake.devices(phone)
    with pytest.raises(MaiSrError, match=r"the NNAPI delegate took 9 node\(s\) \(total not "
                                         r"printed\)"):
        AdbRunner(benchmark_binary=str(fake.binary), op_profiling=True).bench(model)
    result = AdbRunner(benchmark_binary=str(fake.binary), op_profiling=True,
                       allow_fallback=True).bench(model)
    assert result.delegate["timed_on"] == "mixed"
    assert result.device["model"] == "Pixel 3" and result.device["sdk"] == 28
    assert result.delegate["kernels"] == 2 and result.delegate["fully_delegated"] is False
    assert {l["op"] for l in result.layers if l["unit"] == "CPU"} == {"MINIMUM", "MAXIMUM"}


def test_device_farm_one_failing_does_not_stop_the_others(fake, model):
    fake.devices(device("FARM1"),
                 device("FARM2", offline_after=2),
                 dict(device("FARM3"), state="unauthorized"),
                 device("FARM4", transcript="phone_nnapi_partial.txt"))
    results = AdbRunner(serial="all", benchmark_binary=str(fake.binary)).bench(model)
    assert [r.device["serial"] for r in results] == ["FARM1", "FARM2", "FARM3", "FARM4"]
    assert results[0].error is None and results[0].avg_ms == pytest.approx(36.9073)
    assert "went offline" in results[1].error
    assert "unauthorized" in results[2].error
    # a partial NNAPI run is that device's error, not a result
    assert "the NNAPI run fell back" in results[3].error and results[3].avg_ms != results[3].avg_ms
    payload = [r.to_dict() for r in results]
    assert payload[1]["avg_ms"] is None and not schema_errors(payload)


def test_farm_via_cli_json_validates_and_exit_code_reports_failure(fake, model, capsys):
    fake.devices(device("FARM1"), dict(device("FARM2"), state="offline"))
    code = main(["bench", str(model), "--runner", "adb", "--serial", "all",
                 "--benchmark-binary", str(fake.binary), "--json"])
    payload = json.loads(capsys.readouterr().out)
    assert code == 1 and len(payload) == 2 and not schema_errors(payload)
    assert payload[0]["error"] is None and "offline" in payload[1]["error"]


def test_bench_cli_human_output(fake, model, capsys):
    fake.devices(device("VS680A"))
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary",
                 str(fake.binary)]) == 0
    out = capsys.readouterr().out
    assert "inference (avg): 36.91 ms" in out and "VS680A" in out and "fully delegated" in out


def test_get_runner_builds_adb_runner_from_cli_vocabulary(fake):
    runner = get_runner("adb", threads=4, min_runs=10, warmup_runs=2, delegate="cpu",
                        shape=(10, 10))  # shape is the local runner's: dropped
    assert runner.benchmark_flags("/m.tflite") == [
        "--graph=/m.tflite", "--num_threads=4", "--num_runs=10", "--warmup_runs=2",
        "--use_xnnpack=false"]


@pytest.mark.parametrize("value", ["npu;touch /data/pwned", "synap-npu --use_gpu=true",
                                   "npu$(touch /data/pwned)", "npu`id`", "npu|sh", ""])
def test_accelerator_values_that_are_not_device_names_are_refused(fake, model, value, capsys):
    fake.devices(device("VS680A"))
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary", str(fake.binary),
                 "--nnapi-accelerator", value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mai-sr bench: error: --nnapi-accelerator") and err.count("\n") == 1
    assert not any("shell" in c for c in fake.commands())


@pytest.mark.parametrize("word", ["npu;touch /data/pwned", "a && touch /data/pwned",
                                  "x | touch /data/pwned", "$(touch /data/pwned)",
                                  "it's; touch /data/pwned"])
def test_every_shell_word_reaches_the_device_as_one_literal_word(fake_process, word):
    """Adb.run quotes: the fake device (a separate process, as adb is) parses the line with
    sh's rules (; && | $()) and `touch` really creates files there, so an unquoted word
    would create /data/pwned."""
    fake = fake_process
    fake.devices(device("VS680A"))
    client = adb_module.Adb()
    client.run("shell", "touch", "/data/ok", word, serial="VS680A")
    files = fake.files("VS680A")
    assert "/data/pwned" not in files and "/data/ok" in files and word in files
    assert fake.commands()[-1] == ["-s", "VS680A", "shell", "touch", "/data/ok", word]


def test_a_local_path_with_a_leading_dash_is_not_an_adb_option(fake, model, tmp_path,
                                                               monkeypatch):
    fake.devices(device("VS680A"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-s.tflite").write_bytes(model.read_bytes())
    runner = AdbRunner(benchmark_binary=str(fake.binary))
    runner.bench("-s.tflite")
    pushes = [c for c in fake.raw_commands() if "push" in c]
    assert pushes[-1][3] == str(tmp_path / "-s.tflite")  # absolute, so never an option
    assert not any(c[c.index("push") + 1].startswith("-") for c in pushes)


def test_accelerator_needs_nnapi(fake):
    with pytest.raises(MaiSrError, match="--nnapi-accelerator needs --delegate nnapi"):
        AdbRunner(delegate="gpu", nnapi_accelerator="synap-npu")


# ---------------------------------------------------------------- push


def test_push_copies_to_ai_benchmark_slot_and_prints_steps(fake, model, capsys):
    fake.devices(device("VS680A"))
    assert main(["push", str(model)]) == 0
    out = capsys.readouterr().out
    assert f"pushed {model} -> VS680A:/sdcard/Download/model.tflite" in out
    assert "PRO Mode" in out and "Custom Model" in out and "INT8" in out
    assert fake.commands()[-1] == ["-s", "VS680A", "push", str(model),
                                   "/sdcard/Download/model.tflite"]
    assert fake.files("VS680A")["/sdcard/Download/model.tflite"]["size"] == model.stat().st_size


def test_push_pretrained_sends_the_shipped_fixed_shape_file(fake, capsys):
    from mai_sr.pretrained import pretrained_path

    shipped = pretrained_path("scsrn", "fixed")
    fake.devices(device("VS680A"))
    assert main(["push", "--pretrained", "scsrn"]) == 0
    assert fake.commands()[-1] == ["-s", "VS680A", "push", str(shipped),
                                   "/sdcard/Download/model.tflite"]
    assert fake.files("VS680A")["/sdcard/Download/model.tflite"]["size"] == shipped.stat().st_size


def test_push_to_all_devices(fake, model):
    fake.devices(device("A1"), device("B2"))
    assert push_model(model, serial="all") == ["A1", "B2"]


def test_push_unauthorized_is_one_line_exit_2(fake, model, capsys):
    fake.devices(dict(device("Z9"), state="unauthorized"))
    assert main(["push", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mai-sr push: error: device Z9 is unauthorized") and err.count("\n") == 1


def test_push_rejects_a_non_tflite_file(fake, tmp_path, capsys):
    fake.devices(device("A1"))
    bogus = tmp_path / "model.tflite"
    bogus.write_text("not a model")
    assert main(["push", str(bogus)]) == 2
    assert "not a TFLite model" in capsys.readouterr().err
    assert fake.commands() == []


# ---------------------------------------------------------------- no adb


def test_missing_adb_is_a_one_line_error_saying_how_to_get_it(tmp_path, monkeypatch, model):
    monkeypatch.setenv("PATH", str(tmp_path))  # no adb on PATH
    monkeypatch.delenv("ADB", raising=False)
    monkeypatch.setattr(client_module, "_bundled_adb", lambda: None)  # nor from adbutils
    with pytest.raises(MaiSrError) as err:
        AdbRunner().bench(model)
    message = str(err.value)
    assert message.startswith("no adb found") and "apt install adb" in message
    assert "mai-sr[adb]" in message and "\n" not in message


def test_bad_adb_option_and_env_via_cli(tmp_path, monkeypatch, model, capsys):
    assert main(["bench", str(model), "--runner", "adb", "--adb", str(tmp_path / "adb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mai-sr bench: error: --adb {tmp_path / 'adb'}: no such executable")
    monkeypatch.setenv("ADB", str(tmp_path / "nope"))
    assert main(["push", str(model)]) == 2
    assert "$ADB" in capsys.readouterr().err


def test_bundled_adb_of_adbutils_is_found():
    pytest.importorskip("adbutils")
    bundled = client_module._bundled_adb()
    assert bundled is not None and Path(bundled).name == "adb" and os.access(bundled, os.X_OK)
    assert "adbutils" in Path(bundled).parts


# ---------------------------------------------------------------- NPU (CompiledModel) and QNN

PHONE_PROPS = {"ro.product.model": "Galaxy S24", "ro.product.manufacturer": "samsung",
               "ro.board.platform": "pineapple", "ro.soc.manufacturer": "QTI",
               "ro.soc.model": "SM8650", "ro.build.version.sdk": "35",
               "ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a"}
NPU_LIBS = ["libLiteRtDispatch_Qualcomm.so", "libQnnHtp.so", "libQnnSystem.so",
            "libQnnHtpPrepare.so", "libQnnHtpV75Stub.so", "libQnnHtpV75Skel.so"]


def phone(serial="S24", transcript="litert_npu_aot.txt", tool="litert", **extra):
    """A Snapdragon 8 Gen 3 (SM8650, Hexagon v75) phone on Android 15."""
    return {"serial": serial, "state": "device", "model": "Galaxy S24",
            "props": dict(PHONE_PROPS), "transcripts": {"": transcript}, "tool": tool,
            "hexagon": "75", **extra}


MEDIATEK_PROPS = {"ro.product.model": "Galaxy Tab S10+", "ro.product.manufacturer": "samsung",
                  "ro.board.platform": "mt6989", "ro.soc.manufacturer": "Mediatek",
                  "ro.soc.model": "MT6989", "ro.build.version.sdk": "35",
                  "ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a"}
MEDIATEK_LIBS = ["libLiteRtDispatch_MediaTek.so", "libneuronusdk_adapter.mtk.so"]


def mediatek_phone(serial="MTK1", transcript="mediatek_npu_aot.txt", **extra):
    """A Dimensity 9300+ (MT6989) tablet on Android 15, LiteRT's tool installed by tests."""
    return {"serial": serial, "state": "device", "model": "Galaxy Tab S10+",
            "props": dict(MEDIATEK_PROPS), "transcripts": {"": transcript}, "tool": "litert",
            **extra}


def library_folder(path, names):
    path.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (path / name).write_bytes(b"\x7fELF" + bytes(16 + i))
    return path


@pytest.fixture
def npu_libs(tmp_path):
    return library_folder(tmp_path / "npu_libs", NPU_LIBS)


def qairt_sdk(root, hexagon_versions=("75",), android=None):
    """The QAIRT SDK layout: lib/aarch64-android and lib/hexagon-vNN/unsigned."""
    names = android or ["libQnnTFLiteDelegate.so", "libQnnHtp.so", "libQnnHtpPrepare.so",
                        "libQnnSystem.so", "libQnnGpu.so"] + [
        f"libQnnHtpV{v}Stub.so" for v in hexagon_versions]
    library_folder(root / "lib" / "aarch64-android", names)
    for v in hexagon_versions:
        library_folder(root / "lib" / f"hexagon-v{v}" / "unsigned", [f"libQnnHtpV{v}Skel.so"])
    return root
