"""`mai-sr report`: evaluate, benchmark and lint every model, then write the leaderboard.

Inputs are run directories (their ``export/*.tflite``, exported first when there is none)
or ``.tflite`` files. ``X.tflite`` (fixed shape) and ``X_none.tflite`` (dynamic shape) are
one model, and so are ``X_time.tflite`` (fixed) and ``X.tflite`` (dynamic), as published
repositories name them: the fixed file is timed, linted and sized (the challenge's timing
model); the dynamic one, when present, is evaluated (whole images, no tiling). Every measurement is
cached in ``<out>/cache`` by file hash, data set fingerprint, runner and options
(:mod:`mai_sr.report.cache`), so a rerun with nothing changed only rewrites the outputs.

A measurement that fails (a float model the simulator rejects, a lint error, a model
LiteRT cannot run) is recorded in the model's row and card; the report goes on. Failures
other than :class:`MaiSrError` (bugs) also get their traceback in ``<out>/errors.log``.

The command in three parts: :mod:`mai_sr.report.inputs` (the models and data sets),
:mod:`mai_sr.report.measure` (every measurement of every model, cached, and the comparison
crops), and this module (the figures and the page files, written as one set).
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mai_sr import __version__
from mai_sr.errors import MaiSrError
from mai_sr.fileio import json_bytes, write_files
from mai_sr.report.cache import file_hash
from mai_sr.report.inputs import (ModelInput, card_file_name, resolve_datasets, resolve_inputs,
                                  scored_files)
from mai_sr.report.measure import GRID_CROP_LR, _Report

# ---------------------------------------------------------------- figures


def _training_curves(models: list[ModelInput]) -> list[dict]:
    """Loss and val PSNR series from each run's metrics.csv (stages placed one after another)."""
    from mai_sr.runs import METRICS_FILE, read_run_config

    curves = []
    for m in models:
        path = m.run_dir / METRICS_FILE if m.run_dir else None
        if path is None or not path.is_file():
            continue
        val_set = validation_set(read_run_config(m.run_dir))
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        offset = 0
        for stage in dict.fromkeys(r.get("stage", "") for r in rows):
            stage_rows = [r for r in rows if r.get("stage", "") == stage]
            xs = [offset + int(float(r["step"])) for r in stage_rows]
            for column, axis in (("loss", "loss"), ("val_psnr", "psnr")):
                ys = [float(r[column]) if r.get(column) not in (None, "") else None
                      for r in stage_rows]
                curves.append({"label": f"{m.name} {stage}".strip(), "x": xs, "y": ys,
                               "axis": axis, **({"val_set": val_set} if axis == "psnr" else {})})
            offset = max(xs, default=offset)
    return curves


def validation_set(config: dict) -> str:
    """The images a run validated on, in words: its --val folders, else the share of its
    training data held out ("held-out T91+BSD200")."""
    from mai_sr.data import split_sources

    def names(value) -> str:
        try:
            return "+".join(Path(item).name for item in split_sources(value or []))
        except MaiSrError:  # an empty setting in an old run's config
            return "?"

    if config.get("val"):
        return names(config["val"])
    return f"held-out {names(config.get('data') or 'builtin')}"


def _cached_figure(report: _Report, name: str, inputs, render) -> bytes:
    """A figure's PNG, re-rendered only when its inputs or the plotting code change."""
    from mai_sr.report import plots

    key = report.cache.key("plot", name=name, inputs=inputs, code=file_hash(Path(plots.__file__)))
    png = report.cache.get_bytes("plot", key)
    if png is None:
        png = render()
        report.cache.put_bytes("plot", key, png)
    return png


def _figures(report: _Report, models: list[ModelInput], table) -> list[dict]:
    from mai_sr.report import plots
    from mai_sr.report.table import MEASURED
    from mai_sr.score import C

    rows = table.to_dict("records")
    points = [{"label": r["model"], "psnr": r["psnr"], "runtime_ms": r["npu_ms"],
               "score": r["score"], "kind": "measured" if r["source"] == MEASURED else "published",
               "challenge": not r["score_caveat"]} for r in rows]
    bars = [{"label": r["model"], "delta": r["delta_psnr"],
             "kind": "measured" if r["source"] == MEASURED else "published"} for r in rows]
    # Each figure twice: for the page's width and for a phone's (the page picks one).
    figures = [
        {"file": "psnr_vs_runtime.png", "title": "PSNR vs NPU runtime",
         "caption": "Grey curves join points of equal final score 2^(2*PSNR)/(C*runtime): "
                    "moving up one curve at the same runtime costs 0.5 dB per doubling of "
                    "score. Hollow markers are not challenge scores (see the leaderboard's "
                    "score cells): measured PSNRs are on this report's data, published ones "
                    "on the challenge's DIV2K test images, so the two groups differ in images "
                    "as well as in device.",
         "png": _cached_figure(report, "psnr_runtime", [points, C],
                               lambda: plots.psnr_runtime_png(points, C)),
         "narrow_png": _cached_figure(report, "psnr_runtime_narrow", [points, C],
                                      lambda: plots.psnr_runtime_png(points, C, narrow=True))},
        {"file": "delta_psnr.png", "title": "PSNR drop FP32 -> INT8",
         "caption": "Keras FP32 network minus the INT8 TFLite file on the same images (a "
                    "shipped model's FP32 PSNR from its card); n.a. where no FP32 network was "
                    "available (bare .tflite inputs) or published.",
         "png": _cached_figure(report, "delta_psnr", bars, lambda: plots.delta_psnr_png(bars)),
         "narrow_png": _cached_figure(report, "delta_psnr_narrow", bars,
                                      lambda: plots.delta_psnr_png(bars, narrow=True))},
    ]
    curves = _training_curves(models)
    if curves:
        sets = sorted({c["val_set"] for c in curves if "val_set" in c})
        figures.append({"file": "training_curves.png", "title": "Training curves",
                        "caption": "From each run's metrics.csv: FP32 stage, then QAT. "
                                   + (f"Validation PSNR on {sets[0]}." if len(sets) == 1 else
                                      "The runs validated on different images "
                                      f"({'; '.join(sets)}): their validation PSNRs do not "
                                      "compare with each other."),
                        "png": _cached_figure(report, "training", curves,
                                              lambda: plots.training_curves_png(curves)),
                        "narrow_png": _cached_figure(
                            report, "training_narrow", curves,
                            lambda: plots.training_curves_png(curves, narrow=True))})
    grid = _grid(report, models)
    if grid:
        figures.append({"file": "comparison.png", "title": "Visual comparison",
                        "caption": f"HR crops of {GRID_CROP_LR}x{GRID_CROP_LR} LR pixels (the "
                                   "most detailed region of each image): HR, bicubic, then "
                                   "the output of each model of the most common scale "
                                   "(INT8 TFLite).",
                        "png": grid})
    return figures


def _grid(report: _Report, models: list[ModelInput]) -> bytes | None:
    from mai_sr.report import plots

    # One scale per grid (crops side by side must match): the most common of the models',
    # whose models are shown; the challenge's x3 on a tie.
    from collections import Counter

    from mai_sr.challenge import CHALLENGE_SCALE

    scales = {m.name: report.model_scale(m) for m in models}
    counts = Counter(s for s in scales.values() if s)
    if not counts:
        return None
    scale = max(counts, key=lambda s: (counts[s], s == CHALLENGE_SCALE))
    plan = report.grid_plan(scale)
    if not plan:
        return None
    methods = [("HR", "hr", None), ("bicubic", "bicubic", None)] + \
              [(m.name, "model", m.fidelity) for m in models if scales[m.name] == scale]
    # The figure depends only on the plan and the model files: a rerun decodes no crop.
    inputs = [plan, [(label, path and file_hash(path)) for label, _, path in methods]]

    def render() -> bytes:
        rows = []
        for item in plan:
            tiles = []
            for label, method, path in methods:
                tile = report.crop(item, method, path)
                if tile is None:  # failed model: a grey tile keeps the columns aligned
                    tile = np.full((GRID_CROP_LR * scale,) * 2 + (3,), 128, np.uint8)
                tiles.append((label, tile))
            rows.append({"title": f"{item['dataset']}/{item['image']}", "tiles": tiles})
        return plots.comparison_grid_png(rows)

    return _cached_figure(report, "grid", inputs, render)


# ---------------------------------------------------------------- entry point


def make_report(inputs=(), *, data, runners, out_dir, quiet: bool = False,
                runner_options: dict | None = None, cache_dir=None, pretrained=(),
                tflite=(), announce=None) -> Path:
    """Evaluate, lint and benchmark every model of `inputs`; write the report to `out_dir`.

    inputs: run directories, .tflite files and shipped model names. pretrained: shipped
    model names (``abpn`` or ``abpn.mai_builtin``; --pretrained). tflite: files the user
    exported from the runs among `inputs`, scored instead of the runs' own exports
    (--tflite). announce: called with one line per model naming the file(s) scored. data:
    data sources ('builtin', folders, or folder names under $MAI_SR_DATA), list or
    comma-separated; the first is the leaderboard's PSNR/SSIM. runners: names from
    `mai_sr.device` ("local" gives CPU ms, "synap"/"adb" NPU ms,
    "sim" an estimate per device profile, shown beside each other and never scored but for
    the VS680's).
    runner_options: {runner: {keyword: value}} for `mai_sr.device.get_runner` (e.g.
    {"local": {"min_runs": 5}}); part of the cache key. cache_dir: where the bicubic
    baselines shared with `mai-sr eval` live (default ``$XDG_CACHE_HOME/mai-sr``).

    Writes leaderboard.csv, leaderboard.md, plots/*.png, index.html, cards/<model>.json and
    cache/ (reused by the next call). Returns `out_dir`.
    """
    from mai_sr.device import list_runners
    from mai_sr.report.page import render_page
    from mai_sr.report.challenge import citation
    from mai_sr.report.table import (details_frame, leaderboard, measured_rows,
                                     published_frame, summary_frame)

    runners = list(runners.split(",") if isinstance(runners, str) else runners)
    unknown = [r for r in runners if r not in list_runners()]
    if unknown:
        raise MaiSrError(f"--runner {','.join(unknown)}: unknown (choose from "
                         f"{', '.join(list_runners())})")
    datasets = resolve_datasets(data)
    models = resolve_inputs(inputs, tflite, pretrained)
    for model in models if announce else ():
        announce(scored_files(model))
    out = Path(out_dir)
    report = _Report(out, datasets, runners, dict(runner_options or {}), cache_dir)

    with tqdm(models, desc="report", unit="model", disable=quiet) as bar:
        cards = [report.model_card(model, bar) for model in bar]
    # Every page file is written as one set at the end (fileio.write_files): a full disk
    # leaves the previous report whole instead of half of a new one.
    pages: dict[Path, bytes] = {}
    for card in cards:
        pages[out / "cards" / card_file_name(card["name"])] = json_bytes(card)
        for line in card["errors"]:
            if not quiet:
                tqdm.write(f"{card['name']}: {line}")

    names = [d.name for d in datasets]
    table = leaderboard(cards, names)
    pages[out / "leaderboard.csv"] = table.to_csv(index=False, float_format="%.6g").encode()
    ours = measured_rows(table)
    published = published_frame(table)
    notes = _notes(names, runners, cards)
    title = f"mai-sr report: {len(cards)} model(s) on {', '.join(names)}"
    headings = _headings(names, runners)
    estimates, about_estimates = _estimates(ours, cards)
    pages[out / "leaderboard.md"] = _markdown(title, headings, summary_frame(ours), notes,
                                              (estimates, about_estimates), published).encode()

    figures = _figures(report, models, table)
    for fig in figures:
        pages[out / "plots" / fig["file"]] = fig["png"]  # the phone versions: in the page only
    intro = [f"Generated by mai-sr {__version__} on {datetime.now():%Y-%m-%d %H:%M}.",
             f"Data: {', '.join(f'{d.name} ({d.source})' for d in datasets)}. "
             f"Runners: {', '.join(runners)}."]
    pages[out / "index.html"] = render_page(
        title=title, intro=intro, headings=headings,
        summary=summary_frame(ours, with_caveats=False), details=details_frame(ours),
        statuses=list(ours["status"]), caveats=list(ours["score_caveat"]),
        published=published, notes=notes, estimates=estimates, estimate_notes=about_estimates,
        references=[(citation(key), url) for key, url in _references()],
        figures=figures, cards=cards).encode()
    if report.error_log:
        pages[out / "errors.log"] = ("\n".join(report.error_log) + "\n").encode()
    write_files(pages)
    return out


def _estimates(ours, cards: list[dict]):
    """The per-device estimates table (empty without the sim runner) and its notes."""
    from mai_sr.report.table import ESTIMATES_NOTE, estimate_notes, estimates_frame

    frame = estimates_frame(ours)
    return frame, (ESTIMATES_NOTE + estimate_notes(cards) if not frame.empty else [])


def _markdown(title: str, headings: dict[str, str], summary, notes: list[str], estimates,
              published) -> str:
    """leaderboard.md: the leaderboard and its notes, the per-device estimates (a frame and
    its notes; none when the frame is empty), the published rows and the references."""
    from mai_sr.report.challenge import citation
    from mai_sr.report.table import ESTIMATES_HEADING, markdown_table

    frame, about = estimates
    return (f"# {title}\n\n## {headings['measured']}\n\n" + markdown_table(summary)
            + "\n" + "".join(f"- {n}\n" for n in notes)
            + (f"\n## {ESTIMATES_HEADING}\n\n" + markdown_table(frame) + "\n"
               + "".join(f"- {n}\n" for n in about) if not frame.empty else "")
            + (f"\n## {headings['published']}\n\n" + markdown_table(published)
               if not published.empty else "")
            + "\n" + "".join(f"- {citation(key)}: {url}\n" for key, url in _references()))


def _references() -> list[tuple[str, str]]:
    """(key, link) of the papers the page cites."""
    from mai_sr.report.challenge import REFERENCES

    return [(key, ref[3]) for key, ref in REFERENCES.items()]


def _headings(datasets: list[str], runners: list[str]) -> dict[str, str]:
    """The two tables' headings: where each one's numbers were measured."""
    from mai_sr.report.challenge import TABLE1
    from mai_sr.report.table import PUBLISHED_DEVICE, PUBLISHED_TEST_SET

    device = {"synap": "simulated VS680 NPU", "adb": "Android device", "local": "this CPU",
              "sim": "simulated VS680 NPU"}  # sim's other profiles: the estimates' table
    timed = ", ".join(dict.fromkeys(device[r] for r in runners if r in device)) or "no runtime"
    return {"measured": f"Measured here: PSNR on {datasets[0]}, times on {timed}",
            "published": f"Published: {TABLE1}, PSNR on {PUBLISHED_TEST_SET}, times on "
                         f"{PUBLISHED_DEVICE}"}


def _notes(datasets: list[str], runners: list[str], cards: list[dict]) -> list[str]:
    from mai_sr.report.challenge import TABLE1
    from mai_sr.score import C

    notes = [f"PSNR/SSIM: RGB, border crop = the model's scale, mean over {datasets[0]} (the "
             "INT8 TFLite file; its dynamic-shape variant when there is one).",
             "dPSNR FP32->INT8: the Keras FP32 network minus the INT8 file on the same "
             "images: a run's network scored here, or a shipped model's FP32 PSNR from its own "
             "card (where the card's INT8 PSNR on these images equals this report's); n.a. for "
             "other .tflite inputs."]
    if "local" in runners:
        notes.append("CPU ms: this machine's CPU (LiteRT, local runner). The CPU column of "
                     f"{TABLE1} is the VS680's own CPU, so CPU times and speed-ups are not "
                     "comparable with the published rows.")
    if "synap" in runners:
        notes.append("NPU ms from the synap runner is the SyNAP simulator's estimate for the "
                     "VS680 NPU, not a measurement on hardware.")
    elif "sim" in runners:
        notes.append("NPU ms from the sim runner's vs680-synap profile is the SyNAP "
                     "simulator's estimate for the VS680 NPU, not a measurement on hardware.")
    if "vela" in runners:
        notes.append("Vela: Arm Vela's estimate for an Ethos-U NPU (configuration, system "
                     "config and memory mode in each model card), with the share of ops it "
                     "places on the NPU; shown in the model cards, not used for the score.")
    notes.append(f"Final score: 2^(2*PSNR) / (C * NPU ms), C = {C:.6g} (fitted to {TABLE1}). "
                 "A score computed on other images, at another scale or input size, or from "
                 "a simulated or other device's runtime says so in its cell: it ranks models "
                 "within this report but is not comparable with the challenge's scores.")
    if any(c["architecture"] for c in cards):
        notes.append(f"The published table copies {TABLE1} for the same architectures, for "
                     "reference: its PSNRs are on the challenge's DIV2K test images and its "
                     "times from a real VS680, so they do not compare with the numbers above "
                     "cell for cell; the architecture comes from each file's provenance (its "
                     "sidecar or embedded metadata).")
    notes.append("Params, GFLOPs (2 x MACs) and activations at the timing input are counted "
                 "as in the AIM 2020 and NTIRE 2023 efficient-SR challenges.")
    return notes
