"""Keras files and TF SavedModels -> :class:`~mai_sr.importer.source.SourceNet`.

- Keras ``.h5`` (``model.save`` / legacy ``save_weights``): read with h5py, never
  deserialized, so a ``Lambda`` layer's marshalled code is never run. Layers come in the
  file's ``layer_names`` order (the model's topological layer order).
- Keras v3 ``.keras`` zips and ``.weights.h5`` files (``layers/<class>[_N]/vars/<i>``): layers
  of one class are numbered in the model's layer order, so they are sorted by that number.
- TF SavedModel folders: loaded with ``tf.saved_model.load`` (graph functions only, no
  Python code), variables in the model's tracking order (a Keras model tracks its layers
  in topological order).

All of these hold kernels as HWIO and use TF's depth_to_space (DCR) order.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from mai_sr.errors import MaiSrError
from mai_sr.importer.source import SourceConv, SourceNet, split_anchor, to_hwio


def _pair(weights: list[tuple[str, np.ndarray]], path) -> list[SourceConv]:
    """Convs from (label, array) pairs in order: each 4-D kernel takes the 1-D bias after it."""
    convs = []
    for label, value in weights:
        value = np.asarray(value)
        if value.ndim == 4:
            convs.append(SourceConv(to_hwio(value, "HWIO", label), None, label))
        elif value.ndim == 1 and convs and convs[-1].bias is None \
                and value.shape[0] == convs[-1].kernel.shape[3]:
            convs[-1].bias = value.astype(np.float32)
        elif value.size > 1:
            raise MaiSrError(f"{path}: {label} (shape {list(value.shape)}) is neither a conv "
                             "kernel nor its bias; mai-sr deploy graphs hold plain convs only")
    return convs


def _natural(name: str):
    match = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return match.group(1), int(match.group(2) or 0)


def _h5_weights(h5file) -> list[tuple[str, np.ndarray]]:
    """(label, array) in layer order from an open h5py file of either Keras layout."""
    root = h5file["model_weights"] if "model_weights" in h5file else h5file
    if "layer_names" in root.attrs:  # legacy layout
        out = []
        for layer in root.attrs["layer_names"]:
            layer = layer.decode() if isinstance(layer, bytes) else str(layer)
            group = root[layer]
            for weight in group.attrs.get("weight_names", []):
                weight = weight.decode() if isinstance(weight, bytes) else str(weight)
                out.append((f"{layer}/{weight}", group[weight][()]))
        return out
    if "layers" in root:  # Keras v3 layout
        out = []
        for layer in sorted(root["layers"], key=_natural):
            vars_group = root["layers"][layer].get("vars")
            if vars_group is None:
                continue
            for i in sorted(vars_group, key=int):
                out.append((f"{layer}/{i}", vars_group[i][()]))
        return out
    raise MaiSrError(f"{h5file.filename}: no Keras weights (neither layer_names nor layers/)")


def read_keras(path) -> SourceNet:
    """The convs of a Keras ``.h5`` / ``.weights.h5`` / ``.keras`` file, in layer order."""
    import h5py

    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                data = archive.read("model.weights.h5")
            with h5py.File(io.BytesIO(data), "r") as h5file:
                weights = _h5_weights(h5file)
            fmt = "keras"
        else:
            with h5py.File(path, "r") as h5file:
                weights = _h5_weights(h5file)
            fmt = "keras-h5"
    except (OSError, KeyError) as exc:
        raise MaiSrError(f"{path}: not a Keras weights file ({exc})") from None
    return _source(path, fmt, _pair(weights, path))


def read_savedmodel(path) -> SourceNet:
    """The convs of a TF SavedModel folder, in the model's variable tracking order."""
    from mai_sr._tf import tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TF raises several types for a bad folder
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MaiSrError(f"{path}: not a loadable SavedModel ({first})") from None
    variables = [(v.name, v.numpy()) for v in getattr(loaded, "variables", [])
                 if v.trainable or len(v.shape) in (1, 4)]
    if not variables:
        raise MaiSrError(f"{path}: the SavedModel holds no variables")
    return _source(path, "savedmodel", _pair(variables, path))


def _source(path, fmt: str, convs: list[SourceConv]) -> SourceNet:
    body, anchor = split_anchor(convs)
    return SourceNet(path=str(path), format=fmt, layout="HWIO", channel_order="dcr",
                     convs=body, anchor="nearest conv" if anchor else "built in",
                     anchor_kernel=None if anchor is None else anchor.kernel,
                     anchor_bias=None if anchor is None else anchor.bias)
