"""Quantization-aware training on the deploy graph, and weight clipping.

- :func:`quantize_model` (``mai_sr.models.qat.quantize``): tfmot QAT model of a deploy graph, with
  our QuantizeConfigs (``mai_sr.models.qat.configs``): input and output fixed to [0, 255], one
  range per tensor.
- :func:`quantize_scope`: for loading/cloning QAT models.
- :func:`calibrate`: activation ranges from data (PTQ, or before QAT).
- :func:`apply_weight_clip` (``mai_sr.models.qat.weight_clip``): Z6's weight clipping, after each
  optimizer step: the first-layer kernels (those reading the RGB image) to their
  per-output-channel mean +- k std. Not ``create_model(max_abs_weight=MAX)``, a hard bound
  on every conv kernel (a Keras kernel constraint).

Importing this package does not import TensorFlow; the names above load their module (and
TensorFlow) on first use.
"""

import importlib

_LAZY = {
    "quantize_model": "mai_sr.models.qat.quantize",
    "quantize_scope": "mai_sr.models.qat.quantize",
    "calibrate": "mai_sr.models.qat.quantize",
    "plan_quantization": "mai_sr.models.qat.quantize",
    "apply_weight_clip": "mai_sr.models.qat.weight_clip",
    "DEFAULT_K": "mai_sr.models.qat.weight_clip",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mai_sr.models.qat' has no attribute {name!r}")
