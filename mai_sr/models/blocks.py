"""Layers shared by the four models, each a real serializable tf_keras layer (no Lambda).

Deploy graphs use only standard Keras layers (Conv2D, Add, Concatenate) plus the few custom
layers below, so the QAT code needs a QuantizeConfig for just these:

- :class:`DepthToSpace` - ``tf.nn.depth_to_space`` (TFLite DEPTH_TO_SPACE, DCR channel order).
- :class:`ClipByValue` - ``tf.clip_by_value`` to [0, 255] (TFLite MAXIMUM + MINIMUM); placed
  *before* depth-to-space in deploy graphs (seed 004, sec. 3.1, item 6).
- :class:`NearestConvAnchor` - a frozen 1x1 ``Conv2D`` 3 -> 3*s^2 without bias (TFLite CONV_2D)
  that, followed by depth-to-space, is exactly nearest-neighbour x s upsampling.
- :class:`ConcatAnchor` - ``concat([x] * s^2)``, ABPN's original anchor (TFLite CONCATENATION
  of s^2 copies of the input); only in the published-form ABPN.

Training graphs may also contain re-parameterizable blocks (:class:`RepConv`,
:class:`CollapsibleLinearBlock`, :class:`HXBlock`). Each is linear up to its final activation,
so :meth:`Collapsible.collapse` returns one exact 3x3 kernel and bias, and
:meth:`Collapsible.deploy_layer` the plain ``Conv2D`` that replaces it.

:class:`ClipWeights` is the weight-clipping kernel constraint (Z6's recipe, seed 004 sec. 4.1).
"""

from __future__ import annotations

import numpy as np

from mai_sr._tf import keras, tf

PACKAGE = "mai_sr"
serializable = keras.utils.register_keras_serializable(package=PACKAGE)


def nearest_conv_kernel(scale: int, channels: int = 3) -> np.ndarray:
    """1x1 kernel (1, 1, C, C*s^2) whose output channel k copies input channel k % C.

    TF's depth_to_space (DCR) reads output pixel (i, j) of a block, colour c, from channel
    (i*s + j)*C + c, so every block position gets a copy of the input pixel. PyTorch's
    PixelShuffle is CRD and its ports use k // s^2; that order is wrong here.
    """
    kernel = np.zeros((1, 1, channels, channels * scale * scale), np.float32)
    out = np.arange(channels * scale * scale)
    kernel[0, 0, out % channels, out] = 1.0
    return kernel


# ------------------------------------------------------------------ constraint


@serializable
class ClipWeights(keras.constraints.Constraint):
    """Clip every weight to [-max_abs, max_abs] after each optimizer step.

    TFLite quantizes weights symmetrically, so a few large weights on one side waste half of
    the int8 range; clipping them bounds the range (Z6 applied it to the skewed first conv).
    """

    def __init__(self, max_abs: float):
        if not max_abs > 0:
            raise ValueError(f"ClipWeights: max_abs must be > 0, got {max_abs!r}")
        self.max_abs = float(max_abs)

    def __call__(self, w):
        return tf.clip_by_value(w, -self.max_abs, self.max_abs)

    def get_config(self):
        return {"max_abs": self.max_abs}


# ------------------------------------------------------------------ head layers


class _ScaleLayer(keras.layers.Layer):
    """A weightless layer configured by the upscaling factor ``scale``."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@serializable
class DepthToSpace(_ScaleLayer):
    """``tf.nn.depth_to_space(x, scale)``: (H, W, C*s^2) -> (s*H, s*W, C), DCR order."""

    def call(self, x):
        return tf.nn.depth_to_space(x, self.scale)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        s = self.scale
        return tf.TensorShape([b, None if h is None else h * s, None if w is None else w * s,
                               c // (s * s)])


@serializable
class ClipByValue(keras.layers.Layer):
    """``tf.clip_by_value(x, min_value, max_value)``; the output range [0, 255] is exact."""

    def __init__(self, min_value: float = 0.0, max_value: float = 255.0, **kwargs):
        super().__init__(**kwargs)
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def call(self, x):
        return tf.clip_by_value(x, self.min_value, self.max_value)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        return {**super().get_config(), "min_value": self.min_value, "max_value": self.max_value}


@serializable
class ConcatAnchor(_ScaleLayer):
    """ABPN's original anchor: the input repeated s^2 times along channels."""

    def call(self, x):
        return tf.concat([x] * (self.scale * self.scale), axis=-1)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return tf.TensorShape([b, h, w, c * self.scale * self.scale])


@serializable
class NearestConvAnchor(keras.layers.Conv2D):
    """Frozen 1x1 conv C -> C*s^2, no bias, kernel :func:`nearest_conv_kernel` (NCNet).

    Followed by :class:`DepthToSpace` it is nearest-neighbour upsampling, and it replaces
    both ``concat([x]*9)`` and a resize op with one CONV_2D the NPU runs fast. It is a plain
    ``Conv2D`` subclass, so a standard conv QuantizeConfig applies (its 0/1 weights quantize
    exactly with symmetric int8).
    """

    def __init__(self, scale: int, channels: int = 3, **kwargs):
        kwargs.pop("trainable", None)  # always frozen: training must not move the anchor
        scale, channels = int(scale), int(channels)
        super().__init__(filters=channels * scale ** 2, kernel_size=1, use_bias=False,
                         kernel_initializer=keras.initializers.Constant(
                             nearest_conv_kernel(scale, channels)),
                         trainable=False, **kwargs)
        self.scale = scale
        self.channels = channels

    def get_config(self):
        base = keras.layers.Layer.get_config(self)
        base.pop("trainable", None)
        return {**base, "scale": self.scale, "channels": self.channels}


# ------------------------------------------------------------------ re-parameterizable blocks


def _conv(filters, kernel_size, name, kernel_constraint=None, **kwargs):
    return keras.layers.Conv2D(filters, kernel_size, padding="same", name=name,
                               kernel_constraint=kernel_constraint, **kwargs)


def _build(layer, input_shape):
    """Build a sub-layer under its own name scope, so its weights get unique names
    ("block1/conv3/kernel:0"), which the HDF5 format needs."""
    with tf.name_scope(layer.name):
        layer.build(input_shape)


def _center_3x3(kernel: np.ndarray) -> np.ndarray:
    """Zero-pad a (k, k, i, o) kernel, k in {1, 3}, to 3x3 (exact with 'same' padding)."""
    pad = (3 - kernel.shape[0]) // 2
    return np.pad(kernel, ((pad, pad), (pad, pad), (0, 0), (0, 0)))


class Collapsible(keras.layers.Layer):
    """A block that is linear up to its activation, so it equals one 3x3 Conv2D.

    Subclasses create their branch convs (with ``self.kernel_constraint``), apply
    ``self.activation`` last, and implement :meth:`collapse`.
    """

    def __init__(self, filters: int, activation=None, kernel_constraint=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.activation = keras.activations.get(activation)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)

    def collapse(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (kernel (3, 3, in, filters), bias (filters,)) of the equivalent conv."""
        raise NotImplementedError

    def deploy_layer(self) -> keras.layers.Conv2D:
        """The plain 3x3 Conv2D (same name, activation, constraint) that replaces this block."""
        return _conv(self.filters, 3, self.name, self.kernel_constraint,
                     activation=self.activation)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([*input_shape[:-1], self.filters])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "activation": keras.activations.serialize(self.activation),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint)}


@serializable
class RepConv(Collapsible):
    """RepVGG-style block: 3x3 conv + 1x1 conv + identity (when in == out), then activation.

    Collapse: the 1x1 kernel sits in the centre tap of the 3x3 one and the identity adds an
    eye() there; the biases add.
    """

    def __init__(self, filters: int, activation=None, kernel_constraint=None,
                 identity: bool = True, **kwargs):
        super().__init__(filters, activation, kernel_constraint, **kwargs)
        self.identity = bool(identity)
        self.conv3 = _conv(self.filters, 3, "conv3", self.kernel_constraint)
        self.conv1 = _conv(self.filters, 1, "conv1", self.kernel_constraint)

    def build(self, input_shape):
        _build(self.conv3, input_shape)
        _build(self.conv1, input_shape)
        self.use_identity = self.identity and int(input_shape[-1]) == self.filters
        super().build(input_shape)

    def call(self, x):
        y = self.conv3(x) + self.conv1(x)
        if self.use_identity:
            y = y + x
        return self.activation(y)

    def collapse(self):
        k3, b3 = (w.numpy() for w in (self.conv3.kernel, self.conv3.bias))
        k1, b1 = (w.numpy() for w in (self.conv1.kernel, self.conv1.bias))
        kernel = k3 + _center_3x3(k1)
        if self.use_identity:
            kernel[1, 1] += np.eye(self.filters, dtype=kernel.dtype)
        return kernel, b3 + b1

    def get_config(self):
        return {**super().get_config(), "identity": self.identity}


@serializable
class CollapsibleLinearBlock(Collapsible):
    """Collapsible linear block (seed 004, sec. 4.2): 3x3 conv to ``expand*filters``
    channels, 1x1 projection back to ``filters`` (no activation between), + identity when
    in == out, then activation.

    Collapse: kernel = k3 @ k1 (over the expanded axis), bias = b3 @ k1 + b1; exact because
    the 1x1 projection is pointwise, also at zero-padded borders.
    """

    def __init__(self, filters: int, activation=None, kernel_constraint=None, expand: int = 4,
                 identity: bool = True, **kwargs):
        super().__init__(filters, activation, kernel_constraint, **kwargs)
        self.expand = int(expand)
        self.identity = bool(identity)
        self.expand_conv = _conv(self.filters * self.expand, 3, "expand", self.kernel_constraint)
        self.project_conv = _conv(self.filters, 1, "project", self.kernel_constraint)

    def build(self, input_shape):
        _build(self.expand_conv, input_shape)
        _build(self.project_conv, [*input_shape[:-1], self.filters * self.expand])
        self.use_identity = self.identity and int(input_shape[-1]) == self.filters
        super().build(input_shape)

    def call(self, x):
        y = self.project_conv(self.expand_conv(x))
        if self.use_identity:
            y = y + x
        return self.activation(y)

    def collapse(self):
        k3, b3 = (w.numpy().astype(np.float64) for w in self.expand_conv.weights)
        k1, b1 = (w.numpy().astype(np.float64) for w in self.project_conv.weights)
        kernel = np.einsum("hwie,eo->hwio", k3, k1[0, 0])
        bias = b3 @ k1[0, 0] + b1
        if self.use_identity:
            kernel[1, 1] += np.eye(self.filters)
        return kernel.astype(np.float32), bias.astype(np.float32)

    def get_config(self):
        return {**super().get_config(), "expand": self.expand, "identity": self.identity}


@serializable
class HXBlock(Collapsible):
    """XCAT's heterogeneous group convolution with cross concatenation (training form).

    ``groups`` lists (channels, kernel_size) pairs that split the input channels unequally,
    in order; group g maps its slice to the same number of channels with its own kernel size
    (1 or 3). The outputs are concatenated, circularly shifted by ``shift`` channels
    (``roll``: channel c moves to (c + shift) % C, the "cross concatenation" that lets the
    next block's groups mix channels), then the activation is applied.

    Collapse: one dense 3x3 conv with a block-diagonal kernel (1x1 groups in the centre tap)
    and its output channels rolled by ``shift``. Slicing the channels at inference would need
    SPLIT/STRIDED_SLICE ops that NPUs handle poorly, and ROLL is not an NPU op; the dense conv
    is exact and one CONV_2D.
    """

    def __init__(self, groups, shift: int = 0, activation=None, kernel_constraint=None,
                 **kwargs):
        groups = tuple((int(c), int(k)) for c, k in groups)
        if any(k not in (1, 3) for _, k in groups):
            raise ValueError(f"HXBlock: kernel sizes must be 1 or 3, got {groups}")
        super().__init__(sum(c for c, _ in groups), activation, kernel_constraint, **kwargs)
        self.groups = groups
        self.shift = int(shift) % self.filters
        self.group_convs = [_conv(c, k, f"group{i}", self.kernel_constraint)
                            for i, (c, k) in enumerate(self.groups)]

    def build(self, input_shape):
        if int(input_shape[-1]) != self.filters:
            raise ValueError(f"HXBlock: groups {self.groups} need {self.filters} input "
                             f"channels, got {input_shape[-1]}")
        for conv, (c, _) in zip(self.group_convs, self.groups):
            _build(conv, [*input_shape[:-1], c])
        super().build(input_shape)

    def _slices(self):
        start = 0
        for c, _ in self.groups:
            yield start, start + c
            start += c

    def call(self, x):
        y = tf.concat([conv(x[..., a:b]) for conv, (a, b) in zip(self.group_convs,
                                                                 self._slices())], axis=-1)
        return self.activation(tf.roll(y, self.shift, axis=-1))

    def collapse(self):
        kernel = np.zeros((3, 3, self.filters, self.filters), np.float32)
        bias = np.zeros(self.filters, np.float32)
        for conv, (a, b) in zip(self.group_convs, self._slices()):
            kernel[:, :, a:b, a:b] = _center_3x3(conv.kernel.numpy())
            bias[a:b] = conv.bias.numpy()
        return np.roll(kernel, self.shift, axis=-1), np.roll(bias, self.shift)

    def get_config(self):
        config = super().get_config()
        config.pop("filters")
        return {**config, "groups": [list(g) for g in self.groups], "shift": self.shift}


BLOCKS = {"repconv": RepConv, "clb": CollapsibleLinearBlock}


def conv_block(kind: str, filters: int, name: str, activation=None, kernel_constraint=None):
    """A 3x3 conv layer of the given kind: "conv" (plain Conv2D) or a collapsible block."""
    if kind == "conv":
        return _conv(filters, 3, name, kernel_constraint, activation=activation)
    if kind not in BLOCKS:
        raise ValueError(f"unknown block {kind!r}; choose conv or {', '.join(BLOCKS)}")
    return BLOCKS[kind](filters, activation=activation, kernel_constraint=kernel_constraint,
                        name=name)


def sr_input(input_size=None):
    """RGB LR input in [0, 255]; any H, W unless ``input_size`` (H, W) fixes them."""
    h, w = input_size if input_size else (None, None)
    return keras.Input(shape=(h, w, 3), name="lr")


def make_anchor(kind: str, x, scale: int):
    """The anchor tensor added before depth-to-space: "nearest_conv" or "concat"."""
    if kind == "nearest_conv":
        return NearestConvAnchor(scale, name="anchor")(x)
    if kind == "concat":
        return ConcatAnchor(scale, name="anchor")(x)
    raise ValueError(f"unknown anchor {kind!r}; choose nearest_conv or concat")


def sr_head(x, scale: int, clip: str):
    """Clip to [0, 255] and depth-to-space, in the order ``clip`` says.

    "before_d2s" clips the small LR-resolution tensor (the NPU-friendly order, seed 004
    sec. 3.1 item 6); "after_d2s" is the published ABPN order. depth_to_space only permutes
    values, so both give identical outputs (tested).
    """
    if clip == "before_d2s":
        return DepthToSpace(scale, name="depth_to_space")(ClipByValue(name="clip")(x))
    if clip == "after_d2s":
        return ClipByValue(name="clip")(DepthToSpace(scale, name="depth_to_space")(x))
    raise ValueError(f"unknown clip {clip!r}; choose before_d2s or after_d2s")


def layer_inputs(layer) -> list:
    """The input tensors of a functional-graph layer, always as a list."""
    return layer.input if isinstance(layer.input, list) else [layer.input]


def weight_constraint(weight_clip):
    """``ClipWeights(weight_clip)`` or None when clipping is off."""
    return ClipWeights(weight_clip) if weight_clip else None


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (
    ClipWeights, DepthToSpace, ClipByValue, ConcatAnchor, NearestConvAnchor, RepConv,
    CollapsibleLinearBlock, HXBlock)}
