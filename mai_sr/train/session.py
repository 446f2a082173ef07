"""What a training process holds while it runs: the run lock, the stop-on-signal handler,
the progress bar and metrics rows, the ``tf.distribute`` strategy and which worker writes.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mai_sr.errors import MaiSrError
from mai_sr.runs import LOCK_FILE
from mai_sr.train.config import DISTRIBUTE

if TYPE_CHECKING:
    from mai_sr.train.rundir import RunWriter


class TrainingInterrupted(MaiSrError):
    """Ctrl-C/SIGTERM: the current step finished and a checkpoint was written."""

    exit_code = 130


def hold_run_lock(run_dir: Path):
    """Lock `run_dir` for this process (an open file holding an exclusive flock), or raise
    MaiSrError when another process trains it: two writers would interleave checkpoints.

    The OS drops the lock when the process exits or is killed, so a killed run never leaves a
    stale lock behind and ``--resume`` just works.
    """
    import fcntl

    handle = open(Path(run_dir) / LOCK_FILE, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise MaiSrError(f"{run_dir}: {holder} is training this run; wait for it to finish "
                         "or stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {platform.node()}")
    handle.flush()
    return handle


def is_chief(distribute: str) -> bool:
    """Whether this process writes files: always, except non-chief multi-worker tasks.

    Read from TF_CONFIG without TensorFlow, so bad-input checks stay fast.
    """
    if distribute != "multiworker":
        return True
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except ValueError as exc:
        raise MaiSrError(f"TF_CONFIG: not valid JSON ({exc})") from None
    task = tf_config.get("task") or {}
    kind, index = task.get("type"), int(task.get("index", 0))
    has_chief = "chief" in (tf_config.get("cluster") or {})
    return kind in (None, "chief") or (kind == "worker" and index == 0 and not has_chief)


def make_strategy(distribute: str):
    """The tf.distribute strategy for ``--distribute``.

    "none": the default (one device). "mirrored": MirroredStrategy over all local GPUs, or
    over all logical CPU devices when there is no GPU. "multiworker":
    MultiWorkerMirroredStrategy configured by the TF_CONFIG environment variable.
    """
    from mai_sr._tf import tf

    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if distribute == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise MaiSrError(f"--distribute: {distribute!r} is not one of {', '.join(DISTRIBUTE)}")


class Progress:
    """A stage's tqdm bar (or, quiet, plain log lines) and its metrics.csv rows.

    A row is written every ``log_every`` steps and at each validation, with the mean loss
    since the previous row (``state["window"]``, checkpointed, so resumed runs log the same).
    """

    def __init__(self, run: RunWriter, stage: str, steps: int, state: dict):
        from tqdm import tqdm

        self.run, self.stage, self.steps, self.state = run, stage, steps, state
        self.bar = tqdm(total=steps, initial=state["step"], desc=stage, unit="step",
                        file=sys.stderr, disable=run.quiet or not run.chief, dynamic_ncols=True)
        self.last_log = (time.perf_counter(), state["step"])

    def update(self, lr: float, val: float | None, log: bool) -> None:
        self.bar.update(1)
        if not (log or val is not None):
            return
        state = self.state
        row = {"step": state["step"], "stage": self.stage, "loss": float(np.mean(state["window"])),
               "lr": lr, "val_psnr": "" if val is None else val,
               "time": round(state["elapsed"], 3)}
        self.run.rows.append(row)
        state["window"].clear()
        last_val = "-" if state["val_psnr"] is None else f"{state['val_psnr']:.2f}"
        self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{lr:.2e}", val_psnr=last_val,
                             refresh=False)
        if self.run.quiet:
            now = time.perf_counter()
            rate = (row["step"] - self.last_log[1]) / max(now - self.last_log[0], 1e-9)
            self.last_log = (now, row["step"])
            self.run.log(f"{self.stage} step {row['step']}/{self.steps} loss {row['loss']:.5f} "
                         f"lr {lr:.2e} {rate:.2f} steps/s val {last_val} dB")

    def close(self) -> None:
        self.bar.close()


class StopOnSignal:
    """Turn the first SIGINT/SIGTERM into a request to stop after the current step.

    A second Ctrl-C interrupts at once (KeyboardInterrupt). Handlers are only installed in
    the main thread (Python's rule) and the previous ones are restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.signal_name = ""
        self._previous = {}

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # os.write, not print: a handler must not re-enter the buffered stream tqdm writes to.
        os.write(2, f"\nmai-sr train: {self.signal_name}: finishing this step and saving a "
                    "checkpoint (Ctrl-C again to abort now)\n".encode())

    def __enter__(self):
        try:
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread
            pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False
