"""Where a shipped ETDS weight's INT8 drop comes from: its weights, and each activation tensor.

ETDS's published inference form is a plain chain (3x3 convs with ReLU, the 1x1 clip conv,
depth-to-space), so its INT8 file is simulated here in float exactly as the fake-quant model
computes it: the shipped deploy weights (already on their per-channel int8 grid, with the
biases quantization left them), and, where asked, each conv's output rounded to the shipped
activation range (``NAME.qat.json``, 256 levels). PSNR (RGB, crop 3) on one set for:

* ``fp32``: the imported published weights (the reference);
* ``weights``: the shipped weights on their int8 grid, every activation clipped to its
  range but not rounded (what the weights cost: rounded to the data, biases corrected, QAT);
* ``activations``: every activation rounded (the INT8 file to within its rounding of the
  fixed-point multipliers; checked against the file below);
* ``only <conv>``: the shipped weights with that one tensor rounded.

The INT8 file itself is scored too, as a check of the simulation.

    python benchmarks/int8_ablation.py etds_m.etds_div2k [--data Set5]

Writes ``benchmarks/results/int8_ablation.json`` (one entry per weight and set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _publish import RESULTS, ROOT  # noqa: E402
from weight_grid import on_grid  # noqa: E402

DATA = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS", ROOT.parent / "shared" / "artifacts"))
OUT = RESULTS / "int8_ablation.json"


def simulate(convs, lr, ranges: dict | None, rounded: set):
    """The chain on one LR image. With `ranges` (the shipped network): every kernel on its
    per-channel int8 grid (max |w| / 127, as the file; QAT's float weights are half a step
    off it, and the network relies on the grid: ETDS-T's give 11 dB less in float), every
    tensor clipped to its range, and the tensors named in `rounded` also on their 256
    levels."""
    import numpy as np

    from mai_sr._tf import tf

    x = tf.constant(lr[None].astype(np.float32))
    for layer in convs:
        kernel, bias = layer.get_weights()
        if ranges is not None:  # the kernel on its per-channel int8 grid, as the file has it
            kernel = on_grid(kernel)
        x = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME") + bias)
        # the clip conv has no range of its own: its output is the file's [0, 255] uint8
        # output, whose rounding is the final rint below
        key = f"quant_{layer.name}/post_activation"
        if ranges is not None and key in ranges:
            lo, hi = ranges[key]
            if layer.name in rounded:
                step = (hi - lo) / 255
                x = tf.round((x - lo) / step) * step + lo
            x = tf.clip_by_value(x, lo, hi)
    sr = tf.nn.depth_to_space(x, 3).numpy()[0]
    return np.clip(np.rint(sr), 0, 255).astype(np.uint8)


def imported_weights(name: str, work: Path) -> Path:
    """The FP32 deploy weights of shipped zoo weight `name` (``etds_m.etds_div2k``), imported
    once into `work` from the published checkpoint its ``shipped.json`` row names."""
    from mai_sr.importer import import_weights
    from mai_sr.pretrained import architecture, shipped_weights

    row = next(w for w in shipped_weights() if w["name"] == name)
    source = ARTIFACTS / "etds_zoo" / "pretrained" / row["source"].split("pretrained_models/")[1]
    imported = work / f"{name}.weights.h5"
    if not imported.is_file():
        imported.parent.mkdir(parents=True, exist_ok=True)
        import_weights(source, architecture(name), imported, force=True)
    return imported


def measure(name: str, dataset: str) -> dict:
    import numpy as np

    from mai_sr.data import load_pairs
    from mai_sr.metrics import psnr
    from mai_sr.models import create_model
    from mai_sr.pretrained import architecture, pretrained_path
    from mai_sr.tflite.runtime import TFLiteSR

    arch = architecture(name)
    if not arch.startswith("etds"):
        raise SystemExit(f"int8_ablation: {name} is not an ETDS weight (a plain ReLU chain)")
    imported = imported_weights(name, RESULTS.parent / "out" / "int8_ablation")
    nets = {}
    for kind, path in (("fp32", imported), ("shipped", pretrained_path(name, "weights"))):
        nets[kind] = create_model(arch, scale=3, deploy=True)
        nets[kind].load_weights(str(path))
    ranges = json.loads(pretrained_path(name, "ranges").read_text())
    convs = {k: [layer for layer in n.layers if layer.name.startswith("conv")]
             for k, n in nets.items()}
    names = [layer.name for layer in convs["shipped"]
             if f"quant_{layer.name}/post_activation" in ranges]
    pairs = load_pairs(str(DATA / dataset), scale=3)
    rows = {"fp32": ("fp32", set()), "weights": ("shipped", set()),
            "activations": ("shipped", set(names)),
            **{f"only {n}": ("shipped", {n}) for n in names}}
    found = {k: float(np.mean([psnr(simulate(convs[net], p.lr, ranges if net == "shipped"
                                             else None, rounded), p.hr, crop=3)
                               for p in pairs])) for k, (net, rounded) in rows.items()}
    tflite = TFLiteSR(pretrained_path(name, "dynamic"))
    found["int8 file"] = float(np.mean([psnr(tflite.upscale(p.lr), p.hr, crop=3) for p in pairs]))
    return {k: round(v, 4) for k, v in found.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="+", help="shipped ETDS weights (etds_m.etds_div2k)")
    parser.add_argument("--data", default="Set5", help="a set under ../shared/data")
    args = parser.parse_args(argv)
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    for name in args.names:
        found = measure(name, args.data)
        results.setdefault(name, {})[args.data] = found
        base, weights = found["fp32"], found["weights"]
        print(f"{name} {args.data}: FP32 {base:.3f} dB; weights {weights - base:+.3f}; "
              f"activations {found['activations'] - weights:+.3f} on top; INT8 file "
              f"{found['int8 file'] - base:+.3f}; one tensor alone: " + ", ".join(
                  f"{k[5:]} {v - weights:+.3f}" for k, v in found.items()
                  if k.startswith("only ")))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
