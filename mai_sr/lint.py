"""`mai-sr lint`: check a TFLite model against what the VS680 NPU and NNAPI accept.

No TensorFlow: the graph comes from :func:`mai_sr.tflite.graph.read_graph`. Lint stands
above the runners (:mod:`mai_sr.device`): a finding's cost comes from the SyNAP simulator,
and the Ethos-U verdicts from Vela itself.

Every op gets a row (type, tensor types, quantization, kernel) and a verdict for the two
targets. Findings have a severity:

ERROR (exit code 2; the model will not run fully accelerated, or not at all)
  * ``float-op``: an op reads or writes float32/float16 tensors (weights included);
  * ``int16``: a tensor is int16 (16x8 quantization; the VS680 NN engine runs 8-bit only);
  * ``unsupported-vs680`` / ``unsupported-nnapi``: the op is not in the target's INT8 op list
    (:data:`VS680_UNITS`, :data:`NNAPI_OPS`), or it computes on int32 shape data (CPU);
  * ``unquantized``: an 8-bit activation tensor has no quantization parameters;
  * ``io-dtype``: a graph input or output is not uint8/int8 (except float32 IO around an INT8
    core, below).

WARNING (exit code 1 with ``--strict``; it runs, but slower than it should)
  * ``float-io``: float32 graph input/output around an INT8 core (QUANTIZE right after the
    input, DEQUANTIZE right before the output, nothing else float): it runs, with CPU work at
    the edges (one float pass over the image each way). Third-party files ship like this.
  * ``clip-after-d2s``: MINIMUM/MAXIMUM/RELU* reading DEPTH_TO_SPACE's output (directly or via
    other clip ops). The reason is the recipe of the MAI 2022 quantized-SR challenge report
    (section 3.1, item 6: place the clip before depth-to-space; teams BOE and GenMedia found
    it faster, sections 4.5 and 4.8). The message states what the recalibrated SyNAP
    simulator charges for it at 1x360x640x3: one more TP pass over the full-HD output (about
    +3 ms, +11% on NCNet), not DRAM round trips - the real files Table 1 timed clip after
    depth-to-space and show no larger cost.
  * ``kernel``: a convolution or pool kernel above 3x3 (recipe item 2).
  * ``resize``: RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR (PPU on the VS680, CPU fallback under
    NNAPI on many drivers; recipe item 5 replaces nearest upsampling by a 1x1 convolution).
  * ``channels``: a convolution outputs a channel count that is not a multiple of 4. The NPU
    processes channels in groups, so the remainder is padding work. Exempt: the channel counts
    an x3 RGB model cannot avoid, i.e. the image's own channel count (3) and that count times
    block_size^2 of a DEPTH_TO_SPACE in the graph (27 for x3): the pre-D2S conv and the
    nearest-convolution anchor. Multiples of 4 that are not multiples of 16 get a NOTE only
    (section 4.16: "more efficiently executed on NPUs when the number of channels is a
    multiple of 16"; ABPN's 28 channels are the challenge baseline, not a defect).
  * ``quantize-interior``: QUANTIZE/DEQUANTIZE anywhere but at the graph edges (a requantize
    or float round-trip inside the network).

NOTE (never changes the exit code): ``channels16``, ``dynamic-shape``.

Op lists and their sources: :mod:`mai_sr.tflite.ops`.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mai_sr.errors import MaiSrError
from mai_sr.tflite.graph import TFLiteGraph, read_graph
from mai_sr.tflite.targets import (check_target, export_targets, judged_by_profile,
                                   judged_by_vela, lint_targets, quoted_config)
from mai_sr.tflite.ops import (CHANNEL_OPS, CLIP_OPS, INT8_IO, KERNEL_OPS, NNAPI_OPS,
                               QUANT_OPS, vs680_unit)

ERROR, WARNING, NOTE = "error", "warning", "note"

@dataclass(frozen=True)
class Finding:
    """One lint result. `op` is the op index, or None for graph-level findings."""

    severity: str
    code: str
    message: str
    op: int | None = None
    fix: str | None = None     # the command that fixes it, when one does

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "message": self.message,
                "op": self.op, "fix": self.fix}

    def text(self) -> str:
        where = f"op {self.op}: " if self.op is not None else ""
        fix = f"; fix: {self.fix}" if self.fix else ""
        return f"{self.severity.upper():7s} [{self.code}] {where}{self.message}{fix}"


@dataclass(frozen=True)
class OpRow:
    """The per-op line of the report."""

    index: int
    type: str
    inputs: tuple[str, ...]    # "uint8[1,24,32,3]" per non-constant input
    outputs: tuple[str, ...]
    weights: str               # dtype of the weights, "" if none
    quantization: str          # of the weights if any, else of the first output
    kernel: str                # "3x3", "" if none
    vs680: str                 # unit ("NN"...) or "-" when rejected
    nnapi: bool
    verdict: str               # "ok", "warning" or "error"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "weights": self.weights,
                "quantization": self.quantization, "kernel": self.kernel, "vs680": self.vs680,
                "nnapi": self.nnapi, "verdict": self.verdict}


@dataclass
class LintReport:
    """Everything `mai-sr lint` found in one model; `target` is set by ``--target vs680`` or
    ``nnapi`` (that target's verdicts only), `exported_for` when the file's provenance names
    an export target."""

    path: Path
    rows: list[OpRow]
    findings: list[Finding] = field(default_factory=list)
    target: str | None = None
    exported_for: str | None = None

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    @property
    def errors(self) -> int:
        return self.count(ERROR)

    @property
    def warnings(self) -> int:
        return self.count(WARNING)

    def summary(self) -> str:
        verdict = "FAIL" if self.errors else ("WARN" if self.warnings else "OK")
        return (f"{self.path}: {verdict}: {self.errors} error(s), {self.warnings} warning(s), "
                f"{self.count(NOTE)} note(s)")

    def op_counts(self) -> dict[str, str]:
        """Per target, how many of the file's TFLite ops it runs on its NPU."""
        units: dict[str, int] = {}
        for row in self.rows:
            units[row.vs680] = units.get(row.vs680, 0) + 1
        on_npu = sum(n for unit, n in units.items() if unit not in ("CPU", "-"))
        unit_text = ", ".join(f"{u} {n}" for u, n in sorted(units.items()))
        counts = {"vs680": f"{on_npu}/{len(self.rows)} TFLite ops on the NPU "
                           f"(units: {unit_text or 'none'})",
                  "nnapi": f"{sum(r.nnapi for r in self.rows)}/{len(self.rows)} TFLite ops "
                           "accepted by the delegate"}
        return {t: c for t, c in counts.items() if self.target in (None, t)}

    def format_table(self, width: int | None = None) -> str:
        """One row per op, then findings, then the summary. `width` (columns) fits it to a
        terminal: the op table keeps type, output, kernel and verdicts (all columns are in
        the wide layout and --json) and long text wraps; None: the wide layout, unwrapped."""
        verdicts = [("VS680", lambda r: r.vs680), ("NNAPI", lambda r: "yes" if r.nnapi else "no")]
        verdicts = [v for v in verdicts if self.target in (None, v[0].lower())]
        if width is None:
            head = ("#", "op", "inputs", "outputs", "weights", "quant", "kernel")
            cells = [[str(r.index), r.type, " ".join(r.inputs), " ".join(r.outputs), r.weights,
                      r.quantization, r.kernel] for r in self.rows]
            wrap = None
        else:
            head = ("#", "op", "output", "kernel")
            cells = [[str(r.index), r.type, " ".join(r.outputs), r.kernel] for r in self.rows]
            wrap = 2
        head += tuple(name for name, _ in verdicts) + ("verdict",)
        for line, row in zip(cells, self.rows):
            line += [get(row) for _, get in verdicts] + [row.verdict]
        out = table_lines(head, cells, width, wrap)
        if self.findings:
            out.append("")
            out += [_wrap(f.text(), width, indent=8) for f in self.findings]
        out.append("")
        if self.exported_for:
            out.append(_wrap(exported_for_hint(self.exported_for, linted=False), width))
        out.append(_wrap(self.summary(), width))
        out += [_wrap(f"{t}: {c}", width, indent=2) for t, c in self.op_counts().items()]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {"model": str(self.path), "ops": [r.to_dict() for r in self.rows],
                "findings": [f.to_dict() for f in self.findings], "errors": self.errors,
                "warnings": self.warnings, "notes": self.count(NOTE), "target": self.target,
                "exported_for": self.exported_for, "op_counts": self.op_counts()}


# ------------------------------------------------------------------ text layout


def table_lines(head, rows: list[list[str]], width: int | None = None,
                wrap: int | None = None) -> list[str]:
    """Columns two spaces apart. With `width`, column `wrap` gets what the others leave (at
    least its header's width) and its cells wrap onto more lines; None: no wrapping."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    if width is not None and wrap is not None:
        rest = sum(w for i, w in enumerate(widths) if i != wrap) + 2 * (len(head) - 1)
        widths[wrap] = max(len(head[wrap]), min(widths[wrap], width - rest))
    out = []
    for row in [list(head), *rows]:
        cells = [textwrap.wrap(c, widths[i], break_on_hyphens=False) or [""]
                 if i == wrap and width is not None else [c] for i, c in enumerate(row)]
        for k in range(max(len(c) for c in cells)):
            out.append("  ".join((c[k] if k < len(c) else "").ljust(widths[i])
                                 for i, c in enumerate(cells)).rstrip())
    return out


def _wrap(text: str, width: int | None, indent: int = 0) -> str:
    """`text` wrapped to `width` columns, continuation lines indented (None: as it is)."""
    if width is None:
        return text
    return textwrap.fill(text, width, subsequent_indent=" " * indent, break_on_hyphens=False)


def exported_for_hint(target: str, linted: bool) -> str:
    """The line saying which target the file was exported for (from its provenance)."""
    if linted:
        return (f"exported for {target} (the file's provenance): linted for {target}; "
                "--target vs680 or --target nnapi judges it for those")
    return f"exported for {target}: run mai-sr lint --target {target}"


# ------------------------------------------------------------------ checks

# The commands findings point to. OUT and RUN stand for the user's output file and training
# run (or --pretrained NAME, --model/--weights).
EXPORT_COMMAND = "mai-sr export OUT.tflite --run RUN"
INT8_EXPORT_COMMAND = f"{EXPORT_COMMAND} --precision int8"


def _tensor_text(t) -> str:
    return f"{t.dtype}[{','.join(str(d) for d in t.shape_signature)}]"


def _after_d2s(graph: TFLiteGraph, op) -> bool:
    """Does `op` read DEPTH_TO_SPACE's output, directly or through other clip-like ops?"""
    seen = set()
    stack = [i for i in op.inputs if i >= 0 and not graph.tensors[i].is_constant]
    while stack:
        producer = graph.producers.get(stack.pop())
        if producer is None or producer.index in seen:
            continue
        seen.add(producer.index)
        if producer.type == "DEPTH_TO_SPACE":
            return True
        if producer.type in CLIP_OPS:
            stack.extend(i for i in producer.inputs
                         if i >= 0 and not graph.tensors[i].is_constant)
    return False


def _inherent_channels(graph: TFLiteGraph) -> set[int]:
    """Channel counts an RGB x`b` SR model cannot avoid: image channels and image * b^2."""
    image = {t.shape[-1] for t in graph.input_tensors + graph.output_tensors if t.shape}
    blocks = {op.options.get("block_size", 1) for op in graph.ops if op.type == "DEPTH_TO_SPACE"}
    return image | {c * b * b for c in image for b in blocks}


def _is_edge_quant(graph: TFLiteGraph, op) -> bool:
    return (any(i in graph.inputs for i in op.inputs)
            or any(o in graph.outputs for o in op.outputs))


def _float_edges(graph: TFLiteGraph) -> set[int]:
    """Indices of the QUANTIZE/DEQUANTIZE ops that convert float32 graph IO to and from an
    INT8 core; empty unless every other op is free of float tensors."""
    edges = set()
    for op in graph.ops:
        ins, outs = graph.op_inputs(op), graph.op_outputs(op)
        if not any(t.is_float for t in ins + outs):
            continue
        if (op.type == "QUANTIZE" and len(ins) == 1 and ins[0].index in graph.inputs
                and ins[0].dtype == "float32" and outs[0].dtype in INT8_IO):
            edges.add(op.index)
        elif (op.type == "DEQUANTIZE" and len(outs) == 1 and outs[0].index in graph.outputs
              and outs[0].dtype == "float32" and ins[0].dtype in INT8_IO):
            edges.add(op.index)
        else:
            return set()  # float work inside the network: not an INT8 core
    return edges


def _clip_cost(graph: TFLiteGraph) -> str:
    """What the SyNAP simulator charges for this graph's clip after D2S (lint states it)."""
    from mai_sr.device.synap import clip_after_d2s_ms  # TF-free; only needed for this finding

    try:
        return f"; the SyNAP simulator prices it at +{clip_after_d2s_ms(graph):.1f} ms at " \
               "1x360x640x3 (one more TP pass over the full-HD output)"
    except Exception:  # noqa: BLE001 - an unusual graph only loses the figure
        return ""


def _op_findings(graph: TFLiteGraph, op, inherent: set[int],
                 float_edges: frozenset[int] = frozenset()) -> list[Finding]:
    found: list[Finding] = []
    ins, outs = graph.op_inputs(op), graph.op_outputs(op)

    def add(severity, code, message, fix=None):
        found.append(Finding(severity, code, message, op.index, fix))

    float_tensors = [t for t in ins + outs if t.is_float]
    if op.index in float_edges:
        t = float_tensors[0]
        role = "input" if t.index in graph.inputs else "output"
        add(WARNING, "float-io", f"{op.type} converts the float32 graph {role} '{t.name}' at "
                                 "the edge of an INT8 core: CPU work before/after the NPU "
                                 "(one pass over the image); uint8 IO avoids it",
            fix=f"{EXPORT_COMMAND} (uint8 IO)")
    elif float_tensors:
        t = float_tensors[0]
        add(ERROR, "float-op", f"{op.type} computes in {t.dtype} (tensor '{t.name}'); "
                               "the NPU runs INT8 only", fix=INT8_EXPORT_COMMAND)
    for t in ins + outs:
        if t.dtype == "int16":
            add(ERROR, "int16", f"{op.type} tensor '{t.name}' is int16 (16x8 quantization is "
                                "not supported)", fix=INT8_EXPORT_COMMAND)
            break
    unit = vs680_unit(graph, op)
    if unit is None:
        add(ERROR, "unsupported-vs680", f"{op.type} is not supported by the VS680 NPU")
    elif unit == "CPU":
        add(ERROR, "unsupported-vs680", f"{op.type} on int32 shape data runs on the host CPU, "
                                        "not the NPU")
    if op.type not in NNAPI_OPS:
        add(ERROR, "unsupported-nnapi", f"{op.type} is not supported by the NNAPI delegate")
    for t in ins + outs:
        if t.dtype in INT8_IO and not t.is_constant and not t.quantization.is_quantized:
            add(ERROR, "unquantized", f"{t.dtype} tensor '{t.name}' has no quantization "
                                      "parameters", fix=INT8_EXPORT_COMMAND)
            break

    if op.type in CLIP_OPS and _after_d2s(graph, op):
        add(WARNING, "clip-after-d2s", f"{op.type} after DEPTH_TO_SPACE: move the clip before "
                                       "depth-to-space (MAI 2022 quantized-SR challenge report, "
                                       f"section 3.1, item 6){_clip_cost(graph)}")
    if op.type in KERNEL_OPS and op.kernel and max(op.kernel) > 3:
        add(WARNING, "kernel", f"{op.kernel[0]}x{op.kernel[1]} kernel; keep kernels at 3x3 or "
                               "below (recipe item 2)")
    if op.type.startswith("RESIZE"):
        add(WARNING, "resize", f"{op.type} runs on the PPU (VS680) and often falls back to the "
                               "CPU under NNAPI; use a nearest-neighbour 1x1 convolution")
    if op.type in CHANNEL_OPS and outs and outs[0].channels is not None:
        c = outs[0].channels
        if c not in inherent and c % 4:
            add(WARNING, "channels", f"{c} output channels, not a multiple of 4: the NPU pads "
                                     f"to {-(-c // 4) * 4}")
        elif c not in inherent and c % 16:
            add(NOTE, "channels16", f"{c} output channels; multiples of 16 map best onto the "
                                    "NPU (MAI 2022 challenge report, section 4.16)")
    if op.type in QUANT_OPS and not _is_edge_quant(graph, op):
        add(WARNING, "quantize-interior", f"{op.type} inside the graph (only graph inputs and "
                                          "outputs should be (de)quantized)")
    return found


def _row(graph: TFLiteGraph, op, findings: list[Finding]) -> OpRow:
    ins = [t for t in graph.op_inputs(op) if not t.is_constant]
    weights = [t for t in graph.op_inputs(op) if t.is_constant and len(t.shape) >= 2]
    quant_of = weights[0] if weights else (graph.op_outputs(op) or [None])[0]
    severities = {f.severity for f in findings}
    unit = vs680_unit(graph, op)
    return OpRow(
        index=op.index, type=op.type, inputs=tuple(_tensor_text(t) for t in ins),
        outputs=tuple(_tensor_text(t) for t in graph.op_outputs(op)),
        weights=weights[0].dtype if weights else "",
        quantization=quant_of.quantization.describe() if quant_of is not None else "none",
        kernel=f"{op.kernel[0]}x{op.kernel[1]}" if op.kernel else "",
        vs680=unit or "-", nnapi=op.type in NNAPI_OPS,
        verdict=ERROR if ERROR in severities else (WARNING if WARNING in severities else "ok"))


def lint_graph(graph: TFLiteGraph) -> LintReport:
    """Lint an already-parsed graph (see module docstring for the rules)."""
    findings: list[Finding] = []
    float_edges = frozenset(_float_edges(graph))
    edge_io = {t for op in float_edges for t in graph.ops[op].inputs + graph.ops[op].outputs}
    for t in graph.input_tensors + graph.output_tensors:
        if t.dtype not in INT8_IO and t.index not in edge_io:
            role = "input" if t.index in graph.inputs else "output"
            findings.append(Finding(ERROR, "io-dtype", f"graph {role} '{t.name}' is {t.dtype}; "
                                                       "use uint8 (or int8) model IO",
                                    fix=INT8_EXPORT_COMMAND))
    if graph.is_dynamic:
        findings.append(Finding(NOTE, "dynamic-shape", "dynamic input shape (fidelity model); "
                                "NPU runtimes are measured on a fixed 1x360x640x3 export",
                                fix=f"{EXPORT_COMMAND} (fixed shape: no --dynamic)"))
    inherent = _inherent_channels(graph)
    rows = []
    for op in graph.ops:
        op_found = _op_findings(graph, op, inherent, float_edges)
        findings.extend(op_found)
        rows.append(_row(graph, op, op_found))
    return LintReport(path=graph.path, rows=rows, findings=findings)


def lint_model(path) -> LintReport:
    """Read the .tflite at `path` and lint it. Unreadable files raise MaiSrError."""
    return lint_graph(read_graph(path))



# ------------------------------------------------------------------ per-target lint
# `mai-sr lint --target T`, T a row of mai_sr.tflite.targets. For the Ethos-U NPUs the verdict
# per op is Vela's own: the model is compiled by Vela (mai_sr.device.vela) at the target's
# quoted configuration and every op it leaves on the CPU is an error with Vela's reason;
# nothing here lists Ethos-U ops by hand.


@dataclass
class TargetLintReport:
    """Where each op of a model runs on one target, and why not on the NPU."""

    path: Path
    target: str
    rows: list[dict]             # {"index", "type", "output", "unit", "reason", "fix"}
    tool: str                    # what decided the placement, e.g. "Vela 5.2.0, ethos-u85-2048"
    vela_ops: tuple[int, int] | None = None  # (NPU, total) in Vela's own count (it fuses ops)
    exported_for: str | None = None

    @property
    def cpu_ops(self) -> list[dict]:
        return [r for r in self.rows if r["unit"] != "NPU"]

    def op_counts(self) -> dict[str, str]:
        """The op count of this target, in the file's TFLite ops (and Vela's own count)."""
        npu = len(self.rows) - len(self.cpu_ops)
        text = f"{npu}/{len(self.rows)} TFLite ops on the NPU ({self.tool})"
        if self.vela_ops is not None:
            text += (f"; Vela's own count, after it fuses ops: {self.vela_ops[0]}/"
                     f"{self.vela_ops[1]} (what bench --runner vela reports)")
        return {self.target: text}

    def format_table(self, width: int | None = None) -> str:
        """One row per op (Vela's reason and the fix wrap to `width` columns; None: no
        wrapping), then the verdict and the op count."""
        cells = [[str(r["index"]), r["type"], r["unit"],
                  r["reason"] + (f"; fix: {r['fix']}" if r.get("fix") else "")]
                 for r in self.rows]
        out = table_lines(("#", "op", "unit", "reason"), cells, width, wrap=3)
        verdict = "FAIL" if self.cpu_ops else "OK"
        out.append("")
        if self.exported_for:
            out.append(_wrap(exported_for_hint(self.exported_for,
                                               linted=self.exported_for == self.target), width))
        out.append(_wrap(f"{self.path}: {verdict} on {self.target}", width))
        out += [_wrap(f"{t}: {c}", width, indent=2) for t, c in self.op_counts().items()]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        npu = len(self.rows) - len(self.cpu_ops)
        return {"model": str(self.path), "target": self.target, "tool": self.tool,
                "ops": self.rows, "cpu_ops": len(self.cpu_ops), "npu_ops": npu,
                "op_counts": self.op_counts(), "exported_for": self.exported_for,
                "vela_npu_ops": self.vela_ops[0] if self.vela_ops else None,
                "vela_ops": self.vela_ops[1] if self.vela_ops else None}


def _cpu_fix(op_type: str, target: str) -> str | None:
    """The command that moves an op Vela left on the CPU onto the NPU, when there is one."""
    if op_type == "DEPTH_TO_SPACE" and target in export_targets():
        return f"{EXPORT_COMMAND} --target {target} (exact rewrite Vela places on the NPU)"
    return None


def lint_ethos_u(path, target: str) -> TargetLintReport:
    """Place every op of `path` on an Ethos-U `target` by compiling it with Vela.

    Vela's "CPU operators" are matched to ops by their output tensor name. Needs the
    ``ethosu`` extra (one-line error otherwise)."""
    from mai_sr.device.vela import compile_model, require_vela

    if not judged_by_vela(check_target(target, lint_targets())):
        raise MaiSrError(f"--target: {target} is not an Ethos-U target (Vela does not judge it)")
    version = require_vela()
    graph = read_graph(path)
    npu = quoted_config(target)
    out = compile_model(path, npu)
    by_output: dict[str, dict] = {c["name"]: c for c in out.cpu_fallback}
    rows = []
    for op in graph.ops:
        names = [graph.tensors[i].name for i in op.outputs]
        hit = next((by_output[n] for n in names if n in by_output), None)
        rows.append({"index": op.index, "type": op.type, "output": names[0] if names else "",
                     "unit": "CPU" if hit else "NPU",
                     "reason": f"Vela: {hit['reason']}" if hit else "",
                     "fix": _cpu_fix(op.type, target) if hit else None})
    placed = sum(r["unit"] == "CPU" for r in rows)
    if placed != len(out.cpu_fallback):  # a CPU op whose name matched no tensor: say so
        missing = [c for c in out.cpu_fallback
                   if not any(r["output"] == c["name"] for r in rows)]
        for c in missing:
            rows.append({"index": -1, "type": c["op"], "output": c["name"], "unit": "CPU",
                         "reason": f"Vela: {c['reason']} (tensor not found in the graph)",
                         "fix": None})
    return TargetLintReport(path=Path(path), target=target, rows=rows,
                            tool=f"Vela {version}, {npu}",
                            vela_ops=(out.npu_ops, out.npu_ops + out.cpu_ops))


def lint_profile(path, target: str) -> TargetLintReport:
    """`mai-sr lint --target NAME` for a phone profile: a TargetLintReport whose CPU rows
    are the ops the device's runtime leaves to the CPU, each citing its measurement (the
    profile's placement rules, :mod:`mai_sr.device.profiles`)."""
    from mai_sr.device.estimate import place_ops
    from mai_sr.device.profiles import load_profile

    profile = load_profile(target)
    return TargetLintReport(path=Path(path), target=target, rows=place_ops(path, profile),
                            tool=f"{profile.title}: placement rules from {profile.source}")


def lint_for_target(path, target: str):
    """`mai-sr lint --target`: a TargetLintReport (Ethos-U, from Vela) or, for vs680/nnapi,
    the LintReport restricted to that target's op-support findings."""
    if judged_by_vela(check_target(target, lint_targets())):
        return lint_ethos_u(path, target)
    if judged_by_profile(target):
        return lint_profile(path, target)
    report = lint_model(path)
    report.target = target
    other = {"vs680": "unsupported-nnapi", "nnapi": "unsupported-vs680"}.get(target)
    report.findings = [f for f in report.findings if f.code != other]
    return report


def exported_target(path) -> str | None:
    """The target `path` was exported for (``export --target``), from the provenance embedded
    in the file or, failing that, its sidecar; None when neither names one."""
    from mai_sr.tflite.artifacts import read_metadata, read_sidecar

    for read in (read_metadata, read_sidecar):
        try:
            record = read(path) or {}
        except MaiSrError:  # a sidecar of another export: its target is not this file's
            continue
        target = record.get("target")
        name = target.get("target") if isinstance(target, dict) else None
        if isinstance(name, str):
            return name
    return None


def lint_file(path, target: str | None = None):
    """`mai-sr lint [--target T]`: with no `target`, a file exported for a target is linted
    for it (when Vela, which judges the Ethos-U targets, is installed; otherwise the report
    says which target to ask for); else :func:`lint_model`. The report's `exported_for`
    records the provenance's target."""
    exported = exported_target(path)
    if target is None and exported in lint_targets():
        from mai_sr.device.vela import vela_version

        if not judged_by_vela(exported) or vela_version() is not None:
            target = exported
    report = lint_model(path) if target is None else lint_for_target(path, target)
    report.exported_for = exported
    return report
