"""INT8 of the zoo families' operations: channel equalization and bias correction
(mai_sr.models.qat.equalize: exact in float, the turn of a PReLU channel, the bias correction
against the rounded weights), PReLU slopes rounded in the fake-quant graph as in the file, a
zero kernel channel's bias, a dynamic-shape transposed conv at run time, and the PTQ of real
zoo checkpoints against their FP32 models (held-out builtin photos)."""

import numpy as np
import pytest

from conftest import SHARED_ARTIFACTS
from mai_sr._tf import keras
from mai_sr.models import collapse, create_model
from mai_sr.models.qat.equalize import (Link, correct_biases, equalize_channels,
                                 homogeneous_links)

pytestmark = pytest.mark.tf

ZOO = SHARED_ARTIFACTS / "etds_zoo" / "pretrained"


def _lr(seed=0, shape=(2, 20, 24, 3)):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def _randomize(model, seed=0):
    """Random kernels, biases and PReLU slopes of both signs and above 1 (the imported
    FSRCNN has slopes from -7.3 to 9.9)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not layer.trainable or not layer.weights:
            continue
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.PReLU):
            weights = [rng.choice([-2.0, -0.3, 0.0, 0.05, 0.5, 1.0, 3.0],
                                  weights[0].shape).astype(np.float32)]
        else:
            fan_in = np.prod(weights[0].shape[:-1])
            weights = [rng.normal(0, 1.5 / np.sqrt(fan_in), w.shape).astype(np.float32)
                       * (1 if i == 0 else 20) for i, w in enumerate(weights)]
        layer.set_weights(weights)
    return model


def test_the_links_are_the_homogeneous_conv_pairs():
    fsrcnn = homogeneous_links(create_model("fsrcnn", deploy=True))
    assert fsrcnn == [Link(f"conv{i}", f"prelu{i}", f"conv{i + 1}") for i in range(1, 7)] \
        + [Link("conv7", "prelu7", "deconv")]
    # ETDS: every ReLU conv feeds the next; the clip conv is fixed (-I, 255), so the last
    # conv's channels, which it reads one to one, keep their scale
    etds = homogeneous_links(create_model("etds", deploy=True))
    assert [(l.producer, l.consumer) for l in etds][-1] == ("conv6", "conv7")
    assert all(l.prelu is None for l in etds) and len(etds) == 6
    # ABPN: the linear last conv feeds the anchor ADD, the anchor is frozen: no link
    abpn = homogeneous_links(create_model("abpn", deploy=True))
    assert [l.producer for l in abpn] == [f"conv{i}" for i in range(1, 7)]
    assert homogeneous_links(create_model("espcn", deploy=True)) == []  # tanh is not


@pytest.mark.parametrize("name", ["fsrcnn", "ecbsr", "etds", "abpn"])
def test_equalization_keeps_the_float_function(name):
    model = _randomize(create_model(name, scale=3, deploy=True))
    equalized = equalize_channels(model, [_lr(1), _lr(2)])
    x = _lr(3)
    # the last conv's output: before the clip, which would hide differences
    last = [layer.name for layer in model.layers if layer.trainable and layer.weights][-1]
    ours, theirs = (np.asarray(keras.Model(m.inputs, m.get_layer(last).output)(x))
                    for m in (equalized, model))
    changed = [a for a, b in zip(equalized.get_weights(), model.get_weights())
               if not np.allclose(a, b)]
    assert changed, "nothing was rescaled"
    assert np.abs(ours - theirs).max() <= 1e-4 * np.abs(theirs).max()


def _one_link(slopes):
    inp = keras.Input((None, None, 2))
    x = keras.layers.Conv2D(2, 1, name="conv1")(inp)
    x = keras.layers.PReLU(shared_axes=[1, 2], name="prelu1")(x)
    model = keras.Model(inp, keras.layers.Conv2D(1, 1, name="conv2")(x))
    model.get_layer("conv1").set_weights([np.eye(2, dtype=np.float32)[None, None],
                                          np.zeros(2, np.float32)])
    model.get_layer("prelu1").set_weights([np.asarray(slopes, np.float32)[None, None]])
    model.get_layer("conv2").set_weights([np.ones((1, 1, 2, 1), np.float32),
                                          np.zeros(1, np.float32)])
    return model


def test_a_channel_the_prelu_shrinks_is_turned_so_both_tensors_fit():
    """Channel 0 is always negative and its slope 0.05 shrinks it 20x: before the PReLU it
    is the widest channel, after it the narrowest, and no scale fits both tensors. Turned
    (-x, slope 20, consumer weight x -0.05), it passes the PReLU at slope 1."""
    model = _one_link([0.05, 1.0])
    rng = np.random.default_rng(0)
    batch = np.stack([rng.uniform(-2000, -50, (8, 8)), rng.uniform(-200, 200, (8, 8))],
                     -1)[None].astype(np.float32)
    equalized = equalize_channels(model, [batch])
    slope = equalized.get_layer("prelu1").get_weights()[0].reshape(-1)
    assert slope[0] == pytest.approx(20.0) and slope[1] == pytest.approx(1.0)
    conv = keras.Model(equalized.inputs, equalized.get_layer("conv1").output)(batch)
    prelu = keras.Model(equalized.inputs, equalized.get_layer("prelu1").output)(batch)
    for tensor in (np.asarray(conv), np.asarray(prelu)):
        extents = np.abs(tensor).reshape(-1, 2).max(0)
        assert extents.min() >= 0.99 * extents.max()  # both channels span each tensor
    np.testing.assert_allclose(equalized(batch), model(batch), rtol=1e-5, atol=1e-3)


def test_bias_correction_removes_the_mean_error_of_the_int8_weights():
    """An identity-like conv carrying the image (weights near 1 and near 0, like ETDS's
    residual stream): rounding the small weights to a step of 1/127 shifts the output by a
    few grey levels; after correction the fake-quant output's mean error is ~0."""
    from mai_sr.models.qat.configs import PerChannelWeightQuantizer

    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same", name="conv")(inp))
    rng = np.random.default_rng(0)
    kernel = rng.uniform(-0.02, 0.02, (3, 3, 3, 3)).astype(np.float32)
    kernel[1, 1] += np.eye(3, dtype=np.float32)
    model.get_layer("conv").set_weights([kernel, np.zeros(3, np.float32)])
    images = [rng.uniform(100, 255, (1, 16, 16, 3)).astype(np.float32) for _ in range(4)]

    def mean_error(m):
        k, b = m.get_layer("conv").get_weights()
        rounded = keras.models.clone_model(m)
        rounded.set_weights([np.asarray(PerChannelWeightQuantizer()(k, False, {})), b])
        return np.mean([np.asarray(rounded(x) - model(x))[:, 1:-1, 1:-1].mean((0, 1, 2))
                        for x in images], axis=0)

    before = mean_error(model)
    assert np.abs(before).max() > 0.3  # grey levels
    corrected = keras.models.clone_model(model)
    corrected.set_weights(model.get_weights())
    correct_biases(corrected, images)
    assert np.abs(mean_error(corrected)).max() < 0.1 * np.abs(before).max()


def test_a_zero_kernel_channel_keeps_its_bias_in_int8(tmp_path):
    """ETDS's extra x3 channel has a zero kernel and bias 255: a tiny weight range made its
    int32 bias overflow (the INT8 file gave 15); it must give 255."""
    from ai_edge_litert.interpreter import Interpreter

    from mai_sr.export.convert import convert_keras

    inp = keras.Input((None, None, 3))
    out = keras.layers.Conv2D(2, 1, activation="relu", name="conv")(inp)
    model = keras.Model(inp, out)
    model.get_layer("conv").set_weights([np.array([[[[0.5, 0.0]] * 3]], np.float32),
                                         np.array([0.0, 255.0], np.float32)])
    x = _lr(0, (1, 8, 8, 3))
    data = convert_keras(model, (8, 8), "int8", representative=[x])
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x.astype(np.uint8))
    interpreter.invoke()
    result = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert (result[..., 1] == 255).all()


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint, model, before_db, floor_db", [
    # INT8-vs-FP32 PSNR on held-out builtin crops of PTQ from the builtin photos: without
    # the equalization and bias correction (measured: 35.2, 31.9, 36.1 dB; with them 42.1,
    # 39.1, 46.4 dB), and a floor between the two that the fix must clear
    ("ETDS/ETDS_M5C16_x3", "etds", 35.2, 40.0),
    ("FSRCNN/FSRCNN_x3", "fsrcnn", 31.9, 37.0),
    ("ECBSR/ECBSR_M4C32_x3", "ecbsr_m4c32", 36.1, 42.0),
])
def test_ptq_of_zoo_checkpoints_follows_their_fp32_models(checkpoint, model, before_db,
                                                          floor_db, tmp_path):
    from mai_sr.export.convert import calibrate
    from mai_sr.importer import import_weights

    source = ZOO / f"{checkpoint}.pth"
    if not source.is_file():
        pytest.skip(f"{source} not present")
    weights = tmp_path / "w.weights.h5"
    import_weights(source, None, weights, force=True)
    deploy = create_model(model, scale=3, deploy=True)
    deploy.load_weights(str(weights))
    _, record = calibrate(deploy, None, 100, 3)
    assert before_db < floor_db <= record["check"]["int8_vs_fp32_psnr"]["builtin"]


def test_prelu_slopes_are_rounded_as_the_int8_file_rounds_them():
    """TFLite's int8 PRELU holds its slopes in int8, one range for the layer: slopes from
    -7 to 10 (FSRCNN's) put 0.01-0.05 on a step of 0.08. The fake-quant model must compute
    with those rounded slopes, or QAT trains a network the file does not compute."""
    from ai_edge_litert.interpreter import Interpreter

    from mai_sr.export.convert import convert_keras
    from mai_sr.models.qat import calibrate, quantize_model

    model = _randomize(create_model("fsrcnn", scale=3, deploy=True), seed=4)
    slopes = np.array([0.01, 0.03, 0.05, 1.0, -7.3, 9.9] * 2, np.float32)
    prelu = model.get_layer("prelu2")
    prelu.set_weights([slopes.reshape(prelu.get_weights()[0].shape)])
    x = _lr(5, (1, 10, 12, 3))
    qat = quantize_model(model)  # without data: no equalization, the slopes stay
    calibrate(qat, [x])
    fake = qat.get_layer("quant_prelu2")
    rounded = np.asarray(fake.quantize_config.get_weights_and_quantizers(fake.layer)[0][1](
        fake.layer.alpha, False, {})).reshape(-1)
    step = 9.9 / 127
    np.testing.assert_allclose(rounded, np.round(slopes / step) * step, atol=1e-6)
    interpreter = Interpreter(model_content=convert_keras(qat, (10, 12), "int8"))
    interpreter.allocate_tensors()
    stored = [d for d in interpreter.get_tensor_details()
              if "prelu2" in d["name"] and len(d["shape"]) == 3]
    assert len(stored) == 1
    scale = stored[0]["quantization_parameters"]["scales"][0]
    in_file = interpreter.get_tensor(stored[0]["index"]).reshape(-1) * scale
    np.testing.assert_allclose(in_file, rounded, atol=1e-6)


def test_a_dynamic_transposed_conv_file_runs(tmp_path):
    """A dynamic-shape TRANSPOSE_CONV computes its output shape in the graph, so LiteRT
    knows it only after an invoke: the runtime must still read the scale (it read 1x1)."""
    from mai_sr.export.convert import convert_keras
    from mai_sr.tflite.runtime import TFLiteSR

    model = _randomize(create_model("fsrcnn", scale=3, deploy=True))
    path = tmp_path / "fsrcnn_none.tflite"
    path.write_bytes(convert_keras(model, None, "int8", representative=[_lr(1)]))
    runtime = TFLiteSR(path)
    assert runtime.scale == 3 and runtime.fixed_shape is None
    lr = _lr(2, (1, 13, 17, 3)).astype(np.uint8)[0]
    assert runtime.run(lr).shape == (39, 51, 3)


def _conv_tanh(gain):
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 1, name="conv1")(inp)
    x = keras.layers.Activation("tanh", name="tanh1")(x)
    model = keras.Model(inp, keras.layers.Conv2D(3, 1, name="conv2")(x))
    rng = np.random.default_rng(0)
    model.get_layer("conv1").set_weights([rng.normal(0, gain / 255, (1, 1, 3, 4))
                                          .astype(np.float32), np.zeros(4, np.float32)])
    return model


@pytest.mark.parametrize("gain", [0.5, 20.0])
def test_a_tensor_feeding_tanh_gets_the_range_that_fits_its_values(gain):
    """The conv before tanh gets the [-a, a] whose int8 tanh output is closest to the float
    tanh on the calibration values (closer than the old fixed [-4, 4] when the values are
    small, as close when they saturate); training does not move it."""
    from mai_sr.models.qat import quantize_model
    from mai_sr.models.qat.quantize import activation_ranges, set_activation_ranges

    model = _conv_tanh(gain)
    batches = [_lr(i, (1, 16, 16, 3)) for i in range(4)]
    qat = quantize_model(model, calibration=batches)
    (lo, hi), = [r for k, r in activation_ranges(qat).items() if k.startswith("quant_conv1/")]
    assert lo == -hi and (hi < 4.0 or gain > 1)

    def tanh_error(q):
        probe = keras.Model(q.inputs, q.get_layer("quant_tanh1").output)
        exact = keras.Model(model.inputs, model.get_layer("tanh1").output)
        return np.mean([np.mean((np.asarray(probe(b)) - np.asarray(exact(b))) ** 2)
                        for b in batches])

    fixed = quantize_model(model, calibration=batches)
    ranges = activation_ranges(fixed)
    set_activation_ranges(fixed, {k: ([-4.0, 4.0] if k.startswith("quant_conv1/") else v)
                                  for k, v in ranges.items()})
    # small values: much closer; saturated ones: as close (the fit's error model is NumPy's)
    assert tanh_error(qat) < (0.5 if gain < 1 else 1.01) * tanh_error(fixed)
    qat(_lr(9, (1, 16, 16, 3)) * 50, training=True)  # values far outside: no drift
    assert activation_ranges(qat) == activation_ranges(quantize_model(model, batches))


def test_a_tensor_read_only_by_etds_clip_takes_the_pixel_range(tmp_path):
    """ETDS's last conv writes ReLU(255 - y), read one to one by the fixed clip conv
    ReLU(255 - x): the plan gives that tensor the fixed pixel range (values above 255 mean
    y < 0, clipped to 0 anyway), and in the INT8 file it is on whole grey levels (scale 1,
    zero point -128). A conv that merely looks alike but computes something else (one weight
    off -1, another bias) keeps a range of its own. A deploy graph collapsed from the
    training graph computes the same clip on the [0, 1] scale, and gets that scale's range."""
    from mai_sr.export.convert import export
    from mai_sr.models.qat.configs import PIXEL_RANGE
    from mai_sr.models.qat.quantize import (is_pixel_clip, pixel_clip_gain,
                                            plan_quantization)
    from mai_sr.tflite.graph import read_graph

    model = create_model("etds", scale=3, deploy=True)
    clip = model.get_layer("conv_clip")
    assert is_pixel_clip(clip) and not clip.trainable
    assert tuple(plan_quantization(model)["conv7"].output_range) == PIXEL_RANGE
    kernel, bias = clip.get_weights()
    clip.set_weights([kernel[:, :, ::-1, ::-1].copy(), bias])  # permuted: still a clip
    assert is_pixel_clip(clip)
    one_off = kernel.copy()
    one_off[0, 0, 0, 0] = -0.99
    for changed in ([one_off, bias], [kernel, bias - 1.0]):
        clip.set_weights(changed)
        assert not is_pixel_clip(clip)
        assert plan_quantization(model)["conv7"].output_range is None
    assert not is_pixel_clip(model.get_layer("conv2"))

    # Collapsed from the training graph, whose hidden tensors are on the [0, 1] scale, the
    # clip reads ReLU(255 - 255 x): the tensor it reads gets [0, 1], a step of 1/255.
    collapsed = collapse(create_model("etds", scale=3))
    assert pixel_clip_gain(collapsed.get_layer("conv_clip")) == 255.0
    assert tuple(plan_quantization(collapsed)["conv7"].output_range) == (0.0, 1.0)

    for deploy, step in ((create_model("etds", scale=3, deploy=True), 1.0),
                         (collapsed, 1.0 / 255.0)):
        weights = tmp_path / "etds.weights.h5"
        deploy.save_weights(str(weights))
        out = tmp_path / "etds.tflite"
        export(out, model="etds", weights=weights, shape=(16, 16), calib_n=4)
        graph = read_graph(out)
        clips = [op for op in graph.ops if op.type == "CONV_2D" and op.kernel == (1, 1)]
        assert len(clips) == 1
        fed = graph.tensors[clips[0].inputs[0]].quantization
        assert fed.scales == (pytest.approx(step),) and fed.zero_points == (-128,)
