"""Import published weights into a mai-sr deploy graph, behind a sanity gate."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


from mai_sr import fileio
from mai_sr.errors import MaiSrError, first_line
from mai_sr.importer.matcher import PIXEL_MAX, Fitted, fit, put_in_chain_order, source_scale
from mai_sr.importer.source import CHANNEL_ORDERS, SourceNet
from mai_sr.importer import zoo
from mai_sr.registry import SCALES, check_scale, computes_from, published_layout

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


TORCH_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")


def _is_torch(path: Path) -> bool:
    return path.is_file() and "".join(path.suffixes[-1:]).lower() in TORCH_SUFFIXES


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

        try:
            return read_tflite(path)
        except (ValueError, IndexError, KeyError, TypeError) as exc:  # a crafted file
            first = first_line(exc)
            raise MaiSrError(f"{path}: malformed TFLite model ({first})") from None
    if suffix in (".h5", ".keras", ".hdf5"):
        from mai_sr.importer.keras_source import read_keras

        return read_keras(path)
    if suffix in TORCH_SUFFIXES:
        from mai_sr.importer.torch_source import read_torch

        return read_torch(path)
    raise MaiSrError(f"{path}: unknown source type {suffix or '(no suffix)'}; give a .pth/.pt, "
                     ".h5/.keras, .tflite or a SavedModel folder")


def _gate_pairs(data: str, scale: int, n: int = GATE_IMAGES, crop: int = GATE_CROP) -> list:
    """(LR uint8 HxWx3, HR uint8) centre crops of the first `n` images of `data`."""
    from mai_sr.data import iter_pairs

    pairs = []
    for pair in iter_pairs(data, scale=scale):
        lr = pair.lr
        h, w = min(crop, lr.shape[0]), min(crop, lr.shape[1])
        y, x = (lr.shape[0] - h) // 2, (lr.shape[1] - w) // 2
        pairs.append((lr[y:y + h, x:x + w],
                      pair.hr[scale * y:scale * (y + h), scale * x:scale * (x + w)]))
        if len(pairs) == n:
            break
    if not pairs:
        raise MaiSrError(f"sanity gate: no images in {data}")
    return pairs


def _set_weights(model, fitted: Fitted) -> None:
    if isinstance(fitted.weights, dict):  # a recognised family's weights, by layer name
        for name, weights in fitted.weights.items():
            model.get_layer(name).set_weights(weights)
        return
    for layer, (kernel, bias) in zip(_body_convs(model), fitted.weights):
        layer.set_weights([kernel, bias])


def _body_convs(model) -> list:
    from mai_sr._tf import keras
    from mai_sr.models.blocks import NearestConvAnchor

    return [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)
            and not isinstance(layer, NearestConvAnchor)]


def _score(model, pairs) -> tuple[float, float]:
    """(mean RGB PSNR of the model, of nearest-neighbour upsampling) over `pairs`, 3 pixels
    cropped off each border, through the one scoring loop (:func:`mai_sr.scoring.score_pairs`)."""
    from mai_sr.scoring import Scoring, mean_psnr, score_pairs

    lr, hr = pairs[0]
    rows = score_pairs(model, pairs, Scoring(hr.shape[0] // lr.shape[0], crop=3, ssim=False,
                                             baseline="nearest"))
    return mean_psnr(rows), mean_psnr(rows, baseline=True)


def _candidates(source_order: str, channel_order: str, input_range: str,
                ranges=(1.0, PIXEL_MAX)) -> list:
    orders = [source_order] if channel_order == "auto" else [channel_order]
    ranges = list(ranges) if input_range == "auto" else [float(input_range)]
    return [(o, r) for o in orders for r in ranges]


def _check_options(channel_order, input_range, out, scale, force) -> None:
    if channel_order not in CHANNEL_ORDER_CHOICES:
        raise MaiSrError(f"--channel-order: choose from {', '.join(CHANNEL_ORDER_CHOICES)}")
    if str(input_range) not in INPUT_RANGE_CHOICES:
        raise MaiSrError(f"--input-range: choose from {', '.join(INPUT_RANGE_CHOICES)}")
    if scale is not None:
        check_scale(scale)
    if out is None:
        return
    if not str(out).endswith(".weights.h5"):
        raise MaiSrError(f"{out}: the output name must end in .weights.h5")
    if Path(out).is_dir():
        raise MaiSrError(f"{out}: is a folder, not a file name")
    existing = [p for p in (Path(out), Path(f"{out}.json")) if p.exists()]
    if existing and not force:
        raise MaiSrError(f"{existing[0]} exists; give --force to replace it (and its record)")


def import_weights(source, model: str | None = None, out=None, *,
                   channel_order: str = "auto", input_range: str = "auto",
                   gate_data: str = "builtin", scale: int | None = None,
                   force: bool = True) -> ImportResult:
    """Import `source` into a mai-sr deploy graph and write `out`.

    `model` None: a PyTorch state dict of a published family (ESPCN, FSRCNN, ECBSR, ABPN,
    ETDS, and the ET forms of ABPN and ECBSR) is placed by its keys and shapes
    (:mod:`mai_sr.importer.zoo`); any other file needs `model`, the registry name of the
    deploy graph whose plain convs it fits (:mod:`mai_sr.importer.matcher`). A `model`
    that names the recognised one also takes the recognised path, and so does one that is a
    layout option of it (e.g. ``ecbsr_m4c32_relu_pair``) or a larger network it starts
    (``scsrn`` from ABPN-M4C28, :data:`mai_sr.registry.WARM_STARTS`), rewritten from it
    after the gate and checked to compute the same (:func:`mai_sr.models.relayout`). `channel_order`:
    "auto" (the source framework's: CRD for PyTorch, DCR for TF files), "dcr" or "crd".
    `input_range`: "auto" (the range, [0, 1] or [0, 255], whose model scores higher on
    `gate_data`), "1" or "255". `scale`: for a source whose weights do not say it (FSRCNN's
    stride), else checked against them. The FP32 model must beat its own nearest-neighbour
    anchor on `gate_data` (the sanity gate), else MaiSrError names the likely cause and
    nothing is written. `out=None` checks without writing; else the weights and their JSON
    record (``<out>.json``: source, conventions, gate, and the weights' sha256) are written
    as one set, replacing existing files only with `force`.
    """
    _check_options(channel_order, input_range, out, scale, force)
    path = Path(source)
    placed = tensors = nesting = None
    if _is_torch(path):
        from mai_sr.importer.torch_checkpoint import read_state_dict

        tensors, nesting = read_state_dict(path)
        placed = zoo.recognise(tensors)
        if placed is None and model is None:
            raise MaiSrError(zoo.describe(path, tensors))
    elif model is None:
        raise MaiSrError(f"{source}: give --model: mai-sr recognises architectures from "
                         "PyTorch state dicts; for other formats name the deploy graph")
    # a layout option of the recognised network, or a larger one it starts: imported as
    # published, then rewritten
    layout_of = None if model is None else published_layout(model)
    relaid = placed is not None and model is not None and placed.model in computes_from(model)
    if placed is not None and model is not None and computes_from(model) and not relaid:
        needs = (f"is a layout of {layout_of}" if layout_of
                 else f"starts only from {', '.join(computes_from(model))}")
        raise MaiSrError(f"{source} holds {placed.architecture} (mai-sr {placed.model}); "
                         f"--model {model} {needs}")
    recognised = placed is not None and (model in (None, placed.model) or relaid)
    if recognised:
        deploy, fitted, gate = _import_recognised(placed, source, channel_order,
                                                  str(input_range), gate_data, scale)
        src_format, notes = "pytorch", list(placed.notes)
        if nesting:
            notes.append(f"state dict under {nesting!r}")
        if relaid:
            from mai_sr.models import relayout

            check = [lr for lr, _ in _gate_pairs(gate_data, fitted.scale)]
            deploy, worst = relayout(deploy, model, fitted.scale, check, source=placed.model)
            how = ("laid out as" if layout_of else "embedded in")
            notes.append(f"{how} {model}, computing {placed.model}'s network (largest output "
                         f"difference on the gate images {worst:.1e} grey levels)")
    else:
        from mai_sr.importer.torch_source import source_from_state_dict

        src = (source_from_state_dict(path, tensors, nesting) if tensors is not None
               else read_source(source))
        deploy, fitted, gate = _import_chain(src, model, channel_order, str(input_range),
                                             gate_data, scale)
        src_format, notes = src.format, src.notes
    name = placed.model if recognised and not relaid else model
    result = ImportResult(path=None if out is None else Path(out), model=name,
                          source=str(source), format=src_format, scale=fitted.scale,
                          conventions=fitted.conventions, gate=gate, notes=notes)
    if out is not None:
        _write_weights_and_record(deploy, out, result, source)
    return result


def _gate_record(gate_data, pairs, best_psnr, anchor_psnr) -> dict:
    return {"data": gate_data, "images": len(pairs), "psnr": round(best_psnr, 3),
            "anchor_psnr": round(anchor_psnr, 3), "margin": round(best_psnr - anchor_psnr, 3)}


def _build(model: str, scale: int):
    from mai_sr.models import create_model

    return create_model(model, scale=scale, deploy=True)


def _import_chain(src: SourceNet, model: str, channel_order: str, input_range: str,
                  gate_data: str, scale: int | None):
    """(deploy model, fitted, gate) of a plain conv chain fitted to `model`."""
    put_in_chain_order(src)
    # The source says its scale (last conv's 3s^2 outputs); mai-sr builds the model at it.
    source_s = source_scale(src)
    try:
        check_scale(source_s)
    except MaiSrError:
        raise MaiSrError(f"{src.path} is an x{source_s} model; mai-sr builds x"
                         f"{', x'.join(map(str, SCALES))}") from None
    if scale is not None and scale != source_s:
        raise MaiSrError(f"--scale {scale}: {src.path} is an x{source_s} model")
    deploy = _build(model, source_s)
    targets = [tuple(layer.kernel.shape) for layer in _body_convs(deploy)]
    pairs = _gate_pairs(gate_data, source_s)
    scored = []
    for order, rng in _candidates(src.channel_order, channel_order, input_range):
        fitted = fit(src, model, targets, channel_order=order, input_range=rng)
        _set_weights(deploy, fitted)
        scored.append((*_score(deploy, pairs), fitted))
    best_psnr, anchor_psnr, fitted = _pick(scored)
    if not best_psnr > anchor_psnr:
        def refit(order, rng):
            return fit(src, model, targets, channel_order=order, input_range=rng)
        cause = _diagnose(refit, deploy, pairs, fitted, forced_range=input_range != "auto")
        raise _gate_error(best_psnr, anchor_psnr, gate_data, cause)
    _set_weights(deploy, fitted)
    return deploy, fitted, _gate_record(gate_data, pairs, best_psnr, anchor_psnr)


def _pick(scored: list) -> tuple:
    """The best (psnr, anchor psnr, fitted) by margin over the anchor; the input-range
    convention line says what the other range measured."""
    best = max(scored, key=lambda s: s[0] - s[1])
    same_scale = [s for s in scored if s[2].scale == best[2].scale and s is not best
                  and s[2].input_range != best[2].input_range]
    if same_scale:
        other = max(same_scale, key=lambda s: s[0])
        best[2].conventions["input range"] += (
            f"; measured {best[0]:.2f} dB against {other[0]:.2f} dB with the other range")
    return best


def _gate_error(best_psnr, anchor_psnr, gate_data, cause) -> MaiSrError:
    return MaiSrError(f"sanity gate: the imported FP32 model scores {best_psnr:.2f} dB, below "
                      f"its own nearest-neighbour anchor ({anchor_psnr:.2f} dB) on "
                      f"{gate_data}; likely cause: {cause}; nothing written")


def _import_recognised(placed, source, channel_order: str, input_range: str, gate_data: str,
                       scale: int | None):
    """(deploy model, fitted, gate) of a checkpoint :func:`zoo.recognise` placed."""
    scales = placed.scales
    if scale is not None:
        if scale not in scales:
            raise MaiSrError(f"--scale {scale}: {source} holds an x{scales[0]} "
                             f"{placed.architecture.split(' x')[0]}")
        scales = (scale,)
    ranges = (1.0, PIXEL_MAX)
    scored, built = [], {}
    for s in scales:
        deploy = built[s] = _build(placed.model, s)
        pairs = _gate_pairs(gate_data, s)
        for order, rng in _candidates("crd", channel_order, input_range, ranges):
            fitted = _recognised_fit(placed, s, order, rng, measured=len(scales) > 1)
            _set_weights(deploy, fitted)
            scored.append((*_score(deploy, pairs), fitted, pairs))
    if len(scales) > 1:
        by_scale = {}
        for psnr_, anchor, fitted, _ in scored:
            margin = psnr_ - anchor
            by_scale[fitted.scale] = max(by_scale.get(fitted.scale, margin), margin)
        texts = ", ".join(f"x{s} {m:+.2f} dB" for s, m in sorted(by_scale.items()))
        for _, _, fitted, _ in scored:
            fitted.conventions["scale"] += f" (over the anchor: {texts})"
    best = max(scored, key=lambda item: item[0] - item[1])
    best_psnr, anchor_psnr, fitted, pairs = best
    _pick([item[:3] for item in scored])
    deploy = built[fitted.scale]
    if not best_psnr > anchor_psnr:
        def refit(order, rng):
            return _recognised_fit(placed, fitted.scale, order, rng, measured=False)
        cause = _diagnose(refit, deploy, pairs, fitted, forced_range=input_range != "auto")
        raise _gate_error(best_psnr, anchor_psnr, gate_data, cause)
    _set_weights(deploy, fitted)
    return deploy, fitted, _gate_record(gate_data, pairs, best_psnr, anchor_psnr)


def _recognised_fit(placed, scale: int, order: str, input_range: float,
                    measured: bool) -> Fitted:
    """The Fitted of a recognised checkpoint at `scale`, with its conventions in words."""
    weights = placed.convert(scale, order, input_range)
    n = 3 * scale * scale
    if placed.shuffle:
        channel = ("PixelShuffle CRD -> depth-to-space DCR (the last conv's "
                   f"{n} output channels and bias reordered)") if order == "crd" \
            else "depth-to-space DCR (as is)"
    else:
        channel = "no pixel shuffle (the transposed conv upsamples)"
    if input_range == PIXEL_MAX:
        rng = "[0, 255] (as is)"
    elif placed.homogeneous:
        rng = "[0, 1] -> [0, 255] (every bias x255)"
    else:
        rng = "[0, 1] -> [0, 255] (the first kernel / 255: tanh is not homogeneous)"
    scale_text = (f"x{scale} (the transposed conv's stride: not in the weights, measured)"
                  if measured or not placed.shuffle else
                  f"x{scale} (last conv's {n} = 3*{scale}^2 output channels)")
    conventions = {
        "architecture": f"{placed.architecture} = mai-sr {placed.model} "
                        "(recognised from the state dict's keys and shapes)",
        "layout": "OIHW -> HWIO (transposed)" + (
            "; the transposed conv's (in, out, 9, 9) -> (h, w, out, in), zero-padded to "
            f"{8 + scale}x{8 + scale} to align as PyTorch does" if not placed.shuffle else ""),
        "channel order": channel,
        "input range": rng,
        "anchor": placed.anchor,
        "scale": scale_text,
        "layers": f"{len(weights)} layers set by name: {', '.join(weights)}",
    }
    return Fitted(weights, conventions, scale, order, input_range)


def _write_weights_and_record(deploy, out, result: ImportResult, source) -> None:
    """The weights file and its JSON record, as one set (:func:`fileio.write_files`): the
    record holds the weights' sha256, which readers check
    (:func:`mai_sr.importer.weights_file.weights_file_model`)."""
    import tempfile

    out = Path(out)
    staging = "/dev/shm" if Path("/dev/shm").is_dir() else None
    try:
        with tempfile.TemporaryDirectory(dir=staging, prefix="mai-sr-import-") as folder:
            staged = Path(folder) / out.name
            deploy.save_weights(str(staged))
            data = staged.read_bytes()
    except Exception as exc:  # h5py raises many types on an OS failure
        first = first_line(exc)
        raise MaiSrError(f"{out}: cannot stage the weights in {staging or tempfile.gettempdir()}"
                         f" ({first})") from None
    record = {**result.to_dict(), "weights_file": out.name,
              "weights_sha256": hashlib.sha256(data).hexdigest(), "source_sha256": _sha256(source)}
    fileio.remove_stale_temps(out.parent)  # what killed imports left; never renamed into place
    fileio.write_files({out: data, Path(f"{out}.json"): fileio.json_bytes(record)})


def _sha256(path) -> str | None:
    path = Path(path)
    return fileio.sha256_file(path) if path.is_file() else None


def _diagnose(refit, deploy, pairs, fitted, forced_range: bool) -> str:
    """Which other convention would have passed the gate: the likely cause, in words.
    `refit(order, input_range)` gives the Fitted of another convention."""
    other_order = "crd" if fitted.channel_order == "dcr" else "dcr"
    other_range = PIXEL_MAX / fitted.input_range
    best = None
    for order, rng in ((other_order, fitted.input_range), (other_order, other_range),
                       (fitted.channel_order, other_range)):
        try:
            trial = refit(order, rng)
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
