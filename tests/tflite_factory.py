"""Small, ready-made TFLite super-resolution files for tests that need a model on disk.

The graphs are built from raw TF ops (no Keras, no project code), so tests of the lint,
eval, upscale, device and report code do not depend on the model or export code they check.
Every builder returns the path it wrote. Shapes are LR (height, width); None means dynamic.

The network is deliberately SR-like: conv3x3 -> ReLU -> conv3x3 to 27 channels, plus the
nearest-convolution anchor, so its output is close to nearest-neighbour x3 upsampling and
PSNR against real HR images is meaningful.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCALE = 3


def _tf():
    from mai_sr._tf import tf

    return tf


def _weights(channels: int, kernel: int, seed: int, scale: int = SCALE):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.05, (kernel, kernel, 3, channels)).astype(np.float32)
    b1 = rng.normal(0, 1.0, (channels,)).astype(np.float32)
    w2 = rng.normal(0, 0.02, (kernel, kernel, channels, 3 * scale * scale)).astype(np.float32)
    b2 = rng.normal(0, 0.5, (3 * scale * scale,)).astype(np.float32)
    anchor = np.zeros((1, 1, 3, 3 * scale * scale), np.float32)
    for k in range(3 * scale * scale):
        anchor[0, 0, k % 3, k] = 1.0  # TF depth_to_space (DCR) order
    return w1, b1, w2, b2, anchor


def _concrete_function(shape, channels, kernel, clip, resize, seed, scale=SCALE):
    tf = _tf()
    w1, b1, w2, b2, anchor = (tf.constant(a) for a in _weights(channels, kernel, seed, scale))
    h, w = shape if shape is not None else (None, None)

    @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32)])
    def sr(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME") + b1)
        y = tf.nn.conv2d(y, w2, 1, "SAME") + b2
        y = y + tf.nn.conv2d(x, anchor, 1, "VALID")
        if clip == "before":
            y = tf.clip_by_value(y, 0.0, 255.0)
        y = tf.nn.depth_to_space(y, scale)
        if clip == "after":
            y = tf.clip_by_value(y, 0.0, 255.0)
        if resize:
            y = y + tf.image.resize(x, tf.shape(y)[1:3], method="nearest") * 0.0
        return y

    return sr.get_concrete_function()


def _calibration(shape, n=8, seed=0):
    rng = np.random.default_rng(seed)
    h, w = shape if shape is not None else (24, 32)
    for _ in range(n):
        # smooth random images: closer to photos than white noise
        base = rng.uniform(0, 255, (1, h // 4 + 1, w // 4 + 1, 3))
        img = np.repeat(np.repeat(base, 4, 1), 4, 2)[:, :h, :w, :]
        yield [img.astype(np.float32)]


def build_sr_tflite(path, *, shape=(24, 32), precision="int8", clip="before", kernel=3,
                    channels=8, resize=False, io_dtype="uint8", seed=0, scale=SCALE) -> Path:
    """Write a small SR TFLite file.

    precision: "int8" (full-integer, uint8/int8 IO per `io_dtype`) or "float".
    clip: "before" (recipe: before depth-to-space), "after", or "none".
    resize: add a RESIZE_NEAREST_NEIGHBOR op (NNAPI CPU fallback) for lint tests.
    """
    tf = _tf()
    fn = _concrete_function(shape, channels, kernel, clip, resize, seed, scale)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], fn)
    if precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _calibration(shape, seed=seed)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = getattr(tf, io_dtype)
        converter.inference_output_type = getattr(tf, io_dtype)
    elif precision != "float":
        raise ValueError(f"precision must be int8 or float, got {precision!r}")
    data = converter.convert()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def int8_sr_model(path, *, shape=(24, 32), **kw) -> Path:
    """Full-integer model with uint8 IO and the clip before depth-to-space (lint-clean)."""
    return build_sr_tflite(path, shape=shape, precision="int8", clip="before", **kw)


def float_sr_model(path, *, shape=(24, 32), **kw) -> Path:
    """Float32 model: lint must flag every op as float."""
    return build_sr_tflite(path, shape=shape, precision="float", **kw)


def clip_after_d2s_model(path, *, shape=(24, 32), **kw) -> Path:
    """INT8 model with the clip after depth-to-space: lint must warn."""
    return build_sr_tflite(path, shape=shape, precision="int8", clip="after", **kw)


def reference_sr(lr_uint8: np.ndarray, *, channels=8, kernel=3, seed=0) -> np.ndarray:
    """The float network in NumPy-via-TF, for checking LiteRT outputs (clip before D2S)."""
    tf = _tf()
    fn = _concrete_function(tuple(lr_uint8.shape[:2]), channels, kernel, "before", False, seed)
    out = fn(tf.constant(lr_uint8[None].astype(np.float32)))
    return out.numpy()[0]
