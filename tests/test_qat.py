"""QAT on the deploy graphs: what gets a range, the fixed [0, 255] ranges, and the pitfalls
of QAT (a drifting output range, D2S/concat adding ranges, a stale or inexact weight
range), plus weight clipping."""

import numpy as np
import pytest

from mai_sr._tf import keras, tf
from mai_sr.errors import MaiSrError
from mai_sr.models import create_model
from mai_sr.models.blocks import ClipByValue, DepthToSpace
from mai_sr.models.qat import (apply_weight_clip, calibrate, plan_quantization, quantize_model,
                              quantize_scope)
from mai_sr.models.qat.quantize import equalize_fixed_ranges
from mai_sr.models.qat.configs import (ConvQuantizeConfig, MovingAverageRangeQuantizer,
                                       OutputQuantizeConfig, PassThroughQuantizeConfig,
                                       PerChannelWeightQuantizer)
from mai_sr.models.qat.weight_clip import clip_kernel, kernel_variables
from mai_sr.registry import list_models

pytestmark = pytest.mark.tf  # tfmot quantization-aware training

MODELS = list_models()
PIXELS = [0.0, 255.0]


@pytest.fixture(scope="module")
def deploy_models():
    return {name: create_model(name, deploy=True) for name in MODELS}


@pytest.fixture(scope="module")
def qat_models(deploy_models):
    return {name: quantize_model(model) for name, model in deploy_models.items()}


def _lr(seed=0, shape=(2, 12, 16, 3), high=255.0):
    return np.random.default_rng(seed).uniform(0, high, shape).astype(np.float32)


def test_importing_the_packages_does_not_import_tensorflow():
    import subprocess
    import sys

    code = ("import sys, mai_sr.models.qat, mai_sr.export; "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- the plan


@pytest.mark.parametrize("name", [m for m in MODELS  # heads without a clip:
                                  if not m.startswith(("espcn", "fsrcnn", "etds"))])
def test_every_tensor_gets_one_range_and_the_head_is_fixed_to_pixels(name, deploy_models):
    # tests/test_zoo_models.py::test_the_output_of_every_family_is_fixed_to_whole_pixels
    model = deploy_models[name]
    plan = plan_quantization(model)
    assert set(plan) == {layer.name for layer in model.layers[1:]}
    # depth-to-space moves values: no range of its own (TFLite keeps the scale)
    assert type(plan["depth_to_space"]) is PassThroughQuantizeConfig
    # the clip is fixed to [0, 255] (scale 1, zero point 0), and so is what feeds it: the
    # converter does not push ranges backwards, a free range there left ADD in float
    assert plan["clip"].get_config() == {"output_range": PIXELS}
    feeder = model.get_layer("clip").inbound_nodes[0].inbound_layers.name
    assert plan[feeder].get_config()["output_range"] == PIXELS
    for layer in model.layers[1:]:
        config = plan[layer.name]
        if isinstance(layer, keras.layers.Conv2D) and layer.trainable:
            assert type(config) is ConvQuantizeConfig
    if "anchor" in plan:  # frozen nearest-conv copy of the image: the input's own range
        assert plan["anchor"].get_config() == {"output_range": PIXELS}


def test_skip_concat_shares_the_image_range_with_its_inputs(deploy_models):
    plan = plan_quantization(deploy_models["scsrn"])
    assert plan["skip_concat"].get_config() == {"output_range": PIXELS}
    assert plan["block5"].get_config() == {"quantize_output": True, "output_range": PIXELS,
                                           "per_channel": True}


@pytest.mark.slow
def test_skip_concat_features_are_rescaled_to_fill_the_image_range():
    """SCSRN's features share the image's fixed [0, 255] range. Features that overflow it
    are clipped; features far below it are rounded coarsely and make the next conv's
    weights large (a coarse per-channel step for the image weights too). Rescaling them
    (exact in float) puts their peak at 255 either way."""
    model = create_model("scsrn", deploy=True)
    batches, x = [_lr(13), _lr(14)], _lr(15)
    block5, conv_out = model.get_layer("block5"), model.get_layer("conv_out")
    kernel, bias = block5.get_weights()  # make the features large, keep the float function
    block5.set_weights([kernel * 50, bias * 50])
    out_kernel, out_bias = conv_out.get_weights()
    out_kernel[:, :, 3:, :] /= 50
    conv_out.set_weights([out_kernel, out_bias])

    def peak(m):
        features = keras.Model(m.inputs, m.get_layer("block5").output)
        return max(features(b).numpy().max() for b in batches)

    assert peak(model) > 2 * 255
    equalized = equalize_fixed_ranges(model, batches)
    np.testing.assert_allclose(equalized(x).numpy(), model(x).numpy(), rtol=1e-4, atol=2e-3)
    assert peak(equalized) == pytest.approx(255, rel=1e-5)

    def int8_error(qat):
        return np.abs(qat(x, training=False).numpy() - model(x).numpy()).mean()

    plain = quantize_model(model)
    calibrate(plain, batches)
    assert int8_error(quantize_model(model, calibration=batches)) < 0.5 * int8_error(plain)
    keras.utils.set_random_seed(0)  # fresh initial weights whatever ran before (order-free)
    small = create_model("scsrn", deploy=True)  # features far below 255: scaled up
    assert peak(small) < 0.2 * 255
    bigger = equalize_fixed_ranges(small, batches)
    assert peak(bigger) == pytest.approx(255, rel=1e-5)
    np.testing.assert_allclose(bigger(x).numpy(), small(x).numpy(), rtol=1e-4, atol=2e-3)


@pytest.mark.slow
def test_feature_concat_gets_one_learned_range(tmp_path):
    from mai_sr.export.convert import convert_keras
    from mai_sr.tflite.graph import read_graph

    inp = keras.Input((None, None, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="a")(inp)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(inp)
    cat = keras.layers.Concatenate(name="cat")([a, b])
    relu = keras.layers.ReLU(name="relu")(keras.layers.Conv2D(27, 1, name="c")(cat))
    out = DepthToSpace(3, name="depth_to_space")(ClipByValue(name="clip")(relu))
    model = keras.Model(inp, out)
    plan = plan_quantization(model)
    assert plan["cat"].get_config() == {"output_range": None}  # moving average
    for producer in ("a", "b", "c"):  # take the concat's / the fused ReLU's range
        assert plan[producer].get_config()["quantize_output"] is False
    assert plan["relu"].get_config() == {"output_range": PIXELS}
    # the converter agrees: one scale for the concat and its inputs, no requantize op
    qat = quantize_model(model)
    calibrate(qat, [_lr(12)])
    (tmp_path / "m.tflite").write_bytes(convert_keras(qat, (12, 16), "int8"))
    graph = read_graph(tmp_path / "m.tflite")
    assert [op.type for op in graph.ops].count("QUANTIZE") == 2
    (op,) = [op for op in graph.ops if op.type == "CONCATENATION"]
    assert len({t.quantization for t in graph.op_inputs(op) + graph.op_outputs(op)}) == 1


def test_unknown_layer_is_a_clear_error():
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.UpSampling2D(3, name="up")(inp))
    with pytest.raises(MaiSrError, match="'up' \\(UpSampling2D\\) has no QuantizeConfig"):
        plan_quantization(model)


# ---------------------------------------------------------------- behaviour


@pytest.mark.parametrize("name", MODELS)
def test_input_and_output_are_quantized_to_whole_pixels(name, qat_models):
    qat = qat_models[name]
    x = _lr(1)
    calibrate(qat, [x])
    y = qat(x, training=False).numpy()
    # output scale 1, zero point 0: whole numbers in [0, 255]
    np.testing.assert_array_equal(y, np.round(y))
    assert y.min() >= 0 and y.max() <= 255
    # input scale 1, zero point 0: the model only sees rounded pixels
    np.testing.assert_array_equal(qat(np.round(x), training=False).numpy(), y)


def test_output_range_does_not_drift_with_dark_data():
    """The pitfall: a learned output range shrank to [-0.7, 186] and cost 4 dB.
    With the residual zeroed, ABPN is nearest-neighbour upsampling; after calibrating and
    training on dark images only, a white image must still come out white."""
    deploy = create_model("abpn", deploy=True)
    last = deploy.get_layer("conv7")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    qat = quantize_model(deploy)
    dark = _lr(2, high=100.0)
    calibrate(qat, [dark])
    opt = keras.optimizers.Adam(1e-4)
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(qat(dark, training=True) - np.repeat(np.repeat(
                np.round(dark), 3, 1), 3, 2)))
        opt.apply_gradients(zip(tape.gradient(loss, qat.trainable_variables),
                                qat.trainable_variables))
    white = np.full((1, 6, 8, 3), 255.0, np.float32)
    assert qat(white, training=False).numpy().min() == pytest.approx(255.0, abs=1.0)


def test_anchor_stays_frozen_and_exact_through_qat(qat_models):
    qat = qat_models["ncnet"]
    anchor = qat.get_layer("quant_anchor")
    kernel = [w for w in anchor.weights if w.name.split(":")[0].endswith("kernel")][0]
    before = kernel.numpy().copy()
    assert set(np.unique(kernel.numpy())) == {0.0, 1.0}
    assert not any(v is kernel for v in qat.trainable_variables)
    assert not any(v is kernel for v in kernel_variables(qat))  # weight clip leaves it alone
    # symmetric per-channel int8: 1.0 is 127 * (1/127), so the fake-quant kernel is exact
    np.testing.assert_array_equal(PerChannelWeightQuantizer()(kernel, False, {}).numpy(),
                                  kernel.numpy())
    opt = keras.optimizers.Adam(1e-2)
    x = _lr(3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(qat(x, training=True))
    opt.apply_gradients(zip(tape.gradient(loss, qat.trainable_variables), qat.trainable_variables))
    apply_weight_clip(qat)
    np.testing.assert_array_equal(kernel.numpy(), before)


def test_weight_quantizer_is_tflite_symmetric_per_channel_and_stateless():
    rng = np.random.default_rng(4)
    kernel = rng.normal(0, 0.05, (3, 3, 4, 6)).astype(np.float32)
    kernel[..., 2] *= 10  # channels with very different ranges
    step = np.abs(kernel).reshape(-1, 6).max(axis=0) / 127  # TFLite: max|w_c| / 127
    expected = np.clip(np.round(kernel / step), -127, 127) * step
    got = PerChannelWeightQuantizer()(tf.constant(kernel), False, {}).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6 * step.max())
    # no stored range: inference follows the current weights (after clipping, loading, ...)
    assert PerChannelWeightQuantizer().build(kernel.shape, "k", keras.layers.Layer()) == {}


def test_activation_range_starts_from_the_first_batch():
    """tfmot's moving average starts at [-6, 6] and with decay 0.999 needs thousands of steps
    to reach a pixel-sized range; ours takes the first batch's range."""
    import tensorflow_model_optimization as tfmot

    batch1 = tf.constant(np.linspace(0, 200, 64, dtype=np.float32))
    batch2 = tf.constant(np.linspace(0, 100, 64, dtype=np.float32))
    ours, theirs = MovingAverageRangeQuantizer(), \
        tfmot.quantization.keras.quantizers.MovingAverageQuantizer(8, False, False, False)
    layer = keras.layers.Layer()
    v_ours, v_theirs = ours.build((), "ours", layer), theirs.build((), "theirs", layer)
    ours(batch1, True, v_ours)
    theirs(batch1, True, v_theirs)
    assert float(v_ours["max_var"].numpy()) == pytest.approx(200.0)
    assert float(v_theirs["max_var"].numpy()) == pytest.approx(0.999 * 6 + 0.001 * 200)
    ours(batch2, True, v_ours)
    assert float(v_ours["max_var"].numpy()) == pytest.approx(0.999 * 200 + 0.001 * 100)
    assert float(v_ours["min_var"].numpy()) == 0.0


def test_calibrate_sets_min_max_over_all_batches():
    inp = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(27, 3, padding="same", activation="relu", name="conv")
    x = keras.layers.Conv2D(27, 1, name="out")(conv(inp))
    model = keras.Model(inp, DepthToSpace(3, name="depth_to_space")(ClipByValue(name="clip")(x)))
    qat = quantize_model(model)
    batches = [_lr(5, high=100.0), _lr(6)]
    calibrate(qat, batches)
    kernel = PerChannelWeightQuantizer()(conv.kernel, False, {})
    highs = [tf.nn.relu(tf.nn.conv2d(np.round(b), kernel, 1, "SAME") + conv.bias).numpy().max()
             for b in batches]
    got = qat.get_layer("quant_conv").weights
    top = [w for w in got if w.name.split(":")[0].endswith("post_activation_max")][0]
    assert float(top.numpy()) == pytest.approx(max(highs), rel=1e-4)
    assert max(highs) > min(highs) * 1.5  # the range is the union, not the last batch's


@pytest.mark.parametrize("name", ["scsrn", "xcat"])
def test_weights_and_ranges_round_trip(name, qat_models, tmp_path):
    qat = qat_models[name]
    calibrate(qat, [_lr(7)])
    path = tmp_path / "qat.weights.h5"
    qat.save_weights(str(path))
    again = quantize_model(create_model(name, deploy=True))
    again.load_weights(str(path))
    x = _lr(8)
    np.testing.assert_array_equal(again(x, training=False).numpy(), qat(x, training=False).numpy())
    # the configs and quantizers serialize: a config round trip rebuilds the same model
    with quantize_scope():
        rebuilt = keras.Model.from_config(qat.get_config())
    rebuilt.set_weights(qat.get_weights())
    np.testing.assert_array_equal(rebuilt(x, training=False).numpy(), qat(x, training=False).numpy())


@pytest.mark.parametrize("name", ["abpn", "scsrn"])
def test_deploy_weights_plus_activation_ranges_rebuild_the_qat_model(name, qat_models):
    """What the pretrained models ship instead of the QAT checkpoint (half its size)."""
    import json

    from mai_sr.models.qat.quantize import activation_ranges, deploy_from_qat, set_activation_ranges

    qat = qat_models[name]
    calibrate(qat, [_lr(11)])
    deploy = create_model(name, deploy=True)  # fresh random weights, overwritten below
    deploy_from_qat(qat, deploy)
    again = quantize_model(deploy, ranges=json.loads(json.dumps(activation_ranges(qat))))
    x = _lr(12)
    np.testing.assert_array_equal(again(x, training=False).numpy(), qat(x, training=False).numpy())
    with pytest.raises(MaiSrError, match="do not fit this model"):
        set_activation_ranges(again, {"quant_nowhere/post_activation": [0.0, 1.0]})
    with pytest.raises(MaiSrError, match="another architecture"):
        deploy_from_qat(qat, create_model("xcat" if name != "xcat" else "abpn", deploy=True))


# ---------------------------------------------------------------- weight clipping


def test_clip_kernel_is_per_channel_mean_plus_minus_k_std():
    rng = np.random.default_rng(9)
    kernel = rng.standard_t(2, (3, 3, 3, 8)).astype(np.float32)  # heavy tails
    flat = kernel.reshape(-1, 8)
    lo, hi = flat.mean(0) - 2.5 * flat.std(0), flat.mean(0) + 2.5 * flat.std(0)
    np.testing.assert_allclose(clip_kernel(kernel, 2.5).numpy(), np.clip(kernel, lo, hi),
                               rtol=1e-5, atol=1e-6)


def test_clipping_a_skewed_channel_makes_symmetric_int8_accurate():
    """Z6's case: most weights small and on one side, one large outlier. The outlier sets
    the symmetric step, so the rest are quantized coarsely; after clipping they are not."""
    rng = np.random.default_rng(10)
    kernel = rng.normal(0.02, 0.005, (3, 3, 3, 1)).astype(np.float32)
    kernel[1, 1, 0, 0] = -0.3

    def bulk_error(k):
        q = PerChannelWeightQuantizer()(tf.constant(k), False, {}).numpy()
        mask = np.ones_like(k, bool)
        mask[1, 1, 0, 0] = False
        return np.sqrt(np.mean((q - k)[mask] ** 2))

    clipped = clip_kernel(kernel).numpy()
    assert np.abs(clipped).max() < 0.5 * np.abs(kernel).max()
    assert bulk_error(clipped) < 0.6 * bulk_error(kernel)


def test_weight_clip_takes_the_first_conv_and_nothing_else():
    names = lambda model: sorted(v.name for v in kernel_variables(model))
    assert names(create_model("scsrn")) == ["conv1/kernel:0"]
    # a re-parameterizable first layer: both branch kernels of the training graph
    assert names(create_model("abpn", block="repconv")) == ["conv1/conv1/kernel:0",
                                                            "conv1/conv3/kernel:0"]
    ncnet = create_model("ncnet", deploy=True)  # the frozen anchor also reads the image
    assert names(ncnet) == ["conv1/kernel:0"]
    assert len(kernel_variables(quantize_model(ncnet))) == 1  # found inside the QAT wrapper
    var = kernel_variables(ncnet)[0]
    var.assign(np.random.default_rng(11).standard_t(2, var.shape).astype(np.float32))
    expected = clip_kernel(var).numpy()
    assert not np.allclose(expected, var.numpy())  # heavy tails: something is clipped
    tf.function(lambda: apply_weight_clip(ncnet))()
    np.testing.assert_allclose(var.numpy(), expected, atol=1e-6)


def test_weight_clip_leaves_collapsed_identity_branches_alone():
    """A collapsed rep block holds its identity branch as centre-tap weights near 1 among
    weights near 0. Clipping it per channel would cut the identity path (it cost 5 dB at the
    first QAT step when every kernel was clipped); only the first conv is clipped."""
    from mai_sr.models import collapse

    deploy = collapse(create_model("scsrn"))
    kernel = deploy.get_layer("block1").kernel
    before = kernel.numpy().copy()
    centre = before[1, 1, np.arange(32), np.arange(32)]
    assert (clip_kernel(before).numpy()[1, 1, np.arange(32), np.arange(32)] < 0.5 * centre).all()
    apply_weight_clip(deploy)
    np.testing.assert_array_equal(kernel.numpy(), before)
