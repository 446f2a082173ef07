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

Layout option ``tanh_groups=(g1, g2)`` (``espcn_tanh_groups``: (4, 2)): each tanh layer's
conv split by output channels into g convs, each through its own tanh, concatenated (the
same network; :func:`relayout` sorts the channels by their peak pre-activation on the check
images, so each group's channels have like ranges). Why: TFLite's int8 TANH reads its input
on one range per tensor, and ESPCN's channels peak anywhere from 0.5 to well past where tanh
saturates, so one range rounds the narrow ones coarsely; a group is a tensor of its own,
with its own fitted range (``fit_activation_inputs``). The tanh outputs all sit on TFLite's
fixed 1/128 grid, so concatenating them is exact. The same MACs and weights, more ops; the
groups of (4, 2) are 16 channels each (the multiple VS680-class NPUs map best). Chosen on
the held-out tenth of T91 + BSD200 (``benchmarks/espcn_tanh_groups.py``, a float simulation
of the two tanh layers' rounding, each group on its MSE-fitted symmetric range).

Layout option ``tanh_copies=(k1, k2)`` (``espcn_tanh_copies``: the groups (4, 2), each
group's channels written twice): each group's conv writes its channels k times (whole
blocks, appended), all through the group's tanh, and the next conv reads each copy with 1/k
of the weight, so in float it is the same network. Why: with the groups, each tanh's own
rounding (input on its int8 range, output on the fixed 1/128 grid) still cost 0.085 dB on
the held-out images in the groups' simulation; quantization moves the k copies to centred
fractions of their input step (:func:`~mai_sr.models.qat.quantize.dither_activation_copies`),
and their mean reads the input on a grid k times finer, the output dithered alike. That
simulation (centred offsets) put (2, 1) copies at 0.050 dB, (2, 2) at 0.041, (4, 1) at 0.042
and (4, 2) at 0.032; after the QAT recipe the held-out PSNR was 28.105 dB for (2, 2) and
28.113 for (4, 2) (28.074 without copies, FP32 28.156): (2, 2) was taken, 0.008 dB below for
54 % of the MACs. It costs k1 the first conv's MACs, k1 k2 the second's and k2 the third's:
3.19x the published network's at (2, 2).

Parameters: 26,800 / 31,131 / 37,200 at x2 / x3 / x4 (Chao et al., CVPR 2023, Table 2).
Training graph (``normalize=True``): the first conv is a ScaledConv2D with input x 1/255,
folded by collapse().
"""

from __future__ import annotations

import numpy as np

from mai_sr._tf import keras
from mai_sr.models.blocks import (PIXEL_MAX, DepthToSpace, Scale, conv_block, sized_conv,
                                  sr_input, weight_constraint)

DEFAULTS = dict(channels=(64, 32), tanh_groups=(1, 1), tanh_copies=(1, 1), normalize=True,
                max_abs_weight=None, input_size=None)
DEPLOY = dict(normalize=False)
RECIPE: dict = {}


def _tanh_layer(x, filters: int, kernel: int, layer: int, groups: int, copies: int,
                constraint, **scales):
    """conv{layer} and tanh{layer}; with `groups` > 1, conv{layer}_g1..g{groups} (each
    filters / groups wide) through tanh{layer}_g1.. and concatenated as tanh{layer}; with
    `copies` k > 1, each conv writes its channels k times (whole blocks, appended)."""
    if groups < 1 or copies < 1:
        raise ValueError(f"tanh_groups {groups} and tanh_copies {copies}: give counts of "
                         "at least 1")
    if groups == 1:
        x = sized_conv(filters * copies, kernel, f"conv{layer}", constraint, **scales)(x)
        return keras.layers.Activation("tanh", name=f"tanh{layer}")(x)
    if filters % groups:
        raise ValueError(f"tanh_groups: {groups} groups do not split {filters} channels")
    parts = [keras.layers.Activation("tanh", name=f"tanh{layer}_g{g}")(
                 sized_conv(filters // groups * copies, kernel, f"conv{layer}_g{g}",
                            constraint, **scales)(x)) for g in range(1, groups + 1)]
    return keras.layers.Concatenate(name=f"tanh{layer}")(parts)


def build(scale: int = 3, *, channels, tanh_groups, tanh_copies, normalize: bool,
          max_abs_weight, input_size) -> keras.Model:
    """ESPCN with ``DEFAULTS`` updated by the keyword arguments."""
    constraint = weight_constraint(max_abs_weight)
    inp = sr_input(input_size)
    # The deploy graph folds 1/255 into conv1's kernel, the training graph keeps the factor.
    x = _tanh_layer(inp, channels[0], 5, 1, int(tanh_groups[0]), int(tanh_copies[0]),
                    constraint, **({"input_scale": 1.0 / PIXEL_MAX} if normalize else {}))
    x = _tanh_layer(x, channels[1], 3, 2, int(tanh_groups[1]), int(tanh_copies[1]),
                    constraint)
    x = conv_block("conv", 3 * scale * scale, "conv3", None, constraint)(x)
    x = keras.layers.Activation("sigmoid", name="sigmoid")(x)
    x = Scale(PIXEL_MAX, name="to_pixels")(x)
    return keras.Model(inp, DepthToSpace(scale, name="depth_to_space")(x), name="espcn")


def _group_convs(model: keras.Model, layer: int) -> list:
    """The convs computing tanh layer `layer`'s input in `model`, in concatenation order."""
    names = {lay.name for lay in model.layers}
    if f"conv{layer}" in names:
        return [model.get_layer(f"conv{layer}")]
    found, g = [], 1
    while f"conv{layer}_g{g}" in names:
        found.append(model.get_layer(f"conv{layer}_g{g}"))
        g += 1
    return found


def relayout(published: keras.Model, target: keras.Model, images=None) -> None:
    """Give `target` (a deploy graph with ``tanh_groups`` and ``tanh_copies``) the weights
    that make it compute `published` (the same scale, one conv per tanh layer) exactly, in
    place: each tanh layer's channels sorted by their peak |pre-activation| over `images`
    (uint8 LR images, HxWx3; None or none: the published order) and dealt in that order to
    the groups, each group's conv writing its channels k times; the next conv reads each
    input row where the groups put it, each of k copies with 1/k of its weight."""
    rows, share = None, 1  # per input row of the next conv: the published channel it holds
    for layer in (1, 2):
        kernel, bias = published.get_layer(f"conv{layer}").get_weights()
        if images:
            probe = keras.Model(published.inputs, published.get_layer(f"conv{layer}").output)
            peak = np.max([np.abs(np.asarray(probe(lr[None].astype(np.float32)))).max(
                axis=(0, 1, 2)) for lr in images], axis=0)
            order = np.argsort(peak, kind="stable")
        else:
            order = np.arange(kernel.shape[-1])
        if rows is not None:  # reads the previous layer's channels where its groups put them
            kernel = kernel[:, :, rows, :] / share
        convs = _group_convs(target, layer)
        share = sum(conv.filters for conv in convs) // kernel.shape[-1]
        start, rows = 0, []
        for conv in convs:
            picked = np.tile(order[start:start + conv.filters // share], share)
            conv.set_weights([kernel[..., picked], bias[picked]])
            rows.extend(picked)
            start += conv.filters // share
    kernel, bias = published.get_layer("conv3").get_weights()
    target.get_layer("conv3").set_weights([kernel[:, :, rows, :] / share, bias])
