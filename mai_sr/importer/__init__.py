"""``mai-sr import``: published weights (PyTorch, Keras, SavedModel, TFLite) -> mai-sr
deploy-graph weights that ``export --weights``, ``train --init`` and QAT accept.

Readers (:mod:`.torch_checkpoint` without torch, :mod:`.keras_source`,
:mod:`.tflite_weights` without TF) give the source's convs in graph order; :mod:`.matcher`
fits them to the deploy graph and names each convention it applied; :mod:`.core` runs the
sanity gate (the FP32 model must beat its own nearest-neighbour anchor) and writes the file.

    from mai_sr.importer import import_weights
    result = import_weights("ABPN_M4C28_x3.pth", "abpn", "etds.weights.h5")
"""

from __future__ import annotations

__all__ = ["import_weights", "read_source", "ImportResult"]


def __getattr__(name):  # core imports TensorFlow: load it only when asked
    if name in __all__:
        from mai_sr.importer import core

        return getattr(core, name)
    raise AttributeError(name)
