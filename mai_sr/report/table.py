"""The leaderboard: Table 1 of the Mobile AI 2022 challenge report rebuilt from model
cards, as pandas.

Columns follow Table 1 (model size, PSNR, SSIM, FP32->INT8 PSNR drop, CPU and NPU runtime,
speed-up, final score), then complexity (params, GFLOPs = 2 x MACs, activations at the
timing input, as the AIM 2020 and NTIRE 2023 efficient-SR challenges count them), then where
each number came from. Measured rows are sorted by final score; the published Table 1 rows
of the same architectures follow in the CSV, marked as published, with the images their PSNR
is on (``psnr_data``). The page and the Markdown show them in a table of their own
(:func:`published_frame`), headed with their test set and device, never in our PSNR column.

A score computed otherwise than the challenge computed its scores carries its reasons in
``score_caveat`` (:func:`mai_sr.report.challenge.score_caveats`), shown in the score's cell.
The page shows :data:`SUMMARY` columns; the others go to its details table and the CSV.

The ``sim`` runner's latency estimates, one per device profile, are ``est_ms_<profile>``
columns (after the NPU and device times in the CSV) and a table of their own
(:func:`estimates_frame`), headed as estimates: only the VS680's time is ever scored.
"""

from __future__ import annotations

import math

import pandas as pd

from mai_sr.report.cards import (SIM_RUNNER, VS680_PROFILE, card_quality, device_other_runtime,
                                  npu_runtime)
from mai_sr.report.challenge import (CHALLENGE_RUNTIME, CHALLENGE_TEST_SET, caveat_label,
                                     score_caveats)

MEASURED = "measured"
PUBLISHED = "published"
CPU_RUNNER = "local"
# Prefix of the per-device estimate columns: est_ms_dimensity8100-nnapi, ...
ESTIMATE_PREFIX = "est_ms_"
# What the published rows were measured on, as their table's heading and cells say it.
PUBLISHED_TEST_SET = "the MAI 2022 challenge's test images (DIV2K)"
PUBLISHED_DEVICE = "a real Synaptics VS680 (its CPU and its NPU)"

# CSV column -> display header (Markdown and HTML), in Table 1 order.
COLUMNS = {
    "model": "Model",
    "architecture": "Architecture",
    "size_kb": "Size KB",
    "psnr": "PSNR",
    "ssim": "SSIM",
    "psnr_data": "PSNR on",
    "delta_psnr": "dPSNR FP32->INT8",
    "cpu_ms": "CPU ms",
    "npu_ms": "NPU ms",
    "device_ms": "Device ms, not NPU",
    "speedup": "Speed-up",
    "score": "Final score",
    "score_caveat": "Score caveat",
    "params": "Params",
    "gflops": "GFLOPs",
    "activations_m": "Activations (M)",
    "input_hw": "Input (LR)",
    "npu_runner": "NPU runner",
    "status": "Status",
    "error": "Error",
    "source": "Source",
}
# The leaderboard as the page and leaderboard.md show it (the score cell holds its caveat).
SUMMARY = ("model", "architecture", "size_kb", "psnr", "ssim", "delta_psnr", "cpu_ms", "npu_ms",
           "device_ms", "speedup", "score", "status")
# Shown only when some row has it: a device time whose accelerator took some nodes or none.
OPTIONAL_SUMMARY = ("device_ms",)
# The page's expandable details table: the rest, per model.
DETAILS = ("model", "params", "gflops", "activations_m", "input_hw", "npu_runner", "source",
           "error")

_DECIMALS = {"size_kb": 0, "psnr": 2, "ssim": 4, "delta_psnr": 2, "cpu_ms": 1, "npu_ms": 1,
             "device_ms": 1,
             "speedup": 1, "score": 2, "params": 0, "gflops": 2, "activations_m": 1}


def card_row(card: dict, datasets: list[str]) -> dict:
    """One measured leaderboard row (CSV column names) from a model card.

    PSNR/SSIM are on the first of `datasets`; with several, per-dataset ``psnr_<name>`` and
    ``ssim_<name>`` columns are added. dPSNR needs the Keras FP32 result on the same set.
    """
    from mai_sr.device.placement import runtime_label  # device names: parsers' module
    primary = datasets[0] if datasets else None
    int8 = card_quality(card, primary, "tflite") if primary else None
    fp32 = card_quality(card, primary, "keras") if primary else None
    cpu = next((r for r in card["runtimes"] if r["runner"] == CPU_RUNNER and r["avg_ms"]), None)
    npu = npu_runtime(card["runtimes"])
    fell_back = device_other_runtime(card["runtimes"])
    cx = card["complexity"]
    runtime_source = None if npu is None else \
        "simulated NPU" if npu["simulated"] else f"{npu['runner']} device"
    caveats = score_caveats(scale=card["scale"], input_hw=cx["input_hw"],
                            dataset=int8["dataset"] if int8 else primary,
                            runtime_source=runtime_source)
    row = {
        "model": card["name"],
        "architecture": card["architecture"],
        "size_kb": card["size_kb"],
        "psnr": int8["psnr"] if int8 else None,
        "ssim": int8["ssim"] if int8 else None,
        "psnr_data": primary,
        "delta_psnr": fp32["psnr"] - int8["psnr"] if int8 and fp32 and int8["psnr"] is not None
        and fp32["psnr"] is not None else None,
        "cpu_ms": cpu["avg_ms"] if cpu else None,
        "npu_ms": npu["avg_ms"] if npu else None,
        "device_ms": fell_back["avg_ms"] if fell_back else None,
        "speedup": cpu["avg_ms"] / npu["avg_ms"] if cpu and npu else None,
        "score": card["score"]["value"],
        "score_caveat": caveat_label(caveats) if card["score"]["value"] is not None else None,
        "params": cx["params"],
        "gflops": 2 * cx["macs"] / 1e9 if cx["macs"] is not None else None,
        "activations_m": cx["activations"] / 1e6 if cx["activations"] is not None else None,
        "input_hw": "x".join(map(str, cx["input_hw"])) if cx["input_hw"] else None,
        "npu_runner": (_runner_label(npu) + " (simulated)" if npu["simulated"]
                       else runtime_label(npu))
        if npu
        else _fallback_label(fell_back) if fell_back else None,
        "status": card["status"],
        "error": "; ".join(card["errors"]) or None,
        "source": MEASURED,
    }
    if len(datasets) > 1:
        for name in datasets:
            q = card_quality(card, name, "tflite")
            row[f"psnr_{name}"] = q["psnr"] if q else None
            row[f"ssim_{name}"] = q["ssim"] if q else None
    for est in card.get("estimates", ()):
        row[ESTIMATE_PREFIX + est["profile"]] = est["estimate_ms"]
    return row


def _runner_label(row: dict) -> str:
    """"synap", or "sim vs680-synap" for the estimate runner's VS680 profile."""
    profile = row["device"].get("profile") if row["runner"] == SIM_RUNNER else None
    return f"{row['runner']} {profile}" if profile else row["runner"]


def _fallback_label(row: dict) -> str:
    """"adb: CPU time (NNAPI 0/31 nodes), no score" for a device time that is not an NPU's."""
    whose = {"CPU": "CPU time", "mixed": "mixed accelerator+CPU time"}.get(
        row.get("timed_on"), f"{row.get('timed_on')} time")
    where = f" ({row['placement']})" if row.get("placement") else ""
    return f"{row['runner']}: {whose}{where}, no score"


def published_rows(architectures) -> list[dict]:
    """Table 1 rows (Mobile AI 2022 challenge report) of the given architectures, in
    leaderboard columns. Their scores are challenge scores (checked, not assumed)."""
    from mai_sr.published import TABLE1
    from mai_sr.report.challenge import CHALLENGE_INPUT_HW, CHALLENGE_SCALE

    wanted = set(architectures) - {None}
    caveats = score_caveats(scale=CHALLENGE_SCALE, input_hw=CHALLENGE_INPUT_HW,
                            dataset=CHALLENGE_TEST_SET, runtime_source=CHALLENGE_RUNTIME)
    return [{"model": f"{r.team} ({r.architecture.upper()})", "size_kb": r.size_kb,
             "psnr": r.psnr, "ssim": r.ssim, "psnr_data": PUBLISHED_TEST_SET,
             "delta_psnr": r.delta_psnr, "cpu_ms": r.cpu_ms,
             "npu_ms": r.npu_ms, "speedup": r.speedup, "score": r.score,
             "score_caveat": caveat_label(caveats) or None,
             "architecture": r.architecture, "npu_runner": CHALLENGE_RUNTIME,
             "input_hw": "x".join(map(str, CHALLENGE_INPUT_HW)),
             "status": "published", "source": PUBLISHED}
            for r in TABLE1 if r.architecture in wanted]


def leaderboard(cards: list[dict], datasets: list[str]) -> pd.DataFrame:
    """Measured rows sorted by final score (missing scores last), then published rows."""
    rows = [card_row(c, datasets) for c in cards]
    extra = [k for r in rows for k in r if k not in COLUMNS]
    measured = pd.DataFrame(rows, columns=_ordered(list(COLUMNS), extra))
    measured = measured.sort_values(["score", "psnr"], ascending=False, na_position="last",
                                    kind="stable")
    published = pd.DataFrame(published_rows({c["architecture"] for c in cards}),
                             columns=measured.columns)
    published = published.sort_values("score", ascending=False, kind="stable")
    frames = [f for f in (measured, published) if not f.empty]
    table = pd.concat(frames, ignore_index=True) if frames else measured
    return table.astype(object).where(table.notna(), None)


def _ordered(columns: list[str], extra: list[str]) -> list[str]:
    """Per-dataset columns go right after SSIM, per-device estimates right after the device
    time, in the order met."""
    extra = list(dict.fromkeys(extra))
    estimates = [c for c in extra if c.startswith(ESTIMATE_PREFIX)]
    per_set = [c for c in extra if c not in estimates]
    at, then = columns.index("ssim") + 1, columns.index("device_ms") + 1
    return columns[:at] + per_set + columns[at:then] + estimates + columns[then:]


# Published rows on their own (Table 1's columns, headed with where they were measured).
PUBLISHED_SUMMARY = {"model": "Team (architecture)", "size_kb": "Size KB",
                     "psnr": "PSNR, DIV2K test", "ssim": "SSIM, DIV2K test",
                     "delta_psnr": "dPSNR FP32->INT8", "cpu_ms": "CPU ms, VS680",
                     "npu_ms": "NPU ms, VS680", "speedup": "Speed-up",
                     "score": "Final score"}
# Columns where a missing value is no fault: an empty cell, not "n.a.".
EMPTY_WHEN_MISSING = frozenset({"error", "score_caveat"})


def _format_cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "" if column in EMPTY_WHEN_MISSING else "n.a."
    base = column.split("_")[0] if column.startswith(("psnr_", "ssim_")) else \
        "npu_ms" if column.startswith(ESTIMATE_PREFIX) else column
    if base == "score" and 0 < abs(value) < 0.1:
        return f"{value:.2g}"  # untrained or slow models: keep two significant digits
    if base in _DECIMALS and isinstance(value, (int, float)):
        return f"{value:,.{_DECIMALS[base]}f}" if base == "params" else \
            f"{value:.{_DECIMALS[base]}f}"
    return str(value)


def display_frame(table: pd.DataFrame, error_chars: int = 160,
                  columns=None) -> pd.DataFrame:
    """The table as strings with display headers: numbers rounded, missing as 'n.a.', errors
    cut to `error_chars` (the CSV and the cards keep them whole). `columns`: those CSV
    columns only (default all)."""
    shown = pd.DataFrame({c: [_format_cell(c, v) for v in table[c]] for c in table.columns})
    shown["error"] = [e if len(e) <= error_chars else e[:error_chars - 3] + "..."
                      for e in shown["error"]]
    if columns is not None:
        shown = shown[list(columns)]
    return shown.rename(columns=header)


def header(column: str) -> str:
    """Display header of a CSV column (``psnr_Set14`` -> ``PSNR Set14``,
    ``est_ms_dimensity8100-nnapi`` -> ``dimensity8100-nnapi ms, estimated``)."""
    if column.startswith(ESTIMATE_PREFIX):
        profile = column[len(ESTIMATE_PREFIX):]
        return (f"{profile} ms, simulated (the challenge's device)" if profile == VS680_PROFILE
                else f"{profile} ms, estimated")
    return COLUMNS.get(column, f"{column[:4].upper()} {column[5:]}")


def measured_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows measured here (the leaderboard proper), renumbered."""
    return table[table["source"] == MEASURED].reset_index(drop=True)


def published_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The published rows as text, in :data:`PUBLISHED_SUMMARY`'s columns and headers (empty
    frame when there are none)."""
    rows = table[table["source"] == PUBLISHED]
    shown = pd.DataFrame({c: [_format_cell(c, v) for v in rows[c]] for c in PUBLISHED_SUMMARY})
    return shown.rename(columns=PUBLISHED_SUMMARY)


def summary_frame(table: pd.DataFrame, with_caveats: bool = True) -> pd.DataFrame:
    """The compact leaderboard (:data:`SUMMARY` columns) as text, each score followed by its
    caveat in the same cell: "56.99 (not a challenge score: PSNR on Set5, ...)" (the page
    sets the caveat under the value itself: `with_caveats` False)."""
    columns = [c for c in SUMMARY if c not in OPTIONAL_SUMMARY
               or (c in table.columns and table[c].notna().any())]
    shown = display_frame(table, columns=columns)
    if not with_caveats:
        return shown
    score = header("score")
    shown[score] = [f"{text} ({caveat})" if caveat else text
                    for text, caveat in zip(shown[score], table["score_caveat"])]
    return shown


ESTIMATES_HEADING = "Latency per device: estimates, not measurements"
ESTIMATES_NOTE = [
    "Each column is the sim runner's figure for one device profile (mai-sr bench FILE "
    "--runner sim --device NAME gives the same, with the layers it priced): a cost model "
    "fitted on published latencies of other models, not a time measured on the device. "
    "Only the VS680's (the challenge's device) is a challenge runtime: the leaderboard's NPU "
    "ms and final score use the synap simulator's VS680 time (a real device's with --runner "
    "adb); the phone estimates are never scored.",
    "Profiles and their validation (each phone profile's error is that of a fit made "
    "without the architecture estimated, so a new architecture should expect about as much):"]


def estimates_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The per-device latency estimates side by side: the model, then one column per device
    profile (VS680 first, as the runner gives them); an empty frame when the report ran no
    ``sim`` runner."""
    columns = [c for c in table.columns if c.startswith(ESTIMATE_PREFIX)]
    if not columns:
        return pd.DataFrame()
    return display_frame(table, columns=["model", *columns])


def estimate_notes(cards: list[dict]) -> list[str]:
    """One line per device profile of the estimates table: its device, data and validation
    (from the first card that has it)."""
    seen: dict[str, dict] = {}
    for card in cards:
        for est in card.get("estimates", ()):
            if est["estimate_ms"] is not None:
                seen.setdefault(est["profile"], est)
    lines = []
    for name, est in seen.items():
        check = (f"{est['validation']}: median |error| {est['median_abs_error_pct']}%, max "
                 f"{est['max_abs_error_pct']}%, Spearman {est['spearman']}"
                 if est["validation"] else "not validated")
        lines.append(f"{name}: {est['device']}, fitted on {est['fitted_on']} "
                     f"({est['fit_date'] or 'not dated'}); {check}.")
    return lines


def details_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Everything the summary leaves out: per-dataset PSNR/SSIM, complexity, NPU runner,
    source and error, one row per model."""
    extra = [c for c in table.columns if c.startswith(("psnr_", "ssim_"))]
    return display_frame(table, columns=DETAILS[:1] + tuple(extra) + DETAILS[1:])


def markdown_table(shown: pd.DataFrame) -> str:
    """A GitHub Markdown table of a display frame (numbers right-aligned)."""
    def cell(text) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    numeric = [any(is_number_text(v) for v in shown[c])
               and all(is_number_text(v) or v == "n.a." for v in shown[c]) for c in shown.columns]
    lines = ["| " + " | ".join(cell(c) for c in shown.columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |"
              for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def is_number_text(text) -> bool:
    """True for a formatted number such as '1,234' or '29.87'."""
    try:
        float(str(text).replace(",", ""))
    except ValueError:
        return False
    return True
