"""Whether a longer QAT validates better, weight by weight: the QAT recipe for imported
weights at its own steps against longer runs, on the held-out images its runs validate on.

The recipe for imported weights (``mai_sr.recipes.IMPORTED_QAT``) was chosen on one model
(ABPN, ``benchmarks/qat_recipe.py``), where 1,000 steps and 300 were 0.01 dB apart. The zoo's
PReLU models lose far more in INT8 and their validation PSNR was still rising at step 1,000,
so each weight named here is trained again with each longer step count (same recipe
otherwise, same seed; the cosine schedule spans the whole run, so a longer run is a run of
its own, not a continuation) and the runs are compared on the held-out tenth of T91 +
BSD200 (never a test set). Going up the counts, a longer run is chosen when it validates
more than :data:`TIE_DB` above the one chosen so far; a chosen count goes into
``mai_sr.recipes.IMPORTED_QAT_STEPS`` (then ``pretrained_table.py --write-recipes``,
``--measure NAME --ship``). Every weight and count tried is reported, chosen or not.

    python benchmarks/qat_steps.py fsrcnn.etds_div2k,ecbsr_m6c40.etds_div2k [--steps 4000,12000]

Runs go to ``benchmarks/out/qat_steps/NAME-STEPS`` (rerun to resume). Results:
``benchmarks/results/qat_steps.json`` (merged by weight and count): a count already recorded
there is not trained again unless ``--rerun`` is given (each run takes 10 to 90 minutes on
2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _publish import ROOT, add_write_readme, measured_under, publish, recorded  # noqa: E402

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


def choose(runs: dict[int, dict]) -> int:
    """The step count chosen from `runs` (count -> validation): going up the counts, each one
    that validates more than :data:`TIE_DB` above the count chosen so far replaces it."""
    counts = sorted(runs)
    chosen = counts[0]
    for steps in counts[1:]:
        if runs[steps]["qat_val"] > runs[chosen]["qat_val"] + TIE_DB:
            chosen = steps
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", help="shipped weight names, comma-separated")
    parser.add_argument("--steps", default="4000",
                        help="the longer QAT step counts, comma-separated (default 4000)")
    parser.add_argument("--rerun", action="store_true",
                        help="train every count again, even one recorded in the results")
    add_write_readme(parser)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = recorded("qat_steps")
    weights = results.setdefault("weights", {})
    from mai_sr.recipes import IMPORTED_QAT

    base = IMPORTED_QAT["qat_steps"]
    counts = sorted({base, *(int(s) for s in args.steps.split(","))})
    for name in args.names.split(","):
        entry = weights.setdefault(name, {})
        for steps in counts:
            if args.rerun or f"qat_steps_{steps}" not in entry:
                entry[f"qat_steps_{steps}"] = validation(run_with_steps(name, steps))
        runs = recorded_runs(entry)
        chosen = choose(runs)
        entry["chosen_steps"] = chosen
        entry["gain_val"] = round(runs[chosen]["qat_val"] - runs[base]["qat_val"], 4)
        fp32 = runs[base]["fp32_val"]
        print(f"{name}: FP32 {fp32:.3f} dB on the held-out images; QAT " + ", ".join(
            f"{steps} steps {run['qat_val']:.3f} (drop {fp32 - run['qat_val']:.3f})"
            for steps, run in runs.items()) + f" -> {chosen} steps")
    results["rule"] = (f"held-out tenth of T91 + BSD200 (the runs' own split); going up the "
                       f"step counts, a longer run is chosen when it validates more than "
                       f"{TIE_DB} dB above the count chosen so far")
    results["measured_under"] = measured_under()
    publish("qat_steps", results, table(results), write_readme=args.write_readme)


def recorded_runs(entry: dict) -> dict[int, dict]:
    """A weight's recorded runs, by step count, shortest first."""
    runs = {run["steps"]: run for key, run in entry.items() if key.startswith("qat_steps_")}
    return dict(sorted(runs.items()))


def table(results: dict) -> str:
    """The docs table: every weight tried, its held-out PSNR at every step count tried and
    the count chosen."""
    rows = ["| weight | FP32 | QAT by steps: PSNR (best step) | chosen | gain over the recipe's "
            "steps |", "|---|---|---|---|---|"]
    for name, entry in sorted(results["weights"].items()):
        runs = recorded_runs(entry)
        cells = "; ".join(f"{steps}: {run['qat_val']:.3f} ({run['best_step']})"
                          for steps, run in runs.items())
        rows.append(f"| {name} | {next(iter(runs.values()))['fp32_val']:.3f} | {cells} | "
                    f"{entry['chosen_steps']} | {entry['gain_val']:+.3f} |")
    return "\n".join(["Held-out tenth of T91 + BSD200 (the QAT runs' own validation images), "
                      "RGB PSNR in dB, crop 3; best step 0 = the calibrated start beat every "
                      "QAT step; `python benchmarks/qat_steps.py NAMES --steps COUNTS "
                      "--write-readme`.", "", *rows])


if __name__ == "__main__":
    main()
