"""The training loop: the FP32 and QAT stages, their optimizer steps, validation and losses.

:func:`train_from_config` is the entry point; the run directory is written through
:class:`~mai_sr.train.rundir.RunWriter`, checkpoints by :mod:`mai_sr.train.checkpoint`, and the
process's lock, signals, progress and strategy come from :mod:`mai_sr.train.session`.
TensorFlow is imported inside the functions.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from mai_sr.errors import MaiSrError
from mai_sr.weights import is_weights_file
from mai_sr.runs import (FP32_DEPLOY_WEIGHTS, FP32_TRAIN_WEIGHTS, QAT_WEIGHTS, build_deploy,
                         init_training_graph, load_deploy_weights, load_run_model, read_run_config,
                         read_summary)
from mai_sr.train.checkpoint import CheckpointDamaged, read_checkpoint_weights, resume_stage
from mai_sr.train.config import LOSSES, TrainConfig, new_train_graph, stored_train_graph
from mai_sr.train.plan import TrainPlan, is_finished, make_plan
from mai_sr.train.rundir import RunWriter, resolve_run
from mai_sr.train.session import (Progress, StopOnSignal, TrainingInterrupted, hold_run_lock,
                                  is_chief, make_strategy, worker_lost_error)

CHARBONNIER_EPS = 1e-3  # on images scaled to [0, 1]
# Training images whose LR sides calibrate the QAT stage's start (quantize_model): enough
# to find each tensor's range, few enough to keep the stage's start quick.
QAT_CALIBRATION_IMAGES = 16


def train_from_config(config: TrainConfig, resume: bool = False, quiet: bool = False, *,
                      on_step: Callable[[str, int], None] | None = None,
                      tensorboard: bool = True,
                      on_plan: Callable[[TrainPlan], None] | None = None,
                      graph_options: dict | None = None) -> Path:
    """Run (or, with `resume`, continue) the training described by `config`; return the run dir.

    `on_plan(plan)` is called once the data is loaded, before anything is trained, with
    the :class:`~mai_sr.train.plan.TrainPlan`; a `resume` of a finished run trains nothing
    and calls it with ``plan.finished`` True.
    `on_step(stage, step)` is called after every optimizer step (progress hooks, tests).
    Ctrl-C or SIGTERM finishes the current step, writes a checkpoint and raises
    :class:`TrainingInterrupted` (exit code 130) saying how to resume.
    `tensorboard` writes ``RUN/tensorboard/`` (:mod:`mai_sr.train.tensorboard`).
    `graph_options`: create_model options of a new run's training graph over its default
    (:func:`~mai_sr.train.config.new_train_graph`), e.g. ``{"dual_stream": False}`` for ETDS;
    recorded, so a resume rebuilds them.
    """
    started = time.perf_counter()
    chief = is_chief(config.distribute)
    run_dir, config = resolve_run(config, resume, chief)
    if resume and chief and _finished_run(run_dir, config, quiet, on_plan):
        return run_dir
    train_pairs, val_pairs, data_notes = _load_data(config)
    if on_plan is not None and chief:
        on_plan(make_plan(run_dir, config, len(train_pairs), [p.name for p in val_pairs],
                          resume))

    from mai_sr._tf import tf  # noqa: F401  (strategy creation must precede other TF ops)

    strategy = make_strategy(config.distribute)
    if config.batch % strategy.num_replicas_in_sync:
        raise MaiSrError(f"--batch {config.batch}: not divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas of --distribute "
                         f"{config.distribute}")
    train_graph = (stored_train_graph(config.model, read_run_config(run_dir).get("train_graph"))
                   if resume else {**new_train_graph(config.model), **(graph_options or {})})
    bicubic = _bicubic_psnr(val_pairs, config.scale)  # before the run exists: checks --val
    run = RunWriter(run_dir, config, chief, quiet, train_graph, tensorboard=tensorboard)
    for note in data_notes:
        run.log(note)
    if not resume:
        run.create(train_pairs, val_pairs)
    lock = hold_run_lock(run_dir) if chief else None
    try:
        return _train_locked(run, config, strategy, train_pairs, val_pairs, bicubic, lock,
                             on_step, started)
    finally:
        # Released as soon as the last write is done (also on Ctrl-C): a --resume started
        # while this process is still exiting does not find the run locked.
        if run._tensorboard is not None:
            run._tensorboard.close()
        if lock is not None:
            lock.close()


def _finished_run(run_dir: Path, config: TrainConfig, quiet: bool, on_plan) -> bool:
    """Whether a resumed run has nothing left to do (every stage's weights and summary
    entry, an intact metrics.csv); then, holding its lock (a run being trained is refused
    as usual), clear what killed writers left and hand `on_plan` the finished plan."""
    if not is_finished(run_dir, config):
        return False
    stored = read_run_config(run_dir)
    run = RunWriter(run_dir, config, True, quiet,
                    stored_train_graph(config.model, stored.get("train_graph")))
    if run.damaged:  # metrics.csv to restore: the full path repairs it
        return False
    lock = hold_run_lock(run_dir)
    try:
        run.remove_stale_temps()
    finally:
        lock.close()
    if on_plan is not None:
        images = stored.get("data_images") or {}
        on_plan(make_plan(run_dir, config, len(images.get("train", [])),
                          images.get("val", []), resumed=True, finished=True))
    return True


def _train_locked(run: RunWriter, config: TrainConfig, strategy, train_pairs, val_pairs,
                  bicubic: float, lock, on_step, started: float) -> Path:
    """The stages of :func:`train_from_config`, with the run lock held."""
    run_dir = run.dir
    if run.chief:
        run.remove_stale_temps()  # what killed writers left; the lock says none is alive here
    with StopOnSignal(lock) as stop:
        summary = run.read_summary()
        if run.chief:
            run.restore_metrics()  # rows a damaged metrics.csv lost, from the checkpoints
        for line in run.damaged:
            run.log(line)
        summary["bicubic_val_psnr"] = bicubic
        _rebuild_summary(run, summary, val_pairs)
        deploy_weights = None  # handed over in memory: other workers may not see the file yet
        if config.from_run is not None and is_weights_file(config.from_run):
            deploy_weights = _imported_weights(config)
            run.copy_fp32_from(Path(config.from_run))
        elif config.from_run is not None:
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
    return run_dir


def _rebuild_summary(run: RunWriter, summary: dict, val_pairs) -> None:
    """Entries of finished stages that summary.json lacks (a kill between a stage's weights
    and its summary write, or a damaged summary.json), from the stage's checkpoint state."""
    config, rebuilt = run.config, False
    if not run.chief:
        return
    finished = {"fp32": config.from_run is None and run.path(FP32_DEPLOY_WEIGHTS).is_file(),
                "qat": config.qat and run.path(QAT_WEIGHTS).is_file()}
    for stage, done in finished.items():
        if not done or stage in summary:
            continue
        steps, _, _ = _stage_settings(config, stage)
        state = None
        for kind in ("last", "best"):
            try:
                _, state = read_checkpoint_weights(run.checkpoint(stage, kind))
                break
            except (CheckpointDamaged, FileNotFoundError):
                continue
        if state is not None and state["best_psnr"] is not None:
            result = {"steps": steps, "best_step": state["best_step"],
                      "val_psnr": state["best_psnr"]}
        else:  # no readable state: measure the saved weights (the best ones, by design)
            result = {"steps": steps, "best_step": None,
                      "val_psnr": _val_psnr(_saved_model(run, stage), val_pairs, config.scale)}
        if stage == "fp32":
            result["val_psnr_deploy"] = _val_psnr(load_run_model(run.dir, "fp32"), val_pairs,
                                                  config.scale)
        summary[stage], rebuilt = result, True
        run.log(f"{stage}: summary entry rebuilt from the finished stage")
    if rebuilt:
        run.write_summary(summary)


def _saved_model(run: RunWriter, stage: str):
    """The stage's saved model: the FP32 training graph, or the QAT model."""
    if stage == "qat":
        return load_run_model(run.dir, "qat")
    from mai_sr.models import create_model

    model = create_model(run.config.model, scale=run.config.scale, deploy=False,
                         **run.train_graph)
    model.load_weights(str(run.path(FP32_TRAIN_WEIGHTS)))
    return model


VAL_MIN_LR = 3  # LR side: the PSNR crops `scale` HR pixels per border, 2 x scale < 3 x scale


def _load_data(config: TrainConfig):
    """(train pairs, validation pairs, notes): --val, or every ~1/val_fraction-th training
    image; notes say which images were skipped (one line per folder)."""
    from mai_sr import data

    notes = []  # one line per folder with skipped images, said once the run writer exists

    def load(option: str, source: str, **kwargs):
        # Skipped images come as one warning per folder; said as one plain line (no
        # Python warning header), naming the option.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pairs = data.load_pairs(source, scale=config.scale, **kwargs)
            except MaiSrError as exc:
                raise MaiSrError(f"--{option} {source}: {exc}") from None
        notes.extend(f"--{option} {source}: {w.message}" for w in caught)
        return pairs

    pairs = load("data", config.data, min_lr_size=config.patch)
    if config.val is not None:
        return pairs, load("val", config.val, min_lr_size=VAL_MIN_LR), notes
    if len(pairs) < 2:
        raise MaiSrError(f"--data {config.data}: only {len(pairs)} usable image(s); need 2 to "
                         "hold one out for validation, or pass --val DIR")
    n_val = max(1, round(len(pairs) * config.val_fraction))
    # Evenly spaced, so a "DIR,DIR" source contributes from every folder.
    held = {int((i + 0.5) * len(pairs) / n_val) for i in range(n_val)}
    return ([p for i, p in enumerate(pairs) if i not in held],
            [p for i, p in enumerate(pairs) if i in held], notes)


# ---------------------------------------------------------------- stages


def _imported_weights(config: TrainConfig) -> list:
    """``--from FILE``: the deploy weights QAT starts from (checked against the model)."""
    return load_deploy_weights(config.from_run, config.model, config.scale).get_weights()


def _fp32_stage(run: RunWriter, strategy, train_pairs, val_pairs, stop, on_step):
    """Train the training graph, collapse it; return (summary dict, deploy weights)."""
    from mai_sr._tf import keras
    from mai_sr.models import collapse, create_model

    config = run.config
    keras.utils.set_random_seed(config.seed)  # reproducible initial weights
    with strategy.scope():
        model = create_model(config.model, scale=config.scale, deploy=False, **run.train_graph)
    if config.init_run is not None and is_weights_file(config.init_run):
        init_training_graph(model, config.model, config.scale, config.init_run)
    elif config.init_run is not None:
        init_graph = stored_train_graph(config.model,
                                        read_run_config(config.init_run).get("train_graph"))
        if init_graph != run.train_graph:
            raise MaiSrError(f"--init {config.init_run}: trained graph {init_graph}, this run "
                             f"builds {run.train_graph}")
        # A checkpoint, when resuming, overrides these in _train_stage.
        model.load_weights(str(Path(config.init_run) / FP32_TRAIN_WEIGHTS))
    result = _train_stage(run, "fp32", model, strategy, train_pairs, val_pairs, stop, on_step)
    run.save_weights(model, FP32_TRAIN_WEIGHTS)
    deploy = collapse(model)
    # Collapse is exact up to float rounding; the deploy-graph PSNR shows it on real images.
    result["val_psnr_deploy"] = _val_psnr(deploy, val_pairs, config.scale)
    run.save_weights(deploy, FP32_DEPLOY_WEIGHTS)
    run.log(f"fp32: val PSNR {result['val_psnr']:.3f} dB (training graph), "
            f"{result['val_psnr_deploy']:.3f} dB (deploy graph)")
    return result, deploy.get_weights()


def _qat_stage(run: RunWriter, strategy, train_pairs, val_pairs, stop, on_step,
               deploy_weights=None) -> dict:
    """Quantize the FP32 deploy model (given weights, else fp32/) and fine-tune it."""
    from mai_sr.models.qat import quantize_model

    with strategy.scope():
        deploy = build_deploy(run.config.model, run.config.scale)
        if deploy_weights is None:
            deploy.load_weights(str(run.path(FP32_DEPLOY_WEIGHTS)))
        else:
            deploy.set_weights(deploy_weights)
        # Data lets quantize_model fit SCSRN's skip-concat features into the image's fixed
        # [0, 255] range and start the activation ranges from real values (mai_sr.models.qat).
        model = quantize_model(deploy, calibration=[
            p.lr[None].astype(np.float32) for p in train_pairs[:QAT_CALIBRATION_IMAGES]])
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


def _after_step_hook(model, config, stage: str):
    """What runs after each optimizer step of `stage`, as one function (None if nothing):
    Z6's weight clipping (``mai_sr.models.qat.apply_weight_clip``: the first-layer conv
    kernels, the ones reading the RGB image, to their per-output-channel mean +- k std) and
    SCSRN's anchor taps (``mai_sr.models.scsrn.anchor_tap_hold``, run once now too; in QAT
    its feature bound keeps the calibrated start). Called on the stage's start model, before
    a checkpoint is resumed, so a resumed run holds to the same bound."""
    hooks = []
    if config.weight_clip:
        from mai_sr.models.qat import apply_weight_clip

        hooks.append(lambda: apply_weight_clip(model))
    if config.hold_anchor_taps:
        from mai_sr.models.scsrn import anchor_tap_hold

        hold = anchor_tap_hold(model, keep_start=stage == "qat")
        hold()
        hooks.append(hold)
    if not hooks:
        return None
    return lambda: [hook() for hook in hooks]


def load_teacher(teacher: str, model_name: str | None = None, scale: int | None = None):
    """The float deploy model named by ``--teacher``: a run's FP32 weights, a deploy-weights
    file (of the architecture its import record names, else `model_name`) at `scale`, or a
    shipped model's (TrainConfig checked the scale)."""
    if is_weights_file(teacher):
        from mai_sr.train.config import teacher_architecture

        # the teacher's own architecture (its import record's), which may be another one
        return load_deploy_weights(teacher, teacher_architecture(teacher) or model_name, scale,
                                   option="--teacher")
    if Path(teacher).is_dir():
        return load_run_model(teacher, stage="fp32")
    from mai_sr.challenge import PRETRAINED_SCALE
    from mai_sr.pretrained import architecture, pretrained_path

    model = build_deploy(architecture(teacher), PRETRAINED_SCALE)
    model.load_weights(str(pretrained_path(teacher, "weights")))
    return model


def distillation_loss(loss_fn, sr, hr, guide=None, distill_weight: float = 0.0, has_hr=None):
    """Per-example loss: against `hr`, or with a teacher's output `guide` a `distill_weight`
    share against it. Samples whose `has_hr` is 0 (teacher crops: inputs without an HR) are
    scored against the guide alone."""
    per_example = loss_fn(sr, hr)
    if guide is None:
        return per_example
    to_guide = loss_fn(sr, guide)
    mixed = (1 - distill_weight) * per_example + distill_weight * to_guide
    if has_hr is None:
        return mixed
    return has_hr * mixed + (1 - has_hr) * to_guide


def _make_train_step(model, optimizer, strategy, loss_name: str, global_batch: int, clip,
                     teacher=None, distill_weight: float = 0.0):
    from mai_sr._tf import tf

    loss_fn = per_example_loss(loss_name)

    def replica_step(lr, hr, has_hr=None):
        with tf.GradientTape() as tape:
            sr = model(lr, training=True)
            guide = None
            if teacher is not None:
                # Output distillation: the teacher's SR is a smoother target than HR, which
                # a small student can follow more of (TCLResearchEurope distilled,
                # Ignatov et al., ECCV 2022 Workshops challenge report, sec. 3).
                guide = tf.stop_gradient(teacher(lr, training=False))
            per_example = distillation_loss(loss_fn, sr, hr, guide, distill_weight, has_hr)
            # Averaged over the *global* batch, so summing replicas equals one device.
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(*batch):
        per_replica = strategy.run(replica_step, args=batch)
        if clip is not None:
            clip()  # cross-replica context: one assignment updates every replica's copy
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return train_step


def _val_psnr(model, val_pairs, scale: int) -> float:
    """Mean PSNR (RGB, border crop = scale) of `model` on full validation images.

    Eager calls: one per image, and no tf.function retracing for every image size.
    """
    from mai_sr.scoring import Scoring, mean_psnr, score_pairs

    return mean_psnr(score_pairs(model, val_pairs, Scoring(scale, ssim=False, baseline=None)))


def _bicubic_psnr(val_pairs, scale: int) -> float:
    """Mean PSNR of bicubic upscaling on the validation images (the run's floor)."""
    from mai_sr.scoring import Scoring, baseline_image, mean_psnr, score_pairs

    bicubic = lambda lr: baseline_image(lr, scale, "bicubic")  # noqa: E731
    return mean_psnr(score_pairs(bicubic, val_pairs, Scoring(scale, ssim=False, baseline=None)))


def _teacher_crop_inputs(run: RunWriter, train_pairs) -> list:
    """The LR inputs of ``--teacher-crops`` (:mod:`mai_sr.train.teacher_crops`): rotated and
    shrunk copies of the training images (never the validation ones) and of
    ``--teacher-crop-data``'s images."""
    from mai_sr import data
    from mai_sr.train.teacher_crops import VARIANTS, teacher_crop_pool

    config = run.config
    sources = [p.hr for p in train_pairs]
    if config.teacher_crop_data:
        try:
            sources += [p.hr for p in data.load_pairs(config.teacher_crop_data, config.scale)]
        except MaiSrError as exc:
            raise MaiSrError(f"--teacher-crop-data {config.teacher_crop_data}: {exc}") from None
    pool = teacher_crop_pool(sources, scale=config.scale, patch=config.patch, seed=config.seed)
    run.log(f"teacher crops: {len(pool)} inputs ({VARIANTS} rotated and shrunk copies of "
            f"{len(sources)} images, those with an LR side >= {config.patch}), "
            f"{round(config.batch * config.teacher_crops)} of every batch of {config.batch}")
    return pool


def _train_stage(run: RunWriter, stage: str, model, strategy, train_pairs, val_pairs, stop,
                 on_step) -> dict:
    """Train `model` for the stage's steps from its last checkpoint; leave the best weights."""
    from mai_sr._tf import keras
    from mai_sr.train.dataset import make_train_dataset

    config = run.config
    steps, _, loss_name = _stage_settings(config, stage)
    schedule = make_lr_schedule(config, stage)
    with strategy.scope():
        optimizer = keras.optimizers.Adam(learning_rate=schedule, jit_compile=False)
        optimizer.build(model.trainable_variables)
    clip = _after_step_hook(model, config, stage)
    state, best_weights = resume_stage(run, stage, model, optimizer, steps)
    last_path, best_path = run.checkpoint(stage, "last"), run.checkpoint(stage, "best")
    teacher = None
    if config.teacher is not None:
        with strategy.scope():
            teacher = load_teacher(config.teacher, config.model, config.scale)
        teacher.trainable = False
    train_step = _make_train_step(model, optimizer, strategy, loss_name, config.batch, clip,
                                  teacher, config.distill_weight)
    teacher_lr = _teacher_crop_inputs(run, train_pairs) if config.teacher_crops else ()
    dataset = make_train_dataset(train_pairs, patch=config.patch, batch=config.batch,
                                 scale=config.scale, seed=config.seed, start_step=state["step"],
                                 intensity_aug=config.intensity_aug, teacher_lr=teacher_lr,
                                 teacher_share=config.teacher_crops)
    batches = iter(strategy.experimental_distribute_dataset(dataset))
    if stage == "qat" and state["step"] == 0 and state["best_psnr"] is None:
        # QAT starts from the calibrated model (PTQ), which is a candidate too: QAT that only
        # loses on the validation split leaves the calibrated weights (measured: ETDS-L x3
        # from DIV2K weights, 28.58 dB at step 200, 28.52 at 400, LR 1e-4).
        state["val_psnr"] = state["best_psnr"] = _val_psnr(model, val_pairs, config.scale)
        state["best_step"], best_weights = 0, model.get_weights()
        run.save_checkpoint(best_path, model, optimizer, state)
        run.log(f"qat: val PSNR {state['best_psnr']:.3f} dB at step 0 (the calibrated model)")
    clock = time.perf_counter() - state["elapsed"]
    progress = Progress(run, stage, steps, state)
    try:
        while state["step"] < steps and not stop.requested:
            lr_now = float(schedule(state["step"]))
            try:
                loss = float(train_step(*next(batches)))
            except Exception as exc:  # noqa: BLE001 - TF's error types, translated below
                lost = (worker_lost_error(exc, run.dir) if config.distribute == "multiworker"
                        else None)
                if lost is None:
                    raise
                raise lost from None
            if not math.isfinite(loss):
                raise MaiSrError(f"{stage} step {state['step'] + 1}: loss is {loss}; "
                                 f"try a lower --{'lr' if stage == 'fp32' else 'qat-lr'}")
            state["step"] += 1
            step = state["step"]
            state["elapsed"] = time.perf_counter() - clock
            state["window"].append(loss)
            val, new_best = None, False
            if step % config.val_every == 0 or step == steps:
                val = state["val_psnr"] = _val_psnr(model, val_pairs, config.scale)
                if state["best_psnr"] is None or val > state["best_psnr"]:
                    state["best_psnr"], state["best_step"] = val, step
                    best_weights, new_best = model.get_weights(), True
            progress.update(lr_now, val, log=step % config.log_every == 0 or step == steps)
            if new_best:
                # With the optimizer and after the row is logged: a complete resume point
                # when the last checkpoint is damaged.
                run.save_checkpoint(best_path, model, optimizer, state)
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
    run.tensorboard.images(stage, steps, model, val_pairs, config.scale)
    run.tensorboard.flush()
    return {"steps": steps, "best_step": state["best_step"], "val_psnr": state["best_psnr"]}
