"""Whether a longer QAT (or one at a lower learning rate) validates better, weight by weight:
the QAT recipe for imported weights at its own steps and LR against longer and slower runs, on
the held-out images its runs validate on.

The recipe for imported weights (``mai_sr.recipes.IMPORTED_QAT``) was chosen on one model
(ABPN, ``benchmarks/qat_recipe.py``), where 1,000 steps and 300 were 0.01 dB apart. The zoo's
PReLU models lose far more in INT8 and their validation PSNR was still rising at step 1,000,
so each weight named here is trained again with each longer step count, and with
``--lr`` each lower learning rate at every count (same recipe otherwise, same seed; the
cosine schedule spans the whole run, so a longer run is a run of its own, not a
continuation), and the runs are compared on the held-out tenth of T91 + BSD200 (never a test
set). Going up the counts, and at each count from the recipe's LR down, a run is chosen when
it validates more than :data:`TIE_DB` above the one chosen so far; a chosen setting goes
into ``mai_sr.recipes.IMPORTED_QAT_CHANGES`` (then ``pretrained_table.py --write-recipes``,
``--measure NAME --ship``). Every weight and setting tried is reported, chosen or not.

    python benchmarks/qat_steps.py fsrcnn.etds_div2k,ecbsr_m6c40.etds_div2k [--steps 4000,12000]
    python benchmarks/qat_steps.py espcn_tanh_copies.etds_div2k --steps 4000 --lr 3e-5

Runs go to ``benchmarks/out/qat_steps/NAME-STEPS`` (``NAME-STEPS-lrLR`` at another LR; rerun
to resume). Results: ``benchmarks/results/qat_steps.json`` (merged by weight and setting): a
setting already recorded there is not trained again unless ``--rerun`` is given (each run
takes 5 to 90 minutes on 2 cores).
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


def other_lr(lr: float) -> str:
    """`lr` as ``%g`` where it is not the recipe's QAT LR, else "": runs at the recipe's LR
    keep the keys, folders and labels recorded before LRs were tried."""
    from mai_sr.recipes import IMPORTED_QAT

    return "" if lr == IMPORTED_QAT["qat_lr"] else f"{lr:g}"


def setting_label(steps: int, lr: float) -> str:
    """A QAT setting as tables print it: ``4000``, or ``4000 at LR 3e-05`` at another LR."""
    tag = other_lr(lr)
    return f"{steps}" + (f" at LR {tag}" if tag else "")


def run_key(steps: int, lr: float) -> str:
    """A run's key in the results: ``qat_steps_STEPS``, ``qat_steps_STEPS_lr_LR`` at another
    LR than the recipe's."""
    tag = other_lr(lr)
    return f"qat_steps_{steps}" + (f"_lr_{tag}" if tag else "")


def run_with(name: str, steps: int, lr: float) -> Path:
    """The run folder of weight `name`'s recipe with `steps` QAT steps at learning rate `lr`
    (the rest as IMPORTED_QAT), run or resumed in ``benchmarks/out/qat_steps/NAME-STEPS``
    (``NAME-STEPS-lrLR`` at another LR than the recipe's)."""
    from mai_sr.pretrained import recipe_path
    from mai_sr.recipes import run_recipe

    recipe = json.loads(recipe_path(name).read_text())
    tag = other_lr(lr)
    suffix = f"-lr{tag}" if tag else ""
    out = RUNS / "qat_steps" / f"{name}-{steps}{suffix}"
    out.mkdir(parents=True, exist_ok=True)
    for stage in recipe["stages"]:
        if "train" in stage:  # from IMPORTED_QAT, not from a setting chosen earlier
            stage["train"].update(qat_steps=steps, qat_lr=lr)
    recipe["name"] = f"{name}-qat{steps}{suffix}"
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
            "steps": summary["steps"], "lr": config["qat_lr"],
            "fp32_val": round(_val_psnr(fp32, val_pairs, config["scale"]), 4)}


def choose(runs: dict[tuple, dict]) -> tuple:
    """The (steps, lr) chosen from `runs` ((steps, lr) -> validation): going up the counts,
    and at each count from the highest LR down, each run that validates more than
    :data:`TIE_DB` above the one chosen so far replaces it."""
    settings = sorted(runs, key=lambda setting: (setting[0], -setting[1]))
    chosen = settings[0]
    for setting in settings[1:]:
        if runs[setting]["qat_val"] > runs[chosen]["qat_val"] + TIE_DB:
            chosen = setting
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", help="shipped weight names, comma-separated")
    parser.add_argument("--steps", default="4000",
                        help="the longer QAT step counts, comma-separated (default 4000)")
    parser.add_argument("--lr", default="",
                        help="lower QAT learning rates to try at every count, comma-separated "
                             "(default: the recipe's only)")
    parser.add_argument("--rerun", action="store_true",
                        help="train every setting again, even one recorded in the results")
    add_write_readme(parser)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = recorded("qat_steps")
    weights = results.setdefault("weights", {})
    from mai_sr.recipes import IMPORTED_QAT

    base = (IMPORTED_QAT["qat_steps"], IMPORTED_QAT["qat_lr"])
    counts = sorted({base[0], *(int(s) for s in args.steps.split(","))})
    lrs = [base[1], *(float(lr) for lr in args.lr.split(",") if lr)]
    for name in args.names.split(","):
        entry = weights.setdefault(name, {})
        for steps in counts:
            for lr in lrs:
                if args.rerun or run_key(steps, lr) not in entry:
                    entry[run_key(steps, lr)] = validation(run_with(name, steps, lr))
        runs = recorded_runs(entry)
        chosen = choose(runs)
        entry["chosen_steps"], entry["chosen_lr"] = chosen
        entry["gain_val"] = round(runs[chosen]["qat_val"] - runs[base]["qat_val"], 4)
        fp32 = runs[base]["fp32_val"]
        print(f"{name}: FP32 {fp32:.3f} dB on the held-out images; QAT " + ", ".join(
            f"{steps} steps at LR {lr:g} {run['qat_val']:.3f} (drop {fp32 - run['qat_val']:.3f})"
            for (steps, lr), run in runs.items())
            + f" -> {chosen[0]} steps at LR {chosen[1]:g}")
    results["rule"] = (f"held-out tenth of T91 + BSD200 (the runs' own split); going up the "
                       f"step counts, and at each count from the recipe's LR down, a run is "
                       f"chosen when it validates more than {TIE_DB} dB above the one chosen "
                       f"so far")
    results["measured_under"] = measured_under()
    publish("qat_steps", results, table(results), write_readme=args.write_readme)


def recorded_runs(entry: dict) -> dict[tuple, dict]:
    """A weight's recorded runs, by (steps, lr): shortest first, then from the highest LR."""
    runs = {(run["steps"], run["lr"]): run
            for key, run in entry.items() if key.startswith("qat_steps_")}
    return dict(sorted(runs.items(), key=lambda item: (item[0][0], -item[0][1])))


def table(results: dict) -> str:
    """The docs table: every weight tried, its held-out PSNR at every setting tried and the
    setting chosen."""
    from mai_sr.recipes import IMPORTED_QAT

    rows = [("| weight | FP32 | QAT by steps: PSNR (best step) | chosen | gain over the "
             "recipe's setting |"), "|---|---|---|---|---|"]
    for name, entry in sorted(results["weights"].items()):
        runs = recorded_runs(entry)
        cells = "; ".join(f"{setting_label(*key)}: {run['qat_val']:.3f} ({run['best_step']})"
                          for key, run in runs.items())
        chosen = setting_label(entry["chosen_steps"], entry["chosen_lr"])
        rows.append(f"| {name} | {next(iter(runs.values()))['fp32_val']:.3f} | {cells} | "
                    f"{chosen} | {entry['gain_val']:+.3f} |")
    legend = ("Held-out tenth of T91 + BSD200 (the QAT runs' own validation images), RGB "
              f"PSNR in dB, crop 3; LR {IMPORTED_QAT['qat_lr']:g} (the recipe's) unless "
              "stated; best step 0 = the calibrated start beat every QAT step; `python "
              "benchmarks/qat_steps.py NAMES --steps COUNTS [--lr LRS] --write-readme`.")
    return "\n".join([legend, "", *rows])


if __name__ == "__main__":
    main()
