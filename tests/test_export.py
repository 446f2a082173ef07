"""`mai-sr export`: the INT8 graph the recipe asks for, LiteRT == Keras QAT, provenance,
atomic writes and bad input.

The run directory is built directly (deploy weights + a calibrated QAT model saved under
the file names `mai_sr.runs` defines) instead of training, to keep the tests fast.
"""

import json

import numpy as np
import pytest

from mai_sr import cli, fileio
from mai_sr.errors import MaiSrError
from mai_sr.data import BUILTIN_PHOTOS
from mai_sr.export import convert
from mai_sr.export.convert import calibration_batches, export
from mai_sr.tflite.artifacts import read_metadata
from mai_sr.lint import lint_model
from mai_sr.tflite.graph import read_graph
from mai_sr.tflite.runtime import TFLiteSR
from mai_sr.metrics import psnr
from mai_sr.models import create_model
from mai_sr.models.qat import calibrate, quantize_model
from mai_sr.registry import SCALES
from mai_sr.runs import CONFIG_FILE, FP32_DEPLOY_WEIGHTS, QAT_WEIGHTS
from mai_sr.train import TrainConfig

pytestmark = pytest.mark.tf  # the TFLite converter

SHAPE = (24, 32)
# Everything an INT8 export may contain (recipe: plain convs, anchor as CONV_2D, clip before
# depth-to-space as MINIMUM + RELU/MAXIMUM, QUANTIZE only at the uint8 edges).
ALLOWED_OPS = {"QUANTIZE", "CONV_2D", "ADD", "CONCATENATION", "MINIMUM", "MAXIMUM", "RELU",
               "DEPTH_TO_SPACE"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shared_data):
    run = tmp_path_factory.mktemp("run")
    deploy = create_model("abpn", deploy=True)
    # as `mai-sr train` writes it on the builtin photos: one held out for validation
    images = {"train": [p for p in BUILTIN_PHOTOS if p != "immunohistochemistry"],
              "val": ["immunohistochemistry"]}
    fileio.write_json(run / CONFIG_FILE, {**TrainConfig(model="abpn").to_dict(), "scale": 3,
                                          "data_images": images})
    (run / FP32_DEPLOY_WEIGHTS).parent.mkdir()
    deploy.save_weights(str(run / FP32_DEPLOY_WEIGHTS))
    qat = quantize_model(deploy)
    calibrate(qat, calibration_batches(shared_data / "Set14", 4, crop=48))
    (run / QAT_WEIGHTS).parent.mkdir()
    qat.save_weights(str(run / QAT_WEIGHTS))
    return run, qat


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "model.tflite"
    paths = export(out, run=run_dir[0], shape=SHAPE, dynamic=True)
    return paths


def test_writes_fixed_and_dynamic_files_with_uint8_pixel_io(exported):
    fixed, dynamic = exported
    assert (fixed.name, dynamic.name) == ("model.tflite", "model_none.tflite")
    for path, in_shape in ((fixed, [1, *SHAPE, 3]), (dynamic, [1, -1, -1, 3])):
        graph = read_graph(path)
        (inp,), (out,) = graph.input_tensors, graph.output_tensors
        assert list(inp.shape_signature) == in_shape
        for tensor in (inp, out):  # raw pixels in and out
            assert tensor.dtype == "uint8"
            assert tensor.quantization.scales == (1.0,) and tensor.quantization.zero_points == (0,)


def test_graph_is_what_the_recipe_asks(exported):
    graph = read_graph(exported[0])
    types = [op.type for op in graph.ops]
    assert set(types) <= ALLOWED_OPS, set(types) - ALLOWED_OPS
    # QUANTIZE only at the edges (uint8 <-> int8), no DEQUANTIZE, no float tensor at all
    assert [i for i, t in enumerate(types) if t == "QUANTIZE"] == [0, len(types) - 1]
    assert not [t.name for t in graph.tensors if t.is_float]
    # the clip runs before depth-to-space, which is the last op before the output QUANTIZE
    d2s = types.index("DEPTH_TO_SPACE")
    assert d2s == len(types) - 2 and "MINIMUM" in types[:d2s]
    # depth-to-space adds no range of its own
    (d2s_in,), (d2s_out,) = graph.op_inputs(graph.ops[d2s]), graph.op_outputs(graph.ops[d2s])
    assert d2s_in.quantization == d2s_out.quantization
    assert d2s_out.quantization.scales == (1.0,)


def test_exports_are_lint_clean(exported):
    for path in exported:
        report = lint_model(path)
        assert (report.errors, report.warnings) == (0, 0), report.format_table()


@pytest.mark.parametrize("name", ["scsrn", "xcat"])
@pytest.mark.slow
def test_other_graph_shapes_convert_lint_clean(name, tmp_path):
    """SCSRN's skip concatenation and XCAT's anchor + collapsed group convs."""
    qat = quantize_model(create_model(name, deploy=True))
    calibrate(qat, [np.random.default_rng(1).uniform(0, 255, (1, *SHAPE, 3)).astype(np.float32)])
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(convert.convert_keras(qat, SHAPE, "int8"))
    report = lint_model(path)
    assert (report.errors, report.warnings) == (0, 0), report.format_table()
    graph = read_graph(path)
    if name == "scsrn":  # the concat and all its inputs share one range: no requantize op
        (op,) = [op for op in graph.ops if op.type == "CONCATENATION"]
        params = {t.quantization for t in graph.op_inputs(op) + graph.op_outputs(op)}
        assert len(params) == 1


def test_anchor_is_an_exact_conv(exported):
    graph = read_graph(exported[0])
    anchors = [op for op in graph.ops if op.type == "CONV_2D"
               and graph.op_inputs(op)[1].shape == (27, 1, 1, 3)]
    assert len(anchors) == 1
    weights = graph.op_inputs(anchors[0])[1]
    values = graph.constant_data(weights.index)
    assert set(np.unique(values)) == {0, 127}  # 1.0 == 127 * (1/127), exactly
    np.testing.assert_allclose(weights.quantization.scales, 1 / 127, rtol=1e-6)
    assert graph.op_outputs(anchors[0])[0].quantization.scales == (1.0,)


def test_litert_matches_the_keras_qat_model(exported, run_dir, shared_data):
    """Acceptance: the INT8 file reproduces the fake-quant Keras model (to 1 LSB)."""
    from mai_sr.data import load_pairs

    qat = run_dir[1]
    model = TFLiteSR(exported[1])
    pairs = sorted(load_pairs(shared_data / "Set14"), key=lambda p: p.lr.size)[:3]
    for pair in pairs:
        keras_out = np.clip(np.round(qat(pair.lr[None].astype(np.float32), training=False)
                                     .numpy()[0]), 0, 255).astype(np.uint8)
        litert_out = model.upscale(pair.lr)
        diff = np.abs(keras_out.astype(int) - litert_out.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99, (pair.name, diff.max())
        assert abs(psnr(litert_out, pair.hr) - psnr(keras_out, pair.hr)) < 0.02
    fixed = TFLiteSR(exported[0])
    lr = pairs[0].lr[:SHAPE[0], :SHAPE[1]]
    np.testing.assert_array_equal(fixed.run(lr), model.run(lr))


def test_provenance_in_sidecar_and_metadata(exported, run_dir):
    run = run_dir[0]
    for path in exported:
        side = json.loads(path.with_name(path.name + ".json").read_text())
        assert side["sha256"] == fileio.sha256_file(path)
        meta = read_metadata(path)
        assert meta == {k: v for k, v in side.items() if k not in ("file", "sha256")}
        assert side["model"] == "abpn" and side["scale"] == 3 and side["precision"] == "int8"
        assert side["quantization"] == "qat" and side["source"]["stage"] == "qat"
        config = json.loads((run / CONFIG_FILE).read_text())
        assert side["source"]["run_config_sha256"] == fileio.sha256_json(config)
        assert side["source"]["run"] == run.name  # the run's name, never a local path
        assert side["toolkit"]["mai_sr"]
        assert side["source"]["training"] == {"data": ["builtin"], "val": None,
                                              "images": config["data_images"]["train"],
                                              "val_images": ["immunohistochemistry"]}
    assert json.loads(exported[0].with_name("model.tflite.json").read_text())["output_shape"] \
        == [1, SHAPE[0] * 3, SHAPE[1] * 3, 3]


def test_eval_of_the_export_on_its_training_photos_says_so(exported, run_dir, capsys):
    """`mai-sr eval model.tflite` after the quick start scores the builtin photos, which
    the run trained on: the table says so and names the run."""
    assert cli.main(["eval", str(exported[1]), "--quiet"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"builtin: 8 of these 9 images are this model's training images and 1 its "
            f"validation image (run {run_dir[0].name}): not a test score") in out


@pytest.mark.slow
def test_converter_samples_do_not_change_any_range(run_dir, exported, monkeypatch):
    """The INT8 converter demands a representative dataset; every range already comes from
    a fake-quant op, so what it sees must not matter."""
    rng = np.random.default_rng(0)
    monkeypatch.setattr(convert, "_converter_samples", lambda shape: iter(
        [[rng.uniform(0, 40, (1, *shape, 3)).astype(np.float32)] for _ in range(3)]))
    path = exported[0].with_name("other_samples.tflite")
    path.write_bytes(convert.convert_keras(run_dir[1], SHAPE, "int8"))
    other, base = read_graph(path), read_graph(exported[0])
    assert [t.quantization for t in other.tensors] == [t.quantization for t in base.tensors]


@pytest.mark.slow
def test_ptq_from_weights_calibrates_on_real_crops(run_dir, tmp_path, shared_data):
    out = tmp_path / "ptq.tflite"
    (path,) = export(out, model="abpn", weights=run_dir[0] / FP32_DEPLOY_WEIGHTS, shape=SHAPE,
                     calib=str(shared_data / "Set5"), calib_n=3)
    side = json.loads((tmp_path / "ptq.tflite.json").read_text())
    assert side["quantization"] == "ptq" and side["source"]["weights_kind"] == "float"
    # Folder names only: provenance is shipped, and local absolute paths must not be.
    assert side["calibration"] == {"data": "Set5", "crops": 3, "crop": 96}
    graph = read_graph(path)
    assert not [t.name for t in graph.tensors if t.is_float]
    assert graph.input_tensors[0].quantization.scales == (1.0,)


@pytest.mark.slow
def test_qat_weights_file_and_the_challenge_shape(run_dir, tmp_path):
    (path,) = export(tmp_path / "m.tflite", model="abpn", weights=run_dir[0] / QAT_WEIGHTS)
    graph = read_graph(path)
    assert list(graph.input_tensors[0].shape) == [1, 360, 640, 3]
    assert list(graph.output_tensors[0].shape) == [1, 1080, 1920, 3]
    assert json.loads((tmp_path / "m.tflite.json").read_text())["source"]["weights_kind"] == "qat"


def test_fp16_export_is_float(run_dir, tmp_path):
    (path,) = export(tmp_path / "f.tflite", run=run_dir[0], shape=SHAPE, precision="fp16")
    graph = read_graph(path)
    assert graph.input_tensors[0].dtype == "float32"
    assert "float16" in {t.dtype for t in graph.tensors}
    assert json.loads((tmp_path / "f.tflite.json").read_text())["source"]["stage"] == "fp32"


def test_failed_export_writes_nothing_and_keeps_the_old_file(run_dir, exported, tmp_path,
                                                             monkeypatch):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"previous export")
    good = exported[0].read_bytes()
    calls = []

    def flaky(model, shape, precision, representative=None):
        calls.append(shape)
        if len(calls) == 2:  # the dynamic file fails after the fixed one converted
            raise MaiSrError("TFLite conversion failed (int8): simulated")
        return good

    monkeypatch.setattr(convert, "convert_keras", flaky)
    with pytest.raises(MaiSrError, match="simulated"):
        export(out, run=run_dir[0], shape=SHAPE, dynamic=True)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]


@pytest.mark.parametrize("kwargs, message", [
    ({}, "give one source"),
    ({"model": "abpn"}, "--model and --weights go together"),
    ({"weights": "w.h5"}, "--model and --weights go together"),
    ({"model": "abpn", "weights": "missing.weights.h5"}, "missing.weights.h5 not found"),
    ({"run": "no-such-run"}, "config.json: not found"),
    ({"model": "abpn", "weights": "w.h5", "precision": "int4"}, "--precision"),
])
def test_bad_arguments_are_one_line_errors(kwargs, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.h5").write_text("not weights")
    with pytest.raises(MaiSrError, match=message) as info:
        export(tmp_path / "m.tflite", shape=SHAPE, **kwargs)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.glob("*.tflite"))


def test_corrupt_weights_and_bad_output_name(tmp_path):
    bad = tmp_path / "bad.weights.h5"
    bad.write_text("not an h5 file")
    with pytest.raises(MaiSrError, match="bad.weights.h5: not deploy-graph or QAT weights"):
        export(tmp_path / "m.tflite", model="abpn", weights=bad)
    with pytest.raises(MaiSrError, match="must end in .tflite"):
        export(tmp_path / "m.onnx", model="abpn", weights=bad)


def test_cli_error_is_one_line_and_exit_2(tmp_path, capsys):
    code = cli.main(["export", str(tmp_path / "m.tflite"), "--model", "abpn"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("mai-sr export: error: --model and --weights go together")
    assert err.count("\n") == 1


@pytest.mark.slow
def test_the_scale_comes_from_the_source_and_sets_the_timing_shape(run_dir, tmp_path, capsys):
    """x4 --model/--weights: 256x256 LR by default (the efficient-SR reports' input), scale 4
    in the sidecar; a scale the source contradicts is a one-line error."""
    x4 = tmp_path / "x4.weights.h5"
    create_model("abpn", scale=4, deploy=True).save_weights(str(x4))
    (path,) = export(tmp_path / "x4.tflite", model="abpn", weights=x4, scale=4, calib_n=2)
    graph = read_graph(path)
    assert list(graph.input_tensors[0].shape) == [1, 256, 256, 3]
    assert list(graph.output_tensors[0].shape) == [1, 1024, 1024, 3]
    assert json.loads((tmp_path / "x4.tflite.json").read_text())["scale"] == 4
    with pytest.raises(MaiSrError, match=r"not deploy-graph or QAT weights of abpn x3"):
        export(tmp_path / "m.tflite", model="abpn", weights=x4, shape=SHAPE)
    with pytest.raises(MaiSrError, match=r"--scale 2: --run .* trained x3"):
        export(tmp_path / "m.tflite", run=run_dir[0], scale=2, shape=SHAPE)
    capsys.readouterr()  # the exports' progress bars
    assert cli.main(["export", str(tmp_path / "p.tflite"), "--pretrained", "abpn",
                     "--scale", "4"]) == 2
    err = capsys.readouterr().err
    assert err == ("mai-sr export: error: --scale 4: the shipped models are x3; train one "
                   "(mai-sr train --scale) and export it with --run\n")
    assert not list(tmp_path.glob("m.tflite")) and not (tmp_path / "p.tflite").exists()


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.slow
def test_int8_files_at_every_scale_keep_the_exact_anchor_and_tile_bit_exactly(scale, tmp_path,
                                                                           shared_data):
    """At x2, x3 and x4: the anchor is an exact 0/1 CONV_2D 3 -> 3s^2, the file lints clean,
    and the fixed-shape file tiled over a larger real image equals the dynamic file's
    whole-image output, bit for bit."""
    from mai_sr.data import load_pairs

    qat = quantize_model(create_model("abpn", scale=scale, deploy=True))
    calibrate(qat, calibration_batches(shared_data / "Set14", 2, crop=32, scale=scale))
    fixed, dynamic = tmp_path / "fixed.tflite", tmp_path / "dynamic.tflite"
    fixed.write_bytes(convert.convert_keras(qat, SHAPE, "int8"))
    dynamic.write_bytes(convert.convert_keras(qat, None, "int8"))
    graph = read_graph(fixed)
    out_channels = 3 * scale * scale
    (anchor,) = [op for op in graph.ops if op.type == "CONV_2D"
                 and graph.op_inputs(op)[1].shape == (out_channels, 1, 1, 3)]
    assert set(np.unique(graph.constant_data(graph.op_inputs(anchor)[1].index))) == {0, 127}
    assert list(graph.output_tensors[0].shape) == [1, SHAPE[0] * scale, SHAPE[1] * scale, 3]
    report = lint_model(fixed)
    assert (report.errors, report.warnings) == (0, 0), report.format_table()
    lr = load_pairs(shared_data / "Set5", scale=scale)[0].lr[:45, :71]  # odd, > SHAPE
    whole = TFLiteSR(dynamic).run(lr)
    assert whole.shape == (45 * scale, 71 * scale, 3) and TFLiteSR(fixed).scale == scale
    np.testing.assert_array_equal(TFLiteSR(fixed).upscale(lr), whole)


# ---------------------------------------------------------------- sets, policies, calibration


def dead_pid() -> int:
    import subprocess
    import sys

    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)


@pytest.mark.slow
def test_fixed_and_dynamic_files_of_two_exports_of_one_run_are_told_apart(run_dir, tmp_path):
    """Same run, same config, different weights: only the weights' hash tells them apart."""
    import shutil

    from mai_sr.tflite.artifacts import check_twins, sidecar_path

    first = export(tmp_path / "a" / "m.tflite", run=run_dir[0], shape=SHAPE, dynamic=True)
    meta = [read_metadata(p) for p in first]
    assert meta[0]["weights_sha256"] == meta[1]["weights_sha256"]
    check_twins(*first)
    changed = tmp_path / run_dir[0].name
    shutil.copytree(run_dir[0], changed)
    qat = quantize_model(create_model("abpn", deploy=True))
    qat.load_weights(str(changed / QAT_WEIGHTS))
    qat.set_weights([w * 1.01 if w.ndim == 4 else w for w in qat.get_weights()])
    qat.save_weights(str(changed / QAT_WEIGHTS))
    second = export(tmp_path / "b" / "m.tflite", run=changed, shape=SHAPE, dynamic=True)
    assert read_metadata(second[0])["source"] == meta[0]["source"]  # the run looks the same
    torn = tmp_path / "torn"
    torn.mkdir()
    for path in (first[0], second[1]):  # fixed from the first export, dynamic from the second
        for f in (path, sidecar_path(path)):
            shutil.copy(f, torn / f.name)
    with pytest.raises(MaiSrError, match="not one export .*weights_sha256"):
        check_twins(torn / "m.tflite", torn / "m_none.tflite")


@pytest.mark.slow
def test_existing_files_need_force_and_dead_writers_temps_are_cleaned(tmp_path, capfd):
    out = tmp_path / "m.tflite"
    stale = tmp_path / f".m.tflite.{dead_pid()}.abcd1234.tflite"
    stale.write_bytes(b"half a network")
    args = ["export", str(out), "--pretrained", "abpn", "--shape", "24x32"]
    assert cli.main(args) == 0
    err = capfd.readouterr().err
    assert "fully_quantize" not in err  # the converter's C++ line is hidden
    assert not stale.exists()
    before = out.read_bytes()
    assert cli.main(args) == 2
    err = capfd.readouterr().err
    assert err == (f"mai-sr export: error: {out}: already exists; add --force to replace "
                   "the 2 files\n")
    assert out.read_bytes() == before
    assert cli.main([*args, "--force"]) == 0


def test_too_little_calibration_data_and_unused_calib_are_refused(run_dir, tmp_path, capsys):
    from PIL import Image

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for i in range(3):
        Image.new("RGB", (30, 24), (40 * i, 90, 200)).save(tiny / f"{i}.png")  # LR 10x8
    weights = run_dir[0] / FP32_DEPLOY_WEIGHTS
    assert cli.main(["export", str(tmp_path / "p.tflite"), "--model", "abpn", "--weights",
                     str(weights), "--calib", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--calib {tiny}: too little calibration data" in err
    assert "the largest of 3 is 10x8" in err
    assert cli.main(["export", str(tmp_path / "q.tflite"), "--run", str(run_dir[0]),
                     "--calib", str(tiny)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--calib" in err and "unused" in err
    assert not list(tmp_path.glob("*.tflite"))


def test_export_says_precision_shapes_quantization_source_and_sidecar(run_dir, tmp_path,
                                                                      shared_data, capsys):
    """Each file's lines name its precision and shapes (as the graph has them), where its
    quantization comes from (QAT of the run, or PTQ and its calibration set) and its
    sidecar; then the next commands."""
    out = tmp_path / "q.tflite"
    assert cli.main(["export", str(out), "--run", str(run_dir[0]), "--shape", "24x32",
                     "--dynamic"]) == 0
    lines = capsys.readouterr().out.splitlines()
    fixed_in = "x".join(map(str, read_graph(out).input_tensors[0].shape))
    fixed_out = "x".join(map(str, read_graph(out).output_tensors[0].shape))
    assert lines[0] == f"{out}: int8, {fixed_in} -> {fixed_out} (x3 abpn)"
    assert lines[1] == (f"  quantization: QAT, the quantization-aware-trained ranges of run "
                        f"{run_dir[0].name} (qat weights)")
    assert lines[2] == f"  sidecar: {out}.json"
    assert lines[3] == f"{tmp_path / 'q_none.tflite'}: int8, 1xHxWx3 -> 1x3Hx3Wx3 (x3 abpn)"
    assert lines[-1].startswith(f"next: mai-sr lint {out}; mai-sr eval {tmp_path}/q_none.tflite")
    weights = run_dir[0] / FP32_DEPLOY_WEIGHTS
    assert cli.main(["export", str(tmp_path / "p.tflite"), "--model", "abpn", "--weights",
                     str(weights), "--calib", str(shared_data / "Set5"), "--calib-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{tmp_path / 'p.tflite'}: int8, 1x360x640x3 -> 1x1080x1920x3")
    assert lines[1] == ("  quantization: PTQ of weights deploy.weights.h5, calibrated on 3 "
                        "crops of Set5")
    check = json.loads((tmp_path / "p.tflite.json").read_text())["calibration_check"]
    assert lines[2] == (f"  INT8 vs FP32: {check['int8_vs_fp32_psnr']['calibration']:.2f} dB "
                        "on the calibration crops, "
                        f"{check['int8_vs_fp32_psnr']['builtin']:.2f} dB on the builtin photos")


def test_a_bias_equal_on_every_channel_keeps_its_value_in_the_int8_file():
    """ETDS's clip conv: bias 255 on every channel, one weight of -0.90 to -1.00 each. The
    converter quantizes such a constant with its first channel's scale for all channels (the
    file read 253-269 instead of 255 on ETDS-M); the export's biases are those of the model,
    and the model keeps its own."""
    from ai_edge_litert.interpreter import Interpreter

    deploy = create_model("etds", scale=3, deploy=True)
    clip = deploy.get_layer("conv_clip")
    kernel = np.zeros(clip.kernel.shape, np.float32)
    for c in range(kernel.shape[-1]):
        kernel[0, 0, c, c] = -1.0 + 0.1 * c / kernel.shape[-1]
    clip.set_weights([kernel, np.full(kernel.shape[-1], 255.0, np.float32)])
    quantized = quantize_model(deploy, calibration=calibration_batches("builtin", 4, crop=32,
                                                                        scale=3))
    interpreter = Interpreter(model_content=convert.convert_keras(quantized, (8, 8), "int8"))
    stored = next(t for t in interpreter.get_tensor_details()
                  if "quant_conv_clip/" in t["name"] and t["dtype"] == np.int32)
    found = interpreter.get_tensor(stored["index"]) * stored["quantization_parameters"]["scales"]
    assert np.abs(found - 255.0).max() < 0.05
    bias = next(w.numpy() for w in quantized.get_layer("quant_conv_clip").weights
                if "bias" in w.name)
    assert np.all(bias == 255.0)
