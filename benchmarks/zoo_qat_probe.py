"""Two probes of the zoo's INT8 drops, on the held-out split of the training data only.

``settings``: the QAT recipe for imported weights (:data:`mai_sr.recipes.IMPORTED_QAT`) with
other settings, per zoo weight. Each setting is a copy of the weight's recipe file with its
QAT stage changed, replayed by ``mai-sr train --recipe`` into ``--work`` (resumable: a
finished run is read, not trained again); the result is the run's best validation PSNR
(fake-quant model, held-out tenth of T91 + BSD200) and the step it came from (0 = the
calibrated start beat every QAT step).

``flip``: PTQ of a zoo weight with :data:`mai_sr.models.qat.equalize.MIN_FLIP_SLOPE` at
other values (the smallest PReLU slope a channel may be turned with, which inverts it):
the drop of the fake-quant model against the imported FP32 model on the same held-out
images, calibrated on 16 training images as a QAT stage is.

    python benchmarks/zoo_qat_probe.py settings etds_m espcn [--settings TAG,...]
        [--work benchmarks/out/qat_probe]
    python benchmarks/zoo_qat_probe.py flip ecbsr_m6c40 [--slopes 0.01,0.1,1,1e9]

Writes ``benchmarks/results/zoo_qat_probe.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _publish import RESULTS, ROOT  # noqa: E402

OUT = RESULTS / "zoo_qat_probe.json"
RECIPES = ROOT / "mai_sr" / "pretrained" / "recipes"
SETTINGS = {"w1-lr1e-4-s1000": {"distill_weight": 1.0, "qat_lr": 1e-4, "qat_steps": 1000},
            "w1-lr3e-5-s3000": {"distill_weight": 1.0, "qat_lr": 3e-5, "qat_steps": 3000,
                                "val_every": 500},
            # a higher peak LR: does it reach in 4,000 steps what 1e-4 needs 12,000 for?
            "w0.5-lr3e-4-s4000": {"distill_weight": 0.5, "qat_lr": 3e-4, "qat_steps": 4000}}


def settings(arch: str, work: Path, tags: list[str]) -> dict:
    found = {}
    for tag in tags:
        change = SETTINGS[tag]
        recipe = json.loads((RECIPES / f"{arch}.etds_div2k.json").read_text())
        recipe["name"] = f"{arch}.probe-{tag}"
        recipe["stages"][1]["train"].update(change)
        work.mkdir(parents=True, exist_ok=True)
        path, out = work / f"{arch}-{tag}.json", work / f"{arch}-{tag}"
        path.write_text(json.dumps(recipe, indent=2))
        summary = out / "qat" / "summary.json"
        if not summary.is_file():
            subprocess.run([sys.executable, "-m", "mai_sr", "train", "--recipe", str(path),
                            "--out", str(out), "--quiet"] + (["--resume"] if out.exists() else []),
                           check=True, cwd=ROOT)
        qat = json.loads(summary.read_text())["qat"]
        found[tag] = {**change, "val_psnr": round(qat["val_psnr"], 4),
                      "best_step": qat["best_step"]}
        print(f"{arch} {tag}: val {qat['val_psnr']:.3f} dB, best step {qat['best_step']}")
    return found


def _split(work: Path):
    """(16 training pairs, the held-out pairs) of ``benchmarks/qat_recipe.py``'s split of
    T91 + BSD200 (every 10th image by path held out): every 10th of its first 160 training
    images, as a QAT stage calibrates on 16."""
    import itertools

    from qat_recipe import make_split

    from mai_sr.data import iter_pairs, load_pairs

    train, held = make_split(work)
    return list(itertools.islice(iter_pairs(str(train), scale=3), 0, 160, 10)), \
        load_pairs(str(held), scale=3)


def flip(arch: str, slopes: list[float], work: Path) -> dict:
    import numpy as np
    from int8_ablation import imported_weights

    from mai_sr.metrics import psnr
    from mai_sr.models import create_model
    from mai_sr.models.qat import equalize
    from mai_sr.models.qat.quantize import quantize_model

    fp32 = create_model(arch, scale=3, deploy=True)
    fp32.load_weights(str(imported_weights(f"{arch}.etds_div2k", work)))
    train, held = _split(work)

    def mean_psnr(model):
        return float(np.mean([psnr(np.clip(np.rint(np.asarray(model(
            p.lr[None].astype(np.float32), training=False))[0]), 0, 255).astype(np.uint8),
            p.hr, crop=3) for p in held]))

    base, found, default = mean_psnr(fp32), {}, equalize.MIN_FLIP_SLOPE
    try:
        for slope in slopes:
            equalize.MIN_FLIP_SLOPE = slope
            quantized = quantize_model(fp32, calibration=[p.lr[None].astype(np.float32)
                                                          for p in train])
            found[str(slope)] = round(mean_psnr(quantized) - base, 4)
            print(f"{arch} MIN_FLIP_SLOPE {slope}: drop {found[str(slope)]:+.3f} dB")
    finally:
        equalize.MIN_FLIP_SLOPE = default
    return {"fp32_val_psnr": round(base, 4), "drop_by_min_flip_slope": found,
            "default": default}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("probe", choices=("settings", "flip"))
    parser.add_argument("archs", nargs="+", help="zoo architectures (etds_m, espcn, ...)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "qat_probe")
    parser.add_argument("--slopes", default="0.01,0.1,1,1e9")
    parser.add_argument("--settings", default=",".join(SETTINGS),
                        help=f"settings to run (default all: {', '.join(SETTINGS)})")
    args = parser.parse_args(argv)
    unknown = set(args.settings.split(",")) - set(SETTINGS)
    if unknown:
        parser.error(f"unknown settings: {', '.join(sorted(unknown))}")
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for arch in args.archs:
        if args.probe == "settings":
            found = results.setdefault("settings", {}).setdefault(arch, {})
            found.update(settings(arch, args.work, args.settings.split(",")))
        else:
            results.setdefault("flip", {})[arch] = flip(
                arch, [float(s) for s in args.slopes.split(",")], args.work)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
