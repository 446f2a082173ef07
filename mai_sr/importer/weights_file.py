"""A deploy-weights file as the start of QAT (``mai-sr train --qat --from W.weights.h5``).

``--from`` normally names a finished FP32 run; given a ``.weights.h5`` file (what ``mai-sr
import`` writes) the QAT stage starts from those deploy weights instead, with no FP32 stage:
fine-tuning DIV2K-trained weights on a few hundred small images would lose what the import
brings. The architecture comes from ``--model`` or from the record ``mai-sr import`` writes
beside the file (``<file>.json``). Standard library only: the checks run before TF loads.
"""

from __future__ import annotations

from pathlib import Path

from mai_sr.errors import MaiSrError

# The file type and its record are mai_sr.weights' (TF-free, shared with export and train).
from mai_sr.weights import SUFFIX, is_weights_file, weights_file_model  # noqa: E402,F401


def load_deploy_weights(path, model_name: str, scale: int, option: str = "--from"):
    """The deploy graph of `model_name` at `scale` with the weights of `path` (the file of
    ``OPTION``), or a one-line MaiSrError naming the option when they do not fit."""
    from mai_sr.runs import build_deploy

    model = build_deploy(model_name, scale)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # h5py and Keras raise many types for a foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
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
