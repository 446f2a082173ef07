"""INT8 conv weights rounded to fit the data (mai_sr.models.qat.gptq): the kernel stays on the
grid TFLite gives it, and its output follows the float conv's more closely than rounding each
weight to its nearest level does, on real images it was not fitted on."""

import numpy as np
import pytest

from mai_sr._tf import keras
from mai_sr.export.convert import calibration_batches
from mai_sr.models.qat.configs import PerChannelWeightQuantizer
from mai_sr.models.qat.equalize import correct_biases
from mai_sr.models.qat.gptq import input_statistics, round_conv_weights, round_weights

pytestmark = pytest.mark.tf


def _image_copy_conv(seed=0):
    """A 3x3 conv copying the image (centre taps near 1, the others within +-0.06: ETDS's
    residual stream) into 3 channels, plus 5 channels of random features."""
    rng = np.random.default_rng(seed)
    kernel = rng.uniform(-0.06, 0.06, (3, 3, 3, 8)).astype(np.float32)
    kernel[1, 1, :, :3] += np.eye(3, dtype=np.float32)
    kernel[..., 3:] = rng.normal(0, 0.3, (3, 3, 3, 5))
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(8, 3, padding="same", name="conv")(inp))
    model.get_layer("conv").set_weights([kernel, rng.normal(0, 5, 8).astype(np.float32)])
    return model


def _photos(seed, n=8):
    return calibration_batches("builtin", n, crop=48, seed=seed, scale=3)


def test_the_rounded_kernel_is_on_the_int8_grid_the_converter_derives():
    model = _image_copy_conv()
    kernel = model.get_layer("conv").get_weights()[0]
    correlation, _ = input_statistics(model, "conv", _photos(0))
    rounded = round_weights(kernel, correlation)
    # the per-channel quantizer (max|w| / 127 per output channel, as the converter) keeps it
    requantized = np.asarray(PerChannelWeightQuantizer()(rounded, False, {}))
    np.testing.assert_allclose(requantized, rounded, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.abs(rounded).max((0, 1, 2)), np.abs(kernel).max((0, 1, 2)))
    steps = np.abs(kernel).max((0, 1, 2)) / 127
    assert np.abs(rounded / steps).max() <= 127 + 1e-4
    nearest = np.asarray(PerChannelWeightQuantizer()(kernel, False, {}))
    assert not np.allclose(rounded, nearest)  # the data moved some weights to another level


def test_rounding_to_the_data_follows_the_float_conv_better_than_nearest_rounding():
    """Output error on held-out photos (not the fitting ones): nearest rounding with bias
    correction against rounding to the data (whose bias absorbs its mean error too)."""
    model = _image_copy_conv()
    fit, held_out = _photos(0), _photos(1)

    def copy():
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone

    nearest = copy()
    correct_biases(nearest, fit)
    kernel, bias = nearest.get_layer("conv").get_weights()
    nearest.get_layer("conv").set_weights(
        [np.asarray(PerChannelWeightQuantizer()(kernel, False, {})), bias])
    fitted = copy()
    assert round_conv_weights(fitted, fit) == ["conv"]

    def mse(m):  # interior pixels: the zero padding is the same for both
        return np.mean([np.mean((np.asarray(m(x)) - np.asarray(model(x)))[:, 1:-1, 1:-1] ** 2)
                        for x in held_out])

    assert mse(fitted) < 0.5 * mse(nearest)


def test_a_frozen_or_strided_conv_is_left_alone():
    """The frozen anchor keeps its exact 0/1 taps; a strided conv's patches are not what
    the fit measures."""
    from mai_sr.models import create_model

    abpn = create_model("abpn", scale=3, deploy=True)  # its anchor is a frozen 0/1 conv
    anchor = abpn.get_layer("anchor").get_weights()[0]
    assert round_conv_weights(abpn, _photos(0, n=2)) == [f"conv{i}" for i in range(1, 8)]
    np.testing.assert_array_equal(abpn.get_layer("anchor").get_weights()[0], anchor)

    inp = keras.Input((None, None, 3))
    strided = keras.Model(inp, keras.layers.Conv2D(4, 3, strides=2, name="down")(inp))
    kernel = strided.get_layer("down").get_weights()[0]
    assert round_conv_weights(strided, _photos(0, n=2)) == []
    np.testing.assert_array_equal(strided.get_layer("down").get_weights()[0], kernel)


@pytest.mark.slow
def test_the_int8_file_of_a_rounded_etds_has_the_biases_of_its_fake_quant_model(tmp_path):
    """ETDS-T x3 (DIV2K): every conv bias of the converted file equals the fake-quant
    model's (an earlier order of the steps made the converter move the clip conv's)."""
    from ai_edge_litert.interpreter import Interpreter

    from conftest import SHARED_ARTIFACTS
    from mai_sr.export.convert import convert_keras
    from mai_sr.importer import import_weights
    from mai_sr.models import create_model
    from mai_sr.models.qat.quantize import quantize_model

    source = SHARED_ARTIFACTS / "etds_zoo" / "pretrained" / "ETDS" / "ETDS_M5C16_x3.pth"
    if not source.is_file():
        pytest.skip(f"{source} not present")
    weights = tmp_path / "w.weights.h5"
    import_weights(source, None, weights, force=True)
    deploy = create_model("etds", scale=3, deploy=True)
    deploy.load_weights(str(weights))
    quantized = quantize_model(deploy, calibration=_photos(0, n=16))
    interpreter = Interpreter(model_content=convert_keras(quantized, (24, 24), "int8"))
    tensors = interpreter.get_tensor_details()
    convs = [layer for layer in quantized.layers if layer.name.startswith("quant_conv")]
    assert len(convs) == 8
    for layer in convs:
        bias = next(w.numpy() for w in layer.weights if "bias" in w.name)
        stored = next(t for t in tensors if f"{layer.name}/" in t["name"]
                      and t["dtype"] == np.int32)
        found = interpreter.get_tensor(stored["index"]) * \
            stored["quantization_parameters"]["scales"]
        assert np.abs(found - bias).max() < 0.1, layer.name


def test_convs_feeding_a_prelu_keep_nearest_rounding():
    """FSRCNN: every conv feeds a PReLU (rounding them to the data lost on the held-out
    split); ECBSR: only its last, linear conv is rounded to the data."""
    from mai_sr.models import create_model

    assert round_conv_weights(create_model("fsrcnn", scale=3, deploy=True),
                              _photos(0, n=2)) == []
    assert round_conv_weights(create_model("ecbsr", scale=3, deploy=True),
                              _photos(0, n=2)) == ["conv6"]
