"""FSRCNN, the fast SR CNN (Dong, Loy and Tang, "Accelerating the Super-Resolution
Convolutional Neural Network", ECCV 2016), FSRCNN(d=56, s=12, m=4) in the form of the
DIV2K-trained ETDS zoo (Chao et al., CVPR 2023).

Published computation, kept in the deploy graph: conv 5x5 3 -> 56, PReLU; conv 1x1 56 -> 12,
PReLU; four conv 3x3 12 -> 12, PReLU; conv 1x1 12 -> 56, PReLU; a 9x9 transposed conv
56 -> 3 with stride s (PyTorch padding 4, output padding s - 1), no anchor. Here:

- the transposed conv is one Keras ``Conv2DTranspose`` ('same', TFLite TRANSPOSE_CONV) whose
  kernel is (8 + s) x (8 + s) with the published 9x9 in its top-left corner and zeros
  elsewhere: the same products and sums, aligned as PyTorch aligns them
  (:func:`~mai_sr.models.blocks.deconv_kernel_size`); a training graph keeps those taps at
  zero (:class:`~mai_sr.models.blocks.KernelSupport`);
- on [0, 255] pixels: PReLU is positively homogeneous, so the [0, 1] biases times 255 give
  the same net on pixels; the output is then clipped to [0, 255] (the published net is
  unbounded; its evaluation clamps);
- the 5x5 kernel, PReLU and the transposed conv stay (``mai-sr lint`` says what each target
  does with them: TRANSPOSE_CONV ran on the CPU of one NNAPI phone in the ETDS paper's
  timings); nothing is substituted.

Layout option ``activation="relu_pair"`` (``fsrcnn_relu_pair``): the same network with each
PReLU written as two ReLUs, as ECBSR's option (:mod:`mai_sr.models.ecbsr` says why): every
PReLU'd conv twice as wide with a fused ReLU, the next conv (the transposed conv last) taking
the slopes into its kernel (:func:`relayout`). 2.1x the MACs at x3 (92.3 against 44.6 G at
360x640, the transposed conv's zero taps counted).

Layout option ``upsample="subpixel"`` (``fsrcnn_subpixel``, and with two ReLUs
``fsrcnn_relu_pair_subpixel``): the transposed conv as the conv and depth-to-space that
compute it exactly (:func:`~mai_sr.models.blocks.subpixel_from_transposed`: each tap moved to
the output phase it feeds, a 4x4 conv to 27 channels at x3, 5x5 at x2, 3x3 at x4; taps no
phase has stay zero, :class:`~mai_sr.models.blocks.SubpixelSupport`). Why: TFLite's
converter stores a TRANSPOSE_CONV's weights on one int8 grid for the whole kernel, a conv's
on one grid per output channel. Put alone on those grids (``benchmarks/weight_grid.py
--fsrcnn``, float otherwise), the imported x3 two-ReLU kernel cost 0.290 / 0.159 / 0.102 dB
(Set5 / Set14 / B100) as a transposed conv and 0.079 / 0.041 / 0.027 as the subpixel conv.
It also leaves no TRANSPOSE_CONV for a delegate to refuse or run slowly (the ETDS paper's
FSRCNN took 1,350 ms on a Snapdragon 8 Gen 1 through NNAPI), and the dynamic-shape file
needs no shape arithmetic. The same nonzero products; the conv also multiplies its zero taps
(16 x 27 against 11 x 11 x 3 per LR pixel and input channel as TFLite runs them, 1.19x).

Parameters: 24,680 at every scale (the scale is only the stride; Chao et al., CVPR 2023,
Table 2 lists 24.68 K). Training graph (``normalize=True``): first conv input x 1/255,
transposed conv output x 255 (folded by collapse()).
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.blocks import (PIXEL_MAX, ClipByValue, DepthToSpace, KernelSupport,
                                  ScaledConv2DTranspose, SubpixelSupport, deconv_kernel_size,
                                  is_relu_pair, output_init, prelu, relu_pair_weights,
                                  sized_conv, sr_input, subpixel_from_transposed, subpixel_taps,
                                  weight_constraint)

DEFAULTS = dict(features=56, shrink=12, mapping=4, deconv_kernel=9, activation="prelu",
                upsample="transposed", normalize=True, max_abs_weight=None, input_size=None)
UPSAMPLE_LAYOUTS = ("transposed", "subpixel")
DEPLOY = dict(normalize=False)
RECIPE: dict = {}


def build(scale: int = 3, *, features: int, shrink: int, mapping: int, deconv_kernel: int,
          activation: str, upsample: str, normalize: bool, max_abs_weight,
          input_size) -> keras.Model:
    """FSRCNN with ``DEFAULTS`` updated by the keyword arguments."""
    pair = is_relu_pair(activation)
    if upsample not in UPSAMPLE_LAYOUTS:
        raise ValueError(f"upsample={upsample!r}; choose from {', '.join(UPSAMPLE_LAYOUTS)}")
    constraint = weight_constraint(max_abs_weight)
    inp = sr_input(input_size)
    first = dict(input_scale=1.0 / PIXEL_MAX) if normalize else {}
    layers = [(features, 5, first), (shrink, 1, {})]
    layers += [(shrink, 3, {})] * mapping + [(features, 1, {})]
    x = inp
    for i, (width, kernel, scales) in enumerate(layers, start=1):
        if pair:
            x = sized_conv(2 * width, kernel, f"conv{i}", constraint, activation="relu",
                           **scales)(x)
        else:
            x = sized_conv(width, kernel, f"conv{i}", constraint, **scales)(x)
            x = prelu(f"prelu{i}")(x)
    if upsample == "subpixel":
        size, _ = subpixel_taps(deconv_kernel, scale)
        pixels = dict(output_scale=PIXEL_MAX, kernel_initializer=output_init()) if normalize \
            else {}
        x = sized_conv(3 * scale * scale, size, "subpixel_conv",
                       SubpixelSupport(deconv_kernel, scale), **pixels)(x)
        # the clip is elementwise, so before depth-to-space it clips the same values
        x = ClipByValue(name="clip")(x)
        return keras.Model(inp, DepthToSpace(scale, name="depth_to_space")(x), name="fsrcnn")
    size = deconv_kernel_size(deconv_kernel, scale)
    support = KernelSupport(deconv_kernel)
    deconv_args = dict(strides=scale, padding="same", name="deconv",
                       kernel_constraint=support)
    if normalize:
        x = ScaledConv2DTranspose(3, size, output_scale=PIXEL_MAX, **deconv_args,
                                  kernel_initializer=keras.initializers.RandomNormal(
                                      stddev=1e-3))(x)
    else:
        x = keras.layers.Conv2DTranspose(3, size, **deconv_args)(x)
    return keras.Model(inp, ClipByValue(name="clip")(x), name="fsrcnn")


def relayout(published: keras.Model, target: keras.Model, images=None) -> None:
    """Give `target` (a deploy graph in a layout option: two ReLUs, the subpixel conv, or
    both) the weights that make it compute `published` (the same scale, PReLUs and the
    transposed conv) exactly, in place: the two ReLUs by
    :func:`~mai_sr.models.blocks.relu_pair_weights` (the transposed conv reads the last
    layer's two halves), then the transposed conv moved into the subpixel conv by
    :func:`~mai_sr.models.blocks.subpixel_from_transposed`.
    `images` (the check images ``relayout`` passes) are not needed here."""
    layers = {layer.name for layer in target.layers}
    hidden = sum(1 for layer in published.layers if isinstance(layer, keras.layers.PReLU))
    deconv = published.get_layer("deconv")
    scale, support = int(deconv.strides[0]), int(deconv.kernel_constraint.size)
    pair = target.get_layer("conv1").filters != published.get_layer("conv1").filters
    source = published
    if pair:
        source = target
        if "subpixel_conv" in layers:  # the two-ReLU net with its transposed conv, first
            source = build(scale, features=published.get_layer("conv1").filters,
                           shrink=published.get_layer("conv2").filters, mapping=hidden - 3,
                           deconv_kernel=support, activation="relu_pair",
                           upsample="transposed", normalize=False, max_abs_weight=None,
                           input_size=None)
        relu_pair_weights(published, source, [(f"conv{i}", f"prelu{i}")
                                              for i in range(1, hidden + 1)] + [("deconv", None)])
    if "subpixel_conv" not in layers:
        return
    for layer in source.layers:
        if layer.weights and layer.name != "deconv":
            target.get_layer(layer.name).set_weights(layer.get_weights())
    kernel, bias = source.get_layer("deconv").get_weights()
    target.get_layer("subpixel_conv").set_weights(
        subpixel_from_transposed(kernel, bias, scale, support))
