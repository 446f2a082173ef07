"""`TrainConfig`: everything that defines a training run, and how it resolves.

Per-model defaults are data: each model module's ``RECIPE`` (found through
:mod:`mai_sr.registry`) over :data:`BASE_RECIPE`; explicit arguments override both.
``--from``/``--init`` runs lend their model and scale; ``--resume`` takes the stored
``config.json`` after checking that what was asked matches it.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mai_sr.challenge import CHALLENGE_SCALE
from mai_sr.errors import MaiSrError
from mai_sr.weights import SUFFIX, is_weights_file, weights_file_model, weights_record
from mai_sr.registry import MODELS, check_model_name, check_scale, model_module
from mai_sr.runs import FP32_DEPLOY_WEIGHTS, FP32_TRAIN_WEIGHTS, read_run_config, run_scale

LOSSES = ("l1", "l2", "charbonnier")
SEED_MAX = 2**32 - 1  # the largest value NumPy and keras.utils.set_random_seed accept
SCHEDULES = ("cosine", "step")
DISTRIBUTE = ("none", "mirrored", "multiworker")

# Training defaults every model starts from; a model module's RECIPE overrides some of them
# (data, not branches), explicit arguments override both.
BASE_RECIPE = {"loss": "l1", "warmup": 0.05, "intensity_aug": False, "weight_clip": True}

# What `mai-sr train --qat --from RUN` takes from RUN's config.json unless given.
FROM_RUN_INHERITS = ("data", "val", "val_fraction", "patch", "batch", "seed", "intensity_aug",
                     "loss", "schedule")

# Settings that may change when a run is resumed; every other field must match config.json.
# Not val_every: the stage ends with its best-validating weights, so validating at other
# steps picks other weights (max abs diff 0.156 measured on ABPN).
RESUME_FREE = frozenset({"out", "distribute", "ckpt_every", "log_every"})

# create_model options of the FP32 training graph, recorded in config.json ("train_graph") so
# a resumed run rebuilds the graph its checkpoints were made with. Runs without the record
# predate the [0, 1]-domain training graphs: they trained on raw pixels.
TRAIN_GRAPH = {"normalize": True}
LEGACY_TRAIN_GRAPH = {"normalize": False}
# A family's own training-graph options (by model module): what new runs record beside
# TRAIN_GRAPH, and what a record without them means (the run predates the option).
FAMILY_TRAIN_GRAPH = {
    # ETDS: the paper's two streams in one chain; runs before it trained the plain chain.
    "mai_sr.models.etds": ({"dual_stream": True}, {"dual_stream": False}),
}


def _family_train_graph(model: str) -> tuple[dict, dict]:
    """(new, legacy) of `model`'s family in :data:`FAMILY_TRAIN_GRAPH` ({} and {}: none)."""
    from mai_sr.registry import MODELS

    return FAMILY_TRAIN_GRAPH.get(MODELS.get(model), ({}, {}))


def new_train_graph(model: str) -> dict:
    """create_model options of a new run's FP32 training graph (recorded in config.json)."""
    return {**TRAIN_GRAPH, **_family_train_graph(model)[0]}


def stored_train_graph(model: str, record: dict | None) -> dict:
    """create_model options a run's config.json ``train_graph`` `record` (None: absent)
    means for `model`, so a resumed run rebuilds the graph its checkpoints were made with."""
    legacy = _family_train_graph(model)[1]
    return {**legacy, **(LEGACY_TRAIN_GRAPH if record is None else record)}


@dataclass
class TrainConfig:
    """Everything that defines a training run; ``None`` fields resolve in ``__post_init__``.

    The defaults are sized so ``mai-sr train --model abpn --qat`` (builtin photos) finishes in
    a few minutes on 2 CPU cores; pass larger ``steps``/``patch`` for real training.
    """

    model: str | None = None         # None: from --from's run, else "abpn"
    scale: int | None = None         # 2 | 3 | 4; None: from --from/--init's run, else 3
    data: str = "builtin"            # "builtin" | DIR | "DIR,DIR"
    val: str | None = None           # None: hold out val_fraction of the training images
    val_fraction: float = 0.1
    steps: int = 1200                # FP32 optimizer steps
    patch: int = 48                  # LR patch side (HR = scale x patch)
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
    from_run: str | None = None      # finished FP32 run or deploy .weights.h5: only QAT
    init_run: str | None = None      # finished FP32 run (or deploy .weights.h5) to start from
    teacher: str | None = None       # distillation: FP32 run dir, .weights.h5 or pretrained name
    distill_weight: float = 0.5      # share of the loss measured against the teacher's output
    teacher_crops: float = 0.0       # share of each batch from inputs only the teacher labels
    teacher_crop_data: str | None = None  # extra images for them (besides the training ones)
    weight_clip: bool | None = None  # Z6's mean +- k std clipping of first-layer kernels (per model)
    hold_anchor_taps: bool = False   # SCSRN: output conv's image taps held at the exact anchor
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
            if is_weights_file(self.from_run):
                self.from_run, self.model, self.scale = weights_file_model(
                    self.from_run, self.model, self.scale)
                # Z6's first-layer clip would cut the imported kernels' outliers at step one.
                if self.explicit is not None and "weight_clip" not in self.explicit:
                    self.weight_clip = False
            else:
                self.from_run = self._take_model_from("--from", self.from_run)
        if self.init_run is not None:
            self._resolve_init_run()
        self.model = self.model or "abpn"
        self.scale = CHALLENGE_SCALE if self.scale is None else self.scale
        for option, check, value in (("--model", check_model_name, self.model),
                                     ("--scale", check_scale, self.scale)):
            try:
                check(value)
            except MaiSrError as exc:
                raise MaiSrError(f"{option}: {exc}") from None
        if self.teacher is not None:
            self._resolve_teacher()
        for name, value in model_recipe(self.model).items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        self.qat_loss = self.qat_loss or self.loss
        self._validate()

    def _resolve_init_run(self) -> None:
        """Fine-tuning (``--init RUN``): RUN's model and finished FP32 weights, checked now."""
        if self.from_run is not None:
            raise MaiSrError("--init: not with --from (--from skips the FP32 stage --init starts)")
        if is_weights_file(self.init_run):
            self.init_run, self.model, self.scale = weights_file_model(
                self.init_run, self.model, self.scale, option="--init")
            # As with --from: Z6's first-layer clip would cut the imported kernels' outliers at
            # step one (SCSRN started from ABPN's DIV2K weights: 28.57 -> 27.68 dB on the
            # held-out images within 100 steps with it, unchanged without).
            if self.weight_clip is None:  # not asked for (CLI, recipe or library)
                self.weight_clip = False
            return
        require_finished_fp32("--init", self.init_run, FP32_TRAIN_WEIGHTS)
        self.init_run = self._take_model_from("--init", self.init_run)

    def _take_model_from(self, option: str, run: str) -> str:
        """Adopt the model and scale a source run (--from, --init) trained; return the run's
        absolute path, recorded resolved so `runs/latest` keeps naming the same run."""
        run = str(Path(run).resolve())
        source = read_run_config(run)
        source_model, source_scale = source.get("model"), run_scale(source)
        if self.model is not None and self.model != source_model:
            raise MaiSrError(f"--model {self.model}: {option} {run} trained {source_model}")
        if self.scale is not None and self.scale != source_scale:
            raise MaiSrError(f"--scale {self.scale}: {option} {run} trained x{source_scale}")
        self.model, self.scale = source_model, source_scale
        return run

    def _resolve_teacher(self) -> None:
        """``--teacher``: a finished FP32 run, a deploy-weights file of any architecture
        (path made absolute), or a shipped model's name."""
        from mai_sr.challenge import PRETRAINED_SCALE
        from mai_sr.pretrained import pretrained_names, pretrained_path

        if is_weights_file(self.teacher):
            # Deploy weights of any architecture (the import record names it; without a
            # record, this run's): its own float model as the teacher of QAT, or a larger
            # network a smaller one learns from (SCSRN from ETDS-L).
            self.teacher, _, teacher_scale = weights_file_model(
                self.teacher, teacher_architecture(self.teacher) or self.model, self.scale,
                option="--teacher")
            teacher_scale = teacher_scale or self.scale
        elif Path(self.teacher).is_dir():
            self.teacher = str(Path(self.teacher).resolve())
            require_finished_fp32("--teacher", self.teacher, FP32_DEPLOY_WEIGHTS)
            teacher_scale = run_scale(read_run_config(self.teacher))
        elif self.teacher in pretrained_names():
            pretrained_path(self.teacher, "weights")
            teacher_scale = PRETRAINED_SCALE
        else:
            raise MaiSrError(f"--teacher {self.teacher}: neither a run directory, a "
                             f"{SUFFIX} file nor a pretrained model "
                             f"({', '.join(pretrained_names())})")
        if teacher_scale != self.scale:
            raise MaiSrError(f"--teacher {self.teacher}: upscales x{teacher_scale}, this run "
                             f"trains x{self.scale}")
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
        if not (isinstance(self.seed, int) and 0 <= self.seed <= SEED_MAX):
            # NumPy and TF take 32-bit values; checked before the run exists.
            raise MaiSrError(f"--seed: must be a whole number in [0, {SEED_MAX}], got "
                             f"{self.seed!r}")
        if not 0 <= self.warmup < 1:
            raise MaiSrError(f"warmup: must be a fraction in [0, 1), got {self.warmup!r}")
        if not 0 < self.val_fraction < 1:
            raise MaiSrError(f"val_fraction: must be in (0, 1), got {self.val_fraction!r}")
        if not (isinstance(self.teacher_crops, (int, float)) and 0 <= self.teacher_crops < 1):
            raise MaiSrError(f"--teacher-crops: must be a share in [0, 1), got "
                             f"{self.teacher_crops!r}")
        if self.teacher_crops and self.teacher is None:
            raise MaiSrError("--teacher-crops: needs --teacher (only a teacher labels them)")
        if self.teacher_crop_data is not None and not self.teacher_crops:
            raise MaiSrError("--teacher-crop-data: needs --teacher-crops (the share of each "
                             "batch they fill)")
        if self.hold_anchor_taps and MODELS[self.model] != "mai_sr.models.scsrn":
            raise MaiSrError(f"--hold-anchor-taps: only SCSRN's output conv reads the image "
                             f"(model {self.model})")
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
        if given.get("from_run") is not None and not is_weights_file(given["from_run"]):
            # `--qat --from RUN` fine-tunes on the data the FP32 run used, unless told otherwise.
            source = read_run_config(given["from_run"])
            inherited = {k: source[k] for k in FROM_RUN_INHERITS if k in source and k not in given}
        return cls(**inherited, **given, explicit=frozenset(given))

    def to_dict(self) -> dict:
        """The resolved fields (what config.json stores), without ``explicit``."""
        d = asdict(self)
        d.pop("explicit")
        return d


def teacher_architecture(path) -> str | None:
    """The architecture the import record beside a deploy-weights file names, or None."""
    return weights_record(path).get("model")


def model_recipe(name: str) -> dict:
    """The training defaults of model `name`: its module's ``RECIPE`` over :data:`BASE_RECIPE`
    (imports the model's module, so TensorFlow)."""
    return {**BASE_RECIPE, **model_module(name).RECIPE}


def require_finished_fp32(option: str, run: str | os.PathLike, weights: str) -> None:
    """Raise the one-line error for `option` when `run` lacks the FP32 `weights` file it needs."""
    if not (Path(run) / weights).is_file():
        raise MaiSrError(f"{option} {run}: no {weights} (not a finished FP32 run)")


def merge_for_resume(config: TrainConfig, stored: dict, config_path: Path) -> TrainConfig:
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



