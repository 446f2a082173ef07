"""The only place TensorFlow is imported.

tfmot's quantization-aware training needs Keras 2 (`tf_keras`), so the legacy switch must be
set before TensorFlow is first imported. Modules that need TF do `from mai_sr._tf import tf, keras`.
Model-running commands (eval, bench, lint, score, upscale) never import this module.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
