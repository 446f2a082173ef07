"""The DIV2K-trained ETDS zoo end to end: every model x scale imported, quantized, linted and
timed, in one table.

Models: the 33 main checkpoints of ``../shared/artifacts/etds_zoo/pretrained`` (11 models x
2, 3, 4), from J. Chao, Z. Zhou, H. Gao, J. Gong, Z. Yang, Z. Zeng, L. Dehbi, "Equivalent
Transformation and Dual Stream Network Construction for Mobile Image Super-Resolution",
CVPR 2023 (figures of its Table 2 from ``table2.csv``). For each checkpoint:

* ``info``: parameters and MACs of the deploy graph at a 360x640 LR input
  (:func:`mai_sr.profile.profile_model`) beside the paper's;
* ``fp32``: the FP32 Y PSNR of the imported Keras model against the paper's, read from
  ``benchmarks/results/zoo_import.json`` (``benchmarks/zoo_import.py``), and the FP32 TFLite
  file's RGB and Y PSNR (the reference of the INT8 drops, same scorer as the INT8 files);
* ``ptq``: ``mai-sr export`` of the imported weights, INT8, calibrated on the builtin photos
  (the default), scored on Set5, Set14 and B100, RGB and Y (HR cropped to a multiple of the
  scale, border = scale);
* ``qat`` (x3 by default): the shipped INT8 file of the checkpoint's weight where it ships
  (``mai_sr/pretrained``, x3: made by its recipe file, an import stage and then QAT with the
  same recipe on T91 + BSD200 with a tenth held out), scored like the PTQ file; else
  ``mai-sr train --qat --from W --teacher W`` with the QAT recipe for imported weights
  (``benchmarks/qat_recipe.py``: teacher = the imported FP32 model, distillation weight 0.5,
  1000 steps, peak LR 1e-4, L2, batch 16, LR patch 48, seed 0) on the training part of its
  split of T91 + BSD200 (every 10th image held out for validation), then exported and scored
  as PTQ;
* ``deploy``: lint verdicts for the VS680 and NNAPI (``mai-sr lint --target``) on the
  360x640 INT8 file and for the Arm Ethos-U85 (Vela) on its ``export --target ethos-u85``
  rewrite, the SyNAP simulator's VS680 estimate and Vela's U85 estimate;
* ``floor`` (with QAT; ETDS, ESPCN, FSRCNN and ECBSR): a lower bound on any per-tensor INT8
  drop of the published computation, from the tensors that set it alone: ETDS's image path
  (:func:`stage_floor`), ESPCN's tanh layers (:func:`stage_floor_espcn`), the PReLU models'
  conv and PReLU outputs on ideal per-channel ranges (:func:`stage_floor_prelu`).

Every model is reported, not the best. Each stage's result is stored in
``benchmarks/results/zoo.json`` as soon as it is measured; a rerun skips what is there
(QAT runs are minutes each), ``--redo ptq,qat`` measures those stages again (after a change
to the quantization code). Files go under ``--work`` (default ``benchmarks/out/zoo``).

    nice -n 10 python benchmarks/zoo.py [--only ETDS_M7C48_x3,...] [--ptq-scales 2,3,4]
        [--qat-scales 3] [--redo STAGES] [--write-readme]

Writes ``benchmarks/results/zoo.json``, ``benchmarks/results/zoo.png`` (PSNR vs VS680 time,
x3) and, with ``--write-readme``, the tables in docs/import.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

BENCHMARKS = str(Path(__file__).resolve().parent)
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
from _publish import RESULTS, ROOT, add_write_readme, measured_under, publish  # noqa: E402

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SHARED = ROOT.parent / "shared"
ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS", SHARED / "artifacts"))
DATA = Path(os.environ.get("MAI_SR_DATA", SHARED / "data"))
ZOO = ARTIFACTS / "etds_zoo"
IMPORT_RESULTS = RESULTS / "zoo_import.json"
OUT = RESULTS / "zoo.json"
PLOT = RESULTS / "zoo.png"
SETS = ("Set5", "Set14", "B100")
SHAPE = (360, 640)  # the paper's timing input at every scale (its MACs match it)
TARGETS = ("vs680", "nnapi", "ethos-u85")
# The QAT recipe for imported weights (benchmarks/qat_recipe.py, chosen on its held-out
# split of the training data; never on a test set).
RECIPE = {"weight": 0.5, "steps": 1000, "lr": 1e-4}
STAGES = ("info", "fp32", "ptq", "qat", "deploy", "floor")
# Layout options measured beside the published layout (x3): checkpoint stem -> (registry
# name, label, the row's key suffix). FSRCNN's and ECBSR's PReLU as two ReLUs
# (mai_sr.models.ecbsr): the same network, one int8 tensor per layer instead of two and its
# slopes in per-channel kernels. ETDS's image path carried twice (mai_sr.models.etds): the
# same network, the copies dithered by half an int8 step; ETDS-L's also four times (blue
# three times), the copies a quarter (blue a third) of a step apart. FSRCNN's transposed conv
# also as a conv and depth-to-space (mai_sr.models.fsrcnn): an int8 weight grid per output
# phase and colour instead of one for the whole kernel, and no TRANSPOSE_CONV.
PAIR = ("PReLU as two ReLUs", "relu_pair")
PAIR_SUBPIXEL = ("PReLU as two ReLUs, transposed conv as conv + depth-to-space",
                 "relu_pair_subpixel")
# ... and every hidden ReLU tensor written twice, the copies dithered by half an int8 step
PAIR_SUBPIXEL_COPIES = (PAIR_SUBPIXEL[0] + ", every hidden tensor twice",
                        "relu_pair_subpixel_copies")
# ESPCN's tanh layers in groups of like range (mai_sr.models.espcn), each group's TANH on its
# own input range.
TANH_GROUPS = ("tanh layers in groups of like range", "tanh_groups")
TANH_COPIES = (TANH_GROUPS[0] + ", each group twice", "tanh_copies")
IMAGE_PAIR = ("image path twice", "image_pair")
IMAGE_QUAD = ("image path four times", "image_quad")
LAYOUTS = {"ESPCN_x3": (("espcn_tanh_groups", *TANH_GROUPS),
                        ("espcn_tanh_copies", *TANH_COPIES)),
           "FSRCNN_x3": (("fsrcnn_relu_pair", *PAIR),
                         ("fsrcnn_relu_pair_subpixel", *PAIR_SUBPIXEL),
                         ("fsrcnn_relu_pair_subpixel_copies", *PAIR_SUBPIXEL_COPIES)),
           "ECBSR_M4C16_x3": (("ecbsr_m4c16_relu_pair", *PAIR),),
           "ECBSR_M4C32_x3": (("ecbsr_m4c32_relu_pair", *PAIR),),
           "ECBSR_M6C40_x3": (("ecbsr_m6c40_relu_pair", *PAIR),),
           # ETDS's at every scale: PTQ at x2 and x4 is what `fetch` + `import` + `export`
           # give a user, and the published layout loses most there
           **{f"ETDS_{size}_x{scale}": layouts
              for size, layouts in (("M5C16", (("etds_image_pair", *IMAGE_PAIR),)),
                                    ("M4C32", (("etds_s_image_pair", *IMAGE_PAIR),)),
                                    ("M6C32", (("etds_m_image_pair", *IMAGE_PAIR),)),
                                    ("M7C48", (("etds_l_image_pair", *IMAGE_PAIR),
                                               ("etds_l_image_quad", *IMAGE_QUAD))))
              for scale in (2, 3, 4)}}


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def checkpoints() -> list[dict]:
    """The 33 main checkpoints with their paper row, x3 first (the INT8 columns), each
    checkpoint that has a layout option (:data:`LAYOUTS`) followed by a row of it: the same
    checkpoint and paper figures, imported with ``--model`` into that layout."""
    with open(ZOO / "table2.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["checkpoint"]]
    found = []
    for row in sorted(rows, key=lambda r: (int(r["scale"]) != 3, int(r["scale"]))):
        found.append(row)
        found += [{**row, "model": f"{row['model']}, {label}", "layout": name, "suffix": suffix}
                  for name, label, suffix in LAYOUTS.get(Path(row["checkpoint"]).stem, ())]
    return found


def stem(row: dict) -> str:
    """The key of a row: its checkpoint's stem, and its layout option's suffix if any."""
    return Path(row["checkpoint"]).stem + (f"_{row['suffix']}" if row.get("suffix") else "")


def mai_sr(*args: str) -> None:
    """``python -m mai_sr ARGS`` from the checkout; SystemExit with its stderr on failure."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "mai_sr", *args], cwd=ROOT, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"mai-sr {' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")


def import_checkpoint(row: dict, work: Path) -> tuple[Path, str]:
    """(imported deploy weights, registry name), importing once without --model."""
    out = work / "weights" / f"{stem(row)}.weights.h5"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        layout = ["--model", row["layout"]] if row.get("layout") else []
        mai_sr("import", str(ZOO / "pretrained" / row["checkpoint"]), "--scale", row["scale"],
               *layout, "--out", str(out))
    return out, json.loads(Path(f"{out}.json").read_text())["model"]


def score(path: Path, scale: int, sets=SETS) -> dict:
    """Mean PSNR, RGB and Y (HR cropped to a multiple of the scale, border = scale), of a
    dynamic-shape TFLite file on each set; one inference per image for both."""
    import numpy as np

    from mai_sr.data import iter_pairs
    from mai_sr.metrics import psnr
    from mai_sr.tflite.runtime import TFLiteSR

    model = TFLiteSR(path)
    found = {}
    for name in sets:
        rgb, y = [], []
        for pair in iter_pairs(DATA / name if name in SETS else name, scale=scale):
            sr = model.upscale(pair.lr)
            rgb.append(psnr(sr, pair.hr, crop=scale))
            y.append(psnr(sr, pair.hr, crop=scale, y_channel=True))
        found[str(name)] = {"rgb": round(float(np.mean(rgb)), 4), "y": round(float(np.mean(y)), 4)}
    return found


def export(out: Path, model: str, weights: Path, scale: int, precision: str = "int8",
           run: Path | None = None) -> Path:
    """The 360x640 file and its dynamic twin (returned); exported once."""
    dynamic = out.with_name(out.stem + "_none.tflite")
    if not dynamic.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        source = ["--run", str(run)] if run else ["--model", model, "--weights", str(weights),
                                                   "--scale", str(scale)]
        mai_sr("export", str(out), *source, "--precision", precision, "--shape",
               f"{SHAPE[0]}x{SHAPE[1]}", "--dynamic", "--force")
    return dynamic


def drops(int8: dict, fp32: dict) -> dict:
    """INT8 minus FP32 PSNR per set and channel (negative: INT8 is worse)."""
    return {s: {c: round(int8[s][c] - fp32[s][c], 4) for c in ("rgb", "y")} for s in int8}


def stage_info(row: dict, model: str) -> dict:
    from mai_sr.profile import profile_model

    scale = int(row["scale"])
    profile = profile_model(model, size=SHAPE, scale=scale)
    # FSRCNN's 9x9 transposed conv sits in a (8 + s)^2 kernel whose other taps are zero
    # (mai_sr.models.fsrcnn): not parameters of the published model, but computed by the
    # file (the MACs count them; the paper counts 9x9 per output pixel).
    zero_taps = 56 * 3 * ((8 + scale) ** 2 - 81) if model == "fsrcnn" else 0
    return {"params": profile.params - zero_taps, "macs_g": round(profile.macs / 1e9, 3),
            "paper_params_k": float(row["params_k"]), "paper_macs_g": float(row["macs_g"])}


def stage_fp32(row: dict, model: str, weights: Path, work: Path) -> dict:
    # zoo_import.py measured the published layout's Keras model; a layout option's FP32 is
    # its TFLite file's, below
    imported = None if row.get("layout") else next(
        (r for r in load_json(IMPORT_RESULTS).get("checkpoints", [])
         if r["checkpoint"] == row["checkpoint"]), None)
    keras_y = {s: v for s, v in (imported or {}).get("sets", {}).items()}
    scale = int(row["scale"])
    tflite = export(work / "fp32" / f"{stem(row)}.tflite", model, weights, scale, "fp32")
    return {"keras_y_vs_paper": keras_y, "tflite": score(tflite, scale)}


def stage_ptq(row: dict, model: str, weights: Path, work: Path, fp32: dict) -> dict:
    scale = int(row["scale"])
    dynamic = export(work / "ptq" / f"{stem(row)}.tflite", model, weights, scale)
    found = score(dynamic, scale)
    return {"file": str(dynamic.with_name(f"{stem(row)}.tflite")), "calibration":
            "builtin photos, 100 crops (the export default)", "sets": found,
            "drop": drops(found, fp32["tflite"])}


def shipped_weight(model: str, scale: int) -> str | None:
    """The shipped weight made from this checkpoint by its recipe (x3 zoo weights), if any."""
    from mai_sr.pretrained import available

    name = f"{model}.etds_div2k"
    return name if scale == 3 and name in available() else None


def stage_qat(row: dict, model: str, weights: Path, work: Path, fp32: dict) -> dict:
    scale = int(row["scale"])
    shipped = shipped_weight(model, scale)
    if shipped:
        return stage_shipped(shipped, scale, fp32)
    from qat_recipe import make_split, qat


    train, val = make_split(work)
    run = work / "runs" / stem(row)
    started = time.time()
    qat(weights, RECIPE, train, val, run)
    dynamic = export(work / "qat" / f"{stem(row)}.tflite", model, weights, scale, run=run)
    found = score(dynamic, scale)
    # the held-out split the recipe was chosen on, beside the test sets
    val = {"int8": score(dynamic, scale, sets=(val,))[str(val)],
           "fp32": score(work / "fp32" / f"{stem(row)}_none.tflite", scale,
                         sets=(val,))[str(val)]}
    return {"recipe": RECIPE, "run": str(run), "minutes": round((time.time() - started) / 60, 1),
            "sets": found, "drop": drops(found, fp32["tflite"]), "held_out": val}


def stage_shipped(name: str, scale: int, fp32: dict) -> dict:
    """The QAT row of a shipped weight: its shipped INT8 file scored here, the recipe file
    that made it (an import stage, then QAT with the recipe for imported weights on T91 +
    BSD200 with a tenth held out) and that run's validation figure."""
    from mai_sr.pretrained import pretrained_path

    card = json.loads(pretrained_path(name, "card").read_text())
    found = score(pretrained_path(name, "dynamic"), scale)
    return {"recipe": RECIPE, "shipped": name, "recipe_file": card["recipe"]["file"],
            "minutes": card["recipe"]["train_minutes"], "sets": found,
            "drop": drops(found, fp32["tflite"])}


def mean_drops(exact: list, rounded: list, pairs: list, scale: int) -> dict:
    """{"rgb", "y"}: mean PSNR of the `exact` SR images minus that of the `rounded` ones
    against the pairs' HR (crop = scale)."""
    import numpy as np

    from mai_sr.metrics import psnr

    return {channel: float(np.mean([psnr(e, p.hr, crop=scale, y_channel=y)
                                    - psnr(r, p.hr, crop=scale, y_channel=y)
                                    for e, r, p in zip(exact, rounded, pairs)]))
            for channel, y in (("rgb", False), ("y", True))}


def stage_floor(row: dict, model: str, weights: Path) -> dict:
    """ETDS only: the drop (FP32 minus a partly rounded FP32 model, RGB) from rounding just
    its image path to 8 bits, each image channel of every hidden tensor on its own full
    range (the best a per-tensor range can do for it), the clip-by-ReLU tensors on whole
    grey levels in [0, 255] (as the INT8 file has them:
    :func:`mai_sr.models.qat.quantize.is_pixel_clip`), everything else float. A lower bound
    on any INT8 form of the published layout."""
    import numpy as np

    from mai_sr.data import iter_pairs
    from mai_sr.export.convert import calibration_batches
    from mai_sr.models import create_model

    scale = int(row["scale"])
    net = create_model(model, scale=scale, deploy=True)
    net.load_weights(str(weights))
    convs = [layer for layer in net.layers if layer.name.startswith("conv")]
    hidden, tail = convs[:-2], convs[-2:]
    peaks = [0.0] * len(hidden)
    for batch in calibration_batches(None, 40, scale=scale):
        x = batch
        for i, conv in enumerate(hidden):
            x = conv(x)
            peaks[i] = np.maximum(peaks[i], np.asarray(x)[..., -3:].max((0, 1, 2)))

    def upscale(lr, rounded: bool):
        x = lr[None].astype(np.float32)
        for conv, peak in zip(hidden, peaks):
            x = np.array(conv(x))
            if rounded:
                x[..., -3:] = np.round(x[..., -3:] / (peak / 255)) * (peak / 255)
        for conv in tail:
            x = np.array(conv(x))
            if rounded:  # whole grey levels in [0, 255], as the INT8 file has them
                x = np.clip(np.round(x), 0, 255)
        sr = np.asarray(net.get_layer("depth_to_space")(x))[0]
        return np.clip(np.rint(sr), 0, 255).astype(np.uint8)

    found = {"rgb": {}, "y": {}}
    for name in SETS:
        pairs = list(iter_pairs(DATA / name, scale=scale))
        drop = mean_drops([upscale(p.lr, False) for p in pairs],
                          [upscale(p.lr, True) for p in pairs], pairs, scale)
        for channel in found:
            found[channel][name] = round(drop[channel], 4)
    # Y: what `mai-sr eval --y` and the paper's table score
    return {"image_path_drop_rgb": found["rgb"], "image_path_drop_y": found["y"]}


# TFLite's int8 TANH writes its output on a fixed grid (scale 1/128, zero point 0); its
# input has one range per tensor. The floor tries each tanh input on these ranges.
TANH_OUTPUT_STEP = 1 / 128
TANH_INPUT_BOUNDS = (1.5, 2.0, 2.5, 3.0, 3.5, 4.0)


def stage_floor_espcn(row: dict, model: str, weights: Path) -> dict:
    """ESPCN only: the drop (FP32 minus a partly rounded FP32 model, RGB) from its two tanh
    layers alone as TFLite computes them in int8: each input rounded to 256 levels on a
    per-tensor range [lo, hi] (lo, hi from -TANH_INPUT_BOUNDS and TANH_INPUT_BOUNDS, the
    best pair for each tanh chosen on that test set itself, one after the other), each
    output on the fixed 1/128 grid, everything else float. Choosing the ranges on the set
    scored makes it optimistic: a lower bound on any INT8 form of the published computation
    with per-tensor ranges (tanh cannot be rescaled per channel)."""
    import numpy as np

    from mai_sr.data import iter_pairs
    from mai_sr.metrics import psnr
    from mai_sr.models import create_model

    scale = int(row["scale"])
    net = create_model(model, scale=scale, deploy=True)
    net.load_weights(str(weights))
    layers = net.layers[1:]
    tanh_inputs = [net.layers[i].name for i in range(1, len(net.layers) - 1)
                   if net.layers[i + 1].name.startswith("tanh")]

    def upscale(lr, ranges: dict | None):
        x = lr[None].astype(np.float32)
        for layer in layers:
            x = np.array(layer(x))
            if ranges is None:
                continue
            if layer.name in ranges:
                lo, hi = ranges[layer.name]
                step = (hi - lo) / 255
                x = np.round((np.clip(x, lo, hi) - lo) / step) * step + lo
            elif layer.name.startswith("tanh"):
                x = np.clip(np.round(x / TANH_OUTPUT_STEP), -128, 127) * TANH_OUTPUT_STEP
        return np.clip(np.rint(x[0]), 0, 255).astype(np.uint8)

    found, chosen = {}, {}
    for name in SETS:
        pairs = list(iter_pairs(DATA / name, scale=scale))
        reference = np.mean([psnr(upscale(p.lr, None), p.hr, crop=scale) for p in pairs])

        def drop(ranges):
            return reference - np.mean([psnr(upscale(p.lr, ranges), p.hr, crop=scale)
                                        for p in pairs])

        ranges = {layer: (-3.0, 3.0) for layer in tanh_inputs}
        for layer in tanh_inputs:
            candidates = [(-lo, hi) for lo in TANH_INPUT_BOUNDS for hi in TANH_INPUT_BOUNDS]
            ranges[layer] = min(candidates, key=lambda c: drop({**ranges, layer: c}))
        found[name] = round(float(drop(ranges)), 4)
        chosen[name] = {k: list(v) for k, v in ranges.items()}
    return {"tanh_drop_rgb": found, "tanh_input_ranges": chosen}


# Ranges of the PReLU models' floor: each channel's full range on the scored images, or that
# range narrowed about its centre to these shares (tails clipped, steps finer); the best share
# is kept per set (all recorded). Narrower ones only lose: on FSRCNN x3 a share of 0.97 lost
# 0.291 / 0.312 / 0.247 dB against 0.191 / 0.162 / 0.144 for the full ranges, 0.9 lost 0.889
# on Set5.
FLOOR_SHRINKS = (1.0, 0.99)


def stage_floor_prelu(row: dict, model: str, weights: Path) -> dict:
    """FSRCNN and ECBSR (PReLU after every hidden conv): the drop (FP32 minus a partly rounded
    FP32 model) from rounding the activation tensors alone to 256 levels, each channel on its
    own full range over the set scored (or that range narrowed by one of
    :data:`FLOOR_SHRINKS`, the best chosen on the set itself), weights float. Two layouts:

    * ``kept``: the tensors their INT8 file keeps. TFLite does not fuse PReLU into its conv,
      so each hidden layer keeps two, the conv's output and the PReLU's; the last conv's
      output is one more (the image, rounded by the uint8 output anyway, is not). A
      per-tensor range can at best give each channel the tensor's full 256 levels, the ideal
      that the exact channel scaling of :func:`mai_sr.models.qat.equalize.equalize_channels`
      aims at and cannot reach for both tensors at once.
    * ``two_relu``: PReLU_a(x) = relu(x) - a relu(-x), an exact rewrite in which each
      hidden conv writes both halves as channels of one ReLU tensor (its kernel and -kernel)
      and the next conv takes the slopes into its weights: one tensor per layer, every
      channel free to scale, for 2x the channels (about 4x the MACs of a hidden conv). The
      bound of the layout option ``activation="relu_pair"`` (``fsrcnn_relu_pair``,
      ``ecbsr_m4c32_relu_pair``, ...), which the table measures as rows of its own.

    Ranges taken from the scored images themselves make both optimistic: lower bounds on
    the drop of any INT8 file of these weights in that layout, not of weights QAT has moved
    (which may be less sensitive)."""
    import numpy as np

    from mai_sr._tf import keras, tf
    from mai_sr.data import iter_pairs
    from mai_sr.models import create_model
    from mai_sr.models.blocks import layer_inputs

    scale = int(row["scale"])
    net = create_model(model, scale=scale, deploy=True)
    net.load_weights(str(weights))
    prelus = {layer.name for layer in net.layers if isinstance(layer, keras.layers.PReLU)}
    # the tensors PReLUs take (their convs' outputs): tensors of their own only when kept
    fed = {id(layer_inputs(net.get_layer(name))[0]) for name in prelus}
    kept = {layer.name for layer in net.layers if layer.name.startswith(("conv", "prelu"))}
    kept -= {"deconv"}  # FSRCNN's transposed conv writes the image itself
    ranges: dict[str, tuple] = {}

    def tensor(name: str, y, mode: str, shrink: float):
        """`y` as measured ("measure": float, widening its per-channel range) or rounded."""
        if mode == "measure":
            lo, hi = (tf.reduce_min(y, axis=(0, 1, 2)), tf.reduce_max(y, axis=(0, 1, 2)))
            old = ranges.get(name, (lo, hi))
            ranges[name] = (tf.minimum(lo, old[0]), tf.maximum(hi, old[1]))
            return y
        lo, hi = ranges[name]
        mid, half = (hi + lo) / 2, (hi - lo) / 2 * shrink
        lo, hi = mid - half, mid + half  # narrowed: finer steps, the tails clipped
        step = tf.maximum((hi - lo) / 255, 1e-12)
        return tf.round((tf.clip_by_value(y, lo, hi) - lo) / step) * step + lo

    def upscale(lr, layout: str, mode: str, shrink: float = 1.0):
        # values by the id of the graph tensor they stand for
        values = {id(net.input): tf.constant(lr[None].astype(np.float32))}
        for layer in net.layers[1:]:
            args = [values[id(t)] for t in layer_inputs(layer)]
            x = args if len(args) > 1 else args[0]
            if layout == "two_relu" and layer.name in prelus:
                positive = tensor(f"{layer.name}+", tf.nn.relu(x), mode, shrink)
                negative = tensor(f"{layer.name}-", tf.nn.relu(-x), mode, shrink)
                y = positive - layer.get_weights()[0] * negative
            else:
                y = layer(x)
                if layer.name in kept and not (layout == "two_relu" and id(layer.output) in fed):
                    y = tensor(layer.name, y, mode, shrink)
            values[id(layer.output)] = y
        return np.clip(np.rint(np.asarray(values[id(net.output)])[0]), 0, 255)

    found = {}
    for layout, shares in (("kept", FLOOR_SHRINKS), ("two_relu", (1.0,))):
        drops, chosen, tried = {"rgb": {}, "y": {}}, {}, {}
        for name in SETS:
            pairs = list(iter_pairs(DATA / name, scale=scale))
            ranges.clear()
            exact = [upscale(p.lr, layout, "measure") for p in pairs]
            best = None
            for shrink in shares:
                drop = mean_drops(exact, [upscale(p.lr, layout, "round", shrink)
                                          for p in pairs], pairs, scale)
                tried.setdefault(name, {})[str(shrink)] = round(drop["rgb"], 4)
                if best is None or drop["rgb"] < best[1]["rgb"]:
                    best = (shrink, drop)
            chosen[name] = best[0]
            for channel in drops:
                drops[channel][name] = round(best[1][channel], 4)
        prefix = "prelu_tensors" if layout == "kept" else "two_relu"
        found.update({f"{prefix}_drop_rgb": drops["rgb"], f"{prefix}_drop_y": drops["y"],
                      f"{prefix}_range_share": chosen,
                      f"{prefix}_rgb_drop_by_range_share": tried})
    found["tensors"] = sorted(kept)
    return found


def _lint_verdict(report) -> dict:
    """OK / WARN / FAIL and the finding codes of a lint report for one target."""
    if hasattr(report, "cpu_ops"):  # an Ethos-U report (Vela's placement)
        cpu = sorted({r["type"] for r in report.cpu_ops})
        return {"verdict": "FAIL" if cpu else "OK", "codes": cpu}
    codes = sorted({f.code for f in report.findings if f.severity in ("error", "warning")})
    verdict = "FAIL" if report.errors else "WARN" if report.warnings else "OK"
    return {"verdict": verdict, "codes": codes}


def stage_deploy(row: dict, work: Path) -> dict:
    """Lint verdicts and NPU time estimates of the PTQ file (QAT changes no op or shape)."""
    from mai_sr.device import get_runner
    from mai_sr.device.synap import SynapRunner
    from mai_sr.errors import MaiSrError
    from mai_sr.export.targets import rewrite_for_target
    from mai_sr.lint import lint_for_target
    from mai_sr.tflite.targets import quoted_config

    fixed = work / "ptq" / f"{stem(row)}.tflite"
    u85 = work / "ethos-u85" / fixed.name
    u85.parent.mkdir(parents=True, exist_ok=True)
    try:
        u85.write_bytes(rewrite_for_target(fixed.read_bytes(), "ethos-u85")[0])
        u85_source = "export --target ethos-u85"
    except MaiSrError as exc:
        u85.write_bytes(fixed.read_bytes())
        u85_source = f"default file (no target rewrite: {exc})"
    found = {"lint": {}, "u85_file": u85_source}
    for target in TARGETS:
        found["lint"][target] = _lint_verdict(
            lint_for_target(u85 if target == "ethos-u85" else fixed, target))
    try:
        found["synap_vs680_ms"] = round(SynapRunner().bench(fixed).avg_ms, 2)
    except MaiSrError as exc:
        found["synap_vs680_ms"], found["synap_refused"] = None, str(exc)
    result = get_runner("vela", npu=quoted_config("ethos-u85")).bench(u85).to_dict()
    found["vela_u85_ms"] = round(result["avg_ms"], 2)
    found["vela_u85_npu_op_percent"] = result["delegate"]["npu_op_percent"]
    found["vela_config"] = quoted_config("ethos-u85")
    found["phones_ms"] = phone_estimates(fixed)
    return found


def phone_estimates(path: Path) -> dict:
    """The phone profiles' latency estimates of a 360x640 INT8 file, in ms by profile (fitted
    on the ETDS paper's Table 2 timings, ``benchmarks/phone_estimates.py``); a profile that
    refuses the file gives its one-line reason instead."""
    from mai_sr.device.estimate import estimate
    from mai_sr.device.profiles import load_profile, profile_names
    from mai_sr.errors import MaiSrError

    found = {}
    for name in profile_names():
        if load_profile(name).engine == "synap":  # the SyNAP column already
            continue
        try:
            found[name] = round(estimate(path, name).total_ms, 1)
        except MaiSrError as exc:
            found[name] = str(exc)
    return found


def measure(row: dict, args, results: dict) -> None:
    """Run the stages of one checkpoint that `results` lacks, saving after each."""
    scale, key = int(row["scale"]), stem(row)
    entry = results["checkpoints"].setdefault(key, {"paper_model": row["model"],
                                                    "scale": scale})
    weights, model = import_checkpoint(row, args.work)
    entry["model"] = model
    todo = [("info", lambda: stage_info(row, model)),
            ("fp32", lambda: stage_fp32(row, model, weights, args.work))]
    if scale in args.ptq_scales:
        todo.append(("ptq", lambda: stage_ptq(row, model, weights, args.work, entry["fp32"])))
        todo.append(("deploy", lambda: stage_deploy(row, args.work)))
    if scale in args.qat_scales:
        todo.append(("qat", lambda: stage_qat(row, model, weights, args.work, entry["fp32"])))
        if row.get("layout"):
            pass  # the floors bound the published layout's tensors
        elif model.startswith("etds"):
            todo.append(("floor", lambda: stage_floor(row, model, weights)))
        elif model == "espcn":
            todo.append(("floor", lambda: stage_floor_espcn(row, model, weights)))
        elif model.startswith(("fsrcnn", "ecbsr")):
            todo.append(("floor", lambda: stage_floor_prelu(row, model, weights)))
    for name, run in todo:
        if name in entry:
            continue
        started = time.time()
        entry[name] = run()
        entry[name]["seconds"] = round(time.time() - started, 1)
        # the table's "measured" line: when the last stage ran, and under what load
        results["measured_under"] = measured_under()
        save(results)
        print(f"{key} {name}: {summary_line(entry, name)}", flush=True)


def forget(stage: str, key: str, work: Path) -> None:
    """Remove the files a stage made for checkpoint `key`, so a redo measures anew."""
    import shutil

    folders = {"fp32": ["fp32"], "ptq": ["ptq", "ethos-u85"], "qat": ["qat"],
               "deploy": ["ethos-u85"]}.get(stage, [])
    for folder in folders:
        for path in (work / folder).glob(f"{key}*"):
            path.unlink()
    if stage == "qat":
        shutil.rmtree(work / "runs" / key, ignore_errors=True)


def summary_line(entry: dict, stage: str) -> str:
    found = entry[stage]
    if stage in ("ptq", "qat"):
        return "RGB drop " + " / ".join(f"{s} {found['drop'][s]['rgb']:+.3f}" for s in SETS)
    if stage == "floor":
        label, drops = floor_drops(found)
        return f"{label} alone " + " / ".join(f"{s} {drops[s]:+.3f}" for s in SETS)
    if stage == "deploy":
        return (", ".join(f"{t} {v['verdict']}" for t, v in found["lint"].items())
                + f"; SyNAP {found['synap_vs680_ms']} ms, Vela U85 {found['vela_u85_ms']} ms")
    return json.dumps({k: v for k, v in found.items() if k != "tflite"})[:160]


def save(results: dict) -> None:
    from _publish import without_local_paths

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(without_local_paths(results), indent=2, sort_keys=True) + "\n")


# ------------------------------------------------------------------ tables and plot


def _drops(entry: dict, stage: str, channel: str) -> str:
    if stage not in entry:
        return "not run"
    return " / ".join(f"{entry[stage]['drop'][s][channel]:+.3f}" for s in SETS)


def _psnrs(entry: dict, stage: str, channel: str) -> str:
    if stage not in entry:
        return "not run"
    return " / ".join(f"{entry[stage]['sets'][s][channel]:.2f}" for s in SETS)


def ordered(results: dict) -> list[dict]:
    """The measured entries in Table 2's order: scale, then the paper's model order."""
    rows = sorted(checkpoints(), key=lambda r: int(r["scale"]))
    return [results["checkpoints"].get(stem(r), {"paper_model": r["model"],
                                                 "scale": int(r["scale"])}) for r in rows]


def _longer_qat() -> str:
    """The weights whose recipe runs other QAT steps or LR, for the table's legend."""
    from mai_sr.recipes import IMPORTED_QAT_CHANGES, imported_qat
    from qat_steps import setting_label

    qats = {name: imported_qat(name) for name in sorted(IMPORTED_QAT_CHANGES)}
    longer = ", ".join(f"{name.split('.')[0]} {setting_label(qat['qat_steps'], qat['qat_lr'])}"
                       for name, qat in qats.items())
    return (f"{longer}: these validated better on the held-out images, "
            "`benchmarks/qat_steps.py`") if longer else "every weight"


def quality_table(results: dict) -> list[str]:
    lines = [("| model | × | FP32 Y, ours − paper | FP32 RGB (TFLite) | PTQ RGB drop | "
              "PTQ Y drop | QAT RGB drop | QAT Y drop | QAT INT8 Y |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for e in ordered(results):
        keras = e.get("fp32", {}).get("keras_y_vs_paper", {})
        ours = " / ".join(f"{keras[s]['ours']:.2f} ({keras[s]['diff']:+.3f})" if s in keras
                          else "–" for s in SETS)
        fp32 = " / ".join(f"{e['fp32']['tflite'][s]['rgb']:.2f}" for s in SETS) \
            if "fp32" in e else "–"
        lines.append(f"| {e['paper_model']} (`{e.get('model', '?')}`) | {e['scale']} | {ours} "
                     f"| {fp32} | {_drops(e, 'ptq', 'rgb')} | {_drops(e, 'ptq', 'y')} "
                     f"| {_drops(e, 'qat', 'rgb')} | {_drops(e, 'qat', 'y')} "
                     f"| {_psnrs(e, 'qat', 'y')} |")
    return lines


def deploy_table(results: dict) -> list[str]:
    lines = [("| model | × | params (paper) | MACs G at 360×640 (paper) | VS680 | NNAPI | "
              "Ethos-U85 | SyNAP VS680 ms | Vela U85 ms |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for e in ordered(results):
        info, dep = e.get("info", {}), e.get("deploy")

        def verdict(target):
            if not dep:
                return "not run"
            v = dep["lint"][target]
            return v["verdict"] + (f" ({', '.join(v['codes'])})" if v["codes"] else "")

        size = (f"{info['params']:,} ({info['paper_params_k']:.2f} K) | {info['macs_g']:.2f} "
                f"({info['paper_macs_g']:.2f})") if info else "not run | not run"
        lines.append(
            f"| {e['paper_model']} | {e['scale']} | {size} | {verdict('vs680')} | "
            f"{verdict('nnapi')} | {verdict('ethos-u85')} | "
            f"{dep.get('synap_vs680_ms') if dep else '–'} | "
            f"{dep.get('vela_u85_ms') if dep else '–'} |")
    return lines


def layout_table(results: dict) -> list[str]:
    """Each measured layout option beside its published layout: MACs, the PTQ and QAT INT8
    drops and the latency estimates (SyNAP VS680, Vela U85, the phone profiles)."""
    found = results["checkpoints"]
    pairs = [(found.get(Path(r["checkpoint"]).stem), found.get(stem(r)))
             for r in checkpoints() if r.get("layout")]
    pairs = [(base, option) for base, option in pairs if base and option and "deploy" in option]
    if not pairs:
        return []
    phones = sorted({p for pair in pairs for e in pair
                     for p in e.get("deploy", {}).get("phones_ms", {})})
    # each published layout once, followed by its options (ETDS-L has two)
    rows = list({id(e): e for pair in pairs for e in pair}.values())

    def phone(estimates: dict, profile: str) -> str:
        value = estimates.get(profile)
        return "not run" if value is None else "refused" if isinstance(value, str) else str(value)

    lines = ["| model | scale | MACs G | PTQ RGB drop | QAT RGB drop | SyNAP VS680 ms | "
             "Vela U85 ms | " + " | ".join(f"{p} ms" for p in phones) + " |",
             "|---|---|---|---|---|---|---|" + "---|" * len(phones)]
    for e in rows:
        dep = e.get("deploy", {})
        lines.append(f"| {e['paper_model']} (`{e.get('model', '?')}`) | x{e['scale']} "
                     f"| {e['info']['macs_g']:.2f} "
                     f"| {_drops(e, 'ptq', 'rgb')} | {_drops(e, 'qat', 'rgb')} "
                     f"| {dep.get('synap_vs680_ms', '–')} | {dep.get('vela_u85_ms', '–')} | "
                     + " | ".join(phone(dep.get("phones_ms", {}), p) for p in phones) + " |")
    return [("Layout options beside their published layout (QAT at x3 only; the phone columns "
             "are the fitted profiles' estimates, `mai-sr bench --runner sim`, fitted on the "
             "ETDS paper's Table 2 and validated by leaving each architecture out, "
             "docs/simulators.md; estimates, not devices; MACs as `mai-sr profile` and the "
             "ETDS paper count them, a transposed conv's whole kernel at every HR pixel, "
             "s^2 times what TFLite's TRANSPOSE_CONV computes over the LR pixels):"),
            "", *lines, ""]


def readme_body(results: dict) -> str:
    when = results.get("measured_under", {})
    return "\n".join([
        (f"Measured {when.get('date', '?')[:10]} (load {when.get('load_avg_1min', '?')} on "
        f"{when.get('cpus', '?')} CPUs) by `nice -n 10 python benchmarks/zoo.py "
        "--write-readme`; every model, not the best. PSNR triples are Set5 / Set14 / B100 "
        "(HR cropped to a multiple of the scale, border = scale). Drops are INT8 minus the "
        "FP32 TFLite file, same scorer. PTQ: `mai-sr export` calibrated on the builtin photos; "
        "QAT (x3): the shipped weight's INT8 file (`mai_sr/pretrained`, made by its recipe "
        "file: the import, then the recipe for imported weights, teacher = the imported FP32 "
        f"model, weight 0.5, 1000 steps ({_longer_qat()}), LR 1e-4, L2, on T91 + BSD200 "
        "with a tenth held out, keeping the calibrated start when no QAT step validates "
        "better on the held-out images); \"not run\": not measured at that scale."), "",
        *quality_table(results), "", *floor_lines(results),
        ("Lint verdicts on the 360×640 INT8 file (Ethos-U85: its `export --target ethos-u85` "
        "rewrite, placed by Vela); OK, WARN (runs, slower than it should) or FAIL (ops off "
        "the NPU), with the finding codes. Times are estimates: the SyNAP simulator "
        "(VS680) and Vela (Ethos-U85, its default system config), not devices."), "",
        *deploy_table(results), "", *layout_table(results),
        ("Plot: `benchmarks/results/zoo.png` (PSNR vs the VS680 estimate, x3; written by the "
         "script, not kept in the repository).")])


def floor_drops(floor: dict) -> tuple[str, dict]:
    """(what was rounded, {set: drop}) of a floor stage's result."""
    if "tanh_drop_rgb" in floor:
        return "tanh layers", floor["tanh_drop_rgb"]
    if "prelu_tensors_drop_rgb" in floor:
        return "prelu tensors", floor["prelu_tensors_drop_rgb"]
    return "image path", floor["image_path_drop_rgb"]


def floor_details(floor: dict) -> str:
    """What a floor line adds after its RGB drops: ' (Y: a / b / c)' when the floor was also
    measured on luma, and for the PReLU models the two-ReLU layout's bound."""
    y = floor.get("image_path_drop_y") or floor.get("prelu_tensors_drop_y")
    text = "" if not y else " (Y: " + " / ".join(f"{-y[s]:+.3f}" for s in SETS) + ")"
    if "two_relu_drop_rgb" in floor:
        text += "; two-ReLU layout " + " / ".join(
            f"{-floor['two_relu_drop_rgb'][s]:+.3f}" for s in SETS) + " dB"
    return text


def floor_lines(results: dict) -> list[str]:
    """The lower bounds of the ETDS image path, of ESPCN's tanh layers and of the PReLU
    models' tensors, one line per measured model."""
    intro = {
        "image path": "ETDS carries the image through every hidden tensor (its residual "
                      "stream): rounding only those channels to 8 bits, each on its own full "
                      "range, the clip-by-ReLU tensors on whole grey levels as the INT8 file "
                      "has them, and nothing else, already costs (FP32, RGB, Set5 / Set14 / "
                      "B100; the layout option `image_extra=4`, the rows \"image path twice\" "
                      "of the table, carries the image twice, green three times, and the "
                      "quantizer offsets the copies so that they round on a finer grid):",
        "tanh layers": "ESPCN's tanh layers alone as TFLite's int8 TANH computes them (input "
                       "on one range per tensor, the best of a grid chosen on each test set "
                       "itself; output on the fixed 1/128 grid), nothing else rounded, "
                       "already cost (FP32, RGB, Set5 / Set14 / B100):",
        "prelu tensors": "FSRCNN and ECBSR keep two int8 tensors per hidden layer (TFLite does "
                         "not fuse PReLU into its conv): rounding every one, and the last "
                         "conv's output, with each channel on its own full range over the set "
                         "scored (the ideal of the exact channel scaling; ranges narrowed by "
                         "1% tried too, the best kept), weights float, costs (FP32, RGB, "
                         "Set5 / Set14 / B100; a bound for these weights, not for weights QAT "
                         "has moved). The two-ReLU layout (PReLU_a(x) = relu(x) - a relu(-x), "
                         "both halves as channels of one ReLU tensor, the slopes in the next "
                         "conv: exact, one tensor per layer, every channel free to scale, "
                         "about 4x the MACs of a hidden conv; built for FSRCNN and ECBSR as the "
                         "layout option `activation=\"relu_pair\"`, the rows \"PReLU as two "
                         "ReLUs\" of the table) would at best cost:"}
    lines = []
    for label, text in intro.items():
        rows = [e for e in ordered(results) if "floor" in e and floor_drops(e["floor"])[0] == label]
        if rows:
            lines += [text, "", *[f"- {e['paper_model']} x{e['scale']}: " + " / ".join(
                f"{-floor_drops(e['floor'])[1][s]:+.3f}" for s in SETS) + " dB"
                + floor_details(e["floor"]) for e in rows], ""]
    return lines


def plot(results: dict) -> None:
    """PSNR Y on B100 of the x3 INT8 (QAT) files against the SyNAP VS680 estimate."""
    from mai_sr.report.plots import psnr_runtime_png
    from mai_sr.score import C, final_score

    points = []
    for e in results["checkpoints"].values():
        ms = (e.get("deploy") or {}).get("synap_vs680_ms")
        if e["scale"] != 3 or not ms:
            continue
        for stage, kind in (("qat", "measured"),):
            if stage in e:
                psnr = e[stage]["sets"]["B100"]["y"]
                points.append({"label": f"{e['paper_model']}", "psnr": psnr,
                               "runtime_ms": ms, "score": final_score(psnr, ms),
                               "kind": kind, "challenge": False})
    if points:
        PLOT.write_bytes(psnr_runtime_png(points, C))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "zoo")
    parser.add_argument("--only", help="comma-separated checkpoint stems (ETDS_M7C48_x3)")
    parser.add_argument("--ptq-scales", default="2,3,4", help="scales with INT8 PTQ and deploy")
    parser.add_argument("--qat-scales", default="3", help="scales with QAT")
    parser.add_argument("--redo", default="", help=f"stages to measure again: {STAGES}")
    add_write_readme(parser)
    args = parser.parse_args(argv)
    args.ptq_scales = {int(s) for s in args.ptq_scales.split(",") if s}
    args.qat_scales = {int(s) for s in args.qat_scales.split(",") if s}
    redo = {s for s in args.redo.split(",") if s}
    only = set(args.only.split(",")) if args.only else None
    results = load_json(OUT)
    results.setdefault("checkpoints", {})
    for row in checkpoints():
        if only and stem(row) not in only:
            continue
        entry = results["checkpoints"].get(stem(row), {})
        for stage in redo & set(entry):
            forget(stage, stem(row), args.work)
            entry.pop(stage)
        measure(row, args, results)
    plot(results)
    publish("zoo", results, readme_body(results), write_readme=args.write_readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
