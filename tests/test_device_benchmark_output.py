"""Parsing `benchmark_model` output (mai_sr.device.benchmark_output).

The transcripts in tests/fake_adb/transcripts/ follow real output line for line; where each
format comes from is in tests/fake_adb/transcripts/SOURCES.md (TFLite sources
benchmark_model.cc, benchmark_tflite_model.cc, stats_calculator.cc,
profile_summary_formatter.cc, nnapi_delegate.cc; tensorflow/tensorflow#43541 and #56301;
Synaptics' SyNAP "Benchmarking Models with NNAPI" page). Expected numbers below are read
off those transcripts by eye.
"""

from pathlib import Path

import pytest

from mai_sr.device.benchmark_output import output_tail, parse_benchmark_output
from mai_sr.errors import MaiSrError

TRANSCRIPTS = Path(__file__).parent / "fake_adb" / "transcripts"


def parse(name):
    return parse_benchmark_output((TRANSCRIPTS / name).read_text().replace("{graph}", "/m.tflite"))


def test_vs680_full_delegation_info_prefixed_scientific_warmup():
    out = parse("vs680_nnapi.txt")
    r = out.to_bench_result(runner="adb", model="m", requested_delegate="NNAPI")
    # "Inference timings in us: Init: 71204, First inference: 1214372,
    #  Warmup (avg): 1.21437e+06, Inference (avg): 36907.3"
    assert r.init_ms == pytest.approx(71.204)
    assert r.first_ms == pytest.approx(1214.372)
    assert r.warmup_avg_ms == pytest.approx(1214.37)
    assert r.avg_ms == pytest.approx(36.9073)
    # "count=50 first=37214 curr=36874 min=36512 max=38103 avg=36907.3 std=301"
    assert (r.count, r.min_ms, r.max_ms, r.std_ms) == (50, 36.512, 38.103, 0.301)
    assert r.median_ms is None  # this build prints no median
    assert out.warmup.count == 1 and out.warmup.avg == 1214372  # "count=1 curr=1214372"
    assert r.delegate == {"name": "NNAPI", "fully_delegated": True, "delegated_nodes": 11,
                          "total_nodes": 11, "kernels": 1, "partitions": 1,
                          "accelerator": "synap-npu",
                          "available_accelerators": ["synap-npu", "nnapi-reference"]}
    assert out.model_size_mb == pytest.approx(0.061284)
    assert out.session_init_ms == pytest.approx(71.204)
    assert out.memory_delta_mb == (7.40234, 21.8516)
    assert r.peak_memory_mb is None  # no --report_peak_memory_footprint in this run
    assert r.layers == []


def test_op_profile_tables_space_padded_and_partial_delegation():
    out = parse("vs680_nnapi_profile.txt")
    r = out.to_bench_result(runner="adb", model="m", requested_delegate="NNAPI")
    assert r.peak_memory_mb == pytest.approx(31.4375)
    assert r.delegate["fully_delegated"] is False
    assert (r.delegate["delegated_nodes"], r.delegate["total_nodes"], r.delegate["kernels"]) == (11, 12, 2)
    assert any("other ops fall back to TFLite's CPU kernels" in n for n in r.notes)
    # The initialization tables (ModifyGraphWithDelegate, AllocateTensors) are not layers.
    assert [(l["op"], l["unit"], l["ms"], l["name"]) for l in r.layers] == [
        ("TfLiteNnapiDelegate", "NNAPI", 30.884, "[]:12"),
        ("RESIZE_NEAREST_NEIGHBOR", "CPU", 9.601, "[]:7"),
        ("TfLiteNnapiDelegate", "NNAPI", 2.468, "[]:13")]
    assert r.layers[1]["first_ms"] == 9.842 and r.layers[1]["percent"] == 22.352
    assert r.layers[2]["cdf_percent"] == 100.0 and r.layers[0]["times_called"] == 1


@pytest.mark.parametrize("name", ["vs680_nnapi_profile.txt", "phone_nnapi_partial.txt"])
def test_summary_by_node_type_agrees_with_the_per_node_rows(name):
    """The tool's own per-type summary must equal the per-node rows summed by type."""
    out = parse(name)
    assert out.run_order and out.by_node_type
    summed = {}
    for row in out.run_order:
        count, ms = summed.get(row["op"], (0, 0.0))
        summed[row["op"]] = (count + 1, ms + row["avg_ms"])
    assert {row["op"] for row in out.by_node_type} == set(summed)
    for row in out.by_node_type:
        count, ms = summed[row["op"]]
        assert row["count"] == count
        assert row["avg_ms"] == pytest.approx(ms, abs=0.002)
    # percentages of the per-node rows add up to 100 and the cdf ends there
    assert sum(r["percent"] for r in out.run_order) == pytest.approx(100, abs=0.01)
    assert out.run_order[-1]["cdf_percent"] == pytest.approx(100)


def test_older_plain_output_with_start_column_and_replacing_without_total():
    out = parse("phone_nnapi_partial.txt")
    r = out.to_bench_result(runner="adb", model="m", requested_delegate="NNAPI")
    assert r.avg_ms == pytest.approx(49.6027)
    assert (r.count, r.min_ms, r.max_ms) == (50, 48.894, 51.977)
    # the regular-run count line is the second one, not the profile's "Timings" line
    assert out.warmup.count == 9 and out.warmup.avg == 57114.9
    # "Peak memory footprint (MB): init=5.10547 overall=38.8711" (max RSS, older builds)
    assert r.peak_memory_mb == pytest.approx(38.8711)
    assert r.delegate["delegated_nodes"] == 9 and r.delegate["total_nodes"] is None
    assert r.delegate["kernels"] == 2 and r.delegate["partitions"] == 3
    ops = [(l["op"], l["unit"]) for l in r.layers]
    assert ops == [("TfLiteNnapiDelegate", "NNAPI"), ("MINIMUM", "CPU"), ("MAXIMUM", "CPU"),
                   ("TfLiteNnapiDelegate", "NNAPI")]
    assert r.layers[0]["name"].startswith("[model/conv2d/Conv2D, ") and r.layers[0]["ms"] == 38.415


def test_nnapi_not_executed_is_reported_as_cpu_fallback_and_median_parsed():
    out = parse("nnapi_not_executed.txt")
    r = out.to_bench_result(runner="adb", model="m", requested_delegate="NNAPI")
    assert r.delegate["fully_delegated"] is False
    assert r.delegate["delegated_nodes"] == 0 and r.delegate["kernels"] == 0
    assert r.delegate["available_accelerators"] == ["nnapi-reference"]
    assert any("did not run the graph" in n for n in r.notes)
    # "count=50 ... std=1288 p5=195011 median=196187 p95=199206"
    assert r.median_ms == pytest.approx(196.187)


def test_nnapi_unsupported_platform_warning():
    r = parse("nnapi_unsupported.txt").to_bench_result(runner="adb", model="m",
                                                        requested_delegate="NNAPI")
    assert r.avg_ms == pytest.approx(398.742)
    assert "NNAPI acceleration is unsupported on this platform." in r.notes
    assert r.delegate["name"] == "NNAPI" and r.delegate["fully_delegated"] is False


def test_cpu_run_has_no_fallback_note():
    r = parse("cpu_xnnpack.txt").to_bench_result(runner="adb", model="m")
    assert r.median_ms == pytest.approx(104.046)
    assert r.delegate["name"] == "XNNPACK" and r.delegate["kernels"] == 2
    assert not any("did not run" in n for n in r.notes)


def test_gpu_transcript_numbers_from_issue_43541():
    r = parse("gpu.txt").to_bench_result(runner="adb", model="m", requested_delegate="GPU")
    # tensorflow/tensorflow#43541: "Init: 870557, First inference: 130565,
    # Warmup (avg): 122373, Inference (avg): 119375"
    assert (r.init_ms, r.first_ms, r.warmup_avg_ms, r.avg_ms) == (870.557, 130.565, 122.373, 119.375)
    assert r.delegate["name"] == "GPU" and r.delegate["fully_delegated"] is True


def test_logcat_prefixed_lines():
    r = parse("logcat_nnapi.txt").to_bench_result(runner="adb", model="m")
    assert r.avg_ms == pytest.approx(23.5182)
    assert r.delegate["available_accelerators"] == ["ipuadaptor", "nnapi-reference"]
    assert r.delegate["fully_delegated"] is True


@pytest.mark.parametrize("line, expected_avg_us", [
    ("Inference timings in us: Init: 1304, First inference: 2071, Warmup (avg): 70.3736, "
     "Inference (avg): 69.691", 69.691),  # ARM-software/armnn#541, no prefix
    ("INFO: Inference timings in us: Init: 34075, First inference: 1599062, "
     "Warmup (avg): 1.59906e+06, Inference (avg): 1380.86", 1380.86),  # SyNAP docs
    ("INFO: Inference timings in us: Init: 2.1e+04, First inference: 9.1E+04, "
     "Warmup (avg): 1734.13, Inference (avg): 1.37459e+03", 1374.59),
])
def test_timings_line_plain_prefixed_and_scientific(line, expected_avg_us):
    out = parse_benchmark_output(line)
    assert out.avg_us == pytest.approx(expected_avg_us)


def test_all_same_count_line():
    out = parse_benchmark_output("count=5 curr=1200(all same)\ncount=3 curr=1100(all same)\n")
    assert out.regular.count == 3 and out.regular.min == out.regular.max == 1100
    assert out.regular.std == 0 and out.avg_us == 1100  # no timings line: the count line's


def test_failed_run_raises_quoting_the_tail():
    text = (TRANSCRIPTS / "nnapi_accelerator_missing.txt").read_text()
    with pytest.raises(MaiSrError) as err:
        parse_benchmark_output(text, source="device X: benchmark_model")
    message = str(err.value)
    assert "\n" not in message and message.startswith("device X: benchmark_model")
    assert "Could not find the specified NNAPI accelerator: synap-npu" in message
    assert message.endswith("ERROR: Benchmarking failed.")
    assert "Loaded model" not in message  # only the last 5 lines are quoted


def test_garbage_raises():
    with pytest.raises(MaiSrError, match="Segmentation fault"):
        parse_benchmark_output("STARTING!\nLoaded model /m.tflite\nSegmentation fault\n")
    assert output_tail("") == "(no output)"


def test_error_lines_of_a_run_that_still_timed_are_kept_as_notes():
    # SyNAP docs, NNAPI compilation caching: a cache miss is logged as an ERROR, the run goes on
    text = ("INFO: Initialized TensorFlow Lite runtime.\n"
            "ERROR: File /data/local/tmp/nnapiacache/a67461dd_6183748634035649777.bin couldn't "
            "be opened for reading: No such file or directory\n"
            "INFO: Replacing 31 node(s) with delegate (TfLiteNnapiDelegate) node, yielding 1 "
            "partitions.\n"
            "Inference timings in us: Init: 34075, First inference: 1599062, "
            "Warmup (avg): 1.59906e+06, Inference (avg): 1380.86\n")
    r = parse_benchmark_output(text).to_bench_result(runner="adb", model="m",
                                                     requested_delegate="NNAPI")
    assert r.avg_ms == pytest.approx(1.38086) and r.warmup_avg_ms == pytest.approx(1599.06)
    assert any(n.startswith("benchmark_model logged: File /data/local/tmp/nnapiacache/")
               for n in r.notes)
    assert r.delegate["delegated_nodes"] == 31 and r.delegate["partitions"] == 1
    assert r.delegate["fully_delegated"] is None  # "31 node(s)" of how many is not printed
    assert not any("did not run" in n for n in r.notes)


# ---------------------------------------------------------------- LiteRT CompiledModel, QNN, proto

import importlib.machinery  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402

from mai_sr.device.benchmark_proto import (parse_benchmark_result,  # noqa: E402
                                           serialize_benchmark_result)
from mai_sr.device.litert_output import parse_litert_output  # noqa: E402
from mai_sr.device.placement import (check_fallback, describe_placement,  # noqa: E402
                                     node_placement)


def parse_litert(name):
    return parse_litert_output((TRANSCRIPTS / name).read_text().replace("{graph}", "/m.tflite"))


def fake_adb_module():
    """The fake adb's device emulator as a module: its hand-written proto encoder is
    independent of the protobuf runtime the reader uses."""
    path = str(TRANSCRIPTS.parent / "device_emulator.py")
    loader = importlib.machinery.SourceFileLoader("device_emulator_for_proto", path)
    module = importlib.util.module_from_spec(
        importlib.util.spec_from_loader("device_emulator_for_proto", loader))
    loader.exec_module(module)
    return module


def test_litert_results_block_aot_npu():
    out = parse_litert("litert_npu_aot.txt")
    r = out.to_bench_result(runner="adb", model="m")
    # "Inference (avg): 3.41 ms (294 runs)", "Inference (std): 0.11" (ms, printed without unit)
    assert (r.avg_ms, r.count, r.min_ms, r.max_ms, r.std_ms) == (3.41, 294, 3.22, 4.05, 0.11)
    assert (r.init_ms, r.first_ms, r.warmup_avg_ms) == (412.30, 9.87, 3.52)
    assert out.warmup.count == 143 and out.memory_delta_mb == (6.12, 9.48)
    assert r.peak_memory_mb is None  # "Peak memory usage not available."
    assert node_placement(out) == {"NPU": 1, "CPU": 0}
    assert check_fallback(out, "", unit="NPU", source="t", allow_fallback=False) == [
        "nodes per unit: NPU 1, CPU 0"]


def test_litert_jit_partial_placement_counts_nodes_per_unit():
    out = parse_litert("litert_npu_jit_partial.txt")
    # "Replacing 1 out of 4 ... (DispatchDelegate)", "Replacing 3 out of 4 ... (TfLiteXNNPackDelegate)"
    assert node_placement(out) == {"NPU": 1, "CPU (XNNPACK)": 3, "CPU": 0}
    with pytest.raises(MaiSrError, match=r'fell back: "Replacing 3 out of 4 node\(s\) with '
                                         r'delegate \(TfLiteXNNPackDelegate\)'):
        check_fallback(out, "", unit="NPU", source="t", allow_fallback=False)
    notes = check_fallback(out, "", unit="NPU", source="t", allow_fallback=True)
    assert "nodes per unit: NPU 1, CPU (XNNPACK) 3, CPU 0" in notes[0]


def test_litert_no_results_block_is_an_error_quoting_the_end():
    with pytest.raises(MaiSrError, match="no '========== BENCHMARK RESULTS ==========' block"):
        parse_litert_output("INFO: STARTING!\nERROR: Failed to compile model.\n")


def test_qnn_counts_the_delegates_own_line_once():
    out = parse("qnn_htp_partial.txt")
    # "TfLiteQnnDelegate delegate: 10 nodes delegated out of 13 nodes with 3 partitions." and
    # "Replacing 10 out of 13 node(s) ... (TfLiteQnnDelegate)" describe the same delegation
    assert len(out.delegations) == 1 and node_placement(out) == {"QNN": 10, "CPU": 3}
    assert out.coverage == "partial" and out.delegate_kernels == 3
    not_run = parse("qnn_not_executed.txt")  # only the delegate's own count (0 of 13)
    assert node_placement(not_run) == {"QNN": 0, "CPU": 13}
    assert describe_placement(node_placement(not_run)) == "CPU 13"


def test_unconsumed_flags_are_read():
    out = parse_benchmark_output("INFO: STARTING!\nWARN: Unconsumed cmdline flags: --use_nnapi=true "
                                 "--external_delegate_path=/x.so\ncount=1 curr=5\n")
    assert out.unconsumed_flags == ["--use_nnapi=true", "--external_delegate_path=/x.so"]


def test_replacing_line_without_partitions_is_read():
    # the short form "VERBOSE: Replacing 329 out of 329 node(s) with delegate (TfLiteQnnDelegate) node"
    out = parse_benchmark_output("VERBOSE: Replacing 329 out of 329 node(s) with delegate "
                                 "(TfLiteQnnDelegate) node\ncount=1 curr=5\n")
    assert out.delegations[0]["replaced"] == 329 and out.delegations[0]["partitions"] is None


def test_proto_reader_reads_the_independent_encoders_bytes():
    fake = fake_adb_module()
    values = {"latency_metrics": {"avg_ms": 3.40876, "init_ms": 412.301},
              "memory_metrics": {"init_footprint_kb": 6267},
              "misc_metrics": {"num_runs": 294}}
    data = fake.encode_benchmark_result(values)
    parsed = parse_benchmark_result(data)
    assert parsed["latency_metrics"]["avg_ms"] == pytest.approx(3.40876, rel=1e-7)  # float32
    assert parsed["memory_metrics"] == {"init_footprint_kb": 6267}
    assert parsed["misc_metrics"] == {"num_runs": 294}
    assert serialize_benchmark_result(parsed) == data  # same bytes both ways


def test_proto_reader_refuses_garbage():
    with pytest.raises(MaiSrError, match="not a BenchmarkResult protobuf"):
        parse_benchmark_result(b"\x12\xff\xff\xff")


@pytest.mark.parametrize("name, parser", [("litert_npu_aot", parse_litert),
                                          ("qnn_htp_full", parse)])
def test_proto_and_text_agree_to_the_texts_rounding(name, parser):
    """The tool writes both from the same numbers: the text rounds (CompiledModel: ms to 2
    decimals; classic: us), the proto keeps float32 ms."""
    fake = fake_adb_module()
    sidecar = json.loads((TRANSCRIPTS / f"{name}.result.json").read_text())
    proto = parse_benchmark_result(fake.encode_benchmark_result(sidecar))
    text = parser(f"{name}.txt").to_bench_result(runner="adb", model="m")
    latency, misc = proto["latency_metrics"], proto["misc_metrics"]
    tolerance = 0.005 + 1e-6  # half of the CompiledModel tool's last printed digit
    for ours, theirs in (("avg_ms", "avg_ms"), ("min_ms", "min_ms"), ("max_ms", "max_ms"),
                         ("std_ms", "stddev_ms"), ("init_ms", "init_ms"),
                         ("first_ms", "first_inference_ms"),
                         ("warmup_avg_ms", "average_warm_up_ms")):
        assert getattr(text, ours) == pytest.approx(latency[theirs], abs=tolerance), ours
    assert text.count == misc["num_runs"]


@pytest.mark.parametrize("line", [
    "count=50 first=1 curr=36907 min=36510 max=38102 avg=nan std=0",
    "count=50 first=1 curr=36907 min=36510 max=38102 avg=0 std=0",
    "count=50 first=1 curr=36907 min=36510 max=38102 avg=-3 std=0",
])
def test_an_average_that_is_not_a_time_is_refused_not_replaced(line):
    """avg=nan once became the `curr` value; zero or negative averages were scored."""
    out = parse_benchmark_output(f"INFO: STARTING!\n{line}\n")
    with pytest.raises(MaiSrError, match="reported an average of .* us, not a time"):
        out.to_bench_result(runner="adb", model="m.tflite")
