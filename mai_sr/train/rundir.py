"""The run writer: creates a run directory and writes its files (the layout readers see is
:mod:`mai_sr.runs`).

``--out`` (default ``runs/<model>-<YYYYmmdd-HHMMSS>``; ``<parent>/latest`` is a symlink to
the newest run)::

    config.json           the full resolved TrainConfig (scale included), versions, git
                          commit, the training/validation image names, the training graph's
                          options
    metrics.csv           step, stage, loss, lr, val_psnr, time (training seconds)
    checkpoints/          {fp32,qat}-last.npz (weights + Adam state, every --ckpt-every steps
                          and on Ctrl-C/SIGTERM) and {fp32,qat}-best.npz (best val PSNR);
                          see :mod:`mai_sr.train.checkpoint`
    fp32/train.weights.h5   training graph, best FP32 weights
    fp32/deploy.weights.h5  the same collapsed to the deploy graph (what QAT and export use)
    qat/qat.weights.h5      quantized deploy model (weights and quantizer ranges)
    summary.json          validation PSNRs of bicubic, FP32 (train and deploy graph), QAT
    tensorboard/          TensorBoard events (unless --no-tensorboard)
    export/               left to `mai-sr export`
    .lock                 flock-ed by the process training the run (:mod:`mai_sr.train.session`)
"""

from __future__ import annotations

import csv
import io
import os
import platform
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np

from mai_sr import __version__, fileio
from mai_sr.errors import MaiSrError
from mai_sr.weights import is_weights_file
from mai_sr.runs import (CONFIG_FILE, FP32_DEPLOY_WEIGHTS, FP32_TRAIN_WEIGHTS, METRICS_COLUMNS,
                         METRICS_FILE, STAGES, SUMMARY_FILE, read_run_config, read_summary)
from mai_sr.train.checkpoint import save_checkpoint, saved_rows
from mai_sr.train.config import TrainConfig, merge_for_resume, require_finished_fp32


def resolve_run(config: TrainConfig, resume: bool, chief: bool) -> tuple[Path, TrainConfig]:
    """Run directory and the effective config (the stored one when resuming)."""
    if resume:
        run_dir = Path(config.out or "runs/latest")
        stored = read_run_config(run_dir)
        return run_dir.resolve(), merge_for_resume(config, stored, run_dir / CONFIG_FILE)
    if config.out is None and config.distribute == "multiworker":
        raise MaiSrError("--distribute multiworker: give --out (every worker must name the "
                         "same run directory)")
    if config.out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_dir, n = Path("runs") / f"{config.model}-{stamp}", 1
        while run_dir.exists():
            n += 1
            run_dir = Path("runs") / f"{config.model}-{stamp}-{n}"
        config = replace(config, out=str(run_dir))
    if config.from_run is not None and not is_weights_file(config.from_run):
        require_finished_fp32("--from", config.from_run, FP32_DEPLOY_WEIGHTS)
    run_dir = Path(config.out)
    if run_dir.exists() and chief:
        raise MaiSrError(f"--out {run_dir}: already exists; add --resume to continue that run "
                         "or choose another --out")
    return run_dir, config


def environment() -> dict:
    """Versions of Python, the platform and the libraries a run was trained with."""
    from importlib import metadata

    from mai_sr._tf import keras, tf

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "platform": platform.platform(),
            "tensorflow": tf.__version__, "tf_keras": keras.__version__,
            "tensorflow_model_optimization": version("tensorflow-model-optimization"),
            "numpy": np.__version__, "mai_sr": __version__}


def git_commit() -> str | None:
    """The commit of the mai_sr checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


class RunWriter:
    """Files of one run directory; non-chief multi-worker processes write nothing."""

    def __init__(self, run_dir: Path, config: TrainConfig, chief: bool, quiet: bool,
                 train_graph: dict, tensorboard: bool = False):
        self.dir, self.config, self.chief, self.quiet = run_dir, config, chief, quiet
        self._tensorboard_on = tensorboard and chief
        self._tensorboard = None
        self.train_graph = train_graph
        self.damaged: list[str] = []  # one line per damaged file found (said on resume)
        self.rows = self._read_metrics()
        self._metrics_damaged = bool(self.damaged)

    def create(self, train_pairs, val_pairs) -> None:
        """Make the directory and write config.json (the chief only); point `latest` at it."""
        if not self.chief:
            return
        make_run_dir(self.dir)
        from mai_sr.models.qat import DEFAULT_K

        record = {**self.config.to_dict(), "versions": environment(),
                  "weight_clip_k": DEFAULT_K if self.config.weight_clip else None,
                  "train_graph": self.train_graph,
                  "git_commit": git_commit(), "created": datetime.now().isoformat(),
                  "data_images": {"train": [p.name for p in train_pairs],
                                  "val": [p.name for p in val_pairs]}}
        fileio.write_json(self.dir / CONFIG_FILE, record)
        point_latest(self.dir)

    @property
    def tensorboard(self):
        """The run's TensorBoard writer (opened on first use: the folder must exist)."""
        if self._tensorboard is None:
            from mai_sr.train.tensorboard import TensorBoardLog

            self._tensorboard = TensorBoardLog(self.dir, self._tensorboard_on)
        return self._tensorboard

    def path(self, relative: str) -> Path:
        return self.dir / relative

    def checkpoint(self, stage: str, kind: str) -> Path:
        return self.dir / "checkpoints" / f"{stage}-{kind}.npz"

    # metrics.csv is rewritten whole (atomically) so it always matches the last checkpoint.
    def _read_metrics(self) -> list[dict]:
        """The logged rows; a damaged file (a disk error, an edit) keeps every row that can
        still be read, and says so. The rows it lost come back from the checkpoints
        (:meth:`restore_metrics`)."""
        path = self.dir / METRICS_FILE
        if not path.is_file():
            return []
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except OSError as exc:
            self.damaged.append(f"{path}: damaged ({exc}); rebuilding it from the checkpoints")
            return []
        lines = text.splitlines()
        if not lines or tuple(next(csv.reader(lines[:1]), ())) != METRICS_COLUMNS:
            self.damaged.append(f"{path}: damaged (header is not {','.join(METRICS_COLUMNS)}); "
                                "rebuilding it from the checkpoints")
            return []
        rows, bad = [], []
        # Every row ends in a newline: a last line without one was cut, maybe mid-number.
        cut = len(lines) if not text.endswith("\n") else None
        for number, line in enumerate(lines[1:], start=2):
            try:
                if number == cut:
                    raise ValueError("cut short")
                rows.append(_metrics_row(line))
            except (ValueError, csv.Error):
                bad.append(number)
        if bad:
            self.damaged.append(f"{path}: damaged (line {bad[0]} is not a metrics row"
                                f"{f', and {len(bad) - 1} more' if len(bad) > 1 else ''}); "
                                f"keeping its {len(rows)} readable row(s)")
        return rows

    def restore_metrics(self) -> None:
        """Put back the rows metrics.csv lost (damaged, truncated or deleted) from the rows
        each stage's checkpoint holds (the last checkpoint, else the best one)."""
        have = {(r["stage"], r["step"]) for r in self.rows}
        restored = 0
        for stage in STAGES:
            for kind in ("last", "best"):
                for row in saved_rows(self.checkpoint(stage, kind)):
                    if row.get("stage") == stage and (stage, row.get("step")) not in have:
                        self.rows.append(row)
                        have.add((stage, row["step"]))
                        restored += 1
        if restored:
            self.rows.sort(key=lambda r: (STAGES.index(r["stage"]), r["step"]))
            self.damaged.append(f"{self.dir / METRICS_FILE}: {restored} lost row(s) restored "
                                "from the checkpoints")
        if restored or self._metrics_damaged:
            self.write_metrics()  # now: a finished stage writes no rows again

    def truncate_metrics(self, stage: str, step: int) -> None:
        """Forget rows logged after `stage`'s checkpoint at `step` (they will be redone)."""
        order = STAGES.index(stage)
        self.rows = [r for r in self.rows if STAGES.index(r["stage"]) < order
                     or r["stage"] == stage and r["step"] <= step]

    def write_metrics(self) -> None:
        if not self.chief:
            return
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=METRICS_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        fileio.write_text(self.dir / METRICS_FILE, buf.getvalue())

    def save_weights(self, model, relative: str) -> None:
        if self.chief:
            # The temp name must end in .weights.h5 too: tf_keras picks the format by suffix.
            with fileio.atomic_path(self.dir / relative, suffix=".weights.h5") as tmp:
                model.save_weights(str(tmp))

    def save_checkpoint(self, path: Path, model, optimizer, state: dict) -> None:
        """The checkpoint, with the stage's metrics rows so far in its state."""
        if self.chief:
            rows = [r for r in self.rows if r["stage"] == state["stage"]]
            save_checkpoint(path, model, optimizer, {**state, "rows": rows})

    def copy_fp32_from(self, source: Path) -> None:
        """`--from`: this run's fp32/ is the source run's, or the deploy weights file (the
        source stays untouched)."""
        if source.is_file():
            if self.chief and not (self.dir / FP32_DEPLOY_WEIGHTS).is_file():
                fileio.write_bytes(self.dir / FP32_DEPLOY_WEIGHTS, source.read_bytes())
            return
        for relative in (FP32_DEPLOY_WEIGHTS, FP32_TRAIN_WEIGHTS):
            src = source / relative
            if src.is_file() and self.chief and not (self.dir / relative).is_file():
                fileio.write_bytes(self.dir / relative, src.read_bytes())

    def read_summary(self) -> dict:
        """summary.json, or {} when it is damaged (said once; the entries are rebuilt from
        the checkpoints by the loop)."""
        try:
            return read_summary(self.dir)
        except MaiSrError as exc:
            self.damaged.append(f"{exc}; rebuilding it")
            return {}

    def remove_stale_temps(self) -> list[Path]:
        """Delete temp files that killed writers left in the run folder and its subfolders."""
        removed = []
        for folder in [self.dir, *(p for p in self.dir.rglob("*") if p.is_dir())]:
            removed += fileio.remove_stale_temps(folder)
        return removed

    def write_summary(self, summary: dict) -> None:
        if self.chief:
            fileio.write_json(self.dir / SUMMARY_FILE, summary)

    def log(self, message: str) -> None:
        if self.chief:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)


def make_run_dir(run_dir: Path) -> None:
    """Create `run_dir` atomically (``mkdir`` fails if it exists): of two trainings started
    on one ``--out``, exactly one gets it and the other gets one line."""
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a parent that is a file, a read-only folder
        raise fileio.write_error(run_dir, exc) from None
    try:
        run_dir.mkdir()
    except FileExistsError:
        raise MaiSrError(f"--out {run_dir}: already exists (another training just created "
                         "it?); add --resume to continue that run or choose another "
                         "--out") from None
    except OSError as exc:
        raise fileio.write_error(run_dir, exc) from None


def point_latest(run_dir: Path) -> None:
    """Point ``<parent>/latest`` at `run_dir` (relative symlink, replaced atomically)."""
    link = run_dir.parent / "latest"
    if link.exists() and not link.is_symlink():
        return  # a real file or folder called "latest" is the user's; leave it
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(run_dir.name, tmp)
        os.replace(tmp, link)
    except OSError:
        pass  # filesystems without symlinks: runs/latest is a convenience only


def _metrics_row(line: str) -> dict:
    """One metrics.csv line as a row (ValueError unless it has every column, a known stage
    and an integer step)."""
    values = next(csv.reader([line]), [])
    if len(values) != len(METRICS_COLUMNS):
        raise ValueError("not a metrics row")
    row = dict(zip(METRICS_COLUMNS, values))
    if row["stage"] not in STAGES:
        raise ValueError("not a metrics row")
    for column in ("loss", "lr", "time") + (("val_psnr",) if row["val_psnr"] else ()):
        float(row[column])  # a number, or the line is damaged
    return dict(row, step=int(row["step"]))
