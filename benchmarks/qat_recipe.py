"""Choose the QAT recipe for imported weights on a validation split of the TRAINING data,
then check it, unchanged, on models it was not chosen on.

Tuning never looks at Set5, Set14, B100 or Urban100 (test sets). The split is fixed by a
rule, not by hand: T91 + BSD200 (291 images) sorted by path, every 10th image (29) held out
for validation, the other 262 trained on. Both are folders of symbolic links under
``--work`` (never copies of the shared data).

    python benchmarks/qat_recipe.py tune    [--work benchmarks/out/qat_recipe]
    python benchmarks/qat_recipe.py check   [--recipe weight=0.5,steps=300,lr=3e-5]
    python benchmarks/qat_recipe.py table   # print what is in the JSON

``tune`` imports the tuning model (ETDS's DIV2K ABPN M4C28 x3, the one imported model with
an FP32 the toolkit did not make and no INT8 file to compare against, so the check models
stay unseen), runs QAT for every point of :data:`GRID` on the training part, exports each
run to INT8 and scores it on the held-out part (RGB PSNR, 3-pixel crop); the recipe with the
highest held-out INT8 PSNR wins (fewer steps on a tie within 0.002 dB). ``check`` applies the
chosen recipe to every other model with weights in ``../shared/artifacts`` and reports, for
each, INT8 vs FP32 (the drop) on the held-out split and on Set5/Set14/B100, and against the
authors' own INT8 file where one is published: every model, not the best.

Each run is a ``mai-sr train`` run directory; an interrupted script continues where it
stopped (finished runs are kept, an unfinished one resumes with ``--resume``). Results:
``benchmarks/results/qat_recipe.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS", SHARED / "artifacts"))
DATA = Path(os.environ.get("MAI_SR_DATA", SHARED / "data"))
RESULTS = ROOT / "benchmarks" / "results" / "qat_recipe.json"
TEST_SETS = ("Set5", "Set14", "B100")
HOLD_OUT_EVERY = 10  # every 10th training image (sorted by path) is validation
TIE_DB = 0.002       # recipes closer than this on validation count as tied

# The tuning model and the check models: name -> (source in ARTIFACTS, authors' INT8 files)
# name -> (architecture, source in ARTIFACTS, authors' INT8 files)
TUNE = ("etds_abpn", "abpn", "etds_abpn/ABPN_M4C28_x3.pth", {})
CHECK = {
    "nju_abpn": ("abpn", "nju_abpn/savedmodel",
                 {"authors' INT8 PTQ": "nju_abpn/base7_D4C28_bs16ps64_lr1e-3.tflite",
                  "authors' INT8 QAT": "nju_abpn/base7_D4C28_bs16ps64_lr1e-3_qat.tflite"}),
    "megsr_ncnet": ("ncnet", "megsr_ncnet/model_none.tflite",
                    {"authors' INT8": "megsr_ncnet/model_none.tflite"}),
}
# The recipe's knobs, and the values tried: the share of the loss that follows the imported
# FP32 model (0: plain QAT on HR), QAT steps, peak QAT learning rate. Loss L2, batch 16,
# LR patch 48, seed 0 throughout.
GRID = {"weight": (0.0, 0.5, 1.0), "steps": (300, 1000), "lr": (3e-5, 1e-4)}


def mai_sr(*args: str, quiet: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m mai_sr ARGS`` from the checkout; raise with its stderr on failure."""
    proc = subprocess.run([sys.executable, "-m", "mai_sr", *args], cwd=ROOT, text=True,
                          capture_output=quiet)
    if proc.returncode != 0:
        raise SystemExit(f"mai-sr {' '.join(args[:2])} failed:\n{proc.stderr}")
    return proc


def make_split(work: Path) -> tuple[Path, Path]:
    """(train folder, validation folder) of symlinks: every HOLD_OUT_EVERY-th image of
    T91 + BSD200 sorted by path is validation."""
    from mai_sr.data import image_files

    train, val = work / "split" / "train", work / "split" / "val"
    images = sorted(p for name in ("T91", "BSD200") for p in image_files(DATA / name))
    for folder in (train, val):
        folder.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(images):
        folder = val if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1 else train
        link = folder / f"{path.parent.name}_{path.name}"
        if not link.exists():
            link.symlink_to(path)
    return train, val


def import_weights(name: str, model: str, source: str, work: Path) -> Path:
    out = work / "weights" / f"{name}.weights.h5"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        mai_sr("import", str(ARTIFACTS / source), "--model", model, "--out", str(out))
    return out


def qat(weights: Path, recipe: dict, train: Path, val: Path, run: Path) -> Path:
    """A finished QAT run of `weights` with `recipe` (resumed if interrupted)."""
    if (run / "qat" / "qat.weights.h5").exists():
        return run
    if run.exists():
        mai_sr("train", "--out", str(run), "--resume", "--quiet")
        return run
    # weight 0: plain QAT on the HR images, no teacher
    teacher = ["--teacher", str(weights), "--distill-weight", str(recipe["weight"])] \
        if recipe["weight"] > 0 else []
    mai_sr("train", "--qat", "--from", str(weights), *teacher, "--qat-steps", str(recipe["steps"]),
           "--qat-lr", str(recipe["lr"]), "--loss", "l2", "--data", str(train),
           "--val", str(val), "--seed", "0", "--out", str(run), "--quiet", "--no-tensorboard")
    return run


def evaluate(model: Path, data: Path) -> float:
    """Mean RGB PSNR (3-pixel crop) of a .tflite (INT8 or float) on a folder, as
    `mai-sr eval` computes it."""
    from mai_sr.evaluate import evaluate_tflite

    result, = evaluate_tflite(model, [str(data)], quiet=True, require_int8=False)
    return round(result.psnr, 4)


def export(run: Path) -> Path:
    """The run's dynamic-shape INT8 file."""
    fixed = run / "int8.tflite"
    dynamic = run / "int8_none.tflite"
    if not dynamic.exists():
        mai_sr("export", str(fixed), "--run", str(run), "--dynamic", "--force")
    return dynamic


def fp32_tflite(weights: Path, model: str, work: Path) -> Path:
    """The imported FP32 model as a float TFLite file (the reference for the drop)."""
    out = work / "fp32" / f"{weights.name.split('.')[0]}.tflite"
    dynamic = out.with_name(out.stem + "_none.tflite")
    if not dynamic.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        mai_sr("export", str(out), "--model", model, "--weights", str(weights),
               "--precision", "fp32", "--dynamic", "--force")
    return dynamic


def recipe_name(recipe: dict) -> str:
    return f"w{recipe['weight']:g}-s{recipe['steps']}-lr{recipe['lr']:g}"


def load_results() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def save_results(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def tune(work: Path) -> dict:
    train, val = make_split(work)
    name, model, source, _ = TUNE
    weights = import_weights(name, model, source, work)
    results = load_results()
    tuned = results.setdefault("tune", {"model": name, "source": source, "runs": {}})
    tuned["fp32_val_psnr"] = evaluate(fp32_tflite(weights, model, work), val)
    save_results(results)
    for values in itertools.product(*GRID.values()):
        recipe = dict(zip(GRID, values))
        key = recipe_name(recipe)
        if key in tuned["runs"]:
            continue
        start = time.time()
        run = qat(weights, recipe, train, val, work / "runs" / name / key)
        psnr = evaluate(export(run), val)
        tuned["runs"][key] = {**recipe, "int8_val_psnr": psnr,
                              "drop_val": round(tuned["fp32_val_psnr"] - psnr, 4),
                              "minutes": round((time.time() - start) / 60, 1)}
        save_results(results)
        print(f"{key}: held-out INT8 {psnr:.3f} dB", flush=True)
    best = max(tuned["runs"].values(), key=lambda r: r["int8_val_psnr"])
    tied = [r for r in tuned["runs"].values() if best["int8_val_psnr"] - r["int8_val_psnr"] <= TIE_DB]
    chosen = min(tied, key=lambda r: (r["steps"], -r["int8_val_psnr"]))
    tuned["chosen"] = {k: chosen[k] for k in GRID}
    results["split"] = {"rule": f"T91 + BSD200 sorted by path, every {HOLD_OUT_EVERY}th held out",
                        "train": len(list(train.iterdir())), "val": len(list(val.iterdir()))}
    save_results(results)
    return tuned["chosen"]


def check(work: Path, recipe: dict) -> None:
    train, val = make_split(work)
    results = load_results()
    checked = results.setdefault("check", {})
    for name, (model, source, authors) in CHECK.items():
        if not (ARTIFACTS / source).exists():
            print(f"{name}: {ARTIFACTS / source} not present, skipped")
            continue
        weights = import_weights(name, model, source, work)
        run = qat(weights, recipe, train, val, work / "runs" / name / recipe_name(recipe))
        int8 = export(run)
        row = {"recipe": recipe, "val": {"int8": evaluate(int8, val)}}
        if name != "megsr_ncnet":  # MegSR publishes INT8 only: no FP32 to drop from
            fp32 = fp32_tflite(weights, model, work)
            row["val"]["fp32"] = evaluate(fp32, val)
        for test in TEST_SETS:
            row[test] = {"int8": evaluate(int8, DATA / test)}
            if "fp32" in row["val"]:
                row[test]["fp32"] = evaluate(fp32, DATA / test)
            for label, path in authors.items():
                row[test][label] = evaluate(ARTIFACTS / path, DATA / test)
        checked[name] = row
        save_results(results)
        print(name, json.dumps(row), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("stage", choices=("tune", "check", "table"))
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "qat_recipe")
    parser.add_argument("--recipe", help="weight=W,steps=N,lr=X (default: the tuned choice)")
    args = parser.parse_args()
    if args.stage == "tune":
        print("chosen:", tune(args.work))
    elif args.stage == "check":
        if args.recipe:
            recipe = {k: float(v) if k != "steps" else int(v)
                      for k, v in (item.split("=") for item in args.recipe.split(","))}
        else:
            recipe = load_results()["tune"]["chosen"]
        check(args.work, recipe)
    else:
        print(json.dumps(load_results(), indent=2))


if __name__ == "__main__":
    main()
