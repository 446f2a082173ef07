"""Layers shared by the four models, each a real serializable tf_keras layer (no Lambda).

Deploy graphs use only standard Keras layers (Conv2D, Add, Concatenate) plus the few custom
layers below, so the QAT code needs a QuantizeConfig for just these:

- :class:`DepthToSpace` - ``tf.nn.depth_to_space`` (TFLite DEPTH_TO_SPACE, DCR channel order).
- :class:`ClipByValue` - ``tf.clip_by_value`` to [0, 255] (TFLite MAXIMUM + MINIMUM); placed
  *before* depth-to-space in deploy graphs (MAI 2022 challenge report, section 3.1, item 6).
- :class:`NearestConvAnchor` - a frozen 1x1 ``Conv2D`` 3 -> 3*s^2 without bias (TFLite CONV_2D)
  that, followed by depth-to-space, is exactly nearest-neighbour x s upsampling.
- :class:`ConcatAnchor` - ``concat([x] * s^2)``, ABPN's original anchor (TFLite CONCATENATION
  of s^2 copies of the input); only in the published-form ABPN.

Training graphs may also contain re-parameterizable blocks (:class:`RepConv`,
:class:`CollapsibleLinearBlock`, :class:`HXBlock`). Each is linear up to its final activation,
so :meth:`Collapsible.collapse` returns one exact 3x3 kernel and bias, and
:meth:`Collapsible.deploy_layer` the plain ``Conv2D`` that replaces it.

Training graphs work in the [0, 1] domain: their first conv multiplies its input by 1/255 and
their last conv multiplies its output by 255 (:class:`ScaledConv2D`, or the ``input_scale`` /
``output_scale`` of a block), fixed factors that :meth:`ScaledConv2D.collapse` folds into the
kernel and bias of the deploy graph's plain ``Conv2D``, which still takes raw [0, 255] pixels.

:class:`ClipWeights` is the ``max_abs_weight`` kernel constraint of ``create_model`` (a hard
bound on every conv kernel); the training loop's weight clipping (Z6's per-channel mean +- k
std on first-layer kernels) is :func:`mai_sr.models.qat.apply_weight_clip`, a different mechanism.
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


# ------------------------------------------------------------------ [0, 1] training domain

PIXEL_MAX = 255.0
# Gain of the last conv's initial weights relative to He-normal: the model starts within a
# few grey levels of its anchor (nearest-neighbour upscaling) instead of adding random noise.
OUTPUT_INIT_GAIN = 0.01


def _scale_config(scale):
    """A scale as stored in a layer config: one float, or a list of per-channel floats."""
    return float(scale) if np.ndim(scale) == 0 else [float(v) for v in scale]


def _scale_vector(scale, channels: int) -> np.ndarray:
    """``scale`` (one factor, or one per channel) as a float32 vector of ``channels`` > 0."""
    vector = np.asarray(scale, np.float32).reshape(-1)
    if vector.size == 1:
        vector = np.full(channels, vector[0], np.float32)
    if vector.size != channels or not (vector > 0).all():
        raise ValueError(f"input_scale {scale!r}: need one positive factor or {channels}")
    return vector


def _channel_slice(scale, start: int, stop: int):
    """The part of a per-channel ``scale`` for channels [start, stop) (a float stays)."""
    return scale if np.ndim(scale) == 0 else scale[start:stop]


class _FoldedConstraint(keras.constraints.Constraint):
    """Apply ``constraint`` to the folded kernel ``w * factor`` (what the deploy conv holds)
    and map the change back, so e.g. ``ClipWeights(m)`` bounds the deploy weights by m in
    both graphs. Weights the constraint leaves alone stay bit-identical. Not serialized: the
    layer's config keeps the plain constraint."""

    def __init__(self, constraint, factor: np.ndarray):
        self.constraint, self.factor = constraint, factor

    def __call__(self, w):
        folded = w * self.factor
        constrained = self.constraint(folded)
        # unfolding only what changed keeps the rest exact (w * f / f may round)
        return tf.where(tf.equal(constrained, folded), w, constrained / self.factor)


@serializable
class ScaledConv2D(keras.layers.Conv2D):
    """A Conv2D with fixed (untrained) factors on its input and its pre-activation output:
    ``activation(output_scale * conv(input_scale * x))``.

    Training graphs use it to work in the [0, 1] domain while taking and returning raw
    [0, 255] pixels: the first conv has ``input_scale=1/255``, the last ``output_scale=255``
    (SCSRN's last conv, reading [image, features], has one input factor per channel).
    Why: Adam moves every weight and bias by about the learning rate per step, whatever the
    scale of its gradient. On raw pixels the hidden activations are a few to tens, so a bias
    step (~1e-3) cannot re-centre a ReLU layer that the first, coherent steps pushed
    negative: ABPN with seed 0 lost a whole layer within ~50 steps and stayed at
    nearest-neighbour upscaling. On [0, 1] values the same steps are ~255x larger relative
    to the activations and the layer recovers. ``input_scale`` is one factor or one per
    input channel, all > 0.

    :meth:`collapse` folds the factors into a plain Conv2D exactly (kernel x input_scale x
    output_scale, bias x output_scale); :meth:`call` convolves with that same folded kernel,
    so training graph and deploy graph compute the same numbers. ``kernel_constraint`` is in
    deploy units: it constrains the folded kernel (see :class:`_FoldedConstraint`).
    """

    def __init__(self, *args, input_scale=1.0, output_scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_scale = _scale_config(input_scale)
        self.output_scale = float(output_scale)
        if not self.output_scale > 0:
            raise ValueError(f"output_scale must be > 0, got {output_scale!r}")
        self.deploy_constraint = self.kernel_constraint

    def build(self, input_shape):
        channels = int(input_shape[-1])
        # (in, 1): broadcasts over a (kh, kw, in, out) kernel
        self.kernel_factor = (_scale_vector(self.input_scale, channels)
                              * np.float32(self.output_scale))[:, None]
        if self.deploy_constraint is not None and not (self.kernel_factor == 1).all():
            self.kernel_constraint = _FoldedConstraint(self.deploy_constraint,
                                                       self.kernel_factor)
        super().build(input_shape)

    def fold(self, kernel, bias):
        """(kernel, bias) of the equivalent plain conv; NumPy arrays or TF tensors."""
        return kernel * self.kernel_factor, None if bias is None else bias * self.output_scale

    def call(self, x):
        kernel, bias = self.fold(self.kernel, self.bias)
        y = self.convolution_op(x, kernel)
        if bias is not None:
            y = tf.nn.bias_add(y, bias)
        return self.activation(y)

    def collapse(self) -> tuple[np.ndarray, ...]:
        """The deploy conv's weights: (kernel, bias), or (kernel,) without a bias."""
        kernel, bias = self.fold(self.kernel.numpy(), None if self.bias is None
                                 else self.bias.numpy())
        return (kernel,) if bias is None else (kernel, bias)

    def start_from(self, kernel: np.ndarray, bias: np.ndarray) -> None:
        """Set the layer to compute the plain conv (`kernel`, `bias`, deploy units): the
        inverse of :meth:`collapse` (``train --init`` from deploy weights)."""
        self.set_weights([np.asarray(kernel, np.float32) / self.kernel_factor,
                          np.asarray(bias, np.float32) / np.float32(self.output_scale)])

    def deploy_layer(self) -> keras.layers.Conv2D:
        """The plain Conv2D (same name, shape, activation, constraint) that replaces it."""
        return keras.layers.Conv2D.from_config(self._conv_config())

    def _conv_config(self):
        return {**super().get_config(),
                "kernel_constraint": keras.constraints.serialize(self.deploy_constraint)}

    def get_config(self):
        return {**self._conv_config(), "input_scale": self.input_scale,
                "output_scale": self.output_scale}


def output_init():
    """Initial kernels of a last conv: He-normal x :data:`OUTPUT_INIT_GAIN`."""
    return keras.initializers.VarianceScaling(2.0 * OUTPUT_INIT_GAIN ** 2, "fan_in",
                                              "truncated_normal")


@serializable
class NearestTapInitializer(keras.initializers.VarianceScaling):
    """Initial kernel (3, 3, C_in, channels * upscale^2) of a last conv reading the image in its
    first ``channels`` inputs (SCSRN's [image, features] skip): the nearest-conv kernel
    (:func:`nearest_conv_kernel`) on their centre tap, plus :func:`output_init`-sized noise.
    With depth-to-space after it, the network starts as nearest-neighbour upscaling, the
    anchor that ABPN, NCNet and XCAT add explicitly. Assumes the conv's folded factor on the
    image channels is 1 (input 1/255, output 255)."""

    def __init__(self, upscale: int = 3, channels: int = 3, scale: float = None, **kwargs):
        kwargs.setdefault("mode", "fan_in")
        kwargs.setdefault("distribution", "truncated_normal")
        super().__init__(2.0 * OUTPUT_INIT_GAIN ** 2 if scale is None else scale, **kwargs)
        self.upscale, self.channels = int(upscale), int(channels)

    def __call__(self, shape, dtype=None, **kwargs):
        anchor = np.zeros(shape, np.float32)
        anchor[shape[0] // 2, shape[1] // 2, :self.channels] = \
            nearest_conv_kernel(self.upscale, self.channels)[0, 0]
        return super().__call__(shape, dtype, **kwargs) + anchor

    def get_config(self):
        return {**super().get_config(), "upscale": self.upscale, "channels": self.channels}


# ------------------------------------------------------------------ re-parameterizable blocks


def _conv(filters, kernel_size, name, kernel_constraint=None, input_scale=1.0,
          output_scale=1.0, **kwargs):
    """A 'same'-padded conv: a plain Conv2D, or a ScaledConv2D when a scale is not 1."""
    if np.ndim(input_scale) == 0 and input_scale == 1 and output_scale == 1:
        return keras.layers.Conv2D(filters, kernel_size, padding="same", name=name,
                                   kernel_constraint=kernel_constraint, **kwargs)
    return ScaledConv2D(filters, kernel_size, padding="same", name=name,
                        kernel_constraint=kernel_constraint, input_scale=input_scale,
                        output_scale=output_scale, **kwargs)


def sized_conv(filters: int, kernel_size: int, name: str, kernel_constraint=None, **kwargs):
    """A 'same'-padded ``kernel_size`` conv: a Conv2D, or a ScaledConv2D when an
    ``input_scale`` / ``output_scale`` keyword is not 1 (the other families' 1x1, 5x5 and
    9x9 kernels; :func:`conv_block` builds the 3x3 ones)."""
    return _conv(filters, kernel_size, name, kernel_constraint, **kwargs)


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

    Subclasses create their branch convs with :meth:`branch` (which passes on
    ``self.kernel_constraint``, ``self.kernel_initializer`` and the block's ``input_scale`` /
    ``output_scale``, fixed factors as in :class:`ScaledConv2D`, so collapsing the branches
    folds them), scale an identity path by :meth:`identity_factor`, apply
    ``self.activation`` last, and implement :meth:`collapse`.
    """

    def __init__(self, filters: int, activation=None, kernel_constraint=None,
                 input_scale=1.0, output_scale=1.0, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.activation = keras.activations.get(activation)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.input_scale = _scale_config(input_scale)
        self.output_scale = float(output_scale)
        self.kernel_initializer = (None if kernel_initializer is None
                                   else keras.initializers.get(kernel_initializer))

    def branch(self, filters, kernel_size, name, input_scale=None, output_scale=None):
        """A branch conv (a ScaledConv2D, possibly by 1); the scales default to the block's.
        Each branch gets its own copy of the initializer: one unseeded instance would give
        every branch the same values."""
        init = self.kernel_initializer
        return ScaledConv2D(
            filters, kernel_size, padding="same", name=name,
            kernel_constraint=self.kernel_constraint,
            kernel_initializer="glorot_uniform" if init is None else
            keras.initializers.deserialize(keras.initializers.serialize(init)),
            input_scale=self.input_scale if input_scale is None else input_scale,
            output_scale=self.output_scale if output_scale is None else output_scale)

    def identity_factor(self) -> np.ndarray:
        """Per-channel factor of an identity path: input_scale x output_scale."""
        return _scale_vector(self.input_scale, self.filters) * np.float32(self.output_scale)

    def collapse(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (kernel (3, 3, in, filters), bias (filters,)) of the equivalent conv.

        Abstract: every concrete block (RepConv, CollapsibleLinearBlock, ...) defines it.
        """
        raise NotImplementedError(f"{type(self).__name__} must define collapse()")

    def deploy_layer(self) -> keras.layers.Conv2D:
        """The plain 3x3 Conv2D (same name, activation, constraint) that replaces this block."""
        return _conv(self.filters, 3, self.name, self.kernel_constraint,
                     activation=self.activation)

    def start_as_conv3(self, kernel: np.ndarray, bias: np.ndarray, others) -> None:
        """Set the block to compute the 3x3 conv (`kernel`, `bias`, deploy units) with its
        3x3 branch ``conv3`` alone (less the identity path) and the `others` branches at zero:
        the ``start_from`` of blocks whose collapse adds branches into one 3x3 kernel."""
        kernel = np.array(kernel, np.float32)
        if self.use_identity:
            kernel[1, 1] -= np.diag(self.identity_factor())
        self.conv3.start_from(kernel, bias)
        for conv in others:
            conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([*input_shape[:-1], self.filters])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "activation": keras.activations.serialize(self.activation),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "input_scale": self.input_scale, "output_scale": self.output_scale,
                "kernel_initializer": None if self.kernel_initializer is None
                else keras.initializers.serialize(self.kernel_initializer)}


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
        self.conv3 = self.branch(self.filters, 3, "conv3")
        self.conv1 = self.branch(self.filters, 1, "conv1")

    def build(self, input_shape):
        _build(self.conv3, input_shape)
        _build(self.conv1, input_shape)
        self.use_identity = self.identity and int(input_shape[-1]) == self.filters
        super().build(input_shape)

    def call(self, x):
        y = self.conv3(x) + self.conv1(x)
        if self.use_identity:
            y = y + x * self.identity_factor()
        return self.activation(y)

    def collapse(self):
        k3, b3 = self.conv3.collapse()
        k1, b1 = self.conv1.collapse()
        kernel = k3 + _center_3x3(k1)
        if self.use_identity:
            kernel[1, 1] += np.diag(self.identity_factor())
        return kernel, b3 + b1

    def start_from(self, kernel: np.ndarray, bias: np.ndarray) -> None:
        """Set the block to compute the 3x3 conv (`kernel`, `bias`, deploy units): the 3x3
        branch holds it less the identity, the 1x1 branch starts at zero (``train --init``
        from deploy weights, e.g. SCSRN embedding published ABPN weights)."""
        self.start_as_conv3(kernel, bias, (self.conv1,))

    def get_config(self):
        return {**super().get_config(), "identity": self.identity}


@serializable
class CollapsibleLinearBlock(Collapsible):
    """Collapsible linear block (MAI 2022 report, sec. 4.2): 3x3 conv to ``expand*filters``
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
        self.expand_conv = self.branch(self.filters * self.expand, 3, "expand",
                                       output_scale=1.0)
        self.project_conv = self.branch(self.filters, 1, "project", input_scale=1.0)

    def build(self, input_shape):
        _build(self.expand_conv, input_shape)
        _build(self.project_conv, [*input_shape[:-1], self.filters * self.expand])
        self.use_identity = self.identity and int(input_shape[-1]) == self.filters
        super().build(input_shape)

    def call(self, x):
        y = self.project_conv(self.expand_conv(x))
        if self.use_identity:
            y = y + x * self.identity_factor()
        return self.activation(y)

    def collapse(self):
        # input_scale sits in the expand kernel, output_scale in the projection: their product
        # carries both, as in the training graph.
        k3, b3 = (w.astype(np.float64) for w in self.expand_conv.collapse())
        k1, b1 = (w.astype(np.float64) for w in self.project_conv.collapse())
        kernel = np.einsum("hwie,eo->hwio", k3, k1[0, 0])
        bias = b3 @ k1[0, 0] + b1
        if self.use_identity:
            kernel[1, 1] += np.diag(self.identity_factor())
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
        self.group_convs = [
            self.branch(c, k, f"group{i}", _channel_slice(self.input_scale, a, b))
            for i, ((c, k), (a, b)) in enumerate(zip(self.groups, self._slices()))]

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
            group_kernel, bias[a:b] = conv.collapse()
            kernel[:, :, a:b, a:b] = _center_3x3(group_kernel)
        return np.roll(kernel, self.shift, axis=-1), np.roll(bias, self.shift)

    def get_config(self):
        config = super().get_config()
        config.pop("filters")
        return {**config, "groups": [list(g) for g in self.groups], "shift": self.shift}


# The fixed 3x3 masks of ECB's edge branches (Zhang, Zeng and Zhang, "Edge-oriented
# Convolution Block for Real-time Super Resolution on Mobile Devices", ACM MM 2021, Eqs. 4-6),
# indexed [row, column]: Sobel along x (columns), Sobel along y (rows), Laplacian.
EDGE_MASKS = {
    "sobel_x": np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float32),
    "sobel_y": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
}


@serializable
class EdgeOrientedBlock(Collapsible):
    """ECB, ECBSR's edge-oriented convolution block (Zhang, Zeng and Zhang, ACM MM 2021):
    the sum of five linear branches, then the activation: a 3x3 conv; a 1x1 conv to
    ``depth_multiplier * filters`` channels then a 3x3 conv; and three 1x1 convs each followed
    by a fixed edge filter (:data:`EDGE_MASKS`: Sobel x, Sobel y, Laplacian) scaled per
    channel by a learnt factor, with a learnt bias. + identity when ``identity`` and in ==
    out (ECBSR's ``with_idt``; the ETDS zoo's ECBSR has none).

    A 1x1 conv followed by a 3x3 one equals one 3x3 conv only if the 3x3 conv sees the 1x1
    conv's bias, not zeros, beyond the border, as the paper pads; each such branch therefore
    convolves (y0 - b0) with 'same' zero padding and adds the constant b0 * sum(kernel) the
    bias border gives. Collapse: kernel = k0 (1x1) composed with the 3x3 kernel (or the scaled
    mask on the diagonal), bias = b1 + b0 . sum over taps of the 3x3 kernel; the branches add.
    """

    def __init__(self, filters: int, activation=None, kernel_constraint=None,
                 depth_multiplier: float = 2.0, identity: bool = False, **kwargs):
        super().__init__(filters, activation, kernel_constraint, **kwargs)
        self.depth_multiplier = float(depth_multiplier)
        self.identity = bool(identity)
        self.mid = int(self.filters * self.depth_multiplier)
        self.conv3 = self.branch(self.filters, 3, "conv3")
        self.expand = self.branch(self.mid, 1, "expand", output_scale=1.0)
        self.expand_conv3 = self.branch(self.filters, 3, "expand_conv3", input_scale=1.0)
        self.edge_inputs = {edge: self.branch(self.filters, 1, f"{edge}_conv1",
                                              output_scale=1.0) for edge in EDGE_MASKS}

    def build(self, input_shape):
        _build(self.conv3, input_shape)
        _build(self.expand, input_shape)
        _build(self.expand_conv3, [*input_shape[:-1], self.mid])
        small = keras.initializers.RandomNormal(stddev=1e-3)  # the paper's initial scale, bias
        self.edge_scales, self.edge_biases = {}, {}
        for edge, conv in self.edge_inputs.items():
            _build(conv, input_shape)
            self.edge_scales[edge] = self.add_weight(name=f"{edge}_scale", shape=(self.filters,),
                                                     initializer=small)
            self.edge_biases[edge] = self.add_weight(name=f"{edge}_bias", shape=(self.filters,),
                                                     initializer=small)
        self.use_identity = self.identity and int(input_shape[-1]) == self.filters
        super().build(input_shape)

    def _edge_kernel(self, edge, scale):
        """(3, 3, filters, 1) depthwise kernel: the mask times each channel's scale."""
        return EDGE_MASKS[edge][:, :, None, None] * tf.reshape(scale, (1, 1, -1, 1))

    def call(self, x):
        out = np.float32(self.output_scale)
        y = self.conv3(x)
        b0 = self.expand.bias * self.expand.output_scale
        k1 = self.expand_conv3.kernel * self.expand_conv3.kernel_factor
        # 1x1 then 3x3 as the paper pads: the border holds b0, the same as this constant
        y = y + self.expand_conv3(self.expand(x) - b0) + tf.einsum("m,hwmo->o", b0, k1)
        for edge, conv in self.edge_inputs.items():
            b0 = conv.bias * conv.output_scale
            kernel = self._edge_kernel(edge, self.edge_scales[edge])
            filtered = tf.nn.depthwise_conv2d(conv(x) - b0, kernel, [1, 1, 1, 1], "SAME")
            constant = b0 * self.edge_scales[edge] * float(EDGE_MASKS[edge].sum())
            y = y + out * (filtered + constant + self.edge_biases[edge])
        if self.use_identity:
            y = y + x * self.identity_factor()
        return self.activation(y)

    def collapse(self):
        out = np.float64(self.output_scale)
        kernel, bias = (w.astype(np.float64) for w in self.conv3.collapse())
        k0, b0 = (w.astype(np.float64) for w in self.expand.collapse())
        k1, b1 = (w.astype(np.float64) for w in self.expand_conv3.collapse())
        kernel += np.einsum("im,hwmo->hwio", k0[0, 0], k1)
        bias += b1 + np.einsum("m,hwmo->o", b0, k1)
        for edge, conv in self.edge_inputs.items():
            k0, b0 = (w.astype(np.float64) for w in conv.collapse())
            scale = self.edge_scales[edge].numpy().astype(np.float64)
            mask = EDGE_MASKS[edge].astype(np.float64)
            kernel += out * np.einsum("io,hw->hwio", k0[0, 0] * scale, mask)
            bias += out * (self.edge_biases[edge].numpy() + b0 * scale * mask.sum())
        if self.use_identity:
            kernel[1, 1] += np.diag(self.identity_factor())
        return kernel.astype(np.float32), bias.astype(np.float32)

    def start_from(self, kernel: np.ndarray, bias: np.ndarray) -> None:
        """Set the block to compute the 3x3 conv (`kernel`, `bias`, deploy units): the 3x3
        branch holds it (less the identity), every other branch starts at zero (``train
        --init`` from deploy weights, e.g. the published collapsed ECBSR)."""
        self.start_as_conv3(kernel, bias, (self.expand, self.expand_conv3,
                                           *self.edge_inputs.values()))
        for weight in (*self.edge_scales.values(), *self.edge_biases.values()):
            weight.assign(np.zeros(weight.shape, np.float32))

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "identity": self.identity}


BLOCKS = {"repconv": RepConv, "clb": CollapsibleLinearBlock, "ecb": EdgeOrientedBlock}


def conv_block(kind: str, filters: int, name: str, activation=None, kernel_constraint=None,
               *, input_scale=1.0, output_scale=1.0, kernel_initializer=None,
               identity: bool = True):
    """A 3x3 conv layer of the given kind: "conv" (a Conv2D, a :class:`ScaledConv2D` when a
    scale is not 1) or a collapsible block with those scales, ``kernel_initializer`` (None:
    Keras' default) on every conv and, for a block, ``identity`` (its identity branch when
    in == out; a plain conv has none)."""
    scales = dict(input_scale=input_scale, output_scale=output_scale)
    init = {} if kernel_initializer is None else {"kernel_initializer": kernel_initializer}
    if kind == "conv":
        return _conv(filters, 3, name, kernel_constraint, activation=activation, **scales,
                     **init)
    if kind not in BLOCKS:
        raise ValueError(f"unknown block {kind!r}; choose conv or {', '.join(BLOCKS)}")
    return BLOCKS[kind](filters, activation=activation, kernel_constraint=kernel_constraint,
                        name=name, identity=identity, **scales, **init)


# conv_block() arguments of the three roles of a conv in a training graph (normalize=True);
# deploy graphs (normalize=False) keep plain convs and Keras' defaults, since collapse()
# gives them their weights.

def first_conv_args(normalize: bool) -> dict:
    """The ReLU conv reading the [0, 255] image: input x 1/255, He-normal weights (unit-scale
    pre-activations for ReLU on [0, 1] values)."""
    return dict(input_scale=1.0 / PIXEL_MAX,
                kernel_initializer=keras.initializers.HeNormal()) if normalize else {}


def hidden_conv_args(normalize: bool, block: str = "conv") -> dict:
    """The ReLU convs between: He-normal weights for plain convs. Rep blocks keep Keras'
    default: their identity branch already carries the signal, and He-normal on every branch
    would grow it ~1.6x per block."""
    return dict(kernel_initializer=keras.initializers.HeNormal()) \
        if normalize and block == "conv" else {}


def last_conv_args(normalize: bool) -> dict:
    """The linear conv whose output is added to the anchor: output x 255, small initial
    weights and, for a rep block, no identity branch (which would add 255 x the features),
    so the model starts near its anchor (nearest-neighbour upscaling)."""
    return dict(output_scale=PIXEL_MAX, kernel_initializer=output_init(),
                identity=False) if normalize else {}


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

    "before_d2s" clips the small LR-resolution tensor (the NPU-friendly order, the MAI 2022 report
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


def weight_constraint(max_abs_weight):
    """``ClipWeights(max_abs_weight)``, or None when there is no bound."""
    return ClipWeights(max_abs_weight) if max_abs_weight else None


# ------------------------------------------------------------------ layers of the older families
# ESPCN, FSRCNN and ECBSR use activations, kernels and upsamplers the four MAI 2022 models
# avoid (tanh/sigmoid, PReLU, 5x5 and 9x9 kernels, a transposed convolution). Their deploy
# graphs keep them, exactly as published; these are the pieces.


# The layouts of a PReLU family's hidden activations (``activation=``): as published, or each
# PReLU written as two ReLUs (:func:`relu_pair_weights`).
PRELU_LAYOUTS = ("prelu", "relu_pair")


def is_relu_pair(activation: str) -> bool:
    """Whether `activation` (one of :data:`PRELU_LAYOUTS`) is the two-ReLU layout; a
    ValueError (which ``create_model`` turns into MaiSrError) for any other value."""
    if activation not in PRELU_LAYOUTS:
        raise ValueError(f"activation={activation!r}; choose from {', '.join(PRELU_LAYOUTS)}")
    return activation == "relu_pair"


def relu_pair_weights(prelu_net: keras.Model, pair_net: keras.Model,
                      chain: list[tuple[str, str | None]]) -> None:
    """Give `pair_net` the weights that make it compute `prelu_net` exactly, in place, for a
    chain of (conv, its PReLU or None) layer names, the same names in both: in `pair_net`
    each conv that has a PReLU in `prelu_net` is twice as wide with a fused ReLU.

    PReLU_a(z) = relu(z) - a relu(-z): such a conv writes z and -z (kernel and -kernel), and
    the next conv of the chain reads relu(z) with its kernel and relu(-z) with its kernel
    times -a. Zero padding stays exact since relu(0) = PReLU(0) = 0. A transposed conv's
    kernel is (h, w, out, in), a conv's (h, w, in, out).
    """
    slopes = None
    for conv, activation in chain:
        layer = prelu_net.get_layer(conv)
        kernel, bias = layer.get_weights()
        inputs, outputs = (3, 2) if isinstance(layer, keras.layers.Conv2DTranspose) else (2, 3)
        if slopes is not None:  # the previous layer's two halves
            shape = [1, 1, 1, 1]
            shape[inputs] = -1
            kernel = np.concatenate([kernel, -slopes.reshape(shape) * kernel], axis=inputs)
        slopes = None
        if activation is not None:
            kernel = np.concatenate([kernel, -kernel], axis=outputs)
            bias = np.concatenate([bias, -bias])
            slopes = prelu_net.get_layer(activation).get_weights()[0].reshape(-1)
        pair_net.get_layer(conv).set_weights([kernel, bias])


def copy_channel_weights(source: keras.Model, target: keras.Model, convs: list[str]) -> None:
    """Give `target` the weights that make it compute `source` exactly, in place, where each
    conv of `convs` (the same names in both, a chain) writes every channel of its `source`
    counterpart k times (k = the ratio of their output widths, the copies appended as whole
    blocks) and reads each of its input's copies with 1/k of the published weight (k from
    the input widths). The mean of identical copies is the channel; what makes copies worth
    their MACs is that quantization offsets them onto interleaved grids
    (:func:`mai_sr.models.qat.equalize.dither_copies`). Conv2D kernels only (h, w, in, out).
    """
    for name in convs:
        kernel, bias = (np.asarray(w, np.float64) for w in source.get_layer(name).get_weights())
        wide = target.get_layer(name)
        wide_in, wide_out = (int(d) for d in wide.get_weights()[0].shape[2:])
        times_in, times_out = wide_in // kernel.shape[2], wide_out // kernel.shape[3]
        if (times_in * kernel.shape[2], times_out * kernel.shape[3]) != (wide_in, wide_out):
            raise ValueError(f"{name}: {wide_in}->{wide_out} channels do not copy "
                             f"{kernel.shape[2]}->{kernel.shape[3]} a whole number of times")
        kernel = np.concatenate([kernel / times_in] * times_in, axis=2)
        wide.set_weights([np.concatenate([kernel] * times_out, axis=3).astype(np.float32),
                          np.concatenate([bias] * times_out).astype(np.float32)])


def prelu(name: str):
    """PyTorch's ``nn.PReLU(C)``: one learnt slope per channel (TFLite PRELU), initial 0.25
    as in PyTorch. PReLU(a * x) = a * PReLU(x) for a > 0, so a PReLU net, like a ReLU net,
    moves from [0, 1] to [0, 255] pixels by scaling its biases."""
    return keras.layers.PReLU(alpha_initializer=keras.initializers.Constant(0.25),
                              shared_axes=[1, 2], name=name)


@serializable
class Scale(keras.layers.Layer):
    """``x * factor`` for a fixed factor (TFLite MUL by a constant); e.g. ESPCN's sigmoid
    output in [0, 1] times 255 gives pixels."""

    def __init__(self, factor: float, **kwargs):
        super().__init__(**kwargs)
        self.factor = float(factor)

    def call(self, x):
        return x * self.factor

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@serializable
class KernelSupport(keras.constraints.Constraint):
    """Zero every kernel tap outside the top-left ``size`` x ``size`` window (after each
    optimizer step), so a kernel padded to a larger size for alignment (see
    :func:`deconv_kernel_size`) keeps the published support when trained."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, w):
        kh, kw = int(w.shape[0]), int(w.shape[1])
        mask = np.zeros((kh, kw, 1, 1), np.float32)
        mask[:self.size, :self.size] = 1.0
        return w * mask

    def get_config(self):
        return {"size": self.size}


@serializable
class NegativeIdentity(keras.initializers.Initializer):
    """A 1x1 kernel (1, 1, C_in, C_out) of -1 from input c to output c, 0 elsewhere: ETDS's
    clip by ReLUs, ReLU(P - x) per channel with the bias P."""

    def __call__(self, shape, dtype=None, **kwargs):
        kernel = np.zeros(shape, np.float32)
        channels = min(shape[2], shape[3])
        kernel[0, 0, np.arange(channels), np.arange(channels)] = -1.0
        return tf.constant(kernel, dtype=dtype or tf.float32)


@serializable
class DualStreamKernel(keras.constraints.Constraint):
    """Keep a conv on [features | residual] channels two streams: after each optimizer step,
    zero its kernel's block from the input features to the output's last `residual`
    channels (then clip to `max_abs`, as :class:`ClipWeights`, when given).

    ETDS (Chao et al., "Equivalent Transformation and Dual Stream Network Construction for
    Mobile Image Super-Resolution", CVPR 2023) trains a backbone and a residual stream that
    reads only itself; one conv holding both, with this block zero, computes both streams at
    once (their equivalent transformation), and trains as they do: Adam moves every other
    weight exactly as it moves the separate convs' weights, and this block, zero from the
    start, is put back to zero.
    """

    def __init__(self, residual: int, max_abs: float | None = None):
        self.residual = int(residual)
        self.max_abs = None if max_abs is None else float(max_abs)

    def __call__(self, w):
        features_in = int(w.shape[2]) - self.residual
        features_out = int(w.shape[3]) - self.residual
        mask = np.ones((1, 1) + tuple(int(d) for d in w.shape[2:]), np.float32)
        mask[:, :, :features_in, features_out:] = 0.0
        w = w * mask
        return w if self.max_abs is None else tf.clip_by_value(w, -self.max_abs, self.max_abs)

    def get_config(self):
        return {"residual": self.residual, "max_abs": self.max_abs}


def deconv_kernel_size(kernel: int, scale: int) -> int:
    """Kernel side of a 'same' Keras transposed conv that equals PyTorch's
    ``ConvTranspose2d(kernel, stride=scale, padding=kernel // 2, output_padding=scale - 1)``
    when the published k x k kernel sits in its top-left corner (the rest zero).

    Both give an (s*H, s*W) output cropped from the full (H-1)*s + k one: PyTorch drops
    ``kernel // 2`` rows at the top, TF's SAME drops (k' - s) // 2 for a k' x k' kernel.
    With k' = k + s - 1 (k odd) those agree, (k - 1) // 2 = k // 2, and the added bottom-right
    taps are zeros: the same products and sums as the published layer, one TRANSPOSE_CONV op
    and no slicing.
    """
    return kernel + scale - 1


def subpixel_taps(support: int, scale: int) -> tuple[int, list[tuple[int, int, int]]]:
    """(K, [(t, r, j), ...]) along one axis: the 'same' Keras transposed conv of
    :func:`deconv_kernel_size` (stride `scale`, nonzero taps only in the top-left `support`)
    equals a 'same' K x K conv to `scale`^2 times the channels followed by depth-to-space,
    whose tap j computes what the transposed conv's tap t adds to output phase r.

    TF's transposed conv is the gradient of a 'same' strided conv, which pads
    p = (k - s) // 2 before (k = the kernel side): tap t adds LR pixel q to HR pixel
    o = s q + t - p. Writing o = s q' + r, the phase r = (t - p) mod s reads LR pixel
    q = q' - (t - p - r) / s, an offset e = q - q' from the pixel the conv centres on. A
    'same' K x K conv reads offsets -(K - 1) // 2 ... K - 1 - (K - 1) // 2, so K is the
    smallest side covering every tap's e, and j = e + (K - 1) // 2. (x3: K = 4 for the 9-tap
    FSRCNN deconv; phases 0 and 1 read offsets -1..1, phase 2 reads 0..2.)
    """
    before = (deconv_kernel_size(support, scale) - scale) // 2
    offsets = [(t, (t - before) % scale, -((t - before) // scale)) for t in range(support)]
    low = -min(e for _, _, e in offsets)
    high = max(e for _, _, e in offsets)
    # an odd side 2m + 1 reads m pixels each side, an even one 2m reads m - 1 before, m after
    size = max(2 * low + 1, 2 * high)
    return size, [(t, r, e + (size - 1) // 2) for t, r, e in offsets]


def subpixel_from_transposed(kernel: np.ndarray, bias: np.ndarray, scale: int,
                             support: int) -> tuple[np.ndarray, np.ndarray]:
    """(kernel, bias) of the conv of :func:`subpixel_taps` that, followed by depth-to-space
    (channel (r_h s + r_w) C + c, TF's order), computes the transposed conv (`kernel`
    (h, w, C, in), `bias`) exactly: each tap moved, none summed, so the products and sums
    are the transposed conv's."""
    size, taps = subpixel_taps(support, scale)
    colours, inputs = kernel.shape[2], kernel.shape[3]
    conv = np.zeros((size, size, inputs, scale * scale * colours), np.float32)
    for th, rh, jh in taps:
        for tw, rw, jw in taps:
            first = (rh * scale + rw) * colours
            conv[jh, jw, :, first:first + colours] = kernel[th, tw].T
    return conv, np.tile(np.asarray(bias, np.float32), scale * scale)


@serializable
class SubpixelSupport(keras.constraints.Constraint):
    """Zero every tap of a :func:`subpixel_from_transposed` conv that the transposed conv it
    replaces has no tap for (after each optimizer step), so it keeps the published support
    (the equivalent of :class:`KernelSupport`)."""

    def __init__(self, support: int, scale: int, colours: int = 3):
        self.support, self.scale, self.colours = int(support), int(scale), int(colours)
        # The taps a transposed conv with every supported tap 1 moves into the conv; made
        # once here, since the constraint runs after every optimizer step.
        ones = np.zeros((deconv_kernel_size(support, scale),) * 2 + (self.colours, 1),
                        np.float32)
        ones[:self.support, :self.support] = 1.0
        self._mask = subpixel_from_transposed(ones, np.zeros(self.colours), self.scale,
                                              self.support)[0]

    def mask(self) -> np.ndarray:
        """(K, K, 1, scale^2 colours): 1 on the taps in the support."""
        return self._mask

    def __call__(self, w):
        return w * self._mask

    def get_config(self):
        return {"support": self.support, "scale": self.scale, "colours": self.colours}


@serializable
class ScaledConv2DTranspose(keras.layers.Conv2DTranspose):
    """A Conv2DTranspose with fixed factors on its input and its output (as
    :class:`ScaledConv2D`): ``output_scale * deconv(input_scale * x)``, so a training graph
    can end in [0, 1] units and return pixels. :meth:`collapse` folds the factors into the
    kernel (its last axis is the input channels) and the bias."""

    def __init__(self, *args, input_scale=1.0, output_scale=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.input_scale = float(input_scale)
        self.output_scale = float(output_scale)

    def call(self, x):
        return super().call(x * self.input_scale) * self.output_scale

    def collapse(self) -> tuple[np.ndarray, np.ndarray]:
        """(kernel, bias) of the equivalent plain Conv2DTranspose."""
        factor = np.float32(self.input_scale * self.output_scale)
        return self.kernel.numpy() * factor, self.bias.numpy() * np.float32(self.output_scale)

    def start_from(self, kernel: np.ndarray, bias: np.ndarray) -> None:
        """Set the layer to compute the plain transposed conv (`kernel`, `bias`, deploy
        units): the inverse of :meth:`collapse`."""
        self.set_weights(
            [np.asarray(kernel, np.float32) / np.float32(self.input_scale * self.output_scale),
             np.asarray(bias, np.float32) / np.float32(self.output_scale)])

    def deploy_layer(self) -> keras.layers.Conv2DTranspose:
        """The plain Conv2DTranspose (same name, shape, constraint) that replaces it."""
        config = super().get_config()
        return keras.layers.Conv2DTranspose.from_config(config)

    def get_config(self):
        return {**super().get_config(), "input_scale": self.input_scale,
                "output_scale": self.output_scale}


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (
    ClipWeights, DepthToSpace, ClipByValue, ConcatAnchor, NearestConvAnchor, ScaledConv2D,
    NearestTapInitializer, RepConv, CollapsibleLinearBlock, HXBlock, Scale, KernelSupport,
    SubpixelSupport, ScaledConv2DTranspose, DualStreamKernel, EdgeOrientedBlock,
    NegativeIdentity)}

# Training-graph layers that collapse() replaces by a plain Conv2D (deploy_layer + collapse).
FOLDABLE = (ScaledConv2D, Collapsible, ScaledConv2DTranspose)
