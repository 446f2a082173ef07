"""Checkpoints: one ``.npz`` per (stage, last|best) holding the model's weights, the Adam
state and the loop state (step, elapsed time, best PSNR, the loss window), written atomically.

``--resume`` restores weights, Adam moments and the iteration count; the LR schedule is a
function of that count and training batch k a pure function of (seed, k)
(``mai_sr.train.dataset.make_train_dataset(start_step=k)``), so an interrupted and resumed run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mai_sr import fileio
from mai_sr.errors import MaiSrError, first_line


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
    """Restore what :func:`save_checkpoint` wrote (optimizer may be None); return the state.

    A damaged file raises :class:`CheckpointDamaged` and leaves `model` untouched."""
    weights, opt, state = read_checkpoint(path)
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


class CheckpointDamaged(MaiSrError):
    """A checkpoint file that cannot be read whole (truncated, garbled, not a checkpoint)."""


STATE_KEYS = ("stage", "step", "best_psnr", "best_step", "window")


def read_checkpoint(path: Path) -> tuple[list[np.ndarray], list[np.ndarray], dict]:
    """(weights, optimizer variables, loop state) of a checkpoint, every array read in full,
    or :class:`CheckpointDamaged` naming the file and what is wrong."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = sorted(npz.files)
            weights = [npz[k] for k in names if k.startswith("weight_")]
            opt = [npz[k] for k in names if k.startswith("optimizer_")]
            state = json.loads(str(npz["state"]))
        if not isinstance(state, dict) or any(k not in state for k in STATE_KEYS):
            raise ValueError("no loop state")
        if not weights:
            raise ValueError("no weights")
    except Exception as exc:  # noqa: BLE001 - zipfile, numpy and json raise many types
        raise CheckpointDamaged(f"{path}: damaged ({first_line(exc)})") from None
    return weights, opt, state


def read_checkpoint_weights(path: Path) -> tuple[list[np.ndarray], dict]:
    """(weights, loop state) of a checkpoint (:class:`CheckpointDamaged` if unreadable)."""
    weights, _, state = read_checkpoint(path)
    return weights, state
