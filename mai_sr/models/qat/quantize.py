"""QAT on the deploy graph: annotate every layer with an explicit QuantizeConfig, then apply.

`quantize_model(deploy_model)` returns a tfmot QAT model whose fake-quant ops are exactly
the tensor ranges of the INT8 TFLite file the exporter writes:

* the input is quantized to the fixed range [0, 255] (raw uint8 pixels: scale 1, zero 0);
* the clip before depth-to-space has the fixed range [0, 255], so the output is uint8 with
  scale 1 and zero point 0; the layer feeding the clip (the anchor ADD, or SCSRN's last
  conv) gets the same fixed range, because the converter does not carry the clip's range
  back to it (with a range only on the clip, the ADD stayed in float);
* depth-to-space and the concat anchor move values and add no range;
* a Concatenate has one range shared by its inputs and output (fixed [0, 255] when the
  image is one of its inputs, the skip concatenation of SCSRN), so the converter never has
  to insert a requantize op in front of it;
* a layer whose output only feeds a ReLU layer (which TFLite fuses into it) or a concat
  with a learned range is not quantized itself: the consumer's range is its range.

What each layer class gets is data (:data:`LAYER_ROLES`); the configs themselves live in
:mod:`mai_sr.models.qat.configs`. tfmot's default layout transforms are not used: their Conv+ReLU
rule drops the kernel quantization of the conv, and their concat rule patches configs in
place in a way that does not survive saving. The only transform here inserts the fixed
[0, 255] input quantizer.

Typical use (Training engineer's stage 2)::

    qat = quantize_model(deploy)          # deploy = mai_sr.models.collapse(trained)
    calibrate(qat, some_lr_batches)       # optional: ranges from data before training
    ... train qat with a low learning rate, calling apply_weight_clip(qat) after each step
    qat.save_weights("qat/qat.weights.h5")
    # reload: quantize_model(create_model(name, deploy=True)).load_weights(...)
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from tqdm import tqdm

from mai_sr._tf import keras
import tensorflow_model_optimization as tfmot
from tensorflow_model_optimization.python.core.quantization.keras.quantize_layer import QuantizeLayer
from tensorflow_model_optimization.python.core.quantization.keras import utils as tfmot_utils

from mai_sr.errors import MaiSrError
from mai_sr.models.qat.configs import (CUSTOM_OBJECTS, PIXEL_RANGE, ConvQuantizeConfig,
                                OutputQuantizeConfig, PassThroughQuantizeConfig,
                                PReLUQuantizeConfig, fixed_quantizer)

transforms = tfmot.quantization.keras.graph_transformations.transforms
model_transformer = tfmot.quantization.keras.graph_transformations.model_transformer

# Layer class name -> role. "move": rearranges values (keeps its input's range); "clip": a
# clip whose bounds are the range; "anchor": frozen nearest-conv copy of the image;
# "activation": a standalone ReLU (its producer is not quantized; with max_value it is a clip).
LAYER_ROLES = {
    "InputLayer": "input",
    "Conv2D": "conv",
    "NearestConvAnchor": "anchor",
    "Add": "add",
    "ReLU": "activation",
    "Concatenate": "concat",
    "ClipByValue": "clip",
    "DepthToSpace": "move",
    "ConcatAnchor": "move",
    "Conv2DTranspose": "deconv",
    "PReLU": "prelu",
    "Activation": "fixed_activation",
    "Scale": "to_pixels",
}
# Output ranges of the activations TFLite quantizes with fixed parameters: int8 TANH needs
# scale 1/128 and zero point 0, int8 LOGISTIC scale 1/256 and zero point -128 (the LiteRT
# int8 kernels' requirements; another range would make the converter add a requantize).
FIXED_ACTIVATION_RANGES = {"tanh": (-1.0, 127.0 / 128.0), "sigmoid": (0.0, 255.0 / 256.0)}
# Input ranges of those activations, fixed on the tensor that feeds them: outside, the output
# is within half an output step of its limit (1 - tanh(4) = 6.7e-4 < 1/256; sigmoid(-8) =
# 3.4e-4 < 1/512), so nothing beyond is worth a level. A measured range wastes the 8 bits:
# ESPCN's first conv spans [-313, 17] on T91, a step of 1.3 where tanh changes within +-3;
# its PTQ fell to 17 dB on Set5.
ACTIVATION_INPUT_RANGES = {"tanh": (-4.0, 4.0), "sigmoid": (-8.0, 8.0)}
INHERITED = "inherited"  # no range of its own: the consumer's range is this tensor's


def quantize_scope():
    """Context manager for loading or cloning QAT models (tfmot + our configs + our layers)."""
    from mai_sr.models import custom_objects

    return tfmot.quantization.keras.quantize_scope({**CUSTOM_OBJECTS, **custom_objects(),
                                                   "QuantizeLayer": QuantizeLayer})


def _clip_bounds(layer) -> tuple[float, float]:
    """[min_value, max_value] of a ClipByValue, [0, max_value] of a ReLU with max_value."""
    config = layer.get_config()
    return float(config.get("min_value", 0.0)), float(config["max_value"])


def _role(layer) -> str:
    name = type(layer).__name__
    role = LAYER_ROLES.get(name)
    if role == "activation" and layer.get_config().get("max_value") is not None:
        return "clip"
    if role == "fixed_activation" and layer.get_config().get("activation") \
            not in FIXED_ACTIVATION_RANGES:
        role = None
    if role is None:
        raise MaiSrError(f"quantize_model: layer {layer.name!r} ({name}) has no QuantizeConfig; "
                         f"supported layer classes: {', '.join(sorted(LAYER_ROLES))}")
    return role


def _graph(model) -> tuple[list, dict[str, list[str]], dict[str, list[str]]]:
    """Layers in topological order, and name -> producer names / consumer names."""
    producers: dict[str, list[str]] = {}
    consumers: dict[str, list[str]] = {layer.name: [] for layer in model.layers}
    for spec in model.get_config()["layers"]:
        names = []
        for node in spec["inbound_nodes"]:
            names += [entry[0] for entry in node] if isinstance(node, list) else []
        producers[spec["config"]["name"]] = names
        for name in names:
            consumers[name].append(spec["config"]["name"])
    return model.layers, producers, consumers


def pixel_clip_gain(layer) -> float | None:
    """The gain a > 0 when `layer` is a 1x1 ReLU conv computing ReLU(255 - a x) channel by
    channel (each output reads one input with weight -a, no input is read twice, bias 255),
    else None: ETDS's second clip by ReLUs (Chao et al., "Equivalent Transformation and Dual
    Stream Network Construction for Mobile Image Super-Resolution", CVPR 2023; its outputs
    in depth-to-space order), fixed and never trained. a is 1 in the published form on
    [0, 255] pixels, 255 in a deploy graph collapsed from mai-sr's training graph, whose
    hidden tensors are on the [0, 1] scale.

    A tensor read only by such a conv takes the fixed range [0, 255 / a] in
    :func:`plan_quantization`: it is (255 - y) / a for the output y, so a value above 255 / a
    stands for y < 0, which the clip sends to 0 anyway, and saturating it there changes
    nothing. Its step is then 1 / a, one grey level after the clip, and the clip's -a
    weights are exact on the int8 grid, so both roundings land on whole grey levels, as the
    float model's final one does; a calibrated range ([0, 277] for ETDS-L) rounded y on two
    grids, 0.012 dB on Set5 for ETDS-L's image-path layout option (PTQ)."""
    if type(layer) is not keras.layers.Conv2D or tuple(layer.kernel_size) != (1, 1) or \
            layer.activation is not keras.activations.relu or not layer.use_bias:
        return None
    kernel, bias = (np.asarray(w)[0, 0] if w.shape.rank == 4 else np.asarray(w)
                    for w in layer.weights)
    gain = -float(kernel.min())
    reads = kernel == -gain
    if not (gain > 0 and np.all(reads | (kernel == 0.0)) and np.all(reads.sum(0) == 1)
            and np.all(reads.sum(1) <= 1) and np.all(bias == PIXEL_RANGE[1])):
        return None
    return gain


def is_pixel_clip(layer) -> bool:
    """Whether `layer` is ETDS's clip ReLU(255 - a x) (:func:`pixel_clip_gain`)."""
    return pixel_clip_gain(layer) is not None


def plan_quantization(model) -> dict[str, object]:
    """Layer name -> the QuantizeConfig `quantize_model` gives it (input layers excluded).

    Exposed so tests and docs can see the whole plan for a model without applying it.
    """
    layers, producers, consumers = _graph(model)
    roles = {layer.name: _role(layer) for layer in layers}
    layer_by_name = {layer.name: layer for layer in layers}
    fixed: dict[str, tuple[float, float] | None] = {}  # tensors whose range is known a priori
    for layer in layers:  # model.layers is topologically sorted
        role = roles[layer.name]
        known = [fixed[p] for p in producers[layer.name] if fixed.get(p) is not None]
        if role == "input":
            fixed[layer.name] = PIXEL_RANGE
        elif role == "clip":
            fixed[layer.name] = _clip_bounds(layer)
        elif role == "fixed_activation":
            fixed[layer.name] = FIXED_ACTIVATION_RANGES[layer.get_config()["activation"]]
        elif role == "to_pixels":
            fixed[layer.name] = PIXEL_RANGE
        elif role in ("anchor", "move") and known:
            fixed[layer.name] = known[0]
        elif role == "concat" and known:
            fixed[layer.name] = (min(r[0] for r in known), max(r[1] for r in known))
        else:
            fixed[layer.name] = None

    def from_consumers(name: str):
        """What the consumers impose on a layer's output range, if they all agree:

        INHERITED for a ReLU layer (TFLite fuses it into the producer) or a concat with a
        learned range (the converter gives a concat's inputs the concat's scale); the fixed
        range of a clip or concat, which the producer must carry itself (the converter does
        not pass a clip's range back: a range-less ADD before the clip stayed in float);
        else None (a range of its own). The model's output (no consumers) is the image:
        the fixed pixel range, so a net that bounds its output itself (ETDS's clip by
        ReLUs) still ends in whole pixels."""
        if not consumers[name]:
            return PIXEL_RANGE
        wanted = set()
        for c in consumers[name]:
            if roles[c] == "activation" or (roles[c] == "concat" and fixed[c] is None):
                wanted.add(INHERITED)
            elif roles[c] == "move":
                wanted.add(from_consumers(c))
            elif roles[c] == "fixed_activation":
                wanted.add(ACTIVATION_INPUT_RANGES[layer_by_name[c].get_config()["activation"]])
            elif roles[c] in ("clip", "concat"):
                wanted.add(fixed[c])
            elif len(consumers[name]) == 1 and \
                    (gain := pixel_clip_gain(layer_by_name[c])) is not None:
                wanted.add((0.0, PIXEL_RANGE[1] / gain))
            else:
                wanted.add(None)
        return wanted.pop() if len(wanted) == 1 else None

    def feeds_activation(name: str):
        """"tanh" or "sigmoid" when a fixed-output activation is the one consumer."""
        if len(consumers[name]) == 1 and roles[consumers[name][0]] == "fixed_activation":
            return layer_by_name[consumers[name][0]].get_config()["activation"]
        return None

    plan = {}
    for layer in layers:
        role, name = roles[layer.name], layer.name
        if role == "input":
            continue
        wanted = from_consumers(name)
        if role in ("anchor", "clip", "concat", "fixed_activation", "to_pixels"):
            plan[name] = OutputQuantizeConfig(fixed[name])
        elif role == "move":
            plan[name] = PassThroughQuantizeConfig()
        elif role in ("conv", "deconv"):
            plan[name] = ConvQuantizeConfig(quantize_output=wanted is not INHERITED,
                                            output_range=None if wanted is INHERITED else wanted,
                                            per_channel=role == "conv",
                                            activation_input=feeds_activation(name))
        elif role == "prelu":
            plan[name] = PReLUQuantizeConfig(None if wanted is INHERITED else wanted)
        elif wanted is INHERITED:
            plan[name] = PassThroughQuantizeConfig()
        else:
            plan[name] = OutputQuantizeConfig(wanted)
    return plan


def equalize_fixed_ranges(deploy_model, batches: Iterable) -> keras.Model:
    """A copy of `deploy_model` in which each ReLU conv feeding a fixed-range concat is
    rescaled so its output peaks at the top of that range; the same function in float.

    SCSRN concatenates the image with its last feature map, so the features share the
    image's fixed [0, 255] range (scale 1). Measured on SCSRN after 1200 FP32 steps: the
    features peaked at 13.5 (mean 0.26), so rounding them to whole numbers cost 0.15 dB,
    and the next conv compensated with feature weights up to 7.5, which set its per-channel
    weight step (max|w|/127) 7.5x coarser than the image weights (near 1) need: -0.57 dB.
    ReLU(a * conv(x)) = a * ReLU(conv(x)) for a > 0, so scaling that conv's kernel and bias
    by a = 255 / max (max over `batches`, float LR images in [0, 255]) and the consuming
    conv's kernel rows for those channels by 1 / a leaves the float model unchanged, fills
    the range, and shrinks those weights below the image weights. (Features that overflow
    255, seen after a very short run, are scaled down the same way instead of clipped.)
    PTQ of that SCSRN lost 0.70 dB without this and 0.11 dB with it.
    """
    model = keras.models.clone_model(deploy_model)
    model.set_weights(deploy_model.get_weights())
    plan = plan_quantization(model)
    _, producers, consumers = _graph(model)
    batches = list(batches)
    for name, config in plan.items():
        layer = model.get_layer(name)
        hi = getattr(config, "output_range", None)
        outs = consumers[name]
        if not (isinstance(config, ConvQuantizeConfig) and hi is not None and
                layer.activation is keras.activations.relu and len(outs) == 1 and
                _role(model.get_layer(outs[0])) == "concat"):
            continue
        concat = outs[0]
        after = [model.get_layer(c) for c in consumers[concat]]
        if not after or not all(_role(c) == "conv" and c.trainable for c in after):
            continue
        probe = keras.Model(model.inputs, layer.output)
        peak = max(float(probe(b, training=False).numpy().max()) for b in batches)
        if peak <= 0:
            continue
        gain = hi[1] / peak
        kernel, bias = layer.get_weights()
        layer.set_weights([kernel * gain, bias * gain])
        start = sum(model.get_layer(p).output.shape[-1]
                    for p in producers[concat][:producers[concat].index(name)])
        for conv in after:
            weights = conv.get_weights()
            weights[0] = weights[0].copy()
            weights[0][:, :, start:start + layer.filters, :] /= gain
            conv.set_weights(weights)
    return model


class _FixedInputQuantize(transforms.Transform):
    """InputLayer -> InputLayer + QuantizeLayer with the fixed pixel range [0, 255]."""

    def pattern(self):
        return transforms.LayerPattern("InputLayer")

    def replacement(self, match_layer):
        quant = QuantizeLayer(fixed_quantizer(PIXEL_RANGE))
        config = tfmot_utils.serialize_layer(quant, use_legacy_format=True)
        config["name"] = quant.name
        return transforms.LayerNode(config, input_layers=[match_layer])

    def custom_objects(self):
        return {"QuantizeLayer": QuantizeLayer, "FixedQuantizer": type(fixed_quantizer(PIXEL_RANGE))}


class _Layout(tfmot.quantization.keras.QuantizeLayoutTransform):
    def apply(self, model, layer_quantize_map):
        return model_transformer.ModelTransformer(
            model, [_FixedInputQuantize()], set(layer_quantize_map), layer_quantize_map).transform()


class PixelRangeScheme(tfmot.quantization.keras.QuantizeScheme):
    """tfmot scheme: our layout (fixed input range) + the default registry (unused: every
    layer is annotated with an explicit config)."""

    def get_layout_transformer(self):
        return _Layout()

    def get_quantize_registry(self):
        return tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry()


def quantize_model(deploy_model, calibration: Iterable | None = None, *,
                   ranges: dict | None = None) -> keras.Model:
    """QAT model of a deploy graph: fake-quant ops where the INT8 TFLite tensors have ranges.

    The weights are copied from `deploy_model` (which is left untouched). Layers are wrapped
    as `quant_<name>`; see :func:`plan_quantization` for what each one gets. With
    `calibration` (float LR batches in [0, 255], e.g. a few dozen training crops), features
    feeding a fixed-range concat are first rescaled to fill that range
    (:func:`equalize_fixed_ranges`, SCSRN), the channels of every ReLU or PReLU link are
    oriented and scaled to fill their tensors' ranges, copies of a channel are offset onto
    interleaved grids (:func:`~mai_sr.models.qat.equalize.dither_copies`; before tanh and
    sigmoid, :func:`dither_activation_copies`) and the biases
    absorb the mean error of the INT8 weights (:mod:`mai_sr.models.qat.equalize`; rewrites of
    the weights, exact in float but for the copies' offsets, the graph is unchanged), and the
    activation ranges start from the data (:func:`calibrate`);
    pass it whenever data is at hand. `ranges` (:func:`activation_ranges` of a QAT model of
    this graph, e.g. a shipped ``NAME.qat.json``) are set instead, with no data: the QAT
    model those weights were saved from. Raises MaiSrError for a layer class without a
    QuantizeConfig, or for ranges of another graph.
    """
    if calibration is not None:
        from mai_sr.models.qat.equalize import (correct_biases, dither_copies,
                                                equalize_channels)
        from mai_sr.models.qat.gptq import round_conv_weights

        calibration = list(calibration)
        deploy_model = equalize_fixed_ranges(deploy_model, calibration)
        deploy_model = equalize_channels(deploy_model, calibration)
        dither_copies(deploy_model, calibration)
        dither_activation_copies(deploy_model, calibration)
        round_conv_weights(deploy_model, calibration)
        # Also over the rounded layers, where it changes next to nothing (their weights sit
        # on the grid): skipping them there made the converter write the bias of ETDS-T's
        # clip conv up to 11.6 grey levels off the fake-quant model's in the INT8 file
        # (measured; why, not found); with it every bias matches to 0.06.
        correct_biases(deploy_model, calibration)
    plan = plan_quantization(deploy_model)

    def annotate(layer):
        return tfmot.quantization.keras.quantize_annotate_layer(layer, plan[layer.name])

    with quantize_scope():
        annotated = keras.models.clone_model(deploy_model, clone_function=annotate)
        annotated.set_weights(deploy_model.get_weights())
        quantized = tfmot.quantization.keras.quantize_apply(annotated, scheme=PixelRangeScheme())
    if calibration is not None:
        calibrate(quantized, calibration)
        fit_activation_inputs(quantized, deploy_model, calibration, plan=plan)
    if ranges is not None:
        set_activation_ranges(quantized, ranges)
    return quantized


def range_variables(qat_model) -> dict[str, tuple]:
    """Moving-average range variables by quantizer: prefix -> (min, max, seen)."""
    by_name = {v.name.split(":")[0]: v for v in qat_model.weights}
    return {name[:-len("_seen")]: (by_name[name[:-len("_seen")] + "_min"],
                                   by_name[name[:-len("_seen")] + "_max"], var)
            for name, var in by_name.items() if name.endswith("_seen")}


def calibrate(qat_model, batches: Iterable) -> int:
    """Set every moving-average activation range to the min/max over `batches`.

    This is post-training calibration in the fake-quant graph: no weight changes, each
    range becomes [min, max] of its tensor over all batches of LR images (float, [0, 255]),
    the statistic TFLite's own calibrator uses. The fixed ranges (input, anchor, clip) stay.
    Used for PTQ export, and optionally before a short QAT run. Returns the batch count.
    """
    ranges = range_variables(qat_model)
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    n = 0
    for batch in tqdm(batches, desc="calibrating", unit="batch", leave=False, disable=None):
        for _, _, seen in ranges.values():
            seen.assign(0.0)  # the next training-mode call takes this batch's range as is
        qat_model(batch, training=True)
        for key, (lo, hi, _) in ranges.items():
            lows[key] = min(lows.get(key, 0.0), float(lo.numpy()))
            highs[key] = max(highs.get(key, 0.0), float(hi.numpy()))
        n += 1
    for key, (lo, hi, _) in ranges.items():
        if key in lows:
            lo.assign(lows[key])
            hi.assign(highs[key])
    return n


# Ranges [-a, a] tried for a tensor feeding tanh or sigmoid (a from 0.5 to 16).
ACTIVATION_INPUT_BOUNDS = tuple(float(v) for v in np.round(2.0 ** np.arange(-1, 4.01, 1 / 8), 4))
_FIT_SAMPLES = 200_000  # values per tensor the fit measures its error on


def _int8_activation(name: str, x: np.ndarray) -> np.ndarray:
    """tanh or sigmoid of `x`, rounded to the int8 output grid TFLite fixes for it."""
    if name == "tanh":
        return np.clip(np.round(np.tanh(x) * 128), -128, 127) / 128
    return np.clip(np.round(256 / (1 + np.exp(-x))), 0, 255) / 256


def _fake_quant(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """x on the 8-bit grid of [lo, hi] (uniform, 255 steps, zero point rounded)."""
    step = (hi - lo) / 255
    zero = np.round(-lo / step)
    return (np.clip(np.round(x / step) + zero, 0, 255) - zero) * step


def fit_activation_inputs(qat_model, deploy_model, batches: Iterable, *,
                          plan: dict | None = None) -> dict[str, list]:
    """Set the range of every tensor feeding tanh or sigmoid
    (:class:`~mai_sr.qat.configs.ActivationInputQuantizer`) to the [-a, a] of
    :data:`ACTIVATION_INPUT_BOUNDS` that minimises the mean squared error of the
    activation's int8 output (input rounded to the range, output to TFLite's fixed grid)
    against the float activation, over the values `deploy_model` (the float model
    `qat_model` quantizes) gives on `batches`. Returns layer name -> range.

    Measured on the held-out split of T91 + BSD200 with ESPCN x3 (DIV2K): the fixed [-4, 4]
    lost 0.34 dB against FP32, [-3, 3] 0.25 dB and [-6, 6] 0.58 dB; the best range depends
    on the layer and the weights, hence a fit per tensor. `plan`: the model's
    :func:`plan_quantization`, when the caller has it.
    """
    plan = plan_quantization(deploy_model) if plan is None else plan
    variables = range_variables(qat_model)
    fitted = {}
    for name, bound in _fitted_bounds(deploy_model, batches, plan).items():
        lo, hi, _ = variables[f"quant_{name}/post_activation"]
        lo.assign(-bound)
        hi.assign(bound)
        fitted[name] = [-bound, bound]
    return fitted


def _fitted_bounds(deploy_model, batches: Iterable, plan: dict) -> dict[str, float]:
    """Layer name -> the bound a of :func:`fit_activation_inputs`, for every layer of
    `deploy_model` whose output feeds tanh or sigmoid, fitted on its values over `batches`
    (a fixed sample of them: the same bound on every call)."""
    batches = list(batches)
    rng = np.random.default_rng(0)
    bounds = {}
    for name, config in plan.items():
        activation = getattr(config, "activation_input", None)
        if activation is None:
            continue
        probe = keras.Model(deploy_model.inputs, deploy_model.get_layer(name).output)
        per_batch = max(1, _FIT_SAMPLES // len(batches))
        values = []
        for batch in batches:
            found = np.asarray(probe(batch, training=False)).reshape(-1)
            values.append(rng.choice(found, per_batch, replace=False)
                          if found.size > per_batch else found)
        values = np.concatenate(values).astype(np.float64)
        exact = np.tanh(values) if activation == "tanh" else 1 / (1 + np.exp(-values))
        errors = [np.mean((_int8_activation(activation, _fake_quant(values, -a, a)) - exact)
                          ** 2) for a in ACTIVATION_INPUT_BOUNDS]
        bounds[name] = ACTIVATION_INPUT_BOUNDS[int(np.argmin(errors))]
    return bounds


def dither_activation_copies(deploy_model, batches: Iterable) -> int:
    """Offset the k copies of every channel a conv writes for tanh or sigmoid (ESPCN's
    ``tanh_copies`` layout option) to centred fractions of its input's int8 step,
    (j + 1/2) / k - 1/2 for j = 0..k-1, in place; returns how many channels moved.

    The step is 2a / 255 for the bound a that :func:`fit_activation_inputs` fits on
    `batches`. The consumer reads the k activations' mean; rounded on grids 1/k of a step
    apart, that mean reads the input on a grid k times finer (as the ReLU copies of
    :func:`~mai_sr.models.qat.equalize.dither_copies`), and the output, on TFLite's fixed
    grid, is dithered alike. tanh is not linear, so the offsets cannot be taken back out of
    the consumer's bias; centred, they cancel to first order, and in float the network moves
    by at most max|f''| / 2 times their mean square (tanh: 0.385 times): 2.4e-5 for k = 2
    and a = 4, 3.8e-4 at the widest bound a = 16.
    """
    from mai_sr.models.qat.equalize import _copy_groups

    plan = plan_quantization(deploy_model)
    copies = {name: _copy_groups(*deploy_model.get_layer(name).get_weights())
              for name, config in plan.items() if getattr(config, "activation_input", None)}
    if not any(copies.values()):
        return 0  # no copies (every published layout): nothing to fit the steps for
    moved = 0
    for name, bound in _fitted_bounds(deploy_model, batches, plan).items():
        groups = copies[name]
        if not groups:
            continue
        layer = deploy_model.get_layer(name)
        kernel, bias = layer.get_weights()
        step = 2.0 * bound / 255.0
        bias = bias.astype(np.float64)
        for group in groups:
            for j, c in enumerate(group):
                bias[c] += step * ((j + 0.5) / len(group) - 0.5)
            moved += len(group)
        layer.set_weights([kernel, bias.astype(kernel.dtype)])
    return moved


def activation_ranges(qat_model) -> dict[str, list[float]]:
    """The learned activation ranges of a QAT model: quantizer prefix -> [min, max].

    With the deploy-graph weights these are all a QAT model holds (the fixed input, anchor and
    clip ranges are constants of the graph), so the pair rebuilds it exactly:
    ``quantize_model(deploy, ranges=...)``.
    """
    return {key: [float(lo.numpy()), float(hi.numpy())]
            for key, (lo, hi, _) in sorted(range_variables(qat_model).items())}


def set_activation_ranges(qat_model, ranges: dict) -> None:
    """Give a fresh ``quantize_model(deploy)`` the ranges of :func:`activation_ranges`.

    Raises MaiSrError when the quantizers differ (ranges of another architecture)."""
    variables = range_variables(qat_model)
    if set(ranges) != set(variables):
        missing = sorted(set(variables) - set(ranges)) or sorted(set(ranges) - set(variables))
        raise MaiSrError(f"activation ranges do not fit this model (e.g. {missing[0]!r})")
    for key, (lo, hi, seen) in variables.items():
        lo.assign(float(ranges[key][0]))
        hi.assign(float(ranges[key][1]))
        seen.assign(1.0)  # "initialised": a later training step moves the range, not resets it


def deploy_from_qat(qat_model, deploy_model, *, as_computed: bool = False) -> None:
    """Copy a QAT model's float kernels and biases into `deploy_model` (same architecture).

    QAT trains the float weights behind the fake-quant ops; a plain deploy model holding them
    plus :func:`activation_ranges` is the whole QAT model, in half the size of its h5 file.
    `as_computed`: every quantized weight (kernels, PReLU slopes) as the fake-quant ops
    compute with it, on its int8 grid, instead of the float value behind it. The INT8 file
    is the same either way (the weight quantizers keep a weight on its grid where it is),
    but only these make a float model of the INT8 network: QAT leaves the float weights
    anywhere within half a step of the grid, and a network trained that way relies on the
    grid (ETDS-T's float weights after QAT score 19.7 dB on Set5, on their grid 31.1).
    """
    # By variable name: a QAT wrapper's inner layer no longer lists its kernel (the wrapper
    # swapped in the fake-quantized tensor), but the variables keep the layer's names.
    by_name = {v.name.split(":")[0]: v for v in qat_model.weights}
    misfits = [v.name for v in deploy_model.weights
               if v.shape != getattr(by_name.get(v.name.split(":")[0]), "shape", None)]
    if misfits:
        raise MaiSrError(f"QAT model has no variable {misfits[0]} of that shape "
                         "(another architecture?)")
    computed = _computed_weights(qat_model) if as_computed else {}
    for variable in deploy_model.weights:
        name = variable.name.split(":")[0]
        variable.assign(computed[name] if name in computed else by_name[name].numpy())


def _computed_weights(qat_model) -> dict:
    """{variable name: its value through its weight quantizer} for every quantized weight of
    the QAT model (tfmot's wrappers list them as (weight, quantizer, its variables))."""
    found = {}
    for layer in qat_model.layers:
        for weight, quantizer, quantizer_vars in getattr(layer, "_weight_vars", ()):
            found[weight.name.split(":")[0]] = np.asarray(quantizer(weight, False,
                                                                    quantizer_vars))
    return found
