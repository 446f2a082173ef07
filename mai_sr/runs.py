"""A `mai-sr train` run directory as the commands that read it see it: files, Keras models.

    RUN/config.json              the run's settings (TrainConfig fields, scale, versions, ...)
    RUN/metrics.csv              one row per logged step (step, stage, loss, lr, val_psnr)
    RUN/summary.json             per stage: steps, best validation PSNR, wall time
    RUN/fp32/deploy.weights.h5   the collapsed deploy graph's FP32 weights
    RUN/fp32/train.weights.h5    the training graph's weights
    RUN/qat/qat.weights.h5       the QAT model's weights and quantizer ranges
    RUN/checkpoints/*.npz        resumable state (written and read by `mai_sr.train.checkpoint`)

Reading the files needs only the standard library. The Keras models of a run or of a
deploy-weights file are built here too, TensorFlow imported when called: a finished run's
deploy model (rebuilt from code and loaded with its weights, quantized for its QAT stage), a
deploy-weights file's, and a training graph set to deploy weights. Their readers (``export
--run``, ``report``'s FP32 column, a ``--teacher`` run, a resumed run's summary) take them from
here, not from the trainer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mai_sr.errors import MaiSrError, first_line

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

    It builds, never loads: :func:`load_run_model` and :func:`load_deploy_weights` load."""
    from mai_sr.models import create_model

    return create_model(model_name, scale=scale, deploy=True)


def load_run_model(run_dir: str | os.PathLike, stage: str = "qat"):
    """Rebuild a run's deploy model and load its weights; ``stage`` is "qat" or "fp32".

    "fp32" returns the collapsed deploy graph with ``fp32/deploy.weights.h5``. "qat" builds
    the same graph, quantizes it with ``mai_sr.models.qat.quantize_model`` and loads
    ``qat/qat.weights.h5`` (weights and quantizer ranges): rebuilding from code avoids
    deserializing tfmot wrappers. A missing stage raises MaiSrError naming the file.
    """
    if stage not in STAGES:
        raise MaiSrError(f"stage: {stage!r} is not one of {', '.join(STAGES)}")
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    needed = [run_dir / FP32_DEPLOY_WEIGHTS] + ([run_dir / QAT_WEIGHTS] if stage == "qat" else [])
    for path in needed:
        if not path.is_file():
            hint = " (train with --qat)" if path.name == Path(QAT_WEIGHTS).name else ""
            raise MaiSrError(f"{path}: not found; {run_dir} has no finished {stage} stage{hint}")
    deploy = build_deploy(config["model"], run_scale(config))
    deploy.load_weights(str(needed[0]))
    if stage == "fp32":
        return deploy
    from mai_sr.models.qat import quantize_model

    quantized = quantize_model(deploy)
    quantized.load_weights(str(needed[1]))
    return quantized


def load_deploy_weights(path, model_name: str, scale: int, option: str = "--from"):
    """The deploy graph of `model_name` at `scale` with the weights of `path` (the file of
    ``OPTION``), or a one-line MaiSrError naming the option when they do not fit."""
    model = build_deploy(model_name, scale)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # h5py and Keras raise many types for a foreign file
        first = first_line(exc)
        raise MaiSrError(f"{option} {path}: not deploy-graph weights of {model.name} "
                         f"({first})") from None
    return model


def init_training_graph(train_model, model_name: str, scale: int, path) -> None:
    """``--init W.weights.h5``: set a plain-conv training graph to the deploy weights.

    Each training-graph layer has the deploy layer's name. A layer with a ``start_from`` takes
    the deploy weights through it: a scaled conv divides its fixed factors out, so the
    training graph computes what the deploy weights compute, and ECBSR's edge-oriented block
    puts the conv in one branch and zeros the others. Plain convs and PReLU slopes (the
    same in both units) are copied. Other blocks have no unique inverse, so their graphs are
    refused.
    """
    from mai_sr._tf import keras
    from mai_sr.models.blocks import NearestConvAnchor

    deploy = load_deploy_weights(path, model_name, scale, option="--init")
    for layer in train_model.layers:
        if not layer.weights or isinstance(layer, NearestConvAnchor):
            continue
        weights = [w.astype("float32") for w in deploy.get_layer(layer.name).get_weights()]
        if hasattr(layer, "start_from"):
            layer.start_from(*weights)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.PReLU)):
            layer.set_weights(weights)
        else:
            raise MaiSrError(f"--init {Path(path).name}: the {model_name} training graph has a "
                             f"{type(layer).__name__} ({layer.name}), which deploy weights "
                             "cannot start; use --qat --from instead")
