"""How much does INT8 cost? FP32 vs INT8 post-training quantization vs INT8 QAT, with and
without weight clipping, for the four models.

Training is ``benchmarks/pretrain.sh`` (the very runs behind the shipped pretrained models):
for each model FP32 then QAT on T91 + BSD200 from ``../shared/data`` (validation Set5), once
with weight clipping (``<work>/<model>``, the default recipe) and once without
(``<work>/<model>-noclip``). Runs already in ``--work`` are reused (a finished run is
skipped, an interrupted one resumed); missing ones are trained ``--jobs`` at a time, each
process pinned to its own core (on 2 cores two single-threaded trainings beat one
two-threaded one). Then, for every run, two dynamic-shape INT8 files are exported with
``mai_sr.export.convert`` (PTQ from the FP32 weights, calibrated on LR crops of the training
images; QAT from the run) and PSNR (RGB, border crop 3) is measured on Set14 and B100 for:

- bicubic, the Keras FP32 deploy model (output rounded to uint8, like any image),
- LiteRT INT8 PTQ and LiteRT INT8 QAT (the exported files, uint8 in/out),
- the Keras QAT (fake-quant) model, to check that the export keeps what QAT learned.

Targets: QAT INT8 within 0.05 dB of FP32 for every model; QAT better than PTQ;
weight clipping measurably helping the models with a skewed first layer (the first conv's
per-channel skew is reported: |mean|/std and max|w|/std).

    python benchmarks/qat_quality.py [--models abpn,ncnet,scsrn,xcat] [--steps 10000]
        [--qat-steps 1000] [--clip on,off] [--jobs 2] [--work benchmarks/out/pretrain]

Default budget: 10000 FP32 + 1000 QAT steps per run (batch 16, LR patch 48); the eight
trainings take about 2 x 55 minutes on this 2-core machine with --jobs 2, half of it shared
with the pretrained models. Writes ``benchmarks/results/qat_quality.json`` and rewrites the
table between the ``qat_quality`` markers in the README's ``train`` section.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np

from _publish import add_write_readme, update_readme

from mai_sr.fileio import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "qat_quality.json"
DATA = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
EVAL_SETS = ("Set14", "B100")
TARGET_QAT_DROP = 0.05  # dB
MEASURABLE = 0.01  # dB: a smaller difference between two trainings is noise here


def shared(name: str) -> str:
    path = DATA / name
    if not path.is_dir():
        raise SystemExit(f"qat_quality: {path} not found (set MAI_SR_DATA)")
    return str(path)


def keras_sr(model, lr: np.ndarray) -> np.ndarray:
    out = model(lr[None].astype(np.float32), training=False).numpy()[0]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def mean_psnr(upscale, pairs) -> float:
    from mai_sr.metrics import psnr

    return float(np.mean([psnr(upscale(p.lr), p.hr, crop=3) for p in pairs]))


def first_layer_skew(deploy) -> dict:
    """How skewed conv1's per-channel weights are, and what that costs in int8: mean over
    channels of max|w| / std and |mean| / std, and the relative RMS error of TFLite's
    symmetric per-channel int8 weights (step max|w_c| / 127), the error clipping targets."""
    kernel = deploy.get_layer("conv1").kernel.numpy().reshape(-1, deploy.get_layer("conv1").filters)
    std = kernel.std(axis=0) + 1e-12
    step = np.abs(kernel).max(axis=0) / 127
    quantized = np.round(kernel / step) * step
    return {"max_abs_over_std": float(np.mean(np.abs(kernel).max(axis=0) / std)),
            "abs_mean_over_std": float(np.mean(np.abs(kernel.mean(axis=0)) / std)),
            "int8_rel_rms_error": float(np.sqrt(np.mean((quantized - kernel) ** 2) /
                                                np.mean(kernel ** 2)))}


def run_dir(args, name: str, clip: bool) -> Path:
    return Path(args.work) / (name if clip else f"{name}-noclip")


def train_all(variants: list[tuple[str, bool]], args) -> None:
    """Train the missing runs with benchmarks/pretrain.sh, `args.jobs` processes at a time,
    each pinned to one core. A run dir with another budget is an error, not a silent reuse."""
    from mai_sr.runs import read_run_config

    if args.steps is not None:
        for name, clip in variants:
            config_file = run_dir(args, name, clip) / "config.json"
            if config_file.is_file():
                config = read_run_config(config_file.parent)
                if (config["steps"], config["qat_steps"]) != (args.steps, args.qat_steps):
                    raise SystemExit(f"qat_quality: {config_file.parent} was trained for "
                                     f"{config['steps']}+{config['qat_steps']} steps, not "
                                     f"{args.steps}+{args.qat_steps}; choose another --work")
    todo = [(n, c) for n, c in variants
            if not (run_dir(args, n, c) / "qat" / "qat.weights.h5").is_file()]
    cores = sorted(os.sched_getaffinity(0))
    running: list[subprocess.Popen] = []
    for i, (name, clip) in enumerate(todo):
        while len(running) >= args.jobs:
            running[0].wait()
            running = [p for p in running if p.poll() is None]
        core = cores[i % len(cores)]
        env = {**os.environ, "WEIGHT_CLIP": "on" if clip else "off", "PRETRAIN_OUT": args.work,
               "QAT_STEPS": str(args.qat_steps)}
        if args.steps is not None:
            env["STEPS"] = str(args.steps)
        print(f"training {run_dir(args, name, clip)} on core {core}", flush=True)
        with open(run_dir(args, name, clip).with_suffix(".log"), "ab") as log:  # the child keeps it
            running.append(subprocess.Popen(
                [str(ROOT / "benchmarks" / "pretrain.sh"), name], env=env, stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda core=core: os.sched_setaffinity(0, {core})))
    failed = [p.args for p in running if p.wait() != 0]
    missing = [str(run_dir(args, n, c)) for n, c in variants
               if not (run_dir(args, n, c) / "qat" / "qat.weights.h5").is_file()]
    if failed or missing:
        raise SystemExit(f"qat_quality: training did not finish: {', '.join(missing)} "
                         "(logs beside the run folders)")


def run_variant(name: str, clip: bool, args, eval_pairs) -> dict:
    from mai_sr.data import bicubic_upscale
    from mai_sr.export.convert import export
    from mai_sr.tflite.runtime import TFLiteSR
    from mai_sr.runs import FP32_DEPLOY_WEIGHTS
    from mai_sr.runs import load_run_model

    run_dir_ = run_dir(args, name, clip)
    files = {"qat": run_dir_ / "quality" / "qat.tflite", "ptq": run_dir_ / "quality" / "ptq.tflite"}
    export(files["qat"], run=run_dir_, shape=(24, 24), dynamic=True)
    export(files["ptq"], model=name, weights=run_dir_ / FP32_DEPLOY_WEIGHTS, shape=(24, 24),
           dynamic=True, calib=f"{shared('T91')},{shared('BSD200')}", calib_n=args.calib_n)
    fp32, qat = load_run_model(run_dir_, "fp32"), load_run_model(run_dir_, "qat")
    int8 = {kind: TFLiteSR(path.with_name(f"{path.stem}_none.tflite")) for kind, path in files.items()}

    summary = json.loads((run_dir_ / "summary.json").read_text())
    config = json.loads((run_dir_ / "config.json").read_text())
    row = {"steps": config["steps"], "qat_steps": config["qat_steps"],
           "weight_clip": config["weight_clip"],
           "train_wall_seconds": summary.get("wall_seconds_last_invocation"),
           "first_layer": first_layer_skew(fp32),
           "io_quantization": {"input": list(int8["qat"].input_quant),
                               "output": list(int8["qat"].output_quant)}}
    for set_name, pairs in eval_pairs.items():
        scores = {"bicubic": mean_psnr(bicubic_upscale, pairs),
                  "fp32": mean_psnr(lambda lr: keras_sr(fp32, lr), pairs),
                  "qat_keras": mean_psnr(lambda lr: keras_sr(qat, lr), pairs),
                  "ptq": mean_psnr(int8["ptq"].upscale, pairs),
                  "qat": mean_psnr(int8["qat"].upscale, pairs)}
        scores.update({"drop_ptq": scores["fp32"] - scores["ptq"],
                       "drop_qat": scores["fp32"] - scores["qat"],
                       "litert_vs_keras_qat": scores["qat"] - scores["qat_keras"]})
        row[set_name] = {k: round(v, 4) for k, v in scores.items()}
    print(f"{name:6s} clip={'on ' if clip else 'off'} " + "  ".join(
        f"{s}: fp32 {row[s]['fp32']:.2f} dPTQ {row[s]['drop_ptq']:+.3f} dQAT {row[s]['drop_qat']:+.3f}"
        for s in eval_pairs), flush=True)
    return row


def verdicts(models: dict) -> dict:
    """The targets, checked on Set14 and B100 (with weight clipping, the default).
    Clipping "helps" when it lowers the FP32 -> INT8 drop by more than MEASURABLE on both."""
    out = {}
    for name, variants in models.items():
        on = variants.get("clip")
        off = variants.get("noclip")
        if on is None:
            continue
        v = {"qat_within_0.05dB": all(on[s]["drop_qat"] <= TARGET_QAT_DROP for s in EVAL_SETS),
             "qat_better_than_ptq": all(on[s]["qat"] > on[s]["ptq"] for s in EVAL_SETS)}
        if off is not None:
            for kind in ("qat", "ptq"):
                v[f"clip_helps_{kind}"] = all(
                    on[s][f"drop_{kind}"] < off[s][f"drop_{kind}"] - MEASURABLE for s in EVAL_SETS)
        out[name] = v
    return out


def table(result: dict) -> str:
    budgets = sorted({(r["steps"], r["qat_steps"]) for v in result["models"].values()
                      for r in v.values()})
    budget = "; ".join(f"{s} FP32 + {q} QAT steps (" + ", ".join(
        n for n, v in result["models"].items() if any((r["steps"], r["qat_steps"]) == (s, q)
                                                      for r in v.values())) + ")"
        for s, q in budgets)
    lines = [f"Measured {result['date']} ({result['machine']}): {budget} per run "
             "(batch 16, LR patch 48) on T91+BSD200 "
             "(`benchmarks/pretrain.sh`; the weight-clip-on runs are the shipped pretrained models). "
             "PSNR in dB (RGB, crop 3); ΔPTQ / ΔQAT = FP32 (Keras) minus the LiteRT INT8 "
             "file; LiteRT−Keras = exported QAT file minus its Keras fake-quant model.",
             "",
             "| model | weight clip | set | bicubic | FP32 | gain | INT8 PTQ | ΔPTQ | INT8 QAT | "
             "ΔQAT | LiteRT−Keras |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, variants in result["models"].items():
        for variant, row in variants.items():
            for s in EVAL_SETS:
                r = row[s]
                lines.append(f"| {name} | {'on' if variant == 'clip' else 'off'} | {s} | "
                             f"{r['bicubic']:.2f} | {r['fp32']:.2f} | "
                             f"{r['fp32'] - r['bicubic']:+.2f} | {r['ptq']:.2f} | "
                             f"{r['drop_ptq']:+.3f} | {r['qat']:.2f} | {r['drop_qat']:+.3f} | "
                             f"{r['litert_vs_keras_qat']:+.3f} |")
    from mai_sr.models.qat.weight_clip import DEFAULT_K

    skew = "; ".join(
        f"{name} " + " vs ".join(
            f"{v[k]['first_layer']['max_abs_over_std']:.2f} / "
            f"{v[k]['first_layer']['abs_mean_over_std']:.2f} / "
            f"{100 * v[k]['first_layer']['int8_rel_rms_error']:.2f}%"
            for k in ("clip", "noclip") if k in v)
        for name, v in result["models"].items())
    lines += ["", "First conv's weights (FP32; clip on vs off), mean over output channels of "
              "max\\|w\\|/std / \\|mean\\|/std / relative RMS error of symmetric per-channel "
              f"int8: {skew}. Clipping cuts beyond {DEFAULT_K:g} std from the channel mean."]
    lines += ["", "Targets (weight clipping on): " + "; ".join(
        f"{name}: " + ", ".join(f"{k} {'yes' if ok else 'NO'}" for k, ok in v.items())
        for name, v in result["verdicts"].items())]
    return "\n".join(lines)


def _relative(path) -> str:
    """A run folder as recorded in the results: relative to the checkout, never a local
    absolute path."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else Path(path).name


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="abpn,ncnet,scsrn,xcat")
    parser.add_argument("--clip", default="on,off", help="weight clipping settings to run")
    parser.add_argument("--steps", type=int, default=None,
                        help="FP32 steps per run (default: pretrain.sh's, 10000; XCAT 24000)")
    parser.add_argument("--qat-steps", type=int, default=1000)
    parser.add_argument("--calib-n", type=int, default=100, help="PTQ calibration crops")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)),
                        help="trainings at a time, one core each (default: all cores)")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "pretrain"),
                        help="run folders (shared with benchmarks/pretrain.sh)")
    parser.add_argument("--result", default=str(RESULT), help="JSON output")
    add_write_readme(parser)
    parser.add_argument("--table-only", action="store_true",
                        help="only redo the verdicts and README table from --result")
    args = parser.parse_args(argv)
    if args.table_only:
        result = json.loads(Path(args.result).read_text())
        result["verdicts"] = verdicts(result["models"])
        write_json(args.result, result)
        print(table(result))
        if args.write_readme:
            update_readme("qat_quality", table(result))
        return 0
    warnings.filterwarnings("ignore", message="skipping")  # tiny T91 images: not for patches

    from mai_sr.data import load_pairs

    eval_pairs = {s: load_pairs(shared(s)) for s in EVAL_SETS}
    clips = [c.strip() == "on" for c in args.clip.split(",")]
    models: dict = {}
    previous = Path(args.result)
    if previous.is_file():  # re-running some models keeps the others' rows (same run folders)
        old = json.loads(previous.read_text())
        if old.get("work") == _relative(args.work):
            models = old["models"]
    started = time.perf_counter()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    train_all([(n, c) for n in args.models.split(",") for c in clips], args)
    train_minutes = round((time.perf_counter() - started) / 60, 1)
    partial = Path(args.work) / "partial.json"  # survives a crash half-way
    for name in args.models.split(","):
        for clip in clips:
            models.setdefault(name, {})["clip" if clip else "noclip"] = \
                run_variant(name, clip, args, eval_pairs)
            write_json(partial, models)
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "work": _relative(args.work), "calib_n": args.calib_n,
              "data": {"train": "T91+BSD200", "val": "Set5", "eval": list(EVAL_SETS)},
              "target_qat_drop_db": TARGET_QAT_DROP, "models": models,
              "jobs": args.jobs, "train_minutes_this_call": train_minutes,  # 0: runs reused
              "wall_minutes": round((time.perf_counter() - started) / 60, 1)}
    result["verdicts"] = verdicts(models)
    write_json(args.result, result)
    text = table(result)
    print(text)
    if args.write_readme:
        update_readme("qat_quality", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
