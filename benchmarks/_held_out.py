"""What the benchmarks that choose on held-out images share: the held-out tenth of T91 +
BSD200 that the shipped QAT recipes validate on (never a test set), the training images
that calibrate a QAT start, and a published checkpoint imported as mai-sr's deploy graph."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from _publish import ROOT

DATA = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS", ROOT.parent / "shared" / "artifacts"))


def split(model: str) -> tuple[list, list]:
    """(training pairs, held-out pairs) of T91 + BSD200 for `model`, split as the shipped
    QAT recipes split them (LR patch 48, a tenth held out)."""
    from mai_sr.train.config import TrainConfig
    from mai_sr.train.loop import _load_data

    config = TrainConfig(model=model, data=f"{DATA / 'T91'},{DATA / 'BSD200'}", patch=48,
                         val_fraction=0.1)
    train_pairs, val_pairs, _ = _load_data(config)
    return train_pairs, val_pairs


def calibration(train_pairs) -> list:
    """The float LR batches a QAT stage calibrates its start on (as the training loop)."""
    import numpy as np

    from mai_sr.train.loop import QAT_CALIBRATION_IMAGES

    return [p.lr[None].astype(np.float32) for p in train_pairs[:QAT_CALIBRATION_IMAGES]]


def imported(checkpoint: Path, model: str, scale: int = 3):
    """The deploy graph of `model` with `checkpoint`'s weights (``mai-sr import``, its gate
    included), through a temporary weights file."""
    from mai_sr.importer import import_weights
    from mai_sr.runs import load_deploy_weights

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "imported.weights.h5"
        import_weights(checkpoint, model, weights)
        return load_deploy_weights(weights, model, scale)
