"""Efficiency profile of a Keras model: params, MACs/FLOPs, activations, convs, memory.

Conventions (per forward pass of one LR image, batch 1):

- **MACs**: multiply-accumulates of the convolutions, kernel weights x output pixels
  (biases, activations, adds and depth-to-space are not counted). **FLOPs = 2 x MACs**.
  The AIM 2020 / NTIRE 2023 efficient-SR reports (seeds 001, 003) print "FLOPs" that are in
  fact MACs: their MSRResNet baseline has 166.36 G "FLOPs" at 256x256, and counting its
  multiply-accumulates gives 166.2 G (checked in tests/test_profile.py). Compare their
  "FLOPs" column with our ``macs``.
- **activations**: number of elements of all conv outputs (seeds 001 and 003: "the number
  of elements of all outputs of convolutional layers"). Convs inside training-graph blocks
  count separately.
- **convs**: number of convolution layers (also the frozen nearest-conv anchor, which runs
  as a CONV_2D).
- **params**: trainable parameters, what papers report; ``frozen_params`` are the others
  (the nearest-conv anchor's 81 fixed weights).
- **peak activation memory**: run the layers in their topological order, keep each tensor
  until its last consumer has run, and take the largest sum of live tensors (inputs still
  needed + the output being written). Bytes at 1 per element (INT8) and 4 (FP32); an
  estimate, since runtimes may fuse ops or reuse buffers in place.
- **INT8 weight bytes**: conv kernels as int8 (1 byte each) + biases as int32 (4 bytes), as
  in a fully-quantized TFLite model; quantization parameters and file overhead excluded.

Computed from the Keras graph's layer shapes, without running or converting the model.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass

from mai_sr._tf import keras
from mai_sr.challenge import CHALLENGE_SCALE
from mai_sr.errors import MaiSrError
from mai_sr.models import create_model
from mai_sr.models.blocks import layer_inputs


@dataclass(frozen=True)
class LayerProfile:
    """One top-level layer: its output shape (no batch), params, MACs and conv outputs."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activations: int
    convs: int


@dataclass(frozen=True)
class Profile:
    """Efficiency figures of one model at one LR input size (see the module docstring)."""

    model: str
    size: tuple[int, int]
    deploy: bool | None
    params: int
    frozen_params: int
    macs: int
    activations: int
    convs: int
    peak_activation_elements: int
    int8_weight_bytes: int
    layers: tuple[LayerProfile, ...] = ()

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def peak_bytes_int8(self) -> int:
        return self.peak_activation_elements

    @property
    def peak_bytes_fp32(self) -> int:
        return 4 * self.peak_activation_elements

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(flops=self.flops, peak_bytes_int8=self.peak_bytes_int8,
                 peak_bytes_fp32=self.peak_bytes_fp32)
        return d


def _elements(shape) -> int:
    return math.prod(int(d) for d in shape[1:])


def _count(weights) -> int:
    return sum(math.prod(w.shape) for w in weights)


def _conv_costs(layer, output_shape) -> tuple[int, int, int, int]:
    """(macs, activations, convs, int8 bytes) of the Conv2D layers in ``layer``.

    Convs nested in a training-graph block run at the block's output resolution (stride 1,
    'same' padding), so the block's output height and width apply to each.
    """
    convs = [m for m in (layer, *layer.submodules) if isinstance(m, keras.layers.Conv2D)]
    pixels = math.prod(int(d) for d in output_shape[1:-1])
    macs = sum(math.prod(conv.kernel.shape) * pixels for conv in convs)
    activations = sum(conv.filters * pixels for conv in convs)
    weight_bytes = sum(math.prod(conv.kernel.shape) + (4 * conv.filters if conv.use_bias else 0)
                       for conv in convs)
    return macs, activations, len(convs), weight_bytes


def _peak_live_elements(model) -> int:
    """Largest sum of live tensor elements over a topological run of the layers."""
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    uses = Counter(id(t) for layer in layers for t in layer_inputs(layer))
    keep = {id(t) for t in model.outputs}
    live = {id(t): _elements(t.shape) for t in model.inputs}
    peak = sum(live.values())
    for layer in layers:
        live[id(layer.output)] = _elements(layer.output.shape)
        peak = max(peak, sum(live.values()))
        for t in layer_inputs(layer):
            uses[id(t)] -= 1
            if uses[id(t)] == 0 and id(t) not in keep:
                live.pop(id(t), None)
    return peak


def profile_keras(model, name: str | None = None, deploy: bool | None = None) -> Profile:
    """Profile a functional Keras model whose input has a fixed H x W (see module docs)."""
    shape = model.inputs[0].shape
    if any(d is None for d in shape[1:]):
        raise MaiSrError(f"profile: model {model.name} needs a fixed input size, got {shape}")
    rows = []
    weight_bytes = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        out_shape = tuple(int(d) for d in layer.output.shape[1:])
        macs, acts, convs, wbytes = _conv_costs(layer, layer.output.shape)
        weight_bytes += wbytes
        rows.append(LayerProfile(layer.name, type(layer).__name__, out_shape,
                                 layer.count_params(), macs, acts, convs))
    return Profile(model=name or model.name, size=(int(shape[1]), int(shape[2])), deploy=deploy,
                   params=_count(model.trainable_weights),
                   frozen_params=_count(model.non_trainable_weights),
                   macs=sum(r.macs for r in rows), activations=sum(r.activations for r in rows),
                   convs=sum(r.convs for r in rows),
                   peak_activation_elements=_peak_live_elements(model),
                   int8_weight_bytes=weight_bytes, layers=tuple(rows))


def profile_model(name: str, size: tuple[int, int] = (256, 256), deploy: bool = True,
                  scale: int = CHALLENGE_SCALE) -> Profile:
    """Profile registered model ``name`` for an LR input of ``size`` = (H, W).

    ``deploy=True`` profiles the inference graph (what runs on the device), ``False`` the
    training graph with its expanded blocks.
    """
    h, w = size
    if h <= 0 or w <= 0:
        raise MaiSrError(f"profile: size must be positive, got {h}x{w}")
    model = create_model(name, scale=scale, deploy=deploy, input_size=(h, w))
    return profile_keras(model, name=name, deploy=deploy)


def _si(value: float, unit: str = "") -> str:
    for factor, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}".rstrip()


def format_profile(profile: Profile, layers: bool = True) -> str:
    """A per-layer table followed by the totals, for the terminal."""
    graph = {True: "deploy graph", False: "training graph", None: "graph"}[profile.deploy]
    h, w = profile.size
    lines = [f"{profile.model} ({graph}), LR input {h}x{w}", ""]
    if layers:
        header = f"{'layer':<16} {'type':<22} {'output':<16} {'params':>8} {'MACs':>10}"
        lines += [header, "-" * len(header)]
        for r in profile.layers:
            shape = "x".join(str(d) for d in r.output_shape)
            lines.append(f"{r.name:<16} {r.kind:<22} {shape:<16} {r.params:>8,} "
                         f"{_si(r.macs):>10}")
        lines.append("")
    totals = [
        ("params (trainable)", f"{profile.params:,}"),
        ("params (frozen)", f"{profile.frozen_params:,}"),
        ("MACs", f"{_si(profile.macs)}  ({profile.macs:,})"),
        ("FLOPs (2 x MACs)", _si(profile.flops)),
        ("activations (conv outputs)", f"{_si(profile.activations)}  ({profile.activations:,})"),
        ("conv layers", str(profile.convs)),
        ("peak activation memory", f"{_si(profile.peak_bytes_int8, 'B')} INT8, "
                                   f"{_si(profile.peak_bytes_fp32, 'B')} FP32"),
        ("INT8 weight bytes", f"{profile.int8_weight_bytes:,} B "
                              f"({profile.int8_weight_bytes / 1024:.1f} KiB)"),
    ]
    lines += [f"{key:<28} {value}" for key, value in totals]
    return "\n".join(lines)
