"""ESPCN, the efficient sub-pixel CNN (Shi et al., "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016), in
the form of the DIV2K-trained ETDS zoo (Chao et al., "Equivalent Transformation and Dual
Stream Network Construction for Mobile Image Super-Resolution", CVPR 2023).

Published computation, kept in the deploy graph: conv 5x5 3 -> 64, tanh; conv 3x3 64 -> 32,
tanh; conv 3x3 32 -> 3s^2; sub-pixel shuffle; sigmoid. On [0, 1] pixels. Here:

- input: the first conv takes [0, 255] pixels, its kernel divided by 255 (tanh is not
  positively homogeneous, so the range cannot move into the biases as for ReLU nets);
- output: sigmoid (in [0, 1], so no clip), times 255 (:class:`~mai_sr.models.blocks.Scale`,
  one MUL); both elementwise, so they run before depth-to-space on the LR tensor, which
  gives the same values as after it;
- the 5x5 kernel, tanh and sigmoid stay: VS680-class NPUs run 3x3 convs and ReLUs best
  (``mai-sr lint`` says what each target does with them); nothing is substituted.

Parameters: 26,800 / 31,131 / 37,200 at x2 / x3 / x4 (Chao et al., CVPR 2023, Table 2).
Training graph (``normalize=True``): the first conv is a ScaledConv2D with input x 1/255,
folded by collapse().
"""

from __future__ import annotations

from mai_sr._tf import keras
from mai_sr.models.blocks import (PIXEL_MAX, DepthToSpace, Scale, conv_block, sized_conv,
                                  sr_input, weight_constraint)

DEFAULTS = dict(channels=(64, 32), normalize=True, max_abs_weight=None, input_size=None)
DEPLOY = dict(normalize=False)
RECIPE: dict = {}


def build(scale: int = 3, *, channels, normalize: bool, max_abs_weight,
          input_size) -> keras.Model:
    """ESPCN with ``DEFAULTS`` updated by the keyword arguments."""
    constraint = weight_constraint(max_abs_weight)
    inp = sr_input(input_size)
    # The deploy graph folds 1/255 into conv1's kernel, the training graph keeps the factor.
    x = sized_conv(channels[0], 5, "conv1", constraint,
              input_scale=1.0 / PIXEL_MAX if normalize else 1.0)(inp)
    x = keras.layers.Activation("tanh", name="tanh1")(x)
    x = conv_block("conv", channels[1], "conv2", None, constraint)(x)
    x = keras.layers.Activation("tanh", name="tanh2")(x)
    x = conv_block("conv", 3 * scale * scale, "conv3", None, constraint)(x)
    x = keras.layers.Activation("sigmoid", name="sigmoid")(x)
    x = Scale(PIXEL_MAX, name="to_pixels")(x)
    return keras.Model(inp, DepthToSpace(scale, name="depth_to_space")(x), name="espcn")
