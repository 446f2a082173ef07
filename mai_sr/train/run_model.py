"""Keras models from weights: a finished run's deploy model (rebuilt from code and loaded
with its weights), a deploy-weights file's, and a training graph set to deploy weights.

Read by ``export --run``, ``report``'s FP32 column, a ``--teacher`` run and a resumed run's
summary; the files are named in :mod:`mai_sr.runs`. TensorFlow is imported when called.
"""

from __future__ import annotations

import os
from pathlib import Path

from mai_sr.errors import MaiSrError, first_line
from mai_sr.runs import (FP32_DEPLOY_WEIGHTS, QAT_WEIGHTS, STAGES, build_deploy, read_run_config,
                         run_scale)

__all__ = ["build_deploy", "load_run_model", "load_deploy_weights", "init_training_graph"]


def load_run_model(run_dir: str | os.PathLike, stage: str = "qat"):
    """Rebuild a run's deploy model and load its weights; ``stage`` is "qat" or "fp32".

    "fp32" returns the collapsed deploy graph with ``fp32/deploy.weights.h5``. "qat" builds
    the same graph, quantizes it with ``mai_sr.qat.quantize_model`` and loads
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
    from mai_sr.qat import quantize_model

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

    Each training-graph conv has the deploy conv's name; a ScaledConv2D's fixed factors are
    divided out (kernel / (input_scale * output_scale), bias / output_scale), so the
    training graph computes what the deploy weights compute. Re-parameterizable blocks have
    no unique inverse, so a training graph with them is refused.
    """
    from mai_sr._tf import keras
    from mai_sr.models.blocks import NearestConvAnchor, ScaledConv2D

    deploy = load_deploy_weights(path, model_name, scale, option="--init")
    for layer in train_model.layers:
        if not layer.weights or isinstance(layer, NearestConvAnchor):
            continue
        if not isinstance(layer, keras.layers.Conv2D):
            raise MaiSrError(f"--init {Path(path).name}: the {model_name} training graph has a "
                             f"{type(layer).__name__} ({layer.name}), which deploy weights "
                             "cannot start; use --qat --from instead")
        kernel, bias = deploy.get_layer(layer.name).get_weights()
        if isinstance(layer, ScaledConv2D):
            kernel, bias = kernel / layer.kernel_factor, bias / layer.output_scale
        layer.set_weights([kernel.astype("float32"), bias.astype("float32")])
