"""The parser of `mai-sr train`, the command with the most options: help texts that take
their defaults from :class:`~mai_sr.train.config.TrainConfig` and the base recipe, and the
starting points (``--from``, ``--init``, ``--teacher``, ``--resume``, ``--recipe``).
:mod:`mai_sr.cli` builds it into the `mai-sr` parser and holds its handler, ``cmd_train``,
with every other command's.
"""

from __future__ import annotations

import argparse

from mai_sr.cli_args import LibraryChoices, examples as _examples, positive_float, positive_int
from mai_sr.registry import SCALES, list_models


# `mai-sr train` options whose help is completed with their default from TrainConfig (the
# one place defaults live; argparse's own defaults stay None so --resume can tell what was
# given).
TRAIN_HELP = {
    "steps": "FP32 optimizer steps",
    "patch": "LR patch side (HR = scale x patch)",
    "batch": "global batch size (split across --distribute replicas)",
    "lr": "peak FP32 learning rate",
    "schedule": "learning-rate schedule",
    "loss": "training loss",
    "seed": "RNG start value of initial weights, patches and augmentation (0 to 2^32-1)",
    "qat_steps": "QAT optimizer steps",
    "qat_lr": "peak QAT learning rate",
    "distribute": "tf.distribute strategy",
    "val_every": "validate every N steps and at the last (fixed for the run: it picks the "
                 "best weights)",
    "ckpt_every": "checkpoint every N steps, at the last and on Ctrl-C (may change on "
                  "--resume)",
}


def _describe_train_defaults(parser: argparse.ArgumentParser) -> None:
    """Help texts of `mai-sr train` with the defaults read from TrainConfig and BASE_RECIPE
    (per-model recipes override some: said, not listed, as reading them imports TF)."""
    from dataclasses import fields

    from mai_sr.train.config import BASE_RECIPE, TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    for action in parser._actions:
        if action.dest not in TRAIN_HELP:
            continue
        if action.dest in BASE_RECIPE:
            default = f"{BASE_RECIPE[action.dest]}; some models' recipes differ"
        else:
            default = defaults.get(action.dest)
        action.help = f"{TRAIN_HELP[action.dest]} (default {default})"


def add_train_parser(sub) -> argparse.ArgumentParser:
    """The `train` subparser, without its handler (``mai_sr.cli.cmd_train`` is set there)."""
    p = sub.add_parser("train", help="train FP32 then (with --qat) quantization-aware",
                       epilog=_examples("mai-sr train --model abpn --qat   # FP32, then QAT; "
                                        "the run is linked as runs/latest",
                                        "mai-sr train --resume            # continue "
                                        "runs/latest from its last checkpoint"))
    p.add_argument("--model", choices=list_models(), default=None,
                   help="architecture (default abpn)")
    p.add_argument("--scale", type=int, choices=SCALES, default=None,
                   help="upscaling factor (default 3, or the --from/--init run's)")
    p.add_argument("--data", default=None,
                   help="builtin | DIR[,DIR] of HR images (default builtin)")
    p.add_argument("--val", default=None,
                   help="validation folder (default: held-out training images)")
    p.add_argument("--out", default=None, help="run directory (default runs/<model>-<time>)")
    p.add_argument("--steps", type=positive_int, default=None, help=TRAIN_HELP["steps"])
    p.add_argument("--patch", type=positive_int, default=None, help=TRAIN_HELP["patch"])
    p.add_argument("--batch", type=positive_int, default=None, help=TRAIN_HELP["batch"])
    p.add_argument("--lr", type=positive_float, default=None, help=TRAIN_HELP["lr"])
    p.add_argument("--schedule", choices=LibraryChoices("mai_sr.train.config", "SCHEDULES"),
                   default=None, help=TRAIN_HELP["schedule"])
    p.add_argument("--loss", choices=LibraryChoices("mai_sr.train.config", "LOSSES"), default=None,
                   help=TRAIN_HELP["loss"])
    p.add_argument("--seed", type=int, default=None, help=TRAIN_HELP["seed"])
    p.add_argument("--qat", action="store_true",
                   help="add stage 2: quantization-aware training (default: FP32 only)")
    p.add_argument("--qat-steps", type=positive_int, default=None, help=TRAIN_HELP["qat_steps"])
    p.add_argument("--qat-lr", type=positive_float, default=None, help=TRAIN_HELP["qat_lr"])
    _add_train_starting_points(p)
    p.add_argument("--no-weight-clip", action="store_true", help="disable weight clipping (Z6)")
    p.add_argument("--intensity-aug", action=argparse.BooleanOptionalAction, default=None,
                   help="x1/x0.7/x0.5 intensity scaling of training pairs (Aselsan; default: "
                        "on for xcat only)")
    p.add_argument("--distribute", choices=LibraryChoices("mai_sr.train.config", "DISTRIBUTE"),
                   default=None, help=TRAIN_HELP["distribute"])
    p.add_argument("--val-every", type=positive_int, default=None, help=TRAIN_HELP["val_every"])
    p.add_argument("--ckpt-every", type=positive_int, default=None, help=TRAIN_HELP["ckpt_every"])
    p.add_argument("--quiet", action="store_true", help="no progress bar; plain log lines")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=None,
                   help="write TensorBoard logs to RUN/tensorboard (loss, LR, validation PSNR "
                        "and images; default: on)")
    p.add_later(_describe_train_defaults)
    return p


def _add_train_starting_points(p: argparse.ArgumentParser) -> None:
    """`train`'s options that start from something other than fresh weights."""
    p.add_argument("--from", dest="from_run", default=None,
                   help="finished FP32 run, or deploy weights W.weights.h5 (mai-sr import; "
                        "with --model): do only QAT, in a new run directory")
    p.add_argument("--init", dest="init_run", default=None,
                   help="finished FP32 run, or deploy weights W.weights.h5: start FP32 "
                        "training from its weights (fine-tune)")
    p.add_argument("--teacher", default=None,
                   help="distil from a finished FP32 run, deploy weights W.weights.h5 of any "
                        "architecture (its import record names it; with --from W.weights.h5: "
                        "QAT that follows its own float model), or a pretrained model")
    p.add_argument("--distill-weight", type=positive_float, default=None,
                   help="share of the loss against the teacher's output (default 0.5)")
    p.add_argument("--teacher-crops", type=float, default=None, metavar="SHARE",
                   help="with --teacher: this share of every batch is inputs only the teacher "
                        "labels (rotated and shrunk copies of the training images; default 0)")
    p.add_argument("--teacher-crop-data", default=None, metavar="SRC",
                   help="more images for --teacher-crops ('builtin', DIR or DIR,DIR); never "
                        "a test set")
    p.add_argument("--hold-anchor-taps", action="store_true", default=None,
                   help="SCSRN: hold the output conv's taps on the image at the "
                        "nearest-neighbour anchor (exact in INT8), its feature taps in [-1, 1]")
    p.add_argument("--resume", action="store_true",
                   help="continue --out (default runs/latest) from its last checkpoint")
    p.add_argument("--recipe", default=None, metavar="FILE",
                   help="replay a recipe file (JSON: the stages that made a shipped weight) "
                        "into --out (default runs/<recipe name>); rerun to resume")
