"""The SyNAP VS680 simulator: refuses what the challenge server refused, converts clean INT8
models, prices a clip after depth-to-space as one on-chip pass of the output, reproduces the
VS680 runtimes that Table 1 of the MAI 2022 challenge report gives for the real timed files
(within 10%), and prices our SCSRN and XCAT deploy graphs within 15% of their Table 1 rows."""

import functools
import importlib.util
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tflite

import tflite_factory
from mai_sr.device import get_runner
from mai_sr.device.base import schema_errors
from mai_sr.device.synap import (COSTS, FEATURES, CostConstants, SynapRunner, compile_plan,
                                  convert, estimate_ms)
from mai_sr.errors import MaiSrError
from mai_sr.lint import lint_model
from mai_sr.tflite.graph import read_graph
from mai_sr.published import TIMED_FILES, for_architecture

ARCHITECTURES = ("abpn", "ncnet", "xcat", "scsrn")
CHALLENGE = (360, 640)


@functools.cache
def _calibration_script():
    """benchmarks/synap_calibration.py: the test converts models exactly as the fit does."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "synap_calibration.py"
    spec = importlib.util.spec_from_file_location("synap_calibration", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def _int8(model, calib_hw, path):
    path.write_bytes(_calibration_script().int8_tflite(model, calib_hw))
    return path


def _patched(src, dst, tensor_index, *, dtype=None, zero_point=None):
    """Copy of `src` with one tensor's type byte or first zero point overwritten in place."""
    data = bytearray(src.read_bytes())
    t = tflite.Model.GetRootAs(bytes(data), 0).Subgraphs(0).Tensors(tensor_index)
    if dtype is not None:
        data[t._tab.Pos + t._tab.Offset(6)] = dtype  # Tensor.type is field 1
    if zero_point is not None:
        q = t.Quantization()
        start = q._tab.Vector(q._tab.Offset(10))  # QuantizationParameters.zero_point
        data[start:start + 8] = int(zero_point).to_bytes(8, "little", signed=True)
    dst.write_bytes(bytes(data))
    return dst


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("synap")
    models = {
        "int8": tflite_factory.prebuilt("int8", d / "int8.tflite"),
        "float": tflite_factory.prebuilt("float", d / "float.tflite"),
        "clip_after": tflite_factory.prebuilt("clip_after", d / "clip_after.tflite"),
        "dynamic_resize": tflite_factory.prebuilt("dynamic_resize", d / "dynr.tflite"),
        # an INT8 SR-shaped graph with SQUARED_DIFFERENCE, an op the VS680 NPU lacks
        "squared_difference": tflite_factory.prebuilt("squared_difference", d / "sqd.tflite"),
    }
    graph = read_graph(models["int8"])
    conv2 = [op for op in graph.ops if op.type == "CONV_2D"][1]
    uint8, activation = 3, conv2.outputs[0]  # TensorType.UINT8; an interior activation
    models["mixed"] = _patched(models["int8"], d / "mixed.tflite", activation, dtype=uint8)
    models["asymmetric"] = _patched(models["int8"], d / "asym.tflite", conv2.inputs[1],
                                    zero_point=3)
    return models


def test_converts_a_clean_model(small, tmp_path):
    out = tmp_path / "out"
    result = convert(small["int8"], target="VS680", out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["model.synap", "model_info.txt"]
    with zipfile.ZipFile(out / "model.synap") as z:
        assert z.read("model.tflite") == small["int8"].read_bytes()
        plan = json.loads(z.read("plan.json"))
    assert plan["simulated"] is True and plan["target"] == "VS680"
    assert plan["input_shape"] == [1, 24, 32, 3]
    # every op is in exactly one layer, except the input QUANTIZE folded into the input
    graph = read_graph(small["int8"])
    in_layers = [i for layer in result.layers for i in layer.op_indices]
    assert sorted(in_layers) == list(range(1, len(graph.ops)))
    units = {"+".join(layer.ops): layer.unit for layer in result.layers}
    assert units == {"CONV_2D": "NN", "ADD+MINIMUM+RELU": "NN",
                     "DEPTH_TO_SPACE+QUANTIZE": "TP"}
    info = (out / "model_info.txt").read_text()
    assert "SIMULATED" in info
    layer_lines = [line.split() for line in info.splitlines()
                   if line.strip()[:1].isdigit()]
    assert [(int(f[0]), f[1]) for f in layer_lines] == [(layer.index, layer.unit)
                                                        for layer in result.layers]
    assert abs(sum(float(f[2]) for f in layer_lines) - result.total_ms) < 0.01
    summary = result.summary()
    assert "SIMULATED" in summary and f"{result.total_ms:.2f} ms" in summary


@pytest.mark.parametrize("kind, expect", [
    ("float", r"tensor '.*' is float32"),
    ("squared_difference", "operation SQUARED_DIFFERENCE is not supported"),
    ("mixed", "mixed quantization"),
    ("asymmetric", "asymmetric"),
])
def test_refuses_with_error_log(small, tmp_path, kind, expect):
    out = tmp_path / kind
    with pytest.raises(MaiSrError, match=expect) as info:
        convert(small[kind], target="VS680", out_dir=out)
    assert "\n" not in str(info.value) and str(out / "error.log") in str(info.value)
    log = (out / "error.log").read_text()
    assert "FAILED" in log and not (out / "model.synap").exists()
    error_lines = [line for line in log.splitlines() if line.startswith("E: ")]
    assert error_lines
    if kind in ("float", "squared_difference"):  # names the layer (op) and its tensor
        assert all("layer " in line and "'" in line for line in error_lines)
    if kind == "squared_difference":
        assert error_lines == [line for line in error_lines if "SQUARED_DIFFERENCE" in line]


def test_failed_conversion_keeps_earlier_output_and_success_clears_log(small, tmp_path):
    convert(small["int8"], out_dir=tmp_path)
    bundle = (tmp_path / "model.synap").read_bytes()
    with pytest.raises(MaiSrError):
        convert(small["float"], out_dir=tmp_path)
    assert (tmp_path / "model.synap").read_bytes() == bundle
    convert(small["int8"], out_dir=tmp_path)
    assert not (tmp_path / "error.log").exists()


def test_bad_arguments(small, tmp_path):
    with pytest.raises(MaiSrError, match="only VS680"):
        convert(small["int8"], target="VS640", out_dir=tmp_path)
    with pytest.raises(MaiSrError, match="--meta"):
        convert(small["int8"], out_dir=tmp_path, meta=tmp_path / "missing.yaml")
    meta = tmp_path / "meta.yaml"
    meta.write_text("delegate: npu\n")
    convert(small["int8"], out_dir=tmp_path / "m", meta=meta)
    with zipfile.ZipFile(tmp_path / "m" / "model.synap") as z:
        assert z.read("meta.yaml") == b"delegate: npu\n"


def test_shape_ops_fall_back_to_the_cpu(small, tmp_path):
    result = convert(small["dynamic_resize"], out_dir=tmp_path)
    units = {layer.ops[0]: layer.unit for layer in result.layers}
    assert units["SHAPE"] == "CPU" and units["RESIZE_NEAREST_NEIGHBOR"] == "PPU"
    assert result.input_shape == (1, *CHALLENGE, 3)  # dynamic: timed at the challenge size
    assert any("dynamic" in note for note in result.notes)


def test_clip_after_depth_to_space_is_one_on_chip_pass(small):
    """The real timed files clip after depth-to-space and show no extra DRAM round trips: the
    clamp fuses into the TP layer and costs one pass over the output's 16-lane vectors."""
    before = compile_plan(read_graph(small["int8"]))
    after = compile_plan(read_graph(small["clip_after"]))
    d2s = [layer for layer in after if layer.ops[0] == "DEPTH_TO_SPACE"]
    assert len(d2s) == 1 and d2s[0].unit == "TP"
    assert {"MINIMUM", "RELU"} <= set(d2s[0].ops)
    assert not any(layer.ops[0] in ("MINIMUM", "RELU") for layer in after)
    dram = [sum(layer.bytes_read + layer.bytes_written for layer in plan)
            for plan in (before, after)]
    assert dram[1] == pytest.approx(dram[0], abs=64)  # only the clip constants differ
    hr_vectors = 1 * (24 * 3) * (32 * 3) * 1  # 1x72x96x3 output: one vector per pixel
    extra = sum(layer.ms for layer in after) - sum(layer.ms for layer in before)
    assert extra == pytest.approx(hr_vectors * COSTS.vector_ns * 1e-6, rel=0.02)


def test_runner_result_and_synap_cli_text(small):
    runner = get_runner("synap", min_runs=3, threads=2)
    assert isinstance(runner, SynapRunner)
    result = runner.bench(small["int8"])
    assert result.simulated and result.runner == "synap" and result.count == 3
    assert "simulated" in result.device["name"]
    assert result.avg_ms == pytest.approx(sum(row["ms"] for row in result.layers), abs=1e-3)
    assert result.min_ms == result.median_ms == result.max_ms == result.avg_ms
    assert schema_errors(result.to_dict()) == []
    text = runner.format_result(result)
    assert "SIMULATED" in text and text.count("Predict") == 1
    assert f"Predict: {result.avg_ms:.2f} ms (each of 3 runs: the simulator is deterministic)" in text
    timings = next(line for line in text.splitlines() if line.startswith("Inference timings"))
    assert timings.startswith("Inference timings (ms):  load: ")
    for key in ("init:", "min:", "median:", "max:", "stddev: 0.00", f"mean: {result.avg_ms:.2f}"):
        assert key in timings
    with pytest.raises(MaiSrError, match="float32"):
        runner.bench(small["float"])


@pytest.mark.slow
def test_cli(small, tmp_path):
    run = [sys.executable, "-m", "mai_sr.cli"]
    ok = subprocess.run([*run, "synap", "convert", "--model", str(small["int8"]), "--target",
                         "VS680", "--out-dir", str(tmp_path / "ok")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "SIMULATED" in ok.stdout
    bad = subprocess.run([*run, "synap", "convert", "--model", str(small["float"]),
                          "--out-dir", str(tmp_path / "bad")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("mai-sr synap: error: ")
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr


# ---------------------------------------------------------------- the four architectures


@pytest.fixture(scope="module")
def architectures(tmp_path_factory):
    """Our deploy graphs as INT8 TFLite (random weights), any input size.

    Dynamic-shape graphs calibrate on small images in a fraction of the time; the simulator
    prices them at the challenge's 1x360x640x3, propagating shapes op by op (checked against
    a fixed-shape export in tests/test_tflite_graph.py).
    """
    from mai_sr.models import create_model

    d = tmp_path_factory.mktemp("arch")
    return {name: _int8(create_model(name, deploy=True), (32, 32), d / f"{name}.tflite")
            for name in ARCHITECTURES}


@pytest.mark.tf
@pytest.mark.slow
def test_scsrn_and_xcat_within_15pct_of_table1(architectures):
    """SCSRN (Z6) and XCAT (Aselsan Research) have no published file: their Table 1 rows are
    the check, and neither is a calibration point."""
    runner = SynapRunner()
    results = {name: runner.bench(path) for name, path in architectures.items()}
    assert {r.device["input_shape"] for r in results.values()} == {"1x360x640x3"}
    for name in ("scsrn", "xcat"):
        published = for_architecture(name).npu_ms
        assert abs(results[name].avg_ms / published - 1) <= 0.15, (name, results[name].avg_ms)
    # our ABPN deploy graph is NCNet's at 28 channels: same padded compute, same traffic
    assert results["abpn"].avg_ms == pytest.approx(results["ncnet"].avg_ms, rel=0.01)


@pytest.mark.tf
@pytest.mark.slow  # converts our four architectures (a module fixture)
def test_four_architectures_lint_clean(architectures):
    for name, path in architectures.items():
        report = lint_model(path)
        assert (report.errors, report.warnings) == (0, 0), (name, report.format_table())


# ---------------------------------------------------------------- the real timed files


@pytest.mark.parametrize("timed", TIMED_FILES, ids=lambda t: t.team)
def test_real_timed_files_within_10pct_of_table1(shared_artifacts, timed):
    result = SynapRunner().bench(shared_artifacts / timed.path)
    assert result.simulated and result.device["input_shape"] == "1x360x640x3"
    assert abs(result.avg_ms / timed.npu_ms - 1) <= 0.10, (timed.team, result.avg_ms)


def test_real_timed_files_keep_their_published_order(shared_artifacts):
    simulated = [estimate_ms(shared_artifacts / t.path) for t in TIMED_FILES]
    published = [t.npu_ms for t in TIMED_FILES]
    assert sorted(range(len(simulated)), key=simulated.__getitem__) \
        == sorted(range(len(published)), key=published.__getitem__)


@pytest.mark.tf
@pytest.mark.slow
def test_real_ncnet_file_priced_like_our_graph_with_the_clip_moved(shared_artifacts, tmp_path):
    """MegSR's file is our NCNet deploy graph with the clip after depth-to-space (same
    anchor, same width): the two must price alike, and the difference to our clip-before
    deploy graph is the clip move alone."""
    from mai_sr.models import create_model

    ours = {clip: _int8(create_model("ncnet", deploy=True, clip=clip), (32, 32),
                        tmp_path / f"{clip}.tflite") for clip in ("before_d2s", "after_d2s")}
    real = estimate_ms(shared_artifacts / "megsr_ncnet/model.tflite")
    assert estimate_ms(ours["after_d2s"]) == pytest.approx(real, rel=0.02)
    assert estimate_ms(ours["before_d2s"]) < real


def test_stored_constants_are_the_stored_fit(shared_artifacts):
    """COSTS is what benchmarks/synap_calibration.py fits on its stored features, and the
    stored features of the real files are what the simulator computes from them today."""
    import numpy as np

    cal = _calibration_script()
    result = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results"
                         / "synap_calibration.json").read_text())
    rows = {r["name"]: r for r in result["rows"]}
    feats = {n: np.array([r["features"][f] for f in FEATURES]) for n, r in rows.items()}
    for t in TIMED_FILES:
        name = f"{t.path.split('/')[0]}_file"
        assert feats[name] == pytest.approx(cal.features(shared_artifacts / t.path), rel=1e-6)
    fitted = [n for n, r in rows.items() if r["role"] in cal.FITTED_ROLES]
    coef = cal.fit(np.array([feats[n] for n in fitted]),
                   np.array([rows[n]["published_ms"] for n in fitted]),
                   (feats["ncnet_clip_after"], feats["ncnet"]))
    refit = CostConstants.from_coefficients(coef)
    for key in ("nn_efficiency", "dram_gb_per_s", "vector_ns"):
        assert getattr(refit, key) == pytest.approx(getattr(COSTS, key), rel=0.01), key
    # validation is reported, not only in-sample residuals
    real = [r for r in rows.values() if r["role"] == "real file"]
    assert len(real) == len(TIMED_FILES)
    assert all(r["loo_error_pct"] is not None and abs(r["loo_error_pct"]) <= 15 for r in real)
    outliers = [r for r in rows.values() if r["role"] == "outlier"]
    assert outliers and all(r["loo_error_pct"] is None and "not fitted" in r["note"]
                            for r in outliers)


def test_real_files_through_bench_json_and_score(shared_artifacts, tmp_path, capsys):
    """The CLI chain a user runs on a third-party file: bench --json, then score from it."""
    from mai_sr.cli import main
    from mai_sr.score import final_score

    model = shared_artifacts / "megsr_ncnet" / "model.tflite"
    assert main(["bench", str(model), "--runner", "synap", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["simulated"] is True
    assert "SIMULATED" in " ".join(bench["notes"])
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    assert main(["score", "--psnr", "29.94", "--runtime-from", str(tmp_path / "bench.json")]) == 0
    out = capsys.readouterr().out
    printed = float(out.split()[0])
    assert "not a challenge score" in out and "synap (simulated) time" in out
    assert printed == pytest.approx(final_score(29.94, bench["avg_ms"]), rel=0.01)
