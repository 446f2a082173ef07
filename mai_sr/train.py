"""Training: FP32, then quantization-aware, in one resumable run directory.

``mai-sr train --model abpn --qat`` runs two stages (seed 004, section 3.1 recipe):

1. **FP32** on the training graph (``create_model(name, deploy=False)``, re-parameterizable
   blocks expanded): Adam, cosine (optionally with linear warm-up) or step LR schedule, L1
   loss by default, in a custom ``tf.function`` train step under a ``tf.distribute`` strategy.
   The best-validating weights are collapsed to the deploy graph (``mai_sr.models.collapse``).
2. **QAT** (with ``--qat``): ``mai_sr.qat.quantize_model`` on the deploy graph, fine-tuned with
   a low learning rate; validation runs the fake-quant Keras model.
   ``--qat --from RUN`` does only this stage, starting from the FP32 weights of a finished
   run, in a *new* run directory (the source run is never modified, so several QAT variants
   can start from one FP32 run).
   ``--init RUN`` instead starts the FP32 stage from RUN's FP32 weights: a second,
   fine-tuning stage with its own loss, LR, patch size or teacher (XCAT's recipe, 4.17).

``--teacher RUN|NAME`` distils: the loss mixes the HR target with the output of a float
teacher (a finished run's FP32 model or a shipped pretrained one), in both stages.

Weight clipping (seed 004, 4.1; on by default in both stages, ``--no-weight-clip`` to
compare) is ``mai_sr.qat.apply_weight_clip``, run after every optimizer step.

Run directory (``--out``, default ``runs/<model>-<YYYYmmdd-HHMMSS>``; ``<parent>/latest`` is a
symlink to the newest run)::

    config.json           the full resolved TrainConfig + scale, versions, git commit,
                          the training/validation image names, the training graph's options
    metrics.csv           step, stage, loss, lr, val_psnr, time (training seconds)
    checkpoints/          {fp32,qat}-last.npz (weights + Adam state, every --ckpt-every steps
                          and on Ctrl-C/SIGTERM) and {fp32,qat}-best.npz (best val PSNR)
    fp32/train.weights.h5   training graph, best FP32 weights
    fp32/deploy.weights.h5  the same collapsed to the deploy graph (what QAT and export use)
    qat/qat.weights.h5      quantized deploy model (weights and quantizer ranges)
    summary.json          validation PSNRs of bicubic, FP32 (train and deploy graph), QAT
    export/               left to `mai-sr export`
    .lock                 flock-ed by the process training the run: a second ``--resume``
                          of a run in training stops with an error (released on exit or kill)

``--resume`` continues from ``checkpoints/<stage>-last.npz``: weights, Adam moments and
iteration count are restored, the LR schedule is a function of that count, and training batch
k is a pure function of (seed, k) (``mai_sr.data.make_train_dataset(start_step=k)``), so an
interrupted and resumed run ends with the same weights as an uninterrupted one.

This module imports TensorFlow only inside functions, so :func:`read_run_config` is cheap.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np

from mai_sr import __version__, fileio
from mai_sr.errors import MaiSrError
from mai_sr.runs import (CONFIG_FILE, FP32_DEPLOY_WEIGHTS, FP32_TRAIN_WEIGHTS,  # noqa: F401
                         LOCK_FILE, METRICS_COLUMNS, METRICS_FILE, QAT_WEIGHTS, STAGES,
                         SUMMARY_FILE, build_deploy, load_run_model, read_run_config,
                         read_summary)

SCALE = 3
LOSSES = ("l1", "l2", "charbonnier")
SCHEDULES = ("cosine", "step")
DISTRIBUTE = ("none", "mirrored", "multiworker")
CHARBONNIER_EPS = 1e-3  # on images scaled to [0, 1]


# Training defaults that differ per model (data, not branches). Anything not listed falls back
# to MODEL_BASE_DEFAULTS; explicit arguments override both.
MODEL_BASE_DEFAULTS = {"loss": "l1", "warmup": 0.05, "intensity_aug": False}
MODEL_DEFAULTS: dict[str, dict] = {
    "abpn": {},
    "ncnet": {},
    "scsrn": {"warmup": 0.1},                                 # Z6: cosine, 0.1 warm-up (4.1)
    "xcat": {"loss": "charbonnier", "intensity_aug": True},   # Aselsan (4.17)
}

# What `mai-sr train --qat --from RUN` takes from RUN's config.json unless given.
FROM_RUN_INHERITS = ("data", "val", "val_fraction", "patch", "batch", "seed", "intensity_aug",
                     "loss", "schedule")

# Settings that may change when a run is resumed; every other field must match config.json.
RESUME_FREE = frozenset({"out", "distribute", "val_every", "ckpt_every", "log_every"})

# create_model options of the FP32 training graph, recorded in config.json ("train_graph") so
# a resumed run rebuilds the graph its checkpoints were made with. Runs without the record
# predate the [0, 1]-domain training graphs: they trained on raw pixels.
TRAIN_GRAPH = {"normalize": True}
LEGACY_TRAIN_GRAPH = {"normalize": False}


@dataclass
class TrainConfig:
    """Everything that defines a training run; ``None`` fields resolve in ``__post_init__``.

    The defaults are sized so ``mai-sr train --model abpn --qat`` (builtin photos) finishes in
    a few minutes on 2 CPU cores; pass larger ``steps``/``patch`` for real training.
    """

    model: str | None = None         # None: from --from's run, else "abpn"
    data: str = "builtin"            # "builtin" | DIR | "DIR,DIR"
    val: str | None = None           # None: hold out val_fraction of the training images
    val_fraction: float = 0.1
    steps: int = 1200                # FP32 optimizer steps
    patch: int = 48                  # LR patch side (HR = 3x)
    batch: int = 16                  # global batch (split across replicas)
    lr: float = 1e-3
    schedule: str = "cosine"         # cosine (to 0 after `warmup`) | step (halving)
    warmup: float | None = None      # fraction of steps with a linear warm-up (per model)
    decay_every: int | None = None   # step schedule period; None: steps // 4
    loss: str | None = None          # l1 | l2 | charbonnier (per model)
    seed: int = 0
    intensity_aug: bool | None = None  # XCAT's x1/0.7/0.5 intensity scaling (per model)
    qat: bool = False
    qat_steps: int = 300
    qat_lr: float = 5e-5
    qat_loss: str | None = None      # None: same as loss
    from_run: str | None = None      # finished FP32 run: only the QAT stage (implies qat)
    init_run: str | None = None      # finished FP32 run whose weights start the FP32 stage
    teacher: str | None = None       # distillation: an FP32 run dir or a pretrained model name
    distill_weight: float = 0.5      # share of the loss measured against the teacher's output
    weight_clip: bool = True
    distribute: str = "none"
    val_every: int = 200
    ckpt_every: int = 200
    log_every: int = 20
    out: str | None = None           # None: runs/<model>-<time>
    # Field names given explicitly (from_cli); on --resume only these are compared with the
    # run's config.json. None (library use) compares every field.
    explicit: frozenset | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.from_run is not None:
            self.qat = True
            self.from_run = self._take_model_from("--from", self.from_run)
        if self.init_run is not None:
            self._resolve_init_run()
        if self.teacher is not None:
            self._resolve_teacher()
        self.model = self.model or "abpn"
        if self.model not in MODEL_DEFAULTS:
            raise MaiSrError(f"--model: unknown model {self.model!r} "
                             f"(choose from {', '.join(MODEL_DEFAULTS)})")
        per_model = {**MODEL_BASE_DEFAULTS, **MODEL_DEFAULTS[self.model]}
        for name, value in per_model.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.qat_loss = self.qat_loss or self.loss
        self._validate()

    def _resolve_init_run(self) -> None:
        """Fine-tuning (``--init RUN``): RUN's model and finished FP32 weights, checked now."""
        if self.from_run is not None:
            raise MaiSrError("--init: not with --from (--from skips the FP32 stage --init starts)")
        _require_finished_fp32("--init", self.init_run, FP32_TRAIN_WEIGHTS)
        self.init_run = self._take_model_from("--init", self.init_run)

    def _take_model_from(self, option: str, run: str) -> str:
        """Adopt the model a source run (--from, --init) trained; return the run's absolute
        path, recorded resolved so `runs/latest` keeps naming the same run."""
        run = str(Path(run).resolve())
        source_model = read_run_config(run).get("model")
        if self.model is not None and self.model != source_model:
            raise MaiSrError(f"--model {self.model}: {option} {run} trained {source_model}")
        self.model = source_model
        return run

    def _resolve_teacher(self) -> None:
        """``--teacher``: a finished FP32 run (path made absolute) or a shipped model's name."""
        from mai_sr.pretrained import NAMES, pretrained_path

        if Path(self.teacher).is_dir():
            self.teacher = str(Path(self.teacher).resolve())
            _require_finished_fp32("--teacher", self.teacher, FP32_DEPLOY_WEIGHTS)
        elif self.teacher in NAMES:
            pretrained_path(self.teacher, "weights")
        else:
            raise MaiSrError(f"--teacher {self.teacher}: neither a run directory nor a "
                             f"pretrained model ({', '.join(NAMES)})")
        if not 0 < self.distill_weight <= 1:
            raise MaiSrError(f"--distill-weight: must be in (0, 1], got {self.distill_weight!r}")

    def _validate(self) -> None:
        choices = {"loss": LOSSES, "qat_loss": LOSSES, "schedule": SCHEDULES,
                   "distribute": DISTRIBUTE}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise MaiSrError(f"--{name.replace('_', '-')}: {getattr(self, name)!r} is not "
                                 f"one of {', '.join(allowed)}")
        for name in ("steps", "patch", "batch", "qat_steps", "val_every", "ckpt_every",
                     "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise MaiSrError(f"--{name.replace('_', '-')}: must be a whole number >= 1, "
                                 f"got {value!r}")
        for name in ("lr", "qat_lr"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise MaiSrError(f"--{name.replace('_', '-')}: must be > 0, got {value!r}")
        if not 0 <= self.warmup < 1:
            raise MaiSrError(f"warmup: must be a fraction in [0, 1), got {self.warmup!r}")
        if not 0 < self.val_fraction < 1:
            raise MaiSrError(f"val_fraction: must be in (0, 1), got {self.val_fraction!r}")
        if self.decay_every is not None and self.decay_every < 1:
            raise MaiSrError(f"decay_every: must be >= 1, got {self.decay_every!r}")

    @classmethod
    def from_cli(cls, args: dict) -> "TrainConfig":
        """Config from ``vars(argparse.Namespace)`` of ``mai-sr train``; unset options are None."""
        names = {f.name for f in fields(cls)} - {"explicit"}
        given = {k: v for k, v in args.items() if k in names and v is not None}
        if not given.get("qat"):        # store_true flags count as given only when set
            given.pop("qat", None)
        if args.get("no_weight_clip"):
            given["weight_clip"] = False
        inherited = {}
        if given.get("from_run") is not None:
            # `--qat --from RUN` fine-tunes on the data the FP32 run used, unless told otherwise.
            source = read_run_config(given["from_run"])
            inherited = {k: source[k] for k in FROM_RUN_INHERITS if k in source and k not in given}
        return cls(**inherited, **given, explicit=frozenset(given))

    def to_dict(self) -> dict:
        """The resolved fields (what config.json stores), without ``explicit``."""
        d = asdict(self)
        d.pop("explicit")
        return d


class TrainingInterrupted(MaiSrError):
    """Ctrl-C/SIGTERM: the current step finished and a checkpoint was written."""

    exit_code = 130


# ---------------------------------------------------------------- run directory API


def _require_finished_fp32(option: str, run: str | os.PathLike, weights: str) -> None:
    """Raise the one-line error for `option` when `run` lacks the FP32 `weights` file it needs."""
    if not (Path(run) / weights).is_file():
        raise MaiSrError(f"{option} {run}: no {weights} (not a finished FP32 run)")





# ---------------------------------------------------------------- entry point


def train_from_config(config: TrainConfig, resume: bool = False, quiet: bool = False, *,
                      on_step: Callable[[str, int], None] | None = None) -> Path:
    """Run (or, with `resume`, continue) the training described by `config`; return the run dir.

    `on_step(stage, step)` is called after every optimizer step (progress hooks, tests).
    Ctrl-C or SIGTERM finishes the current step, writes a checkpoint and raises
    :class:`TrainingInterrupted` (exit code 130) saying how to resume.
    """
    started = time.perf_counter()
    chief = _is_chief(config.distribute)
    run_dir, config = _resolve_run(config, resume, chief)
    train_pairs, val_pairs = _load_data(config)

    from mai_sr._tf import tf  # noqa: F401  (strategy creation must precede other TF ops)

    strategy = make_strategy(config.distribute)
    if config.batch % strategy.num_replicas_in_sync:
        raise MaiSrError(f"--batch {config.batch}: not divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas of --distribute "
                         f"{config.distribute}")
    train_graph = (read_run_config(run_dir).get("train_graph", LEGACY_TRAIN_GRAPH) if resume
                   else TRAIN_GRAPH)
    run = _Run(run_dir, config, chief, quiet, train_graph)
    if not resume:
        run.create(train_pairs, val_pairs)
    lock = hold_run_lock(run_dir) if chief else None
    with _StopOnSignal() as stop:
        summary = run.read_summary()
        summary["bicubic_val_psnr"] = _bicubic_psnr(val_pairs)
        deploy_weights = None  # handed over in memory: other workers may not see the file yet
        if config.from_run is not None:
            run.copy_fp32_from(Path(config.from_run))
            summary.setdefault("fp32", read_summary(Path(config.from_run)).get("fp32"))
        elif not (run_dir / FP32_DEPLOY_WEIGHTS).is_file():
            summary["fp32"], deploy_weights = _fp32_stage(run, strategy, train_pairs, val_pairs,
                                                          stop, on_step)
            run.write_summary(summary)
        if config.qat and not (run_dir / QAT_WEIGHTS).is_file():
            summary["qat"] = _qat_stage(run, strategy, train_pairs, val_pairs, stop, on_step,
                                        deploy_weights)
    summary["wall_seconds_last_invocation"] = round(time.perf_counter() - started, 1)
    run.write_summary(summary)
    if lock is not None:
        lock.close()
    return run_dir


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


# ---------------------------------------------------------------- preparation


def _is_chief(distribute: str) -> bool:
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


def _resolve_run(config: TrainConfig, resume: bool, chief: bool) -> tuple[Path, TrainConfig]:
    """Run directory and the effective config (the stored one when resuming)."""
    if resume:
        run_dir = Path(config.out or "runs/latest")
        stored = read_run_config(run_dir)
        return run_dir.resolve(), _merge_for_resume(config, stored, run_dir / CONFIG_FILE)
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
    if config.from_run is not None:
        _require_finished_fp32("--from", config.from_run, FP32_DEPLOY_WEIGHTS)
    run_dir = Path(config.out)
    if run_dir.exists() and chief:
        raise MaiSrError(f"--out {run_dir}: already exists; add --resume to continue that run "
                         "or choose another --out")
    return run_dir, config


def _merge_for_resume(config: TrainConfig, stored: dict, config_path: Path) -> TrainConfig:
    """The stored config, after checking that what this invocation asks for matches it."""
    names = {f.name for f in fields(TrainConfig)} - {"explicit"}
    asked = names if config.explicit is None else set(config.explicit)
    for name in sorted((asked & names) - RESUME_FREE):
        if stored.get(name) != getattr(config, name):
            raise MaiSrError(f"--resume: {config_path} has {name}={stored.get(name)!r}, this "
                             f"invocation asks {name}={getattr(config, name)!r}; resume with "
                             "the run's settings or start a new --out")
    values = {name: stored[name] for name in names if name in stored}
    for name in RESUME_FREE & asked:
        values[name] = getattr(config, name)
    values["out"] = stored.get("out")
    return TrainConfig(**values)


def _load_data(config: TrainConfig):
    """(train pairs, validation pairs): --val, or every ~1/val_fraction-th training image."""
    from mai_sr import data

    def load(option: str, source: str, **kwargs):
        try:
            return data.load_pairs(source, scale=SCALE, **kwargs)
        except MaiSrError as exc:
            raise MaiSrError(f"--{option} {source}: {exc}") from None

    pairs = load("data", config.data, min_lr_size=config.patch)
    if config.val is not None:
        return pairs, load("val", config.val)
    if len(pairs) < 2:
        raise MaiSrError(f"--data {config.data}: only {len(pairs)} usable image(s); need 2 to "
                         "hold one out for validation, or pass --val DIR")
    n_val = max(1, round(len(pairs) * config.val_fraction))
    # Evenly spaced, so a "DIR,DIR" source contributes from every folder.
    held = {int((i + 0.5) * len(pairs) / n_val) for i in range(n_val)}
    return ([p for i, p in enumerate(pairs) if i not in held],
            [p for i, p in enumerate(pairs) if i in held])


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


def _environment() -> dict:
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


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


# ---------------------------------------------------------------- the run directory


class _Run:
    """Files of one run directory; non-chief multi-worker processes write nothing."""

    def __init__(self, run_dir: Path, config: TrainConfig, chief: bool, quiet: bool,
                 train_graph: dict):
        self.dir, self.config, self.chief, self.quiet = run_dir, config, chief, quiet
        self.train_graph = train_graph
        self.rows = self._read_metrics()

    def create(self, train_pairs, val_pairs) -> None:
        if not self.chief:
            return
        self.dir.mkdir(parents=True)
        from mai_sr.qat import DEFAULT_K

        record = {**self.config.to_dict(), "scale": SCALE, "versions": _environment(),
                  "weight_clip_k": DEFAULT_K if self.config.weight_clip else None,
                  "train_graph": self.train_graph,
                  "git_commit": _git_commit(), "created": datetime.now().isoformat(),
                  "data_images": {"train": [p.name for p in train_pairs],
                                  "val": [p.name for p in val_pairs]}}
        fileio.write_json(self.dir / CONFIG_FILE, record)
        _point_latest(self.dir)

    def path(self, relative: str) -> Path:
        return self.dir / relative

    def checkpoint(self, stage: str, kind: str) -> Path:
        return self.dir / "checkpoints" / f"{stage}-{kind}.npz"

    # metrics.csv is rewritten whole (atomically) so it always matches the last checkpoint.
    def _read_metrics(self) -> list[dict]:
        path = self.dir / METRICS_FILE
        if not path.is_file():
            return []
        with open(path, newline="") as f:
            return [dict(row, step=int(row["step"])) for row in csv.DictReader(f)]

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
        if self.chief:
            _save_checkpoint(path, model, optimizer, state)

    def copy_fp32_from(self, source: Path) -> None:
        """`--from`: this run's fp32/ is the source run's (the source stays untouched)."""
        for relative in (FP32_DEPLOY_WEIGHTS, FP32_TRAIN_WEIGHTS):
            src = source / relative
            if src.is_file() and self.chief and not (self.dir / relative).is_file():
                fileio.write_bytes(self.dir / relative, src.read_bytes())

    def read_summary(self) -> dict:
        return read_summary(self.dir)

    def write_summary(self, summary: dict) -> None:
        if self.chief:
            fileio.write_json(self.dir / SUMMARY_FILE, summary)

    def log(self, message: str) -> None:
        if self.chief:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)



def _point_latest(run_dir: Path) -> None:
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


def _save_checkpoint(path: Path, model, optimizer, state: dict) -> None:
    """One .npz holding model weights, optimizer variables and the loop state, atomically."""
    from mai_sr._tf import keras

    arrays = {f"weight_{i:04d}": w for i, w in enumerate(model.get_weights())}
    if optimizer is not None:
        values = keras.backend.batch_get_value(optimizer.variables)
        arrays.update({f"optimizer_{i:04d}": v for i, v in enumerate(values)})
    arrays["state"] = np.array(json.dumps(state))
    with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _load_checkpoint(path: Path, model, optimizer) -> dict:
    """Restore what :func:`_save_checkpoint` wrote (optimizer may be None); return the state."""
    weights, state = _read_checkpoint_weights(path)
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


# ---------------------------------------------------------------- stages


def _fp32_stage(run: _Run, strategy, train_pairs, val_pairs, stop, on_step):
    """Train the training graph, collapse it; return (summary dict, deploy weights)."""
    from mai_sr._tf import keras
    from mai_sr.models import collapse, create_model

    config = run.config
    keras.utils.set_random_seed(config.seed)  # reproducible initial weights
    with strategy.scope():
        model = create_model(config.model, scale=SCALE, deploy=False, **run.train_graph)
    if config.init_run is not None:
        init_graph = read_run_config(config.init_run).get("train_graph", LEGACY_TRAIN_GRAPH)
        if init_graph != run.train_graph:
            raise MaiSrError(f"--init {config.init_run}: trained graph {init_graph}, this run "
                             f"builds {run.train_graph}")
        # A checkpoint, when resuming, overrides these in _train_stage.
        model.load_weights(str(Path(config.init_run) / FP32_TRAIN_WEIGHTS))
    result = _train_stage(run, "fp32", model, strategy, train_pairs, val_pairs, stop, on_step)
    run.save_weights(model, FP32_TRAIN_WEIGHTS)
    deploy = collapse(model)
    # Collapse is exact up to float rounding; the deploy-graph PSNR shows it on real images.
    result["val_psnr_deploy"] = _val_psnr(deploy, val_pairs)
    run.save_weights(deploy, FP32_DEPLOY_WEIGHTS)
    run.log(f"fp32: val PSNR {result['val_psnr']:.3f} dB (training graph), "
            f"{result['val_psnr_deploy']:.3f} dB (deploy graph)")
    return result, deploy.get_weights()


def _qat_stage(run: _Run, strategy, train_pairs, val_pairs, stop, on_step,
               deploy_weights=None) -> dict:
    """Quantize the FP32 deploy model (given weights, else fp32/) and fine-tune it."""
    from mai_sr.qat import quantize_model

    with strategy.scope():
        deploy = build_deploy(run.config.model, SCALE)
        if deploy_weights is None:
            deploy.load_weights(str(run.path(FP32_DEPLOY_WEIGHTS)))
        else:
            deploy.set_weights(deploy_weights)
        # Data lets quantize_model fit SCSRN's skip-concat features into the image's fixed
        # [0, 255] range and start the activation ranges from real values (mai_sr.qat).
        model = quantize_model(deploy, calibration=[p.lr[None].astype(np.float32)
                                                    for p in train_pairs[:16]])
    result = _train_stage(run, "qat", model, strategy, train_pairs, val_pairs, stop, on_step)
    run.save_weights(model, QAT_WEIGHTS)
    run.log(f"qat: val PSNR {result['val_psnr']:.3f} dB (fake-quant Keras model)")
    return result


def _stage_settings(config: TrainConfig, stage: str) -> tuple[int, float, str]:
    """(steps, peak learning rate, loss) of a stage."""
    if stage == "fp32":
        return config.steps, config.lr, config.loss
    return config.qat_steps, config.qat_lr, config.qat_loss


def make_lr_schedule(config: TrainConfig, stage: str):
    """The stage's LR as a function of the optimizer's iteration count (so resume is exact).

    cosine: linear warm-up over ``warmup * steps`` steps to the peak, then cosine decay to 0.
    step: the peak halved every ``decay_every`` steps (default a quarter of the steps).
    """
    from mai_sr._tf import keras

    steps, peak, _ = _stage_settings(config, stage)
    schedules = keras.optimizers.schedules
    if config.schedule == "step":
        every = config.decay_every or max(1, steps // 4)
        return schedules.ExponentialDecay(peak, every, 0.5, staircase=True)
    warm = int(config.warmup * steps)
    if warm == 0:
        return schedules.CosineDecay(peak, steps)
    return schedules.CosineDecay(0.0, steps - warm, warmup_target=peak, warmup_steps=warm)


def per_example_loss(name: str):
    """Loss per batch element on images scaled to [0, 1]: (B,H,W,C) x2 -> (B,)."""
    from mai_sr._tf import tf

    def loss(sr, hr):
        diff = (sr - hr) / 255.0
        if name == "l1":
            err = tf.abs(diff)
        elif name == "l2":
            err = tf.square(diff)
        else:  # charbonnier: a smooth L1
            err = tf.sqrt(tf.square(diff) + CHARBONNIER_EPS ** 2)
        return tf.reduce_mean(err, axis=[1, 2, 3])

    if name not in LOSSES:
        raise MaiSrError(f"--loss: {name!r} is not one of {', '.join(LOSSES)}")
    return loss


def _weight_clip_hook(model, enabled: bool):
    """Z6 weight clipping (``mai_sr.qat.apply_weight_clip``: every trainable conv kernel to
    its per-output-channel mean +- k std) as a function to run after each step; None if off."""
    if not enabled:
        return None
    from mai_sr.qat import apply_weight_clip

    return lambda: apply_weight_clip(model)


def load_teacher(teacher: str):
    """The float deploy model named by ``--teacher``: a run's FP32 weights or a shipped model's."""
    if Path(teacher).is_dir():
        return load_run_model(teacher, stage="fp32")
    from mai_sr.pretrained import pretrained_path

    model = build_deploy(teacher, SCALE)
    model.load_weights(str(pretrained_path(teacher, "weights")))
    return model


def _make_train_step(model, optimizer, strategy, loss_name: str, global_batch: int, clip,
                     teacher=None, distill_weight: float = 0.0):
    from mai_sr._tf import tf

    loss_fn = per_example_loss(loss_name)

    def replica_step(lr, hr):
        with tf.GradientTape() as tape:
            sr = model(lr, training=True)
            per_example = loss_fn(sr, hr)
            if teacher is not None:
                # Output distillation: the teacher's SR is a smoother target than HR, which
                # a small student can follow more of (TCLResearchEurope distilled, seed 004 sec. 3).
                guide = tf.stop_gradient(teacher(lr, training=False))
                per_example = ((1 - distill_weight) * per_example
                               + distill_weight * loss_fn(sr, guide))
            # Averaged over the *global* batch, so summing replicas equals one device.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(lr, hr):
        per_replica = strategy.run(replica_step, args=(lr, hr))
        if clip is not None:
            clip()  # cross-replica context: one assignment updates every replica's copy
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def _val_psnr(model, val_pairs) -> float:
    """Mean PSNR (RGB, border crop = scale) of `model` on full validation images.

    Eager calls: one per image, and no tf.function retracing for every image size.
    """
    from mai_sr.metrics import psnr

    scores = []
    for pair in val_pairs:
        out = model(pair.lr[None].astype(np.float32), training=False).numpy()[0]
        sr = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        scores.append(psnr(sr, pair.hr, crop=SCALE))
    return float(np.mean(scores))


def _bicubic_psnr(val_pairs) -> float:
    from mai_sr.data import bicubic_upscale
    from mai_sr.metrics import psnr

    return float(np.mean([psnr(bicubic_upscale(p.lr, SCALE), p.hr, crop=SCALE)
                          for p in val_pairs]))


def _train_stage(run: _Run, stage: str, model, strategy, train_pairs, val_pairs, stop,
                 on_step) -> dict:
    """Train `model` for the stage's steps from its last checkpoint; leave the best weights."""
    from mai_sr._tf import keras
    from mai_sr.data import make_train_dataset

    config = run.config
    steps, _, loss_name = _stage_settings(config, stage)
    schedule = make_lr_schedule(config, stage)
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate=schedule, jit_compile=False)
        optimizer.build(model.trainable_variables)
    # The loop state saved with every checkpoint; "window" holds the losses since the last
    # metrics row so a resumed run logs the same averages as an uninterrupted one.
    state = {"stage": stage, "step": 0, "elapsed": 0.0, "best_psnr": None, "best_step": None,
             "val_psnr": None, "window": []}
    last_path, best_path = run.checkpoint(stage, "last"), run.checkpoint(stage, "best")
    best_weights = None
    if last_path.is_file():
        state = _load_checkpoint(last_path, model, optimizer)
        run.log(f"{stage}: resuming at step {state['step']}/{steps} from {last_path}")
        if best_path.is_file():
            best_weights, best_state = _read_checkpoint_weights(best_path)
            if best_state["step"] > state["step"]:  # written just before a kill: redone below
                best_weights = None
    run.truncate_metrics(stage, state["step"])
    clip = _weight_clip_hook(model, config.weight_clip)
    teacher = None
    if config.teacher is not None:
        with strategy.scope():
            teacher = load_teacher(config.teacher)
        teacher.trainable = False
    train_step = _make_train_step(model, optimizer, strategy, loss_name, config.batch, clip,
                                  teacher, config.distill_weight)
    dataset = make_train_dataset(train_pairs, patch=config.patch, batch=config.batch,
                                 scale=SCALE, seed=config.seed, start_step=state["step"],
                                 intensity_aug=config.intensity_aug)
    batches = iter(strategy.experimental_distribute_dataset(dataset))
    clock = time.perf_counter() - state["elapsed"]
    progress = _Progress(run, stage, steps, state)
    try:
        while state["step"] < steps and not stop.requested:
            lr_now = float(schedule(state["step"]))
            loss = float(train_step(*next(batches)))
            if not math.isfinite(loss):
                raise MaiSrError(f"{stage} step {state['step'] + 1}: loss is {loss}; "
                                 f"try a lower --{'lr' if stage == 'fp32' else 'qat-lr'}")
            state["step"] += 1
            step = state["step"]
            state["elapsed"] = time.perf_counter() - clock
            state["window"].append(loss)
            val = None
            if step % config.val_every == 0 or step == steps:
                val = state["val_psnr"] = _val_psnr(model, val_pairs)
                if state["best_psnr"] is None or val > state["best_psnr"]:
                    state["best_psnr"], state["best_step"] = val, step
                    best_weights = model.get_weights()
                    run.save_checkpoint(best_path, model, None, state)
            progress.update(lr_now, val, log=step % config.log_every == 0 or step == steps)
            if on_step is not None:
                on_step(stage, step)
            if step % config.ckpt_every == 0 or step == steps:
                run.save_checkpoint(last_path, model, optimizer, state)
                run.write_metrics()
    finally:
        progress.close()
    if stop.requested:
        run.save_checkpoint(last_path, model, optimizer, state)
        run.write_metrics()
        raise TrainingInterrupted(
            f"{stop.signal_name} at {stage} step {state['step']}/{steps}: checkpoint saved to "
            f"{last_path}; continue with: mai-sr train --out {run.dir} --resume")
    if best_weights is not None:
        model.set_weights(best_weights)
    return {"steps": steps, "best_step": state["best_step"], "val_psnr": state["best_psnr"]}


class _Progress:
    """A stage's tqdm bar (or, quiet, plain log lines) and its metrics.csv rows.

    A row is written every ``log_every`` steps and at each validation, with the mean loss
    since the previous row (``state["window"]``, checkpointed, so resumed runs log the same).
    """

    def __init__(self, run: _Run, stage: str, steps: int, state: dict):
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


def _read_checkpoint_weights(path: Path) -> tuple[list[np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as npz:
        weights = [npz[k] for k in sorted(k for k in npz.files if k.startswith("weight_"))]
        return weights, json.loads(str(npz["state"]))


class _StopOnSignal:
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
