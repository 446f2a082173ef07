"""What `mai-sr train` is about to do, and what it did.

:class:`TrainPlan` is what a training will do, known once its data is loaded: the data and
image counts, the validation images, the run folder, the steps of each stage (and, on
``--resume``, how many are done) and the time the steps are expected to take on this
machine, from a recorded speed (:func:`recorded_speed`). :func:`end_lines` is what a
finished run says: the validation PSNR of bicubic and of each stage, the gain over bicubic,
and the command that exports it. :func:`is_finished` tells a run with nothing left to do,
which ``--resume`` reports instead of training.

Reading runs needs only the standard library (no TensorFlow).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from mai_sr.errors import MaiSrError
from mai_sr.runs import (CONFIG_FILE, FP32_DEPLOY_WEIGHTS, METRICS_FILE, QAT_WEIGHTS,
                         read_run_config, read_summary, run_scale)

STAGE_WEIGHTS = {"fp32": FP32_DEPLOY_WEIGHTS, "qat": QAT_WEIGHTS}
STAGE_NAMES = {"fp32": "FP32", "qat": "QAT"}

# Training speed (optimizer steps per second, FP32 and QAT stages) of each model at the
# default batch 16 and LR patch 48 on the builtin photos, measured on 2 CPU cores shared
# with other jobs (1-min load 10-14, a busy machine: a quiet one is faster) with TF 2.21 and
# the real loop: the metrics.csv time between steps 20 and 60 of FP32, 20 and 40 of QAT
# (validation excluded). Used only when no earlier run of the model beside the new one
# recorded its own speed; the plan says which figure it used.
MEASURED_ON = "2026-12-04"
MEASURED_BATCH, MEASURED_PATCH = 16, 48
MEASURED_STEPS_PER_S: dict[str, tuple[float, float]] = {
    "abpn": (5.4, 7.2), "abpn_m6c40": (1.9, 2.0), "ecbsr": (12.6, 11.6),
    "ecbsr_m4c32": (3.8, 2.9), "ecbsr_m6c40": (1.7, 1.4), "espcn": (3.4, 3.8),
    "etds": (11.3, 19.0), "etds_l": (1.0, 1.3), "etds_m": (3.1, 4.0), "etds_s": (2.3, 2.1),
    "fsrcnn": (1.7, 1.3), "ncnet": (4.4, 5.0), "scsrn": (3.4, 2.6), "xcat": (2.9, 9.7),
}


def stages(config) -> list[tuple[str, int]]:
    """(stage, steps) of what a run of `config` trains: FP32 unless it starts from another
    run's FP32 weights (``--from``), then QAT with ``--qat``."""
    out = [] if config.from_run is not None else [("fp32", config.steps)]
    return out + ([("qat", config.qat_steps)] if config.qat else [])


def is_finished(run_dir: Path, config) -> bool:
    """Whether every stage of the run has its weights and its summary.json entry (a run
    missing either still has work for ``--resume``: training, or rebuilding the entry)."""
    try:
        summary = read_summary(run_dir)
    except MaiSrError:
        return False  # damaged: --resume rebuilds it
    return all((run_dir / STAGE_WEIGHTS[stage]).is_file() and stage in summary
               for stage, _ in stages(config))


def _metrics_rows(run_dir: Path) -> list[dict]:
    """metrics.csv's rows as dicts ([] when absent or unreadable: it is only a speed)."""
    try:
        with open(run_dir / METRICS_FILE, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def steps_done(run_dir: Path, stage: str) -> int:
    """The last logged step of `stage` in a run's metrics.csv (rewritten with each
    checkpoint, so it is where ``--resume`` continues), 0 when none."""
    steps = [int(r["step"]) for r in _metrics_rows(run_dir)
             if r.get("stage") == stage and str(r.get("step", "")).isdigit()]
    return max(steps, default=0)


def run_speed(run_dir: Path) -> dict[str, float]:
    """Steps per second of each stage a run logged: steps between its first and last
    metrics rows over the training time between them (validation included)."""
    speed = {}
    for stage in STAGE_NAMES:
        try:
            rows = [(int(r["step"]), float(r["time"])) for r in _metrics_rows(run_dir)
                    if r.get("stage") == stage]
        except (TypeError, ValueError):
            continue
        if len(rows) >= 2 and rows[-1][1] > rows[0][1]:
            speed[stage] = (rows[-1][0] - rows[0][0]) / (rows[-1][1] - rows[0][1])
    return speed


def recorded_speed(run_dir: Path, config) -> tuple[dict[str, float], str]:
    """(steps per second of each stage, where the figure comes from) for a run of `config`
    on this machine: the run's own rows (a resumed run), else the newest run beside it
    with the same model, scale, batch and patch, else the per-model figure measured here
    scaled by the pixels of a batch; ({}, "") when none is known."""
    own = run_speed(run_dir) if (run_dir / METRICS_FILE).is_file() else {}
    if own:
        return own, "this run's own speed so far"
    for other in _sibling_runs(run_dir):
        try:
            theirs = read_run_config(other)
        except MaiSrError:
            continue
        same = (theirs.get("model"), run_scale(theirs), theirs.get("batch"), theirs.get("patch"))
        if same == (config.model, config.scale, config.batch, config.patch):
            speed = run_speed(other)
            if speed:
                return speed, f"the speed of run {other.name} here"
    if config.model in MEASURED_STEPS_PER_S:
        ratio = (MEASURED_BATCH * MEASURED_PATCH ** 2) / (config.batch * config.patch ** 2)
        fp32, qat = MEASURED_STEPS_PER_S[config.model]
        note = "" if ratio == 1 else ", scaled by the pixels per batch"
        return ({"fp32": fp32 * ratio, "qat": qat * ratio}, f"{config.model}'s speed "
                f"measured on a busy 2-core machine on {MEASURED_ON}{note}")
    return {}, ""


def _sibling_runs(run_dir: Path) -> list[Path]:
    """Other run folders beside `run_dir`, newest first (by their metrics.csv)."""
    try:
        found = [p for p in run_dir.parent.iterdir() if p != run_dir and not p.is_symlink()
                 and (p / CONFIG_FILE).is_file() and (p / METRICS_FILE).is_file()]
    except OSError:
        return []
    return sorted(found, key=lambda p: (p / METRICS_FILE).stat().st_mtime, reverse=True)


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return (f"{seconds:.0f} s" if seconds < 90 else f"{minutes} min" if minutes < 90
            else f"{minutes / 60:.1f} h")


@dataclass(frozen=True)
class TrainPlan:
    """What a training will do (:func:`mai_sr.train.train_from_config` hands it to its
    `on_plan` before the first step): the data, the run folder, the stages as (stage, steps
    done, steps), the speed per stage and its source, and whether the run is finished."""

    run_dir: Path
    model: str
    scale: int
    data: str
    train_images: int
    val: str | None
    val_images: tuple[str, ...]
    stages: tuple[tuple[str, int, int], ...]
    speed: dict
    speed_source: str
    batch: int
    patch: int
    resumed: bool = False
    finished: bool = False

    def expected_seconds(self) -> float | None:
        """Seconds the remaining steps take at the recorded speed (None when unknown)."""
        left = [(stage, total - done) for stage, done, total in self.stages if total > done]
        if any(stage not in self.speed for stage, _ in left):
            return None
        return sum(n / self.speed[stage] for stage, n in left)

    def lines(self) -> list[str]:
        """The plan as `mai-sr train` prints it before training."""
        steps = ", then ".join(
            f"{STAGE_NAMES[s]} {total} steps" + (f" ({done} done)" if done else "")
            for s, done, total in self.stages)
        held = ", ".join(self.val_images[:3]) + (", ..." if len(self.val_images) > 3 else "")
        val = (f"{len(self.val_images)} images of {self.val}" if self.val else
               f"{len(self.val_images)} image{'s' if len(self.val_images) != 1 else ''} held "
               f"out of the data ({held})")
        lines = [f"{'resuming' if self.resumed else 'training'} {self.model} x{self.scale}: "
                 f"{steps} (batch {self.batch}, LR patch {self.patch})",
                 f"  data: {self.data}, {self.train_images} training images; validation: {val}",
                 f"  run folder: {self.run_dir}"]
        expected = self.expected_seconds()
        if expected is not None:
            rates = ", ".join(f"{STAGE_NAMES[s]} {self.speed[s]:.1f} steps/s"
                              for s, done, total in self.stages if total > done)
            lines.append(f"  expected: about {_duration(expected)} of training steps ({rates}, "
                         f"{self.speed_source}), plus TensorFlow's start-up")
        else:
            lines.append("  expected: no recorded speed of this model on this machine yet")
        return lines


def end_lines(run_dir: Path, run_arg: str | os.PathLike | None = None) -> list[str]:
    """What a finished run says: the validation PSNR of bicubic and of each stage with its
    gain over bicubic, and the command that exports it (`run_arg` is how to name the run,
    default its path)."""
    summary = read_summary(run_dir)
    bicubic = summary.get("bicubic_val_psnr")
    parts = [] if bicubic is None else [f"bicubic {bicubic:.2f} dB"]
    for stage, key in (("fp32", "val_psnr_deploy"), ("qat", "val_psnr")):
        entry = summary.get(stage) or {}
        value = entry.get(key, entry.get("val_psnr"))
        if value is not None:
            gain = "" if bicubic is None else f" ({value - bicubic:+.2f} dB)"
            parts.append(f"{STAGE_NAMES[stage]} {value:.2f} dB{gain}")
    lines = [f"run: {run_dir}"]
    if parts:
        lines.append(f"validation PSNR (RGB, crop = scale): {', '.join(parts)}")
    target = "model.tflite" if not Path("model.tflite").exists() else f"{run_dir.name}.tflite"
    lines.append(f"next: mai-sr export {target} --run {run_arg or run_dir}")
    return lines


def make_plan(run_dir: Path, config, train_images: int, val_images, resumed: bool,
              finished: bool = False) -> TrainPlan:
    """The :class:`TrainPlan` of a run of `config` in `run_dir` with these data counts."""
    rows = []
    for stage, total in stages(config):
        done = (total if (run_dir / STAGE_WEIGHTS[stage]).is_file()
                else min(steps_done(run_dir, stage), total) if resumed else 0)
        rows.append((stage, done, total))
    speed, source = recorded_speed(run_dir, config)
    return TrainPlan(run_dir=run_dir, model=config.model, scale=config.scale, data=config.data,
                     train_images=train_images, val=config.val,
                     val_images=tuple(val_images), stages=tuple(rows), speed=speed,
                     speed_source=source, batch=config.batch, patch=config.patch,
                     resumed=resumed, finished=finished)
