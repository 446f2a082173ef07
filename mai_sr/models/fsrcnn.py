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

Layout option ``copies`` (``fsrcnn_relu_pair_subpixel_copies``: two ReLUs, the subpixel conv,
and every hidden ReLU tensor written twice): each hidden conv writes its channels k times
(whole blocks, appended) and the next conv reads each copy with 1/k of the weight
(:func:`~mai_sr.models.blocks.copy_channel_weights`), so in float it is the same network.
Why: one int8 range per tensor rounds every hidden tensor, and on FSRCNN's weights that alone
costs more than 0.05 dB (the zoo's floor); quantization moves the k copies of each channel
onto grids 1/k of a step apart (:func:`~mai_sr.models.qat.equalize.dither_copies`), and
their mean is the channel rounded on a k-times finer grid. Which tensors to copy was chosen
on the held-out tenth of T91 + BSD200 after the QAT recipe (PSNR, RGB): none 28.227 dB;
the first two 28.261; the first two and the last 28.269; all but the last 28.288; all seven
28.298, taken. It costs k^2 the MACs of each hidden conv and k those of the first and the
subpixel conv. Only this layout copies: a PReLU keeps its conv's output as a tensor of its
own, and a transposed conv's weights sit on one grid.

Parameters: 24,680 at every scale (the scale is only the stride; Chao et al., CVPR 2023,
Table 2 lists 24.68 K). Training graph (``normalize=True``): first conv input x 1/255,
transposed conv output x 255 (folded by collapse()).
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.blocks import (PIXEL_MAX, ClipByValue, DepthToSpace, KernelSupport,
                                  copy_channel_weights,
                                  ScaledConv2DTranspose, SubpixelSupport, deconv_kernel_size,
                                  is_relu_pair, output_init, prelu, relu_pair_weights,
                                  sized_conv, sr_input, subpixel_from_transposed, subpixel_taps,
                                  weight_constraint)

DEFAULTS = dict(features=56, shrink=12, mapping=4, deconv_kernel=9, activation="prelu",
                upsample="transposed", copies=None, normalize=True, max_abs_weight=None,
                input_size=None)
UPSAMPLE_LAYOUTS = ("transposed", "subpixel")
DEPLOY = dict(normalize=False)
RECIPE: dict = {}


def build(scale: int = 3, *, features: int, shrink: int, mapping: int, deconv_kernel: int,
          activation: str, upsample: str, copies, normalize: bool, max_abs_weight,
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
    copies = hidden_copies(copies, len(layers), pair and upsample == "subpixel")
    x = inp
    for i, ((width, kernel, scales), times) in enumerate(zip(layers, copies), start=1):
        if pair:
            x = sized_conv(2 * width * times, kernel, f"conv{i}", constraint,
                           activation="relu", **scales)(x)
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


def hidden_copies(copies, hidden: int, copyable: bool) -> list[int]:
    """How many times each of the `hidden` layers writes its ReLU tensor (the ``copies``
    option: None for once each, or one count per layer). Only the two-ReLU layout with the
    subpixel conv can copy: quantization dithers copies that ReLU convs write for convs to
    read (:func:`~mai_sr.models.qat.equalize.dither_copies`), and a PReLU keeps its conv's
    output as a tensor of its own, a transposed conv its weights on one grid."""
    if copies is None:
        return [1] * hidden
    copies = [int(k) for k in copies]
    if len(copies) != hidden or min(copies) < 1:
        raise ValueError(f"copies={copies}: give {hidden} counts of at least 1, one per "
                         "hidden layer")
    if not copyable and max(copies) > 1:
        raise ValueError("copies need activation='relu_pair' and upsample='subpixel'")
    return copies


def _deploy_graph(published: keras.Model, scale: int, support: int, **layout) -> keras.Model:
    """A deploy graph of `published`'s sizes in the layout `layout` (build's options)."""
    hidden = sum(1 for layer in published.layers if isinstance(layer, keras.layers.PReLU))
    options = dict(activation="prelu", upsample="transposed", copies=None) | layout
    return build(scale, features=published.get_layer("conv1").filters,
                 shrink=published.get_layer("conv2").filters, mapping=hidden - 3,
                 deconv_kernel=support, normalize=False, max_abs_weight=None,
                 input_size=None, **options)


def relayout(published: keras.Model, target: keras.Model, images=None) -> None:
    """Give `target` (a deploy graph in a layout option: two ReLUs, the subpixel conv, both,
    and copies of the ReLU tensors) the weights that make it compute `published` (the same
    scale, PReLUs and the transposed conv) exactly, in place, one rewrite at a time through
    the layouts between: the two ReLUs by :func:`~mai_sr.models.blocks.relu_pair_weights`
    (the transposed conv reads the last layer's two halves), the transposed conv moved into
    the subpixel conv by :func:`~mai_sr.models.blocks.subpixel_from_transposed`, the copies
    by :func:`~mai_sr.models.blocks.copy_channel_weights`.
    `images` (the check images ``relayout`` passes) are not needed here."""
    layers = {layer.name for layer in target.layers}
    hidden = sum(1 for layer in published.layers if isinstance(layer, keras.layers.PReLU))
    convs = [f"conv{i}" for i in range(1, hidden + 1)]
    deconv = published.get_layer("deconv")
    scale, support = int(deconv.strides[0]), int(deconv.kernel_constraint.size)
    pair = not any(isinstance(layer, keras.layers.PReLU) for layer in target.layers)
    subpixel = "subpixel_conv" in layers
    copied = any(target.get_layer(name).filters
                 != published.get_layer(name).filters * (2 if pair else 1) for name in convs)
    source = published
    if pair:
        source = _deploy_graph(published, scale, support, activation="relu_pair")
        relu_pair_weights(published, source, [(name, f"prelu{i}") for i, name
                                              in enumerate(convs, start=1)] + [("deconv", None)])
    if subpixel:
        transposed = source
        source = _deploy_graph(published, scale, support, activation="relu_pair" if pair
                               else "prelu", upsample="subpixel")
        for layer in transposed.layers:
            if layer.weights and layer.name != "deconv":
                source.get_layer(layer.name).set_weights(layer.get_weights())
        kernel, bias = transposed.get_layer("deconv").get_weights()
        source.get_layer("subpixel_conv").set_weights(
            subpixel_from_transposed(kernel, bias, scale, support))
    if copied:
        copy_channel_weights(source, target, convs + ["subpixel_conv"])
        return
    for layer in source.layers:
        if layer.weights:
            target.get_layer(layer.name).set_weights(layer.get_weights())
