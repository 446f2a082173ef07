"""PyTorch checkpoint -> :class:`~mai_sr.importer.source.SourceNet` (no torch needed)."""

from __future__ import annotations

from mai_sr.errors import MaiSrError
from mai_sr.importer.source import SourceConv, SourceNet, split_anchor, to_hwio
from mai_sr.importer.torch_checkpoint import read_state_dict


def read_torch(path) -> SourceNet:
    """The convs of a state dict in the file's order (module registration order = the
    order of a sequential backbone); each 4-D ``X.weight`` takes the ``X.bias`` beside it.
    Names are only used to pair a weight with its bias, never to place a layer."""
    tensors, nesting = read_state_dict(path)
    return source_from_state_dict(path, tensors, nesting)


def source_from_state_dict(path, tensors: dict, nesting: str | None = None) -> SourceNet:
    """:func:`read_torch` of a state dict already read (``{name: array}``)."""
    convs, used = [], set()
    for name, value in tensors.items():
        if value.ndim != 4:
            continue
        prefix = name[: -len("weight")] if name.endswith("weight") else name + "."
        bias = tensors.get(prefix + "bias")
        if bias is not None:
            used.add(prefix + "bias")
        used.add(name)
        label = prefix.rstrip(".") or name
        convs.append(SourceConv(to_hwio(value, "OIHW", label),
                                None if bias is None else bias.astype("float32"), label))
    # Tensors that are neither conv kernels nor their biases (batch norm, PReLU slopes,
    # ...) have no place in a plain-conv deploy graph: refuse instead of dropping them.
    extra = [n for n, v in tensors.items() if n not in used and v.size > 1]
    if extra:
        raise MaiSrError(f"{path}: {len(extra)} tensor(s) that are not conv weights or biases "
                         f"({', '.join(extra[:3])}); mai-sr deploy graphs hold plain convs only")
    body, anchor = split_anchor(convs)
    notes = [f"state dict under {nesting!r}"] if nesting else []
    return SourceNet(path=str(path), format="pytorch", layout="OIHW", channel_order="crd",
                     convs=body, anchor="nearest conv" if anchor else "built in",
                     anchor_kernel=None if anchor is None else anchor.kernel,
                     anchor_bias=None if anchor is None else anchor.bias, notes=notes)
