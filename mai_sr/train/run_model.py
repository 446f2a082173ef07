"""A finished run's Keras deploy model, rebuilt from code and loaded with its weights.

Read by ``export --run``, ``report``'s FP32 column, a ``--teacher`` run and a resumed run's
summary; the files are named in :mod:`mai_sr.runs`. TensorFlow is imported when called.
"""

from __future__ import annotations

import os
from pathlib import Path

from mai_sr.errors import MaiSrError
from mai_sr.runs import (FP32_DEPLOY_WEIGHTS, QAT_WEIGHTS, STAGES, build_deploy, read_run_config,
                         run_scale)

__all__ = ["build_deploy", "load_run_model"]


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
