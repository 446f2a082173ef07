"""The one list of model architectures: name -> the module that builds it.

TF-free on purpose: `--help`, argparse choices and the `.tflite`-only commands read the names
here without importing TensorFlow. :func:`model_module` imports a model's module (and so
TensorFlow) only when it is asked for, as :data:`mai_sr.device.RUNNERS` does for runners.
Adding a model is one file in ``mai_sr/models/`` plus one line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from mai_sr.errors import MaiSrError

# name -> module defining build(scale, **config), DEFAULTS (the training graph), DEPLOY (what
# deploy=True changes) and RECIPE (training defaults that differ from mai_sr.train's)
MODELS: dict[str, str] = {
    "abpn": "mai_sr.models.abpn",
    "ncnet": "mai_sr.models.ncnet",
    "scsrn": "mai_sr.models.scsrn",
    "xcat": "mai_sr.models.xcat",
}

# Upscaling factors every registered model builds, trains and exports at.
SCALES = (2, 3, 4)


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def check_model_name(name: str) -> str:
    """`name`, or a one-line MaiSrError listing the registered names."""
    if name not in MODELS:
        raise MaiSrError(f"unknown model {name!r}; choose from {', '.join(list_models())}")
    return name


def check_scale(scale: int) -> int:
    """`scale`, or a one-line MaiSrError listing :data:`SCALES`."""
    if scale not in SCALES:
        raise MaiSrError(f"scale {scale!r} is not one of {', '.join(map(str, SCALES))}")
    return scale


def model_module(name: str) -> ModuleType:
    """The module of model `name` (imports TensorFlow)."""
    return importlib.import_module(MODELS[check_model_name(name)])
