"""The challenge score: ``Final Score = 2^(2*PSNR) / (C * runtime_ms)`` (*Efficient and
Accurate Quantized Image Super-Resolution on Mobile NPUs, Mobile AI & AIM 2022 Challenge:
Report*, Ignatov et al., ECCV 2022 Workshops, section 2.5).

Derivation of C
---------------
The paper gives the formula but not C. Each scored row of Table 1 (25 rows: the 24 teams
with a runtime and the ABPN baseline; see :mod:`mai_sr.published`) implies its own
``C_i = 2^(2*PSNR_i) / (runtime_i * score_i)``. Over the 25 rows these span
2.8107e15 .. 2.8222e15 (log2 C_i = 51.3201 .. 51.3257), i.e. +-0.2%. That spread is the
printing precision, not a disagreement: PSNR is printed to 0.01 dB (+-0.005 dB moves the
score by +-0.69%) and runtime to 0.1 ms (+-0.05 ms moves it by up to +-0.33% at 15 ms).

No single C reproduces every row to +-0.02 from the *rounded* inputs: ECNUSR needs
C >= 2.8195e15 and TCLResearchEurope needs C <= 2.8139e15. So C is the least-squares fit in
log space, the geometric mean of the C_i::

    log2 C = mean_i(2*PSNR_i - log2(runtime_i * score_i)) = 51.32213
    C      = 2.81515e15

Residuals (score from the rounded PSNR and runtime minus the published score): at most
0.052 in absolute value (ECNUSR +0.052, Antins.cv +0.032, TCLResearchEurope -0.030, NJUST
+0.024; the other 21 rows within +-0.02), and 0.4% relative at most. Every row is
reproduced to +-0.02 by some PSNR and runtime inside their printed rounding
(tests/test_score.py checks both statements). Z6 (30.03 dB, 19.2 ms) scores 22.24 here
against the published 22.22.

Scores only compare within one C: the constant normalises the VS680 runtimes of the
challenge, so scores from other devices rank models but are not challenge scores.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from mai_sr.challenge import (CHALLENGE_RUNTIME, CHALLENGE_SCALE, CHALLENGE_TEST_SET,
                              caveat_label, graph_timing_input, score_caveats,
                              timing_input)
from mai_sr.errors import MaiSrError

LOG2_C = 51.32213
C = 2.81515e15  # 2 ** LOG2_C, rounded to 6 significant digits


def _check_number(name: str, value, positive: bool = False) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise MaiSrError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        need = "a finite number > 0" if positive else "a finite number"
        raise MaiSrError(f"{name}: must be {need}, got {value!r}")
    return value


def final_score(psnr: float, runtime_ms: float) -> float:
    """``2^(2*psnr) / (C * runtime_ms)``; psnr in dB, runtime in milliseconds."""
    psnr = _check_number("psnr", psnr)
    runtime_ms = _check_number("runtime_ms", runtime_ms, positive=True)
    try:
        return 2.0 ** (2.0 * psnr) / (C * runtime_ms)
    except OverflowError:
        # 2^(2*PSNR) leaves float range past ~511 dB: no image comparison gets there.
        raise MaiSrError(f"psnr: {psnr:g} dB is beyond any image's PSNR (the score "
                         "overflows)") from None


# What `--device` and `--data` accept for the challenge's own board and test set.
CHALLENGE_DEVICE_NAMES = ("vs680", "synaptics-vs680")
CHALLENGE_DATA_NAMES = ("challenge", "div2k-test")


def _bench_source(bench) -> tuple[str, int | None, tuple[int, int] | None]:
    """(where a bench result's time comes from, the model's scale, its timed LR input), the
    scale and input read from the model file's graph when it is still there (TF-free)."""
    from mai_sr.tflite.graph import read_graph

    device = bench.device or {}
    if bench.simulated:
        source = f"{bench.runner} (simulated)"
    elif bench.runner == "local":
        source = "this machine's CPU"
    else:
        owner = (bench.delegate or {}).get("timed_on")
        where = device.get("model") or device.get("name") or device.get("serial") or bench.runner
        source = f"{where} {owner}" if owner else (
            f"{where} CPU" if bench.runner == "local" else str(where))
    scale = input_hw = None
    try:
        graph = read_graph(bench.model)
        # a dynamic file is timed at its scale's timing input (mai_sr.challenge)
        input_hw = graph_timing_input(graph) if graph.is_dynamic else \
            tuple(graph.input_tensors[0].shape[1:3])
        shapes = graph.shapes(input_hw if graph.is_dynamic else None)
        scale = shapes[graph.outputs[0]][1] // input_hw[0]
    except (MaiSrError, KeyError, IndexError, ZeroDivisionError, TypeError, ValueError):
        scale = input_hw = None  # the file is elsewhere or not a model: "unknown" caveats
    return source, scale, input_hw


def _runtimes_from(path: str) -> list[tuple[str, float, object]]:
    """(label, avg_ms, BenchResult) of every BenchResult in a `mai-sr bench --json` file
    (dict or list); `path` "-" reads standard input."""
    from mai_sr.results import BenchResult

    try:
        data = json.loads(sys.stdin.read() if path == "-" else Path(path).read_text())
    except FileNotFoundError:
        raise MaiSrError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaiSrError(f"{path}: not a bench JSON file ({type(exc).__name__})") from None
    items = data if isinstance(data, list) else [data]
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "avg_ms" not in item:
            raise MaiSrError(f"{path}: entry {i} has no avg_ms (expected `mai-sr bench --json` "
                             "output)")
        missing = [k for k in ("runner", "model") if k not in item]
        if missing:
            raise MaiSrError(f"{path}: entry {i} has no {' and no '.join(missing)} (expected "
                             "`mai-sr bench --json` output)")
        try:
            bench = BenchResult.from_dict(item)
        except (KeyError, TypeError, ValueError) as exc:
            raise MaiSrError(f"{path}: entry {i} is not a `mai-sr bench --json` result "
                             f"({type(exc).__name__}: {exc})") from None
        if bench.avg_ms is None:
            raise MaiSrError(f"{path}: entry {i} has no runtime ({bench.error or 'avg_ms is null'})")
        label = bench.device.get("name") or bench.device.get("serial") or bench.runner
        out.append((f"{label}:{Path(str(bench.model)).name}",
                    _check_number(f"{path}: avg_ms", bench.avg_ms, positive=True), bench))
    if not out:
        raise MaiSrError(f"{path}: no benchmark results in this file")
    return out


def score_csv(csv_path: str):
    """Every row of a CSV scored: a pandas DataFrame with a `score` column added.

    `csv_path` "-" reads standard input. The CSV has psnr and runtime_ms columns, or psnr and npu_ms as in `mai-sr report`'s
    leaderboard.csv. A row with an empty cell is not measured and gets no score (None).
    """
    import pandas as pd

    try:
        table = pd.read_csv(sys.stdin if csv_path == "-" else csv_path)
    except FileNotFoundError:
        raise MaiSrError(f"{csv_path}: no such file") from None
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise MaiSrError(f"{csv_path}: not a readable CSV ({type(exc).__name__})") from None
    # `mai-sr report`'s leaderboard.csv names the scored runtime npu_ms.
    runtime_col = "npu_ms" if "runtime_ms" not in table.columns and "npu_ms" in table.columns \
        else "runtime_ms"
    missing = [c for c in ("psnr", runtime_col) if c not in table.columns]
    if missing:
        raise MaiSrError(f"{csv_path}: missing column(s) {', '.join(missing)} "
                         f"(has {', '.join(map(str, table.columns))})")
    scores = []
    for i, (psnr, runtime) in enumerate(zip(table["psnr"], table[runtime_col]), start=2):
        if pd.isna(psnr) or pd.isna(runtime):  # an empty cell: not measured, nothing to score
            scores.append(None)
            continue
        try:
            scores.append(final_score(psnr, runtime))
        except MaiSrError as exc:
            raise MaiSrError(f"{csv_path}: line {i}: {exc}") from None
    table["score"] = scores
    return table


def score_runs(psnr: float, runtime_ms: float | None = None,
               runtime_from: str | None = None, *, data: str | None = None,
               device: str | None = None, scale: int | None = None,
               input_hw: tuple[int, int] | None = None) -> list[dict]:
    """Score one PSNR against a runtime: `runtime_ms`, or every result of `runtime_from` (a
    `mai-sr bench --json` file: one BenchResult or a list).

    One row per runtime: {"label", "psnr", "runtime_ms", "score", "C", "challenge_score",
    "caveats", "caveat"}; the label names the device and model of a bench result and is ""
    for `runtime_ms`. Whether it is a challenge score is decided by the report's own
    predicate (:func:`mai_sr.challenge.score_caveats`) from what is known: `data` (the set
    the PSNR is on; "challenge" for the challenge's DIV2K test set), `device` (where
    `runtime_ms` was measured; "vs680" for the challenge's board), `scale` and `input_hw`
    (default: the bench result's model file, else x3 at 360x640 for `runtime_ms`).
    """
    if (runtime_ms is None) == (runtime_from is None):
        raise MaiSrError("give exactly one of --runtime-ms and --runtime-from")
    dataset = CHALLENGE_TEST_SET if data in CHALLENGE_DATA_NAMES else (data or "unstated data")
    rows = []
    if runtime_from is None:
        source = CHALLENGE_RUNTIME if device in CHALLENGE_DEVICE_NAMES else (
            f"{device}" if device else "an unstated device's")
        runs = [("", runtime_ms, source, scale or CHALLENGE_SCALE,
                 input_hw or timing_input(scale or CHALLENGE_SCALE))]
    else:
        runs = []
        for label, ms, bench in _runtimes_from(runtime_from):
            source, bench_scale, bench_hw = _bench_source(bench)
            runs.append((label, ms, source, scale or bench_scale, input_hw or bench_hw))
    for label, ms, source, run_scale, run_hw in runs:
        caveats = score_caveats(scale=run_scale, input_hw=run_hw, dataset=dataset,
                                runtime_source=source)
        rows.append({"label": label, "psnr": psnr, "runtime_ms": ms,
                     "score": final_score(psnr, ms), "C": C, "challenge_score": not caveats,
                     "caveats": caveats, "caveat": caveat_label(caveats)})
    return rows
