"""INT8 conv weights rounded to fit the data, not each weight to its nearest level.

TFLite quantizes a conv kernel per output channel on the grid ``k * max|w_c| / 127``,
k in [-127, 127]. Rounding each weight to its nearest level ignores that a conv's output is
a sum: the rounding errors of the taps that see correlated inputs (neighbouring pixels, the
channels of an image) add up. ETDS's image path shows it (Chao et al., "Equivalent
Transformation and Dual Stream Network Construction for Mobile Image Super-Resolution",
CVPR 2023): each hidden layer copies the image through a 3x3 kernel of taps near 0 around a
centre near 1, whose rounding errors (up to half a step of 1/127) act on pixels of up to 255;
rounding the weights of ETDS-T x3 to nearest alone lost 0.43 dB on the held-out split of
T91 + BSD200, its activations' rounding 0.05 dB.

:func:`round_weights` instead rounds the taps one input position at a time and spreads each
rounding error over the taps not yet rounded, weighted by how the layer's inputs correlate
(OPTQ: Frantar, Ashkboos, Hoefler and Alistarh, "GPTQ: Accurate Post-Training Quantization
for Generative Pre-trained Transformers", ICLR 2023; the optimal-brain-quantizer update of
Frantar and Alistarh, "Optimal Brain Compression", NeurIPS 2022). It minimises the output
error ``E[((W - Q) x)^2]`` over the calibration images' input patches x, on the same grid:
each channel's largest weight is rounded first and never moved (it sits on level +-127, so
the converter, which sets the grid from ``max|w|``, finds the same grid), every other
weight stays on that grid within [-127, 127]. The result is a kernel the per-channel
quantizer of :mod:`mai_sr.models.qat.configs` leaves unchanged: the INT8 file holds it as is.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from mai_sr._tf import keras, tf

# Input patches per batch that the correlation is measured on, drawn at random: 100
# calibration crops then give ~200,000 patches, plenty for a 432 x 432 correlation, in a
# fraction of the time all 920,000 would take.
SAMPLED_PATCHES = 2048
# Damping added to the diagonal of the input correlation, as a share of its mean (Frantar
# et al., ICLR 2023, use 1%): keeps the inverse stable for inputs that never vary.
DAMPING = 0.01


def _patches(x: np.ndarray, layer) -> np.ndarray:
    """The layer's input patches, one row per output position, in the kernel's (h, w, in)
    order (the rows of ``kernel.reshape(-1, out)``)."""
    kh, kw = layer.kernel_size
    found = tf.image.extract_patches(x, sizes=[1, kh, kw, 1], strides=[1, 1, 1, 1],
                                     rates=[1, 1, 1, 1], padding=layer.padding.upper())
    return np.asarray(found, np.float32).reshape(-1, kh * kw * x.shape[-1])


def input_statistics(model, layer_name: str, batches: Iterable) -> tuple[np.ndarray, ...]:
    """(E[x x^T] over input patches x of conv `layer_name` on `batches` (up to
    :data:`SAMPLED_PATCHES` of each batch, drawn with a fixed seed), the mean of each of its
    input channels over all pixels)."""
    layer = model.get_layer(layer_name)
    probe = keras.Model(model.inputs, layer.input)
    rng = np.random.default_rng(0)
    total, sums, count, pixels = None, None, 0, 0
    for batch in batches:
        x = np.asarray(probe(batch, training=False), np.float32)
        rows = _patches(x, layer)
        if rows.shape[0] > SAMPLED_PATCHES:
            rows = rows[rng.choice(rows.shape[0], SAMPLED_PATCHES, replace=False)]
        now = (rows.T @ rows).astype(np.float64)
        total = now if total is None else total + now
        channel_sums = x.reshape(-1, x.shape[-1]).astype(np.float64).sum(0)
        sums = channel_sums if sums is None else sums + channel_sums
        count += rows.shape[0]
        pixels += int(np.prod(x.shape[:-1]))
    return total / count, sums / pixels


def round_weights(kernel: np.ndarray, correlation: np.ndarray,
                  damping: float = DAMPING) -> np.ndarray:
    """`kernel` (h, w, in, out) on its per-output-channel INT8 grid, rounded to minimise
    ``E[((W - Q) x)^2]`` for inputs x of correlation E[x x^T] = `correlation` (see the module
    docstring). Every output channel keeps max|w| at level +-127, so its grid is unchanged."""
    shape = kernel.shape
    weights = kernel.reshape(-1, shape[-1]).T.astype(np.float64).copy()  # (out, taps)
    bound = np.abs(weights).max(1)
    step = np.where(bound > 0, bound, 1.0)[:, None] / 127
    taps = weights.shape[1]
    hessian = correlation.astype(np.float64).copy()
    dead = np.diag(hessian) <= 0
    hessian[dead, dead] = 1.0
    hessian += damping * np.mean(np.diag(hessian)) * np.eye(taps)
    # Upper Cholesky factor of the inverse: row j holds the update that spreads tap j's
    # rounding error over the taps after it (Frantar et al., ICLR 2023, Algorithm 1).
    inverse = np.linalg.cholesky(np.linalg.inv(hessian)).T
    pinned = np.zeros_like(weights, bool)
    pinned[np.arange(weights.shape[0]), np.abs(weights).argmax(1)] = True
    for j in range(taps):
        column = np.clip(np.round(weights[:, j] / step[:, 0]), -127, 127) * step[:, 0]
        error = (weights[:, j] - column) / inverse[j, j]
        weights[:, j] = column
        update = np.outer(error, inverse[j, j + 1:])
        update[pinned[:, j + 1:]] = 0.0  # each channel's largest weight keeps its level
        weights[:, j + 1:] -= update
    return weights.T.reshape(shape).astype(kernel.dtype)


def round_conv_weights(model, batches: Iterable, layers=None) -> list[str]:
    """Round every trainable Conv2D kernel of `model` (or those named in `layers`) in place
    with :func:`round_weights`, on its input patches over `batches` (float LR batches in
    [0, 255]), each layer's inputs coming from the float model with the earlier layers
    already rounded. Biases absorb the mean output error the rounding leaves (b += (W - Q)
    E[x]). A stride or dilation other than 1, or a conv whose consumers are all PReLUs,
    keeps nearest rounding. Returns the names of the layers rounded."""
    from mai_sr.models.qat.equalize import _consumers

    batches = list(batches)
    consumers = _consumers(model)
    done = []
    for layer in model.layers:
        if type(layer) is not keras.layers.Conv2D or not layer.trainable or \
                (layers is not None and layer.name not in layers):
            continue
        if consumers[layer.name] and all(isinstance(model.get_layer(c), keras.layers.PReLU)
                                         for c in consumers[layer.name]):
            # Nearest rounding (and bias correction) for these. Measured on the held-out
            # split (x3, fake-quant PTQ), rounding them to the data moved FSRCNN from -0.557
            # to -0.586 dB, ECBSR M4C32 from -0.138 to -0.145, ECBSR M4C16 from -0.062 to
            # -0.059, where the ReLU and tanh nets gained 0.05-0.24 dB: the PReLU's own
            # tensor and int8 slopes, which the fit does not see, follow these convs.
            continue
        if tuple(layer.strides) != (1, 1) or tuple(layer.dilation_rate) != (1, 1):
            continue
        kernel, *rest = layer.get_weights()
        correlation, mean = input_statistics(model, layer.name, batches)
        rounded = round_weights(kernel, correlation)
        if rest:
            shift = np.einsum("hwio,i->o", (kernel - rounded).astype(np.float64), mean)
            rest[0] = (rest[0] + shift).astype(rest[0].dtype)
        layer.set_weights([rounded, *rest])
        done.append(layer.name)
    return done
