"""Fit a :class:`~mai_sr.importer.source.SourceNet` to a mai-sr deploy graph (TF-free).

Convs are matched by graph order and shape, never by the names a source happens to use
(ABPN's four 28 -> 28 convs share one shape, so only their order places them). Each
convention is applied explicitly and described in one line:

- kernel layout: OIHW (PyTorch), OHWI (TFLite) or HWIO (Keras) -> HWIO;
- depth-to-space order: a PyTorch model ends in PixelShuffle (CRD), TF's depth_to_space is
  DCR, so the last conv's 3s^2 output channels (and bias) are permuted CRD -> DCR;
- input range: a model trained on [0, 1] pixels works on [0, 255] pixels when every bias is
  multiplied by 255 (ReLU is positively homogeneous, the anchor is linear);
- anchor: none in the weights (built into the code), a concat of s^2 input copies, or a 1x1
  nearest conv, which must equal nearest-neighbour upsampling in the source's order (a learnt
  anchor has no place in mai-sr's frozen one);
- scale: read from the last conv's 3s^2 output channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mai_sr.errors import MaiSrError
from mai_sr.importer.source import CHANNEL_ORDERS, SourceNet

PIXEL_MAX = 255.0
ANCHOR_TOLERANCE = 1e-2  # an int8 anchor dequantizes to 1 +- 1/127
# Longest conv list chain_order reorders (its O(n^3) worst case stays well under a second);
# mobile SR nets have a few dozen convs at most.
MAX_CHAIN = 128


@dataclass(frozen=True)
class Fitted:
    """Deploy-graph weights [(kernel HWIO, bias)] plus the conventions applied, one line each."""

    weights: list
    conventions: dict  # {"layout": "...", "channel order": "...", ...}
    scale: int
    channel_order: str
    input_range: float


def _shapes_text(shapes) -> str:
    """'3->28, 28->28 x4, 28->27, 27->27' from HWIO shapes, runs collapsed."""
    parts, run = [], []
    for kh, kw, cin, cout in shapes:
        text = f"{cin}->{cout}" + ("" if (kh, kw) == (3, 3) else f" {kh}x{kw}")
        if run and run[0] == text:
            run.append(text)
            continue
        if run:
            parts.append(run[0] + (f" x{len(run)}" if len(run) > 1 else ""))
        run = [text]
    if run:
        parts.append(run[0] + (f" x{len(run)}" if len(run) > 1 else ""))
    return ", ".join(parts)


def source_scale(source: SourceNet) -> int:
    """The upscaling factor s from the last conv's 3s^2 output channels."""
    if not source.convs:
        raise MaiSrError(f"{source.path}: no conv layers found")
    out = source.convs[-1].kernel.shape[3]
    s = round((out / 3) ** 0.5)
    if s < 2 or 3 * s * s != out:
        raise MaiSrError(f"{source.path}: the last conv has {out} output channels, not 3*s^2 "
                         "for an RGB depth-to-space head")
    return s


def crd_to_dcr(scale: int, colours: int = 3) -> np.ndarray:
    """Index array p: a DCR tensor is ``crd[..., p]`` (DCR channel (i*s+j)*C + c is CRD
    channel c*s^2 + i*s + j)."""
    s2 = scale * scale
    dcr = np.arange(colours * s2)
    return (dcr % colours) * s2 + dcr // colours


def nearest_anchor(scale: int, order: str, colours: int = 3) -> np.ndarray:
    """The 1x1 HWIO kernel of nearest-neighbour upsampling in channel order `order`."""
    out = np.arange(colours * scale * scale)
    source_colour = out % colours if order == "dcr" else out // (scale * scale)
    kernel = np.zeros((1, 1, colours, colours * scale * scale), np.float32)
    kernel[0, 0, source_colour, out] = 1.0
    return kernel


def describe_anchor(source: SourceNet, scale: int, order: str) -> str:
    """One line on the source's anchor; raises when a 1x1 anchor is not nearest-neighbour."""
    if source.anchor == "built in":
        return "built into the source's code (no weights): mai-sr's frozen nearest-conv anchor"
    if source.anchor == "concat":
        return f"concat of {scale * scale} input copies = mai-sr's nearest-conv anchor"
    kernel = source.anchor_kernel
    bias = source.anchor_bias if source.anchor_bias is not None else np.zeros(1)
    deviation = {o: float(max(np.abs(kernel - nearest_anchor(scale, o)).max(),
                              np.abs(bias).max())) for o in CHANNEL_ORDERS}
    if deviation[order] <= ANCHOR_TOLERANCE:
        return f"1x1 nearest conv in the weights, equal to nearest-neighbour " \
               f"(max deviation {deviation[order]:.1e}) = mai-sr's frozen anchor"
    other = "crd" if order == "dcr" else "dcr"
    if deviation[other] <= ANCHOR_TOLERANCE:
        raise MaiSrError(f"{source.path}: the 1x1 anchor conv is nearest-neighbour in "
                         f"{other.upper()} order, not {order.upper()}: pass "
                         f"--channel-order {other}")
    raise MaiSrError(f"{source.path}: the 1x1 anchor conv is learnt, not nearest-neighbour "
                     f"(max deviation {deviation[order]:.3g}); mai-sr's anchor is frozen")


def _is_chain(convs) -> bool:
    return all(a.kernel.shape[3] == b.kernel.shape[2] for a, b in zip(convs, convs[1:]))


def put_in_chain_order(source: SourceNet) -> bool:
    """Reorder `source.convs` into a chain when the file lists them out of forward order
    (see :func:`chain_order`); True when it did."""
    if _is_chain(source.convs):
        return False
    chain = chain_order(source.convs)
    if chain is None:
        return False
    source.convs = chain
    return True


def _trail_possible(edges: list[tuple[int, int]], start: int) -> bool:
    """Whether one path from `start` uses every (in, out) edge once: a directed Euler trail.

    It exists iff the edges are weakly connected and reach `start`, and every node's
    out-degree equals its in-degree except `start`, which may have one more out (then one
    other node has one more in). Linear in the edges."""
    if not edges:
        return True
    balance: dict[int, int] = {}
    parent: dict[int, int] = {}

    def root(node):
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b in edges:
        balance[a] = balance.get(a, 0) + 1
        balance[b] = balance.get(b, 0) - 1
        parent[root(a)] = root(b)
    if start not in parent or len({root(n) for n in parent}) != 1:
        return False
    surplus = {n: d for n, d in balance.items() if d}
    if not surplus:
        return True
    return surplus.get(start) == 1 and sorted(surplus.values()) == [-1, 1]


def chain_order(convs: list) -> list | None:
    """`convs` reordered into a chain (each conv's inputs = the previous one's outputs) that
    starts from the 3 colours, keeping the file's order among convs that could go next;
    None when no such chain uses them all. A file whose modules were registered out of
    forward order still lists its convs; same-shape convs keep their file order.

    The chain is a directed Euler trail over channel counts (each conv an edge in -> out), so
    the first fitting conv in file order is taken only while a trail through the rest
    remains (:func:`_trail_possible`): the same chain a depth-first search in file order
    finds first, in O(n^2) steps instead of its exponential worst case (a 10-conv file of
    another architecture took 45 s)."""
    if len(convs) > MAX_CHAIN:
        return None
    rest = [(conv, int(conv.kernel.shape[2]), int(conv.kernel.shape[3])) for conv in convs]
    if not _trail_possible([(a, b) for _, a, b in rest], 3):
        return None
    chain, want = [], 3
    while rest:
        for i, (conv, cin, cout) in enumerate(rest):
            others = rest[:i] + rest[i + 1:]
            if cin == want and _trail_possible([(a, b) for _, a, b in others], cout):
                chain.append(conv)
                rest, want = others, cout
                break
        else:  # unreachable: a possible trail always has a first edge
            return None
    return chain


def fit(source: SourceNet, model: str, target_shapes: list[tuple], *, channel_order: str,
        input_range: float) -> Fitted:
    """The deploy weights of `model` (whose convs have HWIO `target_shapes`, in graph
    order) from `source`, with the given depth-to-space order and input range."""
    if channel_order not in CHANNEL_ORDERS:
        raise MaiSrError(f"channel order must be dcr or crd, got {channel_order!r}")
    if input_range not in (1.0, PIXEL_MAX):
        raise MaiSrError(f"input range must be 1 or 255, got {input_range!r}")
    reordered = put_in_chain_order(source)
    scale = source_scale(source)
    target_scale = round((target_shapes[-1][3] / 3) ** 0.5) if target_shapes else scale
    if scale != target_scale:
        raise MaiSrError(f"{source.path} is an x{scale} model (the last conv has "
                         f"{3 * scale * scale} = 3*{scale}^2 output channels); {model} here is "
                         f"x{target_scale}")
    shapes = [tuple(c.kernel.shape) for c in source.convs]
    target_shapes = [tuple(int(d) for d in s) for s in target_shapes]
    if shapes != target_shapes:
        where = next((i for i, (a, b) in enumerate(zip(shapes, target_shapes)) if a != b),
                     min(len(shapes), len(target_shapes)))
        detail = (f"conv {where + 1} is {_shapes_text([shapes[where]])}, {model} needs "
                  f"{_shapes_text([target_shapes[where]])}"
                  if where < min(len(shapes), len(target_shapes)) else
                  f"{len(shapes)} convs against {len(target_shapes)}")
        raise MaiSrError(f"{source.path} does not fit {model}: {detail} (source: "
                         f"{_shapes_text(shapes)}; {model}: {_shapes_text(target_shapes)})")
    anchor_text = describe_anchor(source, scale, channel_order)
    weights = []
    for i, conv in enumerate(source.convs):
        kernel = conv.kernel.astype(np.float32)
        bias = (np.zeros(kernel.shape[3], np.float32) if conv.bias is None
                else conv.bias.astype(np.float32))
        bias = bias * np.float32(PIXEL_MAX / input_range)
        if i == len(source.convs) - 1 and channel_order == "crd":
            order = crd_to_dcr(scale)
            kernel, bias = kernel[..., order], bias[order]
        weights.append((np.ascontiguousarray(kernel), np.ascontiguousarray(bias)))
    last = shapes[-1][3]
    conventions = {
        "layout": f"{source.layout} -> HWIO" + ("" if source.layout == "HWIO" else
                                                " (transposed)"),
        "channel order": ("PixelShuffle CRD -> depth-to-space DCR (last conv's "
                          f"{last} output channels and bias reordered)") if channel_order == "crd"
        else "depth-to-space DCR (as is)",
        "input range": ("[0, 1] -> [0, 255] (every bias x255)" if input_range == 1.0
                        else "[0, 255] (as is)"),
        "anchor": anchor_text,
        "scale": f"x{scale} (last conv's {last} = 3*{scale}^2 output channels)",
        "layers": f"{len(shapes)} convs matched by graph order and shape: {_shapes_text(shapes)}"
                  + (" (the file lists them out of order: chained by channel counts)"
                     if reordered else ""),
    }
    return Fitted(weights, conventions, scale, channel_order, input_range)
