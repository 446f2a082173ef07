"""Where a device run's nodes ran, and the one fallback rule for every accelerator delegate.

A `benchmark_model` run asked for an accelerator (NNAPI, GPU, LiteRT's NPU dispatch, Qualcomm's
QNN) still prints a time when that accelerator took none of the graph, or only part of it:
the tools log the partitioner's "Replacing N out of M node(s)" lines, an "Explicitly applied
... will (not / partially / completely) be executed" line, LiteRT's dispatch errors or an
"Unconsumed cmdline flags" warning, and carry on with TFLite's CPU kernels. The rule, the
same for all four: a run whose accelerator took **every** node is an accelerator time; one
that took **none** is a CPU time; one that took **some** is a mixed time. Only the first is
a result unless the user passes ``--allow-fallback``; with it the result records the
placement (:func:`placement_fields`) and every consumer labels the time with
:func:`timed_on` (``bench`` prints "CPU time, not NNAPI"; ``report`` keeps such a time out
of the NPU column and the challenge score). XNNPACK is a CPU delegate: its times are CPU
times.
"""

from __future__ import annotations

from mai_sr.device.benchmark_output import _DELEGATE_UNITS, BenchmarkOutput
from mai_sr.device.litert_output import NPU_FAILURE_MARKERS, OPTIONAL_FLAGS, _message
from mai_sr.errors import MaiSrError

# `--delegate` values that ask for an accelerator, and the unit their nodes run on.
ACCELERATOR_UNITS = {"nnapi": "NNAPI", "gpu": "GPU", "npu": "NPU", "qnn": "QNN"}
# Delegate names whose time is the CPU's (a BenchResult.delegate "name").
CPU_DELEGATE_NAMES = frozenset({"XNNPACK", "CPU", "CPU (XNNPACK)"})
# The name the "Explicitly applied <NAME> delegate" lines give each unit's delegate.
_COVERAGE_NAMES = {"NNAPI": "NNAPI", "GPU": "GPU", "QNN": "EXTERNAL", "NPU": "NPU"}
COVERAGES = ("full", "partial", "none")
# NNAPI's own CPU implementation: a run on it is a CPU time whatever NNAPI took.
NNAPI_REFERENCE = "nnapi-reference"


def node_placement(out: BenchmarkOutput) -> dict[str, int]:
    """Graph nodes per unit, from the partitioner's lines: {"NPU": 1, "CPU (XNNPACK)": 3,
    "CPU": 0}. Counts are nodes as the interpreter saw them (an NPU dispatch node can hold
    many of the original ops). "CPU" is what no delegate took (TFLite's builtin kernels)."""
    placement: dict[str, int] = {}
    total = next((d["total"] for d in out.delegations if d["total"] is not None), None)
    taken = 0
    for d in out.delegations:
        unit = ("CPU (XNNPACK)" if d["kernel"] == "TfLiteXNNPackDelegate"
                else _DELEGATE_UNITS.get(d["kernel"], d["kernel"]))
        placement[unit] = placement.get(unit, 0) + d["replaced"]
        taken += d["replaced"]
    if total is not None:
        # A later delegate's "out of M" counts the earlier delegates' kernel nodes too, but
        # never replaces them: what no delegate took is the first total minus all replaced.
        placement["CPU"] = max(0, total - taken)
    return placement


def describe_placement(placement: dict[str, int]) -> str:
    """"NPU 1, CPU (XNNPACK) 3, CPU 0" (zero counts other than CPU left out)."""
    return ", ".join(f"{unit} {n}" for unit, n in placement.items() if n or unit == "CPU")


def ignored_flags(out: BenchmarkOutput) -> list[str]:
    """Flags the tool logged as unconsumed (it ran without them), bar OPTIONAL_FLAGS."""
    return [f for f in out.unconsumed_flags if f.split("=", 1)[0] not in OPTIONAL_FLAGS]


def check_ignored_flags(out: BenchmarkOutput, *, source: str, allow_fallback: bool) -> list[str]:
    """A CPU run whose tool ignored one of the flags it was given is not the run that was
    asked for: a one-line error quoting the tool, or a note with `allow_fallback`."""
    if not ignored_flags(out):
        return []
    if not allow_fallback:
        raise MaiSrError(f"{source} ignored flags it does not know: \"{out.unconsumed_line}\"; "
                         "this build cannot run what was asked (use a newer benchmark_model, "
                         "or pass --allow-fallback to record the run anyway)")
    return [f"benchmark_model: {out.unconsumed_line}"]


def fallback_lines(out: BenchmarkOutput, text: str, unit: str) -> list[str]:
    """The tool's own lines that show a run meant for `unit` (a value of
    :data:`ACCELERATOR_UNITS`) did not run there entirely; empty if it did."""
    found = []
    if ignored_flags(out):
        found.append(out.unconsumed_line)
    for raw in text.splitlines():
        line = _message(raw)
        if any(marker in line for marker in NPU_FAILURE_MARKERS) and line not in found:
            found.append(line)
    # lines naming another unit first: they say where the nodes went
    for d in out.delegations:
        if d["replaced"] and _DELEGATE_UNITS.get(d["kernel"], d["kernel"]) != unit:
            found.append(d["line"])
    for d in out.delegations:
        if _DELEGATE_UNITS.get(d["kernel"], d["kernel"]) == unit and (
                d["replaced"] == 0 or (d["total"] and d["replaced"] < d["total"])):
            found.append(d["line"])
    if out.coverage in ("none", "partial"):
        found.append(f"the {out.delegate_name} delegate runs "
                     f"{'none' if out.coverage == 'none' else 'part'} of the graph")
    if unit == "NNAPI" and out.accelerator == NNAPI_REFERENCE:
        found.append(f"NNAPI ran on {NNAPI_REFERENCE}, Android's CPU implementation of NNAPI")
    said_full = out.coverage == "full" and out.delegate_name == _COVERAGE_NAMES.get(unit)
    if not found and not said_full and not any(
            _DELEGATE_UNITS.get(d["kernel"]) == unit and d["replaced"] for d in out.delegations):
        found.append(f"no node(s) were replaced with the {unit} delegate (no 'Replacing N out "
                     "of M node(s)' line names it)")
    return found


def unit_nodes(out: BenchmarkOutput, unit: str) -> tuple[int, int | None]:
    """(nodes the `unit`'s delegate took, nodes in the graph or None when not printed)."""
    placement = node_placement(out)
    on_unit = placement.get(unit, 0)
    total = sum(placement.values()) if "CPU" in placement else None
    if not on_unit and out.coverage in ("full", "partial") \
            and out.delegate_name == _COVERAGE_NAMES.get(unit):
        on_unit = out.delegate_kernels or 0  # kernels, when no "Replacing" line counts nodes
    return on_unit, total


def coverage(out: BenchmarkOutput, text: str, unit: str) -> tuple[str, list[str]]:
    """("full" | "partial" | "none", the tool's lines that show the fallback)."""
    lines = fallback_lines(out, text, unit)
    if not lines:
        return "full", []
    on_unit, _ = unit_nodes(out, unit)
    if ignored_flags(out) and unit in ("NPU", "QNN"):
        on_unit = 0  # the tool never loaded the unit's delegate
    if unit == "NNAPI" and out.accelerator == NNAPI_REFERENCE:
        on_unit = 0  # every node NNAPI took ran on the CPU
    return ("partial" if on_unit else "none"), lines


def _counts(kind: str, on_unit: int, total: int | None) -> str:
    if kind == "none":
        return "no node"
    return f"{on_unit} of {total} nodes" if total else f"{on_unit} node(s) (total not printed)"


def check_fallback(out: BenchmarkOutput, text: str, *, unit: str, source: str,
                   allow_fallback: bool) -> list[str]:
    """The fallback rule: raise a one-line MaiSrError quoting the tool when a run meant for
    `unit` did not run there entirely (to the CPU, the GPU, or nothing); with
    `allow_fallback`, return notes that say whose time it is and how many nodes ran where."""
    kind, lines = coverage(out, text, unit)
    placement = node_placement(out)
    where = describe_placement(placement) if placement else "not printed by the tool"
    if kind == "full":
        return [f"nodes per unit: {where}"] if placement else []
    on_unit, total = unit_nodes(out, unit)
    counts = _counts(kind, on_unit, total)
    whose = "a CPU time" if kind == "none" else f"a mixed {unit}+CPU time"
    more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
    if not allow_fallback:
        raise MaiSrError(f"{source}: the {unit} run fell back: \"{lines[0]}\"{more}; the {unit} "
                         f"delegate took {counts} (nodes per unit: {where}). The time would be "
                         f"{whose}, not an {unit} time; pass --allow-fallback to record it as "
                         "such")
    label = f"CPU time, not {unit}" if kind == "none" else f"mixed time, not all {unit}"
    return ([f"{label}: the {unit} delegate took {counts}; nodes per unit: {where}"]
            + [f"benchmark_model: {line}" for line in lines])


def placement_fields(out: BenchmarkOutput, text: str, unit: str) -> dict:
    """The BenchResult.delegate fields of a run meant for `unit`: its name, coverage
    ("full" | "partial" | "none"), delegated and total nodes, and who the time belongs to."""
    kind, _ = coverage(out, text, unit)
    on_unit, total = unit_nodes(out, unit)
    placement = node_placement(out)
    return {"name": unit, "coverage": kind,
            "delegated_nodes": 0 if kind == "none" else on_unit, "total_nodes": total,
            "fully_delegated": kind == "full",
            "placement": describe_placement(placement) if placement else None,
            "timed_on": time_owner(unit, kind)}


def time_owner(name: str | None, kind: str | None) -> str:
    """Whose time a run is: the accelerator's name, "CPU" or "mixed"."""
    if not name or name in CPU_DELEGATE_NAMES or "xnnpack" in name.lower():
        return "CPU"
    return {"none": "CPU", "partial": "mixed"}.get(kind or "full", name)


def timed_on(delegate: dict | None, *, simulated: bool = False) -> str:
    """Whose time a BenchResult's average is, from its ``delegate`` dict: the accelerator's
    name ("NNAPI", "NPU", ...), "CPU" or "mixed". A simulator's estimate is its NPU's."""
    delegate = delegate or {}
    if delegate.get("timed_on"):
        return delegate["timed_on"]
    name = delegate.get("name")
    if simulated:
        return name or "NPU"
    kind = delegate.get("coverage")
    if kind is None and delegate.get("fully_delegated") is False:
        kind = "none" if delegate.get("delegated_nodes") == 0 else "partial"
    return time_owner(name, kind)


def runtime_label(row: dict) -> str:
    """A report's name for a device time: "adb: NPU on SM8650" (runner, whose time, the
    device's SoC or model), or the runner alone when the row says no more."""
    device = row.get("device") or {}
    where = device.get("soc") or device.get("model") or device.get("npu")
    owner = row.get("timed_on")
    if not owner or row.get("simulated"):
        return row["runner"]
    return f"{row['runner']}: {owner}" + (f" on {where}" if where else "")
