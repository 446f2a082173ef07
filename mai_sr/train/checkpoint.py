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


def new_state(stage: str) -> dict:
    """The loop state of a stage at step 0, as every checkpoint saves it. "window" holds the
    losses since the last metrics row, so a resumed run logs the same averages as an
    uninterrupted one; the run writer adds the stage's metrics rows ("rows") when saving,
    so a damaged metrics.csv can be rebuilt from the checkpoints."""
    return {"stage": stage, "step": 0, "elapsed": 0.0, "best_psnr": None, "best_step": None,
            "val_psnr": None, "window": []}


def resume_stage(run, stage: str, model, optimizer, steps: int) -> tuple[dict, list | None]:
    """(loop state, best weights so far or None) to continue `stage` of `run` (a
    :class:`~mai_sr.train.rundir.RunWriter`) from its checkpoints, restoring `model` and
    `optimizer`; a fresh state when there is none. Metrics rows after the resumed step are
    dropped (they are logged again).

    The last checkpoint is used, else the best one (it holds the optimizer state too, so
    resuming from it is exact, only earlier); a damaged file is said and skipped. The best
    weights come from the best checkpoint unless it is newer than the resumed step (written
    just before a kill: those steps are redone).
    """
    state = new_state(stage)
    last_path, best_path = run.checkpoint(stage, "last"), run.checkpoint(stage, "best")
    resumed_from = None
    for path in (last_path, best_path):
        if not path.is_file():
            continue
        try:
            state = load_checkpoint(path, model, optimizer)
        except CheckpointDamaged as exc:
            run.log(f"{stage}: {exc}; not resuming from it")
            continue
        resumed_from = path
        run.log(f"{stage}: resuming at step {state['step']}/{steps} from {path}")
        break
    best_weights = None
    if resumed_from is not None and best_path.is_file():
        try:
            best_weights, best_state = read_checkpoint_weights(best_path)
            if best_state["step"] > state["step"]:  # written just before a kill: redone
                best_weights = None
        except CheckpointDamaged:
            # Its step's weights are gone: the best so far is re-found only among the steps
            # still to run, so forget a best PSNR that no longer has weights behind it.
            state.update(best_psnr=None, best_step=None)
    run.truncate_metrics(stage, state["step"])
    return state, best_weights


def saved_rows(path: Path) -> list[dict]:
    """The metrics rows a checkpoint's state holds ([] for a checkpoint written before they
    were saved, or a missing or damaged file)."""
    if not path.is_file():
        return []
    try:
        _, _, state = read_checkpoint(path)
    except CheckpointDamaged:
        return []
    rows = state.get("rows")
    return [dict(r) for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
