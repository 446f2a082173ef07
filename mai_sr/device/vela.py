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
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mai_sr.device.base import check_model_file
from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult

# `vela --accelerator-config` choices (Vela 5.2 `vela --help`).
NPUS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256",
        "ethos-u65-512", "ethos-u85-128", "ethos-u85-256", "ethos-u85-512", "ethos-u85-1024",
        "ethos-u85-2048")
# The Ethos-U65 with 256 MACs/cycle is the NPU of NXP's i.MX 93, the application-class SoC
# (Linux, display pipeline) closest to the challenge's phone/TV-box setting among Ethos-U
# parts; U55s sit in microcontrollers and U85 parts were not shipping in SoCs at Vela 5.2.
DEFAULT_NPU = "ethos-u65-256"
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


def run_vela(args: list[str], cwd: str | os.PathLike) -> str:
    """Run Vela (this interpreter's `ethosu.vela`) in `cwd`; its stdout, or a one-line
    MaiSrError quoting Vela's last line when it fails."""
    require_vela()
    proc = subprocess.run([sys.executable, "-m", "ethosu.vela", *args], cwd=cwd,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise MaiSrError(f"vela failed: {_last_line(proc.stderr or proc.stdout)}")
    return proc.stdout


def refuse_float(path: Path) -> None:
    """A clear refusal for float models: Vela passes float ops to the CPU untouched."""
    from mai_sr.tflite.graph import read_graph

    graph = read_graph(path)
    floats = [t for t in graph.tensors if t.is_float]
    if floats:
        raise MaiSrError(f"{path}: a float model (tensor '{floats[0].name}' is "
                         f"{floats[0].dtype}); Ethos-U NPUs run INT8 models only - export "
                         "with --precision int8")


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


def compile_model(model_path, npu: str = DEFAULT_NPU, system_config: str | None = None,
                  memory_mode: str | None = None, extra_args: list[str] | None = None
                  ) -> VelaOutput:
    """Compile `model_path` with Vela for `npu` in a temporary folder and read its CSVs."""
    if npu not in NPUS:
        raise MaiSrError(f"--npu: {npu!r} is not one of {', '.join(NPUS)}")
    path = check_model_file(model_path).resolve()
    require_vela()
    refuse_float(path)
    args = [str(path), "--accelerator-config", npu, "--output-dir", "out",
            "--verbose-performance", *(extra_args or [])]
    if system_config:
        args += ["--system-config", system_config]
    if memory_mode:
        args += ["--memory-mode", memory_mode]
    with tempfile.TemporaryDirectory(prefix="mai_sr_vela_") as tmp:
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
                      cpu_fallback=fallback, stdout=stdout)


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
        if npu not in NPUS:
            raise MaiSrError(f"--npu: {npu!r} is not one of {', '.join(NPUS)}")
        self.npu, self.system_config, self.memory_mode = npu, system_config, memory_mode

    @classmethod
    def add_cli_options(cls, group) -> None:
        """The runner's own `mai-sr bench` options (dest = constructor keyword)."""
        group.add_argument("--npu", choices=NPUS, default=None,
                           help=f"Ethos-U configuration (default {DEFAULT_NPU}, the i.MX 93's)")
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
    lines.append(f"  ops: {d.get('delegated_nodes')}/{d.get('total_nodes')} on the NPU "
                 f"({d.get('npu_op_percent')}%)"
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
