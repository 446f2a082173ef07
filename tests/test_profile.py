"""Efficiency profile: checked against hand counts and the AIM 2020 report's published figures."""

import json

import pytest

from mai_sr import cli
from mai_sr._tf import keras
from mai_sr.errors import MaiSrError
from mai_sr.models.blocks import DepthToSpace
from mai_sr.profile import format_profile, profile_keras, profile_model

pytestmark = pytest.mark.tf  # Keras models

# "AIM 2020 Challenge on Efficient Super-Resolution: Methods and Results" (Zhang et al., ECCV
# 2020 Workshops), section 2 "Challenge": the MSRResNet x4 baseline
# has 1,517,571 params, 166.36 G "FLOPs" and 292.55 M activations ("elements of all outputs
# of convolutional layers") for a 256x256 LR input, and 37 convolutional layers.
MSRRESNET_PARAMS = 1_517_571
MSRRESNET_FLOPS_G = 166.36
MSRRESNET_ACTIVATIONS_M = 292.55
MSRRESNET_CONVS = 37


def msrresnet_x4(size=256):
    """MSRResNet (Wang et al.) as the AIM 2020 ESR report describes it: conv + LReLU, 16
    residual blocks (conv, ReLU, conv, + skip), two (conv 64 -> 256, pixel shuffle x2, LReLU), HR conv + LReLU,
    last conv, + bilinear upsampling of the input."""
    def conv(channels, x):
        return keras.layers.Conv2D(channels, 3, padding="same")(x)

    inp = keras.Input((size, size, 3))
    x = keras.layers.LeakyReLU(0.1)(conv(64, inp))
    for _ in range(16):
        x = keras.layers.Add()([x, conv(64, keras.layers.ReLU()(conv(64, x)))])
    for _ in range(2):
        x = keras.layers.LeakyReLU(0.1)(DepthToSpace(2)(conv(256, x)))
    x = conv(3, keras.layers.LeakyReLU(0.1)(conv(64, x)))
    base = keras.layers.UpSampling2D(4, interpolation="bilinear")(inp)
    return keras.Model(inp, keras.layers.Add()([x, base]))


def test_msrresnet_matches_the_aim2020_published_figures():
    prof = profile_keras(msrresnet_x4())
    assert prof.params == MSRRESNET_PARAMS
    assert round(prof.activations / 1e6, 2) == MSRRESNET_ACTIVATIONS_M
    assert prof.convs == MSRRESNET_CONVS
    # The report's "FLOPs" are multiply-accumulates (our MACs), to within 0.1 %.
    assert abs(prof.macs / 1e9 - MSRRESNET_FLOPS_G) / MSRRESNET_FLOPS_G < 1e-3
    assert prof.flops == 2 * prof.macs


def test_abpn_at_360x640_by_hand():
    prof = profile_model("abpn", size=(360, 640))
    pixels = 360 * 640
    # Kernel weights per output pixel: conv 3->28, 4x 28->28, 28->27, 27->27 (3x3) and the
    # nearest-conv anchor 3->27 (1x1).
    kernel = 9 * (3 * 28 + 4 * 28 * 28 + 28 * 27 + 27 * 27) + 3 * 27
    biases = 5 * 28 + 2 * 27
    assert prof.params == 42_539 and prof.frozen_params == 81
    assert prof.macs == kernel * pixels
    assert round(prof.macs / 1e9, 1) == 9.8  # the profile's reference figure: "about 9.8 GMAC"
    assert prof.activations == (5 * 28 + 2 * 27 + 27) * pixels
    assert prof.convs == 8
    assert prof.int8_weight_bytes == kernel + 4 * biases


@pytest.mark.parametrize("scale", [2, 4])
def test_abpn_at_other_scales_by_hand(scale, capsys):
    """Only the last two convs change with the scale: 28 -> 3s^2 and 3s^2 -> 3s^2 (x4:
    28 -> 48 and 48 -> 48, 62,048 params at 256x256 LR, the AIM 2020 / NTIRE 2023 input);
    the frozen 1x1 anchor 3 -> 3s^2 is not counted."""
    out = 3 * scale * scale
    params = (9 * 3 * 28 + 28) + 4 * (9 * 28 * 28 + 28) + (9 * 28 * out + out) \
        + (9 * out * out + out)
    assert cli.main(["profile", "--model", "abpn", "--scale", str(scale), "--size", "256x256",
                     "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == params and data["frozen_params"] == 3 * out
    assert data["macs"] == (params - 28 * 5 - 2 * out + 3 * out) * 256 * 256
    if scale == 4:
        assert params == 62_048


def test_peak_memory_keeps_tensors_until_their_last_use():
    inp = keras.Input((4, 4, 3))  # 48 elements
    a = keras.layers.Conv2D(8, 3, padding="same")(inp)  # 128
    b = keras.layers.Conv2D(8, 1)(a)  # 128
    out = keras.layers.Add()([a, b])  # 128
    prof = profile_keras(keras.Model(inp, out))
    # Steps: inp + a = 176 (inp then dies); a + b = 256; a + b + out = 384.
    assert prof.peak_activation_elements == 384
    assert prof.to_dict()["peak_bytes_fp32"] == 4 * 384


def test_training_graph_counts_every_branch():
    deploy = profile_model("scsrn", size=(16, 16))
    train = profile_model("scsrn", size=(16, 16), deploy=False)
    assert deploy.convs == 7 and train.convs == 2 + 5 * 2  # RepConv: 3x3 + 1x1 branches
    assert train.macs - deploy.macs == 5 * 32 * 32 * 16 * 16  # the 1x1 branches


def test_dynamic_input_is_refused():
    inp = keras.Input((None, None, 3))
    with pytest.raises(MaiSrError, match="fixed input size"):
        profile_keras(keras.Model(inp, keras.layers.ReLU()(inp)))


def test_cli_profile_text_and_json(capsys):
    assert cli.main(["profile", "--model", "ncnet", "--size", "36x64", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["params"] == 52_279 and data["size"] == [36, 64]
    assert data["flops"] == 2 * data["macs"]
    assert cli.main(["profile", "--model", "xcat"]) == 0
    text = capsys.readouterr().out
    assert "xcat (deploy graph), LR input 256x256" in text
    assert format_profile(profile_model("xcat")) in text
