"""Exact rewrites of a deploy graph's weights that let per-tensor INT8 activations fit it.

TFLite gives every activation tensor one range (per tensor) and every conv kernel one range
per output channel. A network whose channels have very different ranges loses the small
ones: the step of the tensor is set by its widest channel. Two published families show it
(DIV2K-trained checkpoints of Chao et al., "Equivalent Transformation and Dual Stream
Network Construction for Mobile Image Super-Resolution", CVPR 2023):

* ETDS carries the image itself (its residual stream, range ~[0, 300] on pixels) in three
  channels of every hidden tensor, beside features that reach ~1000: the image is
  re-rounded to steps of 4-5 grey levels at every layer. PTQ of ETDS-L x3 lost 2.3 dB on a
  held-out split of T91 + BSD200, 0.33 dB after equalization and bias correction.
* FSRCNN's convs feed PReLUs, which TFLite does not fuse: the conv output (before the
  PReLU) and the PReLU output are two tensors with two ranges. A channel that is mostly
  negative with a slope near 0 spans [-2088, -46] before its PReLU and [-125, 0] after it;
  a channel with slope 3.3 spans [-365, 495] before and [-1216, 495] after. Scaling a
  channel cannot fit both tensors; orienting it first can (below). PTQ of FSRCNN x3 lost
  1.8 dB on that split, 0.6 dB after.

:func:`equalize_channels` applies, on every link "conv (ReLU) -> conv" and "conv -> PReLU
-> conv" (the producer's output consumed by that one conv or transposed conv only), the
two exact identities of a positively homogeneous activation f (Nagel, van Baalen,
Blankevoort and Welling, "Data-Free Quantization Through Weight Equalization and Bias
Correction", ICCV 2019, cross-layer equalization):

* scale: f(s x) = s f(x) for s > 0, so the producer's output channel c times s_c and the
  consumer's input channel c times 1 / s_c compute the same function; s_c makes channel c
  span the tensor's range (its extent times s_c equals the widest channel's);
* orient (PReLU only): PReLU_a(x) = -a PReLU_{1/a}(-x) for a != 0, so a channel can be
  negated, its slope inverted and its consumer weights multiplied by -a. A channel is
  turned when that brings the extents of its two tensors closer (the ratio of the wider to
  the narrower): the part of the signal the PReLU passes with slope 1 then dominates both.

:func:`correct_biases` then removes the mean error that rounding the weights adds to each
conv's output (Nagel et al., ICCV 2019, bias correction, with input means measured on the
calibration images): b += (W - Q(W)) . E[x]. ETDS's identity-like weights from the image
channels (near 1, step 1/127 of it) shift each output by up to a few grey levels; this is
the constant part of that error.

Both change only weights (kernels, biases, PReLU slopes), never the graph: the INT8 file
computes the published network. In float, the equalized model equals the original to
rounding; bias correction moves the float model slightly so that its INT8 version follows
the original more closely.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from mai_sr._tf import keras

# A channel whose extent on the calibration images is below this share of the widest one
# (a dead or nearly constant channel) is scaled by at most its inverse: one step of an 8-bit
# range, which is all such a channel can hold anyway.
MIN_EXTENT_SHARE = 1.0 / 255.0
# Slopes smaller than this are not inverted (1/a would be huge).
MIN_FLIP_SLOPE = 1e-2


@dataclass
class Link:
    """A producer conv whose output channels can be rescaled: its PReLU (or None when the
    ReLU is fused), and the one conv or transposed conv that consumes it."""
    producer: str
    prelu: str | None
    consumer: str


def _consumers(model) -> dict[str, list[str]]:
    consumers: dict[str, list[str]] = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        for node in layer.inbound_nodes:
            inbound = node.inbound_layers
            for parent in inbound if isinstance(inbound, list) else [inbound]:
                consumers[parent.name].append(layer.name)
    return consumers


def _is_trainable_conv(layer, transpose_ok: bool) -> bool:
    kinds = (keras.layers.Conv2D, keras.layers.Conv2DTranspose) if transpose_ok \
        else (keras.layers.Conv2D,)
    return type(layer) in kinds and layer.trainable and layer.use_bias


def _is_per_channel_prelu(layer) -> bool:
    return isinstance(layer, keras.layers.PReLU) and \
        int(np.prod(layer.get_weights()[0].shape[:-1])) == 1


def homogeneous_links(model) -> list[Link]:
    """The links of `model` whose channels :func:`equalize_channels` may rescale."""
    consumers = _consumers(model)
    links = []
    for layer in model.layers:
        if not _is_trainable_conv(layer, transpose_ok=False):
            continue
        activation = layer.get_config()["activation"]
        prelu, outs = None, consumers[layer.name]
        if activation == "linear" and len(outs) == 1 and \
                _is_per_channel_prelu(model.get_layer(outs[0])):
            prelu, outs = outs[0], consumers[outs[0]]
        elif activation != "relu":
            continue
        if len(outs) == 1 and _is_trainable_conv(model.get_layer(outs[0]), transpose_ok=True):
            links.append(Link(layer.name, prelu, outs[0]))
    return links


def _extents(model, link: Link, batches) -> tuple[np.ndarray, ...]:
    """Per channel, over `batches`: (extent of the producer's output, of the PReLU's output
    as it is, of the PReLU's output with the channel turned), an extent being max |value|.
    Without a PReLU the last two are the first."""
    probe = keras.Model(model.inputs, model.get_layer(link.producer).output)
    slope = None if link.prelu is None else \
        model.get_layer(link.prelu).get_weights()[0].reshape(-1)
    inverse = None if slope is None else 1.0 / np.where(np.abs(slope) >= MIN_FLIP_SLOPE,
                                                        slope, 1.0)
    found = None
    for batch in batches:
        x = np.asarray(probe(batch, training=False)).reshape(-1, probe.output.shape[-1])
        if slope is None:
            now = [np.abs(x).max(0)] * 3
        else:
            now = [np.abs(x).max(0), np.abs(np.where(x > 0, x, slope * x)).max(0),
                   np.abs(np.where(-x > 0, -x, inverse * -x)).max(0)]
        found = now if found is None else [np.maximum(a, b) for a, b in zip(found, now)]
    return tuple(found)


def _spread(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(a, b) / np.maximum(np.minimum(a, b), 1e-12)


def equalize_channels(deploy_model, batches: Iterable) -> keras.Model:
    """A copy of `deploy_model` with every :func:`homogeneous_links` link oriented and
    scaled so that each channel spans its tensors' ranges on `batches` (float LR batches in
    [0, 255]); the same function in float (see the module docstring)."""
    model = keras.models.clone_model(deploy_model)
    model.set_weights(deploy_model.get_weights())
    batches = list(batches)
    for link in homogeneous_links(model):
        conv, consumer = model.get_layer(link.producer), model.get_layer(link.consumer)
        before, kept, turned = _extents(model, link, batches)
        sign, factor = np.ones_like(before), np.ones_like(before)
        if link.prelu is not None:
            prelu = model.get_layer(link.prelu)
            (slope,) = prelu.get_weights()
            flat = slope.reshape(-1)
            turn = (np.abs(flat) >= MIN_FLIP_SLOPE) & (_spread(before, turned)
                                                       < _spread(before, kept))
            sign = np.where(turn, -1.0, 1.0)
            factor = np.where(turn, -flat, 1.0)  # consumer weights of a turned channel
            new_slope = np.where(turn, 1.0 / np.where(turn, flat, 1.0), flat)
            prelu.set_weights([new_slope.reshape(slope.shape).astype(slope.dtype)])
            kept = np.where(turn, turned, kept)
        extent = np.maximum(before, kept)
        if not extent.max() > 0:
            continue
        scale = extent.max() / np.maximum(extent, MIN_EXTENT_SHARE * extent.max())
        kernel, bias = conv.get_weights()
        conv.set_weights([(kernel * sign * scale).astype(kernel.dtype),
                          (bias * sign * scale).astype(bias.dtype)])
        weights = consumer.get_weights()
        per_input = (factor / scale).astype(weights[0].dtype)
        # Conv2D kernels are (h, w, in, out); Conv2DTranspose kernels (h, w, out, in).
        weights[0] = weights[0] * (per_input[None, None, None, :]
                                   if isinstance(consumer, keras.layers.Conv2DTranspose)
                                   else per_input[None, None, :, None])
        consumer.set_weights(weights)
    return model


def _copy_groups(kernel: np.ndarray, bias: np.ndarray) -> list[list[int]]:
    """Groups of two or more output channels of a conv that compute the same values
    (identical kernel columns and biases), in channel order. Channels with an all-zero
    kernel are left out: they hold a constant, which a finer grid does not help."""
    groups: dict[bytes, list[int]] = {}
    for c in range(kernel.shape[-1]):
        if not kernel[..., c].any():
            continue
        key = np.ascontiguousarray(kernel[..., c]).tobytes() + bias[c:c + 1].tobytes()
        groups.setdefault(key, []).append(c)
    return [g for g in groups.values() if len(g) > 1]


def dither_copies(model, batches: Iterable) -> int:
    """Offset the copies of every channel a ReLU conv writes k times (ETDS's
    ``image_extra`` layout option) by 0, 1/k, ..., (k-1)/k of its tensor's int8 step, and
    take the offsets back out of the consuming conv's bias; in place, and returns how many
    channels moved.

    The consumer reads the k copies with 1/k of the weight each, so it reads their mean,
    and the mean of round(x + j/k) over j is x rounded to a k-times finer step (Hermite's
    identity: sum_j floor(y + j/k) = floor(k y)): copies that sit on the same grid in one
    tensor carry k times the resolution of one. Undithered, they would round alike and add
    nothing. Call it after :func:`equalize_channels` (which scales copies alike, since their
    extents are equal): the step is the tensor's widest extent on `batches` / 255, as the
    range calibration will find it. In float the network changes wherever a copy is not
    active: a pre-activation below minus its offset leaves the copy at 0 where the
    consumer's bias expects the offset (by the consumer's weight times the offset there),
    and at the image border, where the consumer's zero padding lacks the offset. ETDS's
    image path is positive, so only values within a step of 0 and the border move; half of
    the values of FSRCNN's two-ReLU tensors are 0, and its copies option's output moves by
    about a grey level on average (0.97, 3.3 at most, on Set5 crops in
    tests/test_fsrcnn_copies.py). QAT starts from there.
    """
    moved = 0
    batches = list(batches)
    for link in homogeneous_links(model):
        conv, consumer = model.get_layer(link.producer), model.get_layer(link.consumer)
        if link.prelu is not None or isinstance(consumer, keras.layers.Conv2DTranspose):
            continue  # no layout writes copies there
        kernel, bias = conv.get_weights()
        groups = _copy_groups(kernel, bias)
        if not groups:
            continue
        step = float(_extents(model, link, batches)[0].max()) / 255.0
        weights = consumer.get_weights()
        consumer_bias = weights[1].astype(np.float64)
        bias = bias.astype(np.float64)
        for group in groups:
            for j, c in enumerate(group[1:], start=1):
                offset = step * j / len(group)
                bias[c] += offset
                consumer_bias -= weights[0][:, :, c, :].sum((0, 1)) * offset
                moved += 1
        conv.set_weights([kernel, bias.astype(kernel.dtype)])
        consumer.set_weights([weights[0], consumer_bias.astype(weights[1].dtype)] + weights[2:])
    return moved


def _input_means(model, names: list[str], batches) -> dict[str, np.ndarray]:
    """Mean of each input channel of the layers `names` over `batches`."""
    probe = keras.Model(model.inputs, [model.get_layer(n).input for n in names])
    sums, count = None, 0
    for batch in batches:
        outs = probe(batch, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        now = [np.asarray(o, np.float64).reshape(-1, o.shape[-1]).sum(0) for o in outs]
        sums = now if sums is None else [a + b for a, b in zip(sums, now)]
        count += int(np.prod(outs[0].shape[:-1]))
    return {n: s / count for n, s in zip(names, sums)}


def correct_biases(model, batches: Iterable) -> None:
    """Add to each trainable conv's bias the mean error its INT8 weights cause on
    `batches` (in place; see the module docstring). The weights are rounded by the
    quantizers :func:`mai_sr.models.qat.quantize_model` uses, so the correction is for exactly
    the INT8 weights of the file. A transposed conv's taps differ between the s^2 output
    phases; it gets the mean over them."""
    from mai_sr.models.qat.configs import PerChannelWeightQuantizer, PerTensorWeightQuantizer

    convs = [layer for layer in model.layers
             if _is_trainable_conv(layer, transpose_ok=True)]
    if not convs:
        return
    means = _input_means(model, [c.name for c in convs], list(batches))
    for conv in convs:
        kernel, bias = conv.get_weights()
        transpose = isinstance(conv, keras.layers.Conv2DTranspose)
        quantizer = PerTensorWeightQuantizer() if transpose else PerChannelWeightQuantizer()
        error = (kernel - np.asarray(quantizer(kernel, False, {}))).astype(np.float64)
        if transpose:
            shift = np.einsum("hwoi,i->o", error, means[conv.name]) / np.prod(conv.strides)
        else:
            shift = np.einsum("hwio,i->o", error, means[conv.name])
        conv.set_weights([kernel, (bias + shift).astype(bias.dtype)])
