"""ABPN, the anchor-based plain net (Du et al., MAI 2021 winner; the MAI 2022 baseline).

Published form (DESIGN.md "Models"; the authors' TF code): six 3x3 convs with ReLU
(3 -> 28, four 28 -> 28, 28 -> 27), a linear 3x3 conv 27 -> 27, plus the anchor
``concat([x] * 9)``, then depth_to_space(3) and a clip to [0, 255] *after* it: 42,539
parameters, 53 KB as INT8, 36.9 ms on the VS680 NPU (MAI 2022 challenge report, Table 1).

Deploy form (``deploy=True``): the same convs and weights, but the anchor is a frozen 1x1
"nearest convolution" (one CONV_2D instead of a 9-input CONCATENATION) and the clip runs on
the 27-channel LR tensor before depth-to-space (9x fewer values; the MAI 2022 recipe,
MAI 2022 report, sec. 3.1). Both changes are exact, so the outputs are identical (tested).
``create_model("abpn", deploy=True, clip="after_d2s")`` or ``anchor="concat"`` rebuilds the
slow variants, e.g. for lint tests.

The body can also be trained with re-parameterizable blocks (``block="repconv"`` or
``"clb"``), which :func:`mai_sr.models.collapse` turns back into these plain convs.

Training graph (``normalize=True``, the default; shared with NCNet): the convs work on
[0, 1] values, the first scaling its input by 1/255 and the last its output by 255 (fixed
factors that collapse() folds into the deploy convs), with He-normal ReLU convs and a last
conv initialised near 0, so training starts from the anchor (nearest-neighbour upscaling).
On raw [0, 255] pixels, seed 0 lost a whole ReLU layer within ~50 Adam steps and stayed at
the nearest-neighbour PSNR (why: :class:`mai_sr.models.blocks.ScaledConv2D`).
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.blocks import (conv_block, first_conv_args, hidden_conv_args,
                                  last_conv_args, make_anchor, sr_head, sr_input,
                                  weight_constraint)

# The published architecture; deploy=True changes only what DEPLOY lists.
DEFAULTS = dict(channels=28, body=4, block="conv", anchor="concat", clip="after_d2s",
                normalize=True, max_abs_weight=None, input_size=None)
DEPLOY = dict(block="conv", anchor="nearest_conv", clip="before_d2s", normalize=False)

# Training defaults that differ from mai_sr.train.BASE_RECIPE: none (L1, 5% warm-up).
RECIPE: dict = {}


def build_anchor_net(*, name: str, scale: int, channels: int, body: int, block: str,
                     anchor: str, clip: str, normalize: bool, max_abs_weight,
                     input_size) -> keras.Model:
    """ABPN/NCNet body: conv 3 -> C, ``body`` convs C -> C, conv C -> 3s^2 (all ReLU), a
    linear conv 3s^2 -> 3s^2, + anchor, then the clip/depth-to-space head."""
    out_channels = 3 * scale * scale
    constraint = weight_constraint(max_abs_weight)
    widths = [channels] * (body + 1) + [out_channels]
    inp = sr_input(input_size)
    x = inp
    for i, width in enumerate(widths, start=1):
        args = first_conv_args(normalize) if i == 1 else hidden_conv_args(normalize, block)
        x = conv_block(block, width, f"conv{i}", "relu", constraint, **args)(x)
    x = conv_block(block, out_channels, f"conv{len(widths) + 1}", None, constraint,
                   **last_conv_args(normalize))(x)
    x = keras.layers.Add(name="add_anchor")([x, make_anchor(anchor, inp, scale)])
    return keras.Model(inp, sr_head(x, scale, clip), name=name)


def build(scale: int = 3, **config) -> keras.Model:
    """ABPN with ``DEFAULTS`` (published form) updated by ``config``."""
    return build_anchor_net(name="abpn", scale=scale, **config)
