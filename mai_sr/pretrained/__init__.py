"""Shipped pretrained INT8 models, one set of files per architecture.

For each model name of :mod:`mai_sr.registry` this folder may hold:

- ``<name>.tflite``       fixed-shape INT8 model, 1x360x640x3 uint8 -> 1x1080x1920x3 uint8 (runtime)
- ``<name>_none.tflite``  dynamic-shape INT8 model (fidelity, any image size)
- ``<name>.weights.h5``   Keras deploy-graph weights (``create_model(name, deploy=True)``): the
                          float weights as quantization-aware training left them
- ``<name>.qat.json``     the QAT activation ranges (``mai_sr.models.qat.activation_ranges``); with
                          the weights they rebuild the QAT model, so ``mai-sr export
                          --pretrained NAME`` writes the shipped INT8 file again (any shape)
- ``<name>.json``         model card (the report's schema) with the measured numbers

``benchmarks/pretrain.sh`` trains them and ``benchmarks/pretrained_table.py --ship`` exports,
measures and copies them here.

Only the standard library and the TF-free registry are imported here, so model-running
commands stay TF-free.
"""

from __future__ import annotations

from pathlib import Path

from mai_sr.errors import MaiSrError
from mai_sr.registry import list_models

PRETRAINED_DIR = Path(__file__).resolve().parent
# The registry's models: each may ship here (a new model has no files until it is trained and
# shipped; tests/test_pretrained.py checks what is shipped).
NAMES = tuple(list_models())
_SUFFIX = {"fixed": ".tflite", "dynamic": "_none.tflite", "weights": ".weights.h5",
           "ranges": ".qat.json", "card": ".json"}


def pretrained_path(name: str, kind: str = "dynamic") -> Path:
    """Path of a shipped file; `kind` is fixed, dynamic, weights, ranges or card.

    Raises MaiSrError naming the file when the model or file is not shipped.
    """
    if name not in NAMES:
        raise MaiSrError(f"--pretrained: unknown model {name!r} (choose from {', '.join(NAMES)})")
    if kind not in _SUFFIX:
        raise ValueError(f"kind must be one of {sorted(_SUFFIX)}, got {kind!r}")
    path = PRETRAINED_DIR / f"{name}{_SUFFIX[kind]}"
    if not path.is_file():
        raise MaiSrError(f"--pretrained {name}: {path.name} is not shipped in {PRETRAINED_DIR}")
    return path


def available() -> list[str]:
    """Names of the models whose fixed and dynamic INT8 files are both shipped."""
    return [n for n in NAMES
            if (PRETRAINED_DIR / f"{n}.tflite").is_file() and (PRETRAINED_DIR / f"{n}_none.tflite").is_file()]
