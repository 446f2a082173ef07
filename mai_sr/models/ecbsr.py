"""ECBSR, the edge-oriented convolution block SR net (Zhang, Zeng and Zhang, "Edge-oriented
Convolution Block for Real-time Super Resolution on Mobile Devices", ACM Multimedia 2021),
in the collapsed form of the DIV2K-trained ETDS zoo (Chao et al., CVPR 2023): sizes
M4C16 (``ecbsr``), M4C32 and M6C40 (``ecbsr_m4c32``, ``ecbsr_m6c40``).

Published inference computation, kept in the deploy graph: conv 3x3 3 -> C, PReLU; M convs
C -> C, PReLU; a linear conv C -> 3s^2; + the input repeated s^2 times (the anchor); sub-pixel
shuffle. Here the anchor is mai-sr's frozen nearest-conv (the same values in TF's
depth-to-space order), the output is clipped to [0, 255] before depth-to-space, and the
[0, 1] biases times 255 give the same net on [0, 255] pixels (PReLU is positively
homogeneous). PReLU stays (TFLite PRELU; ``mai-sr lint`` says what each target does with
it).

Parameters at x3: 13,720 / 45,850 / 97,790 (M4C16 / M4C32 / M6C40; Chao et al., CVPR 2023,
Table 2; without the frozen anchor). The training graph (``block="ecb"``, the default) is
the paper's: every conv an edge-oriented convolution block
(:class:`~mai_sr.models.blocks.EdgeOrientedBlock`: 3x3, 1x1-3x3 with depth multiplier 2,
and 1x1 then Sobel x / Sobel y / Laplacian branches, no identity, as the ETDS zoo's ECBSR),
in ABPN's [0, 1] domain (``normalize=True``); collapse() makes each one 3x3 conv and folds
the factors. ``block="conv"`` trains the plain convs.

Layout option ``activation="relu_pair"`` (``ecbsr_m4c16_relu_pair``, ``ecbsr_m4c32_relu_pair``,
``ecbsr_m6c40_relu_pair``): the same network with each PReLU written as two ReLUs,
PReLU_a(z) = relu(z) - a relu(-z). Each hidden conv writes z and -z (2C channels) through a
fused ReLU, and the next conv reads the two halves with its kernel and its kernel times -a
(:func:`relayout`; ``mai-sr import --model ecbsr_m4c32_relu_pair`` of a published checkpoint
rewrites it and checks the outputs agree). Why: TFLite's INT8 PRELU keeps two tensors per
layer, the conv output and the PReLU output, whose channels no per-channel scaling fits at
once, and it stores a layer's slopes on one int8 range, where the turned channels' slopes
(up to 51 in M4C32) round the others to 0. Here each layer has one ReLU tensor, every channel
of which cross-layer equalization scales to the tensor's range, and the slopes sit in conv
kernels quantized per output channel. The price: hidden convs twice as wide on both sides,
3.3x / 3.6x / 3.8x the MACs at x3 (M4C16 / M4C32 / M6C40; ``benchmarks/zoo.py`` measures
both layouts). Never substituted: the published layout stays the default, and ``mai-sr
lint`` sees what the option builds. Its training graph (``block="ecb"``) is a 2C-wide ReLU
ECBSR, not tied to the two halves.
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.blocks import (conv_block, first_conv_args, hidden_conv_args,
                                  is_relu_pair, last_conv_args, make_anchor, prelu,
                                  relu_pair_weights, sr_head, sr_input, weight_constraint)

DEFAULTS = dict(channels=16, blocks=4, block="ecb", activation="prelu", normalize=True,
                max_abs_weight=None, input_size=None)
DEPLOY = dict(normalize=False, block="conv")
RECIPE: dict = {}


def build(scale: int = 3, *, channels: int, blocks: int, block: str, activation: str,
          normalize: bool, max_abs_weight, input_size) -> keras.Model:
    """ECBSR with ``DEFAULTS`` updated by the keyword arguments."""
    pair = is_relu_pair(activation)
    constraint = weight_constraint(max_abs_weight)
    inp = sr_input(input_size)
    x = inp
    for i in range(1, blocks + 2):
        args = first_conv_args(normalize) if i == 1 else hidden_conv_args(normalize, block)
        x = conv_block(block, 2 * channels if pair else channels, f"conv{i}",
                       "relu" if pair else None, constraint, identity=False, **args)(x)
        if not pair:
            x = prelu(f"prelu{i}")(x)
    args = last_conv_args(normalize)
    x = conv_block(block, 3 * scale * scale, f"conv{blocks + 2}", None, constraint, **args)(x)
    x = keras.layers.Add(name="add_anchor")([x, make_anchor("nearest_conv", inp, scale)])
    return keras.Model(inp, sr_head(x, scale, "before_d2s"), name="ecbsr")


def relayout(prelu_net: keras.Model, pair_net: keras.Model, images=None) -> None:
    """Give `pair_net` (a deploy graph with ``activation="relu_pair"``) the weights that make
    it compute `prelu_net` (the same size and scale with PReLUs) exactly, in place
    (:func:`~mai_sr.models.blocks.relu_pair_weights`).
    `images` (the check images ``relayout`` passes) are not needed here."""
    hidden = sum(1 for layer in prelu_net.layers if isinstance(layer, keras.layers.PReLU))
    relu_pair_weights(prelu_net, pair_net, [(f"conv{i}", f"prelu{i}" if i <= hidden else None)
                                            for i in range(1, hidden + 2)])
