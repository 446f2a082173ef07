"""The ETDS zoo's families as mai-sr models (espcn, fsrcnn, ecbsr, etds and ABPN's M6C40):
published parameter counts, the transposed conv aligned as PyTorch aligns it, training
graphs that collapse to the deploy graphs (ETDS's in the paper's two streams), the published
operations kept in the TFLite
graph, and a full-INT8 export of each family from its imported weights.

References: the paper's Table 2 (Chao et al., "Equivalent Transformation and Dual Stream
Network Construction for Mobile Image Super-Resolution", CVPR 2023; ``table2.csv``), a NumPy
transposed convolution written from PyTorch's definition, and the real checkpoints.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_ARTIFACTS
from mai_sr import registry

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[1]
ZOO = SHARED_ARTIFACTS / "etds_zoo"
ZOO_MODELS = [m for m in registry.list_models()
              if registry.MODELS[m].rsplit(".", 1)[1] in ("espcn", "fsrcnn", "ecbsr", "etds")]
# Table 2's model names -> registry names.
TABLE_NAMES = {"ESPCN": "espcn", "FSRCNN": "fsrcnn", "ECBSR-M4C16": "ecbsr",
               "ECBSR-M4C32": "ecbsr_m4c32", "ECBSR-M6C40": "ecbsr_m6c40",
               "ABPN-M4C28": "abpn", "ABPN-M6C40": "abpn_m6c40", "ETDS-T": "etds",
               "ETDS-S": "etds_s", "ETDS-M": "etds_m", "ETDS-L": "etds_l"}


def lr_image(h=29, w=37, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (1, h, w, 3)).astype(np.float32)


def trainable_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def test_parameter_counts_match_the_paper():
    from mai_sr.models import create_model

    table = ZOO / "table2.csv"
    if not table.is_file():
        pytest.skip(f"{table} not present")
    with open(table, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["model"] in TABLE_NAMES]
    assert len(rows) == 33
    for row in rows:
        name, scale = TABLE_NAMES[row["model"]], int(row["scale"])
        model = create_model(name, scale=scale, deploy=True)
        params = trainable_params(model)
        if name == "fsrcnn":  # the zero taps that align the 9x9 transposed conv
            params -= 56 * 3 * ((8 + scale) ** 2 - 81)
        if name.startswith("etds"):  # the clip conv is fixed, not trained; the paper counts it
            params += int(sum(np.prod(w.shape) for w in model.get_layer("conv_clip").weights))
        if name.startswith("etds") and scale == 3:  # the x3 padding channel's 1x1 output
            params += 28 + 1
        assert abs(params - 1000 * float(row["params_k"])) <= 5, (name, scale, params)


def pytorch_conv_transpose(x, weight, bias, stride, padding, output_padding):
    """PyTorch's ConvTranspose2d from its definition: every input pixel (i, j) adds
    ``x[i, j] * weight[:, :, a, b]`` at (i*s + a - p, j*s + b - p); output size
    (H - 1) s - 2p + k + output_padding. x: (H, W, Cin), weight: (Cin, Cout, k, k)."""
    h, w, _ = x.shape
    k = weight.shape[2]
    size = [(n - 1) * stride - 2 * padding + k + output_padding for n in (h, w)]
    out = np.zeros((size[0] + 2 * k, size[1] + 2 * k, weight.shape[1])) + bias
    for i in range(h):
        for j in range(w):
            patch = np.einsum("c,cohw->hwo", x[i, j], weight)
            top, left = i * stride - padding + k, j * stride - padding + k
            out[top:top + k, left:left + k] += patch
    return out[k:k + size[0], k:k + size[1]]


@pytest.mark.parametrize("scale", registry.SCALES)
def test_the_transposed_conv_aligns_as_pytorchs(scale):
    from mai_sr._tf import keras
    from mai_sr.models.blocks import deconv_kernel_size

    rng = np.random.default_rng(scale)
    x = rng.normal(size=(7, 9, 4)).astype(np.float32)
    weight = rng.normal(size=(4, 3, 9, 9)).astype(np.float32)
    bias = rng.normal(size=3).astype(np.float32)
    size = deconv_kernel_size(9, scale)
    layer = keras.layers.Conv2DTranspose(3, size, strides=scale, padding="same")
    layer.build((None, None, None, 4))
    kernel = np.zeros((size, size, 3, 4), np.float32)
    kernel[:9, :9] = weight.transpose(2, 3, 1, 0)
    layer.set_weights([kernel, bias])
    expected = pytorch_conv_transpose(x, weight, bias, scale, 4, scale - 1)
    np.testing.assert_allclose(layer(x[None]).numpy()[0], expected, atol=1e-4)


def randomize_small(model, seed=0):
    """Random weights that keep every family's activations in range: He-scaled kernels
    x 0.3, small biases, PReLU slopes in [0, 0.5]."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        shape = tuple(w.shape)
        if "alpha" in w.name:
            w.assign(rng.uniform(0, 0.5, shape).astype(np.float32))
        elif len(shape) == 4:
            w.assign(rng.normal(0, 0.3 * np.sqrt(2.0 / np.prod(shape[:-1])), shape)
                     .astype(np.float32))
        else:
            w.assign(rng.normal(0, 0.05, shape).astype(np.float32))
    return model


@pytest.mark.parametrize("name,scale", [("etds", 3), ("etds_l", 2), ("etds_s", 4)])
def test_the_etds_training_graph_starts_as_the_paper_and_keeps_its_two_streams(name, scale):
    """Chao et al.'s initialisation: the residual stream carries the image and ends as
    nearest-neighbour upscaling, so with the backbone's share of the last conv at zero the
    net is exactly that; training moves the residual-to-backbone weights but never lets the
    residual stream read the features, and leaves the clip convs (the transformation's fixed
    part) as they were."""
    from mai_sr._tf import keras
    from mai_sr.models import create_model

    keras.utils.set_random_seed(scale)
    model = create_model(name, scale=scale)
    blocks = registry.SIZES[name]["blocks"]
    last = model.get_layer(f"conv{blocks + 2}")
    kernel, bias = last.get_weights()
    features = kernel.shape[2] - 3
    x = lr_image(seed=scale)
    nearest = np.repeat(np.repeat(x, scale, 1), scale, 2)
    assert np.abs(model(x).numpy() - nearest).max() > 0.1  # the backbone adds something
    backbone_off = kernel.copy()
    backbone_off[:, :, :features] = 0.0
    last.set_weights([backbone_off, bias])
    np.testing.assert_allclose(model(x).numpy(), nearest, atol=1e-4)
    last.set_weights([kernel, bias])
    clip = [w.copy() for w in model.get_layer("conv_clip").get_weights()]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    noisy = nearest + np.random.default_rng(scale).normal(0, 10, nearest.shape)
    model.fit(x, noisy.astype(np.float32), epochs=4, verbose=0)
    for i in range(2, blocks + 2):
        trained = model.get_layer(f"conv{i}").get_weights()[0]
        assert not trained[:, :, :features, features:].any(), f"conv{i}"
        assert np.abs(trained[:, :, features:, :features]).max() > 1e-3, f"conv{i}"
    for before, after in zip(clip, model.get_layer("conv_clip").get_weights()):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("name", ZOO_MODELS)
@pytest.mark.parametrize("scale", registry.SCALES)
def test_the_training_graph_collapses_to_the_deploy_graph(name, scale):
    from mai_sr.models import collapse, create_model

    train = randomize_small(create_model(name, scale=scale), seed=scale)
    if name.startswith("fsrcnn"):  # centre its output (a [0, 1]-domain bias, x 255 in pixels)
        last = train.get_layer("subpixel_conv" if "_subpixel" in name else "deconv")
        last.bias.assign(last.bias + 0.5)
    deploy = collapse(train)
    reference = create_model(name, scale=scale, deploy=True)
    assert [type(layer) for layer in deploy.layers] == [type(layer) for layer in reference.layers]
    assert [w.shape for w in deploy.weights] == [w.shape for w in reference.weights]
    x = lr_image(seed=scale)
    expected, got = train(x).numpy(), deploy(x).numpy()
    assert expected.std() > 1.0  # not a constant image
    assert np.abs(got - expected).max() <= 1e-4 * max(np.abs(expected).max(), 1.0)


@pytest.mark.parametrize("name, head", [("espcn", "to_pixels"), ("fsrcnn", "clip"),
                                        ("ecbsr", "clip"), ("etds_m", "conv_clip")])
def test_the_output_of_every_family_is_fixed_to_whole_pixels(name, head):
    """The layer that makes the image (a clip, ESPCN's x 255, ETDS's last ReLU conv) has the
    fixed [0, 255] range: scale 1, zero point 0, whatever calibration sees; a conv feeding
    tanh or sigmoid has that activation's fixed input range."""
    from mai_sr.models import create_model
    from mai_sr.models.qat.quantize import plan_quantization

    plan = plan_quantization(create_model(name, deploy=True))
    assert plan[head].get_config()["output_range"] == [0.0, 255.0]
    if name == "espcn":
        assert [plan[c].get_config()["output_range"] for c in ("conv1", "conv2", "conv3")] \
            == [[-4.0, 4.0], [-4.0, 4.0], [-8.0, 8.0]]
        assert plan["sigmoid"].get_config()["output_range"] == [0.0, 255 / 256]
    if name == "fsrcnn":
        assert plan["deconv"].get_config()["per_channel"] is False
        assert plan["prelu1"].get_config() == {"output_range": None}


def tflite_ops(model, tmp_path) -> list:
    from mai_sr._tf import tf
    from mai_sr.tflite.graph import read_graph

    from mai_sr._tf import keras

    # Batch 1 and a fixed size, as the exporter builds the timed file (with a dynamic batch
    # or size, a transposed conv adds SHAPE/STRIDED_SLICE/PACK ops for its output shape).
    inp = keras.Input((24, 32, 3), batch_size=1)
    fixed = keras.Model(inp, model(inp))
    path = tmp_path / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(fixed).convert())
    return [(op.type, op.kernel) for op in read_graph(path).ops]


@pytest.mark.parametrize("name, expected", [
    ("espcn", {"CONV_2D", "TANH", "LOGISTIC", "MUL", "DEPTH_TO_SPACE"}),
    ("fsrcnn", {"CONV_2D", "PRELU", "TRANSPOSE_CONV", "MINIMUM", "RELU"}),
    ("ecbsr", {"CONV_2D", "PRELU", "ADD", "MINIMUM", "RELU", "DEPTH_TO_SPACE"}),
    ("etds_l", {"CONV_2D", "DEPTH_TO_SPACE"})])
def test_deploy_graphs_keep_the_published_operations(name, expected, tmp_path):
    from mai_sr.models import create_model

    ops = tflite_ops(create_model(name, deploy=True), tmp_path)
    assert {op for op, _ in ops} == expected
    kernels = {k for op, k in ops if op == "CONV_2D"}
    assert (5, 5) in kernels if name in ("espcn", "fsrcnn") else kernels <= {(3, 3), (1, 1)}


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint, ops", [
    ("ESPCN/ESPCN_x3", {"TANH", "LOGISTIC", "MUL"}),
    ("FSRCNN/FSRCNN_x3", {"PRELU", "TRANSPOSE_CONV"}),
    ("ECBSR/ECBSR_M4C16_x3", {"PRELU"}),
    ("ETDS/ETDS_M5C16_x3", {"CONV_2D"})])
def test_every_family_exports_to_full_int8(checkpoint, ops, tmp_path, shared_data):
    """``mai-sr import`` then ``mai-sr export --model NAME --weights W --calib``: every
    tensor of the file is integer (PReLU, TRANSPOSE_CONV, tanh and sigmoid included)."""
    from mai_sr.tflite.graph import read_graph

    source = ZOO / "pretrained" / f"{checkpoint}.pth"
    if not source.is_file():
        pytest.skip(f"{source} not present")
    weights = tmp_path / "w.weights.h5"

    def cli(*argv):
        proc = subprocess.run([sys.executable, "-m", "mai_sr", *argv], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]

    cli("import", str(source), "--scale", "3", "--out", str(weights))
    model = json.loads(Path(f"{weights}.json").read_text())["model"]
    out = tmp_path / "m.tflite"
    cli("export", str(out), "--model", model, "--weights", str(weights), "--calib",
        str(shared_data / "T91"), "--calib-n", "8", "--shape", "24x32")
    graph = read_graph(out)
    assert {t.dtype for t in graph.tensors} <= {"int8", "uint8", "int32"}
    assert ops <= {op.type for op in graph.ops}
