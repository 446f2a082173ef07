"""Published weights imported into mai-sr, quantized the mai-sr way, against the authors' own
INT8 files.

For each published model in ``../shared/artifacts`` that has weights:

- **ETDS ABPN** (PyTorch ``.pth``, FP32, DIV2K-trained; no INT8 file published),
- **NJU ABPN** (TF SavedModel FP32 + the authors' INT8 PTQ and QAT ``.tflite``),
- **MegSR NCNet** (INT8 ``.tflite`` only: its FP32 is not published, so the import starts from
  the dequantized INT8 weights),

the weights go through ``mai_sr.importer.import_weights`` and then

- **mai-sr PTQ**: ``export --weights`` calibrated on 100 LR crops of T91 (``--calib``);
- **mai-sr QAT**: ``train --qat --from W.weights.h5`` on T91 + BSD200 (no FP32 stage: that
  would fine-tune DIV2K weights on 291 small images), exported from the run. Runs are given
  with ``--qat-run NAME=RUN`` (see the README); a missing one is reported as "not run".

Every dynamic-shape INT8 file and the imported FP32 Keras model (output rounded to uint8) are
scored on Set5 / Set14 / B100 (Pillow bicubic LR, 3-pixel border crop), RGB and BT.601 Y
from the same upscaled images. Target: mai-sr's INT8 >= the authors' own INT8 + 0.02 dB (RGB)
on every set.

    python benchmarks/imported.py [--work benchmarks/out/imported] [--qat-run nju=RUN ...]
        [--reuse] [--write-readme]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from _publish import add_write_readme, publish

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS", SHARED / "artifacts"))
DATA = Path(os.environ.get("MAI_SR_DATA", SHARED / "data"))
SETS = ("Set5", "Set14", "B100")
TARGET_MARGIN = 0.02  # dB over the authors' best INT8 file, every set, RGB
CALIB = "T91"

# name -> (label, source relative to ARTIFACTS, model, {authors' INT8 label: file})
IMPORTS = {
    "etds": ("ETDS ABPN (PyTorch .pth)", "etds_abpn/ABPN_M4C28_x3.pth", "abpn", {}),
    "nju": ("NJU ABPN (SavedModel)", "nju_abpn/savedmodel", "abpn",
            {"authors' INT8 PTQ": "nju_abpn/base7_D4C28_bs16ps64_lr1e-3.tflite",
             "authors' INT8 QAT": "nju_abpn/base7_D4C28_bs16ps64_lr1e-3_qat.tflite"}),
    "megsr": ("MegSR NCNet (INT8 .tflite)", "megsr_ncnet/model_none.tflite", "ncnet",
              {"authors' INT8": "megsr_ncnet/model_none.tflite"}),
}
# The FP32 of these is the authors' own (the import equals it); MegSR publishes INT8 only.
AUTHORS_FP32 = {"etds", "nju"}


def _pairs():
    from mai_sr.data import load_pairs

    return {name: load_pairs(str(DATA / name), scale=3) for name in SETS}


def _score(upscale, pairs) -> dict:
    """{set: {"rgb": dB, "y": dB}} for an `upscale(lr) -> uint8 SR` function."""
    from mai_sr.metrics import psnr

    out = {}
    for name, items in pairs.items():
        rgb, y = [], []
        for pair in items:
            sr = upscale(pair.lr)
            rgb.append(psnr(sr, pair.hr, crop=3))
            y.append(psnr(sr, pair.hr, crop=3, y_channel=True))
        out[name] = {"rgb": round(float(np.mean(rgb)), 3), "y": round(float(np.mean(y)), 3)}
    return out


def _tflite_scores(path, pairs) -> dict:
    from mai_sr.tflite.runtime import TFLiteSR

    model = TFLiteSR(path, 2)
    return _score(model.upscale, pairs)


def _keras_scores(weights, model_name, pairs) -> dict:
    from mai_sr.models import create_model

    model = create_model(model_name, deploy=True)
    model.load_weights(str(weights))

    def upscale(lr):
        sr = model(lr[None].astype(np.float32), training=False).numpy()[0]
        return np.clip(np.rint(sr), 0, 255).astype(np.uint8)

    return _score(upscale, pairs)


def _previous() -> dict:
    """The imports of the last published result (``--reuse``), or {}."""
    import json

    from _publish import result_path

    path = result_path("imported")
    return json.loads(path.read_text()).get("imports", {}) if path.is_file() else {}


def _recipe(run_dir) -> dict:
    """The QAT settings of a run (its config.json), for the result."""
    from mai_sr.runs import read_run_config

    config = read_run_config(run_dir)
    data = "+".join(Path(d).name for d in str(config.get("data", "")).split(","))
    teacher = config.get("teacher")
    return {k: config.get(k) for k in ("qat_steps", "qat_lr", "qat_loss", "batch", "patch",
                                       "weight_clip", "seed")} | {
        "data": data,
        # the name only: no local paths in results
        "teacher": Path(teacher).name if teacher else None,
        "distill_weight": config.get("distill_weight") if teacher else None}


def run(work: Path, qat_runs: dict, only, reuse: bool = False) -> dict:
    from mai_sr.export.convert import export
    from mai_sr.importer import import_weights

    pairs = _pairs()
    previous = _previous() if reuse else {}
    rows = {}
    for key, (label, source, model_name, authors) in IMPORTS.items():
        if only and key not in only:
            continue
        if not (ARTIFACTS / source).exists():
            print(f"{key}: {ARTIFACTS / source} absent, skipped")
            continue
        out = work / key
        out.mkdir(parents=True, exist_ok=True)
        weights = out / f"{key}.weights.h5"
        result = import_weights(ARTIFACTS / source, model_name, weights)
        print(result.summary(), flush=True)
        entry = {"label": label, "model": model_name, "source": source,
                 "conventions": result.conventions, "sanity_gate": result.gate, "rows": {}}
        # --reuse: rows measured before on the same source (files and weights unchanged)
        old = previous.get(key, {})
        kept = old.get("rows", {}) if old.get("source") == source else {}
        entry["rows"].update({k: v for k, v in kept.items() if k != "mai-sr INT8 QAT"})
        fp32_name = "authors' FP32" if key in AUTHORS_FP32 else "imported FP32 (dequantized)"
        if fp32_name not in entry["rows"]:
            entry["rows"][fp32_name] = _keras_scores(weights, model_name, pairs)
        for variant, file in authors.items():
            if variant not in entry["rows"]:
                entry["rows"][variant] = _tflite_scores(ARTIFACTS / file, pairs)
        if "mai-sr INT8 PTQ" not in entry["rows"]:
            ptq = export(out / f"{key}_ptq.tflite", model=model_name, weights=str(weights),
                         dynamic=True, calib=str(DATA / CALIB))
            entry["rows"]["mai-sr INT8 PTQ"] = _tflite_scores(ptq[-1], pairs)
        if key in qat_runs:
            qat = export(out / f"{key}_qat.tflite", run=qat_runs[key], dynamic=True)
            entry["rows"]["mai-sr INT8 QAT"] = _tflite_scores(qat[-1], pairs)
            entry["qat_run"] = Path(qat_runs[key]).name  # the name: no local paths in results
            entry["qat_recipe"] = _recipe(qat_runs[key])
        theirs = [v for k, v in entry["rows"].items() if k.startswith("authors' INT8")]
        if theirs:
            best = {s: max(r[s]["rgb"] for r in theirs) for s in SETS}
            entry["margin_over_authors_int8_rgb"] = {
                k: {s: round(v[s]["rgb"] - best[s], 3) for s in SETS}
                for k, v in entry["rows"].items() if k.startswith("mai-sr")}
        rows[key] = entry
        print(key, {k: {s: v[s]["rgb"] for s in SETS} for k, v in entry["rows"].items()},
              flush=True)
    return rows


def readme_table(rows: dict) -> str:
    lines = ["| model | weights | " + " | ".join(f"{s} RGB / Y" for s in SETS) +
             " | mai-sr over authors' best INT8 (RGB) |",
             "|---|---|" + "---|" * len(SETS) + "---|"]
    for key, entry in rows.items():
        variants = list(entry["rows"].items())
        if key not in AUTHORS_FP32:
            variants.insert(0, ("authors' FP32", None))
        if "mai-sr INT8 QAT" not in entry["rows"]:
            variants.append(("mai-sr INT8 QAT", "not run"))
        for variant, scores in variants:
            if scores is None or scores == "not run":
                cells = ["n.a." if scores is None else "not run"] * len(SETS)
            else:
                cells = [f"{scores[s]['rgb']:.2f} / {scores[s]['y']:.2f}" for s in SETS]
            margin = entry.get("margin_over_authors_int8_rgb", {}).get(variant)
            margin_text = (" / ".join(f"{margin[s]:+.3f}" for s in SETS) if margin else "")
            lines.append(f"| {entry['label']} | {variant} | " + " | ".join(cells) +
                         f" | {margin_text} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "imported"))
    parser.add_argument("--qat-run", action="append", default=[], metavar="NAME=RUN",
                        help="a QAT run of an import (NAME: etds, nju, megsr)")
    parser.add_argument("--only", default=None, help="comma-separated subset of etds,nju,megsr")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the FP32, authors' and PTQ rows of the last result; "
                             "measure only what is missing (e.g. new QAT runs)")
    add_write_readme(parser)
    args = parser.parse_args(argv)
    qat_runs = dict(item.split("=", 1) for item in args.qat_run)
    unknown = set(qat_runs) - set(IMPORTS)
    if unknown:
        parser.error(f"--qat-run: unknown name(s) {', '.join(sorted(unknown))}")
    only = set(args.only.split(",")) if args.only else None
    rows = run(Path(args.work), qat_runs, only, reuse=args.reuse)
    if only:  # keep the other imports of the last result
        rows = {**{k: v for k, v in _previous().items() if k not in rows}, **rows}
        rows = {k: rows[k] for k in IMPORTS if k in rows}
    result = {"sets": list(SETS), "calibration": CALIB, "crop": 3,
              "target_margin_db": TARGET_MARGIN, "imports": rows}
    publish("imported", result, readme_table(rows), write_readme=args.write_readme)
    print(readme_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
