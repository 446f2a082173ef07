"""SCSRN, the skip-concatenated SR network (team Z6, MAI 2022 winner; MAI 2022 report, sec. 4.1).

No code was published; this is our reading of the report text and its Fig. 3:

- "two 3x3 convolution layers, five Re-Parameterizable blocks and a skip connection
  (concatenation of input image and intermediate feature map directly)", 32 channels,
  depth-to-space at the end, clip before depth-to-space. So: conv 3 -> 32 (ReLU), five rep
  blocks 32 -> 32 (ReLU), concatenate [LR input, features] (35 channels), conv 35 -> 27
  (linear), clip [0, 255], depth_to_space(3). Seven convs in the deploy graph.
- The concatenated input replaces ABPN's anchor: the last conv sees the raw image and can
  learn the anchor itself (one CONCATENATION op instead of a 9-copy anchor + ADD).
- Rep block: the report does not detail it; we use :class:`~mai_sr.models.blocks.RepConv`
  (3x3 + 1x1 + identity, RepVGG-style), collapsed to one 3x3 conv for inference.
  ``block="clb"`` trains with collapsible linear blocks instead.
- Size check: 55,668 parameters, i.e. about 56 KB of int8 weights plus biases and per-channel
  quantization parameters, close to the published 67 KB INT8 file (Table 1: 30.03 dB,
  19.2 ms on the VS680 NPU). A third plain conv (35 -> 32 -> 27) would give ~65 K
  parameters and overshoot.
- Weight bound: ``max_abs_weight=<max |w|>`` puts a ClipWeights constraint (|w| <= max) on
  every conv kernel; off by default because the report gives no value. Z6's own weight
  clipping (the skewed first-layer weights, because TFLite quantizes weights symmetrically)
  is the training loop's (``mai_sr.models.qat.apply_weight_clip``, off with ``--no-weight-clip``).
- Training graph (``normalize=True``): [0, 1] domain as in ABPN. The last conv reads the
  image scaled by 1/255 and the features as they are, and its output is scaled by 255; it
  starts as nearest-neighbour upscaling (nearest-conv kernel on the image's centre tap,
  :class:`~mai_sr.models.blocks.NearestTapInitializer`), SCSRN's implicit anchor.
- Warm start from ABPN (:func:`embed`): SCSRN's seven convs can compute ABPN-M4C28's seven
  exactly (ABPN's 28 -> 27 conv as the fifth block, its linear conv plus the anchor as the
  output conv's feature and image taps), so published ABPN weights
  (``mai-sr import ABPN_M4C28_x3.pth --model scsrn``) start SCSRN where ABPN is, with room
  to grow (Chen, Goodfellow and Shlens, "Net2Net: Accelerating Learning via Knowledge
  Transfer", ICLR 2016: a larger net initialised to compute a smaller one).
- INT8 and the learned anchor: the output conv's image taps share each output channel's
  int8 weight grid (step max |w| / 127, about 1/127 with a centre tap near 1), so small
  learned deviations from the anchor are rounded by a whole step on pixels up to 255.
  :func:`anchor_tap_hold` (``train --hold-anchor-taps``) keeps them at the exact anchor.
"""

from __future__ import annotations

import numpy as np

from mai_sr._tf import keras
from mai_sr.errors import MaiSrError
from mai_sr.models.blocks import (PIXEL_MAX, NearestTapInitializer, conv_block,
                                  first_conv_args, hidden_conv_args, nearest_conv_kernel,
                                  sr_head, sr_input, weight_constraint)

DEFAULTS = dict(channels=32, blocks=5, block="repconv", clip="before_d2s", normalize=True,
                max_abs_weight=None, input_size=None)
DEPLOY = dict(block="conv", normalize=False)

# Training defaults that differ from mai_sr.train.BASE_RECIPE: Z6 trained with a cosine
# schedule after a 10% warm-up (Ignatov et al., ECCV 2022 Workshops challenge report, 4.1).
RECIPE = {"warmup": 0.1}


def build(scale: int = 3, *, channels: int, blocks: int, block: str, clip: str, normalize: bool,
          max_abs_weight, input_size) -> keras.Model:
    """SCSRN with ``DEFAULTS`` updated by the keyword arguments."""
    constraint = weight_constraint(max_abs_weight)
    inp = sr_input(input_size)
    x = conv_block("conv", channels, "conv1", "relu", constraint,
                   **first_conv_args(normalize))(inp)
    for i in range(blocks):
        x = conv_block(block, channels, f"block{i + 1}", "relu", constraint,
                       **hidden_conv_args(normalize, block))(x)
    x = keras.layers.Concatenate(name="skip_concat")([inp, x])
    out_args = dict(input_scale=[1.0 / PIXEL_MAX] * 3 + [1.0] * channels,
                    output_scale=PIXEL_MAX,
                    kernel_initializer=NearestTapInitializer(scale)) if normalize else {}
    x = conv_block("conv", 3 * scale * scale, "conv_out", None, constraint, **out_args)(x)
    return keras.Model(inp, sr_head(x, scale, clip), name="scsrn")


def embed(abpn_net: keras.Model, scsrn_net: keras.Model) -> None:
    """Give `scsrn_net` (an SCSRN deploy graph) the weights that make it compute `abpn_net`
    (an ABPN deploy graph of the same scale with at most as many channels and the same
    number of convs), in place.

    ABPN's conv1..conv5 become conv1, block1..block4, its ReLU conv to 3s^2 channels
    block5, and its linear last conv the output conv's feature taps; the output conv's image
    taps are the anchor (each output channel's colour at the centre tap: nearest-neighbour
    upscaling after depth-to-space). Channels ABPN lacks start as copies of its first ones
    with no weight out of them: a copy is alive (a zero channel would stay zero, since ReLU
    passes no gradient at 0) and the output is unchanged. Raises MaiSrError when `abpn_net`
    does not fit.
    """
    source = [layer for layer in abpn_net.layers
              if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith("conv")]
    target = ([scsrn_net.get_layer("conv1")]
              + [layer for layer in scsrn_net.layers if layer.name.startswith("block")]
              + [scsrn_net.get_layer("conv_out")])
    widths = [int(layer.kernel.shape[-1]) for layer in target]
    if (len(source) != len(target)
            or any(int(s.kernel.shape[-1]) > w for s, w in zip(source, widths))
            or int(source[-1].kernel.shape[-1]) != widths[-1]):
        shapes = " -> ".join(str(int(layer.kernel.shape[-1])) for layer in source)
        raise MaiSrError(f"{abpn_net.name} ({shapes}) does not fit in {scsrn_net.name}'s "
                         f"convs ({' -> '.join(map(str, widths))})")
    scale = int(round(np.sqrt(widths[-1] / 3)))
    for src, dst in zip(source, target):
        kernel, bias = (np.asarray(w, np.float32) for w in src.get_weights())
        reads, width = kernel.shape[2], kernel.shape[3]
        new_kernel = np.zeros(dst.kernel.shape, np.float32)
        if dst is target[-1]:  # reads [image, features]: the anchor, then ABPN's linear conv
            new_kernel[:, :, 3:3 + reads] = kernel
            new_kernel[1, 1, :3] += nearest_conv_kernel(scale)[0, 0]
            new_bias = bias
        else:  # output j >= width copies output j - width; nothing reads the copies yet
            copies = np.arange(dst.kernel.shape[-1]) % width
            new_kernel[:, :, :reads] = kernel[..., copies]
            new_bias = bias[copies]
        dst.set_weights([new_kernel, new_bias])


def anchor_tap_hold(model, keep_start: bool = False):
    """A function that puts the output conv of SCSRN `model` back on the anchor, in place:
    its taps on the LR image become the nearest-neighbour kernel (each output channel's
    colour at the centre tap, weight 1, every other image tap 0), its taps on the features
    are clipped to [-1, 1]. Weights are in deploy units: the training graph's folded input
    and output scales are divided out. Works on the training graph, the deploy graph and its
    QAT form; the training loop calls it before the first step and after each one
    (``--hold-anchor-taps``). Raises MaiSrError when `model` has no such conv.

    `keep_start` (the QAT stage): each output channel's feature taps are clipped to the
    larger of 1 and their largest magnitude in `model` now, so the first hold does not change
    the function QAT starts from. PTQ and QAT rescale the features to the concatenation's
    fixed range first (``equalize_fixed_ranges``), which divides their taps by the gain; a
    gain below 1 (features peaking above 255) lifts held taps over 1, and clipping them
    there would change the calibrated model before its first step.

    Why: TFLite stores the conv's weights on a symmetric int8 grid per output channel, step
    max |w| / 127. A learned image tap near 1 sets that step to about 1/127, and the
    learned deviations of the other image taps (about 0.01 in the 24,000-step ETDS-L
    distillation) are one step wide, each multiplying pixels up to 255: rounding those taps
    alone cost 0.068 / 0.041 / 0.031 dB on Set5 / Set14 / B100, where no kernel of ABPN
    cost more than 0.009 (``benchmarks/weight_grid.py``). Held at the anchor, the centre tap
    1 is the channel's largest weight and sits on the grid (127 steps), and every other image
    tap is 0: INT8 then adds the anchor exactly, as ABPN's fixed anchor op does, and the
    features carry what the deviations did.
    """
    from mai_sr._tf import tf

    try:
        layer = model.get_layer("conv_out")
    except ValueError:
        try:
            layer = model.get_layer("quant_conv_out").layer
        except ValueError:
            raise MaiSrError(f"{model.name}: no output conv 'conv_out' reading [image, "
                             "features] (only SCSRN's holds anchor taps)") from None
    kernel = next((v for v in model.trainable_variables
                   if v.name.split(":")[0].endswith("conv_out/kernel")), None)
    images = 3
    if kernel is None or int(kernel.shape[2]) <= images:
        raise MaiSrError(f"{model.name}: its output conv does not read [image, features]")
    kh, kw, reads, outputs = (int(n) for n in kernel.shape)
    scale = int(round(np.sqrt(outputs / images)))
    folded = np.ones(reads, np.float32) * float(getattr(layer, "output_scale", 1.0))
    folded *= np.asarray(getattr(layer, "input_scale", 1.0), np.float32)
    anchor = np.zeros(kernel.shape, np.float32)
    anchor[kh // 2, kw // 2, :images] = nearest_conv_kernel(scale, images)[0, 0]
    anchor /= folded[None, None, :, None]
    is_image = np.zeros(kernel.shape, bool)
    is_image[:, :, :images] = True
    limit = np.ones(outputs, np.float32)
    if keep_start:
        start = np.abs(kernel.numpy()[:, :, images:]) * folded[None, None, images:, None]
        limit = np.maximum(limit, start.max(axis=(0, 1, 2)))
    bound = (1.0 / folded)[None, None, :, None] * limit[None, None, None, :]
    bound = np.broadcast_to(bound, kernel.shape).astype(np.float32)
    anchor, is_image, bound = (tf.constant(a) for a in (anchor, is_image, bound))

    def hold():
        kernel.assign(tf.where(is_image, anchor, tf.clip_by_value(kernel, -bound, bound)))

    return hold
