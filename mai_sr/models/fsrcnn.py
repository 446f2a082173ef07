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

Parameters: 24,680 at every scale (the scale is only the stride; Chao et al., CVPR 2023,
Table 2 lists 24.68 K). Training graph (``normalize=True``): first conv input x 1/255,
transposed conv output x 255 (folded by collapse()).
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.blocks import (PIXEL_MAX, ClipByValue, KernelSupport, ScaledConv2DTranspose,
                                  deconv_kernel_size, is_relu_pair, prelu, relu_pair_weights,
                                  sized_conv, sr_input, weight_constraint)

DEFAULTS = dict(features=56, shrink=12, mapping=4, deconv_kernel=9, activation="prelu",
                normalize=True, max_abs_weight=None, input_size=None)
DEPLOY = dict(normalize=False)
RECIPE: dict = {}


def build(scale: int = 3, *, features: int, shrink: int, mapping: int, deconv_kernel: int,
          activation: str, normalize: bool, max_abs_weight, input_size) -> keras.Model:
    """FSRCNN with ``DEFAULTS`` updated by the keyword arguments."""
    pair = is_relu_pair(activation)
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


def relayout(prelu_net: keras.Model, pair_net: keras.Model) -> None:
    """Give `pair_net` (a deploy graph with ``activation="relu_pair"``) the weights that make
    it compute `prelu_net` (the same scale with PReLUs) exactly, in place
    (:func:`~mai_sr.models.blocks.relu_pair_weights`; the transposed conv reads the last
    layer's two halves)."""
    hidden = sum(1 for layer in prelu_net.layers if isinstance(layer, keras.layers.PReLU))
    relu_pair_weights(prelu_net, pair_net, [(f"conv{i}", f"prelu{i}")
                                            for i in range(1, hidden + 1)] + [("deconv", None)])
