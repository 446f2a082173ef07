"""A deploy-weights file as the start of QAT (``mai-sr train --qat --from W.weights.h5``).

``--from`` normally names a finished FP32 run; given a ``.weights.h5`` file (what ``mai-sr
import`` writes) the QAT stage starts from those deploy weights instead, with no FP32 stage:
fine-tuning DIV2K-trained weights on a few hundred small images would lose what the import
brings. The architecture comes from ``--model`` or from the record ``mai-sr import`` writes
beside the file (``<file>.json``). Standard library only: the checks run before TF loads.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mai_sr.errors import MaiSrError

SUFFIX = ".weights.h5"


def is_weights_file(source) -> bool:
    """True when `source` names a deploy-weights file rather than a run directory."""
    return str(source).endswith(SUFFIX) and not Path(source).is_dir()


def weights_file_model(path, model: str | None, scale: int | None = None,
                       option: str = "--from") -> tuple[str, str, int | None]:
    """(absolute path, architecture, scale) for ``OPTION FILE``: `model` and `scale`, else the
    import record's (scale None when neither says).

    Raises a one-line MaiSrError when the file is missing, or the architecture is unknown or
    differs from the one the import record names, or the scale differs from the record's.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise MaiSrError(f"{option} {path}: not found")
    record_path = Path(f"{path}.json")
    record = {}
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text())
        except ValueError:
            record = {}
        record = record if isinstance(record, dict) else {}
    check_record_hash(path, record, record_path)
    recorded_model, recorded_scale = record.get("model"), record.get("scale")
    if model is not None and recorded_model is not None and model != recorded_model:
        raise MaiSrError(f"--model {model}: {option} {path.name} holds {recorded_model} "
                         f"weights (per {record_path.name})")
    if scale is not None and recorded_scale is not None and scale != recorded_scale:
        raise MaiSrError(f"--scale {scale}: {option} {path.name} holds x{recorded_scale} "
                         f"weights (per {record_path.name})")
    model = model or recorded_model
    if model is None:
        raise MaiSrError(f"{option} {path.name}: give --model (the architecture of these "
                         "deploy weights)")
    return str(path), model, scale or recorded_scale


def check_record_hash(path: Path, record: dict, record_path: Path) -> None:
    """A record that names the weights' sha256 (``mai-sr import`` writes it) must match the
    file: a mismatch means another import's record, or a set torn by a kill between its
    two renames. One-line MaiSrError."""
    expected = record.get("weights_sha256")
    if expected is None:
        return
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise MaiSrError(f"{path.name} does not match its record {record_path.name} "
                         f"(weights sha256 {actual[:12]}..., the record says "
                         f"{str(expected)[:12]}...): another import's record or a torn "
                         "write; import again")


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
