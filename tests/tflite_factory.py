"""Small, ready-made TFLite super-resolution files for tests that need a model on disk.

The graphs are built from raw TF ops (no Keras, no project code), so tests of the lint,
eval, upscale, device and report code do not depend on the model or export code they check.
Every builder returns the path it wrote. Shapes are LR (height, width); None means dynamic.

TF-free tests read the prebuilt files of :data:`PREBUILT` from ``tests/data/`` with
:func:`prebuilt` (importing this module does not import TensorFlow); ``python
tests/data/make_test_models.py`` writes them again when a builder changes, and
``tests/test_prebuilt_models.py`` (tf) checks that the files are what the builders write.

The network is deliberately SR-like: conv3x3 -> ReLU -> conv3x3 to 27 channels, plus the
nearest-convolution anchor, so its output is close to nearest-neighbour x3 upsampling and
PSNR against real HR images is meaningful.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

SCALE = 3
DATA_DIR = Path(__file__).resolve().parent / "data"


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
    return _write(path, converter.convert())


def int8_sr_model(path, *, shape=(24, 32), **kw) -> Path:
    """Full-integer model with uint8 IO and the clip before depth-to-space (lint-clean)."""
    return build_sr_tflite(path, shape=shape, precision="int8", clip="before", **kw)


def float_sr_model(path, *, shape=(24, 32), **kw) -> Path:
    """Float32 model: lint must flag every op as float."""
    return build_sr_tflite(path, shape=shape, precision="float", **kw)


def clip_after_d2s_model(path, *, shape=(24, 32), **kw) -> Path:
    """INT8 model with the clip after depth-to-space: lint must warn."""
    return build_sr_tflite(path, shape=shape, precision="int8", clip="after", **kw)


def squared_difference_model(path, *, shape=(24, 32)) -> Path:
    """INT8 SR-shaped graph (uint8 IO) with SQUARED_DIFFERENCE, an op the VS680 NPU lacks:
    conv3x3 to 27 channels, squared difference with the input tiled 9 times, depth-to-space."""
    tf = _tf()
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(0, 0.05, (3, 3, 3, 3 * SCALE * SCALE)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, *shape, 3], tf.float32)])
    def sr(x):
        features = tf.nn.conv2d(x, kernel, 1, "SAME")
        y = tf.math.squared_difference(features, tf.tile(x, [1, 1, 1, SCALE * SCALE]))
        return tf.nn.depth_to_space(y, SCALE)

    fn = sr.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], sr)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: _calibration(shape)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    return _write(path, converter.convert())


def classifier_model(path) -> Path:
    """A float 1x8 -> 1x1 graph (a sum): a valid TFLite file that is not an image model."""
    tf = _tf()

    @tf.function(input_signature=[tf.TensorSpec([1, 8], tf.float32)])
    def classifier(x):
        return tf.reduce_sum(x, axis=1, keepdims=True)

    fn = classifier.get_concrete_function()
    return _write(path, tf.lite.TFLiteConverter.from_concrete_functions([fn], classifier).convert())


def _write(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# The files in tests/data: name -> (builder, its keyword arguments). Shapes are LR.
PREBUILT = {
    "int8": (build_sr_tflite, {}),                                   # 24x32, uint8 IO
    "int8_io": (build_sr_tflite, {"io_dtype": "int8"}),
    "float": (build_sr_tflite, {"precision": "float"}),
    "clip_after": (build_sr_tflite, {"clip": "after"}),
    "k5_resize": (build_sr_tflite, {"kernel": 5, "resize": True}),
    "six_channels": (build_sr_tflite, {"channels": 6}),
    "odd_23x37": (build_sr_tflite, {"shape": (23, 37)}),
    "dynamic": (build_sr_tflite, {"shape": None}),
    "dynamic_int8_io": (build_sr_tflite, {"shape": None, "io_dtype": "int8"}),
    "dynamic_float": (build_sr_tflite, {"shape": None, "precision": "float"}),
    "dynamic_resize": (build_sr_tflite, {"shape": None, "resize": True}),
    "dynamic_wide": (build_sr_tflite, {"shape": None, "channels": 16, "seed": 1}),
    "dynamic_x2": (build_sr_tflite, {"shape": None, "scale": 2}),
    "dynamic_x4": (build_sr_tflite, {"shape": None, "scale": 4}),
    "squared_difference": (squared_difference_model, {}),
    "classifier": (classifier_model, {}),
}


def build_prebuilt(name: str, path) -> Path:
    """Write prebuilt model `name` to `path` with TensorFlow (what make_test_models.py does)."""
    builder, kwargs = PREBUILT[name]
    return builder(path, **kwargs)


def prebuilt(name: str, dest=None) -> Path:
    """The prebuilt file of model `name` in tests/data (no TensorFlow); with `dest`, a copy
    there (for tests that put files beside it or need its name)."""
    if name not in PREBUILT:
        raise KeyError(f"no prebuilt test model {name!r}; choose from {', '.join(PREBUILT)}")
    path = DATA_DIR / f"{name}.tflite"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python tests/data/make_test_models.py`")
    if dest is None:
        return path
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(path, dest))


def _conv2d_same(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """TF's conv2d, stride 1, SAME padding (odd kernels: equal padding), HWC in float64."""
    k = kernel.shape[0]
    pad = k // 2
    padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(0, 1))
    return np.einsum("hwcij,ijcd->hwd", windows, kernel)


def depth_to_space(x: np.ndarray, scale: int) -> np.ndarray:
    """TF's depth_to_space (DCR order) of one HWC image."""
    h, w, c = x.shape
    out = c // (scale * scale)
    return x.reshape(h, w, scale, scale, out).transpose(0, 2, 1, 3, 4).reshape(
        h * scale, w * scale, out)


def reference_sr(lr_uint8: np.ndarray, *, channels=8, kernel=3, seed=0) -> np.ndarray:
    """The float network (clip before D2S) in NumPy, for checking LiteRT outputs without
    TensorFlow; tests/test_prebuilt_models.py checks it against the TF graph."""
    w1, b1, w2, b2, anchor = (a.astype(np.float64) for a in _weights(channels, kernel, seed))
    x = lr_uint8.astype(np.float64)
    y = np.maximum(_conv2d_same(x, w1) + b1, 0.0)
    y = _conv2d_same(y, w2) + b2 + np.einsum("hwc,cd->hwd", x, anchor[0, 0])
    return depth_to_space(np.clip(y, 0.0, 255.0), SCALE)


def reference_sr_tf(lr_uint8: np.ndarray, *, channels=8, kernel=3, seed=0) -> np.ndarray:
    """The float network run by TensorFlow (clip before D2S)."""
    tf = _tf()
    fn = _concrete_function(tuple(lr_uint8.shape[:2]), channels, kernel, "before", False, seed)
    out = fn(tf.constant(lr_uint8[None].astype(np.float32)))
    return out.numpy()[0]
