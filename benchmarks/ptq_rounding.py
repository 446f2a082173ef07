"""What the data-fitted weight rounding does to a layout option's PTQ: the option's INT8 file
made by ``mai-sr export`` (calibration: the builtin photos) as shipped, and again with every
conv kernel rounded to its nearest int8 level instead (``mai_sr.models.qat.gptq`` replaced
by nothing for this run only; bias correction stays). Drop = FP32 deploy model minus INT8
file, RGB PSNR, crop 3, per test set.

Why: the data-fitted rounding minimises each conv's output error for float inputs. Copies
of a channel (``fsrcnn_relu_pair_subpixel_copies``) are one input in float, so it moves
rounding error from one copy's weight to the other's; in INT8 the copies differ (offset by
half a step), and the consumer then no longer reads their mean.

With ``--held-out`` it scores what a change of the rule would be chosen on instead: the
calibrated fake-quant model a QAT stage starts from (calibrated on the training crops, as
the QAT recipes do), on the held-out tenth of T91 + BSD200, never a test set.

    python benchmarks/ptq_rounding.py [--models fsrcnn_relu_pair_subpixel_copies,...]
        [--held-out]

Writes ``benchmarks/results/ptq_rounding.json`` (``ptq_rounding_held_out.json``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _held_out as held_out  # noqa: E402
from _publish import publish  # noqa: E402

CHECKPOINT = held_out.ARTIFACTS / "etds_zoo" / "pretrained" / "FSRCNN" / "FSRCNN_x3.pth"
SETS = ("Set5", "Set14", "B100")


@contextmanager
def weight_rounding(nearest: bool):
    """Within it, with `nearest`, every conv kernel is rounded to its nearest int8 level:
    ``mai_sr.models.qat.gptq.round_conv_weights`` does nothing (quantize_model imports it at
    call time); the data-fitted rounding is back afterwards."""
    import mai_sr.models.qat.gptq as gptq

    fitted = gptq.round_conv_weights
    if nearest:
        gptq.round_conv_weights = lambda model, batches, layers=None: []
    try:
        yield
    finally:
        gptq.round_conv_weights = fitted


def drops(model: str, folder: Path, nearest: bool) -> dict:
    """{set: FP32 minus INT8 PSNR} of `model` imported from CHECKPOINT and exported."""
    import numpy as np

    from mai_sr.cli import main as cli
    from mai_sr.data import iter_pairs
    from mai_sr.metrics import psnr
    from mai_sr.runs import load_deploy_weights
    from mai_sr.tflite.runtime import TFLiteSR

    weights = folder / f"{model}.weights.h5"
    if not weights.exists():
        assert cli(["import", str(CHECKPOINT), "--model", model, "--out", str(weights)]) == 0
    out = folder / f"{model}_{'nearest' if nearest else 'fitted'}.tflite"
    with weight_rounding(nearest):
        assert cli(["export", str(out), "--model", model, "--weights", str(weights),
                    "--shape", "24x32", "--dynamic", "--force"]) == 0
    net = load_deploy_weights(weights, model, 3)
    int8 = TFLiteSR(out.with_name(out.stem + "_none.tflite"))
    found = {}
    for name in SETS:
        pairs = list(iter_pairs(held_out.DATA / name, scale=3))
        fp32 = [np.clip(np.rint(np.asarray(net(p.lr[None].astype(np.float32)))[0]), 0, 255)
                .astype(np.uint8) for p in pairs]
        found[name] = round(float(np.mean([psnr(f, p.hr, crop=3) - psnr(int8.upscale(p.lr),
                                                                          p.hr, crop=3)
                                           for f, p in zip(fp32, pairs)])), 4)
    return found


def held_out_psnr(model: str, nearest: bool) -> float:
    """Held-out PSNR (RGB, crop 3) of the calibrated fake-quant model of `model` imported
    from CHECKPOINT, as a QAT stage starts from it (its ``val PSNR ... at step 0``)."""
    from mai_sr.models.qat.quantize import quantize_model
    from mai_sr.scoring import Scoring, mean_psnr, score_pairs

    train_pairs, val_pairs = held_out.split(model)
    deploy = held_out.imported(CHECKPOINT, model)
    with weight_rounding(nearest):
        quantized = quantize_model(deploy, held_out.calibration(train_pairs))
    return round(mean_psnr(score_pairs(quantized, val_pairs,
                                       Scoring(3, ssim=False, baseline=None))), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="fsrcnn_relu_pair_subpixel,"
                                            "fsrcnn_relu_pair_subpixel_copies")
    parser.add_argument("--held-out", action="store_true",
                        help="score the calibrated fake-quant model on held-out training "
                             "images instead of the INT8 files on the test sets")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.held_out:
        rows = []
        for model in args.models.split(","):
            for nearest in (False, True):
                rows.append({"model": model, "rounding": "nearest" if nearest else "fitted",
                             "held_out_psnr": held_out_psnr(model, nearest)})
                print(f"{model} {rows[-1]['rounding']}: {rows[-1]['held_out_psnr']:.3f} dB",
                      flush=True)
        publish("ptq_rounding_held_out", {"checkpoint": CHECKPOINT.name, "rows": rows})
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for nearest in (False, True):
                row = {"model": model, "rounding": "nearest" if nearest else "fitted",
                       "drop_rgb": drops(model, Path(tmp), nearest)}
                rows.append(row)
                print(f"{model} {row['rounding']}: " + " / ".join(
                    f"{row['drop_rgb'][s]:.3f}" for s in SETS), flush=True)
    publish("ptq_rounding", {"checkpoint": CHECKPOINT.name, "rows": rows})


if __name__ == "__main__":
    main()
