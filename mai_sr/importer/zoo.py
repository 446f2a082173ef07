"""Place a PyTorch state dict among the published mobile-SR families by its keys and shapes
(TF-free, so an unknown file is answered before TensorFlow loads).

The families are those of the DIV2K-trained ETDS zoo (Chao et al., "Equivalent
Transformation and Dual Stream Network Construction for Mobile Image Super-Resolution",
CVPR 2023, whose authors' module names the keys follow): ESPCN, FSRCNN, ECBSR (collapsed
``ECBSRT`` form, and the training form of edge-oriented blocks, collapsed by
:func:`ecb_collapse`), ABPN, ETDS (``ETDSForInference``, and the dual-stream training form,
merged by :func:`etds_equivalent_transformation`), and the equivalent-transformation
(``_ET_``) forms of ABPN and ECBSR. An ET form computes its plain counterpart with the
output clipped by ReLUs (the paper's Eqs. 5-12): 4 extra channels per layer (one zero, three
copies of the input image), a last conv holding minus the plain one (and minus the anchor)
with bias 1 - b, and a 1x1 conv -I with bias 1. :func:`recognise` checks those fixed parts
and reads the plain weights back out of them; mai-sr's deploy graph then clips with a clip
op (the same values). A state dict it cannot place gets :func:`describe` (one line).

Each placement converts the weights for the registered deploy graph (``mai_sr.registry``
name and size), by layer name: kernels OIHW -> HWIO, PReLU slopes (C,) -> (1, 1, C), the
transposed conv's (in, out, 9, 9) -> (8+s, 8+s, out, in) zero-padded, the pixel-shuffle
conv's outputs CRD -> DCR, and the [0, 1] input range moved to [0, 255] (biases x 255 for
ReLU/PReLU nets, ESPCN's first kernel / 255).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mai_sr.errors import MaiSrError
from mai_sr.registry import MODELS, SIZES

PIXEL_MAX = 255.0
SCALES = (2, 3, 4)
# The fixed parts of an ET form are written by the authors' converters as exact 0, 1, -1;
# a float32 round trip keeps them, so anything beyond this is a trained, not a fixed, part.
ET_TOLERANCE = 1e-6
# ESPCN (Shi et al., CVPR 2016) widths and FSRCNN(d, s, m) (Dong et al., ECCV 2016) as the
# ETDS zoo trains them; the registry's espcn and fsrcnn build exactly these.
ESPCN_WIDTHS = (64, 32)
ET_ANCHOR = ("minus the image copies in the ET form's last conv, read back out: mai-sr's "
             "frozen nearest-conv anchor")
FSRCNN_DSM = (56, 12, 4)


@dataclass
class Placed:
    """A recognised checkpoint: the registry model, the scales it can be, and its weights."""

    model: str                  # registry name, e.g. "ecbsr_m4c32"
    architecture: str           # in words, e.g. "ECBSR M4C32, equivalent-transformation form"
    scales: tuple               # (s,) or, when the weights do not say (FSRCNN), SCALES
    convert: Callable           # (scale, channel_order, input_range) -> {layer: [arrays]}
    homogeneous: bool = True    # a ReLU/PReLU net: input range moves into the biases
    anchor: str = ("built into the source's code (no weights): mai-sr's frozen "
                   "nearest-conv anchor")
    shuffle: bool = True        # ends in a pixel shuffle (else a transposed conv)
    notes: list = field(default_factory=list)


def crd_to_dcr(scale: int, colours: int = 3) -> np.ndarray:
    """Index array p: a DCR tensor is ``crd[..., p]`` (as :mod:`mai_sr.importer.matcher`)."""
    s2 = scale * scale
    dcr = np.arange(colours * s2)
    return (dcr % colours) * s2 + dcr // colours


def _hwio(weight: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(weight, (2, 3, 1, 0)), dtype=np.float32)


def _f32(value) -> np.ndarray:
    return np.ascontiguousarray(value, dtype=np.float32)


def _size_name(family_module: str, **dims) -> str | None:
    """The registry name whose size options are `dims` (None: no such published size)."""
    for name, module in MODELS.items():
        if module == family_module and SIZES.get(name) == dims:
            return name
    return None


def _scale_of(out_channels: int) -> int | None:
    s = round((out_channels / 3) ** 0.5)
    return s if s in SCALES and 3 * s * s == out_channels else None


def _indexed(tensors: dict, pattern: str) -> dict[int, str]:
    """{index: key} of the keys matching `pattern` (one ``(\\d+)`` group)."""
    found = {}
    for key in tensors:
        m = re.fullmatch(pattern, key)
        if m:
            found[int(m.group(1))] = key
    return found


class _Layers:
    """Builds {deploy layer name: [weights]} in pixel units for one scale and convention."""

    def __init__(self, scale: int, order: str, input_range: float):
        self.scale, self.order = scale, order
        self.bias_factor = np.float32(PIXEL_MAX / input_range)
        self.weights: dict[str, list] = {}

    def conv(self, name, kernel_hwio, bias, shuffle=False):
        kernel, bias = _f32(kernel_hwio), _f32(bias) * self.bias_factor
        if shuffle and self.order == "crd":
            p = crd_to_dcr(self.scale)
            kernel, bias = kernel[..., p], bias[p]
        self.weights[name] = [np.ascontiguousarray(kernel), np.ascontiguousarray(bias)]

    def prelu(self, name, slopes):
        self.weights[name] = [_f32(slopes).reshape(1, 1, -1)]


# ------------------------------------------------------------------ ESPCN


def _espcn(t: dict) -> Placed | None:
    keys = {f"conv{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    if set(t) != keys:
        return None
    w1, w2, w3 = (t[f"conv{i}.weight"] for i in (1, 2, 3))
    if w1.shape[1:] != (3, 5, 5) or w2.shape[2:] != (3, 3) or w3.shape[2:] != (3, 3):
        return None
    if (w1.shape[0], w2.shape[0]) != ESPCN_WIDTHS or w2.shape[1] != w1.shape[0] \
            or w3.shape[1] != w2.shape[0]:
        return None
    scale = _scale_of(w3.shape[0])
    if scale is None:
        return None

    def convert(scale, order, input_range):
        out = _Layers(scale, order, PIXEL_MAX)  # tanh is not homogeneous: no bias scaling
        out.conv("conv1", _hwio(w1) * np.float32(input_range / PIXEL_MAX), t["conv1.bias"])
        out.conv("conv2", _hwio(w2), t["conv2.bias"])
        out.conv("conv3", _hwio(w3), t["conv3.bias"], shuffle=True)
        return out.weights

    return Placed("espcn", f"ESPCN x{scale}", (scale,), convert, homogeneous=False,
                  anchor="none (ESPCN predicts the image itself)")


# ------------------------------------------------------------------ FSRCNN


def _fsrcnn(t: dict) -> Placed | None:
    if "last_part.weight" not in t or "first_part.0.weight" not in t:
        return None
    convs = _indexed(t, r"mid_part\.(\d+)\.weight")
    d, s, m = FSRCNN_DSM
    first, last = t["first_part.0.weight"], t["last_part.weight"]
    mid = [t[convs[i]] for i in sorted(convs)]
    expected = [(s, d, 1, 1)] + [(s, s, 3, 3)] * m + [(d, s, 1, 1)]
    slopes = [w for w in mid if w.ndim == 1]
    kernels = [w for w in mid if w.ndim == 4]
    if first.shape != (d, 3, 5, 5) or last.shape != (d, 3, 9, 9) \
            or [k.shape for k in kernels] != expected or len(slopes) != len(kernels) \
            or t.get("first_part.1.weight") is None or len(t) != 3 * (m + 3) + 2:
        return None

    def convert(scale, order, input_range):
        out = _Layers(scale, order, input_range)
        out.conv("conv1", _hwio(first), t["first_part.0.bias"])
        out.prelu("prelu1", t["first_part.1.weight"])
        for i in range(m + 2):
            out.conv(f"conv{i + 2}", _hwio(t[f"mid_part.{2 * i}.weight"]),
                     t[f"mid_part.{2 * i}.bias"])
            out.prelu(f"prelu{i + 2}", t[f"mid_part.{2 * i + 1}.weight"])
        size = 9 + scale - 1  # mai_sr.models.blocks.deconv_kernel_size
        kernel = np.zeros((size, size, 3, d), np.float32)
        kernel[:9, :9] = np.transpose(last, (2, 3, 1, 0))  # (in, out, h, w) -> (h, w, out, in)
        out.weights["deconv"] = [kernel, _f32(t["last_part.bias"]) * out.bias_factor]
        return out.weights

    placed = Placed("fsrcnn", "FSRCNN(56, 12, 4)", SCALES, convert, shuffle=False,
                    anchor="none (FSRCNN predicts the image itself)")
    placed.notes.append("the scale is the transposed conv's stride, which the weights do not "
                        "hold: measured on the sanity gate's images (or give --scale)")
    return placed


# ------------------------------------------------------------------ ECBSR


def _sequential(t: dict, depth: int) -> list[tuple[str, np.ndarray]] | None:
    """[(prefix, conv weight)] of ``backbone.I.0`` (depth 2) or ``backbone.I`` convs."""
    pattern = r"backbone\.(\d+)\.0\.weight" if depth == 2 else r"backbone\.(\d+)\.weight"
    found = _indexed(t, pattern)
    return [(found[i][: -len(".weight")], t[found[i]]) for i in sorted(found)]


def _check_et_identity(kernel_oihw, bias, rows, cols, label):
    """ET's image-copy channels: rows `rows` read input channels `cols` by a centre 1, with
    no bias."""
    block = kernel_oihw[rows]
    expected = np.zeros_like(block)
    for r, c in enumerate(cols):
        expected[r, c, 1, 1] = 1.0
    if max(np.abs(block - expected).max(), np.abs(bias[rows]).max()) > ET_TOLERANCE:
        raise MaiSrError(f"{label}: the ET form's image-copy channels are not the identity")


def _check_et_features(kernel_oihw, rows: int, cols: int, label):
    """The first `rows` (feature) outputs read nothing from input channels `cols` on."""
    if np.abs(kernel_oihw[:rows, cols:]).max(initial=0.0) > ET_TOLERANCE:
        raise MaiSrError(f"{label}: the ET form's features read its image copies")


def _et_tail(last, last_bias, clip, clip_bias, *, scale, plain_in, anchor_cols, label):
    """The plain (kernel OIHW, bias) of an ET last conv 'ReLU(1 - y - anchor)' followed by
    the 1x1 clip conv 'ReLU(1 - x)'; checks the fixed parts."""
    out = 3 * scale * scale
    unit = float(clip_bias[0])
    eye = -np.eye(clip.shape[0], dtype=np.float32)[:, :, None, None]
    if np.abs(clip - eye).max() > ET_TOLERANCE or np.abs(clip_bias - unit).max() > ET_TOLERANCE \
            or min(abs(unit - 1.0), abs(unit - PIXEL_MAX)) > ET_TOLERANCE:
        raise MaiSrError(f"{label}: the ET form's 1x1 clip conv is not -I with bias 1 (or 255, "
                         "the pixel maximum)")
    anchor = np.zeros((out, len(anchor_cols), 3, 3), np.float32)
    for k in range(out):  # CRD: output channel k copies colour k // s^2
        anchor[k, k // (scale * scale), 1, 1] = -1.0
    if np.abs(last[:out, anchor_cols] - anchor).max() > ET_TOLERANCE:
        raise MaiSrError(f"{label}: the ET form's anchor channels are not minus the image")
    rest = [c for c in range(plain_in, last.shape[1]) if c not in anchor_cols]
    if np.abs(last[:out, rest]).max(initial=0.0) > ET_TOLERANCE:
        raise MaiSrError(f"{label}: the ET form's output reads its padding channel")
    if np.abs(last[out:]).max(initial=0.0) > ET_TOLERANCE:
        raise MaiSrError(f"{label}: the ET form's padding channel is not constant")
    return -last[:out, :plain_in], unit - last_bias[:out]


def _ecbsr(t: dict) -> Placed | None:
    convs = _sequential(t, 2)
    if len(convs) < 3 or any(f"{p}.bias" not in t for p, _ in convs):
        return None
    slopes = _indexed(t, r"backbone\.(\d+)\.1\.weight")
    width = convs[0][1].shape[0]
    et = convs[-1][1].shape[2:] == (1, 1)
    body = convs[:-2] if et else convs[:-1]
    if sorted(slopes) != list(range(len(body))) or convs[0][1].shape[1] != 3:
        return None
    plain_width = width - 4 if et else width
    blocks = len(body) - 1
    name = _size_name("mai_sr.models.ecbsr", blocks=blocks, channels=plain_width)
    scale = _scale_of(convs[-1][1].shape[0] - (1 if et and convs[-1][1].shape[0] % 3 else 0))
    if name is None or scale is None:
        return None

    def convert(scale, order, input_range):
        out = _Layers(scale, order, input_range)
        for i, (prefix, w) in enumerate(body):
            kernel, bias, slope = w, t[f"{prefix}.bias"], t[f"backbone.{i}.1.weight"]
            if et:
                cols = list(range(3)) if i == 0 else list(range(plain_width + 1, width))
                _check_et_identity(kernel, bias, slice(plain_width + 1, width), cols, prefix)
                if i:
                    _check_et_features(kernel, plain_width, plain_width, prefix)
                kernel = kernel[:plain_width, :(3 if i == 0 else plain_width)]
                bias, slope = bias[:plain_width], slope[:plain_width]
            out.conv(f"conv{i + 1}", _hwio(kernel), bias)
            out.prelu(f"prelu{i + 1}", slope)
        last_prefix, last = convs[-2] if et else convs[-1]
        bias = t[f"{last_prefix}.bias"]
        if et:
            clip_prefix, clip = convs[-1]
            last, bias = _et_tail(last, bias, clip, t[f"{clip_prefix}.bias"], scale=scale,
                                  plain_in=plain_width,
                                  anchor_cols=list(range(plain_width + 1, width)),
                                  label=last_prefix)
        out.conv(f"conv{blocks + 2}", _hwio(last), bias, shuffle=True)
        return out.weights

    form = "equivalent-transformation (ET) form" if et else "collapsed (plain) form"
    size = f"M{blocks}C{plain_width}"
    return Placed(name, f"ECBSR {size} x{scale}, {form}", (scale,), convert,
                  anchor=ET_ANCHOR if et else Placed.anchor)


# ------------------------------------------------------------------ ABPN


def _abpn(t: dict) -> Placed | None:
    inner = _sequential(t, 2)
    outer = _sequential(t, 1)
    if not outer or outer[0][0] != "backbone.0" or any(f"{p}.bias" not in t
                                                       for p, _ in inner + outer):
        return None
    if len(t) != 2 * (len(inner) + len(outer)):
        return None
    tail = outer[1:]
    et = len(tail) == 3
    if len(tail) not in (2, 3) or (et and tail[-1][1].shape[2:] != (1, 1)):
        return None
    width = outer[0][1].shape[0]
    plain_width = width - 4 if et else width
    blocks = len(inner)
    name = _size_name("mai_sr.models.abpn", body=blocks, channels=plain_width)
    head_out = tail[1][1].shape[0]
    scale = _scale_of(head_out - (1 if et and head_out % 3 else 0))
    if name is None or scale is None or outer[0][1].shape[1] != 3:
        return None

    def convert(scale, order, input_range):
        out = _Layers(scale, order, input_range)
        n = 3 * scale * scale
        chain = [outer[0]] + inner
        for i, (prefix, kernel) in enumerate(chain):
            bias = t[f"{prefix}.bias"]
            if et:
                cols = list(range(3)) if i == 0 else list(range(plain_width + 1, width))
                _check_et_identity(kernel, bias, slice(plain_width + 1, width), cols, prefix)
                if i:
                    _check_et_features(kernel, plain_width, plain_width, prefix)
                kernel, bias = kernel[:plain_width, :(3 if i == 0 else plain_width)], \
                    bias[:plain_width]
            out.conv(f"conv{i + 1}", _hwio(kernel), bias)
        (p5, k5), (p6, k6) = tail[0], tail[1]
        b5, b6 = t[f"{p5}.bias"], t[f"{p6}.bias"]
        if et:
            copies = list(range(k5.shape[0] - 3, k5.shape[0]))
            _check_et_identity(k5, b5, slice(copies[0], copies[-1] + 1),
                               list(range(plain_width + 1, width)), p5)
            _check_et_features(k5, n, plain_width, p5)
            k5, b5 = k5[:n, :plain_width], b5[:n]
            k6, b6 = _et_tail(k6[:, :], b6, tail[2][1], t[f"{tail[2][0]}.bias"], scale=scale,
                              plain_in=n, anchor_cols=copies, label=p6)
        out.conv(f"conv{blocks + 2}", _hwio(k5), b5)
        out.conv(f"conv{blocks + 3}", _hwio(k6), b6, shuffle=True)
        return out.weights

    form = "equivalent-transformation (ET) form" if et else "plain form"
    return Placed(name, f"ABPN M{blocks}C{plain_width} x{scale}, {form}", (scale,), convert,
                  anchor=ET_ANCHOR if et else Placed.anchor)


# The branches of ECBSR's edge-oriented convolution block (ECB) in the authors' training form
# (Zhang, Zeng and Zhang, "Edge-oriented Convolution Block for Real-time Super Resolution on
# Mobile Devices", ACM MM 2021): a 1x1 conv then a 3x3 one, and three 1x1 convs each then a
# fixed edge mask (Sobel x, Sobel y, Laplacian) times a learnt per-channel scale, + a bias.
ECB_EDGES = ("conv1x1_sbx", "conv1x1_sby", "conv1x1_lpl")
ECB_KEYS = (["conv3x3.weight", "conv3x3.bias"]
            + [f"conv1x1_3x3.{p}" for p in ("k0", "b0", "k1", "b1")]
            + [f"{e}.{p}" for e in ECB_EDGES for p in ("k0", "b0", "scale", "bias", "mask")])


def ecb_collapse(t: dict, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """(kernel OIHW, bias) of the one 3x3 conv an ECB `prefix` of state dict `t` equals.

    The paper pads each 1x1 conv's output with its bias before the 3x3 step, so the 3x3
    kernel composed with the 1x1 one is exact, and the bias gains b0 . (sum of the 3x3
    kernel's taps); the edge masks act per channel (depthwise)."""
    def get(key):
        return np.asarray(t[f"{prefix}.{key}"], np.float64)

    kernel, bias = get("conv3x3.weight"), get("conv3x3.bias")
    k0, b0, k1 = get("conv1x1_3x3.k0")[:, :, 0, 0], get("conv1x1_3x3.b0"), get("conv1x1_3x3.k1")
    kernel = kernel + np.einsum("omhw,mi->oihw", k1, k0)
    bias = bias + get("conv1x1_3x3.b1") + np.einsum("omhw,m->o", k1, b0)
    for edge in ECB_EDGES:
        k0, b0 = get(f"{edge}.k0")[:, :, 0, 0], get(f"{edge}.b0")
        taps = (get(f"{edge}.scale") * get(f"{edge}.mask"))[:, 0]  # (out, 3, 3)
        kernel = kernel + np.einsum("ohw,oi->oihw", taps, k0)
        bias = bias + get(f"{edge}.bias") + b0 * taps.sum(axis=(1, 2))
    return kernel.astype(np.float32), bias.astype(np.float32)


def _ecbsr_training(t: dict) -> Placed | None:
    """ECBSR in the authors' training form (an ECB per conv, PReLU between): placed as the
    collapsed form its blocks equal (:func:`ecb_collapse`)."""
    blocks = _indexed(t, r"backbone\.(\d+)\.conv3x3\.weight")
    n = len(blocks)
    if n < 3 or sorted(blocks) != list(range(n)) or len(t) != n * len(ECB_KEYS) + n - 1:
        return None
    if any(f"backbone.{i}.{k}" not in t for i in range(n) for k in ECB_KEYS) or any(
            f"backbone.{i}.act.weight" not in t for i in range(n - 1)):
        return None
    plain = {}
    for i in range(n):
        kernel, bias = ecb_collapse(t, f"backbone.{i}")
        plain[f"backbone.{i}.0.weight"], plain[f"backbone.{i}.0.bias"] = kernel, bias
        if i < n - 1:
            plain[f"backbone.{i}.1.weight"] = t[f"backbone.{i}.act.weight"]
    placed = _ecbsr(plain)
    if placed is None:
        return None
    placed.architecture = placed.architecture.replace("collapsed (plain) form",
                                                      "training form (ECB blocks)")
    placed.notes.append("each edge-oriented convolution block collapsed to one 3x3 conv "
                        "(1x1-3x3, Sobel x/y and Laplacian branches; Zhang et al., ACM MM 2021)")
    return placed


# ------------------------------------------------------------------ ETDS


ETDS_ANCHOR = ("none left: the equivalent transformation folded the residual stream's "
               "nearest-neighbour upsampling into the convs")
# The three convs of body layer I in the authors' ETDS training form: backbone_convs.I
# (F -> F), residual_convs.I (R -> R) and add_residual_convs.I (R -> F).
ETDS_STREAMS = ("backbone_convs", "residual_convs", "add_residual_convs")


def _etds_weights(t: dict, blocks: int, scale, order, input_range) -> dict:
    """Deploy weights of an ETDS inference-form state dict (``ETDSForInference`` keys)."""
    out = _Layers(scale, order, input_range)
    out.conv("conv1", _hwio(t["conv_first.weight"]), t["conv_first.bias"])
    for i in range(blocks):
        out.conv(f"conv{i + 2}", _hwio(t[f"backbone_convs.{i}.weight"]),
                 t[f"backbone_convs.{i}.bias"])
    out.conv(f"conv{blocks + 2}", _hwio(t["conv_last.weight"]), t["conv_last.bias"])
    n = 3 * scale * scale  # the dropped x3 padding channel is the 1x1 conv's last output
    clip = t["conv_clip.weight"]
    out.conv("conv_clip", _hwio(clip[:n]), t["conv_clip.bias"][:n], shuffle=True)
    return out.weights


def _etds(t: dict) -> Placed | None:
    keys = {"conv_first.weight", "conv_last.weight", "conv_clip.weight"}
    if not keys <= set(t):
        return None
    body = _indexed(t, r"backbone_convs\.(\d+)\.weight")
    if len(t) != 2 * (len(body) + 3) or sorted(body) != list(range(len(body))):
        return None
    width = t["conv_first.weight"].shape[0]
    name = _size_name("mai_sr.models.etds", blocks=len(body), channels=width)
    clip = t["conv_clip.weight"]
    scale = _scale_of(clip.shape[0] - (1 if clip.shape[0] % 3 else 0))
    if name is None or scale is None or clip.shape[2:] != (1, 1):
        return None
    return Placed(name, f"ETDS M{len(body)}C{width} x{scale}, inference form", (scale,),
                  lambda s, order, rng: _etds_weights(t, len(body), s, order, rng),
                  anchor=ETDS_ANCHOR)


def etds_equivalent_transformation(t: dict, blocks: int, unit: float = 1.0) -> dict:
    """The inference form (``ETDSForInference`` keys, OIHW) of an ETDS training-form state
    dict: the equivalent transformation of Chao et al., "Equivalent Transformation and Dual
    Stream Network Construction for Mobile Image Super-Resolution", CVPR 2023, Sec. 3.

    The two streams become one chain of convs on their concatenated channels [features F |
    residual R]: the first conv stacks both streams' kernels; each body conv holds the
    backbone kernel and the residual-to-backbone kernel on its feature rows (their biases
    summed, as the training form adds the two convs before the ReLU) and the residual kernel
    on its residual rows, which read no feature; the last conv is the sum of both streams'
    last convs (pixel shuffle is linear, so adding before it is adding after). The output is
    then clipped to [0, `unit`] by two ReLU convs, as the authors' inference form does: the
    last conv computes ReLU(unit - y) and a 1x1 conv -I with bias `unit` gives
    ReLU(unit - that) = clip(y, 0, unit); at x3 a constant channel pads the 27 outputs to 28
    (their multiple of 4). `unit` is the source's pixel maximum.
    """
    def pair(prefix):
        return np.asarray(t[f"{prefix}.weight"], np.float32), \
            np.asarray(t[f"{prefix}.bias"], np.float32)

    (kf, bf), (kr, br) = pair("conv_first"), pair("conv_residual_first")
    features, residual = kf.shape[0], kr.shape[0]
    merged = {"conv_first.weight": np.concatenate([kf, kr]),
              "conv_first.bias": np.concatenate([bf, br])}
    for i in range(blocks):
        (kb, bb), (kres, bres), (kadd, badd) = (pair(f"{stream}.{i}") for stream in ETDS_STREAMS)
        feature_rows = np.concatenate([kb, kadd], axis=1)
        residual_rows = np.concatenate([np.zeros((residual, features) + kres.shape[2:],
                                                 np.float32), kres], axis=1)
        merged[f"backbone_convs.{i}.weight"] = np.concatenate([feature_rows, residual_rows])
        merged[f"backbone_convs.{i}.bias"] = np.concatenate([bb + badd, bres])
    (kl, bl), (krl, brl) = pair("conv_last"), pair("conv_residual_last")
    outputs = kl.shape[0]
    padded = outputs + (-outputs) % 4
    last = np.zeros((padded, features + residual) + kl.shape[2:], np.float32)
    last[:outputs] = -np.concatenate([kl, krl], axis=1)
    last_bias = np.full(padded, unit, np.float32)
    last_bias[:outputs] = unit - (bl + brl)
    merged.update({"conv_last.weight": last, "conv_last.bias": last_bias,
                   "conv_clip.weight": -np.eye(padded, dtype=np.float32)[:, :, None, None],
                   "conv_clip.bias": np.full(padded, unit, np.float32)})
    return merged


def _etds_dual_stream(t: dict) -> Placed | None:
    """ETDS in the authors' training form (two streams, before the equivalent
    transformation): placed as the inference form it transforms to."""
    heads = ("conv_first", "conv_residual_first", "conv_last", "conv_residual_last")
    if not all(f"{k}.{p}" in t for k in heads for p in ("weight", "bias")):
        return None
    body = _indexed(t, r"backbone_convs\.(\d+)\.weight")
    blocks = len(body)
    if sorted(body) != list(range(blocks)) or len(t) != 2 * (3 * blocks + 4) or any(
            f"{stream}.{i}.{p}" not in t for stream in ETDS_STREAMS for i in range(blocks)
            for p in ("weight", "bias")):
        return None
    features = t["conv_first.weight"].shape[0]
    residual = t["conv_residual_first.weight"].shape[0]
    outputs = t["conv_last.weight"].shape[0]
    shapes = {"conv_first": (features, 3), "conv_residual_first": (residual, 3),
              "conv_last": (outputs, features), "conv_residual_last": (outputs, residual)}
    for i in range(blocks):
        shapes.update({f"backbone_convs.{i}": (features, features),
                       f"residual_convs.{i}": (residual, residual),
                       f"add_residual_convs.{i}": (features, residual)})
    if any(t[f"{k}.weight"].shape != (o, i, 3, 3) for k, (o, i) in shapes.items()):
        return None
    width = features + residual
    name = _size_name("mai_sr.models.etds", blocks=blocks, channels=width)
    scale = _scale_of(outputs)
    if name is None or scale is None:
        return None

    def convert(scale, order, input_range):
        merged = etds_equivalent_transformation(t, blocks, unit=float(input_range))
        return _etds_weights(merged, blocks, scale, order, input_range)

    placed = Placed(name, f"ETDS M{blocks}C{width} x{scale}, training (dual-stream) form",
                    (scale,), convert, anchor=ETDS_ANCHOR)
    placed.notes.append(f"merged by the equivalent transformation (Chao et al., CVPR 2023): "
                        f"{features} backbone + {residual} residual-stream channels in one "
                        "chain, output clipped by two ReLU convs")
    return placed


FAMILIES = (_espcn, _fsrcnn, _ecbsr, _ecbsr_training, _abpn, _etds, _etds_dual_stream)


def recognise(tensors: dict) -> Placed | None:
    """The family, size and scale of a state dict ({key: array}), or None."""
    for family in FAMILIES:
        placed = family(tensors)
        if placed is not None:
            return placed
    return None


def _conv_summary(tensors: dict, limit: int = 6) -> str:
    """'3->64 5x5, 64->32, ...' of the 4-D tensors (OIHW), in file order, runs collapsed."""
    parts, last, run = [], None, 0
    for value in tensors.values():
        if value.ndim != 4:
            continue
        o, i, kh, kw = value.shape
        text = f"{i}->{o}" + ("" if (kh, kw) == (3, 3) else f" {kh}x{kw}")
        if text == last:
            run += 1
            continue
        if last is not None:
            parts.append(last + (f" x{run}" if run > 1 else ""))
        last, run = text, 1
    if last is not None:
        parts.append(last + (f" x{run}" if run > 1 else ""))
    more = f", ... ({len(parts) - limit} more runs)" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def describe(path, tensors: dict) -> str:
    """One line on a state dict no family places: what it holds, and what to do."""
    kernels = [k for k, v in tensors.items() if v.ndim == 4]
    biases = {k[: -len("weight")] + "bias" for k in kernels if k.endswith("weight")}
    convs = len(kernels)
    extra = sum(1 for k in tensors if k not in biases and tensors[k].ndim != 4)
    found = f"found {convs} conv{'s' if convs != 1 else ''}"
    if convs:
        found += f" ({_conv_summary(tensors)})"
    if extra:
        found += f" and {extra} other tensor{'s' if extra != 1 else ''}"
    return (f"{path}: not a known architecture: {found}; the known ones are ESPCN, FSRCNN, "
            "ECBSR, ABPN and ETDS at their published sizes (mai-sr's registry); give --model "
            "to fit a plain conv chain to another graph")
