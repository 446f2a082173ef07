"""Write ``mai_sr/pretrained/zoo.json``: the ETDS zoo's published checkpoints as named weights.

Run by maintainers when the zoo changes (it reads ``../shared/artifacts/etds_zoo``, which
users do not have); the package ships only the table it writes. Each of the 47 checkpoints of
the registered architectures gets a name ``ARCH.TAG``: ``etds_div2k`` at x3 (the challenge's
scale), ``etds_div2k_x2``/``_x4`` at the others, ``_et`` for the authors' equivalent-
transformation forms (ABPN_ET_*, ECBSR_ET_*). ``Plain_M6C32_x4`` (an ablation net of the
paper, no registered architecture) is left out. Every row holds the checkpoint's sha256 and
size, its public URL at the commit the files were taken from, the licence and, from the
paper's Table 2 (``table2.csv``), its published Y PSNR on Set5, Set14, B100, Urban100 and
DIV2K100 and its parameters and MACs.

    python benchmarks/make_weights_table.py [--zoo ../shared/artifacts/etds_zoo]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "mai_sr" / "pretrained" / "zoo.json"
# The repository and commit the files were taken from (the zoo's SOURCES.md).
REPOSITORY = "ECNUSR/ETDS"
COMMIT = "64ad1b8"
URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}/experiments/pretrained_models"
PAPER = ("J. Chao, Z. Zhou, H. Gao, J. Gong, Z. Yang, Z. Zeng, L. Dehbi, \"Equivalent "
         "Transformation and Dual Stream Network Construction for Mobile Image "
         "Super-Resolution\", CVPR 2023")
# checkpoint stem (without _xS) -> registered architecture
ARCHITECTURES = {
    "ESPCN": "espcn", "FSRCNN": "fsrcnn",
    "ECBSR_M4C16": "ecbsr", "ECBSR_M4C32": "ecbsr_m4c32", "ECBSR_M6C40": "ecbsr_m6c40",
    "ABPN_M4C28": "abpn", "ABPN_M6C40": "abpn_m6c40",
    "ETDS_M5C16": "etds", "ETDS_M4C32": "etds_s", "ETDS_M6C32": "etds_m",
    "ETDS_M7C48": "etds_l",
}
SETS = ("set5", "set14", "b100", "urban100", "div2k100")
SET_NAMES = {"set5": "Set5", "set14": "Set14", "b100": "B100", "urban100": "Urban100",
             "div2k100": "DIV2K100"}


def table2(zoo: Path) -> dict[str, dict]:
    """checkpoint path (FAMILY/NAME.pth) -> its Table 2 row."""
    with open(zoo / "table2.csv", newline="") as f:
        return {row["checkpoint"]: row for row in csv.DictReader(f) if row["checkpoint"]}


def weight_name(stem: str) -> tuple[str, int, bool] | None:
    """(architecture, scale, is an _ET_ form) of a checkpoint stem, or None."""
    m = re.fullmatch(r"(?P<fam>[A-Z]+)(?P<et>_ET)?(?P<size>_M\d+C\d+)?_x(?P<s>\d)", stem)
    if not m:
        return None
    arch = ARCHITECTURES.get(m["fam"] + (m["size"] or ""))
    return (arch, int(m["s"]), bool(m["et"])) if arch else None


def build(zoo: Path) -> list[dict]:
    published = table2(zoo)
    rows = []
    for path in sorted((zoo / "pretrained").rglob("*.pth")):
        placed = weight_name(path.stem)
        if placed is None:
            continue
        arch, scale, et = placed
        tag = "etds_div2k" + ("_et" if et else "") + ("" if scale == 3 else f"_x{scale}")
        relative = f"{path.parent.name}/{path.name}"
        plain = relative.replace("_ET_", "_")  # an _ET_ form is scored as its plain form
        row = published.get(plain, {})
        rows.append({
            "name": f"{arch}.{tag}", "architecture": arch, "scale": scale,
            "form": "equivalent-transformation (training) form" if et else "published form",
            "file": relative, "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "url": f"{URL}/{relative}", "licence": "Apache-2.0",
            "source": f"{REPOSITORY} @ {COMMIT}, experiments/pretrained_models/{relative}",
            "paper": PAPER, "trained_on": "DIV2K",
            "published_psnr_y": {SET_NAMES[s]: float(row[f"{s}_psnr_y"]) for s in SETS
                                 if row.get(f"{s}_psnr_y")},
            "params_k": float(row["params_k"]) if row.get("params_k") else None,
            "macs_g": float(row["macs_g"]) if row.get("macs_g") else None,
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zoo", type=Path, default=ROOT.parent / "shared" / "artifacts" / "etds_zoo")
    args = parser.parse_args()
    rows = build(args.zoo)
    OUT.write_text(json.dumps({"source": f"{REPOSITORY} @ {COMMIT}", "paper": PAPER,
                               "weights": rows}, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}: {len(rows)} weights")


if __name__ == "__main__":
    main()
