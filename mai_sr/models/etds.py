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

Layout option ``image_extra=4`` (``etds_image_pair``, ``etds_s_image_pair``,
``etds_m_image_pair``, ``etds_l_image_pair``): the same network with the image path carried
twice (green three times), four more channels in every hidden tensor (the copies of R, G,
G, B, appended: :func:`copy_colours`), each conv reading a colour's copies with its
published weights divided among them (:func:`relayout`; ``mai-sr import --model
etds_l_image_pair`` of a published checkpoint rewrites it and checks the outputs agree).
Why: every hidden tensor holds the image path beside features, and with one int8 range per
tensor the image is re-rounded at every layer, which alone costs ETDS-L 0.115 dB on Set5
(``benchmarks/zoo.py``'s floor). k copies that quantization offsets by 0, 1/k, ..., (k-1)/k
of a step (:func:`mai_sr.models.qat.equalize.dither_copies`) round like one channel with a
k-times finer step: sum_j round(x + j/k) = floor(k x + k/2) (Hermite's identity), so the
consumer, adding them with 1/k of the weight each, reads the image on a grid twice as fine
(green, which weighs most in luma, three times). Four channels rather than three keep every
width a multiple of 4, which NPUs pad to anyway (``mai-sr lint``). The price: hidden convs
four channels wider on both sides ((C + 4)^2 / C^2: 1.56x for ETDS-T, 1.17x for ETDS-L).
Never substituted: the published layout stays each name's default. Its training graph
(``dual_stream=True``) is a dual-stream ETDS with a seven-channel residual stream, not tied
to the copies.
"""

from __future__ import annotations

import numpy as np

from mai_sr._tf import keras
from mai_sr.models.blocks import (PIXEL_MAX, DepthToSpace, DualStreamKernel,
                                  NegativeIdentity, conv_block, first_conv_args,
                                  hidden_conv_args, nearest_conv_kernel, output_init,
                                  sized_conv, sr_input, weight_constraint)

DEFAULTS = dict(channels=16, blocks=5, extra_channel=None, normalize=True, dual_stream=True,
                residual=3, image_extra=0, max_abs_weight=None, input_size=None)
DEPLOY = dict(normalize=False, dual_stream=False)
# Z6's first-conv weight clip (mai_sr.models.qat.weight_clip) is off: the first conv's
# residual channels copy the image, a centre weight among zeros that the clip (mean +- 2.5
# std per channel) would cut to ~0.5 at the first step, breaking the residual stream (the
# reason deeper kernels, holding rep blocks' identity branches, are never clipped).
RECIPE: dict = {"weight_clip": False}


def copy_colours(extra: int) -> list[int]:
    """The colour (0, 1, 2: R, G, B) of each of `extra` image-path copies, in channel order:
    each colour as often as the others, the remainder to green first (the colour luma weighs
    most), then red; 4 -> R, G, G, B. ValueError for a negative count."""
    if not (isinstance(extra, int) and extra >= 0):
        raise ValueError(f"image_extra={extra!r}: a whole number of channels from 0")
    counts = [extra // 3] * 3
    for colour in (1, 0)[:extra % 3]:
        counts[colour] += 1
    return [c for c in range(3) for _ in range(counts[c])]


def tail_channels(scale: int, extra_channel=None) -> int:
    """Outputs of the last 3x3 conv: 3s^2, plus the authors' extra channel at x3 (None: as
    published)."""
    extra = (scale == 3) if extra_channel is None else bool(extra_channel)
    return 3 * scale * scale + int(extra)


def build(scale: int = 3, *, channels: int, blocks: int, extra_channel, normalize: bool,
          dual_stream: bool, residual: int, image_extra: int, max_abs_weight,
          input_size) -> keras.Model:
    """ETDS (inference form, or its dual-stream training form) with ``DEFAULTS`` updated by
    the keyword arguments."""
    extra = len(copy_colours(image_extra))  # the image path's copies (docstring); checks it
    channels += extra
    residual += extra
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
    # fixed (never trained) at -I and the pixel maximum: the published clip, which INT8 export
    # recognises (mai_sr.models.qat.quantize.is_pixel_clip)
    out_scale = dict(output_scale=PIXEL_MAX) if normalize else {}
    x = sized_conv(3 * scale * scale, 1, "conv_clip", activation="relu", trainable=False,
                   kernel_initializer=NegativeIdentity(),
                   bias_initializer=keras.initializers.Constant(1.0 if normalize else PIXEL_MAX),
                   **out_scale)(x)
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
    order); the fixed clip conv (-I, bias `unit`) turns that into clip(y, 0, unit)."""
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


def relayout(plain_net: keras.Model, copies_net: keras.Model, images=None) -> None:
    """Give `copies_net` (a deploy graph with ``image_extra``) the weights that make it
    compute `plain_net` (the same size and scale as published) exactly, in place: every
    hidden conv's three image-path outputs (its last three channels, which read only the
    image path) are repeated after the features as :func:`copy_colours` lists them, and
    every conv reading them reads each of a colour's k copies with 1/k of the published
    weights.
    `images` (the check images ``relayout`` passes) are not needed here."""
    for plain in plain_net.layers:
        if not (isinstance(plain, keras.layers.Conv2D) and plain.weights):
            continue
        target = copies_net.get_layer(plain.name)
        kernel, bias = (np.asarray(w, np.float64) for w in plain.get_weights())
        wide_in, wide_out = target.get_weights()[0].shape[2:]
        if wide_in > kernel.shape[2]:  # reads the image path: each colour's rows, shared
            colours = copy_colours(wide_in - kernel.shape[2])
            times = np.bincount(colours, minlength=3) + 1
            image = kernel[:, :, -3:, :] / times[None, None, :, None]
            kernel = np.concatenate([kernel[:, :, :-3, :], image, image[:, :, colours, :]],
                                    axis=2)
        if wide_out > kernel.shape[3]:  # a hidden conv: its image outputs again
            colours = copy_colours(wide_out - kernel.shape[3])
            image = np.arange(kernel.shape[3] - 3, kernel.shape[3])[colours]
            kernel = np.concatenate([kernel, kernel[..., image]], axis=3)
            bias = np.concatenate([bias, bias[image]])
        target.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
