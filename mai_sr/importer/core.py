"""Import published weights into a mai-sr deploy graph, behind a sanity gate."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mai_sr import fileio
from mai_sr.errors import MaiSrError
from mai_sr.importer.matcher import PIXEL_MAX, Fitted, fit, put_in_chain_order, source_scale
from mai_sr.importer.source import CHANNEL_ORDERS, SourceNet
from mai_sr.registry import SCALES, check_scale

CHANNEL_ORDER_CHOICES = ("auto", *CHANNEL_ORDERS)
INPUT_RANGE_CHOICES = ("auto", "1", "255")
GATE_CROP = 128   # LR side of the gate's centre crops (enough texture, fast on CPU)
GATE_IMAGES = 6   # builtin photos the gate scores


@dataclass
class ImportResult:
    """What an import wrote and why it is trusted."""

    path: Path | None
    model: str
    source: str
    format: str
    scale: int
    conventions: dict
    gate: dict           # {"data", "psnr", "anchor_psnr", "margin"}
    notes: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"weights": None if self.path is None else str(self.path), "model": self.model,
                "source": self.source, "format": self.format, "scale": self.scale,
                "conventions": self.conventions, "sanity_gate": self.gate,
                "notes": self.notes}

    def summary(self) -> str:
        lines = [f"{self.source} ({self.format}) -> {self.model} deploy weights"]
        lines += [f"  {key + ':':<15}{text}" for key, text in self.conventions.items()]
        lines += [f"  note:          {n}" for n in self.notes]
        g = self.gate
        lines.append(f"  sanity gate:   FP32 {g['psnr']:.2f} dB vs its nearest-neighbour anchor "
                     f"{g['anchor_psnr']:.2f} dB on {g['data']} (RGB, +{g['margin']:.2f} dB): pass")
        if self.path is not None:
            lines.append(f"  wrote {self.path}")
        return "\n".join(lines)


def read_source(path) -> SourceNet:
    """Read any supported source by what it is: a SavedModel folder, a ``.tflite``, a
    Keras ``.h5``/``.keras`` or a PyTorch ``.pth``/``.pt`` zip."""
    path = Path(path)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise MaiSrError(f"{path}: a folder but not a SavedModel (no saved_model.pb)")
        from mai_sr.importer.keras_source import read_savedmodel

        return read_savedmodel(path)
    if not path.is_file():
        raise MaiSrError(f"{path}: not found")
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix == ".tflite":
        from mai_sr.importer.tflite_weights import read_tflite

        return read_tflite(path)
    if suffix in (".h5", ".keras", ".hdf5"):
        from mai_sr.importer.keras_source import read_keras

        return read_keras(path)
    if suffix in (".pth", ".pt", ".ckpt", ".bin"):
        from mai_sr.importer.torch_source import read_torch

        return read_torch(path)
    raise MaiSrError(f"{path}: unknown source type {suffix or '(no suffix)'}; give a .pth/.pt, "
                     ".h5/.keras, .tflite or a SavedModel folder")


def _gate_pairs(data: str, scale: int, n: int = GATE_IMAGES, crop: int = GATE_CROP) -> list:
    """(LR float32 (1, h, w, 3), HR uint8) centre crops of the first `n` images of `data`."""
    from mai_sr.data import iter_pairs

    pairs = []
    for pair in iter_pairs(data, scale=scale):
        lr = pair.lr
        h, w = min(crop, lr.shape[0]), min(crop, lr.shape[1])
        y, x = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
        pairs.append((lr[None, y:y + h, x:x + w].astype(np.float32),
                      pair.hr[scale * y:scale * (y + h), scale * x:scale * (x + w)]))
        if len(pairs) == n:
            break
    if not pairs:
        raise MaiSrError(f"sanity gate: no images in {data}")
    return pairs


def _set_weights(model, fitted: Fitted) -> None:
    for layer, (kernel, bias) in zip(_body_convs(model), fitted.weights):
        layer.set_weights([kernel, bias])


def _body_convs(model) -> list:
    from mai_sr._tf import keras
    from mai_sr.models.blocks import NearestConvAnchor

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
            and not isinstance(layer, NearestConvAnchor)]


def _score(model, pairs) -> tuple[float, float]:
    """(mean RGB PSNR of the model, of nearest-neighbour upsampling) over `pairs`."""
    from mai_sr.metrics import psnr

    ours, anchor = [], []
    for lr, hr in pairs:
        sr = np.clip(np.rint(np.asarray(model(lr, training=False))[0]), 0, PIXEL_MAX)
        scale = hr.shape[0] // lr.shape[1]
        nearest = np.repeat(np.repeat(lr[0], scale, axis=0), scale, axis=1)
        ours.append(psnr(sr.astype(np.uint8), hr, crop=3))
        anchor.append(psnr(np.rint(nearest).astype(np.uint8), hr, crop=3))
    return float(np.mean(ours)), float(np.mean(anchor))


def _candidates(source: SourceNet, channel_order: str, input_range: str) -> list:
    orders = [source.channel_order] if channel_order == "auto" else [channel_order]
    ranges = [1.0, PIXEL_MAX] if input_range == "auto" else [float(input_range)]
    return [(o, r) for o in orders for r in ranges]


def import_weights(source, model: str, out=None, *, channel_order: str = "auto",
                   input_range: str = "auto", gate_data: str = "builtin") -> ImportResult:
    """Import `source` into ``create_model(model, deploy=True)`` and write `out`.

    `channel_order`: "auto" (the source framework's: CRD for PyTorch, DCR for TF files),
    "dcr" or "crd". `input_range`: "auto" (the range, [0, 1] or [0, 255], whose model scores
    higher on `gate_data`), "1" or "255". The FP32 model must beat its own nearest-neighbour
    anchor on `gate_data` (the sanity gate), else MaiSrError names the likely cause and
    nothing is written. `out=None` checks without writing. A JSON record of the source,
    conventions and gate is written beside `out` (``<out>.json``).
    """
    from mai_sr.models import create_model

    if channel_order not in CHANNEL_ORDER_CHOICES:
        raise MaiSrError(f"--channel-order: choose from {', '.join(CHANNEL_ORDER_CHOICES)}")
    if str(input_range) not in INPUT_RANGE_CHOICES:
        raise MaiSrError(f"--input-range: choose from {', '.join(INPUT_RANGE_CHOICES)}")
    if out is not None and not str(out).endswith(".weights.h5"):
        raise MaiSrError(f"{out}: the output name must end in .weights.h5")
    src = read_source(source)
    put_in_chain_order(src)
    # The source says its scale (last conv's 3s^2 outputs); mai-sr builds the model at it.
    scale = source_scale(src)
    try:
        check_scale(scale)
    except MaiSrError:
        raise MaiSrError(f"{src.path} is an x{scale} model; mai-sr builds x"
                         f"{', x'.join(map(str, SCALES))}") from None
    deploy = create_model(model, scale=scale, deploy=True)
    targets = [tuple(layer.kernel.shape) for layer in _body_convs(deploy)]
    pairs = _gate_pairs(gate_data, scale)
    scored = []
    for order, rng in _candidates(src, channel_order, str(input_range)):
        fitted = fit(src, model, targets, channel_order=order, input_range=rng)
        _set_weights(deploy, fitted)
        scored.append((*_score(deploy, pairs), fitted))
    best_psnr, anchor_psnr, fitted = max(scored, key=lambda s: s[0])
    if len(scored) > 1:
        other = min(scored, key=lambda s: s[0])
        fitted.conventions["input range"] += (
            f"; measured {best_psnr:.2f} dB against {other[0]:.2f} dB with the other range")
    if not best_psnr > anchor_psnr:
        cause = _diagnose(src, model, targets, deploy, pairs, fitted,
                          forced_range=str(input_range) != "auto")
        raise MaiSrError(f"sanity gate: the imported FP32 model scores {best_psnr:.2f} dB, below "
                         f"its own nearest-neighbour anchor ({anchor_psnr:.2f} dB) on "
                         f"{gate_data}; likely cause: {cause}; nothing written")
    _set_weights(deploy, fitted)
    gate = {"data": gate_data, "images": len(pairs), "psnr": round(best_psnr, 3),
            "anchor_psnr": round(anchor_psnr, 3), "margin": round(best_psnr - anchor_psnr, 3)}
    result = ImportResult(path=None if out is None else Path(out), model=model,
                          source=str(source), format=src.format, scale=fitted.scale,
                          conventions=fitted.conventions, gate=gate, notes=src.notes)
    if out is not None:
        with fileio.atomic_path(out, suffix=".weights.h5") as tmp:
            deploy.save_weights(str(tmp))
        record = {**result.to_dict(), "source_sha256": _sha256(source)}
        fileio.write_json(f"{out}.json", record)
    return result


def _sha256(path) -> str | None:
    path = Path(path)
    return fileio.sha256_file(path) if path.is_file() else None


def _diagnose(src, model, targets, deploy, pairs, fitted, forced_range: bool) -> str:
    """Which other convention would have passed the gate: the likely cause, in words."""
    other_order = "crd" if fitted.channel_order == "dcr" else "dcr"
    other_range = PIXEL_MAX / fitted.input_range
    best = None
    for order, rng in ((other_order, fitted.input_range), (other_order, other_range),
                       (fitted.channel_order, other_range)):
        try:
            trial = fit(src, model, targets, channel_order=order, input_range=rng)
        except MaiSrError:
            continue
        _set_weights(deploy, trial)
        psnr, anchor = _score(deploy, pairs)
        if psnr > anchor and (best is None or psnr > best[0]):
            best = (psnr, order, rng)
    if best is not None:
        psnr, order, rng = best
        causes, flags = [], []
        if order != fitted.channel_order:
            causes.append("channel-order mismatch (PixelShuffle CRD against depth-to-space DCR)")
            flags.append(f"--channel-order {order}")
        if rng != fitted.input_range and forced_range:  # (auto measures both ranges)
            causes.append(f"input range ([0, {int(rng)}], not [0, {int(fitted.input_range)}])")
            flags.append(f"--input-range {int(rng)}")
        return f"{' and '.join(causes)}: with {' '.join(flags)} it scores {psnr:.2f} dB"
    return ("no channel order or input range fixes it: the weights are untrained, of another "
            "scale or degradation, or the source's layers are in another order")
