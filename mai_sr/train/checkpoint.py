"""Checkpoints: one ``.npz`` per (stage, last|best) holding the model's weights, the Adam
state and the loop state (step, elapsed time, best PSNR, the loss window), written atomically.

``--resume`` restores weights, Adam moments and the iteration count; the LR schedule is a
function of that count and training batch k a pure function of (seed, k)
(``mai_sr.data.make_train_dataset(start_step=k)``), so an interrupted and resumed run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mai_sr import fileio
from mai_sr.errors import MaiSrError


def save_checkpoint(path: Path, model, optimizer, state: dict) -> None:
    """One .npz holding model weights, optimizer variables and the loop state, atomically."""
    from mai_sr._tf import keras

    arrays = {f"weight_{i:04d}": w for i, w in enumerate(model.get_weights())}
    if optimizer is not None:
        values = keras.backend.batch_get_value(optimizer.variables)
        arrays.update({f"optimizer_{i:04d}": v for i, v in enumerate(values)})
    arrays["state"] = np.array(json.dumps(state))
    with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def load_checkpoint(path: Path, model, optimizer) -> dict:
    """Restore what :func:`save_checkpoint` wrote (optimizer may be None); return the state."""
    weights, state = read_checkpoint_weights(path)
    with np.load(path, allow_pickle=False) as npz:
        opt = [npz[k] for k in sorted(k for k in npz.files if k.startswith("optimizer_"))]
    expected = [tuple(w.shape) for w in model.weights]
    if [w.shape for w in weights] != expected:
        raise MaiSrError(f"{path}: checkpoint does not match the {len(expected)}-weight model "
                         f"(it holds {len(weights)} arrays)")
    model.set_weights(weights)
    if optimizer is not None:
        if len(opt) != len(optimizer.variables):
            raise MaiSrError(f"{path}: checkpoint optimizer state does not match the model")
        optimizer.set_weights(opt)
    return state


def read_checkpoint_weights(path: Path) -> tuple[list[np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as npz:
        weights = [npz[k] for k in sorted(k for k in npz.files if k.startswith("weight_"))]
        return weights, json.loads(str(npz["state"]))
