"""Export time, eval throughput, and the cost of tiled upscaling of a full-HD image.

1. Export: ``mai_sr.export.convert.export`` of ABPN (deploy graph, seeded random weights,
   INT8 post-training quantization on ``--calib-n`` builtin crops), writing both the fixed
   1x360x640x3 file and the dynamic ``*_none.tflite``. Wall time of that one call.
2. Eval throughput: ``mai_sr.evaluate.evaluate_tflite`` on Set14, in megapixels of HR
   output per second, end to end (reading, bicubic baseline, PSNR/SSIM included) and for
   the model invokes alone, for the dynamic model (whole images) and the fixed one (each
   image padded into a 360x640 tile).
3. Tiled upscaling of a 1920x1080 LR image (a Set14 photo resized by Pillow) to 5760x3240:
   the fixed-shape model in 360x640 tiles (overlapping by the receptive field) against one
   whole-image invoke of the dynamic model. Median of ``--repeats`` after one warm-up; the
   two outputs are compared pixel for pixel.

Weights are untrained, so no PSNR is reported: INT8 runtime does not depend on the values.

    python benchmarks/export_eval.py [--repeats 3] [--calib-n 100] [--no-write]

Prints the figures, writes ``benchmarks/results/export_eval.json`` and rewrites the table in
the README's ``eval`` section.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from _publish import add_write_readme, publish

ROOT = Path(__file__).resolve().parents[1]
FULL_HD = (1080, 1920)  # LR (H, W) of the tiling test: output 3240x5760
THREADS = 2


def shared_data() -> Path:
    return Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))


def export_abpn(out_dir: Path, calib_n: int) -> dict:
    from mai_sr._tf import keras
    from mai_sr.export.convert import export
    from mai_sr.models import create_model

    keras.utils.set_random_seed(0)
    weights = out_dir / "abpn_random.weights.h5"
    create_model("abpn", deploy=True).save_weights(str(weights))
    start = time.perf_counter()
    paths = export(out_dir / "abpn.tflite", model="abpn", weights=str(weights), dynamic=True,
                   precision="int8", calib_n=calib_n)
    seconds = time.perf_counter() - start
    print(f"export: {seconds:.1f} s for {', '.join(p.name for p in paths)}")
    return {"seconds": seconds, "files": [p.name for p in paths], "calib_n": calib_n,
            "precision": "int8", "model": "abpn"}


def eval_throughput(model_path: Path, data: Path) -> dict:
    """Megapixels of HR output per second: `evaluate_tflite` end to end, and inference only."""
    from mai_sr.data import load_pairs
    from mai_sr.evaluate import evaluate_tflite
    from mai_sr.tflite.runtime import TFLiteSR

    start = time.perf_counter()
    (result,) = evaluate_tflite(model_path, [str(data)], quiet=True, threads=THREADS)
    seconds = time.perf_counter() - start
    megapixels = sum(i.height * i.width for i in result.images) / 1e6
    pairs, model = load_pairs(data), TFLiteSR(model_path, THREADS)
    start = time.perf_counter()
    for pair in pairs:
        model.upscale(pair.lr)
    infer_seconds = time.perf_counter() - start
    print(f"eval {model_path.name} on {result.dataset}: {megapixels:.2f} MP in {seconds:.2f} s "
          f"= {megapixels / seconds:.2f} MP/s; inference alone {infer_seconds:.2f} s = "
          f"{megapixels / infer_seconds:.2f} MP/s")
    return {"dataset": result.dataset, "images": len(result.images),
            "hr_megapixels": megapixels, "seconds": seconds, "mp_per_s": megapixels / seconds,
            "inference_seconds": infer_seconds, "inference_mp_per_s": megapixels / infer_seconds}


def timed(fn, repeats: int) -> tuple[float, np.ndarray]:
    """Median seconds of `repeats` calls after one warm-up, and the last output."""
    out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def tiled_upscale(fixed_path: Path, dynamic_path: Path, repeats: int) -> dict:
    from mai_sr.tflite.runtime import TFLiteSR

    photo = Image.open(shared_data() / "Set14" / "lenna.png").convert("RGB")
    lr = np.asarray(photo.resize(FULL_HD[::-1], Image.BICUBIC))
    fixed, dynamic = TFLiteSR(fixed_path, THREADS), TFLiteSR(dynamic_path, THREADS)
    tiles = fixed.tiles(*FULL_HD)
    tiled_s, tiled = timed(lambda: fixed.upscale(lr), repeats)
    whole_s, whole = timed(lambda: dynamic.upscale(lr), repeats)
    tile_pixels = sum((r.stop - r.start) * (c.stop - c.start) for r, c in tiles)
    overhead = tile_pixels / (FULL_HD[0] * FULL_HD[1])
    identical = bool(np.array_equal(tiled, whole))
    print(f"upscale {FULL_HD[1]}x{FULL_HD[0]} -> {tiled.shape[1]}x{tiled.shape[0]}: "
          f"{len(tiles)} tiles of 360x640 {tiled_s:.2f} s, whole image {whole_s:.2f} s, "
          f"ratio {tiled_s / whole_s:.2f} (pixels computed x{overhead:.2f}); "
          f"identical: {identical}")
    return {"lr": list(FULL_HD), "hr": [3 * FULL_HD[0], 3 * FULL_HD[1]],
            "tile": list(fixed.fixed_shape), "tiles": len(tiles),
            "receptive_field": fixed.receptive_field, "tiled_s": tiled_s, "whole_s": whole_s,
            "ratio": tiled_s / whole_s, "pixel_overhead": overhead, "identical": identical,
            "repeats": repeats}


def run(repeats: int, calib_n: int) -> dict:
    import ai_edge_litert

    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(tmp)
        exported = export_abpn(out_dir, calib_n)
        fixed, dynamic = out_dir / "abpn.tflite", out_dir / "abpn_none.tflite"
        set14 = shared_data() / "Set14"
        result = {
            "export": exported,
            "eval_dynamic": eval_throughput(dynamic, set14),
            "eval_fixed": eval_throughput(fixed, set14),
            "upscale": tiled_upscale(fixed, dynamic, repeats),
        }
    from mai_sr._tf import tf

    result["machine"] = {"cpus": os.cpu_count(), "threads": THREADS,
                         "load_avg_1min": os.getloadavg()[0],
                         "python": platform.python_version(), "tensorflow": tf.__version__,
                         "ai_edge_litert": getattr(ai_edge_litert, "__version__", "?")}
    result["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return result


def readme_table(r: dict) -> str:
    up, m = r["upscale"], r["machine"]
    ex = r["export"]
    return "\n".join([
        "| measurement (ABPN, INT8) | result |",
        "|---|---|",
        f"| `export` fixed + dynamic files, PTQ on {ex['calib_n']} crops | "
        f"{ex['seconds']:.1f} s |",
        *[f"| `eval` {e['dataset']}, {kind}: end to end (inference alone) | "
          f"{e['mp_per_s']:.2f} ({e['inference_mp_per_s']:.2f}) MP/s of HR output |"
          for kind, e in (("dynamic model, whole images", r["eval_dynamic"]),
                          ("fixed 360×640 model, padded tiles", r["eval_fixed"]))],
        f"| upscale {up['lr'][1]}×{up['lr'][0]} → {up['hr'][1]}×{up['hr'][0]}, one invoke "
        f"of the dynamic model | {up['whole_s']:.2f} s |",
        f"| same image, {up['tiles']} tiles of 360×640 (fixed model, overlap "
        f"2×{up['receptive_field']}) | {up['tiled_s']:.2f} s |",
        f"| tiled / whole time (pixels computed: ×{up['pixel_overhead']:.2f}) | "
        f"**{up['ratio']:.2f}**; outputs identical: {'yes' if up['identical'] else 'NO'} |",
        "",
        f"Untrained weights (runtime does not depend on them), LiteRT on {m['threads']} threads "
        f"of a {m['cpus']}-CPU machine shared with other jobs (1-min load "
        f"{m['load_avg_1min']:.1f}); median of {up['repeats']} runs after a warm-up; "
        f"{r['date'][:10]}. Written by `benchmarks/export_eval.py`.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calib-n", type=int, default=100)
    parser.add_argument("--no-write", action="store_true", help="print only")
    add_write_readme(parser)
    args = parser.parse_args()
    result = run(args.repeats, args.calib_n)
    if not args.no_write:
        publish("export_eval", result, readme_table(result), write_readme=args.write_readme)


if __name__ == "__main__":
    main()
