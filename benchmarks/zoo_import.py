"""Import the whole DIV2K-trained ETDS zoo without --model and check it three ways.

For each of the 33 main checkpoints (11 models x 3 scales) in
``../shared/artifacts/etds_zoo/pretrained``: ``import_weights(file)`` with no model name
(the family, size and scale come from the state dict), then the FP32 Y PSNR on Set5, Set14
and B100 (HR cropped to a multiple of the scale, border = scale, mai_sr.metrics with
y_channel=True), against the paper's figures in ``table2.csv`` (Chao et al., "Equivalent
Transformation and Dual Stream Network Construction for Mobile Image Super-Resolution",
CVPR 2023, Table 2), every difference reported. Each of the 15 ``_ET_`` files is imported
too and compared with its plain counterpart (both outputs clipped, in [0, 1] units). With
torch installed, every imported model is compared with the authors' reference PyTorch
model (``reference/archs``, loaded by path) on a real image (relative max difference).

    python benchmarks/zoo_import.py [--sets Set5,Set14,B100] [--only ETDS_M7C48_x3]

Writes ``benchmarks/results/zoo_import.json``; prints one line per checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared"
ZOO = SHARED / "artifacts" / "etds_zoo"
DATA = SHARED / "data"
OUT = ROOT / "benchmarks" / "results" / "zoo_import.json"
TOLERANCE_DB = 0.05      # the acceptance band around the paper's figures
ET_TOLERANCE = 1e-4      # ET file vs its plain counterpart, [0, 1] units
TORCH_TOLERANCE = 1e-4   # ours vs the reference PyTorch model, relative
SET_COLUMNS = {"Set5": "set5_psnr_y", "Set14": "set14_psnr_y", "B100": "b100_psnr_y"}


def paper_rows() -> list[dict]:
    with open(ZOO / "table2.csv", newline="") as f:
        return [row for row in csv.DictReader(f) if row["checkpoint"]]


def load_imported(path: Path, work: Path):
    """(import result, Keras deploy model with the imported weights)."""
    from mai_sr.importer import import_weights
    from mai_sr.models import create_model

    out = work / f"{path.stem}.weights.h5"
    result = import_weights(path, None, out, force=True)
    model = create_model(result.model, scale=result.scale, deploy=True)
    model.load_weights(str(out))
    return result, model


def y_psnr(model, folder: Path, scale: int) -> float:
    from mai_sr.data import iter_pairs
    from mai_sr.metrics import psnr

    values = []
    for pair in iter_pairs(folder, scale=scale):
        sr = np.asarray(model(pair.lr[None].astype(np.float32), training=False))[0]
        values.append(psnr(np.clip(np.rint(sr), 0, 255).astype(np.uint8), pair.hr,
                           crop=scale, y_channel=True))
    return float(np.mean(values))


def test_image(scale: int) -> np.ndarray:
    """A real LR image (Set14's first, cropped to 96 x 120): float32 (1, h, w, 3) in [0, 255]."""
    from mai_sr.data import iter_pairs

    pair = next(iter(iter_pairs(DATA / "Set14", scale=scale)))
    return pair.lr[None, :96, :120].astype(np.float32)


# ------------------------------------------------------------------ reference PyTorch models


def reference_module(family: str):
    """The authors' ``reference/archs/<FAMILY>_arch.py``, loaded by path."""
    path = ZOO / "reference" / "archs" / f"{family}_arch.py"
    spec = importlib.util.spec_from_file_location(f"etds_reference_{family}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_model(name: str, state: dict):
    """The reference nn.Module of checkpoint `name` (e.g. ``ECBSR_ET_M4C16_x3``), loaded."""
    import re

    family = name.split("_")[0]
    scale = int(name.rsplit("_x", 1)[1])
    size = re.search(r"M(\d+)C(\d+)", name)
    blocks, feat = (int(size.group(1)), int(size.group(2))) if size else (None, None)
    archs = reference_module(family)
    if family == "ESPCN":
        model = archs.ESPCN(colors=3, upscale=scale)
    elif family == "FSRCNN":
        model = archs.FSRCNN(upscale=scale)
    elif family == "ABPN":
        cls = archs.ABPN_ET if "_ET_" in name else archs.ABPN
        model = cls(num_feat=feat, num_block=blocks, scale=scale)
    elif family == "ECBSR":
        cls = archs.ECBSRET if "_ET_" in name else archs.ECBSRT
        model = cls(num_in_ch=3, num_out_ch=3, upscale=scale, num_block=blocks, num_feat=feat,
                    act_type="prelu")
    elif family == "ETDS":
        model = archs.ETDSForInference(num_in_ch=3, num_out_ch=3, upscale=scale,
                                       num_block=blocks, num_feat=feat, num_residual_feat=3)
    else:
        raise ValueError(name)
    model.load_state_dict(state)
    return model.eval()


def torch_difference(name: str, path: Path, model, lr: np.ndarray) -> float:
    """max |ours - theirs| / max |theirs| on `lr`, both clipped to [0, 1]."""
    import torch

    state = torch.load(str(path), map_location="cpu", weights_only=True)
    reference = reference_model(name, state)
    with torch.no_grad():
        theirs = reference(torch.from_numpy(lr / 255.0).permute(0, 3, 1, 2).float())
    theirs = np.clip(theirs.permute(0, 2, 3, 1).numpy(), 0, 1)
    ours = np.asarray(model(lr, training=False)) / 255.0
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="Set5,Set14,B100")
    parser.add_argument("--only", default=None, help="comma-separated checkpoint stems")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    sets = args.sets.split(",")
    only = set(args.only.split(",")) if args.only else None
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    rows, et_rows = [], []
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for paper in paper_rows():
            path = ZOO / "pretrained" / paper["checkpoint"]
            if only and path.stem not in only:
                continue
            scale = int(paper["scale"])
            result, model = load_imported(path, work)
            row = {"checkpoint": paper["checkpoint"], "paper_model": paper["model"],
                   "scale": scale, "imported_as": result.model, "imported_scale": result.scale,
                   "gate_margin_db": result.gate["margin"], "sets": {}}
            for name in sets:
                ours = y_psnr(model, DATA / name, scale)
                published = float(paper[SET_COLUMNS[name]])
                row["sets"][name] = {"ours": round(ours, 3), "paper": published,
                                     "diff": round(ours - published, 3),
                                     "within": abs(ours - published) <= TOLERANCE_DB}
            if have_torch:
                row["torch_rel_diff"] = torch_difference(path.stem, path, model,
                                                         test_image(scale))
            rows.append(row)
            print(json.dumps(row), flush=True)
            et_path = path.with_name(path.name.replace(path.name.split("_")[0] + "_",
                                                       path.name.split("_")[0] + "_ET_", 1))
            if et_path.is_file():
                et_result, et_model = load_imported(et_path, work)
                lr = test_image(scale)
                diff = float(np.abs(np.asarray(et_model(lr)) - np.asarray(model(lr))).max()
                             / 255.0)
                et_row = {"checkpoint": et_path.name, "imported_as": et_result.model,
                          "imported_scale": et_result.scale, "plain": paper["checkpoint"],
                          "max_abs_diff_vs_plain": diff, "within": diff <= ET_TOLERANCE}
                if have_torch:
                    et_row["torch_rel_diff"] = torch_difference(et_path.stem, et_path,
                                                                et_model, lr)
                et_rows.append(et_row)
                print(json.dumps(et_row), flush=True)
    summary = {
        "checkpoints": len(rows),
        "imported_as_expected": sum(r["imported_scale"] == r["scale"] for r in rows),
        "within_0.05_db": sum(all(v["within"] for v in r["sets"].values()) for r in rows),
        "max_abs_diff_db": max((abs(v["diff"]) for r in rows for v in r["sets"].values()),
                               default=None),
        "et_files": len(et_rows), "et_within": sum(r["within"] for r in et_rows),
        "torch_max_rel_diff": max((r["torch_rel_diff"] for r in rows + et_rows
                                   if "torch_rel_diff" in r), default=None),
        "seconds": round(time.time() - started, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "checkpoints": rows,
                                          "et_files": et_rows}, indent=2) + "\n")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
