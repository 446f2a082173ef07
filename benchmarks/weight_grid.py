"""Which kernels' int8 grids cost a deploy graph its PSNR: each Conv2D's kernel alone put on
its per-channel int8 grid (symmetric, step max |w| / 127 per output channel, as TFLite
stores it; a Conv2DTranspose's on one grid for the whole kernel, as TFLite's converter
stores TRANSPOSE_CONV weights), every other kernel and every activation left in float. A
conv that reads a concatenation is also split by input: its taps on each concatenated
tensor on the grid alone (SCSRN's output conv reads [LR image, features]).

What it is: a float simulation of weight rounding only, round to nearest. The exporter's
PTQ rounds to the data and corrects biases, and QAT trains on the grid, so a shipped file
loses less than the sum of these rows; the rows say where the grid hurts, not what a file
loses (the INT8 file of the same weights is scored for scale).

    python benchmarks/weight_grid.py          # ABPN-M4C28 x3 and the two SCSRN below
    python benchmarks/weight_grid.py scsrn=RUN/fp32/fp32/deploy.weights.h5 --data Set5
    python benchmarks/weight_grid.py --fsrcnn  # FSRCNN x3, two ReLUs: transposed vs subpixel

A model is ``[LABEL:]ARCH=WEIGHTS`` (Keras deploy weights) or
``[LABEL:]ARCH=CHECKPOINT.pth`` (imported first); results are kept by LABEL (default ARCH).
The defaults: ``abpn`` from the zoo's ``ABPN_M4C28_x3.pth``; ``scsrn``, the FP32 stage of
``recipes/scsrn.etds_l_distill_abpn.json``, and ``scsrn_anchor``, the ``anchor`` stage of
``recipes/scsrn.etds_l_distill_abpn_anchor.json`` (its image taps held at the anchor), each
made by ``mai-sr train --recipe mai_sr/pretrained/recipes/NAME.json --out
benchmarks/out/recipes/NAME`` (hours on 2 cores). Writes ``benchmarks/results/weight_grid.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _held_out import ARTIFACTS, DATA  # noqa: E402
from _publish import RESULTS, ROOT  # noqa: E402

OUT = RESULTS / "weight_grid.json"
RECIPE_RUNS = ROOT / "benchmarks" / "out" / "recipes"
STAGE_WEIGHTS = "fp32/deploy.weights.h5"  # a train stage's FP32 deploy weights
DEFAULTS = (f"abpn={ARTIFACTS / 'etds_zoo' / 'pretrained' / 'ABPN' / 'ABPN_M4C28_x3.pth'}",
            f"scsrn={RECIPE_RUNS / 'scsrn.etds_l_distill_abpn' / 'fp32' / STAGE_WEIGHTS}",
            ("scsrn_anchor:scsrn="
             f"{RECIPE_RUNS / 'scsrn.etds_l_distill_abpn_anchor' / 'anchor' / STAGE_WEIGHTS}"))


FSRCNN_X3 = ARTIFACTS / "etds_zoo" / "pretrained" / "FSRCNN" / "FSRCNN_x3.pth"
FSRCNN = (f"fsrcnn_relu_pair={FSRCNN_X3}", f"fsrcnn_relu_pair_subpixel={FSRCNN_X3}")
GRID_LAYERS = ("Conv2D", "Conv2DTranspose")


def on_grid(kernel, channels: slice = slice(None), per_tensor: bool = False):
    """`kernel` with its input `channels` on the per-output-channel int8 grid (the step is
    the whole kernel's max |w| / 127: the other taps still set it), or with `per_tensor` on
    one grid for the whole kernel."""
    import numpy as np

    step = np.abs(kernel).max(axis=(0, 1, 2, 3) if per_tensor else (0, 1, 2),
                              keepdims=True) / 127
    step[step == 0] = 1
    rounded = kernel.copy()
    rounded[:, :, channels] = (np.round(kernel / step) * step)[:, :, channels]
    return rounded


def concat_parts(layer) -> list[tuple[str, slice]]:
    """(name, input-channel slice) of each tensor a concatenation feeds `layer`, else []."""
    producer = layer.input._keras_history[0] if hasattr(layer.input, "_keras_history") else None
    if type(producer).__name__ != "Concatenate":
        return []
    parts, start = [], 0
    for tensor in producer.input:
        width = int(tensor.shape[-1])
        parts.append((tensor._keras_history[0].name, slice(start, start + width)))
        start += width
    return parts


def weights_file(spec: str, work: Path) -> tuple[str, str, Path]:
    """(label, architecture, Keras deploy weights file) of ``[LABEL:]ARCH=PATH``; a ``.pth``
    checkpoint is imported into `work` first (``mai-sr import``, its gate included)."""
    from mai_sr.importer import import_weights

    named, _, path = spec.partition("=")
    label, _, arch = named.rpartition(":")
    label = label or arch
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"weight_grid: {path} is missing (see the docstring for how to make it)")
    if path.suffix == ".pth":
        target = work / f"{label}.weights.h5"
        import_weights(path, arch, target)
        path = target
    return label, arch, path


def int8_runner(arch: str, weights: Path, work: Path):
    """A LiteRT runner of the dynamic-shape PTQ INT8 file `mai-sr export` writes from
    `weights` (written once per model, scored on every set)."""
    from mai_sr.export.convert import export
    from mai_sr.tflite.runtime import TFLiteSR

    files = export(work / f"{arch}-{weights.stem}.tflite", model=arch, weights=weights,
                   scale=3, dynamic=True)
    return TFLiteSR(files[-1])


def measure(model, pairs) -> dict[str, float]:
    """PSNR of the float `model`, of each kernel (and concatenated input) alone on its grid,
    and of every kernel on its grid."""
    import numpy as np

    from mai_sr.metrics import psnr

    def score() -> float:
        return float(np.mean([psnr(np.clip(np.rint(model(p.lr[None].astype(np.float32))
                                                    .numpy()[0]), 0, 255).astype(np.uint8),
                                   p.hr, crop=3) for p in pairs]))

    convs = [layer for layer in model.layers if type(layer).__name__ in GRID_LAYERS]
    per_tensor = {layer.name: type(layer).__name__ == "Conv2DTranspose" for layer in convs}
    found = {"float": score()}
    for layer in convs:
        kernel, *rest = layer.get_weights()
        for label, channels in [(layer.name, slice(None))] + [
                (f"{layer.name} <- {name}", part) for name, part in concat_parts(layer)]:
            layer.set_weights([on_grid(kernel, channels, per_tensor[layer.name]), *rest])
            found[label] = score()
        layer.set_weights([kernel, *rest])
    originals = [layer.get_weights() for layer in convs]
    for layer, (kernel, *rest) in zip(convs, originals):
        layer.set_weights([on_grid(kernel, per_tensor=per_tensor[layer.name]), *rest])
    found["all kernels"] = score()
    for layer, weights in zip(convs, originals):
        layer.set_weights(weights)
    return found


def main(argv=None) -> int:
    import numpy as np

    from mai_sr.data import load_pairs
    from mai_sr.metrics import psnr
    from mai_sr.runs import load_deploy_weights

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="[LABEL:]ARCH=WEIGHTS (default: the three "
                        "above)")
    parser.add_argument("--fsrcnn", action="store_true",
                        help="FSRCNN x3's checkpoint in its two layouts with two ReLUs: the "
                        "transposed conv (one weight grid) and the subpixel conv (27)")
    parser.add_argument("--data", default="Set5,Set14,B100", help="sets under ../shared/data")
    args = parser.parse_args(argv)
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.models or (FSRCNN if args.fsrcnn else DEFAULTS):
            label, arch, weights = weights_file(spec, Path(tmp))
            model = load_deploy_weights(weights, arch, 3)
            int8 = int8_runner(arch, weights, Path(tmp))
            for dataset in args.data.split(","):
                pairs = load_pairs(str(DATA / dataset), scale=3)
                found = measure(model, pairs)
                found["int8 file (PTQ)"] = float(np.mean(
                    [psnr(int8.upscale(p.lr), p.hr, crop=3) for p in pairs]))
                found = {k: round(v, 4) for k, v in found.items()}
                results.setdefault(label, {})[dataset] = found
                base = found["float"]
                print(f"{label} {dataset}: float {base:.3f} dB; on the int8 grid alone: "
                      + ", ".join(f"{k} {v - base:+.3f}" for k, v in found.items()
                                  if k != "float"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
