"""Runner registry, the one `--json` schema, and the local LiteRT runner on small models."""

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mai_sr.cli import main
from mai_sr.device import BENCH_RESULT_SCHEMA, Runner, get_runner, list_runners
from mai_sr.device.base import schema_errors
from mai_sr.device.local import LocalRunner
from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(min_runs=3, min_seconds=1e-6, warmup_runs=1, warmup_min_seconds=1e-6)


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Small factory models (tests/tflite_factory.py built them with raw TF ops)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import tflite_factory as factory

    d = tmp_path_factory.mktemp("device_models")
    return {"int8": factory.prebuilt("int8", d / "int8.tflite"),
            "dynamic": factory.prebuilt("dynamic", d / "dynamic.tflite"),
            "float": factory.prebuilt("float", d / "float.tflite")}


def operator_count(path) -> int:
    """Operators in subgraph 0, read from the flatbuffer with the `tflite` schema package."""
    import tflite

    model = tflite.Model.GetRootAsModel(Path(path).read_bytes(), 0)
    return model.Subgraphs(0).OperatorsLength()


# ---------------------------------------------------------------- registry


def test_registry_names_and_unknown_runner():
    assert list_runners() == ["adb", "local", "sim", "synap", "vela"]
    with pytest.raises(MaiSrError, match="unknown runner 'tpu'"):
        get_runner("tpu")


def test_get_runner_passes_only_the_options_a_runner_takes():
    runner = get_runner("local", threads=3, min_runs=5, serial="X", delegate="gpu",
                        warmup_runs=None)
    assert isinstance(runner, LocalRunner) and isinstance(runner, Runner)
    assert (runner.threads, runner.min_runs, runner.warmup_runs) == (3, 5, 1)  # None -> default


# ---------------------------------------------------------------- schema


def test_schema_covers_exactly_the_bench_result_fields():
    props = BENCH_RESULT_SCHEMA["$defs"]["bench_result"]["properties"]
    assert set(props) == {f.name for f in dataclasses.fields(BenchResult)}


@pytest.mark.parametrize("mutate, complaint", [
    (lambda d: d.update(avg_ms="fast"), "$.avg_ms: 'fast' is not of type 'number', 'null'"),
    (lambda d: d.update(avg_ms=-1.0), "$.avg_ms: -1.0 is less than the minimum of 0"),
    (lambda d: d.update(avg_ms=float("nan")), "$.avg_ms: nan is not a finite number"),
    (lambda d: d.update(count=True), "$.count: True is not of type 'integer', 'null'"),
    (lambda d: d.update(speed=3), "('speed' was unexpected)"),
    (lambda d: d.pop("runner"), "$: 'runner' is a required property"),
    (lambda d: d.update(schema_version=99), "99 is not one of [1, 2]"),
    (lambda d: d["layers"].append({"name": "conv", "op": "CONV_2D"}),
     "$.layers[0]: 'ms' is a required property"),
    (lambda d: d["delegate"].update(kernels="two"), "$.delegate.kernels: 'two' is not of type"),
])
def test_schema_rejects_broken_results(mutate, complaint):
    doc = BenchResult(runner="local", model="m.tflite", avg_ms=1.5).to_dict()
    assert schema_errors(doc) == [] and schema_errors([doc, doc]) == []
    mutate(doc)
    errors = schema_errors(doc)
    assert any(complaint in e for e in errors), errors


# ---------------------------------------------------------------- local runner


def test_local_fixed_int8_model(models):
    result = LocalRunner(threads=2, **FAST).bench(models["int8"])
    assert result.runner == "local" and result.model == str(models["int8"])
    assert result.count == 3 and not result.simulated and result.error is None
    assert 0 < result.min_ms <= result.median_ms <= result.max_ms
    assert result.min_ms <= result.avg_ms <= result.max_ms and result.std_ms >= 0
    assert result.init_ms > 0 and result.first_ms > 0 and result.warmup_avg_ms > 0
    assert 1 < result.peak_memory_mb < 4096
    assert result.notes[0] == "random uint8 input 1x24x32x3"
    # delegate coverage: total nodes match the flatbuffer's operator count
    assert result.delegate["name"] == "XNNPACK"
    assert result.delegate["total_nodes"] == operator_count(models["int8"])
    assert 0 < result.delegate["delegated_nodes"] <= result.delegate["total_nodes"]
    facts = result.device
    assert facts["cores"] == os.cpu_count() and facts["threads"] == 2
    cpuinfo = Path("/proc/cpuinfo").read_text()
    assert facts["cpu"] and facts["cpu"] in cpuinfo
    assert schema_errors(result.to_dict()) == []


def test_float_model_is_fully_delegated_to_xnnpack_and_off_without_it(models):
    # XNNPACK runs every op of this float graph (conv, add, minimum, relu, depth_to_space)
    on = LocalRunner(**FAST).bench(models["float"])
    n = operator_count(models["float"])
    assert on.delegate == {"name": "XNNPACK", "fully_delegated": True, "delegated_nodes": n,
                           "total_nodes": n, "kernels": 1}
    assert on.notes[0] == "random float32 input 1x24x32x3"
    off = LocalRunner(xnnpack=False, **FAST).bench(models["float"])
    assert off.delegate["kernels"] == 0 and off.delegate["fully_delegated"] is False


def test_dynamic_model_runs_at_the_challenge_size_by_default(models):
    result = LocalRunner(min_runs=1, min_seconds=1e-6, warmup_runs=0).bench(models["dynamic"])
    assert result.notes[0] == "random uint8 input 1x360x640x3"
    assert result.warmup_avg_ms is None and result.count == 1  # warmup_runs=0 skips warm-up
    small = LocalRunner(shape=(12, 20), **FAST).bench(models["dynamic"])
    assert small.notes[0] == "random uint8 input 1x12x20x3"


def test_a_dynamic_model_is_timed_at_its_scales_input(tmp_path):
    """x4 and x2 dynamic files are timed (local) and priced (SyNAP simulator) at their
    scale's timing input (256x256, the efficient-SR reports'; 540x960), not the x3 one."""
    from mai_sr.challenge import timing_input
    from mai_sr.device.synap import SynapRunner, compile_plan
    from mai_sr.tflite.graph import read_graph
    from tflite_factory import prebuilt

    x3 = prebuilt("dynamic", tmp_path / "x3.tflite")
    assert ("dynamic input shape: estimated at the challenge's 1x360x640x3"
            in SynapRunner().bench(x3).notes)
    for scale in (4, 2):
        path = prebuilt(f"dynamic_x{scale}", tmp_path / f"x{scale}.tflite")
        h, w = timing_input(scale)
        result = LocalRunner(min_runs=1, min_seconds=1e-6, warmup_runs=0).bench(path)
        assert result.notes[0] == f"random uint8 input 1x{h}x{w}x3"
        graph = read_graph(path)
        assert compile_plan(graph) == compile_plan(graph, (h, w)) != compile_plan(graph, (360, 640))
        assert (f"dynamic input shape: estimated at its scale's timing input 1x{h}x{w}x3"
                in SynapRunner().bench(path).notes)


def test_runs_until_min_runs_and_min_seconds(models):
    start = time.perf_counter()
    result = LocalRunner(min_runs=1, min_seconds=0.3, warmup_runs=0).bench(models["int8"])
    assert time.perf_counter() - start >= 0.3
    assert result.count > 10  # a sub-millisecond model keeps running until 0.3 s are up
    capped = LocalRunner(min_runs=10**6, min_seconds=1e-6, warmup_runs=0,
                         max_seconds=0.2).bench(models["int8"])
    assert 1 <= capped.count < 10**6  # max_seconds stops it


def test_bad_model_files(tmp_path):
    with pytest.raises(MaiSrError, match="model file not found"):
        LocalRunner().bench(tmp_path / "missing.tflite")
    text = tmp_path / "notes.tflite"
    text.write_text("hello, not a model")
    with pytest.raises(MaiSrError, match="not a TFLite model"):
        LocalRunner().bench(text)
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\x18\x00\x00\x00TFL3" + bytes(range(256)) * 4)
    with pytest.raises(MaiSrError, match=r"broken.tflite: truncated or corrupt TFLite file"):
        LocalRunner().bench(broken)


# ---------------------------------------------------------------- CLI


def test_bench_cli_json_validates_and_needs_no_tensorflow(models):
    code = ("import json, sys; from mai_sr.cli import main; "
            f"rc = main(['bench', {str(models['int8'])!r}, '--runner', 'local', '--runs', '3', "
            "'--warmup', '1', '--min-seconds', '1e-9', '--json']); "
            "assert 'tensorflow' not in sys.modules, 'bench imported TensorFlow'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert schema_errors(payload) == [] and payload["count"] == 3


def test_bench_cli_human_output_and_errors(models, capsys):
    assert main(["bench", str(models["int8"]), "--runs", "2", "--min-seconds", "0.001"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"local: {models['int8']}") and "inference (avg):" in out
    assert "delegate: XNNPACK" in out
    assert main(["bench", "nope.tflite"]) == 2
    assert capsys.readouterr().err == "mai-sr bench: error: model file not found: nope.tflite\n"
    assert main(["bench"]) == 2
    assert "give a .tflite model file" in capsys.readouterr().err


def test_synap_runner_json_follows_the_same_schema(models, capsys):
    pytest.importorskip("mai_sr.device.synap")
    assert main(["bench", str(models["int8"]), "--runner", "synap", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert schema_errors(payload) == [] and payload["simulated"] is True
