"""Latency ESTIMATES of a TFLite graph on phone accelerators, from fitted device profiles.

Not a measurement: nothing here runs on a phone. The idea is the SyNAP VS680 simulator's
(:mod:`mai_sr.device.synap`): group the graph's ops into the layers an accelerator runs,
price each layer's work with a few per-device coefficients, and add the ops the device's
runtime leaves to the CPU. The device facts are data (:mod:`mai_sr.device.profiles`); the
coefficients were fitted by ``benchmarks/phone_estimates.py`` on the INT8 latencies of the
zoo in Table 2 of J. Chao et al., "Equivalent Transformation and Dual Stream Network
Construction for Mobile Image Super-Resolution", CVPR 2023, with each architecture's
estimates validated by a fit made without it.

Layers
------
* an input QUANTIZE (uint8 -> int8) is folded into the graph input, a requantizing QUANTIZE
  or DEQUANTIZE into the op that produces its input;
* an activation in the profile's ``fused_activations`` (RELU, a clip against constants...)
  right after a convolution whose output it alone reads is fused into it; with the
  profile's ``fuse_any`` (a GPU's elementwise fusion), any chain of them joins whatever op
  produced its input (an ADD, a convolution...). A two-input op fuses only with a constant
  operand (a clip bound, a scale);
* a CONCATENATION read only by convolutions is folded into them (conv(concat(a, b)) =
  conv_a(a) + conv_b(b)); any other concat is a copy made operand by operand;
* every other op is a layer of its own, on the accelerator, or on the CPU when the profile
  has a placement rule for it (a measured fallback) or the runtime has no such op
  (:data:`mai_sr.tflite.ops.NNAPI_OPS`).

Features (per accelerator layer; the estimate is their sum times the profile's coefficients)
-------------------------------------------------------------------------------------------
* ``gmac``: multiply-accumulates, input channels padded to the profile's ``lanes`` and
  output channels to its ``output_lanes`` (default ``lanes``), in G;
* ``conv_mb``: activation and weight bytes a convolution reads and writes, in MB;
* ``act_mb``: bytes an elementwise op with one activation input reads and writes (tanh,
  sigmoid, an unfused clip, PReLU...);
* ``merge_mb``: bytes of ops that combine activation tensors (ADD, concat copies...); a
  concat reads its input once per operand;
* ``move_mb``: bytes of data movement (depth-to-space...);
* ``io_mb``: the graph's input and output, in MB (copied in and out of the runtime);
* ``layers``: one per accelerator layer (dispatch and synchronisation);
* ``fixed``: one per inference.

Activation bytes count each tensor's channels padded to the profile's ``storage_lanes``
(default 1, no padding): a GPU keeps tensors in 4-channel texels, so a 3-channel tensor
moves as many bytes as a 4-channel one.

A profile may make features share one coefficient (``shared_coefficients``: a name -> the
features priced alike, e.g. every byte of a memory-bound elementwise pass on a GPU): the fit
then prices their sum (:func:`mai_sr.device.profile_fit.tie_matrix`) and the profile file
holds the same coefficient under each of them, so pricing here needs nothing special.

CPU layers are priced with the profile's ``cpu`` figures (MACs and elements per second,
and one accelerator <-> CPU hand-over each way), which are stated in the profile with their
source, not fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mai_sr import __version__
from mai_sr.challenge import graph_timing_input
from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult
from mai_sr.tflite.graph import DTYPE_BYTES, ELEMENTWISE_OPS, Op, TFLiteGraph, read_graph
from mai_sr.tflite.ops import NNAPI_OPS

FEATURES = ("gmac", "conv_mb", "act_mb", "merge_mb", "move_mb", "io_mb", "layers", "fixed")
CONV_TYPES = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"})
# Ops that combine several activation tensors (an anchor's copies and its ADD); the other
# elementwise ops with one activation input are "act", the rest data movement ("move").
MERGE_TYPES = frozenset({"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "CONCATENATION",
                         "SQUARED_DIFFERENCE", "ADD_N", "PACK"})
SHAPE_OUTPUT = frozenset({"int32", "int64"})
# constant-bound MINIMUM/MAXIMUM count as clips (see _fusable)
CLIP_BOUND_OPS = frozenset({"MINIMUM", "MAXIMUM"})


@dataclass(frozen=True)
class PricedLayer:
    """One layer: its ops (head first), where it runs, its features and estimated ms."""

    name: str
    ops: tuple[str, ...]
    unit: str                       # the profile's accelerator unit name, or "CPU"
    features: tuple[float, ...]     # FEATURES order; zeros on the CPU
    macs: int = 0
    cpu_ms: float = 0.0
    reason: str = ""                # why the layer is on the CPU
    ms: float = 0.0

    def row(self) -> dict[str, Any]:
        """The BenchResult `layers` entry."""
        return {"name": self.name, "op": "+".join(self.ops), "unit": self.unit,
                "ms": round(self.ms, 4), "macs": self.macs,
                **{f: round(v, 6) for f, v in zip(FEATURES, self.features)}}


@dataclass
class Estimate:
    """The estimate of one graph on one profile."""

    model: Path
    profile: Any                    # mai_sr.device.profiles.Profile
    input_shape: tuple[int, ...]
    layers: list[PricedLayer]

    @property
    def total_ms(self) -> float:
        return sum(layer.ms for layer in self.layers)

    def feature_totals(self) -> tuple[float, ...]:
        return tuple(sum(layer.features[i] for layer in self.layers)
                     for i in range(len(FEATURES)))


def _is_constant_bound(graph: TFLiteGraph, op: Op) -> bool:
    return sum(not t.is_constant for t in graph.op_inputs(op)) == 1


def _fusable(graph: TFLiteGraph, op: Op, fused: frozenset[str]) -> bool:
    if op.type not in fused:
        return False
    # a two-input op fuses only with a constant operand (a clip bound, a scale)
    return op.type not in CLIP_BOUND_OPS | MERGE_TYPES or _is_constant_bound(graph, op)


def group_layers(graph: TFLiteGraph, fused: frozenset[str], fuse_any: bool = False
                 ) -> tuple[list[list[Op]], dict[int, tuple[int, ...]]]:
    """Ops -> layers (head first) and folded tensors -> the tensors they stand for.
    `fuse_any`: a chain of fusable ops joins the layer of whatever produced its input (a
    GPU's elementwise fusion), not only one activation after a convolution."""
    alias: dict[int, tuple[int, ...]] = {}
    layer_of: dict[int, int] = {}
    groups: list[list[Op]] = []
    for op in graph.ops:
        ins = [i for i in op.inputs if i >= 0 and not graph.tensors[i].is_constant]
        readers = graph.consumers.get(op.outputs[0], []) if op.outputs else []
        if op.type == "QUANTIZE" and ins and ins[0] in graph.inputs:
            alias[op.outputs[0]] = (ins[0],)
            continue
        producer = graph.producers.get(ins[0]) if len(ins) == 1 else None
        if producer is not None and producer.index in layer_of \
                and len(graph.consumers.get(ins[0], [])) == 1:
            group = groups[layer_of[producer.index]]
            if op.type in ("QUANTIZE", "DEQUANTIZE") or (fuse_any and _fusable(
                    graph, op, fused)) or (
                    group[0].type in CONV_TYPES and len(group) == 1 + sum(
                        o.type in ("QUANTIZE",) for o in group[1:])
                    and _fusable(graph, op, fused)):
                layer_of[op.index] = layer_of[producer.index]
                group.append(op)
                continue
        if op.type == "CONCATENATION" and readers and op.outputs[0] not in graph.outputs \
                and all(r.type == "CONV_2D" for r in readers):
            alias[op.outputs[0]] = tuple(ins)
            continue
        layer_of[op.index] = len(groups)
        groups.append([op])
    return groups, alias


def _pad(c: int, lanes: int) -> int:
    return -(-c // lanes) * lanes


def conv_macs(graph: TFLiteGraph, op: Op, shapes, lanes: int,
              output_lanes: int | None = None) -> int:
    """MACs of a convolution with input channels padded to `lanes` and output channels to
    `output_lanes` (default `lanes`; a GPU kernel computes a block of output channels per
    thread, see the QNN GPU profile's ``output_lanes_why``). A transposed convolution counts
    each input pixel's kernel once, as its scatter form computes it."""
    out_lanes = output_lanes or lanes
    w = graph.tensors[op.inputs[1]].shape  # [out, kh, kw, in] ([1, kh, kw, out] depthwise)
    out = shapes[op.outputs[0]]
    if op.type == "DEPTHWISE_CONV_2D":
        return out[1] * out[2] * w[1] * w[2] * _pad(w[3], out_lanes)
    pixels = (math.prod(shapes[op.inputs[2]][1:3]) if op.type == "TRANSPOSE_CONV"
              else out[1] * out[2])
    return pixels * w[1] * w[2] * _pad(w[3], lanes) * _pad(w[0], out_lanes)


def _kind(graph: TFLiteGraph, op: Op) -> str:
    """Which traffic feature a layer headed by `op` counts in: conv, act, merge or move."""
    if op.type in CONV_TYPES:
        return "conv"
    activations = [t for t in graph.op_inputs(op) if not t.is_constant]
    if op.type in MERGE_TYPES and len(activations) > 1:
        return "merge"
    if op.type in ELEMENTWISE_OPS:
        return "act"
    return "move"


def _cpu_reason(graph: TFLiteGraph, op: Op, profile) -> str:
    """Why `op` runs on the CPU under `profile` ("" when it runs on the accelerator)."""
    rule = profile.rule_for(op, graph)
    if rule is not None and rule.unit == "CPU":
        return rule.reason(profile.source)
    if op.type not in NNAPI_OPS:
        return f"{op.type} has no {profile.runtime or 'accelerator'} kernel (CPU fallback)"
    outs = graph.op_outputs(op)
    if outs and all(t.dtype in ("int32", "int64") for t in outs):
        return f"{op.type} computes int32 shape data (CPU)"
    return ""


def price_graph(graph: TFLiteGraph, profile, input_hw: tuple[int, int] | None = None
                ) -> list[PricedLayer]:
    """Group `graph` into layers and price each with `profile` (see module docstring).

    Coefficients default to zero when the profile is not fitted (features are still
    computed: the fitting script needs them)."""
    if input_hw is None and graph.is_dynamic:
        input_hw = graph_timing_input(graph)
    spec = profile.data
    lanes = int(spec.get("lanes", 1))
    output_lanes = int(spec.get("output_lanes", lanes))
    storage = int(spec.get("storage_lanes", 1))
    fused = frozenset(spec.get("fused_activations", ()))
    unit_name = spec.get("unit", "NPU")
    coef = profile.coefficients or {}
    cpu = spec.get("cpu", {})
    shapes = graph.shapes(input_hw)
    groups, alias = group_layers(graph, fused, bool(spec.get("fuse_any", False)))

    def resolve(i: int) -> tuple[int, ...]:
        return tuple(j for a in alias[i] for j in resolve(a)) if i in alias else (i,)

    def mb(i: int, padded: bool = True) -> float:
        shape = list(shapes[i])
        if padded and len(shape) == 4:  # an activation as the device stores it
            shape[-1] = _pad(shape[-1], storage)
        return math.prod(shape) * DTYPE_BYTES.get(graph.tensors[i].dtype, 1) / 1e6

    layers = []
    for ops in groups:
        head = ops[0]
        inside = {o for op in ops for o in op.outputs}
        operands = [j for op in ops for i in op.inputs
                    if i >= 0 and not graph.tensors[i].is_constant for j in resolve(i)
                    if j not in inside]
        outs = [o for o in ops[-1].outputs if o >= 0]
        reads = operands if head.type == "CONCATENATION" else list(dict.fromkeys(operands))
        weights_mb = sum(graph.tensors[i].data_bytes for op in ops for i in op.inputs
                         if i >= 0 and graph.tensors[i].is_constant) / 1e6
        traffic = sum(mb(t) for t in reads + outs)
        macs = (conv_macs(graph, head, shapes, lanes, output_lanes)
                if head.type in CONV_TYPES else 0)
        name = graph.tensors[outs[0]].name if outs else head.type
        reason = _cpu_reason(graph, head, profile)
        if reason:
            # shape bookkeeping reads only its inputs' dimensions, not their data
            shape_only = all(graph.tensors[t].dtype in SHAPE_OUTPUT for t in outs)
            elements = sum(math.prod(shapes[t]) for t in (outs if shape_only else reads + outs))
            # the CPU pads nothing: its MACs are the op's own
            cpu_macs = conv_macs(graph, head, shapes, 1) if head.type in CONV_TYPES else 0
            cpu_ms = (cpu_macs / cpu.get("macs_per_s", 1e9) + elements / cpu.get(
                "elements_per_s", 2e8)) * 1e3 + 2 * cpu.get("sync_ms", 1.0)
            layers.append(PricedLayer(name=name, ops=tuple(op.type for op in ops), unit="CPU",
                                      features=(0.0,) * len(FEATURES), macs=macs,
                                      cpu_ms=cpu_ms, reason=reason, ms=cpu_ms))
            continue
        kind = _kind(graph, head)
        feats = (macs / 1e9, *(traffic + weights_mb if kind == k else 0.0
                               for k in ("conv", "act", "merge", "move")), 0.0, 1.0, 0.0)
        layers.append(PricedLayer(name=name, ops=tuple(op.type for op in ops), unit=unit_name,
                                  features=feats, macs=macs))
    # the caller's buffers, as the graph declares them (no device layout)
    io = sum(mb(i, padded=False) for i in graph.inputs) + \
        sum(mb(o, padded=False) for o in graph.outputs)
    layers.append(PricedLayer(name="graph input/output", ops=("IO",), unit=unit_name,
                              features=(0.0,) * 5 + (io, 0.0, 1.0)))
    return [_priced(layer, coef) for layer in layers]


def _priced(layer: PricedLayer, coef: dict[str, float]) -> PricedLayer:
    from dataclasses import replace

    npu = sum(f * coef.get(name, 0.0) for name, f in zip(FEATURES, layer.features))
    return replace(layer, ms=npu + layer.cpu_ms)


def input_shape(graph: TFLiteGraph) -> tuple[int, ...]:
    first = graph.input_tensors[0]
    if graph.is_dynamic:
        return (1, *graph_timing_input(graph), first.shape[-1])
    return (1, *first.shape[1:])


def estimate(model_path, profile, input_hw: tuple[int, int] | None = None) -> Estimate:
    """Estimate `model_path` on `profile` (a Profile or its name). A file with float
    compute, an unfitted profile or a graph that is not one NHWC image input raises
    MaiSrError (one line)."""
    from mai_sr.device.profiles import load_profile

    if isinstance(profile, str):
        profile = load_profile(profile)
    path = Path(model_path)
    graph = read_graph(path)
    if len(graph.inputs) != 1 or len(graph.input_tensors[0].shape) != 4:
        raise MaiSrError(f"{path}: expected one NHWC image input, got "
                         f"{len(graph.inputs)} input(s)")
    if profile.engine == "synap":
        from mai_sr.device.synap import _accepted_plan

        _, plan = _accepted_plan(path)
        layers = [PricedLayer(name=layer.name, ops=layer.ops, unit=layer.unit,
                              features=(), macs=layer.macs, ms=layer.ms)
                  for layer in plan]
        return Estimate(model=path, profile=profile, input_shape=input_shape(graph),
                        layers=layers)
    if not profile.fitted:
        raise MaiSrError(f"device profile {profile.name} is not fitted yet "
                         "(benchmarks/phone_estimates.py fits it)")
    floats = [t.name for t in graph.tensors if t.is_float and not t.is_constant
              and t.index not in graph.inputs and t.index not in graph.outputs]
    if floats:
        raise MaiSrError(f"{path}: tensor '{floats[0]}' is float; the {profile.name} profile "
                         "was fitted on INT8 graphs only")
    if input_hw is None and not graph.is_dynamic:
        input_hw = None
    return Estimate(model=path, profile=profile, input_shape=input_shape(graph),
                    layers=price_graph(graph, profile, input_hw))


def feature_totals(model_path, profile, input_hw=None) -> tuple[float, ...]:
    """Summed FEATURES of a graph under `profile` (what the fit regresses on)."""
    graph = read_graph(model_path)
    layers = price_graph(graph, profile, input_hw)
    return tuple(sum(layer.features[i] for layer in layers) for i in range(len(FEATURES)))


def cpu_ms(model_path, profile, input_hw=None) -> float:
    """Milliseconds of the layers `profile` puts on the CPU (fixed figures, not fitted)."""
    return sum(layer.cpu_ms for layer in price_graph(read_graph(model_path), profile, input_hw))


def place_ops(model_path, profile) -> list[dict]:
    """Where `profile`'s runtime runs each op of `model_path`: rows {"index", "type",
    "output", "unit" ("NPU" for the accelerator, else "CPU"), "reason"} - the reason cites
    the placement rule and the table row it comes from (what ``lint --target`` prints)."""
    from mai_sr.device.profiles import load_profile

    if isinstance(profile, str):
        profile = load_profile(profile)
    graph = read_graph(model_path)
    rows = []
    for op in graph.ops:
        reason = _cpu_reason(graph, op, profile)
        rule = profile.rule_for(op, graph)
        if not reason and rule is not None:  # a rule that keeps the op but says what it costs
            reason = rule.reason(profile.source)
        outs = [graph.tensors[i].name for i in op.outputs if i >= 0]
        rows.append({"index": op.index, "type": op.type, "output": outs[0] if outs else "",
                     "unit": "CPU" if _cpu_reason(graph, op, profile) else "NPU",
                     "reason": reason})
    return rows


# ------------------------------------------------------------------ runner

ALL_DEVICES = "all"


def _notes(profile, est: Estimate) -> list[str]:
    fit = profile.fit or {}
    notes = [f"ESTIMATE, not a measurement: {profile.title} cost model fitted on "
             f"{profile.source} (fit {fit.get('date') or 'not dated'}); "
             f"validation: {profile.validation_text()}",
             f"input {'x'.join(map(str, est.input_shape))}"]
    for layer in est.layers:
        if layer.unit == "CPU":
            notes.append(f"{'+'.join(layer.ops)} {layer.name}: on the CPU, "
                         f"{layer.cpu_ms:.1f} ms: {layer.reason}")
    return notes


def bench_result(model_path, profile, runs: int = 10) -> BenchResult:
    """The estimate of `model_path` on `profile` as a simulated BenchResult (all runs agree,
    so min = median = max = mean and the standard deviation is 0)."""
    est = estimate(model_path, profile)
    total = est.total_ms
    on_cpu = [layer for layer in est.layers if layer.unit == "CPU"]
    graph_ops = [layer for layer in est.layers if layer.ops != ("IO",)]
    npu_ops = sum(len(layer.ops) for layer in graph_ops if layer.unit != "CPU")
    profile = est.profile
    delegate = {"name": f"{profile.runtime} (estimated)", "fully_delegated": not on_cpu,
                "delegated_nodes": npu_ops,
                "total_nodes": npu_ops + sum(len(layer.ops) for layer in on_cpu),
                "timed_on": profile.runtime if not on_cpu else "mixed"}
    return BenchResult(
        runner="sim", model=str(est.model), avg_ms=total,
        device={**profile.summary(), "simulator": f"mai-sr {__version__}",
                "input_shape": "x".join(map(str, est.input_shape))},
        first_ms=total, warmup_avg_ms=total, median_ms=total, min_ms=total, max_ms=total,
        std_ms=0.0, count=runs, delegate=delegate, layers=[layer.row() for layer in est.layers],
        simulated=True, notes=_notes(profile, est))


class SimRunner:
    """`mai-sr bench --runner sim [--device NAME]`: the latency estimate of a fitted device
    profile (:mod:`mai_sr.device.profiles`), one BenchResult per profile with ``--device
    all`` (the default). ``--device vs680-synap`` is the SyNAP simulator's figure."""

    name = "sim"

    def __init__(self, device: str | None = None, min_runs: int | None = None, **_ignored):
        from mai_sr.device.profiles import load_profile, profile_names

        self.device = device or ALL_DEVICES
        names = profile_names() if self.device == ALL_DEVICES else (self.device,)
        self.profiles = [load_profile(n) for n in names]  # an unknown name: one line
        self.runs = min_runs or 10

    @staticmethod
    def cache_inputs() -> dict[str, str]:
        """SHA-256 of every profile file: a report's cached estimates are redone when a
        profile is refitted."""
        from mai_sr.device.profiles import load_profile, profile_names
        from mai_sr.fileio import sha256_file

        return {n: sha256_file(load_profile(n).path) for n in profile_names()}

    @classmethod
    def add_cli_options(cls, group) -> None:
        group.add_argument("--device", metavar="NAME", default=None,
                           help="device profile to estimate for (default: all); "
                                "an unknown name lists the known ones")

    def bench(self, model_path) -> BenchResult | list[BenchResult]:
        if self.device != ALL_DEVICES:
            return bench_result(model_path, self.profiles[0], self.runs)
        results = []
        for profile in self.profiles:
            try:
                results.append(bench_result(model_path, profile, self.runs))
            except MaiSrError as exc:  # one profile refusing the file leaves the others
                results.append(BenchResult(runner=self.name, model=str(model_path),
                                           avg_ms=None, device=profile.summary(),
                                           simulated=True, error=str(exc)))
        return results

    def format_result(self, result: BenchResult) -> str:
        return format_estimate(result)


def format_estimate(result: BenchResult) -> str:
    """A few lines: the estimate, what it was fitted on, its validation, CPU layers."""
    d = result.device or {}
    head = f"{d.get('name', '?')} [{d.get('profile', '?')}]: {result.model}"
    if result.error:
        return f"{head}\n  error: {result.error}"
    lines = [head, f"  ESTIMATED latency: {result.avg_ms:.2f} ms (a fitted cost model, not a "
                   "measurement)"]
    lines += [f"  note: {n}" for n in result.notes]
    slow = sorted((r for r in result.layers if r["ms"] > 0), key=lambda r: -r["ms"])[:8]
    if slow:
        lines.append(f"  {'op':<28} {'unit':<5} {'est ms':>8}  name")
        lines += [f"  {r['op'][:28]:<28} {r['unit']:<5} {r['ms']:>8.3f}  {r['name'][-40:]}"
                  for r in slow]
    return "\n".join(lines)


__all__ = ["ALL_DEVICES", "FEATURES", "Estimate", "PricedLayer", "SimRunner", "bench_result",
           "estimate", "feature_totals", "format_estimate", "group_layers", "price_graph"]
