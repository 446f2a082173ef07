"""Training: FP32, then quantization-aware, in one resumable run directory.

``mai-sr train --model abpn --qat`` runs two stages (the MAI 2022 recipe: Ignatov et al.,
"Efficient and Accurate Quantized Image Super-Resolution on Mobile NPUs, Mobile AI & AIM 2022
Challenge: Report", ECCV 2022 Workshops, sec. 3.1):

1. **FP32** on the training graph (``create_model(name, scale, deploy=False)``,
   re-parameterizable blocks expanded): Adam, cosine (optionally with linear warm-up) or step
   LR schedule, L1 loss by default, in a custom ``tf.function`` train step under a
   ``tf.distribute`` strategy. The best-validating weights are collapsed to the deploy graph
   (``mai_sr.models.collapse``).
2. **QAT** (with ``--qat``): ``mai_sr.models.qat.quantize_model`` on the deploy graph,
   fine-tuned with a low learning rate; validation runs the fake-quant Keras model.
   ``--qat --from RUN`` does only this stage, starting from the FP32 weights of a finished
   run, in a *new* run directory (the source run is never modified, so several QAT variants
   can start from one FP32 run).
   ``--init RUN`` instead starts the FP32 stage from RUN's FP32 weights: a second,
   fine-tuning stage with its own loss, LR, patch size or teacher (XCAT's recipe, 4.17).

``--scale 2|3|4`` (default 3, the challenge's) is recorded in ``config.json``; ``--from``,
``--init`` and ``--resume`` take it from the run, and every reader (export, ``load_run_model``)
reads it from there. ``--teacher RUN|NAME`` distils: the loss mixes the HR target with the
output of a float teacher of the same scale (a finished run's FP32 model or a shipped x3 one).

Weight clipping (Z6's recipe, sec. 4.1 of the report; on by default in both stages,
``--no-weight-clip`` to compare) is ``mai_sr.models.qat.apply_weight_clip`` after every optimizer
step: the first-layer kernels to their per-output-channel mean +- k std. It is not the
``max_abs_weight=MAX`` option of ``create_model`` (a hard kernel bound on every conv).

The package:

- :mod:`~mai_sr.train.config`: :class:`TrainConfig`, per-model defaults (each model module's
  ``RECIPE``, found through :mod:`mai_sr.registry`), ``--resume`` merging;
- :mod:`~mai_sr.train.rundir`: the run writer (the layout readers see, and the run's Keras
  models, are :mod:`mai_sr.runs`'s);
- :mod:`~mai_sr.train.checkpoint`: resumable ``.npz`` checkpoints (exact resume);
- :mod:`~mai_sr.train.session`: the run lock, Ctrl-C/SIGTERM, progress, ``tf.distribute``;
- :mod:`~mai_sr.train.dataset`: the ``tf.data`` pipeline of random patch batches;
- :mod:`~mai_sr.train.loop`: :func:`train_from_config`, the stages and the train step.

Importing it does not import TensorFlow; building a :class:`TrainConfig` does (the model's
module holds its recipe).
"""

from mai_sr.runs import (CONFIG_FILE, FP32_DEPLOY_WEIGHTS, FP32_TRAIN_WEIGHTS, LOCK_FILE,
                         METRICS_COLUMNS, METRICS_FILE, QAT_WEIGHTS, STAGES, SUMMARY_FILE,
                         build_deploy, load_run_model, read_run_config, read_summary, run_scale)
from mai_sr.train.config import (BASE_RECIPE, DISTRIBUTE, LOSSES, SCHEDULES, TrainConfig,
                                 model_recipe)
from mai_sr.train.loop import load_teacher, make_lr_schedule, per_example_loss, train_from_config
from mai_sr.train.session import TrainingInterrupted, hold_run_lock, make_strategy

__all__ = [
    "TrainConfig", "train_from_config", "TrainingInterrupted", "model_recipe", "BASE_RECIPE",
    "LOSSES", "SCHEDULES", "DISTRIBUTE", "make_lr_schedule", "per_example_loss",
    "make_strategy", "hold_run_lock", "load_teacher",
    # the run directory and its models as readers see them (mai_sr.runs), kept importable
    # from here
    "CONFIG_FILE", "FP32_DEPLOY_WEIGHTS", "FP32_TRAIN_WEIGHTS", "LOCK_FILE", "METRICS_COLUMNS",
    "METRICS_FILE", "QAT_WEIGHTS", "STAGES", "SUMMARY_FILE", "build_deploy", "load_run_model",
    "read_run_config", "read_summary", "run_scale",
]
