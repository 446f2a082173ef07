"""The adb runner and `mai-sr push`, run for real against a fake `adb` executable.

tests/fake_adb/adb is put first on PATH and emulates the adb client (device listing,
getprop, push, shell with chmod/ls/rm and benchmark_model) from a JSON scenario; its
benchmark_model prints transcripts in the real format (sources in
tests/fake_adb/transcripts/SOURCES.md), so the runner code under test is exactly what runs
against a device.
"""

import json
import os
import shlex
import struct
from pathlib import Path

import pytest

from mai_sr.cli import main
from mai_sr.device import adb as adb_module
from mai_sr.device import get_runner
from mai_sr.device.adb import AdbRunner, find_adb, push_model
from mai_sr.device.base import schema_errors
from mai_sr.errors import MaiSrError

FAKE_ADB_DIR = Path(__file__).parent / "fake_adb"
ARM64_PROPS = {"ro.product.model": "VS680 EVK", "ro.product.manufacturer": "Synaptics",
               "ro.board.platform": "vs680", "ro.build.version.sdk": "30",
               "ro.product.cpu.abi": "arm64-v8a",
               "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi"}


def elf_binary(path, machine):
    """A file with a 64-bit little-endian ELF header for CPU `machine` (183 = AArch64)."""
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8) + struct.pack("<HH", 2, machine)
    path.write_bytes(header + bytes(44))
    return path


def device(serial, transcript="vs680_nnapi.txt", **extra):
    return {"serial": serial, "state": "device", "model": "VS680 EVK",
            "props": dict(ARM64_PROPS), "transcripts": {"": transcript}, **extra}


class FakeAdb:
    def __init__(self, tmp_path, monkeypatch):
        self.scenario = tmp_path / "scenario.json"
        monkeypatch.setenv("FAKE_ADB_SCENARIO", str(self.scenario))
        monkeypatch.setenv("PATH", f"{FAKE_ADB_DIR}{os.pathsep}{os.environ['PATH']}")
        monkeypatch.delenv("ADB", raising=False)
        self.binary = elf_binary(tmp_path / "benchmark_model", 183)

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

    def files(self, serial):
        state = json.loads(Path(str(self.scenario) + ".state.json").read_text())
        return state["files"].get(serial, {})


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return FakeAdb(tmp_path, monkeypatch)


@pytest.fixture
def model(tmp_path):
    """The runner only pushes the file, so any valid-looking TFLite flatbuffer will do."""
    path = tmp_path / "abpn int8.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    return path


def test_finds_the_fake_adb_on_path(fake):
    assert find_adb() == str(FAKE_ADB_DIR / "adb")


def test_single_device_nnapi_run_pushes_chmods_and_parses(fake, model):
    fake.devices(device("VS680A"))
    runner = AdbRunner(benchmark_binary=str(fake.binary), nnapi_accelerator="synap-npu",
                       threads=2, min_runs=50, warmup_runs=1)
    result = runner.bench(model)
    assert result.runner == "adb" and result.model == str(model)
    assert result.avg_ms == pytest.approx(36.9073)  # vs680_nnapi.txt "Inference (avg): 36907.3"
    assert result.delegate["fully_delegated"] is True and result.delegate["accelerator"] == "synap-npu"
    assert result.device == {"serial": "VS680A", "model": "VS680 EVK", "manufacturer": "Synaptics",
                             "platform": "vs680", "sdk": 30, "abi": "arm64-v8a",
                             "abilist": "arm64-v8a,armeabi-v7a,armeabi"}
    remote = "/data/local/tmp/mai_sr_abpn_int8.tflite"  # the space is made safe for sh
    assert fake.commands() == [
        ["devices", "-l"],
        ["-s", "VS680A", "shell", "getprop"],
        ["-s", "VS680A", "push", str(fake.binary), "/data/local/tmp/benchmark_model"],
        ["-s", "VS680A", "shell", "chmod", "755", "/data/local/tmp/benchmark_model"],
        ["-s", "VS680A", "push", str(model), remote],
        ["-s", "VS680A", "shell", "/data/local/tmp/benchmark_model", f"--graph={remote}",
         "--num_threads=2", "--num_runs=50", "--warmup_runs=1", "--use_nnapi=true",
         "--nnapi_accelerator_name=synap-npu"],
        ["-s", "VS680A", "shell", "rm", "-f", remote],
    ]
    assert remote not in fake.files("VS680A")  # cleaned up; the binary stays for next time
    assert "/data/local/tmp/benchmark_model" in fake.files("VS680A")


@pytest.mark.parametrize("delegate, flags", [
    ("cpu", ["--use_xnnpack=false"]), ("xnnpack", ["--use_xnnpack=true"]),
    ("gpu", ["--use_gpu=true"]), ("nnapi", ["--use_nnapi=true"])])
def test_delegate_flags(fake, delegate, flags):
    runner = AdbRunner(delegate=delegate, min_seconds=2.5)
    assert runner.benchmark_flags("/m.tflite") == ["--graph=/m.tflite", "--min_secs=2.5"] + flags


def test_cpu_run_end_to_end(fake, model):
    fake.devices(device("P1", transcript="cpu_xnnpack.txt"))
    result = AdbRunner(benchmark_binary=str(fake.binary), delegate="cpu").bench(model)
    assert fake.commands()[-2][-1] == "--use_xnnpack=false"
    assert result.avg_ms == pytest.approx(104.311) and result.median_ms == pytest.approx(104.046)
    assert not any("did not run" in n for n in result.notes)


def test_op_profiling_and_memory_flags_give_layers_and_peak(fake, model):
    dev = device("VS680A")
    dev["transcripts"]["--enable_op_profiling=true --report_peak_memory_footprint=true"] = \
        "vs680_nnapi_profile.txt"
    fake.devices(dev)
    result = AdbRunner(benchmark_binary=str(fake.binary), op_profiling=True,
                       report_memory=True).bench(model)
    assert fake.commands()[-2][-2:] == ["--enable_op_profiling=true",
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
    assert "has no benchmark_model" in str(err.value) and "--benchmark-binary" in str(err.value)
    assert not any(c[-1:] == ["/data/local/tmp/benchmark_model"] and "push" in c
                   for c in fake.commands())


def test_uses_a_preinstalled_benchmark_model(fake, model):
    # SyNAP board images ship /vendor/bin/benchmark_model (Synaptics SyNAP docs).
    fake.devices(device("VS680A", preinstalled=["/vendor/bin/benchmark_model"]))
    result = AdbRunner().bench(model)
    assert result.avg_ms == pytest.approx(36.9073)
    assert fake.commands()[-2][3] == "/vendor/bin/benchmark_model"


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
    # getprop, push binary, chmod succeed; the model push finds the device offline
    fake.devices(device("VS680A", offline_after=3))
    with pytest.raises(MaiSrError, match="device VS680A went offline during push of the model"):
        AdbRunner(benchmark_binary=str(fake.binary)).bench(model)


def test_nnapi_unavailable_falls_back_to_cpu_with_a_note(fake, model):
    fake.devices(device("OLD1", transcript="nnapi_unsupported.txt"))
    result = AdbRunner(benchmark_binary=str(fake.binary)).bench(model)
    assert result.avg_ms == pytest.approx(398.742)
    assert result.delegate["fully_delegated"] is False and result.delegate["delegated_nodes"] == 0
    assert any("NNAPI delegate did not run the graph" in n for n in result.notes)


def test_nnapi_accelerator_missing_is_an_error_quoting_the_tool(fake, model):
    dev = device("VS680A", transcript="nnapi_accelerator_missing.txt")
    dev["exit_codes"] = {"nnapi_accelerator_missing.txt": 1}
    fake.devices(dev)
    with pytest.raises(MaiSrError) as err:
        AdbRunner(benchmark_binary=str(fake.binary), nnapi_accelerator="synap-npu").bench(model)
    assert "exited with code 1" in str(err.value)
    assert "Could not find the specified NNAPI accelerator: synap-npu" in str(err.value)
    assert fake.commands()[-1][-3:] == ["rm", "-f", "/data/local/tmp/mai_sr_abpn_int8.tflite"]


def test_partial_delegation_on_a_phone(fake, model):
    phone = device("PHONE1", transcript="phone_nnapi_partial.txt")
    phone["props"].update({"ro.product.model": "Pixel 3", "ro.build.version.sdk": "28"})
    fake.devices(phone)
    result = AdbRunner(benchmark_binary=str(fake.binary), op_profiling=True).bench(model)
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
    assert results[3].error is None and results[3].avg_ms == pytest.approx(49.6027)
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
def test_every_shell_word_reaches_the_device_as_one_literal_word(fake, word):
    """Adb.run quotes: the fake device parses the line with sh's rules (; && | $()) and
    `touch` really creates files there, so an unquoted word would create /data/pwned."""
    fake.devices(device("VS680A"))
    client = adb_module.Adb()
    client.run("shell", "touch", "/data/ok", word, serial="VS680A")
    files = fake.files("VS680A")
    assert "/data/pwned" not in files and "/data/ok" in files and word in files
    assert fake.commands()[-1] == ["-s", "VS680A", "shell", "touch", "/data/ok", word]


def test_a_local_path_with_a_leading_dash_is_not_an_adb_option(fake, tmp_path, monkeypatch):
    fake.devices(device("VS680A"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-s.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
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
    monkeypatch.setattr(adb_module, "_bundled_adb", lambda: None)  # nor from adbutils
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
    bundled = adb_module._bundled_adb()
    assert bundled is not None and Path(bundled).name == "adb" and os.access(bundled, os.X_OK)
    assert "adbutils" in Path(bundled).parts
