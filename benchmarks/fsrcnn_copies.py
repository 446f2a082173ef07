"""Which of FSRCNN's hidden tensors to write twice (the layout option ``copies``), bounded on
held-out training images.

FSRCNN x3 (the ETDS zoo's DIV2K-trained ``FSRCNN_x3.pth``) in its two-ReLU, subpixel layout
(``fsrcnn_relu_pair_subpixel``) keeps seven hidden ReLU tensors, each rounded to int8 on one
range in the INT8 file. This float simulation rounds those tensors alone (weights float),
each channel on its own full range over the images scored (the ideal that the exact channel
scaling aims at, as ``benchmarks/zoo.py``'s floor), with k copies of a tensor read as one
channel on a grid k times finer (what ``dither_copies`` gives k copies offset by 1/k of a
step). PSNR (RGB, crop 3) on the held-out tenth of T91 + BSD200, the QAT recipes'
validation images; never a test set. Rows: each tensor rounded alone, then every tensor
with 1, 2 or 4 copies and with the copy counts tried as layouts.

    python benchmarks/fsrcnn_copies.py [--write-readme]

Writes ``benchmarks/results/fsrcnn_copies.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _held_out as held_out  # noqa: E402
from _publish import add_write_readme, publish  # noqa: E402

CHECKPOINT = held_out.ARTIFACTS / "etds_zoo" / "pretrained" / "FSRCNN" / "FSRCNN_x3.pth"
MODEL = "fsrcnn_relu_pair_subpixel"
HIDDEN = [f"conv{i}" for i in range(1, 8)]
# Copies per hidden tensor (conv1 ... conv7) of the layouts trained and compared on the
# held-out images (docs/import.md); the last is the shipped option's.
LAYOUTS = ([2, 2, 1, 1, 1, 1, 1], [2, 2, 1, 1, 1, 1, 2], [2, 2, 2, 2, 2, 2, 1], [2] * 7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_write_readme(parser)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from mai_sr._tf import tf
    from mai_sr.metrics import psnr

    net = held_out.imported(CHECKPOINT, MODEL)
    _, val_pairs = held_out.split(MODEL)
    images = [p.lr[None].astype(np.float32) for p in val_pairs]
    peaks: dict[str, np.ndarray] = {}

    def upscale(x, copies: dict | None):
        """SR image; `copies` None measures each hidden tensor's per-channel peak."""
        for layer in net.layers[1:]:
            x = layer(x)
            if layer.name not in HIDDEN:
                continue
            if copies is None:
                peak = np.asarray(tf.reduce_max(x, axis=(0, 1, 2)))
                peaks[layer.name] = np.maximum(peaks.get(layer.name, peak), peak)
            elif copies.get(layer.name):  # ReLU outputs: [0, peak] per channel
                step = np.maximum(peaks[layer.name] / (255 * copies[layer.name]), 1e-12)
                x = tf.round(x / step) * step
        return np.clip(np.rint(np.asarray(x)[0]), 0, 255)

    exact = [upscale(x, None) for x in images]
    fp32 = float(np.mean([psnr(e, p.hr, crop=3) for e, p in zip(exact, val_pairs)]))

    def drop(counts: list[int]) -> float:
        copies = {name: k for name, k in zip(HIDDEN, counts) if k}
        found = [psnr(upscale(x, copies), p.hr, crop=3) for x, p in zip(images, val_pairs)]
        return round(fp32 - float(np.mean(found)), 4)

    rows = []
    for i, name in enumerate(HIDDEN):
        rows.append({"rounded": name, "copies": [1 if j == i else 0 for j in range(7)]})
    rows += [{"rounded": "all", "copies": [k] * 7} for k in (1, 2, 4)]
    rows += [{"rounded": "all", "copies": list(counts)} for counts in LAYOUTS[:-1]]
    for row in rows:
        row["drop"] = drop(row["copies"])
        print(f"{row['rounded']} {row['copies']}: drop {row['drop']:.4f} dB", flush=True)
    result = {"checkpoint": CHECKPOINT.name, "model": MODEL, "fp32": round(fp32, 4),
              "rows": rows}
    lines = [("Float simulation of FSRCNN x3's hidden ReLU tensors (two-ReLU, subpixel layout) "
              "rounded to int8, each channel on its own full range over the images scored, "
              "weights float; k copies read as a grid k times finer; held-out tenth of T91 + "
              f"BSD200, RGB, crop 3; FP32 {fp32:.3f} dB; `python benchmarks/fsrcnn_copies.py "
              "--write-readme`."), "", "| tensors rounded | copies (conv1 ... conv7) | drop |",
             "|---|---|---|"]
    lines += [f"| {r['rounded']} | {' '.join(str(k) if k else '-' for k in r['copies'])} | "
              f"{r['drop']:.3f} |" for r in rows]
    publish("fsrcnn_copies", result, "\n".join(lines), write_readme=args.write_readme)


if __name__ == "__main__":
    main()
