"""A `mai-sr train` run directory, as the commands that read it see it.

    RUN/config.json              the run's settings (TrainConfig fields, scale, versions, ...)
    RUN/metrics.csv              one row per logged step (step, stage, loss, lr, val_psnr)
    RUN/summary.json             per stage: steps, best validation PSNR, wall time
    RUN/fp32/deploy.weights.h5   the collapsed deploy graph's FP32 weights
    RUN/fp32/train.weights.h5    the training graph's weights
    RUN/qat/qat.weights.h5       the QAT model's weights and quantizer ranges
    RUN/checkpoints/*.npz        resumable state (written and read by `mai_sr.train.checkpoint`)

Reading the files needs only the standard library. The run's Keras models are loaded by
:func:`mai_sr.train.run_model.load_run_model`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mai_sr.errors import MaiSrError

STAGES = ("fp32", "qat")
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
LOCK_FILE = ".lock"  # held (flock) by the process training the run
SUMMARY_FILE = "summary.json"
FP32_TRAIN_WEIGHTS = "fp32/train.weights.h5"
FP32_DEPLOY_WEIGHTS = "fp32/deploy.weights.h5"
QAT_WEIGHTS = "qat/qat.weights.h5"
METRICS_COLUMNS = ("step", "stage", "loss", "lr", "val_psnr", "time")


def read_run_config(run_dir: str | os.PathLike) -> dict:
    """The run's ``config.json`` as a dict (flat: TrainConfig fields + scale, versions, ...)."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MaiSrError(f"{path}: not found ({run_dir} is not a `mai-sr train` run)") from None
    except (OSError, ValueError) as exc:
        raise MaiSrError(f"{path}: unreadable run config ({exc})") from None


def run_scale(config: dict) -> int:
    """The upscaling factor a run trained (its ``config.json`` as :func:`read_run_config`
    returns it). Every run records it; the challenge's x3 was the only scale before it did."""
    from mai_sr.challenge import CHALLENGE_SCALE

    return int(config.get("scale", CHALLENGE_SCALE))


def read_summary(run_dir: str | os.PathLike) -> dict:
    """The run's ``summary.json`` (per finished stage), or {} before the first stage ends."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MaiSrError(f"{path}: damaged ({exc})") from None
    if not isinstance(summary, dict):
        raise MaiSrError(f"{path}: damaged (not a JSON object)")
    return summary


def build_deploy(model_name: str, scale: int):
    """The deploy graph of `model_name` at `scale`, untrained (imports TensorFlow).

    It builds, never loads: loading a run's weights is :mod:`mai_sr.train.run_model`'s. It
    stays here while ``mai_sr.importer.weights_file`` imports it from here."""
    from mai_sr.models import create_model

    return create_model(model_name, scale=scale, deploy=True)
