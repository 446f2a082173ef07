"""How many groups ESPCN's tanh layers take (the layout option ``tanh_groups``), chosen on
held-out training images.

TFLite's int8 TANH reads its input on one range per tensor; ESPCN's channels peak anywhere
from about 0.5 to far past where tanh saturates, so one range rounds the narrow channels
coarsely. The layout option splits each tanh layer's conv into g convs whose channels have
like ranges (sorted by their peak |pre-activation|, dealt out in that order), each through
its own tanh with its own input range. This is a float simulation of the two tanh layers
alone, as the INT8 file rounds them and nothing else: each group's input on the symmetric
range [-a, a] that ``fit_activation_inputs`` picks (least squared error of the int8 tanh
over the calibration images' values), each output on TFLite's fixed 1/128 grid. PSNR (RGB,
crop 3) on the held-out tenth of T91 + BSD200, the QAT recipes' validation images; the
channels are sorted and the ranges fitted on the calibration images (training images), as
the import and the QAT start do. The groups of each layer are equal, so the MACs do not
change; only the number of ops does.

With ``--copies`` it also simulates the layout option ``tanh_copies`` on top of the groups
chosen (4 x 2): each group's channels k times, the copies' inputs at centred fractions of
their group's step, (j + 1/2) / k - 1/2, as ``dither_activation_copies`` sets them, and the
next conv reading their mean.

    python benchmarks/espcn_tanh_groups.py [--groups 1x1,2x2,4x2,4x4,8x4,8x8]
        [--copies 1x1,2x1,2x2,4x1,4x2] [--write-readme]

Writes ``benchmarks/results/espcn_tanh_groups.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _held_out as held_out  # noqa: E402
from _publish import add_write_readme, publish  # noqa: E402
from espcn_tanh_copies import (CHECKPOINT, conv, output_image,  # noqa: E402
                               split_and_kernels)

FIT_SAMPLES = 200_000  # values per group the range fit measures its error on (as the QAT start)


def group_bounds(pre_activations: list, groups: int, rng) -> list:
    """Per channel, the fitted bound a of its group when the channels of `pre_activations`
    (one array per calibration batch) are sorted by peak |value| and dealt into `groups`."""
    import numpy as np

    from mai_sr.models.qat.quantize import (ACTIVATION_INPUT_BOUNDS, _fake_quant,
                                            _int8_activation)

    channels = pre_activations[0].shape[-1]
    peak = np.max([np.abs(z).reshape(-1, channels).max(0) for z in pre_activations], axis=0)
    bounds = np.empty(channels)
    for members in np.array_split(np.argsort(peak, kind="stable"), groups):
        values = np.concatenate([z[..., members].reshape(-1) for z in pre_activations])
        values = rng.choice(values, min(FIT_SAMPLES, values.size), replace=False)
        values = values.astype(np.float64)
        errors = [np.mean((_int8_activation("tanh", _fake_quant(values, -a, a))
                           - np.tanh(values)) ** 2) for a in ACTIVATION_INPUT_BOUNDS]
        bounds[members] = ACTIVATION_INPUT_BOUNDS[int(np.argmin(errors))]
    return bounds


def rounded_tanh(z, bounds):
    """tanh of `z` (float, channels last) with channel c's input on [-bounds[c], bounds[c]]
    and the output on TFLite's fixed grid, as the QAT start's range fit rounds them."""
    from mai_sr.models.qat.quantize import _fake_quant, _int8_activation

    return _int8_activation("tanh", _fake_quant(z, -bounds, bounds)).astype("float32")


def rounded_tanh_copies(z, bounds, copies: int):
    """The mean of `copies` :func:`rounded_tanh` of `z`, the j-th input moved by
    (j + 1/2) / copies - 1/2 of its channel's int8 step 2 bounds / 255."""
    import numpy as np

    step = 2 * bounds / 255.0
    return np.mean([rounded_tanh(z + ((j + 0.5) / copies - 0.5) * step, bounds)
                    for j in range(copies)], axis=0).astype("float32")


def table(result: dict) -> str:
    """The docs table: every grouping tried, its held-out PSNR and drop."""
    lines = [("Float simulation of ESPCN x3's two tanh layers rounded as TFLite's int8 TANH "
              "(nothing else rounded), each layer's channels in g groups of like range, each "
              "group on its own fitted input range; held-out tenth of T91 + BSD200, RGB, crop "
              f"3; FP32 {result['fp32']:.3f} dB; `python benchmarks/espcn_tanh_groups.py "
              "--write-readme`."), "",
             "| groups (first x second tanh) | channels per group | PSNR | drop |",
             "|---|---|---|---|"]
    lines += [f"| {r['groups'][0]} x {r['groups'][1]} | {64 // r['groups'][0]} / "
              f"{32 // r['groups'][1]} | {r['psnr']:.3f} | {r['drop']:.3f} |"
              for r in result["rows"]]
    if result.get("copies_rows"):
        g1, g2 = result["copies_groups"]
        lines += ["", (f"With the groups {g1} x {g2} and each group's channels k times, the "
                       "copies' inputs at centred fractions of their step (the layout option "
                       "`tanh_copies`):"),
                  "", "| copies (first x second tanh) | PSNR | drop | MACs vs published |",
                  "|---|---|---|---|"]
        lines += [f"| {r['copies'][0]} x {r['copies'][1]} | {r['psnr']:.3f} | {r['drop']:.3f} | "
                  f"{r['macs_ratio']:.2f}x |" for r in result["copies_rows"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", default="1x1,2x2,4x2,4x4,8x4,8x8",
                        help="groups of the first x the second tanh layer, comma-separated")
    parser.add_argument("--copies", default="",
                        help="copies of the first x the second tanh layer's groups, "
                             "comma-separated, on the groups 4 x 2 (none by default)")
    add_write_readme(parser)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from mai_sr._tf import tf
    from mai_sr.metrics import psnr

    train_pairs, val_pairs, kernels = split_and_kernels()
    first = [conv(kernels, batch, "conv1").numpy() for batch in
             held_out.calibration(train_pairs)]
    second = [conv(kernels, np.tanh(z), "conv2").numpy() for z in first]

    def mean_psnr(bounds=None, copies=(1, 1)) -> float:
        found = []
        for pair in val_pairs:
            x = pair.lr[None].astype(np.float32)
            if bounds is None:
                a2 = tf.tanh(conv(kernels, tf.tanh(conv(kernels, x, "conv1")), "conv2"))
            else:
                a1 = rounded_tanh_copies(conv(kernels, x, "conv1").numpy(), bounds[0],
                                         copies[0])
                a2 = rounded_tanh_copies(conv(kernels, a1, "conv2").numpy(), bounds[1],
                                         copies[1])
            found.append(psnr(output_image(kernels, a2), pair.hr, crop=3))
        return float(np.mean(found))

    fp32 = mean_psnr()
    rows = []
    for spec in args.groups.split(","):
        g1, g2 = (int(g) for g in spec.split("x"))
        rng = np.random.default_rng(0)
        bounds = (group_bounds(first, g1, rng), group_bounds(second, g2, rng))
        value = mean_psnr(bounds)
        rows.append({"groups": [g1, g2], "psnr": round(value, 4), "drop": round(fp32 - value, 4),
                     "bounds": [sorted({float(b) for b in layer}) for layer in bounds]})
        print(f"groups {g1} x {g2}: {value:.3f} dB (drop {fp32 - value:.3f})", flush=True)
    result = {"checkpoint": CHECKPOINT.name, "fp32": round(fp32, 4), "rows": rows}
    if args.copies:
        from mai_sr.models import create_model
        from mai_sr.profile import profile_keras

        def macs(copies) -> float:  # at 360x640, as the zoo table counts them
            return profile_keras(create_model("espcn", deploy=True, input_size=(360, 640),
                                              tanh_copies=copies)).macs

        groups = (4, 2)
        rng = np.random.default_rng(0)
        bounds = (group_bounds(first, groups[0], rng), group_bounds(second, groups[1], rng))
        result["copies_groups"], result["copies_rows"] = list(groups), []
        for spec in args.copies.split(","):
            k1, k2 = (int(k) for k in spec.split("x"))
            value = mean_psnr(bounds, (k1, k2))
            result["copies_rows"].append({"copies": [k1, k2], "psnr": round(value, 4),
                                          "drop": round(fp32 - value, 4),
                                          "macs_ratio": round(macs((k1, k2)) / macs((1, 1)),
                                                              3)})
            print(f"copies {k1} x {k2}: {value:.3f} dB (drop {fp32 - value:.3f})", flush=True)
    publish("espcn_tanh_groups", result, table(result), write_readme=args.write_readme)


if __name__ == "__main__":
    main()
