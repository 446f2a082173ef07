"""Model cards: one JSON document per model with its measured numbers.

The schema is :data:`MODEL_CARD_SCHEMA` (JSON Schema draft 2020-12, checked by `jsonschema`
with finite numbers required), shared by the cards `mai-sr report` writes
(``cards/<model>.json``) and the pretrained models' cards (``mai_sr/pretrained/``). Build a card with :func:`build_model_card` and check one with
:func:`validate_model_card`. A card holds:

- ``name``, ``architecture`` (abpn/scsrn/ncnet/xcat or null), ``scale``, ``precision`` of the
  TFLite file (int8/fp16/fp32), ``files`` (name, sha256, bytes, input shape with -1 for
  dynamic dimensions, precision), ``size_kb`` (first file's bytes / 1024);
- ``complexity``: ``params`` (constant weights and biases of conv/FC ops), ``macs`` and
  ``activations`` (elements written by conv ops) at ``input_hw`` (the fixed input, or
  a dynamic model's scale's timing input: 360x640 at x3), ``convs`` (number of conv ops);
- ``quality``: one row per (dataset, precision): PSNR/SSIM of the Keras FP32 network
  (``source: "keras"``) and of the TFLite file (``source: "tflite"``), with the bicubic
  baseline, image count, colour space and border crop; a row copied from the model's own
  card (a shipped model's FP32 PSNR, :func:`card_fp32_rows`) names it in ``from_card``;
- ``runtimes``: one row per runner/device: average ms, device, whether simulated, error,
  whose time it is (``timed_on``: the accelerator's name, "CPU" or "mixed"), the nodes per
  unit and the run's notes;
- ``score``: the challenge score ``2^(2*PSNR) / (C * runtime_ms)`` with the PSNR, dataset,
  runtime and runner it was computed from (null value when either is missing);
- ``lint``: error and warning counts and lines of `mai-sr lint` on the first file (or null);
- ``vela`` (optional, when the report ran ``--runner vela``): Arm Vela's *estimate* for an
  Ethos-U: NPU configuration, system config and memory mode, ms, share of ops on the NPU,
  the ops left on the CPU (not timed by Vela, so ``complete`` is false) and MAC utilisation.
  Not used for the score (it is no VS680 time);
- ``estimates`` (optional, when the report ran ``--runner sim``): one row per device profile
  (:mod:`mai_sr.device.profiles`): the profile's name and device, its *estimated* latency
  (``estimate_ms``: a fitted cost model's figure, never a measurement), the data it was
  fitted on, the fit's date and its validation (method, median and max |error|, Spearman),
  or the reason the profile refused the file. Only the VS680's may become the score (when
  no ``synap`` or ``adb`` time is there: :func:`npu_runtime`);
- ``toolkit_version``, ``run_config_hash`` (null for a bare .tflite), ``status`` ("ok" or
  "error") and ``errors`` (one line each);
- for a shipped weight (``mai_sr/pretrained``): ``attribution`` (source, licence, paper,
  training data) and ``recipe`` (the recipe file's name and sha256, and the sha256 of its
  canonical JSON that each replayed stage records; a note when the files predate it).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from mai_sr.challenge import graph_timing_input
from mai_sr import __version__
from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult, EvalResult

CARD_SCHEMA_VERSION = 1
# Runners whose time is an NPU time, best first: a real device beats the simulator.
NPU_RUNNERS = ("adb", "synap")
# The runner of the device profiles' latency estimates (mai_sr.device.estimate), and its
# profile of the challenge's device: the one estimate that may stand in for the score's time.
SIM_RUNNER = "sim"
VS680_PROFILE = "vs680-synap"
CONV_LIKE_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "FULLY_CONNECTED"})

_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"], "minimum": 0}
_STR_OR_NULL = {"type": ["string", "null"]}
_PRECISION = {"enum": ["int8", "fp16", "fp32", None]}


def _obj(required: dict, optional: dict | None = None) -> dict:
    return {"type": "object", "required": sorted(required), "additionalProperties": False,
            "properties": {**required, **(optional or {})}}


MODEL_CARD_SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "mai-sr model card",
    **_obj({
        "schema_version": {"const": CARD_SCHEMA_VERSION},
        "name": {"type": "string", "minLength": 1},
        "architecture": _STR_OR_NULL,
        "scale": {"type": "integer", "minimum": 1},
        "precision": _PRECISION,
        "files": {"type": "array", "items": _obj({
            "name": {"type": "string", "minLength": 1},
            "sha256": {"type": "string", "minLength": 64},
            "bytes": {"type": "integer", "minimum": 0},
            "input_shape": {"type": ["array", "null"], "items": {"type": "integer"}},
            "precision": _PRECISION,
        })},
        "size_kb": _NUMBER_OR_NULL,
        "complexity": _obj({
            "params": _INT_OR_NULL, "macs": _INT_OR_NULL, "activations": _INT_OR_NULL,
            "convs": _INT_OR_NULL,
            "input_hw": {"type": ["array", "null"], "items": {"type": "integer"}},
        }),
        "quality": {"type": "array", "items": _obj({
            "dataset": {"type": "string"},
            "source": {"enum": ["keras", "tflite"]},
            "precision": _PRECISION,
            "psnr": _NUMBER_OR_NULL,
            "ssim": _NUMBER_OR_NULL,
            "bicubic_psnr": _NUMBER_OR_NULL,
            "bicubic_ssim": _NUMBER_OR_NULL,
            "images": {"type": "integer", "minimum": 1},
            "y_channel": {"type": "boolean"},
            "crop": {"type": "integer", "minimum": 0},
        }, {
            # a row copied from the model's own card (the shipped models' FP32 PSNR), named
            "from_card": {"type": "string"},
        })},
        "runtimes": {"type": "array", "items": _obj({
            "runner": {"type": "string"},
            "device": {"type": "object"},
            "avg_ms": _NUMBER_OR_NULL,
            "simulated": {"type": "boolean"},
            "error": _STR_OR_NULL,
        }, {
            # whose time avg_ms is (mai_sr.device.placement.timed_on): an accelerator's
            # name, "CPU" or "mixed"; how many nodes the accelerator took; the run's notes
            "timed_on": _STR_OR_NULL,
            "placement": _STR_OR_NULL,
            "notes": {"type": "array", "items": {"type": "string"}},
        })},
        "score": _obj({
            "value": _NUMBER_OR_NULL, "psnr": _NUMBER_OR_NULL, "dataset": _STR_OR_NULL,
            "runtime_ms": _NUMBER_OR_NULL, "runner": _STR_OR_NULL,
            "simulated": {"type": "boolean"},
        }),
        "lint": {**_obj({"errors": _INT_OR_NULL, "warnings": _INT_OR_NULL,
                         "findings": {"type": "array", "items": {"type": "string"}}}),
                 "type": ["object", "null"]},
        "toolkit_version": {"type": "string"},
        "run_config_hash": _STR_OR_NULL,
        "status": {"enum": ["ok", "error"]},
        "errors": {"type": "array", "items": {"type": "string"}},
    }, {
        # a shipped weight's card: where the weights come from, and the recipe file that
        # made them (mai_sr.recipes.file_record; a note when the files predate the recipe)
        "attribution": _obj({"source": {"type": "string"}, "licence": {"type": "string"}},
                            {"paper": _STR_OR_NULL, "trained_on": _STR_OR_NULL}),
        "recipe": _obj({"name": {"type": "string"}, "file": {"type": "string"},
                        "sha256": {"type": "string", "minLength": 64},
                        "json_sha256": {"type": "string", "minLength": 64}},
                       {"note": {"type": "string"}, "train_minutes": _NUMBER_OR_NULL}),
        "vela": {**_obj({
            "npu": {"type": "string"}, "system_config": _STR_OR_NULL,
            "memory_mode": _STR_OR_NULL, "ms": _NUMBER_OR_NULL,
            "npu_op_percent": _NUMBER_OR_NULL, "cpu_ops": _STR_OR_NULL,
            "complete": {"type": "boolean"}, "mac_util_percent": _NUMBER_OR_NULL,
        }), "type": ["object", "null"]},
        "estimates": {"type": "array", "items": _obj({
            "profile": {"type": "string", "minLength": 1}, "device": {"type": "string"},
            "estimate_ms": _NUMBER_OR_NULL, "fitted_on": _STR_OR_NULL,
            "fit_date": _STR_OR_NULL, "validation": _STR_OR_NULL,
            "median_abs_error_pct": _NUMBER_OR_NULL, "max_abs_error_pct": _NUMBER_OR_NULL,
            "spearman": _NUMBER_OR_NULL, "error": _STR_OR_NULL,
        })},
    }),
}

def validate_model_card(card) -> None:
    """Raise MaiSrError naming the first field of `card` that breaks MODEL_CARD_SCHEMA.

    `jsonschema` checks the schema; numbers must also be finite (NaN is not JSON).
    """
    from mai_sr.schema import schema_errors

    found = schema_errors(card, MODEL_CARD_SCHEMA, root="card")
    if found:
        name = card.get("name", "?") if isinstance(card, dict) else "?"
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise MaiSrError(f"model card {name}: {found[0]}{more}")


# ---------------------------------------------------------------- graph facts


def graph_stats(path: str | os.PathLike) -> dict:
    """Precision, input shape and complexity of a .tflite, read from its graph (no TF).

    Complexity is taken at the model's fixed input, or for a dynamic model at its scale's
    timing input (360x640 at x3, the challenge's). Params count each constant tensor fed to
    a conv/FC op once.
    """
    from mai_sr.tflite.graph import read_graph

    graph = read_graph(path)
    first = graph.input_tensors[0]
    input_hw = graph_timing_input(graph) if graph.is_dynamic else tuple(first.shape[1:3])
    shapes = graph.shapes(input_hw if graph.is_dynamic else None)
    convs = [op for op in graph.ops if op.type in CONV_LIKE_OPS]
    weights = {t.index: math.prod(t.shape) for op in convs for t in graph.op_inputs(op)
               if t.is_constant}
    costs = [graph.op_cost(op, shapes) for op in convs]
    return {
        "input_shape": list(first.shape_signature),
        "precision": _precision(graph),
        "complexity": {"params": sum(weights.values()), "macs": sum(c.macs for c in costs),
                       "activations": sum(c.output_elements for c in costs),
                       "convs": len(convs), "input_hw": list(input_hw)},
    }


def _precision(graph) -> str:
    """int8 when no activation is float; else fp16 (float16 weights) or fp32."""
    if not any(t.is_float and not t.is_constant for t in graph.tensors):
        return "int8"
    return "fp16" if any(t.dtype == "float16" for t in graph.tensors) else "fp32"


def lint_summary(path: str | os.PathLike) -> dict:
    """`mai-sr lint` in brief: error/warning counts and the error and warning lines."""
    from mai_sr.lint import lint_model

    report = lint_model(path)
    shown = [f for f in report.findings if f.severity in ("error", "warning")]
    shown.sort(key=lambda f: f.severity != "error")  # errors first, stable
    return {"errors": report.errors, "warnings": report.warnings,
            "findings": [f"{f.severity} [{f.code}]" + (f" op {f.op}" if f.op is not None else "")
                         + f": {f.message}" for f in shown]}


# ---------------------------------------------------------------- cards


def _finite(x: float | None) -> float | None:
    """JSON has no inf/NaN (PSNR of identical images is inf): those become null."""
    return x if x is not None and math.isfinite(x) else None


def _quality_row(result: EvalResult, source: str, precision: str | None) -> dict:
    return {"dataset": result.dataset, "source": source, "precision": precision,
            "psnr": _finite(result.psnr), "ssim": _finite(result.ssim),
            "bicubic_psnr": _finite(result.bicubic_psnr),
            "bicubic_ssim": _finite(result.bicubic_ssim), "images": len(result.images),
            "y_channel": result.y_channel, "crop": result.crop}


def _runtime_row(bench: BenchResult) -> dict:
    from mai_sr.device.placement import timed_on

    ok = bench.error is None and bench.avg_ms is not None and bench.avg_ms > 0
    delegate = bench.delegate or {}
    done, total = delegate.get("delegated_nodes"), delegate.get("total_nodes")
    placement = delegate.get("placement") or (
        f"{delegate.get('name')} {done}/{total} nodes" if done is not None and total else None)
    return {"runner": bench.runner, "device": dict(bench.device or {}),
            "avg_ms": bench.avg_ms if ok else None, "simulated": bool(bench.simulated),
            "error": bench.error, "timed_on": timed_on(delegate, simulated=bench.simulated),
            "placement": placement, "notes": [str(n) for n in bench.notes]}


# Whose times are NPU times (mai_sr.device.placement.timed_on): an NNAPI driver's, LiteRT's
# NPU dispatch and Qualcomm's QNN. A GPU, CPU or mixed time is a device time, not an NPU one.
NPU_TIME_OWNERS = ("NNAPI", "NPU", "QNN")


def is_npu_time(row: dict) -> bool:
    """A runtime row whose time is an NPU's alone: a simulator's estimate, or a device run
    whose accelerator took every node (rows of cards written before ``timed_on`` count)."""
    owner = row.get("timed_on")
    return bool(row.get("simulated")) or owner is None or owner in NPU_TIME_OWNERS


def vela_summary(bench_results) -> dict | None:
    """The card's ``vela`` field from the first successful Vela BenchResult, or None."""
    for b in bench_results:
        if b.runner == "vela" and b.error is None and b.avg_ms is not None:
            d, dev = b.delegate or {}, b.device or {}
            return {"npu": dev.get("npu", ""), "system_config": dev.get("system_config"),
                    "memory_mode": dev.get("memory_mode"), "ms": _finite(b.avg_ms),
                    "npu_op_percent": d.get("npu_op_percent"), "cpu_ops": d.get("cpu_ops"),
                    "complete": bool(d.get("complete")),
                    "mac_util_percent": d.get("mac_util_percent")}
    return None


def device_estimates(bench_results) -> list[dict]:
    """The card's ``estimates``: one row per device profile the ``sim`` runner priced the
    file with, in the runner's order (VS680 first). A failure of the whole runner (no
    profile named) is left to the card's errors."""
    rows = []
    for b in bench_results:
        d = b.device or {}
        if b.runner != SIM_RUNNER or not d.get("profile"):
            continue
        ok = b.error is None and b.avg_ms is not None and b.avg_ms > 0
        rows.append({"profile": d["profile"], "device": d.get("name") or "",
                     "estimate_ms": _finite(b.avg_ms) if ok else None,
                     "fitted_on": d.get("fitted_on"), "fit_date": d.get("fit_date"),
                     "validation": d.get("validation"),
                     "median_abs_error_pct": d.get("median_abs_error_pct"),
                     "max_abs_error_pct": d.get("max_abs_error_pct"),
                     "spearman": d.get("spearman"), "error": b.error})
    return rows


def card_quality(card: dict, dataset: str, source: str, y_channel: bool = False) -> dict | None:
    """The card's quality row for `dataset` from `source` ("keras" or "tflite"), RGB or
    (`y_channel`) luma, or None."""
    for row in card["quality"]:
        if row["dataset"] == dataset and row["source"] == source and \
                row.get("y_channel", False) == y_channel:
            return row
    return None


def npu_runtime(runtimes: list[dict]) -> dict | None:
    """The runtime row the score uses: the first successful NPU_RUNNERS row, in that order,
    whose time is the accelerator's alone (a CPU or mixed time never counts); else the
    ``sim`` runner's VS680 row (the same simulator as ``synap``). No phone profile's
    estimate is ever the score's: the challenge timed the VS680."""
    for runner in NPU_RUNNERS:
        for row in runtimes:
            if row["runner"] == runner and row["avg_ms"] is not None and is_npu_time(row):
                return row
    return next((row for row in runtimes if row["runner"] == SIM_RUNNER
                 and row["avg_ms"] is not None
                 and row["device"].get("profile") == VS680_PROFILE), None)


def device_other_runtime(runtimes: list[dict]) -> dict | None:
    """The first successful device row whose time is not an NPU's (a delegate that fell
    back, recorded with --allow-fallback; a GPU, XNNPACK or CPU run on the phone), or None."""
    for row in runtimes:
        if row["runner"] in NPU_RUNNERS and row["avg_ms"] is not None and not is_npu_time(row):
            return row
    return None


def _file_entry(path: Path, stats: dict | None) -> dict:
    from mai_sr.report.cache import file_hash

    return {"name": path.name, "sha256": file_hash(path), "bytes": path.stat().st_size,
            "input_shape": stats["input_shape"] if stats else None,
            "precision": stats["precision"] if stats else None}


# The INT8 PSNR a model's own card gives on a data set must equal this report's to within this
# (same file, same images, same scoring: only the float summation order may differ) before
# the card's FP32 PSNR on that set is put beside it.
SAME_IMAGES_DB = 1e-3


def reference_card(path: Path) -> dict | None:
    """The model card shipped beside a .tflite (``X.json`` beside ``X.tflite``, as in
    ``mai_sr/pretrained``) when it describes this very file (same sha256), else None."""
    import json

    from mai_sr.report.cache import file_hash

    card_path = path.with_name(path.stem + ".json")
    if not card_path.is_file():
        return None
    try:
        card = json.loads(card_path.read_text())
        validate_model_card(card)
    except (OSError, ValueError, MaiSrError):
        return None
    digest = file_hash(path)
    return card if any(f["sha256"] == digest for f in card["files"]) else None


def card_fp32_rows(card: dict | None, int8_results) -> list[dict]:
    """The FP32 quality rows of `card` on the data sets of `int8_results` whose INT8 PSNR the
    card gives too, equal to the measured one (so the images are the same): with them the
    FP32 -> INT8 drop of a shipped model, whose Keras network the report does not run."""
    if card is None:
        return []
    rows = []
    for result in int8_results:
        int8 = card_quality(card, result.dataset, "tflite")
        fp32 = card_quality(card, result.dataset, "keras")
        if int8 and fp32 and int8["psnr"] is not None and fp32["psnr"] is not None and \
                _finite(result.psnr) is not None and \
                abs(int8["psnr"] - result.psnr) <= SAME_IMAGES_DB:
            rows.append({**fp32, "from_card": card["name"]})
    return rows


def build_model_card(name: str, *, tflite, architecture: str | None = None, scale: int = 3,
                     int8_results=(), fp32_results=(), fp32_rows=(), bench_results=(),
                     lint: dict | None = None, run_config_hash: str | None = None,
                     errors=()) -> dict:
    """A validated model card (see module docstring) from measured results.

    tflite: the model file, or a list whose first item is the timing (fixed-shape) file and
    whose others are variants (the dynamic-shape file). int8_results / fp32_results:
    EvalResults of the TFLite file and of the Keras FP32 network; fp32_rows: FP32 quality
    rows copied from the model's own card (:func:`card_fp32_rows`). bench_results:
    BenchResults (any runners). lint: :func:`lint_summary` of the first file, or None when
    not linted. errors: one-line problems met while measuring; any error (including a file
    whose graph cannot be read) makes ``status`` "error". Size, precision and complexity come
    from the files' graphs (:func:`graph_stats`). The score uses the first int8 result's
    dataset and the NPU runtime (:func:`npu_runtime`).
    """
    from mai_sr.score import final_score

    paths = [Path(p) for p in ([tflite] if isinstance(tflite, (str, os.PathLike)) else tflite)]
    missing = [str(p) for p in paths if not p.is_file()]
    if not paths or missing:
        raise MaiSrError(f"model card {name}: no such .tflite file {', '.join(missing)}")
    errors = list(errors)
    if lint and lint["errors"]:
        errors.append(f"lint: {lint['errors']} error(s); first: {lint['findings'][0]}")
    all_stats = []
    for p in paths:
        try:
            all_stats.append(graph_stats(p))
        except MaiSrError as exc:
            all_stats.append(None)
            errors.append(str(exc))
    first = all_stats[0]
    bench_results = list(bench_results)
    runtimes = [_runtime_row(b) for b in bench_results]
    errors += [f"{r['runner']}: {r['error']}" for r in runtimes if r["error"]]
    int8_results = list(int8_results)
    precision = first["precision"] if first else None
    measured_fp32 = [_quality_row(r, "keras", "fp32") for r in fp32_results]
    have = {q["dataset"] for q in measured_fp32}
    quality = measured_fp32 + [dict(r) for r in fp32_rows if r["dataset"] not in have] + \
        [_quality_row(r, "tflite", precision) for r in int8_results]
    npu = npu_runtime(runtimes)
    primary = int8_results[0] if int8_results else None
    psnr = _finite(primary.psnr) if primary else None
    value = final_score(psnr, npu["avg_ms"]) if psnr is not None and npu else None
    card = {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": name,
        "architecture": architecture,
        "scale": scale,
        "precision": precision,
        "files": [_file_entry(p, s) for p, s in zip(paths, all_stats)],
        "size_kb": paths[0].stat().st_size / 1024,
        "complexity": first["complexity"] if first else
        {"params": None, "macs": None, "activations": None, "convs": None, "input_hw": None},
        "quality": quality,
        "runtimes": runtimes,
        "score": {"value": _finite(value), "psnr": psnr,
                  "dataset": primary.dataset if primary else None,
                  "runtime_ms": npu["avg_ms"] if npu else None,
                  "runner": npu["runner"] if npu else None,
                  "simulated": bool(npu and npu["simulated"])},
        "lint": lint,
        "vela": vela_summary(bench_results),
        "toolkit_version": __version__,
        "run_config_hash": run_config_hash,
        "status": "error" if errors else "ok",
        "errors": errors,
    }
    estimates = device_estimates(bench_results)
    if estimates:
        card["estimates"] = estimates
    validate_model_card(card)
    return card
