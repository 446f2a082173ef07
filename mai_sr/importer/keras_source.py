"""Keras files and TF SavedModels -> :class:`~mai_sr.importer.source.SourceNet`.

- Keras ``.h5`` (``model.save`` / legacy ``save_weights``): read with h5py, never
  deserialized, so a ``Lambda`` layer's marshalled code is never run. Layers come in the
  file's ``layer_names`` order (the model's topological layer order).
- Keras v3 ``.keras`` zips and ``.weights.h5`` files (``layers/<class>[_N]/vars/<i>``): layers
  of one class are numbered in the model's layer order, so they are sorted by that number.
- TF SavedModel folders: never loaded (loading runs the graph's initializers); the object
  graph is parsed from ``saved_model.pb`` and the values read from the ``variables/``
  checkpoint bundle, in the model's tracking order (a Keras model tracks its layers in
  topological order).

All of these hold kernels as HWIO and use TF's depth_to_space (DCR) order.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from mai_sr.errors import MaiSrError, first_line
from mai_sr.importer.source import (MAX_SOURCE_BYTES, SourceConv, SourceNet, split_anchor,
                                    to_hwio)


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


def _member(group, relpath: str, where: str):
    """``group[relpath]`` without following a link out of the file: HDF5 external links
    open another file, so each component is looked up as a link first and refused if it is
    one (soft links inside the file are followed by h5py itself)."""
    import h5py

    node = group
    for part in [p for p in relpath.split("/") if p]:
        link = node.get(part, getlink=True)
        if link is None:
            raise MaiSrError(f"{where}: {relpath} missing")
        if isinstance(link, h5py.ExternalLink):
            raise MaiSrError(f"{where}: {relpath} is an external link to {link.filename}; "
                             "refusing to read another file's data")
        node = node[part]
    return node


def _dataset_value(node, label: str, where: str, budget: list[int]) -> np.ndarray:
    """A dataset's array, refused if it is not stored in this file (HDF5 external storage
    or a virtual dataset would pull another file's bytes into the weights), not numeric, or
    larger than what is left of the import's byte budget (checked before reading)."""
    import h5py

    if not isinstance(node, h5py.Dataset):
        raise MaiSrError(f"{where}: {label} is not a dataset")
    if node.external:
        raise MaiSrError(f"{where}: {label} keeps its data in external file(s) "
                         f"({', '.join(str(e[0]) for e in node.external)[:80]}); refusing "
                         "to read another file's data")
    if node.is_virtual:
        raise MaiSrError(f"{where}: {label} is a virtual dataset (its data lives in other "
                         "files); refusing to read it")
    if node.dtype.kind not in "fiub":
        raise MaiSrError(f"{where}: {label} holds {node.dtype}, not numbers")
    nbytes = int(np.prod(node.shape, dtype=object)) * node.dtype.itemsize if node.shape else \
        node.dtype.itemsize
    if nbytes > budget[0]:
        raise MaiSrError(f"{where}: {label} holds {nbytes:,} bytes, over the import limit of "
                         f"{MAX_SOURCE_BYTES // 2**20} MiB for a mobile SR model")
    budget[0] -= nbytes
    return node[()]


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _h5_weights(h5file, where: str) -> list[tuple[str, np.ndarray]]:
    """(label, array) in layer order from an open h5py file of either Keras layout."""
    budget = [MAX_SOURCE_BYTES]
    root = _member(h5file, "model_weights", where) if "model_weights" in h5file else h5file
    if "layer_names" in root.attrs:  # legacy layout
        out = []
        for layer in map(_text, root.attrs["layer_names"]):
            group = _member(root, layer, where)
            for weight in map(_text, group.attrs.get("weight_names", [])):
                label = f"{layer}/{weight}"
                out.append((label, _dataset_value(_member(group, weight, where), label, where,
                                                  budget)))
        return out
    if "layers" in root:  # Keras v3 layout
        out = []
        layers = _member(root, "layers", where)
        for layer in sorted(layers, key=_natural):
            if layer not in layers or "vars" not in _member(layers, layer, where):
                continue
            vars_group = _member(layers, f"{layer}/vars", where)
            for i in sorted(vars_group, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k)):
                label = f"{layer}/{i}"
                out.append((label, _dataset_value(_member(vars_group, i, where), label, where,
                                                  budget)))
        return out
    raise MaiSrError(f"{where}: no Keras weights (neither layer_names nor layers/)")


def read_keras(path) -> SourceNet:
    """The convs of a Keras ``.h5`` / ``.weights.h5`` / ``.keras`` file, in layer order.

    Read as data with h5py: no layer is deserialized (a ``Lambda`` layer's marshalled code
    never runs), no link or dataset that points into another file is followed, and at most
    :data:`MAX_SOURCE_BYTES` are read or inflated.
    """
    import h5py

    from mai_sr.importer.torch_checkpoint import read_member

    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                data = read_member(archive, "model.weights.h5", path, [MAX_SOURCE_BYTES])
            with h5py.File(io.BytesIO(data), "r") as h5file:
                weights = _h5_weights(h5file, str(path))
            fmt = "keras"
        else:
            with h5py.File(path, "r") as h5file:
                weights = _h5_weights(h5file, str(path))
            fmt = "keras-h5"
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
        first = first_line(exc)
        raise MaiSrError(f"{path}: not a Keras weights file ({first[:120]})") from None
    return _source(path, fmt, _pair(weights, path))


def read_savedmodel(path) -> SourceNet:
    """The convs of a TF SavedModel folder, read as data: never loaded or run.

    ``tf.saved_model.load`` runs the graph's initializers (which can write files or read
    any path the process can), so the graph is not loaded. Instead the object graph is
    parsed from ``saved_model.pb`` as a protocol buffer (structure only), and each variable's
    value is read from the ``variables/`` checkpoint bundle by its checkpoint key. Variables
    come in the model's tracking order: the root's ``variables`` list when the model saved
    one (Keras does, in layer order), else a depth-first walk of the object graph.
    """
    from mai_sr._tf import tf
    from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2

    path = Path(path)
    pb_path = path / "saved_model.pb"
    try:
        size = pb_path.stat().st_size
        if size > MAX_SOURCE_BYTES:
            raise MaiSrError(f"{pb_path}: {size:,} bytes, over the import limit of "
                             f"{MAX_SOURCE_BYTES // 2**20} MiB for a mobile SR model")
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString(pb_path.read_bytes())
    except MaiSrError:
        raise
    except Exception as exc:  # OSError, protobuf's DecodeError
        raise MaiSrError(f"{pb_path}: not a SavedModel protocol buffer ({type(exc).__name__})") \
            from None
    if not saved.meta_graphs:
        raise MaiSrError(f"{pb_path}: holds no meta graph")
    prefix = str(path / "variables" / "variables")
    try:
        reader = tf.train.load_checkpoint(prefix)
        ckpt_graph = trackable_object_graph_pb2.TrackableObjectGraph()
        ckpt_graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except Exception as exc:  # TF raises several types for a missing or damaged bundle
        first = first_line(exc)
        raise MaiSrError(f"{path}: no readable variables checkpoint ({first[:120]})") from None
    nodes = saved.meta_graphs[0].object_graph_def.nodes
    order = _variable_order(nodes)
    budget = [MAX_SOURCE_BYTES]
    variables = []
    for node_id in order:
        if node_id >= len(ckpt_graph.nodes):
            continue
        keys = [a.checkpoint_key for a in ckpt_graph.nodes[node_id].attributes
                if a.name == "VARIABLE_VALUE"]
        if not keys:
            continue
        var = nodes[node_id].variable
        shape = [d.size for d in var.shape.dim]
        if not (var.trainable or len(shape) in (1, 4)):
            continue
        nbytes = int(np.prod([max(d, 0) for d in shape], dtype=object)) * 4
        if nbytes > budget[0]:
            raise MaiSrError(f"{path}: variable {var.name} ({shape}) exceeds the import limit "
                             f"of {MAX_SOURCE_BYTES // 2**20} MiB for a mobile SR model")
        budget[0] -= nbytes
        try:
            value = reader.get_tensor(keys[0])
        except Exception as exc:  # a damaged bundle
            raise MaiSrError(f"{path}: variable {var.name} unreadable "
                             f"({type(exc).__name__})") from None
        variables.append((var.name or keys[0], np.asarray(value)))
    if not variables:
        raise MaiSrError(f"{path}: the SavedModel's checkpoint holds no conv variables "
                         f"({len(order)} variable node(s) in its object graph)")
    return _source(path, "savedmodel", _pair(variables, path))


def _variable_order(nodes) -> list[int]:
    """Ids of the object graph's variable nodes in the model's tracking order."""
    def is_variable(i):
        return 0 <= i < len(nodes) and nodes[i].WhichOneof("kind") == "variable"

    if nodes:
        for child in nodes[0].children:  # Keras' own ordered list of its variables
            if child.local_name == "variables" and 0 <= child.node_id < len(nodes):
                listed = [c.node_id for c in nodes[child.node_id].children]
                if listed and all(map(is_variable, listed)):
                    return list(dict.fromkeys(listed))
    order, seen, stack = [], set(), [0]
    while stack:  # depth-first, children in the order saved
        i = stack.pop()
        if i in seen or not 0 <= i < len(nodes):
            continue
        seen.add(i)
        if is_variable(i):
            order.append(i)
        stack.extend(reversed([c.node_id for c in nodes[i].children]))
    return order


def _source(path, fmt: str, convs: list[SourceConv]) -> SourceNet:
    body, anchor = split_anchor(convs)
    return SourceNet(path=str(path), format=fmt, layout="HWIO", channel_order="dcr",
                     convs=body, anchor="nearest conv" if anchor else "built in",
                     anchor_kernel=None if anchor is None else anchor.kernel,
                     anchor_bias=None if anchor is None else anchor.bias)
