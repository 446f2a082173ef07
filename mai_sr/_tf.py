"""The only place TensorFlow is imported.

tfmot's quantization-aware training needs Keras 2 (`tf_keras`), so the legacy switch must be
set before TensorFlow is first imported. Modules that need TF do `from mai_sr._tf import tf, keras`.
Model-running commands (eval, bench, lint, score, upscale) never import this module.
"""

import os

from mai_sr._quiet import stderr_silenced

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_quietly():
    """Import TF with file descriptor 2 silenced.

    TF's C++ start-up lines (oneDNN notice, "Could not find cuda drivers", cuInit) are written
    before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL cannot hide them. An import
    error still propagates, after stderr is restored. MAI_SR_TF_LOGS=1 shows them.
    """
    with stderr_silenced() as silenced:
        import tensorflow
        import tf_keras
        if silenced:
            tensorflow.config.list_physical_devices("GPU")  # triggers the cuInit message now
    return tensorflow, tf_keras


tf, keras = _import_quietly()

__all__ = ["tf", "keras"]
