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

from mai_sr.errors import MaiSrError, first_line
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

    from mai_sr.fileio import write_error

    path = Path(run_dir) / LOCK_FILE
    try:
        handle = open(path, "a+")
    except OSError as exc:
        raise write_error(path, exc) from None
    for attempt in range(LOCK_WAIT_TRIES + 1):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if attempt < LOCK_WAIT_TRIES and _is_stopping(holder):
                time.sleep(LOCK_WAIT_S)  # an interrupted run saving its last checkpoint
                continue
            handle.close()
            if _is_stopping(holder):
                raise MaiSrError(f"{run_dir}: {holder.split(' (')[0]} is still stopping "
                                 "(saving its checkpoint); retry in a few seconds") from None
            raise MaiSrError(f"{run_dir}: {holder} is training this run; wait for it to "
                             "finish or stop it first") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {platform.node()}")
        handle.flush()
    except OSError as exc:
        handle.close()
        raise write_error(path, exc) from None
    return handle


LOCK_WAIT_TRIES, LOCK_WAIT_S = 20, 0.5  # wait up to 10 s for a stopping run to let go
STOPPING = " (stopping)"  # appended to the lock file's holder line by a stopping run


def _is_stopping(holder: str) -> bool:
    return holder.endswith(STOPPING)


def mark_stopping(handle) -> None:
    """Say in the lock file that its holder was interrupted and is only saving and exiting,
    so a ``--resume`` started meanwhile waits instead of being refused."""
    if handle is None:
        return
    try:
        handle.seek(0)
        holder = handle.read().strip()
        if not _is_stopping(holder):
            handle.write(STOPPING)
            handle.flush()
    except OSError:
        pass  # only a courtesy to the next --resume


def is_chief(distribute: str) -> bool:
    """Whether this process writes files: always, except non-chief multi-worker tasks.

    Read from TF_CONFIG without TensorFlow, so bad-input checks stay fast.
    """
    if distribute != "multiworker":
        return True
    kind, index, cluster = read_tf_config()
    has_chief = "chief" in cluster
    return kind in (None, "chief") or (kind == "worker" and index == 0 and not has_chief)


def read_tf_config() -> tuple[str | None, int, dict]:
    """(task type, task index, cluster) of the TF_CONFIG environment variable, checked: a
    malformed one is a one-line error here rather than a traceback inside TensorFlow."""
    text = os.environ.get("TF_CONFIG") or "{}"
    try:
        tf_config = json.loads(text)
    except ValueError as exc:
        raise MaiSrError(f"TF_CONFIG: not valid JSON ({exc})") from None
    if not isinstance(tf_config, dict):
        raise MaiSrError(f"TF_CONFIG: must be a JSON object with \"cluster\" and \"task\", "
                         f"got a {type(tf_config).__name__}")
    task, cluster = tf_config.get("task") or {}, tf_config.get("cluster") or {}
    if not isinstance(task, dict) or not isinstance(cluster, dict):
        raise MaiSrError('TF_CONFIG: "task" and "cluster" must be JSON objects')
    kind, index = task.get("type"), task.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise MaiSrError(f'TF_CONFIG: task "index" must be a whole number >= 0, got {index!r}')
    if kind is not None and cluster and kind not in cluster:
        raise MaiSrError(f'TF_CONFIG: task type {kind!r} is not in the cluster '
                         f'({", ".join(cluster)})')
    if kind is not None and kind in cluster and index >= len(cluster[kind]):
        raise MaiSrError(f"TF_CONFIG: task index {index} but the cluster has "
                         f"{len(cluster[kind])} {kind}(s)")
    return kind, index, cluster


# TF's collectives report a peer that died mid-step with these error types (the peer's
# address or task name somewhere in a long, multi-line message).
WORKER_LOST_ERRORS = ("UnavailableError", "DeadlineExceededError", "AbortedError",
                      "CancelledError", "InternalError")


def worker_lost_error(exc: BaseException, run_dir: Path) -> MaiSrError | None:
    """The one-line error for a multi-worker step that failed because another worker died,
    naming it (from the message's task name or address, matched against TF_CONFIG), or
    None when `exc` is not such a failure."""
    import re

    if type(exc).__name__ not in WORKER_LOST_ERRORS:
        return None
    message = str(exc)
    try:
        kind, index, cluster = read_tf_config()
    except MaiSrError:
        kind, index, cluster = None, 0, {}
    dead = None
    for match in re.finditer(r"/job:(\w+)/replica:\d+/task:(\d+)", message):
        if (match[1], int(match[2])) != (kind, index):
            dead = f"{match[1]} {match[2]}"
            break
    if dead is None:
        for job, addresses in cluster.items():
            for i, address in enumerate(addresses):
                if (job, i) != (kind, index) and str(address) in message:
                    dead = f"{job} {i} ({address})"
                    break
            if dead:
                break
    return MaiSrError(f"--distribute multiworker: {dead or 'another worker'} stopped "
                      f"responding ({type(exc).__name__}: {first_line(exc, 120)}); restart every worker "
                      f"with: mai-sr train --out {run_dir} --resume --distribute multiworker")


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


# "fp32 1200/1200 ██████████ 01:23<01:40, loss 0.0123 lr 4.5e-05 val 27.00 dB": 76 columns.
BAR_FORMAT = "{desc} {n_fmt}/{total_fmt} {bar:10} {elapsed}<{remaining}{postfix}"


class Progress:
    """A stage's tqdm bar (or, quiet, plain log lines) and its metrics.csv rows.

    A row is written every ``log_every`` steps and at each validation, with the mean loss
    since the previous row (``state["window"]``, checkpointed, so resumed runs log the same).
    """

    def __init__(self, run: RunWriter, stage: str, steps: int, state: dict):
        from tqdm import tqdm

        self.run, self.stage, self.steps, self.state = run, stage, steps, state
        # A fixed, short layout: tqdm's default (rate, "loss=..., val_psnr=...") passes 80
        # columns and was cut off there.
        self.bar = tqdm(total=steps, initial=state["step"], desc=stage, unit="step",
                        file=sys.stderr, disable=run.quiet or not run.chief, dynamic_ncols=True,
                        bar_format=BAR_FORMAT)
        self.last_log = (time.perf_counter(), state["step"])

    def _show(self, loss: float | None, lr: float) -> None:
        val = self.state["val_psnr"]
        self.bar.set_postfix_str(
            ("" if loss is None else f"loss {loss:.4f} ") + f"lr {lr:.1e}"
            + ("" if val is None else f" val {val:.2f} dB"), refresh=False)

    def update(self, lr: float, val: float | None, log: bool) -> None:
        state = self.state
        if not (log or val is not None):
            # Every step, not only at logged rows: a stage shorter than --log-every steps
            # (a short QAT stage) showed no loss until it ended.
            self._show(float(np.mean(state["window"])) if state["window"] else None, lr)
            self.bar.update(1)
            return
        row = {"step": state["step"], "stage": self.stage, "loss": float(np.mean(state["window"])),
               "lr": lr, "val_psnr": "" if val is None else val,
               "time": round(state["elapsed"], 3)}
        self.run.rows.append(row)
        self.run.tensorboard.scalars(self.stage, row["step"], {
            "loss": row["loss"], "lr": lr, "val_psnr": val})
        state["window"].clear()
        last_val = "-" if state["val_psnr"] is None else f"{state['val_psnr']:.2f}"
        self._show(row["loss"], lr)
        self.bar.update(1)
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

    def __init__(self, lock=None):
        self.lock = lock  # the run lock: marked "stopping" so a --resume meanwhile waits
        self.requested = False
        self.signal_name = ""
        self._previous = {}

    def _handle(self, signum, frame):
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        signal.signal(signal.SIGINT, signal.default_int_handler)
        mark_stopping(self.lock)
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
