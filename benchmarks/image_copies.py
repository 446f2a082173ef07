"""How many copies of ETDS's image path to carry, chosen on held-out training images.

The layout option ``image_extra`` of ETDS (:mod:`mai_sr.models.etds`) appends copies of the
three image-path channels to every hidden tensor; the quantizer offsets them so that k
copies round like one channel on a k-times finer grid
(:func:`mai_sr.models.qat.equalize.dither_copies`). More copies cost MACs, (C + extra)^2 /
C^2 per hidden conv. For each ETDS size this imports the published x3 checkpoint, rewrites
it with each count of copies, and scores the calibrated INT8 model (fake-quant PTQ,
calibrated as QAT starts: the first 16 training images) on the held-out tenth of T91 +
BSD200 that the QAT recipes validate on (never a test set). The count chosen for a size is
the fewest copies within :data:`TIE_DB` of the best; every size and count tried is
reported, chosen or not.

    python benchmarks/image_copies.py [--sizes etds,etds_s,etds_m,etds_l] [--extra 4,8,12]

Writes ``benchmarks/results/image_copies.json`` (merged by size and count).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _held_out as held_out  # noqa: E402
from _publish import add_write_readme, measured_under, publish, recorded  # noqa: E402

TIE_DB = 0.002  # as benchmarks/qat_steps.py: closer than this on validation is a tie
SIZE_ORDER = ("etds", "etds_s", "etds_m", "etds_l")  # ETDS-T, -S, -M, -L


def measure(size: str, counts: list[int], train_pairs, val_pairs) -> dict:
    """Held-out PSNR of the published x3 checkpoint of ETDS `size` in float, and calibrated
    INT8 with each count of image-path copies."""
    from mai_sr import registry
    from mai_sr.models import create_model
    from mai_sr.models.etds import relayout
    from mai_sr.models.qat import quantize_model
    from mai_sr.train.loop import _val_psnr

    shape = registry.SIZES[size]
    checkpoint = (held_out.ARTIFACTS / "etds_zoo" / "pretrained" / "ETDS"
                  / f"ETDS_M{shape['blocks']}C{shape['channels']}_x3.pth")
    plain = held_out.imported(checkpoint, size)
    calibration = held_out.calibration(train_pairs)
    entry = {"checkpoint": checkpoint.name, "fp32_val": round(_val_psnr(plain, val_pairs, 3), 4)}
    for extra in counts:
        option = create_model(f"{size}_image_pair", 3, deploy=True, image_extra=extra)
        relayout(plain, option)
        entry[f"extra_{extra}"] = {
            "ptq_val": round(_val_psnr(quantize_model(option, calibration), val_pairs, 3), 4),
            "width": int(option.get_layer("conv2").kernel.shape[-1])}
        print(f"{size} image_extra={extra}: {entry[f'extra_{extra}']}", flush=True)
    return entry


def counts_of(entry: dict) -> dict[int, dict]:
    return dict(sorted((int(key.split("_")[1]), run) for key, run in entry.items()
                       if key.startswith("extra_")))


def choose(entry: dict) -> int:
    """The fewest copies whose held-out PSNR is within :data:`TIE_DB` of the best count's."""
    runs = counts_of(entry)
    best = max(run["ptq_val"] for run in runs.values())
    return min(extra for extra, run in runs.items() if run["ptq_val"] >= best - TIE_DB)


def table(results: dict) -> str:
    rows = ["| ETDS size | checkpoint | FP32 | calibrated INT8 by copies: PSNR (drop) | fewest "
            "within 0.002 dB of the best |", "|---|---|---|---|---|"]
    sizes = results["sizes"]
    for size, entry in sorted(sizes.items(), key=lambda item: (SIZE_ORDER.index(item[0])
                                                                if item[0] in SIZE_ORDER else 99)):
        fp32 = entry["fp32_val"]
        cells = "; ".join(f"{extra}: {run['ptq_val']:.3f} ({fp32 - run['ptq_val']:.3f})"
                          for extra, run in counts_of(entry).items())
        rows.append(f"| `{size}` | {entry['checkpoint']} | {entry['fp32_val']:.3f} | {cells} | "
                    f"{entry['chosen_extra']} |")
    return "\n".join(["Held-out tenth of T91 + BSD200 (the QAT recipes' validation images), "
                      "RGB PSNR in dB, crop 3, x3; calibrated INT8 = fake-quant PTQ before "
                      "any QAT step; `python benchmarks/image_copies.py --write-readme`.", "",
                      *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(SIZE_ORDER),
                        help="ETDS sizes (registry names), comma-separated")
    parser.add_argument("--extra", default="4,8,12",
                        help="counts of image-path copies, comma-separated")
    add_write_readme(parser)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results = recorded("image_copies")
    sizes = results.setdefault("sizes", {})
    counts = [int(c) for c in args.extra.split(",")]
    train_pairs, val_pairs = held_out.split("etds")
    for size in args.sizes.split(","):
        entry = sizes.setdefault(size, {})
        entry.update(measure(size, counts, train_pairs, val_pairs))
        entry["chosen_extra"] = choose(entry)
    results["rule"] = (f"held-out tenth of T91 + BSD200; the fewest copies within {TIE_DB} dB "
                       "of the best count's calibrated INT8 PSNR")
    results["measured_under"] = measured_under()
    publish("image_copies", results, table(results), write_readme=args.write_readme)


if __name__ == "__main__":
    main()
