"""The adb runner's NPU paths against the fake adb: LiteRT's CompiledModel tool with a
vendor dispatch library (Qualcomm, MediaTek), its compilation cache, Qualcomm's QNN delegate
through the classic tool, and `mai-sr report` reaching the same options. The fake adb and
the device descriptions are test_adb_runner's.
"""

import json
import re

import pytest

from mai_sr.cli import main
from mai_sr.device import adb as adb_module
from mai_sr.device.adb import AdbRunner
from mai_sr.device.base import schema_errors
from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult
from test_adb_runner import (MEDIATEK_LIBS, NPU_LIBS, device, elf_binary,  # noqa: F401
                             device_emulator, fake, library_folder, mediatek_phone, model,
                             npu_libs, phone, qairt_sdk)


def test_npu_aot_model_full_delegation_reads_the_result_block_and_proto(fake, model, npu_libs):
    fake.devices(phone())
    result = AdbRunner(benchmark_binary=str(fake.binary), delegate="npu",
                       npu_libs=str(npu_libs),
                       npu_options=["qualcomm_htp_performance_mode=burst"]).bench(model)
    # litert_npu_aot.result.json (the proto) gives 3.40876 ms; the text block prints 3.41
    assert result.avg_ms == pytest.approx(3.40876, abs=1e-5)
    assert result.avg_ms == pytest.approx(3.41, abs=0.005)
    assert result.count == 294 and result.median_ms == pytest.approx(3.3921, abs=1e-5)
    assert result.delegate["name"] == "NPU" and result.delegate["placement"] == "NPU 1, CPU 0"
    assert result.delegate["fully_delegated"] is True
    assert result.device["soc"] == "SM8650" and result.device["hexagon_version"] == "75"
    assert any("from the BenchmarkResult proto" in n for n in result.notes)
    run = fake.benchmark_command()
    assert run[3:6] == ["env", "LD_LIBRARY_PATH=/data/local/tmp/mai_sr_npu",
                        "ADSP_LIBRARY_PATH=/data/local/tmp/mai_sr_npu"]
    assert run[6:] == ["/data/local/tmp/mai_sr_litert/benchmark_model",  # LiteRT's own path
                       "--graph=/data/local/tmp/mai_sr_abpn_int8.tflite", "--use_npu=true",
                       "--dispatch_library_path=/data/local/tmp/mai_sr_npu",
                       "--qualcomm_htp_performance_mode=burst",
                       "--result_file_path=/data/local/tmp/mai_sr_result.pb"]
    # no compiler plugin in the folder: no --compiler_plugin_library_path (AOT runs as is)
    assert not any("compiler_plugin" in w for w in run)
    assert sorted(p.split("/")[-1] for p in fake.files("S24")
                  if p.startswith("/data/local/tmp/mai_sr_npu/")) == sorted(NPU_LIBS)
    assert not schema_errors(result.to_dict())


def test_npu_cli_prints_the_results_block_average(fake, model, npu_libs, capsys):
    # LiteRT's binary from an earlier run is on the device; no --benchmark-binary
    fake.devices(phone(preinstalled=["/data/local/tmp/mai_sr_litert/benchmark_model"]))
    assert main(["bench", str(model), "--runner", "adb", "--delegate", "npu",
                 "--npu-libs", str(npu_libs)]) == 0
    out = capsys.readouterr().out
    assert "inference (avg): 3.41 ms" in out  # "Inference (avg): 3.41 ms (294 runs)"
    assert "note: nodes per unit: NPU 1, CPU 0" in out


def test_npu_libraries_are_pushed_once_and_reused(fake, model, npu_libs):
    fake.devices(phone())
    runner = AdbRunner(benchmark_binary=str(fake.binary), delegate="npu", npu_libs=str(npu_libs))
    runner.bench(model)
    first = [c for c in fake.pushes() if "mai_sr_npu" in c[-1]]
    runner.bench(model)
    assert len(first) == len(NPU_LIBS)
    assert [c for c in fake.pushes() if "mai_sr_npu" in c[-1]] == first  # nothing new
    # a changed library (same size, other bytes: the hash differs) is pushed again, alone
    old = (npu_libs / "libQnnHtp.so").read_bytes()
    (npu_libs / "libQnnHtp.so").write_bytes(old[:-1] + b"\x01")
    runner.bench(model)
    again = [c for c in fake.pushes() if "mai_sr_npu" in c[-1]][len(first):]
    assert [c[-1] for c in again] == ["/data/local/tmp/mai_sr_npu/libQnnHtp.so"]


def test_npu_compiler_plugin_enables_on_device_compilation(fake, model, tmp_path):
    libs = library_folder(tmp_path / "jit", NPU_LIBS + ["libLiteRtCompilerPlugin_Qualcomm.so"])
    fake.devices(phone(transcript="litert_npu_aot.txt"))
    AdbRunner(benchmark_binary=str(fake.binary), delegate="npu", npu_libs=str(libs)).bench(model)
    assert ("--compiler_plugin_library_path=/data/local/tmp/mai_sr_npu"
            in fake.benchmark_command())


def test_npu_partial_delegation_is_an_error_by_default(fake, model, npu_libs, capsys):
    fake.devices(phone(transcript="litert_npu_jit_partial.txt"))
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary",
                 str(fake.binary), "--delegate", "npu", "--npu-libs", str(npu_libs)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the NPU run fell back" in err
    assert "Replacing 3 out of 4 node(s) with delegate (TfLiteXNNPackDelegate)" in err
    assert "NPU 1, CPU (XNNPACK) 3, CPU 0" in err


def test_npu_partial_delegation_with_allow_fallback_says_where_nodes_ran(fake, model, npu_libs):
    fake.devices(phone(transcript="litert_npu_jit_partial.txt"))
    result = AdbRunner(benchmark_binary=str(fake.binary), delegate="npu",
                       npu_libs=str(npu_libs), allow_fallback=True).bench(model)
    assert result.avg_ms == pytest.approx(14.62)  # no proto sidecar: the text's 14.62 ms
    assert result.std_ms == pytest.approx(0.47)   # "Inference (std): 0.47", printed without unit
    assert result.delegate["fully_delegated"] is False
    assert result.delegate["placement"] == "NPU 1, CPU (XNNPACK) 3, CPU 0"
    assert (result.delegate["delegated_nodes"], result.delegate["total_nodes"]) == (1, 4)
    assert any("nodes per unit: NPU 1, CPU (XNNPACK) 3, CPU 0" in n for n in result.notes)


def test_npu_run_all_on_xnnpack_is_a_one_line_error_exit_2(fake, model, npu_libs, capsys):
    fake.devices(phone(transcript="litert_npu_xnnpack.txt"))
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary",
                 str(fake.binary), "--delegate", "npu", "--npu-libs", str(npu_libs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mai-sr bench: error: device S24: benchmark_model: the NPU run fell back")
    assert "Replacing 10 out of 14 node(s) with delegate (TfLiteXNNPackDelegate)" in err
    assert "CPU (XNNPACK) 10, CPU 4" in err and err.count("\n") == 1


def test_unconsumed_flag_is_a_one_line_error_exit_2(fake, model, npu_libs, capsys):
    # An older CompiledModel build without the Qualcomm vendor flags warns and runs without it
    fake.devices(phone(lacks_flags=["qualcomm_htp_performance_mode"]))
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary",
                 str(fake.binary), "--delegate", "npu", "--npu-libs", str(npu_libs),
                 "--npu-option", "qualcomm_htp_performance_mode=burst"]) == 2
    err = capsys.readouterr().err
    assert ('"WARN: Unconsumed cmdline flags: --qualcomm_htp_performance_mode=burst"' in err
            or '"Unconsumed cmdline flags: --qualcomm_htp_performance_mode=burst"' in err)
    assert err.count("\n") == 1


def test_classic_tool_given_to_npu_is_refused_naming_both_tools(fake, model, npu_libs, capsys):
    # --benchmark-binary pointing at TFLite's classic tool: its --help has no --use_npu
    fake.devices(phone(transcript="cpu_xnnpack.txt"))
    argv = ["bench", str(model), "--runner", "adb", "--delegate", "npu",
            "--npu-libs", str(npu_libs), "--benchmark-binary", str(fake.classic)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mai-sr bench: error: device S24: --benchmark-binary {fake.classic} is "
                          "TFLite's classic benchmark_model, but --delegate npu needs LiteRT's "
                          "CompiledModel benchmark_model: pass --benchmark-binary PATH with "
                          "LiteRT's prebuilt Android binary (https://storage.googleapis.com/"
                          "litert/binaries/VERSION/android_arm64/benchmark_model")
    assert err.count("\n") == 1 and "Traceback" not in err
    # it never ran, and it is not left at LiteRT's path for a later run to reuse
    assert not any("--use_npu=true" in c for c in fake.commands())
    assert "/data/local/tmp/mai_sr_litert/benchmark_model" not in fake.files("S24")


def test_litert_tool_given_to_nnapi_is_refused_naming_both_tools(fake, model, capsys):
    fake.devices(phone(transcript="logcat_nnapi.txt"))
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary",
                 str(fake.litert)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mai-sr bench: error: device S24: --benchmark-binary {fake.litert} is "
                          "LiteRT's CompiledModel benchmark_model, but --delegate nnapi needs "
                          "TFLite's classic benchmark_model: pass --benchmark-binary PATH with "
                          "TFLite's classic benchmark_model built for the device")
    assert err.count("\n") == 1


def test_the_tool_is_told_by_what_it_says_not_by_its_name(fake, model, npu_libs, tmp_path):
    # LiteRT's binary saved under the classic tool's usual name still runs the NPU, from
    # LiteRT's own device path
    renamed = elf_binary(tmp_path / "android_aarch64_benchmark_model_x", 183, "litert")
    fake.devices(phone())
    result = AdbRunner(benchmark_binary=str(renamed), delegate="npu",
                       npu_libs=str(npu_libs)).bench(model)
    assert result.device["benchmark_tool"] == "LiteRT's CompiledModel benchmark_model"
    assert fake.benchmark_command()[6] == "/data/local/tmp/mai_sr_litert/benchmark_model"
    # and the probe is the tool's own flag table (BenchmarkModel::ParseFlags on --help)
    code, _, err = device_emulator.run(
        ["-s", "S24", "shell", "/data/local/tmp/mai_sr_litert/benchmark_model --help"],
        fake.scenario)
    assert code == 1 and err.startswith("INFO: STARTING!\nERROR: usage: ")
    assert adb_module.identify_tool(err) == "litert"


def test_nnapi_after_npu_on_the_same_device_uses_the_classic_tool(fake, model, npu_libs):
    fake.devices(phone(transcripts={"": "litert_npu_aot.txt",
                                    "--use_nnapi=true": "vs680_nnapi.txt"}))
    AdbRunner(benchmark_binary=str(fake.litert), delegate="npu",
              npu_libs=str(npu_libs)).bench(model)
    nnapi = AdbRunner(benchmark_binary=str(fake.classic)).bench(model)
    assert nnapi.delegate["name"] == "NNAPI" and nnapi.avg_ms == pytest.approx(36.9073)
    files = fake.files("S24")
    assert files["/data/local/tmp/mai_sr_litert/benchmark_model"]["tool"] == "litert"
    assert files["/data/local/tmp/benchmark_model"]["tool"] == "classic"
    # without --benchmark-binary each delegate finds its own tool where it left it
    AdbRunner(delegate="npu", npu_libs=str(npu_libs)).bench(model)
    assert fake.benchmark_command()[6] == "/data/local/tmp/mai_sr_litert/benchmark_model"
    assert AdbRunner().bench(model).device["benchmark_tool"] == "TFLite's classic benchmark_model"
    assert fake.benchmark_command()[3] == "/data/local/tmp/benchmark_model"


def test_npu_without_litert_s_tool_names_it_and_where_it_comes_from(fake, model, npu_libs):
    # only a classic tool on the device (an earlier NNAPI run left it): not used for npu
    fake.devices(phone(preinstalled=["/data/local/tmp/benchmark_model"], tool="classic"))
    with pytest.raises(MaiSrError) as err:
        AdbRunner(delegate="npu", npu_libs=str(npu_libs)).bench(model)
    message = str(err.value)
    assert message.startswith("device S24 has no LiteRT's CompiledModel benchmark_model (not at "
                              "/data/local/tmp/mai_sr_litert/benchmark_model nor on its PATH), "
                              "which --delegate npu needs")
    assert "storage.googleapis.com/litert/binaries/VERSION/android_arm64/" in message
    assert "//litert/tools:benchmark_model" in message and "\n" not in message


def test_a_binary_is_pushed_again_only_when_its_hash_differs(fake, model, tmp_path):
    fake.devices(device("VS680A", lacks_sha256sum=True))  # old toybox: md5sum instead
    runner = AdbRunner(benchmark_binary=str(fake.classic))
    runner.bench(model)
    runner.bench(model)
    binary = "/data/local/tmp/benchmark_model"
    assert [c for c in fake.commands() if c[-1] == binary and "push" in c] == [
        ["-s", "VS680A", "push", str(fake.classic), binary]]
    assert ["-s", "VS680A", "shell", "md5sum", binary] in fake.commands()
    fake.classic.write_bytes(fake.classic.read_bytes() + b" rebuilt")
    runner.bench(model)
    assert len([c for c in fake.commands() if c[-1] == binary and "push" in c]) == 2


def test_old_build_without_result_file_path_falls_back_to_the_text(fake, model, npu_libs):
    fake.devices(phone(lacks_flags=["result_file_path"]))
    result = AdbRunner(benchmark_binary=str(fake.binary), delegate="npu",
                       npu_libs=str(npu_libs)).bench(model)
    assert result.avg_ms == pytest.approx(3.41)  # the text's rounding: no proto was written
    assert not any("BenchmarkResult proto" in n for n in result.notes)
    assert any("Unconsumed cmdline flags: --result_file_path" in n for n in result.notes)


def test_npu_dispatch_library_missing_on_device_is_an_error(fake, model, npu_libs, capsys):
    # The folder pushed, then the dispatch library removed on the device: LiteRT logs the
    # dispatch errors and runs on the CPU (litert_npu_no_dispatch.txt)
    fake.devices(phone())
    runner = AdbRunner(benchmark_binary=str(fake.binary), delegate="npu", npu_libs=str(npu_libs))
    runner.bench(model)
    adb_module.Adb().run("shell", "rm", "-f",
                         "/data/local/tmp/mai_sr_npu/libLiteRtDispatch_Qualcomm.so", serial="S24")
    # the size listing no longer shows it, so the next run pushes it back...
    runner.bench(model)
    assert "/data/local/tmp/mai_sr_npu/libLiteRtDispatch_Qualcomm.so" in fake.files("S24")
    # ...and on a device whose dispatch folder stays empty LiteRT logs the dispatch errors
    # and runs on the CPU: an error quoting LiteRT
    fake.devices(phone(serial="S24B"))
    runner_without = AdbRunner(benchmark_binary=str(fake.binary), delegate="npu",
                               npu_libs=str(npu_libs))
    runner_without._push_libraries = lambda *a: None  # nothing reaches the device
    with pytest.raises(MaiSrError) as err:
        runner_without.bench(model)
    message = str(err.value)
    assert "the NPU run fell back" in message and "\n" not in message
    assert '"Failed to apply compiler plugins: No compiler plugin found" (+4 more)' in message
    assert "nodes per unit: CPU (XNNPACK) 10, CPU 4" in message


def test_npu_run_that_aborts_quotes_litert_s_cause(fake, model, npu_libs):
    # a build that stops instead of falling back: the dispatch error is quoted first
    fake.devices(phone(transcript="litert_npu_no_dispatch.txt",
                       exit_codes={"litert_npu_no_dispatch.txt": 1}))
    with pytest.raises(MaiSrError) as err:
        AdbRunner(benchmark_binary=str(fake.binary), delegate="npu",
                  npu_libs=str(npu_libs)).bench(model)
    assert str(err.value).startswith('device S24: benchmark_model exited with code 1: '
                                     '"ERROR: [compiled_model.cc:590] Failed to apply compiler '
                                     'plugins: No compiler plugin found"')


@pytest.mark.parametrize("names, message", [
    (["libQnnHtp.so"], r"no libLiteRtDispatch_Qualcomm.so \(device S24 has SoC SM8650, qualcomm"),
    (["libLiteRtDispatch_MediaTek.so"], r"the folder has libLiteRtDispatch_MediaTek.so"),
    (["libLiteRtDispatch_Qualcomm.so", "libQnnHtp.so", "libQnnHtpV73Stub.so",
      "libQnnHtpV73Skel.so"], r"no libQnnHtpV75Skel.so \(SoC SM8650 runs Hexagon v75"),
])
def test_npu_missing_libraries_are_refused_before_anything_is_pushed(fake, model, tmp_path,
                                                                    names, message):
    fake.devices(phone())
    libs = library_folder(tmp_path / "libs", names)
    with pytest.raises(MaiSrError, match=message):
        AdbRunner(benchmark_binary=str(fake.binary), delegate="npu", npu_libs=str(libs)).bench(model)
    assert fake.pushes() == []


def test_qnn_full_delegation_builds_options_and_pushes_qairt_libraries(fake, model, tmp_path):
    sdk = qairt_sdk(tmp_path / "qairt" / "2.44.0")
    fake.devices(phone(transcript="qnn_htp_full.txt", tool="classic"))
    result = AdbRunner(benchmark_binary=str(fake.binary), delegate="qnn", qairt=str(sdk),
                       qnn_performance_mode="burst").bench(model)
    run = fake.benchmark_command()
    remote = "/data/local/tmp/mai_sr_qnn"
    assert run[3:6] == ["env", f"LD_LIBRARY_PATH={remote}", f"ADSP_LIBRARY_PATH={remote}"]
    assert run[7:] == [
        "--graph=/data/local/tmp/mai_sr_abpn_int8.tflite",
        f"--external_delegate_path={remote}/libQnnTFLiteDelegate.so",
        f"--external_delegate_options=backend_type:htp;library_path:{remote}/libQnnHtp.so;"
        f"skel_library_dir:{remote};htp_performance_mode:2",
        "--result_file_path=/data/local/tmp/mai_sr_result.pb"]
    pushed = sorted(c[-1].split("/")[-1] for c in fake.pushes() if remote in c[-1])
    assert pushed == ["libQnnHtp.so", "libQnnHtpPrepare.so", "libQnnHtpV75Skel.so",
                      "libQnnHtpV75Stub.so", "libQnnSystem.so", "libQnnTFLiteDelegate.so"]
    # proto 3.77691 ms; text "Inference (avg): 3776.91" us: the two agree
    assert result.avg_ms == pytest.approx(3.77691, abs=1e-5) and result.count == 265
    assert result.delegate["name"] == "QNN" and result.delegate["fully_delegated"] is True
    assert result.delegate["placement"] == "QNN 13, CPU 0"
    assert any("from the BenchmarkResult proto" in n for n in result.notes)


def test_a_result_file_that_disagrees_with_the_text_is_ignored(fake, model, npu_libs):
    # a file left by another run (its average is not the printed one): the text wins
    result = adb_module.apply_benchmark_result(
        BenchResult(runner="adb", model="m", avg_ms=3.41),
        {"latency_metrics": {"avg_ms": 14.6213}, "misc_metrics": {"num_runs": 69}})
    assert result.avg_ms == 3.41 and result.count is None
    assert "ignored the BenchmarkResult file" in result.notes[-1]


def test_qnn_partial_delegation_is_an_error_then_allowed(fake, model, tmp_path, capsys):
    sdk = qairt_sdk(tmp_path / "qairt")
    fake.devices(phone(transcript="qnn_htp_partial.txt", tool="classic"))
    argv = ["bench", str(model), "--runner", "adb", "--benchmark-binary", str(fake.binary),
            "--delegate", "qnn", "--qairt", str(sdk)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Replacing 10 out of 13 node(s) with delegate (TfLiteQnnDelegate)" in err
    assert "QNN 10, CPU 3" in err and err.count("\n") == 1
    assert main(argv + ["--allow-fallback", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["avg_ms"] == pytest.approx(6.32948)
    assert payload["delegate"]["placement"] == "QNN 10, CPU 3"
    assert payload["delegate"]["fully_delegated"] is False and not schema_errors(payload)
    assert (payload["delegate"]["delegated_nodes"], payload["delegate"]["total_nodes"]) == (10, 13)


def test_qnn_wrong_hexagon_version_runs_on_the_cpu_and_is_an_error(fake, model, tmp_path):
    # --hexagon-version 73 on an SM8650 (v75): the v73 stub/skel cannot drive its HTP, the
    # delegate takes no node (qnn_not_executed.txt, the shape of tensorflow#83344)
    sdk = qairt_sdk(tmp_path / "qairt", hexagon_versions=("73", "75"))
    fake.devices(phone(transcript="qnn_htp_full.txt", tool="classic"))
    with pytest.raises(MaiSrError) as err:
        AdbRunner(benchmark_binary=str(fake.binary), delegate="qnn", qairt=str(sdk),
                  hexagon_version="73").bench(model)
    assert "TfLiteQnnDelegate delegate: 0 nodes delegated out of 13 nodes" in str(err.value)
    assert "\n" not in str(err.value)


def test_qnn_hexagon_version_follows_the_soc(fake, model, tmp_path):
    sdk = qairt_sdk(tmp_path / "qairt", hexagon_versions=("73", "75", "79"))
    s25 = phone(transcript="qnn_htp_full.txt", tool="classic", hexagon="79")
    s25["props"]["ro.soc.model"] = "SM8750"
    fake.devices(s25)
    result = AdbRunner(benchmark_binary=str(fake.binary), delegate="qnn", qairt=str(sdk)).bench(model)
    assert result.device["hexagon_version"] == "79"
    pushed = {c[-1].split("/")[-1] for c in fake.pushes()}
    assert {"libQnnHtpV79Stub.so", "libQnnHtpV79Skel.so"} <= pushed
    assert not pushed & {"libQnnHtpV75Skel.so", "libQnnHtpV73Skel.so"}


def test_qnn_soc_from_board_platform_when_ro_soc_model_is_missing(fake, model, tmp_path):
    sdk = qairt_sdk(tmp_path / "qairt")
    old = phone(transcript="qnn_htp_full.txt", tool="classic")
    del old["props"]["ro.soc.model"]
    old["props"]["ro.board.platform"] = "msmnile"  # SM8150's codename: not in the table
    fake.devices(old)
    with pytest.raises(MaiSrError, match=r"SoC MSMNILE has no known Hexagon version .* pass "
                                         r"--hexagon-version NN"):
        AdbRunner(benchmark_binary=str(fake.binary), delegate="qnn", qairt=str(sdk)).bench(model)


def test_qnn_missing_skel_for_the_soc_is_refused(fake, model, tmp_path):
    sdk = qairt_sdk(tmp_path / "qairt", hexagon_versions=("73",))
    fake.devices(phone(transcript="qnn_htp_full.txt", tool="classic"))
    with pytest.raises(MaiSrError, match=r"missing libQnnHtpV75Stub.so, lib/hexagon-v75/unsigned/"
                                         r"libQnnHtpV75Skel.so \(the folder has hexagon-v73\)"):
        AdbRunner(benchmark_binary=str(fake.binary), delegate="qnn", qairt=str(sdk)).bench(model)
    assert fake.pushes() == []


@pytest.mark.parametrize("option, why", [
    ("log_level=", "is empty"),                       # "log_level:" splits into one part
    ("cache_dir=/data/local/tmp/a:b", "contains : or ;"),   # three parts
    ("model_token=a;b", "contains : or ;"),           # becomes two items, one dropped
])
def test_qnn_option_the_parser_would_drop_is_refused(fake, model, tmp_path, option, why, capsys):
    sdk = qairt_sdk(tmp_path / "qairt")
    fake.devices(phone(transcript="qnn_htp_full.txt", tool="classic"))
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary", str(fake.binary),
                 "--delegate", "qnn", "--qairt", str(sdk), "--qnn-option", option]) == 2
    err = capsys.readouterr().err
    assert why in err and "drop it silently" in err and err.count("\n") == 1
    assert fake.commands() == []  # refused before any adb call


def test_external_delegate_options_round_trip_through_the_tools_split():
    """What we build splits back, as external_delegate_provider.cc does (';' then ':',
    items of two parts kept), into exactly the pairs we meant."""
    pairs = [("backend_type", "htp"), ("library_path", "/data/local/tmp/q/libQnnHtp.so"),
             ("htp_performance_mode", "2")]
    text = adb_module.external_delegate_options(pairs)
    kept = [tuple(item.split(":")) for item in text.split(";") if len(item.split(":")) == 2]
    assert kept == pairs


def test_nnapi_on_android_15_is_labelled_deprecated_and_sdk_recorded(fake, model):
    s24 = phone(transcript="logcat_nnapi.txt", tool="classic")
    fake.devices(s24)
    result = AdbRunner(benchmark_binary=str(fake.binary)).bench(model)
    assert result.device["sdk"] == 35
    assert result.delegate["available_accelerators"] == ["ipuadaptor", "nnapi-reference"]
    assert result.device["nnapi_accelerators"] == "ipuadaptor,nnapi-reference"
    assert any("NNAPI is deprecated from Android 15" in n for n in result.notes)


def test_nnapi_before_android_15_has_no_deprecation_note(fake, model):
    fake.devices(device("VS680A"))
    result = AdbRunner(benchmark_binary=str(fake.binary)).bench(model)
    assert result.device["sdk"] == 30 and not any("deprecated" in n for n in result.notes)


@pytest.mark.parametrize("kwargs, message", [
    ({"delegate": "npu"}, "--delegate npu needs --npu-libs DIR"),
    ({"delegate": "qnn"}, "--delegate qnn needs --qairt DIR"),
    ({"delegate": "nnapi", "npu_libs": "."}, "--npu-libs and --npu-option need --delegate npu"),
    ({"delegate": "npu", "npu_libs": ".", "npu_options": ["htp_mode=burst"]},
     "vendor flags start with qualcomm_"),
    ({"delegate": "npu", "npu_libs": ".", "npu_options": ["qualcomm_x=a b"]},
     "the value must be non-empty"),
    ({"delegate": "qnn", "qairt": ".", "qnn_performance_mode": "turbo"},
     "--qnn-performance-mode turbo: choose from default"),
    ({"delegate": "qnn", "qairt": ".", "qnn_options": ["backend_type=gpu"]},
     "--qnn-option backend_type: set by mai-sr"),
    ({"delegate": "npu", "npu_libs": ".", "op_profiling": True}, "--op-profiling is the classic"),
])
def test_npu_and_qnn_option_errors(fake, kwargs, message):
    with pytest.raises(MaiSrError, match=re.escape(message)):
        AdbRunner(**kwargs)

@pytest.mark.parametrize("command", [["push"], ["bench", "--runner", "adb"]])
def test_a_truncated_model_is_refused_before_anything_reaches_the_device(fake, model, command,
                                                                         capsys):
    fake.devices(device("A1"))
    cut = model.with_name("cut.tflite")
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    assert main([command[0], str(cut), *command[1:]]) == 2
    err = capsys.readouterr().err
    assert "cut.tflite: truncated or corrupt TFLite file" in err and err.count("\n") == 1
    assert not any("push" in c for c in fake.commands())


# ---------------------------------------------------------------- report reaches every option


@pytest.fixture
def one_image(shared_data, tmp_path):
    from conftest import link_images

    (tmp_path / "img").mkdir()
    return link_images(tmp_path / "img", shared_data, ["Set5/butterfly.png"])


def _leaderboard(out):
    import csv

    with open(out / "leaderboard.csv") as f:
        # the measured row (the published reference rows of the challenge follow it)
        (row,) = [r for r in csv.DictReader(f) if r["model"].startswith("abpn int8")]
    return row


@pytest.mark.slow  # a whole report: eval on a real image, lint, the leaderboard
def test_report_times_the_phone_the_way_bench_does(fake, model, npu_libs, one_image, tmp_path,
                                                   capsys):
    fake.devices(phone(), phone(serial="OTHER"))  # two phones: --serial picks one
    out = tmp_path / "report"
    assert main(["report", str(model), "--runner", "adb", "--delegate", "npu",
                 "--npu-libs", str(npu_libs), "--benchmark-binary", str(fake.litert),
                 "--serial", "S24", "--data", str(one_image), "--out", str(out),
                 "--quiet"]) == 0, capsys.readouterr().err
    row = _leaderboard(out)
    # the CompiledModel NPU average (litert_npu_aot.result.json), labelled with what ran where
    assert float(row["npu_ms"]) == pytest.approx(3.40876, abs=1e-5)
    assert row["npu_runner"] == "adb: NPU on SM8650" and row["score"] != ""
    assert fake.benchmark_command()[:2] == ["-s", "S24"]
    (card,) = [json.loads(p.read_text()) for p in (out / "cards").glob("*.json")]
    assert card["runtimes"][0]["device"]["soc"] == "SM8650"


@pytest.mark.slow
def test_report_shows_a_fallen_back_time_as_a_device_time_with_no_score(fake, model, one_image,
                                                                        tmp_path, capsys):
    fake.devices(device("D1", transcript="nnapi_not_executed.txt"))
    out = tmp_path / "report"
    argv = ["report", str(model), "--runner", "adb", "--benchmark-binary", str(fake.classic),
            "--data", str(one_image), "--out", str(out), "--quiet"]
    assert main(argv) == 0  # the device's error is the card's, the report is still written
    row = _leaderboard(out)
    assert row["npu_ms"] == "" and row["device_ms"] == "" and "fell back" in row["error"]
    assert main(argv + ["--allow-fallback"]) == 0
    row = _leaderboard(out)
    assert row["npu_ms"] == "" and float(row["device_ms"]) == pytest.approx(196.43, abs=0.01)
    assert row["score"] == "" and row["npu_runner"].endswith("no score")
    assert "CPU time" in row["npu_runner"]


def test_report_refuses_an_adb_option_without_the_adb_runner(fake, model, capsys):
    assert main(["report", str(model), "--runner", "local", "--delegate", "npu"]) == 2
    assert capsys.readouterr().err == ("mai-sr report: error: --delegate is an option of "
                                       "--runner adb, which this command does not use "
                                       "(--runner local)\n")


# ---------------------------------------------------------------- compiler cache, MediaTek


def test_compiler_cache_second_run_loads_the_cached_compilation(fake, model, tmp_path):
    libs = library_folder(tmp_path / "jit", NPU_LIBS + ["libLiteRtCompilerPlugin_Qualcomm.so"])
    fake.devices(phone(transcript="litert_npu_jit_cache.txt"))
    runner = AdbRunner(benchmark_binary=str(fake.litert), delegate="npu", npu_libs=str(libs),
                       compiler_cache=True)
    first = runner.bench(model)
    cache = "/data/local/tmp/mai_sr_npu_cache"
    assert ["-s", "S24", "shell", "mkdir", "-p", cache] in fake.commands()  # LiteRT needs it
    assert f"--compiler_cache_path={cache}" in fake.benchmark_command()
    assert first.delegate["npu_compilation"] == "jit" and first.init_ms == pytest.approx(2264.57)
    assert any(p.startswith(cache + "/") for p in fake.files("S24"))  # the compiled model
    second = runner.bench(model)
    assert second.delegate["npu_compilation"] == "cache"
    assert "Flatbuffer model initialized from cached model." in second.raw_output
    assert any(n.startswith("NPU compilation loaded from the on-device cache") for n in second.notes)
    assert second.init_ms == pytest.approx(398.06) and second.delegate["fully_delegated"] is True
    with pytest.raises(MaiSrError, match="--compiler-cache needs --delegate npu"):
        AdbRunner(compiler_cache=True)


def test_mediatek_npu_run_loads_neuropilot_and_records_its_version(fake, model, tmp_path):
    libs = library_folder(tmp_path / "mtk", MEDIATEK_LIBS)
    fake.devices(mediatek_phone())
    result = AdbRunner(benchmark_binary=str(fake.litert), delegate="npu",
                       npu_libs=str(libs)).bench(model)
    assert result.delegate["coverage"] == "full" and result.avg_ms == pytest.approx(4.05)
    assert result.device["soc"] == "MT6989" and result.device["neuron_api_version"] == "8.2.26"
    assert "hexagon_version" not in result.device
    pushed = sorted(c[-1].split("/")[-1] for c in fake.pushes() if "mai_sr_npu/" in c[-1])
    assert pushed == sorted(MEDIATEK_LIBS)


def test_mediatek_uses_the_phone_s_own_neuronadapter_when_the_folder_has_none(fake, model,
                                                                            tmp_path):
    libs = library_folder(tmp_path / "mtk", ["libLiteRtDispatch_MediaTek.so"])
    own = "/system_ext/lib64/libneuronusdk_adapter.mtk.so"
    fake.devices(mediatek_phone(system_libs=[own]))
    result = AdbRunner(benchmark_binary=str(fake.litert), delegate="npu",
                       npu_libs=str(libs)).bench(model)
    assert result.device["neuron_adapter"] == own and result.delegate["coverage"] == "full"
    # a phone without one, and a folder without one: refused before anything is pushed
    fake.devices(mediatek_phone(serial="MTK2"))
    with pytest.raises(MaiSrError) as err:
        AdbRunner(benchmark_binary=str(fake.litert), delegate="npu",
                  npu_libs=str(libs)).bench(model)
    message = str(err.value)
    assert "no NeuroPilot NeuronAdapter library" in message and "MT6989" in message
    assert "neuro_pilot/v8_0_10/usdk/lib64/libneuronusdk_adapter.mtk.so" in message
    assert "\n" not in message and not any("MTK2" in c for c in fake.pushes())


def test_mediatek_adapter_that_does_not_load_is_a_fallback_error(fake, model, tmp_path, capsys):
    libs = library_folder(tmp_path / "mtk", MEDIATEK_LIBS)
    fake.devices(mediatek_phone(adapter_fails=True))  # e.g. a NeuroPilot 9 adapter on an 8 SoC
    argv = ["bench", str(model), "--runner", "adb", "--delegate", "npu", "--npu-libs", str(libs),
            "--benchmark-binary", str(fake.litert)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the NPU run fell back" in err and "Failed to load NeuronAdapter shared library" in err
    assert err.count("\n") == 1
    assert main(argv + ["--allow-fallback", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["delegate"]["timed_on"] == "CPU" and payload["avg_ms"] == pytest.approx(117.64)


def test_bench_verbose_prints_the_device_command(fake, model, capsys):
    fake.devices(device("VS680A"))
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary", str(fake.classic),
                 "--verbose"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("  command: "))
    assert line == ("  command: adb -s VS680A shell /data/local/tmp/benchmark_model "
                    "--graph=/data/local/tmp/mai_sr_abpn_int8.tflite --num_threads=2 "
                    "--use_nnapi=true "
                    "--result_file_path=/data/local/tmp/mai_sr_result.pb")
    assert main(["bench", str(model), "--runner", "adb", "--benchmark-binary",
                 str(fake.classic), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["command"] == line.split(" shell ", 1)[1]
    assert "Inference timings in us" in payload["raw_output"] and not schema_errors(payload)
