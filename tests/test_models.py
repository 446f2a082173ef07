"""Models: every deploy-graph transformation is numerically equivalent to what it replaces.

Random weights (all trainable weights, every branch, biases included) and random inputs in
the uint8 range at odd sizes; references are independent (NumPy nearest-neighbour upsampling,
the training graph itself, published parameter counts).
"""

import numpy as np
import pytest

from mai_sr import registry
from mai_sr._tf import keras, tf
from mai_sr.errors import MaiSrError
from mai_sr.tflite.graph import read_graph
from mai_sr.models import collapse, create_model, custom_objects, list_models
from mai_sr.models.blocks import (ClipByValue, Collapsible, ConcatAnchor, DepthToSpace,
                                  NearestConvAnchor, ScaledConv2D)

pytestmark = pytest.mark.tf  # Keras models

MODELS = list_models()
SCALES = registry.SCALES
# Models whose deploy graph ends in clip -> depth-to-space, tested with random weights here
# (the ETDS zoo's families, whose PReLU nets and heads need their own, are in
# tests/test_zoo_models.py).
CLIP_HEAD_MODELS = [m for m in MODELS if registry.MODELS[m].rsplit(".", 1)[1]
                    in ("abpn", "ncnet", "scsrn", "xcat")]
# Deploy graphs of 3x3 convs, ReLU, ADD/CONCATENATION and depth-to-space only (the ETDS zoo's
# ESPCN, FSRCNN and ECBSR keep their published tanh/sigmoid, PReLU, 5x5 and 9x9 kernels).
NPU_FRIENDLY_MODELS = [m for m in MODELS if registry.MODELS[m].rsplit(".", 1)[1]
                       in ("abpn", "ncnet", "scsrn", "xcat", "etds")]

# Published parameter counts (trainable).
# ABPN: Du et al., "Anchor-based Plain Net for Mobile Image Super-Resolution", CVPRW 2021
# (MAI 2021 winner); restated in ../shared/DESIGN.md "Models".
ABPN_PARAMS = 42_539
# NCNet: Luo et al., "Fast Nearest Convolution for Real-Time Efficient Image
# Super-Resolution", ECCVW 2022 (team MegSR, MAI 2022 report, sec. 4.10); DESIGN.md "Models".
NCNET_PARAMS = 52_279
NEAREST_CONV_WEIGHTS = 27 * 3  # the frozen 1x1 anchor 3 -> 27 (x3), no bias

# Allowed deploy-graph ops (MAI 2022 challenge report, section 3.1: 3x3 kernels at most).
ALLOWED_OPS = {"CONV_2D", "DEPTH_TO_SPACE", "ADD", "CONCATENATION", "RELU", "RELU6",
               "RELU_N1_TO_1", "RELU_0_TO_1", "MINIMUM", "MAXIMUM"}


def lr_image(h=37, w=53, seed=0):
    """Random uint8-valued RGB image as float32, batch 1."""
    return np.random.default_rng(seed).integers(0, 256, (1, h, w, 3)).astype(np.float32)


def randomize(model, seed=0, gain=0.5):
    """Random He-scaled kernels and non-zero biases in every trainable weight (all branches),
    in deploy units: the weights of a ScaledConv2D (training graphs' [0, 1] domain) are
    divided by its fixed factors, so every graph is a random net on the pixel scale."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        shape = tuple(w.shape)
        std = gain * np.sqrt(2.0 / np.prod(shape[:-1])) if len(shape) == 4 else 3.0
        w.assign(rng.normal(0.0, std, shape).astype(np.float32))
    for layer in model.submodules:
        if isinstance(layer, ScaledConv2D):
            layer.kernel.assign(layer.kernel / layer.kernel_factor)
            layer.bias.assign(layer.bias / layer.output_scale)
    return model


def tflite_ops(model, tmp_path):
    """[(op type, kernel (kh, kw) or None)] of the float TFLite conversion of ``model``."""
    path = tmp_path / f"{model.name}.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return [(op.type, op.kernel) for op in read_graph(path).ops]


# ------------------------------------------------------------------ anchors and head


@pytest.mark.parametrize("scale", SCALES)
def test_nearest_conv_anchor_with_depth_to_space_is_nearest_upsampling(scale):
    x = lr_image()
    up = DepthToSpace(scale)(NearestConvAnchor(scale)(x)).numpy()
    reference = np.repeat(np.repeat(x, scale, axis=1), scale, axis=2)
    np.testing.assert_array_equal(up, reference)


@pytest.mark.parametrize("scale", SCALES)
def test_nearest_conv_anchor_is_frozen_and_bias_free(scale):
    layer = NearestConvAnchor(scale)
    layer.build((None, None, None, 3))
    assert layer.trainable_weights == []
    assert [tuple(w.shape) for w in layer.weights] == [(1, 1, 3, 3 * scale * scale)]


@pytest.mark.parametrize("scale", SCALES)
def test_concat_anchor_equals_nearest_conv_anchor(scale):
    x = lr_image(seed=1)
    np.testing.assert_array_equal(ConcatAnchor(scale)(x).numpy(),
                                  NearestConvAnchor(scale)(x).numpy())


@pytest.mark.parametrize("scale", SCALES)
def test_clip_before_depth_to_space_equals_clip_after(scale):
    x = np.random.default_rng(2).uniform(-200, 450, (1, 37, 53, 3 * scale * scale))
    x = x.astype(np.float32)
    before = DepthToSpace(scale)(ClipByValue()(x)).numpy()
    after = ClipByValue()(DepthToSpace(scale)(x)).numpy()
    assert (before == 0).any() and (before == 255).any()  # the clip did bite
    np.testing.assert_array_equal(before, after)


# ------------------------------------------------------------------ whole models


def test_published_parameter_counts():
    abpn = create_model("abpn")
    assert abpn.count_params() == ABPN_PARAMS  # published form: concat anchor, no frozen weights
    for name, params in (("abpn", ABPN_PARAMS), ("ncnet", NCNET_PARAMS)):
        model = create_model(name, deploy=True)
        assert sum(np.prod(w.shape) for w in model.trainable_weights) == params
        assert sum(np.prod(w.shape) for w in model.non_trainable_weights) == NEAREST_CONV_WEIGHTS


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("deploy", [False, True])
@pytest.mark.parametrize("scale", SCALES)
def test_any_input_size_maps_to_scale_times_larger_rgb(name, deploy, scale):
    model = create_model(name, scale=scale, deploy=deploy)
    for h, w in ((37, 53), (1, 1), (8, 5)):
        assert model(lr_image(h, w)).shape == (1, scale * h, scale * w, 3)


@pytest.mark.parametrize("name, overrides, scale", [
    *[(name, {}, scale) for name in CLIP_HEAD_MODELS for scale in SCALES],
    ("scsrn", {"block": "clb"}, 3), ("abpn", {"block": "repconv"}, 3)])
def test_collapse_gives_the_deploy_graph_with_the_same_outputs(name, overrides, scale):
    train = randomize(create_model(name, scale=scale, **overrides))
    deploy = collapse(train)
    x = lr_image()
    expected, got = train(x).numpy(), deploy(x).numpy()
    # With clipped outputs the comparison is only meaningful where values are in range.
    assert np.mean((expected > 0) & (expected < 255)) > 0.2
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()
    # Same structure as the registered deploy graph: plain convs, nearest anchor, clip -> D2S.
    reference = create_model(name, scale=scale, deploy=True)
    assert [type(l) for l in deploy.layers] == [type(l) for l in reference.layers]
    assert [w.shape for w in deploy.weights] == [w.shape for w in reference.weights]
    assert not any(isinstance(l, (Collapsible, ConcatAnchor, ScaledConv2D))
                   for l in deploy.layers)
    assert [l.name for l in deploy.layers][-2:] == ["clip", "depth_to_space"]


@pytest.mark.parametrize("scale", SCALES)
def test_abpn_published_form_and_deploy_form_are_identical(scale):
    # on raw pixels (no [0, 1] domain factors), so the two share conv weights one to one
    published = randomize(create_model("abpn", scale=scale, normalize=False), seed=3)
    deploy = create_model("abpn", scale=scale, deploy=True)
    for layer in published.layers:
        if isinstance(layer, keras.layers.Conv2D):
            deploy.get_layer(layer.name).set_weights(layer.get_weights())
    assert [l.name for l in published.layers][-2:] == ["depth_to_space", "clip"]
    x = lr_image(seed=3)
    np.testing.assert_array_equal(published(x).numpy(), deploy(x).numpy())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.slow
def test_keras_save_load_round_trip(name, tmp_path):
    for deploy in (False, True):
        model = randomize(create_model(name, deploy=deploy, max_abs_weight=1.0), seed=4)
        path = tmp_path / f"{name}_{deploy}.keras"
        model.save(path)
        loaded = keras.models.load_model(path)
        x = lr_image(9, 11)
        np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())
        assert len(loaded.non_trainable_weights) == len(model.non_trainable_weights)


def test_h5_round_trip_of_a_training_graph(tmp_path):
    # Legacy HDF5 needs the custom objects (Keras' rule for nested custom constraints).
    model = randomize(create_model("scsrn", max_abs_weight=1.0), seed=5)
    model.save(tmp_path / "scsrn.h5")
    loaded = keras.models.load_model(tmp_path / "scsrn.h5", custom_objects=custom_objects())
    x = lr_image(9, 11)
    np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())


@pytest.mark.parametrize("name", NPU_FRIENDLY_MODELS)
@pytest.mark.slow
def test_deploy_graph_converts_to_npu_friendly_tflite_ops(name, tmp_path):
    ops = tflite_ops(create_model(name, deploy=True), tmp_path)
    assert {op for op, _ in ops} <= ALLOWED_OPS
    kernels = [k for op, k in ops if op == "CONV_2D"]
    assert kernels and all(kh <= 3 and kw <= 3 for kh, kw in kernels)
    # Clip (MINIMUM/RELU) runs before depth-to-space, on the small LR tensor.
    assert [op for op, _ in ops][-1] == "DEPTH_TO_SPACE"


@pytest.mark.slow
def test_published_abpn_form_converts_to_the_slow_variant(tmp_path):
    ops = [op for op, _ in tflite_ops(create_model("abpn"), tmp_path)]
    assert "CONCATENATION" in ops
    assert ops.index("DEPTH_TO_SPACE") < ops.index("MINIMUM")


@pytest.mark.slow
def test_max_abs_weight_bounds_every_kernel_after_training_and_anchor_stays_fixed():
    model = randomize(create_model("xcat", block="repconv", max_abs_weight=0.05), seed=6)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mae")
    x = lr_image(12, 12)
    model.fit(x, np.zeros((1, 36, 36, 3), np.float32), epochs=1, verbose=0)
    # The bound is in deploy units: on the kernels with the fixed [0, 1]-domain factors folded
    # in (conv1's input x 1/255, conv_out's output x 255), as the deploy graph holds them.
    kernels = [m.collapse()[0] if isinstance(m, ScaledConv2D) else m.kernel.numpy()
               for m in model.submodules if isinstance(m, keras.layers.Conv2D) and m.trainable]
    assert len(kernels) == 1 + 3 * 2 + 1  # conv1, three RepConvs (3x3 + 1x1), conv_out
    assert max(np.abs(k).max() for k in kernels) <= 0.05 * (1 + 1e-6)
    assert min(np.abs(k).max() for k in kernels) > 0.04  # the clip did bite everywhere
    anchor = model.get_layer("anchor").kernel.numpy()
    out = np.arange(27)
    assert anchor[0, 0, out % 3, out].tolist() == [1.0] * 27 and anchor.sum() == 27
    # The constraint carries over to the deploy graph for QAT.
    assert collapse(model).get_layer("conv1").kernel_constraint.max_abs == 0.05


def test_every_registered_model_module_defines_the_model_contract():
    """build, DEFAULTS (with the options the toolkit passes: normalize, input_size), DEPLOY
    and RECIPE (training defaults, keys of mai_sr.train.BASE_RECIPE)."""
    from mai_sr.registry import model_module
    from mai_sr.train import BASE_RECIPE

    assert MODELS == sorted(MODELS) and len(MODELS) >= 4
    for name in MODELS:
        module = model_module(name)
        assert callable(module.build), name
        assert {"normalize", "input_size"} <= set(module.DEFAULTS), name
        assert set(module.DEPLOY) <= set(module.DEFAULTS), name
        assert set(module.RECIPE) <= set(BASE_RECIPE), name


def test_registry_errors_name_the_bad_input():
    with pytest.raises(MaiSrError, match="unknown model 'foo'"):
        create_model("foo")
    with pytest.raises(MaiSrError, match="scale 5 is not one of 2, 3, 4"):
        create_model("abpn", scale=5)
    with pytest.raises(MaiSrError, match="unknown option.*channelz"):
        create_model("abpn", channelz=3)
    with pytest.raises(MaiSrError, match="unknown block 'dense'"):
        create_model("scsrn", block="dense")
