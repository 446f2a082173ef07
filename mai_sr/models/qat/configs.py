"""Quantizers and QuantizeConfigs: exactly what gets fake-quantized, layer by layer.

In the tfmot style, each :class:`QuantizeConfig` says which weights, activations and
outputs of a layer carry a fake-quantization op during QAT. The TFLite converter turns
every fake-quant op into the quantization parameters of one tensor, so these configs decide
the INT8 graph:

=============================  =============================================================
layer                          what is quantized
=============================  =============================================================
Conv2D                         kernel per output channel, symmetric [-127, 127] (TFLite's
                               scheme); output (after its fused ReLU) with a moving-average
                               range. Feeding a ReLU layer or a learned-range concat: no
                               output range (the consumer's is the tensor's). Feeding the
                               clip or the image concat: that fixed [0, 255] range.
NearestConvAnchor (frozen)     output fixed to [0, 255], the pixel range it copies, so the
                               anchor and the input share one scale (1.0). Its kernel is
                               not fake-quantized: its 0/1 weights quantize exactly anyway
                               (1.0 is 127 x 1/127 per channel), which a test checks.
Add, ReLU layer                output with a moving-average range, or the clip's fixed
                               [0, 255] when it feeds the clip (the anchor ADD).
Clip to [0, 255]               output fixed to [0, 255]: scale 1, zero point 0 as uint8.
                               A moving-average range here learned [-0.7, 186] in a short
                               QAT run and cost 4 dB; a fixed range cannot drift.
DepthToSpace, concat anchor    nothing: they move values, so their output keeps the range
                               of their input (TFLite requires the same scale anyway).
Concatenate                    one range for all inputs and the output: fixed [0, 255] if an
                               input is the image (skip concatenation), else moving average.
Conv2DTranspose                as Conv2D, but one symmetric range for the whole kernel
                               (see :class:`PerTensorWeightQuantizer`).
PReLU                          slopes: one symmetric range for the layer (the converter's
                               int8 PRELU slopes); output with a moving-average range; its
                               producer keeps a range of its own (TFLite does not fuse
                               PRELU into the conv).
tanh / sigmoid (Activation)    output fixed to the range TFLite's int8 TANH / LOGISTIC
                               kernels require: [-1, 127/128] (scale 1/128, zero point 0)
                               and [0, 255/256] (scale 1/256, zero point -128); the conv
                               feeding one gets a range chosen from data, then frozen
                               (:class:`ActivationInputQuantizer`).
Scale by 255                   output fixed to [0, 255] (ESPCN's sigmoid x 255 is the image).
model input                    fixed [0, 255] (raw uint8 pixels: scale 1, zero point 0).
=============================  =============================================================

Two quantizers differ from tfmot's defaults on purpose:

* :class:`PerChannelWeightQuantizer` computes the weight range from the current kernel
  every call (training or not), with no state. tfmot's `LastValueQuantizer` stores the
  range seen at the last *training* step, so after the final optimizer update (or after
  weight clipping, or in a model that was never trained) its inference range is stale.
* :class:`MovingAverageRangeQuantizer` starts its exponential moving average from the first
  training batch's range. tfmot's `MovingAverageQuantizer` starts from [-6, 6] and with
  decay 0.999 needs thousands of steps to reach a range like [0, 255]; a short QAT run ends
  with ranges that clip the signal.
"""

from __future__ import annotations

from mai_sr._tf import tf, keras
import tensorflow_model_optimization as tfmot

Quantizer = tfmot.quantization.keras.quantizers.Quantizer
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig
FixedQuantizer = tfmot.quantization.keras.quantizers.FixedQuantizer

PIXEL_RANGE = (0.0, 255.0)


def fixed_quantizer(value_range) -> FixedQuantizer:
    """An 8-bit quantizer with a fixed range (for [0, 255]: scale 1, zero point 0)."""
    lo, hi = (float(v) for v in value_range)
    return FixedQuantizer(num_bits=8, init_min=lo, init_max=hi, narrow_range=False)


def _same_config(a, b) -> bool:
    return type(a) is type(b) and a.get_config() == b.get_config()


def _nonzero_bound(bound):
    """`bound` with zeros replaced by 1.

    An all-zero channel would give an empty range; any positive bound quantizes it to 0,
    but a tiny one breaks its bias: TFLite stores the bias in int32 at scale
    (input scale x weight scale), and a 1e-8 weight range overflowed it (ETDS's unused
    constant channel, bias 255, came out as 15). With 1 the bias is exact.
    """
    return tf.where(bound > 0, bound, tf.ones_like(bound))


class PerChannelWeightQuantizer(Quantizer):
    """Symmetric per-output-channel 8-bit weight quantizer, range from the current kernel.

    Levels are [-127, 127] x max|w_c|/127 for output channel c (the last kernel axis), the
    scheme the TFLite converter uses for CONV_2D weights. No variables: the range always
    matches the weights.
    """

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        axes = list(range(len(inputs.shape) - 1))
        bound = _nonzero_bound(tf.reduce_max(tf.abs(inputs), axis=axes))
        return tf.quantization.fake_quant_with_min_max_vars_per_channel(
            inputs, -bound, bound, num_bits=8, narrow_range=True)

    def get_config(self):
        return {}

    def __eq__(self, other):
        return _same_config(self, other)


class PerTensorWeightQuantizer(PerChannelWeightQuantizer):
    """Symmetric per-tensor 8-bit weight quantizer, range max|w| from the current kernel.

    For a Conv2DTranspose: its Keras kernel is (h, w, out, in), so per-output-channel
    fake quantization would need a transpose around it, which the TFLite converter refuses
    ("mismatched quantized axes"); tfmot's own Conv2DTranspose config is per tensor too.
    """

    def __call__(self, inputs, training, weights, **kwargs):
        bound = _nonzero_bound(tf.reduce_max(tf.abs(inputs)))
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, -bound, bound, num_bits=8, narrow_range=True)



def _range_variables(layer, name: str, value_range, seen: float) -> dict:
    """The min, max and seen variables of a range quantizer (what ``range_variables`` and
    ``activation_ranges`` in :mod:`mai_sr.qat.quantize` read)."""
    def var(suffix, value):
        # MEAN: under tf.distribute each replica sees its own batch; the assignment in
        # replica context then averages them instead of failing.
        return layer.add_weight(f"{name}_{suffix}", shape=(), trainable=False,
                                initializer=keras.initializers.Constant(value),
                                aggregation=tf.VariableAggregation.MEAN)

    return {"min_var": var("min", float(value_range[0])),
            "max_var": var("max", float(value_range[1])), "seen_var": var("seen", seen)}


class MovingAverageRangeQuantizer(Quantizer):
    """Per-tensor asymmetric 8-bit quantizer with an EMA range started from the first batch.

    Training: range <- decay * range + (1 - decay) * [min(batch, 0), max(batch, 0)], except
    on the first training call, which takes the batch's range as is. Inference uses the
    stored range.
    """

    def __init__(self, decay: float = 0.999):
        self.decay = float(decay)

    def build(self, tensor_shape, name, layer):
        return _range_variables(layer, name, PIXEL_RANGE, seen=0.0)

    def __call__(self, inputs, training, weights, **kwargs):
        min_var, max_var, seen = weights["min_var"], weights["max_var"], weights["seen_var"]
        if training:
            batch_min = tf.minimum(tf.reduce_min(inputs), 0.0)
            batch_max = tf.maximum(tf.reduce_max(inputs), 0.0)
            # seen is 0 before the first batch and 1 after: the EMA starts from batch 1.
            keep = self.decay * seen
            lo = min_var.assign(keep * min_var + (1.0 - keep) * batch_min)
            hi = max_var.assign(keep * max_var + (1.0 - keep) * batch_max)
            with tf.control_dependencies([lo, hi]):
                seen.assign(1.0)
                return tf.quantization.fake_quant_with_min_max_vars(inputs, lo, hi, num_bits=8)
        return tf.quantization.fake_quant_with_min_max_vars(inputs, min_var, max_var, num_bits=8)

    def get_config(self):
        return {"decay": self.decay}

    def __eq__(self, other):
        return _same_config(self, other)


class ActivationInputQuantizer(Quantizer):
    """8-bit range of a tensor feeding tanh or sigmoid, whose int8 outputs TFLite fixes.

    Its input range is free, and it decides most of the error: ESPCN's pre-tanh values span
    [-313, 17], so min/max gives a step of 1.3 where tanh changes within +-3 (17 dB on
    Set5); a fixed [-4, 4] rounds to 0.031 where tanh's slope is 1, four times its output
    step. The range starts at `value_range` and :func:`mai_sr.qat.quantize.fit_activation_inputs`
    sets it from data (the one that minimises the error of the activation's int8 output);
    training never moves it (a moving average would drift back towards min/max). It is
    stored in variables, so saved weights and ``activation_ranges`` carry it.
    """

    def __init__(self, value_range, activation: str):
        self.value_range = [float(v) for v in value_range]
        self.activation = str(activation)

    def build(self, tensor_shape, name, layer):
        return _range_variables(layer, name, self.value_range, seen=1.0)

    def __call__(self, inputs, training, weights, **kwargs):
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, weights["min_var"], weights["max_var"], num_bits=8)

    def get_config(self):
        return {"value_range": self.value_range, "activation": self.activation}

    def __eq__(self, other):
        return _same_config(self, other)


def _range_or_none(value_range):
    return None if value_range is None else [float(v) for v in value_range]


def _output_quantizer(value_range, activation_input=None):
    """Fixed quantizer for a known range, else a moving-average one; the data-set range of
    an :class:`ActivationInputQuantizer` for a tensor feeding tanh or sigmoid."""
    if activation_input is not None:
        return ActivationInputQuantizer(value_range, activation_input)
    if value_range is None:
        return MovingAverageRangeQuantizer()
    return fixed_quantizer(value_range)


class ConvQuantizeConfig(QuantizeConfig):
    """Conv2D: kernel per channel; output after the fused activation.

    quantize_output=False leaves the output to a ReLU layer that follows (TFLite fuses it
    into the conv, so the ReLU's range is the conv's). output_range fixes the output range
    (a conv feeding the clip takes the clip's range); None means a moving-average range.
    """

    def __init__(self, quantize_output: bool = True, output_range=None,
                 per_channel: bool = True, activation_input: str | None = None):
        self.quantize_output = bool(quantize_output)
        self.output_range = _range_or_none(output_range)
        self.per_channel = bool(per_channel)
        self.activation_input = activation_input

    def get_weights_and_quantizers(self, layer):
        quantizer = PerChannelWeightQuantizer() if self.per_channel else PerTensorWeightQuantizer()
        return [(layer.kernel, quantizer)]

    def set_quantize_weights(self, layer, quantize_weights):
        (layer.kernel,) = quantize_weights

    def get_activations_and_quantizers(self, layer):
        if not self.quantize_output:
            return []
        return [(layer.activation, _output_quantizer(self.output_range,
                                                     self.activation_input))]

    def set_quantize_activations(self, layer, quantize_activations):
        if self.quantize_output:
            (layer.activation,) = quantize_activations

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        config = {"quantize_output": self.quantize_output, "output_range": self.output_range,
                  "per_channel": self.per_channel}
        if self.activation_input is not None:  # (older saved configs have no such key)
            config["activation_input"] = self.activation_input
        return config


class PassThroughQuantizeConfig(QuantizeConfig):
    """Nothing quantized: the output keeps its input's range (DepthToSpace, concat anchor),
    or is the range of its consumer (an Add feeding a ReLU layer or a learned-range concat)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


class OutputQuantizeConfig(PassThroughQuantizeConfig):
    """A weightless layer whose output gets one range: fixed if given, else moving average.

    Used for clips and the frozen anchor ([0, 255]), Add, a ReLU layer, and Concatenate.
    """

    def __init__(self, output_range=None):
        self.output_range = _range_or_none(output_range)

    def get_output_quantizers(self, layer):
        return [_output_quantizer(self.output_range)]

    def get_config(self):
        return {"output_range": self.output_range}


class PReLUQuantizeConfig(OutputQuantizeConfig):
    """PReLU: its slopes as the converter stores them, one symmetric int8 range for the
    whole layer (:class:`PerTensorWeightQuantizer`), and its output like a weightless
    layer's. TFLite's int8 PRELU reads int8 slopes, so a slope is rounded to a step of
    max|slope| / 127: FSRCNN x3 has slopes from -7.3 to 9.9, a step of 0.078 that turns
    its slopes of 0.01-0.05 into 0 or 0.078. Without the slopes quantized here, QAT
    trained a network the INT8 file did not compute (0.4 dB apart on FSRCNN x3)."""

    def get_weights_and_quantizers(self, layer):
        return [(layer.alpha, PerTensorWeightQuantizer())]

    def set_quantize_weights(self, layer, quantize_weights):
        (layer.alpha,) = quantize_weights


CUSTOM_OBJECTS = {cls.__name__: cls for cls in (
    PerChannelWeightQuantizer, PerTensorWeightQuantizer, MovingAverageRangeQuantizer,
    ActivationInputQuantizer, ConvQuantizeConfig,
    OutputQuantizeConfig, PassThroughQuantizeConfig, PReLUQuantizeConfig)}
