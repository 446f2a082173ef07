"""Whether a longer QAT validates better, weight by weight: the QAT recipe for imported
weights at its own steps against more steps, on the held-out images its runs validate on.

The recipe for imported weights (``mai_sr.recipes.IMPORTED_QAT``) was chosen on one model
(ABPN, ``benchmarks/qat_recipe.py``), where 1,000 steps and 300 were 0.01 dB apart. The zoo's
PReLU models lose far more in INT8 and their validation PSNR was still rising at step 1,000,
so each weight named here is trained again with more QAT steps (same recipe otherwise, same
seed) and the two runs are compared on the held-out tenth of T91 + BSD200 (never a test
set). The longer run is chosen when it validates more than :data:`TIE_DB` higher; a chosen
count goes into ``mai_sr.recipes.IMPORTED_QAT_STEPS`` (then ``pretrained_table.py
--write-recipes``, ``--measure NAME --ship``). Every weight tried is reported, chosen or not.

    python benchmarks/qat_steps.py fsrcnn.etds_div2k,ecbsr_m6c40.etds_div2k [--steps 4000]

Both runs go to ``benchmarks/out/qat_steps/NAME-STEPS`` (rerun to resume). Results:
``benchmarks/results/qat_steps.json`` (merged by weight).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _publish import RESULTS, ROOT, add_write_readme, measured_under, publish  # noqa: E402

OUT = RESULTS / "qat_steps.json"
RUNS = ROOT / "benchmarks" / "out"
TIE_DB = 0.002  # as benchmarks/qat_recipe.py: closer than this on validation is a tie


def run_with_steps(name: str, steps: int) -> Path:
    """The run folder of weight `name`'s recipe with `steps` QAT steps (the rest as shipped),
    run or resumed in ``benchmarks/out/qat_steps/NAME-STEPS``."""
    from mai_sr.pretrained import recipe_path
    from mai_sr.recipes import run_recipe

    recipe = json.loads(recipe_path(name).read_text())
    out = RUNS / "qat_steps" / f"{name}-{steps}"
    out.mkdir(parents=True, exist_ok=True)
    for stage in recipe["stages"]:
        if "train" in stage:
            stage["train"]["qat_steps"] = steps
    recipe["name"] = f"{name}-qat{steps}"
    path = out / "recipe.in.json"
    path.write_text(json.dumps(recipe, indent=1) + "\n")
    run_recipe(path, out, quiet=True, tensorboard=False)
    return out


def validation(run: Path) -> dict:
    """Best validation PSNR of a recipe run's QAT stage, its step, and the imported FP32
    model's PSNR on the same held-out images."""
    from mai_sr.recipes import IMPORTED
    from mai_sr.runs import load_deploy_weights, read_run_config
    from mai_sr.train.config import TrainConfig, teacher_architecture
    from mai_sr.train.loop import _load_data, _val_psnr

    summary = json.loads((run / "qat" / "summary.json").read_text())["qat"]
    config = read_run_config(run / "qat")
    # The same held-out images as the run's (its data, patch and val_fraction).
    split = TrainConfig(model=config["model"], data=config["data"], patch=config["patch"],
                        val_fraction=config["val_fraction"])
    _, val_pairs, _ = _load_data(split)
    weights = run / "import" / IMPORTED
    fp32 = load_deploy_weights(weights, teacher_architecture(weights), config["scale"])
    return {"qat_val": round(summary["val_psnr"], 4), "best_step": summary["best_step"],
            "steps": summary["steps"], "fp32_val": round(_val_psnr(fp32, val_pairs,
                                                                   config["scale"]), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", help="shipped weight names, comma-separated")
    parser.add_argument("--steps", type=int, default=4000, help="the longer QAT (default 4000)")
    add_write_readme(parser)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = json.loads(OUT.read_text()) if OUT.exists() else {}
    weights = results.setdefault("weights", {})
    from mai_sr.recipes import IMPORTED_QAT

    for name in args.names.split(","):
        shipped, longer = (validation(run_with_steps(name, s))
                           for s in (IMPORTED_QAT["qat_steps"], args.steps))
        gain = longer["qat_val"] - shipped["qat_val"]
        weights[name] = {f"qat_steps_{shipped['steps']}": shipped,
                         f"qat_steps_{args.steps}": longer,
                         "gain_val": round(gain, 4),
                         "chosen_steps": args.steps if gain > TIE_DB else shipped["steps"]}
        print(f"{name}: FP32 {shipped['fp32_val']:.3f} dB on the held-out images; QAT "
              f"{shipped['steps']} steps {shipped['qat_val']:.3f} (drop "
              f"{shipped['fp32_val'] - shipped['qat_val']:.3f}), {args.steps} steps "
              f"{longer['qat_val']:.3f} (drop {longer['fp32_val'] - longer['qat_val']:.3f}): "
              f"{gain:+.3f} dB -> {weights[name]['chosen_steps']} steps")
    results["rule"] = (f"held-out tenth of T91 + BSD200 (the runs' own split); more steps "
                       f"chosen when they validate more than {TIE_DB} dB higher")
    results["measured_under"] = measured_under()
    publish("qat_steps", results, table(results), write_readme=args.write_readme)


def table(results: dict) -> str:
    """The docs table: every weight tried, its held-out PSNRs and the steps chosen."""
    rows = ["| weight | FP32 | QAT, recipe steps (best step) | QAT, more steps (best step) | "
            "gain | chosen |", "|---|---|---|---|---|---|"]
    for name, entry in sorted(results["weights"].items()):
        base, more = sorted((v for k, v in entry.items() if k.startswith("qat_steps_")),
                            key=lambda run: run["steps"])
        cell = lambda run: (f"{run['qat_val']:.3f} ({run['best_step']} of "  # noqa: E731
                            f"{run['steps']})")
        rows.append(f"| {name} | {base['fp32_val']:.3f} | {cell(base)} | {cell(more)} | "
                    f"{entry['gain_val']:+.3f} | {entry['chosen_steps']} |")
    return "\n".join(["Held-out tenth of T91 + BSD200 (the QAT runs' own validation images), "
                      "RGB PSNR in dB, crop 3; `python benchmarks/qat_steps.py NAMES "
                      "--write-readme`.", "", *rows])


if __name__ == "__main__":
    main()
