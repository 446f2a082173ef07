"""What every runner shares: the `Runner` protocol, the JSON schema of its results, and the
human-readable rendering of a `BenchResult`.

No TensorFlow here or anywhere in `mai_sr.device`: runners only execute .tflite files.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from mai_sr.errors import MaiSrError
from mai_sr.results import BENCH_SCHEMA_VERSION, BenchResult


@runtime_checkable
class Runner(Protocol):
    """Something that times a .tflite model somewhere.

    `bench` returns one `BenchResult`, or a list when the runner drives several devices
    (`adb --serial all`). Optional, looked up with getattr:

    - ``@classmethod add_cli_options(cls, group)``: add the runner's own options to the
      argparse group "--runner NAME options" of `mai-sr bench` and `mai-sr report`
      (:mod:`mai_sr.device.options`); each option's `dest` is a keyword argument of the
      constructor, which `get_runner` passes on. Option strings must
      not clash with another runner's or with bench's shared ones (--threads, --runs,
      --warmup, --min-seconds, --json, whose dests are threads, min_runs, warmup_runs,
      min_seconds).
    - ``format_result(result) -> str``: print results in the runner's own tool's style (the
      SyNAP simulator prints `synap_cli`-style text); `mai_sr.device.format_result`
      otherwise.
    """

    name: str

    def bench(self, model_path: str | os.PathLike) -> BenchResult | list[BenchResult]:
        ...


def check_model_file(model_path: str | os.PathLike) -> Path:
    """The model path, or a one-line error if it is not a whole, readable TFLite flatbuffer.

    The whole file is parsed (``read_graph``, no TensorFlow), so a truncated or corrupt file
    is refused here, before it is pushed to a device or timed, as `lint` and `eval` refuse
    it. A sidecar that does not match the file is refused too (``read_sidecar``).
    """
    from mai_sr.tflite.artifacts import read_sidecar
    from mai_sr.tflite.graph import read_graph

    path = Path(model_path)
    if not path.is_file():
        raise MaiSrError(f"model file not found: {path}")
    read_graph(path)
    read_sidecar(path)
    return path


# ---------------------------------------------------------------- JSON schema
# One schema for the `--json` output of every runner: a BenchResult object, or an array of
# them (one per device). Written as a dict so it ships with the code and needs no package
# data; `tests/test_device_runner.py` checks it against every runner's real output and
# against the BenchResult fields, so the two cannot drift apart.

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_LAYER = {
    "type": "object",
    "required": ["name", "op", "ms"],
    "properties": {
        "name": {"type": "string"},
        "op": {"type": "string"},
        "unit": {"type": ["string", "null"]},
        "ms": {"type": "number", "minimum": 0},
        "first_ms": _NUMBER_OR_NULL,
        "percent": _NUMBER_OR_NULL,
        "cdf_percent": _NUMBER_OR_NULL,
        "mem_kb": _NUMBER_OR_NULL,
        "times_called": {"type": ["integer", "null"]},
    },
    # runners may add their own per-layer figures (e.g. the simulator's MACs)
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
}
_DELEGATE = {
    "type": "object",
    "properties": {
        "name": {"type": ["string", "null"]},
        "fully_delegated": {"type": ["boolean", "null"]},
        "delegated_nodes": {"type": ["integer", "null"], "minimum": 0},
        "total_nodes": {"type": ["integer", "null"], "minimum": 0},
        "kernels": {"type": ["integer", "null"], "minimum": 0},
        "partitions": {"type": ["integer", "null"], "minimum": 0},
        "accelerator": {"type": ["string", "null"]},
        "available_accelerators": {"type": "array", "items": {"type": "string"}},
        # mai_sr.device.placement: how much of the graph the accelerator took, whose time
        "coverage": {"enum": ["full", "partial", "none", None]},
        "timed_on": {"type": ["string", "null"]},
    },
    "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
}
BENCH_RESULT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mai-sr bench --json",
    "$defs": {
        "bench_result": {
            "type": "object",
            "required": ["runner", "model", "avg_ms", "device", "delegate", "layers",
                         "simulated", "error", "notes", "schema_version"],
            "properties": {
                "runner": {"type": "string"},
                "model": {"type": "string"},
                # null only when `error` says why there is no measurement
                "avg_ms": {"type": ["number", "null"], "minimum": 0},
                "device": {"type": "object",
                           "additionalProperties": {"type": ["string", "integer", "number",
                                                             "boolean", "null"]}},
                "init_ms": _NUMBER_OR_NULL,
                "first_ms": _NUMBER_OR_NULL,
                "warmup_avg_ms": _NUMBER_OR_NULL,
                "median_ms": _NUMBER_OR_NULL,
                "min_ms": _NUMBER_OR_NULL,
                "max_ms": _NUMBER_OR_NULL,
                "std_ms": _NUMBER_OR_NULL,
                "count": {"type": ["integer", "null"], "minimum": 0},
                "peak_memory_mb": _NUMBER_OR_NULL,
                "delegate": _DELEGATE,
                "layers": {"type": "array", "items": _LAYER},
                "simulated": {"type": "boolean"},
                "error": {"type": ["string", "null"]},
                "notes": {"type": "array", "items": {"type": "string"}},
                # the device command line and the tool's output, as run (adb); version 1
                # results have neither
                "command": {"type": ["string", "null"]},
                "raw_output": {"type": ["string", "null"]},
                "schema_version": {"type": "integer", "enum": [1, BENCH_SCHEMA_VERSION]},
            },
            "additionalProperties": False,
        }
    },
    "anyOf": [
        {"$ref": "#/$defs/bench_result"},
        {"type": "array", "items": {"$ref": "#/$defs/bench_result"}},
    ],
}


def schema_errors(value, schema: dict | None = None) -> list[str]:
    """Where `value` breaks `schema` (default: BENCH_RESULT_SCHEMA), one line each naming the
    JSON path; empty if it conforms. Checked by `jsonschema`, plus finite numbers."""
    from mai_sr.schema import schema_errors as check

    return check(value, schema or BENCH_RESULT_SCHEMA)


def results_to_json(results: BenchResult | list[BenchResult]):
    """The `--json` payload: one object, or an array when a runner benched several devices."""
    if isinstance(results, list):
        return [r.to_dict() for r in results]
    return results.to_dict()


# ---------------------------------------------------------------- human output


def _ms(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def _describe_delegate(delegate: dict) -> str:
    name = delegate.get("name") or "none"
    parts = [name]
    if delegate.get("accelerator"):
        parts.append(f"accelerator {delegate['accelerator']}")
    done, total = delegate.get("delegated_nodes"), delegate.get("total_nodes")
    if done is not None and total:
        parts.append(f"{done}/{total} nodes")
    if delegate.get("kernels") is not None:
        parts.append(f"{delegate['kernels']} delegate kernel(s)")
    from mai_sr.device.placement import timed_on  # parsers: not for `--help` or `score`

    whose = timed_on(delegate)
    if delegate.get("fully_delegated") is True:
        parts.append("fully delegated")
    elif whose == "CPU" and name.upper() not in ("NONE", "CPU") and "xnnpack" not in name.lower():
        parts.append(f"CPU time, not {name}: the {name} delegate took no node")
    elif "xnnpack" in name.lower() and delegate.get("fully_delegated") is False:
        # XNNPACK is itself the CPU: a partial graph is not an accelerator falling back.
        parts.append("the other ops run in TFLite's builtin kernels (all on the CPU)")
    elif whose == "mixed" or delegate.get("fully_delegated") is False:
        parts.append(f"NOT fully delegated: the other nodes ran on the CPU (a mixed "
                     f"{name}+CPU time)")
    if (whose == "CPU" or "xnnpack" in name.lower()) and not parts[-1].startswith("CPU time"):
        parts.append("a CPU time")
    return ", ".join(parts)


def format_layers(layers: list[dict], limit: int = 30) -> str:
    """Per-op rows (slowest first) as a fixed-width table."""
    if not layers:
        return ""
    rows = sorted(layers, key=lambda r: -r["ms"])[:limit]
    name_width = min(48, max(len(r["name"]) for r in rows))
    lines = [f"  {'op':<24} {'unit':<6} {'avg ms':>9}  name"]
    for r in rows:
        name = r["name"] if len(r["name"]) <= name_width else "..." + r["name"][-name_width + 3:]
        lines.append(f"  {r['op'][:24]:<24} {str(r.get('unit') or '-')[:6]:<6} "
                     f"{r['ms']:>9.3f}  {name}")
    if len(layers) > limit:
        lines.append(f"  ... {len(layers) - limit} more rows in --json")
    return "\n".join(lines)


def format_result(result: BenchResult) -> str:
    """A `benchmark_model`-like summary of one result, a few lines long."""
    device = result.device or {}
    where = device.get("serial") or device.get("hostname") or ""
    facts = ", ".join(str(device[k]) for k in ("model", "cpu", "platform", "abi") if device.get(k))
    head = f"{result.runner}: {result.model}"
    if where or facts:
        head += f"  [{where}{' - ' if where and facts else ''}{facts}]"
    if result.simulated:
        head += "  (SIMULATED)"
    if result.error:
        return f"{head}\n  error: {result.error}"
    lines = [head,
             f"  inference (avg): {_ms(result.avg_ms)} ms   median {_ms(result.median_ms)}   "
             f"min {_ms(result.min_ms)}   max {_ms(result.max_ms)}   std {_ms(result.std_ms)}   "
             f"runs {result.count if result.count is not None else '-'}",
             f"  init: {_ms(result.init_ms)} ms   first inference: {_ms(result.first_ms)} ms   "
             f"warmup (avg): {_ms(result.warmup_avg_ms)} ms"]
    if result.peak_memory_mb is not None:
        lines.append(f"  peak memory: {result.peak_memory_mb:.1f} MB")
    if result.delegate:
        lines.append(f"  delegate: {_describe_delegate(result.delegate)}")
    lines.extend(f"  note: {n}" for n in result.notes)
    if result.layers:
        lines.append(format_layers(result.layers))
    return "\n".join(lines)
