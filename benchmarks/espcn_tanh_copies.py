"""Whether carrying ESPCN's tanh inputs on offset copies would bring its INT8 floor under 0.05 dB.

ESPCN (the DIV2K-trained x3 checkpoint of the ETDS zoo) keeps its published tanh layers, and
TFLite's int8 TANH reads its input on one range per tensor: those roundings alone cost about
0.2 dB (``benchmarks/zoo.py``, the floor lines). The copies that ETDS's image path takes
(:func:`mai_sr.models.qat.equalize.dither_copies`) have an analogue here: k copies of a
tanh's input channel offset by -(k-1)/2k, ..., (k-1)/2k of the tensor's step, each through
its own tanh, averaged by the next conv (its kernel rows divided by k). In float that is
the mean of tanh over a box one step wide around the input, tanh to second order in the
offsets; in INT8 the input is rounded on a k-times finer grid. This is a float simulation,
not an INT8 file: only the two tanh layers are rounded (input on the range the calibration
images give, clipped to where tanh reaches 1 - 1/256; output on TFLite's fixed 1/128 grid),
weights and everything else stay float. PSNR (RGB, crop 3) on the held-out tenth of T91 +
BSD200, the QAT recipes' validation images. MACs per LR pixel counted from the kernels.

    python benchmarks/espcn_tanh_copies.py [--copies 1x1,2x1,4x1,2x2,4x2,8x2]

Writes ``benchmarks/results/espcn_tanh_copies.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _held_out as held_out  # noqa: E402
from _publish import add_write_readme, publish  # noqa: E402

CHECKPOINT = held_out.ARTIFACTS / "etds_zoo" / "pretrained" / "ESPCN" / "ESPCN_x3.pth"
TANH_OUT_LEVELS = 128    # TFLite's int8 TANH output: scale 1/128, zero point 0
TARGET_DB = 0.05


def split_and_kernels() -> tuple[list, list, dict]:
    """(training pairs, held-out pairs, ESPCN x3's float conv weights by layer name): the
    held-out split of T91 + BSD200 and the zoo checkpoint as ``mai-sr import`` reads it."""
    train_pairs, val_pairs = held_out.split("espcn")
    model = held_out.imported(CHECKPOINT, "espcn")
    kernels = {layer.name: [w.numpy() for w in layer.weights]
               for layer in model.layers if layer.name in ("conv1", "conv2", "conv3")}
    return train_pairs, val_pairs, kernels


def conv(kernels: dict, x, name: str):
    """ESPCN's conv `name` (its float weights in `kernels`) on the batch `x`."""
    from mai_sr._tf import tf

    kernel, bias = kernels[name]
    return tf.nn.conv2d(x, kernel, 1, "SAME") + bias


def output_image(kernels: dict, second_tanh):
    """The SR image (uint8 HxWx3) ESPCN makes from its second tanh layer's output (a batch of
    one): conv3, sigmoid, x 255, depth-to-space, rounded to pixels."""
    import numpy as np

    from mai_sr._tf import tf

    y = tf.nn.depth_to_space(tf.sigmoid(conv(kernels, second_tanh, "conv3")) * 255.0, 3)
    return np.clip(np.round(y.numpy()[0]), 0, 255).astype(np.uint8)


def simulate(kernels: dict, lr, ranges, copies, rounded: bool):
    """ESPCN on one LR image (float32 HxWx3 in [0, 255]) with the tanh layers rounded as the
    module docstring says (`copies` = (k1, k2) per tanh layer), or in float."""
    import numpy as np

    from mai_sr._tf import tf

    def tanh_layer(z, bounds, k):
        if not rounded:
            return tf.tanh(z)
        low, high = bounds
        step = (high - low) / 255.0
        total = 0.0
        for j in range(k):
            shifted = z + (j / k - (k - 1) / (2 * k)) * step
            z_q = tf.clip_by_value(tf.round((shifted - low) / step), 0, 255) * step + low
            total += tf.clip_by_value(tf.round(tf.tanh(z_q) * TANH_OUT_LEVELS),
                                      -TANH_OUT_LEVELS, TANH_OUT_LEVELS - 1) / TANH_OUT_LEVELS
        return total / k

    x = tf.constant(lr[None].astype(np.float32))
    a1 = tanh_layer(conv(kernels, x, "conv1"), ranges[0], copies[0])
    a2 = tanh_layer(conv(kernels, a1, "conv2"), ranges[1], copies[1])
    return output_image(kernels, a2)


def table(result: dict) -> str:
    """The docs table: every count of copies tried, its held-out PSNR, drop and MACs."""
    rows = result["rows"]
    lines = [("Float simulation of ESPCN x3's two tanh layers rounded as TFLite's int8 TANH "
              "(nothing else rounded), with k copies of each tanh's input on offset grids; "
              f"held-out tenth of T91 + BSD200, RGB, crop 3; FP32 {result['fp32']:.3f} dB; "
              "`python benchmarks/espcn_tanh_copies.py --write-readme`."), "",
             "| copies (first x second tanh) | PSNR | drop | MACs vs published |",
             "|---|---|---|---|"]
    lines += [f"| {r['copies'][0]} x {r['copies'][1]} | {r['psnr']:.3f} | {r['drop']:.3f}"
              f"{' (under ' + str(TARGET_DB) + ')' if r['drop'] <= TARGET_DB else ''} | "
              f"{r['macs_ratio']:.2f}x |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", default="1x1,2x1,4x1,8x1,2x2,4x2,8x2",
                        help="copies of the first x the second tanh's input, comma-separated")
    add_write_readme(parser)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from mai_sr._tf import tf
    from mai_sr.metrics import psnr

    train_pairs, val_pairs, kernels = split_and_kernels()
    # Each tanh input's range: min/max over the calibration images, clipped where tanh is
    # within half an output step of +-1 (beyond it every input gives the end level anyway).
    saturated = float(np.arctanh(1 - 1 / (2 * TANH_OUT_LEVELS)))
    lows, highs = [np.inf, np.inf], [-np.inf, -np.inf]
    for batch in held_out.calibration(train_pairs):
        z1 = conv(kernels, batch, "conv1")
        z2 = conv(kernels, tf.tanh(z1), "conv2")
        for i, z in enumerate((z1, z2)):
            lows[i] = min(lows[i], float(tf.reduce_min(z)))
            highs[i] = max(highs[i], float(tf.reduce_max(z)))
    ranges = [(max(lo, -saturated), min(hi, saturated)) for lo, hi in zip(lows, highs)]

    def mean_psnr(copies, rounded=True):
        return float(np.mean([psnr(simulate(kernels, p.lr, ranges, copies, rounded), p.hr,
                                   crop=3) for p in val_pairs]))

    c1, c2 = (kernels[n][0].shape for n in ("conv1", "conv2"))
    c3 = kernels["conv3"][0].shape
    published_macs = int(np.prod(c1)) + int(np.prod(c2)) + int(np.prod(c3))
    fp32 = mean_psnr((1, 1), rounded=False)
    rows = []
    for spec in args.copies.split(","):
        k1, k2 = (int(k) for k in spec.split("x"))
        macs = int(np.prod(c1)) * k1 + int(np.prod(c2)) * k1 * k2 + int(np.prod(c3)) * k2
        value = mean_psnr((k1, k2))
        rows.append({"copies": [k1, k2], "psnr": round(value, 4), "drop": round(fp32 - value, 4),
                     "macs_ratio": round(macs / published_macs, 2)})
        print(f"copies {k1} x {k2}: {value:.3f} dB (drop {fp32 - value:.3f}), "
              f"{macs / published_macs:.2f}x the MACs", flush=True)
    result = {"checkpoint": CHECKPOINT.name, "fp32": round(fp32, 4),
              "ranges": [[round(a, 4), round(b, 4)] for a, b in ranges], "rows": rows}
    publish("espcn_tanh_copies", result, table(result), write_readme=args.write_readme)


if __name__ == "__main__":
    main()
