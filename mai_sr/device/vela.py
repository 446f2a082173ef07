"""Arm Ethos-U NPUs through Arm's Vela compiler: ``mai-sr bench --runner vela --npu ...``.

Vela (``ethos-u-vela`` on PyPI, the ``ethosu`` extra) is the production compiler of the
Ethos-U55, U65 and U85. It compiles an INT8 ``.tflite``, places each op on the NPU or, when
the NPU cannot run it, on the CPU, and *estimates* cycles per layer and per inference for
a system configuration (clocks, memory bandwidths) and a memory mode (where the SRAM arena
and tensors live). Nothing is measured: every figure here is Vela's estimate, and an op Vela
leaves on the CPU is not timed at all, so a result with CPU ops is marked incomplete.

Where the figures come from (Vela 5.2 prints no time on stdout):

- ``<out>/<name>_summary_<system config>.csv``: ``inference_time`` (s), ``cycles_total``,
  ``core_clock``, ``sram_total_bytes`` and ``dram_total_bytes``;
- ``<out>/<name>_per-layer.csv`` (``--verbose-performance``): per op the ``Op Cycles``,
  ``SRAM AC`` / ``DRAM AC`` (memory access cycles) and ``Util% (MAC)``; the ``Op Cycles``
  column sums to ``cycles_total``;
- stdout: ``CPU operators = N`` / ``NPU operators = N`` and, for each op left on the CPU,
  ``Warning (supported operators) operator: TYPE, ofm: 'NAME'`` with a ``Reason:`` line.

Vela runs in a temporary folder: it writes files into its working folder
(``--supported-ops-report`` writes ``SUPPORTED_OPS.md`` there), never into the user's.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mai_sr.device.base import check_model_file
from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult
from mai_sr.tflite.graph import ELEMENTWISE_OPS, POOL_OPS, read_graph
from mai_sr.tflite.targets import VELA_BENCH_DEFAULT, check_vela_config, vela_configs

# The Ethos-U configurations Vela compiles for, and the one `bench` uses by default, are rows
# of the one NPU table (mai_sr.tflite.targets), read when needed.
DEFAULT_NPU = VELA_BENCH_DEFAULT
INSTALL_HINT = "pip install 'mai-sr[ethosu]'"

_OPS_LINE = re.compile(r"^(CPU|NPU) operators = (\d+)")
_CPU_OP = re.compile(r"Warning \(supported operators\) operator: (\S+), ofm: '(.*)'")


@dataclass(frozen=True)
class VelaOutput:
    """One Vela compilation: its summary row, per-layer rows and stdout facts."""

    summary: dict
    layers: list[dict]
    npu_ops: int
    cpu_ops: int
    cpu_fallback: list[dict]     # {"op", "name", "reason"} per op Vela put on the CPU
    stdout: str
    tflite_ops: int = 0          # ops of the .tflite file (Vela's own count fuses some)
    input_shape: tuple[int, ...] | None = None  # set when a dynamic file was fixed to it


def vela_version() -> str | None:
    """The installed Vela's version, or None when the `ethosu` extra is missing."""
    if importlib.util.find_spec("ethosu") is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ethos-u-vela")
    except PackageNotFoundError:
        return None


def require_vela() -> str:
    """Vela's version; a one-line MaiSrError naming the extra when it is not installed."""
    found = vela_version()
    if found is None:
        raise MaiSrError(f"Vela (ethos-u-vela) is not installed: {INSTALL_HINT}")
    return found


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# Vela's bounds. Vela compiles the shipped 360x640 models in under 2 s with under 50 MB
# resident (and runs in a 200 MB address space) on this 2-core, 23 GB machine; a crafted
# file once kept it busy for over 280 s at 7.8 GB. The defaults leave 60x the time and 20x
# the address space of a shipped model, and stay well inside the machine's memory.
VELA_TIMEOUT_S = 120.0
VELA_MEMORY_BYTES = 4 * 2**30
TIMEOUT_ENV, MEMORY_ENV = "MAI_SR_VELA_TIMEOUT", "MAI_SR_VELA_MEMORY_GB"
# What a process that hit RLIMIT_AS says on its way out (Python, the dynamic loader, OpenBLAS,
# C++): Vela has no error of its own for it.
_OUT_OF_MEMORY = ("MemoryError", "failed to map segment", "Memory allocation",
                  "Cannot allocate memory", "bad_alloc", "out of memory")


def vela_limits() -> tuple[float, int]:
    """(seconds, address-space bytes) Vela may use: the defaults above, or the environment's
    ``MAI_SR_VELA_TIMEOUT`` (seconds) and ``MAI_SR_VELA_MEMORY_GB``."""
    limits = []
    for env, default, unit in ((TIMEOUT_ENV, VELA_TIMEOUT_S, 1), (MEMORY_ENV, VELA_MEMORY_BYTES,
                                                                  2**30)):
        text = os.environ.get(env)
        if text is None:
            limits.append(default)
            continue
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not 0 < value < float("inf"):
            raise MaiSrError(f"{env}={text!r}: expected a number > 0")
        limits.append(value * unit)
    return limits[0], int(limits[1])


def _limit_address_space(limit: int):
    """preexec_fn for the Vela process: cap its address space at `limit` bytes."""
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return apply


def run_vela(args: list[str], cwd: str | os.PathLike, timeout_s: float | None = None,
             memory_bytes: int | None = None) -> str:
    """Run Vela (this interpreter's `ethosu.vela`) in `cwd`, bounded in time and address
    space (:func:`vela_limits` unless given); its stdout, or a one-line MaiSrError quoting
    Vela's last line when it fails, or naming the limit it hit."""
    require_vela()
    default_s, default_bytes = vela_limits()
    timeout_s = default_s if timeout_s is None else timeout_s
    memory_bytes = default_bytes if memory_bytes is None else memory_bytes
    try:
        proc = subprocess.run([sys.executable, "-m", "ethosu.vela", *args], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout_s,
                              preexec_fn=_limit_address_space(memory_bytes))
    except subprocess.TimeoutExpired:
        raise MaiSrError(f"vela stopped at its time limit ({timeout_s:g} s; set {TIMEOUT_ENV} "
                         "to allow more)") from None
    if proc.returncode != 0:
        said = proc.stderr + proc.stdout
        limit = f"{memory_bytes / 2**30:.3g} GB of address space; set {MEMORY_ENV} to allow more"
        if any(sign in said for sign in _OUT_OF_MEMORY):
            raise MaiSrError(f"vela stopped at its memory limit ({limit})")
        if proc.returncode < 0:  # a C extension that met the limit may crash instead
            raise MaiSrError(f"vela was killed by {signal.Signals(-proc.returncode).name} "
                             f"(its memory limit: {limit})")
        raise MaiSrError(f"vela failed: {_last_line(proc.stderr or proc.stdout)}")
    return proc.stdout


def refuse_float(path: Path):
    """The model's graph; a clear refusal for float models: Vela passes float ops to the CPU
    untouched."""
    graph = read_graph(path)
    floats = [t for t in graph.tensors if t.is_float]
    if floats:
        raise MaiSrError(f"{path}: a float model (tensor '{floats[0].name}' is "
                         f"{floats[0].dtype}); Ethos-U NPUs run INT8 models only - export "
                         "with --precision int8")
    return graph


def _parse_stdout(stdout: str) -> tuple[int, int, list[dict]]:
    counts = {"CPU": 0, "NPU": 0}
    fallback = []
    lines = stdout.splitlines()
    for k, line in enumerate(lines):
        m = _OPS_LINE.match(line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
        m = _CPU_OP.search(line)
        if m:
            reason = ""
            if k + 1 < len(lines) and lines[k + 1].startswith("Reason:"):
                reason = lines[k + 1][len("Reason:"):].strip()
            fallback.append({"op": m.group(1), "name": m.group(2), "reason": reason})
    return counts["NPU"], counts["CPU"], fallback


# Ops whose output shape mai_sr.tflite.graph derives from the input size: a dynamic-shape
# file made of them alone can be given concrete shapes exactly (Vela compiles fixed shapes).
_SHAPE_DERIVED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
                            "CONCATENATION"} | POOL_OPS | ELEMENTWISE_OPS)


def fixed_shape_copy(path: Path, graph) -> tuple[bytes, tuple[int, ...]]:
    """The bytes of dynamic-shape `path` with every tensor's shape (and shape signature) set
    to what it is at the scale's timing input (:func:`mai_sr.challenge.graph_timing_input`,
    360x640 at x3), as the SyNAP simulator times such files; and that input shape.

    The shapes are written in place: each is an int32 vector of the same rank. A graph with
    an op whose output shape cannot be derived from the input size is refused in one line."""
    import tflite

    from mai_sr.challenge import graph_timing_input

    odd = sorted({op.type for op in graph.ops if op.type not in _SHAPE_DERIVED})
    if odd:
        raise MaiSrError(f"{path}: dynamic input shape and {', '.join(odd)}, whose output "
                         "shape Vela would need fixed; bench the fixed-shape export (mai-sr "
                         "export without --dynamic)")
    hw = graph_timing_input(graph)
    shapes = graph.shapes(hw)
    data = bytearray(path.read_bytes())
    sub = tflite.Model.GetRootAs(data, 0).Subgraphs(0)
    written: dict[int, tuple[int, ...]] = {}
    for i in range(sub.TensorsLength()):
        tensor = sub.Tensors(i)
        for field in (4, 18):  # Tensor.shape, Tensor.shape_signature (TFLite schema)
            at = tensor._tab.Offset(field)
            if not at:
                continue
            start, rank = tensor._tab.Vector(at), tensor._tab.VectorLen(at)
            shape = tuple(int(d) for d in shapes[i])
            if rank != len(shape) or written.get(start, shape) != shape:
                raise MaiSrError(f"{path}: cannot fix the shape of tensor "
                                 f"'{graph.tensors[i].name}' for Vela; bench the fixed-shape "
                                 "export (mai-sr export without --dynamic)")
            struct.pack_into(f"<{rank}i", data, start, *shape)
            written[start] = shape
    return bytes(data), (1, *hw, graph.input_tensors[0].shape[-1])


def compile_model(model_path, npu: str = DEFAULT_NPU, system_config: str | None = None,
                  memory_mode: str | None = None, extra_args: list[str] | None = None
                  ) -> VelaOutput:
    """Compile `model_path` with Vela for `npu` in a temporary folder and read its CSVs.

    A dynamic-shape file is compiled at its scale's timing input (:func:`fixed_shape_copy`);
    :attr:`VelaOutput.input_shape` says so. Vela runs within :func:`vela_limits`."""
    check_vela_config(npu)
    path = check_model_file(model_path).resolve()
    require_vela()
    graph = refuse_float(path)
    with tempfile.TemporaryDirectory(prefix="mai_sr_vela_") as tmp:
        compiled, input_shape = path, None
        if graph.is_dynamic:
            data, input_shape = fixed_shape_copy(path, graph)
            compiled = Path(tmp) / path.name
            compiled.write_bytes(data)
        args = [str(compiled), "--accelerator-config", npu, "--output-dir", "out",
                "--verbose-performance", *(extra_args or [])]
        if system_config:
            args += ["--system-config", system_config]
        if memory_mode:
            args += ["--memory-mode", memory_mode]
        stdout = run_vela(args, tmp)
        out = Path(tmp) / "out"
        summaries = sorted(out.glob(f"{path.stem}_summary_*.csv"))
        per_layer = out / f"{path.stem}_per-layer.csv"
        if not summaries or not per_layer.is_file():
            raise MaiSrError(f"vela wrote no summary/per-layer CSV for {path.name} "
                             f"({_last_line(stdout)})")
        with open(summaries[0], newline="") as f:
            summary = next(csv.DictReader(f))
        with open(per_layer, newline="") as f:
            layers = list(csv.DictReader(f))
    npu_ops, cpu_ops, fallback = _parse_stdout(stdout)
    return VelaOutput(summary=summary, layers=layers, npu_ops=npu_ops, cpu_ops=cpu_ops,
                      cpu_fallback=fallback, stdout=stdout, tflite_ops=len(graph.ops),
                      input_shape=input_shape)


def _layer_row(row: dict, clock_hz: float) -> dict:
    cycles = int(row["Op Cycles"])
    op = row["Original Operator"]
    if row.get("NNG Operator") and row["NNG Operator"] != op:
        op = f"{op}>{row['NNG Operator']}"  # e.g. "Conv2D>Relu": a fused part of the op
    return {"name": row["Name"], "op": op, "unit": row["Target"],
            "ms": cycles / clock_hz * 1e3, "cycles": cycles, "npu_cycles": int(row["NPU"]),
            "sram_access_cycles": int(row["SRAM AC"]), "dram_access_cycles": int(row["DRAM AC"]),
            "macs": int(row["MAC Count"]), "mac_util_percent": float(row["Util% (MAC)"])}


def to_bench_result(model: Path, npu: str, out: VelaOutput, version: str) -> BenchResult:
    """A BenchResult from one compilation (figures as Vela estimates them)."""
    s = out.summary
    clock = float(s["core_clock"])
    layers = [_layer_row(r, clock) for r in out.layers]
    total = out.npu_ops + out.cpu_ops
    macs = sum(r["macs"] for r in layers)
    mac_util = (sum(r["macs"] * r["mac_util_percent"] for r in layers) / macs) if macs else None
    cycles_total = int(float(s["cycles_total"]))
    notes = [f"estimated by Vela {version} (not measured): {s['accelerator_configuration']}, "
             f"system config {s['system_config']}, memory mode {s['memory_mode']}"]
    notes.append(f"op counts are Vela's: {total} ops after it fuses some; the file has "
                 f"{out.tflite_ops} TFLite ops (the ones lint --target counts)")
    if out.input_shape is not None:
        notes.append("dynamic input shape: estimated at its scale's timing input "
                     f"{'x'.join(map(str, out.input_shape))}")
    if out.cpu_ops:
        named = ", ".join(f"{c['op']} '{c['name']}'" for c in out.cpu_fallback) \
            or f"{out.cpu_ops} op(s)"
        notes.append(f"INCOMPLETE: {out.cpu_ops} op(s) run on the CPU and Vela does not time "
                     f"them: {named}")
    delegate = {"name": "Ethos-U NPU (Vela)", "accelerator": npu,
                "fully_delegated": out.cpu_ops == 0, "delegated_nodes": out.npu_ops,
                "total_nodes": total, "complete": out.cpu_ops == 0,
                "cpu_ops": ", ".join(c["op"] for c in out.cpu_fallback) or None,
                "npu_op_percent": round(100 * out.npu_ops / total, 1) if total else None,
                "cycles_total": cycles_total, "cycles_npu": int(float(s["cycles_npu"])),
                "sram_total_bytes": int(float(s["sram_total_bytes"])),
                "dram_total_bytes": int(float(s["dram_total_bytes"])),
                "mac_util_percent": round(mac_util, 2) if mac_util is not None else None}
    device = {"name": f"Arm {s['accelerator_configuration'].replace('_', '-')} (Vela estimate)",
              "npu": npu, "system_config": s["system_config"], "memory_mode": s["memory_mode"],
              "clock_mhz": clock / 1e6, "vela": version, "estimated": True}
    return BenchResult(runner="vela", model=str(model), avg_ms=float(s["inference_time"]) * 1e3,
                       device=device, delegate=delegate, layers=layers, simulated=True,
                       notes=notes)


class VelaRunner:
    """``mai-sr bench --runner vela``: Vela's estimate for one Ethos-U configuration."""

    name = "vela"

    def __init__(self, npu: str = DEFAULT_NPU, system_config: str | None = None,
                 memory_mode: str | None = None):
        check_vela_config(npu)
        self.npu, self.system_config, self.memory_mode = npu, system_config, memory_mode

    @classmethod
    def add_cli_options(cls, group) -> None:
        """The runner's own `mai-sr bench` options (dest = constructor keyword)."""
        group.add_argument("--npu", choices=vela_configs(), default=None,
                           help=f"Ethos-U configuration (default {DEFAULT_NPU}, the i.MX 93's); "
                                f"Vela runs for at most {VELA_TIMEOUT_S:g} s in "
                                f"{VELA_MEMORY_BYTES / 2**30:g} GB of address space "
                                f"(${TIMEOUT_ENV}, ${MEMORY_ENV})")
        group.add_argument("--system-config", dest="system_config", default=None,
                           help="Vela system config, e.g. Ethos_U85_SYS_DRAM_High "
                                "(default: the configuration's own)")
        group.add_argument("--memory-mode", dest="memory_mode", default=None,
                           help="Vela memory mode, e.g. Shared_Sram (default: the "
                                "configuration's own)")

    def bench(self, model_path) -> BenchResult:
        version = require_vela()
        out = compile_model(model_path, self.npu, self.system_config, self.memory_mode)
        return to_bench_result(Path(model_path), self.npu, out, version)

    def format_result(self, result: BenchResult) -> str:
        return format_vela(result)


def format_vela(result: BenchResult) -> str:
    """The result as a few summary lines and a per-layer table (slowest first)."""
    d, dev = result.delegate, result.device
    head = (f"vela: {result.model}  [{dev.get('name')}, system config {dev.get('system_config')}"
            f", memory mode {dev.get('memory_mode')}, {dev.get('clock_mhz'):g} MHz]")
    lines = [head + "  (estimated by Vela, not measured)"]
    if result.error:
        return f"{head}\n  error: {result.error}"
    lines.append(f"  inference (estimated): {result.avg_ms:.2f} ms   "
                 f"{d.get('cycles_total'):,} cycles   MAC utilisation "
                 f"{d.get('mac_util_percent')}%")
    lines.append(f"  ops: {d.get('delegated_nodes')}/{d.get('total_nodes')} of Vela's ops "
                 f"on the NPU ({d.get('npu_op_percent')}%)"
                 + ("" if d.get("complete") else f", on the CPU: {d.get('cpu_ops')}"))
    lines.append(f"  traffic: SRAM {d.get('sram_total_bytes', 0) / 1e6:.1f} MB, "
                 f"DRAM {d.get('dram_total_bytes', 0) / 1e6:.1f} MB per inference")
    lines.extend(f"  note: {n}" for n in result.notes[1:])
    rows = [r for r in result.layers if r["cycles"] or r["unit"] != "NPU"]
    rows.sort(key=lambda r: -r["cycles"])
    lines.append(f"  {'op':<22} {'unit':<4} {'cycles':>11} {'ms':>8} {'SRAM AC':>10} "
                 f"{'DRAM AC':>10} {'MAC%':>6}  name")
    for r in rows[:30]:
        name = r["name"] if len(r["name"]) <= 48 else "..." + r["name"][-45:]
        lines.append(f"  {r['op'][:22]:<22} {r['unit']:<4} {r['cycles']:>11,} {r['ms']:>8.3f} "
                     f"{r['sram_access_cycles']:>10,} {r['dram_access_cycles']:>10,} "
                     f"{r['mac_util_percent']:>6.1f}  {name}")
    if len(rows) > 30:
        lines.append(f"  ... {len(rows) - 30} more rows in --json")
    return "\n".join(lines)
