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
CVPR 2023, Table 2, checked against the published checkpoints).

The training graph (``dual_stream=True``, the default) is the paper's two streams in that
same chain, so collapse() only folds ABPN's [0, 1] domain (``normalize=True``: first conv
input x 1/255, clip conv output x 255): the last ``residual`` channels of every hidden
tensor are the residual stream, which reads only itself
(:class:`~mai_sr.models.blocks.DualStreamKernel` keeps the block from the features to it at
zero), and it starts as the paper initialises it: the image copied by the first conv and
passed on by identity kernels, repeated s^2 times by the last conv, no cross-stream weights,
so the net starts as nearest-neighbour upscaling plus a small backbone output. The clip
convs are the transformation's fixed part (-I, bias 1) and are not trained. The only
difference from the paper's training graph: its output is clipped to [0, 255] while
training too (outside that range the loss sees the clipped value). ``dual_stream=False``
trains the plain chain from random weights.
"""

from __future__ import annotations

import numpy as np

from mai_sr._tf import keras
from mai_sr.models.blocks import (PIXEL_MAX, DepthToSpace, DualStreamKernel, conv_block,
                                  first_conv_args, hidden_conv_args, nearest_conv_kernel,
                                  output_init, sized_conv, sr_input, weight_constraint)

DEFAULTS = dict(channels=16, blocks=5, extra_channel=None, normalize=True, dual_stream=True,
                residual=3, max_abs_weight=None, input_size=None)
DEPLOY = dict(normalize=False, dual_stream=False)
# Z6's first-conv weight clip (mai_sr.models.qat.weight_clip) is off: the first conv's
# residual channels copy the image, a centre weight among zeros that the clip (mean +- 2.5
# std per channel) would cut to ~0.5 at the first step, breaking the residual stream (the
# reason deeper kernels, holding rep blocks' identity branches, are never clipped).
RECIPE: dict = {"weight_clip": False}


def tail_channels(scale: int, extra_channel=None) -> int:
    """Outputs of the last 3x3 conv: 3s^2, plus the authors' extra channel at x3 (None: as
    published)."""
    extra = (scale == 3) if extra_channel is None else bool(extra_channel)
    return 3 * scale * scale + int(extra)


def build(scale: int = 3, *, channels: int, blocks: int, extra_channel, normalize: bool,
          dual_stream: bool, residual: int, max_abs_weight, input_size) -> keras.Model:
    """ETDS (inference form, or its dual-stream training form) with ``DEFAULTS`` updated by
    the keyword arguments."""
    if dual_stream and not 3 <= residual < channels:
        raise ValueError(f"residual={residual}: the residual stream needs 3 to "
                         f"{channels - 1} of the {channels} channels")
    constraint = weight_constraint(max_abs_weight)
    hidden_constraint = DualStreamKernel(residual, max_abs_weight) if dual_stream else constraint
    inp = sr_input(input_size)
    x = conv_block("conv", channels, "conv1", "relu", constraint,
                   **first_conv_args(normalize))(inp)
    for i in range(2, blocks + 2):
        x = conv_block("conv", channels, f"conv{i}", "relu", hidden_constraint,
                       **hidden_conv_args(normalize))(x)
    last_args = hidden_conv_args(normalize)
    if dual_stream:  # the backbone's share of the output starts small, as ABPN's last conv
        last_args["kernel_initializer"] = output_init()
    x = conv_block("conv", tail_channels(scale, extra_channel), f"conv{blocks + 2}", "relu",
                   constraint, **last_args)(x)
    out_scale = dict(output_scale=PIXEL_MAX) if normalize else {}
    x = sized_conv(3 * scale * scale, 1, "conv_clip", constraint, activation="relu",
                   trainable=not dual_stream, **out_scale)(x)
    model = keras.Model(inp, DepthToSpace(scale, name="depth_to_space")(x), name="etds")
    if dual_stream:
        _start_dual_stream(model, scale, blocks, residual, unit=1.0 if normalize else PIXEL_MAX)
    return model


def _start_dual_stream(model, scale: int, blocks: int, residual: int, unit: float) -> None:
    """The paper's initial residual stream and clip in a freshly built training graph (in its
    own units: `unit` is the pixel maximum there): the first conv copies the image into the
    last `residual` channels (any beyond 3 start at zero), each hidden conv passes them on
    by a centre 1 with nothing from or to the features, and the last conv computes
    ReLU(unit - y) for y = backbone output + the image repeated s^2 times (depth-to-space
    order); the 1x1 conv -I with bias `unit` turns that into clip(y, 0, unit)."""
    first = model.get_layer("conv1")
    kernel, bias = (w.numpy() for w in first.weights)
    channels = kernel.shape[-1]
    features = channels - residual
    kernel[..., features:] = 0.0
    kernel[1, 1, np.arange(3), features + np.arange(3)] = 1.0
    bias[features:] = 0.0
    first.set_weights([kernel, bias])
    for i in range(2, blocks + 2):
        layer = model.get_layer(f"conv{i}")
        kernel, bias = (w.numpy() for w in layer.weights)
        kernel[:, :, features:, :] = 0.0  # nothing from the residual stream yet
        kernel[:, :, :, features:] = 0.0  # the residual stream reads only itself
        kernel[1, 1, features + np.arange(residual), features + np.arange(residual)] = 1.0
        bias[features:] = 0.0
        layer.set_weights([kernel, bias])
    last = model.get_layer(f"conv{blocks + 2}")
    kernel, bias = (w.numpy() for w in last.weights)
    outputs = 3 * scale * scale
    kernel[:, :, features:, :] = 0.0
    kernel[1, 1, features:features + 3, :outputs] = -nearest_conv_kernel(scale)[0, 0]
    kernel[..., outputs:] = 0.0  # the x3 padding channel: constant
    last.set_weights([kernel, np.full_like(bias, unit)])
    clip = model.get_layer("conv_clip")
    kernel = np.zeros(clip.weights[0].shape, np.float32)
    kernel[0, 0, np.arange(outputs), np.arange(outputs)] = -1.0
    clip.set_weights([kernel, np.full((outputs,), unit, np.float32)])
