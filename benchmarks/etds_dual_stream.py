"""ETDS from scratch: the paper's dual-stream training graph against the plain chain.

Chao et al. ("Equivalent Transformation and Dual Stream Network Construction for Mobile
Image Super-Resolution", CVPR 2023) train ETDS as two streams (a backbone and a residual
stream that starts as the image and ends as nearest-neighbour upscaling) and merge them into
the plain chain they publish. mai-sr's ETDS training graph is those two streams in that
chain (``create_model("etds")``); ``dual_stream=False`` trains the same chain from random
weights. Both are trained here with one recipe (T91 + BSD200, FP32, the same seed, steps
and schedule), and scored on the held-out tenth of those training images, never a test set:

    python benchmarks/etds_dual_stream.py [--models etds] [--steps 4000] [--write-readme]

Every model tried is reported. Writes ``benchmarks/results/etds_dual_stream.json``;
the runs go to ``benchmarks/out/etds_dual_stream/`` (rerunning resumes them).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _publish import ROOT, add_write_readme, publish  # noqa: E402

DATA = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "benchmarks" / "out" / "etds_dual_stream"
GRAPHS = {"dual stream": {"dual_stream": True}, "plain chain": {"dual_stream": False}}


def val_curve(run: Path) -> list[tuple[int, float]]:
    """(step, validation PSNR) rows of a run's FP32 stage."""
    with open(run / "metrics.csv", newline="") as f:
        return [(int(r["step"]), float(r["val_psnr"])) for r in csv.DictReader(f)
                if r["stage"] == "fp32" and r.get("val_psnr")]


def train(model: str, graph: str, steps: int, seed: int) -> dict:
    from mai_sr.train import TrainConfig
    from mai_sr.train.loop import train_from_config

    run = OUT / f"{model}-{graph.replace(' ', '_')}-seed{seed}"
    config = TrainConfig(model=model, scale=3, data=f"{DATA / 'T91'},{DATA / 'BSD200'}",
                         val_fraction=0.1, steps=steps, patch=48, batch=16, lr=1e-3,
                         schedule="cosine", seed=seed, val_every=max(steps // 8, 1),
                         out=str(run))
    resume = (run / "config.json").is_file()
    train_from_config(config, resume=resume, quiet=True, tensorboard=False,
                      graph_options=GRAPHS[graph])
    curve = val_curve(run)
    return {"model": model, "graph": graph, "seed": seed, "steps": steps,
            "val_curve": curve, "best_val_psnr": max(v for _, v in curve),
            "final_val_psnr": curve[-1][1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="etds")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    add_write_readme(parser)
    args = parser.parse_args(argv)
    rows = []
    for model in args.models.split(","):
        for graph in GRAPHS:
            rows.append(train(model, graph, args.steps, args.seed))
            row = rows[-1]
            print(f"{model:8s} {graph:12s} best val {row['best_val_psnr']:.3f} dB, "
                  f"final {row['final_val_psnr']:.3f} dB ({args.steps} steps)", flush=True)
    for model in args.models.split(","):
        dual, plain = (next(r for r in rows if r["model"] == model and r["graph"] == g)
                       for g in GRAPHS)
        print(f"{model}: dual stream - plain chain = "
              f"{dual['best_val_psnr'] - plain['best_val_psnr']:+.3f} dB (best val)")
    publish("etds_dual_stream", {"rows": rows,
                                 "data": "T91 + BSD200, held-out tenth (validation)"},
            table(rows, args.steps), write_readme=args.write_readme)


def table(rows: list[dict], steps: int) -> str:
    """The docs' table: best validation PSNR of each model and graph."""
    lines = [f"ETDS x3 trained from scratch for {steps} FP32 steps (T91 + BSD200, batch 16, "
             "48 px LR patches, cosine from 1e-3, seed 0), best PSNR (RGB) on the held-out "
             "tenth of those images; `python benchmarks/etds_dual_stream.py "
             "--write-readme`:", "",
             "| model | dual stream (dB) | plain chain (dB) | difference |", "|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        dual, plain = (next(r["best_val_psnr"] for r in rows
                            if r["model"] == model and r["graph"] == g) for g in GRAPHS)
        lines.append(f"| `{model}` | {dual:.2f} | {plain:.2f} | {dual - plain:+.2f} |")
    return "\n".join(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
