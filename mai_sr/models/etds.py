"""ETDS, the equivalent-transformation dual-stream net (Chao et al., "Equivalent
Transformation and Dual Stream Network Construction for Mobile Image Super-Resolution",
CVPR 2023), in its published inference form: ETDS-T (``etds``, M5C16), ETDS-S
(``etds_s``, M4C32), ETDS-M (``etds_m``, M6C32) and ETDS-L (``etds_l``, M7C48).

Trained as two streams (a backbone and a 3-channel residual stream that starts as the
identity and ends as nearest-neighbour upsampling), then merged by the paper's equivalent
transformation into one plain chain, which is what the published checkpoints hold and the
deploy graph computes: conv 3x3 3 -> C, ReLU; M convs C -> C, ReLU; conv C -> 3s^2 (+1 at
x3), ReLU; conv 1x1 -> 3s^2, ReLU; depth-to-space. The last two layers are the paper's clip
by ReLUs: the first computes ReLU(P - y) for the output y and P the pixel maximum, the
second ReLU(P - that) = clip(y, 0, P), so the net needs no clip op. The extra x3 channel
(the authors keep 28 channels, a multiple of 4, for speed) feeds the 1x1 conv and is then
dropped; here the 1x1 conv simply has no output for it (the same values as slicing it off,
without a STRIDED_SLICE op). On [0, 255] pixels: a ReLU chain, so the [0, 1] biases times
255 give the same net.

Parameters at x3: 16,920 / 46,792 / 65,288 / 159,768 for T / S / M / L (Chao et al.,
CVPR 2023, Table 2, checked against the published checkpoints). The training graph here is
the same chain with ABPN's [0, 1] domain (``normalize=True``: first conv input x 1/255,
1x1 clip conv output x 255, folded by collapse()).
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.blocks import (PIXEL_MAX, DepthToSpace, conv_block, first_conv_args,
                                  hidden_conv_args, sized_conv, sr_input, weight_constraint)

DEFAULTS = dict(channels=16, blocks=5, extra_channel=None, normalize=True,
                max_abs_weight=None, input_size=None)
DEPLOY = dict(normalize=False)
RECIPE: dict = {}


def tail_channels(scale: int, extra_channel=None) -> int:
    """Outputs of the last 3x3 conv: 3s^2, plus the authors' extra channel at x3 (None: as
    published)."""
    extra = (scale == 3) if extra_channel is None else bool(extra_channel)
    return 3 * scale * scale + int(extra)


def build(scale: int = 3, *, channels: int, blocks: int, extra_channel, normalize: bool,
          max_abs_weight, input_size) -> keras.Model:
    """ETDS (inference form) with ``DEFAULTS`` updated by the keyword arguments."""
    constraint = weight_constraint(max_abs_weight)
    inp = sr_input(input_size)
    x = conv_block("conv", channels, "conv1", "relu", constraint,
                   **first_conv_args(normalize))(inp)
    for i in range(2, blocks + 2):
        x = conv_block("conv", channels, f"conv{i}", "relu", constraint,
                       **hidden_conv_args(normalize))(x)
    x = conv_block("conv", tail_channels(scale, extra_channel), f"conv{blocks + 2}", "relu",
                   constraint, **hidden_conv_args(normalize))(x)
    out_scale = dict(output_scale=PIXEL_MAX) if normalize else {}
    x = sized_conv(3 * scale * scale, 1, "conv_clip", constraint, activation="relu",
                   **out_scale)(x)
    return keras.Model(inp, DepthToSpace(scale, name="depth_to_space")(x), name="etds")
