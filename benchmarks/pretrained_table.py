"""The shipped weights' table, and with ``--ship`` the packaging.

Every weight in ``mai_sr/pretrained/shipped.json`` ships as a set of files named by the
weight (``abpn.etds_div2k.tflite``, ...). A weight is made by its recipe file
(``mai_sr/pretrained/recipes/NAME.json``):

    mai-sr train --recipe mai_sr/pretrained/recipes/NAME.json --out benchmarks/out/recipes/NAME

(the ``mai_builtin`` weights were made by ``benchmarks/pretrain.sh`` into
``benchmarks/out/pretrain/ARCH`` before recipe files existed). ``--measure NAME[,NAME]``
takes each weight's last run (the recipe's last stage, or the pretrain.sh run) and, through
`mai-sr report`'s own machinery (:func:`mai_sr.report.make_report`), exports its QAT model
(fixed 1x360x640 and dynamic shape), evaluates the INT8 file with LiteRT and the Keras FP32
deploy model on B100, Set14 and Set5 (RGB, border crop 3: what ``mai-sr eval`` does), lints
it, and times it with the local LiteRT runner and the SyNAP simulator; this script adds the
same scores on BT.601 luma (Y), the weight's attribution and its recipe record (the recipe
file's sha256, its training minutes) to the card. ``--ship`` copies the files into
``mai_sr/pretrained/``: the two .tflite files, ``NAME.weights.h5`` (the float deploy
weights QAT left, :func:`mai_sr.models.qat.quantize.deploy_from_qat`), ``NAME.qat.json`` (the QAT
activation ranges) and ``NAME.json`` (the card, whose file hashes are the shipped files').

Without ``--measure`` the table is made from the shipped cards alone. Beside each weight it
shows the DIV2K-trained INT8 file of the architecture's own authors where one is published
(:data:`REFERENCES`, measured here from ``../shared/artifacts``) and the gap to it, and it
checks the targets: INT8 at least 1.2 dB above bicubic on B100 and Set14, FP32 -> INT8 drop
at most 0.05 dB, lint clean, the architectures' published ranking kept by their default
weights, and :data:`TARGETS` against the references.

    python benchmarks/pretrained_table.py [--measure abpn.etds_div2k,ncnet.megsr_div2k --ship]
        [--write-readme]
    python benchmarks/pretrained_table.py --write-recipes   # after editing IMPORTED_QAT
    python benchmarks/pretrained_table.py --retime synap|local [--weights NAME,...]
        [--refresh-cards] [--write-readme]

``--retime`` times the shipped files again with one runner (the SyNAP simulator after a
recalibration, the local CPU on a quiet machine); ``--refresh-cards`` also rewrites those
figures in the shipped cards.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _publish import ROOT, add_write_readme, publish, result_path  # noqa: E402

from mai_sr.fileio import atomic_path, sha256_file, write_json  # noqa: E402

NAME = "pretrained"
DATA = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS", ROOT.parent / "shared" / "artifacts"))
SETS = ("B100", "Set14", "Set5")  # the first is the score's PSNR (like the report's first set)
CROP = 3
TARGET_GAIN_DB = 1.2      # target: INT8 over bicubic, on each of GAIN_SETS
GAIN_SETS = ("B100", "Set14")
TARGET_DROP_DB = 0.05     # target: FP32 -> INT8
PAPER_TOLERANCE_DB = 0.05  # target: INT8 Y of a zoo weight against its paper's FP32 Y
RANKING_GAP_DB = 0.1      # target: published PSNRs further apart than this must keep order
QUIET_LOAD = 2.0          # a CPU time taken above this 1-minute load (2 cores) says so
RECIPE_RUNS = ROOT / "benchmarks" / "out" / "recipes"    # mai-sr train --recipe ... --out here/NAME
BUILTIN_RUNS = ROOT / "benchmarks" / "out" / "pretrain"  # benchmarks/pretrain.sh
REPORT_OUT = ROOT / "benchmarks" / "out" / "pretrained_report"
SHIP_DIR = ROOT / "mai_sr" / "pretrained"
# The DIV2K-trained INT8 file published by each architecture's own authors (the reference of
# the gap column), under ../shared/artifacts: NJU's QAT ABPN and team MegSR's NCNet.
REFERENCES = {"abpn": ("NJU's INT8 QAT", "nju_abpn/base7_D4C28_bs16ps64_lr1e-3_qat.tflite"),
              "ncnet": ("MegSR's INT8", "megsr_ncnet/model_none.tflite")}
# Targets of the weights made from published DIV2K weights (INT8, RGB, every set): the margin
# over the reference, and another result that must be beaten by the same margin (a row of
# benchmarks/results/imported.json: mai-sr's QAT of the same published weights, earlier recipe).
TARGETS = {"abpn.etds_div2k": (-0.02, ("etds", "mai-sr INT8 QAT")),
           "ncnet.megsr_div2k": (+0.02, None)}


# ---------------------------------------------------------------- runs


def weight_run(name: str) -> Path:
    """The run that made weight `name`: its recipe's last stage under RECIPE_RUNS/NAME, or
    for a ``mai_builtin`` weight the pretrain.sh run of its architecture."""
    from mai_sr.pretrained import architecture, recipe_path
    from mai_sr.recipes import read_recipe
    from mai_sr.weights import SHIPPED_TAG

    if name.endswith(f".{SHIPPED_TAG}"):
        return BUILTIN_RUNS / architecture(name)
    last = read_recipe(recipe_path(name))["stages"][-1]["name"]
    return RECIPE_RUNS / name / last


def training_chain(run: Path) -> list[tuple[Path, dict]]:
    """(run dir, config) of the run and of the runs its FP32 stage was started from
    (``--init``), oldest first."""
    from mai_sr.runs import read_run_config

    chain = []
    while run:
        config = read_run_config(run)
        chain.insert(0, (Path(run), config))
        run = config.get("init_run")
    return chain


def training_minutes(run: Path) -> float:
    """Wall minutes of a run and of its --init chain (each stage's last invocation)."""
    summaries = [json.loads((r / "summary.json").read_text()) for r, _ in training_chain(run)]
    return round(sum(s["wall_seconds_last_invocation"] for s in summaries) / 60, 1)


# ---------------------------------------------------------------- measuring a weight


def _quality(result, source: str, precision: str) -> dict:
    """A card quality row of an EvalResult (the report's own fields)."""
    return {"dataset": result.dataset, "source": source, "precision": precision,
            "psnr": result.psnr, "ssim": result.ssim, "bicubic_psnr": result.bicubic_psnr,
            "bicubic_ssim": result.bicubic_ssim, "images": len(result.images),
            "y_channel": result.y_channel, "crop": result.crop}


def luma_rows(run: Path | None, int8_file: Path) -> list[dict]:
    """Card quality rows on BT.601 luma: the INT8 file's and (given a run) the run's Keras
    FP32 model's, scored as ``mai-sr eval --y`` scores."""
    from mai_sr.data import load_pairs
    from mai_sr.evaluate import evaluate_tflite
    from mai_sr.results import EvalResult
    from mai_sr.scoring import Scoring, score_pairs

    rows = [_quality(r, "tflite", "int8")
            for r in evaluate_tflite(int8_file, [str(DATA / s) for s in SETS], y_channel=True,
                                     crop=CROP, quiet=True)]
    if run is None:
        return rows
    from mai_sr.report.measure import keras_predictor

    predict = keras_predictor(run)
    for s in SETS:
        scored = score_pairs(predict, load_pairs(str(DATA / s), scale=3),
                             Scoring(3, crop=CROP, y_channel=True))
        rows.append(_quality(EvalResult(model=f"{run.name} (keras fp32)", dataset=s,
                                        images=tuple(r.image_score() for r in scored),
                                        y_channel=True, crop=CROP), "keras", "fp32"))
    return rows


def load_note(loads) -> str:
    """The note a CPU time carries: the machine's 1-minute load while it was taken (on a
    shared machine a time taken under load measures the other jobs too)."""
    return f"timed under a 1-minute load of up to {max(loads):.1f} on {os.cpu_count()} cores"


def _note_load(card: dict, loads) -> None:
    row = next((r for r in card["runtimes"] if r["runner"] == "local"), None)
    if row is not None:
        row["notes"] = [n for n in row.get("notes", []) if not n.startswith("timed under")] + \
            [load_note(loads)]


def attribution(name: str) -> dict:
    from mai_sr.pretrained import shipped_weights

    row = next(w for w in shipped_weights() if w["name"] == name)
    return {"source": row["source"], "licence": row["licence"], "paper": row.get("paper"),
            "trained_on": row.get("trained_on")}


def recipe_entry(name: str, minutes: float | None, note: str | None = None) -> dict:
    from mai_sr.pretrained import recipe_path
    from mai_sr.recipes import file_record

    entry = {**file_record(recipe_path(name)), "train_minutes": minutes}
    return {**entry, "note": note} if note else entry


def measure(name: str, report_out: Path) -> dict:
    """The model card of weight `name` measured from its run (see the module docstring)."""
    from mai_sr.report import make_report
    from mai_sr.report.cards import validate_model_card

    run = weight_run(name)
    if not (run / "qat" / "qat.weights.h5").is_file():
        raise SystemExit(f"pretrained_table: {run} has no finished QAT stage (run its recipe: "
                         f"mai-sr train --recipe mai_sr/pretrained/recipes/{name}.json --out "
                         f"{RECIPE_RUNS / name})")
    loads = [os.getloadavg()[0]]
    out = make_report([str(run)], data=",".join(str(DATA / s) for s in SETS),
                      runners=["local", "synap"], out_dir=report_out / name)
    loads.append(os.getloadavg()[0])
    card, = [json.loads(p.read_text()) for p in (out / "cards").glob("*.json")]
    _note_load(card, loads)
    if card["status"] != "ok":
        raise SystemExit(f"pretrained_table: measuring {name} failed: {card['errors']}")
    dynamic = run / "export" / next(f["name"] for f in card["files"]
                                    if f["input_shape"] and -1 in f["input_shape"])
    card["quality"] += luma_rows(run, dynamic)
    card["name"] = name
    card["attribution"] = attribution(name)
    card["recipe"] = recipe_entry(name, training_minutes(run))
    validate_model_card(card)
    return card


def ship(name: str, card: dict) -> list[Path]:
    """Copy one weight's files into mai_sr/pretrained as NAME*, the card naming them."""
    from mai_sr.models import create_model
    from mai_sr.pretrained import KINDS, architecture
    from mai_sr.models.qat.quantize import activation_ranges, deploy_from_qat
    from mai_sr.tflite.artifacts import read_metadata
    from mai_sr.runs import load_run_model

    run = weight_run(name)
    written = []
    for entry in card["files"]:
        exported = run / "export" / entry["name"]
        # shipped provenance names its run, never a local path
        source = (read_metadata(exported) or {}).get("source", {})
        if any(Path(str(v)).is_absolute() for v in source.values() if isinstance(v, str)):
            raise SystemExit(f"pretrained_table: {exported} records a local path (exported by "
                             f"an older mai-sr): delete {run / 'export'} and rerun")
        kind = "dynamic" if -1 in (entry["input_shape"] or []) else "fixed"
        entry["name"] = f"{name}{KINDS[kind]}"
        with atomic_path(SHIP_DIR / entry["name"]) as tmp:
            shutil.copyfile(exported, tmp)
        written.append(SHIP_DIR / entry["name"])
    qat = load_run_model(run, "qat")
    deploy = create_model(architecture(name), deploy=True)
    deploy_from_qat(qat, deploy, as_computed=True)
    with atomic_path(SHIP_DIR / f"{name}.weights.h5", suffix=".weights.h5") as tmp:
        deploy.save_weights(str(tmp))
    write_json(SHIP_DIR / f"{name}.qat.json", activation_ranges(qat))
    write_json(SHIP_DIR / f"{name}.json", card)
    return written + [SHIP_DIR / f"{name}{KINDS[k]}" for k in ("weights", "ranges", "card")]


# ---------------------------------------------------------------- the table


def _scores(path: Path) -> dict:
    """{set: {"rgb": dB, "y": dB}} of a .tflite file (INT8 PSNR, crop 3)."""
    from mai_sr.evaluate import evaluate_tflite

    out = {s: {} for s in SETS}
    for channel, y in (("rgb", False), ("y", True)):
        for r in evaluate_tflite(path, [str(DATA / s) for s in SETS], y_channel=y, crop=CROP,
                                 quiet=True, require_int8=False):
            out[r.dataset][channel] = r.psnr
    return out


def references(previous: dict) -> dict:
    """{architecture: {"label", "file", "sha256", "sets"}} of REFERENCES present here;
    measured once per file (kept from `previous` while the file's sha256 is the same)."""
    out = {}
    for arch, (label, file) in REFERENCES.items():
        path = ARTIFACTS / file
        if not path.is_file():
            continue
        digest = sha256_file(path)
        old = previous.get(arch, {})
        sets = old["sets"] if old.get("sha256") == digest else _scores(path)
        out[arch] = {"label": label, "file": file, "sha256": digest, "sets": sets}
    return out


def runtime(card: dict, runner: str) -> float | None:
    return next((r["avg_ms"] for r in card["runtimes"] if r["runner"] == runner), None)


def cpu_load(card: dict) -> float | None:
    """The 1-minute load the card's CPU time was taken under, when its note says."""
    row = next((r for r in card["runtimes"] if r["runner"] == "local"), {})
    note = next((n for n in row.get("notes", []) if n.startswith("timed under")), None)
    return float(note.split("of up to ")[1].split()[0]) if note else None


def weight_row(card: dict, default_for: str | None) -> dict:
    """What the table shows for one shipped weight, from its card."""
    from mai_sr.report.cards import card_quality as quality

    row = {"architecture": card["architecture"], "default_for": default_for,
           "params": card["complexity"]["params"], "int8_kb": round(card["size_kb"], 1),
           "cpu_ms": runtime(card, "local"), "cpu_load": cpu_load(card),
           "synap_ms": runtime(card, "synap"),
           "score": card["score"]["value"], "score_psnr_set": card["score"]["dataset"],
           "lint": {"errors": card["lint"]["errors"], "warnings": card["lint"]["warnings"]},
           "attribution": card.get("attribution"), "recipe": card.get("recipe"), "sets": {}}
    for s in SETS:
        fp32, int8 = quality(card, s, "keras"), quality(card, s, "tflite")
        fp32_y, int8_y = quality(card, s, "keras", True), quality(card, s, "tflite", True)
        row["sets"][s] = {"bicubic_psnr": int8["bicubic_psnr"], "images": int8["images"],
                          "fp32_psnr": fp32["psnr"], "int8_psnr": int8["psnr"],
                          "fp32_psnr_y": fp32_y and fp32_y["psnr"],
                          "int8_psnr_y": int8_y and int8_y["psnr"],
                          "gain_db": int8["psnr"] - int8["bicubic_psnr"],
                          "drop_db": fp32["psnr"] - int8["psnr"]}
    return row


def published_rows(architectures) -> dict:
    """The Table 1 row of each architecture that has one (the challenge's four; the ETDS
    zoo's architectures were not in the challenge)."""
    from mai_sr.published import for_architecture

    out = {}
    for arch in architectures:
        try:
            p = for_architecture(arch)
        except KeyError:
            continue
        out[arch] = {"team": p.team, "psnr": p.psnr, "ssim": p.ssim, "delta_psnr": p.delta_psnr,
                     "size_kb": p.size_kb, "npu_ms": p.npu_ms, "score": p.score}
    return out


def ranking_checks(rows: dict, published: dict) -> list[dict]:
    """Default weights of architectures whose published PSNRs differ by more than
    RANKING_GAP_DB: same order here? (Architectures with a Table 1 row only.)"""
    defaults = {r["default_for"]: name for name, r in rows.items()
                if r["default_for"] in published}
    checks = []
    for a, b in itertools.combinations(sorted(defaults), 2):
        pa, pb = published[a]["psnr"], published[b]["psnr"]
        if abs(pa - pb) <= RANKING_GAP_DB:
            continue
        hi, lo = (a, b) if pa > pb else (b, a)
        for s in GAIN_SETS:
            ours = (rows[defaults[hi]]["sets"][s]["int8_psnr"]
                    - rows[defaults[lo]]["sets"][s]["int8_psnr"])
            checks.append({"higher": defaults[hi], "lower": defaults[lo], "set": s,
                           "published_gap_db": round(abs(pa - pb), 2),
                           "measured_gap_db": round(ours, 3), "agrees": ours > 0})
    return checks


def target_checks(rows: dict, refs: dict) -> dict:
    """TARGETS: per weight and set, the INT8 RGB margin over the best of its reference and
    the named other result, against the target margin."""
    imported = result_path("imported")
    imported = json.loads(imported.read_text())["imports"] if imported.is_file() else {}
    out = {}
    for name, (margin, other) in TARGETS.items():
        if name not in rows or rows[name]["architecture"] not in refs:
            continue
        ref = refs[rows[name]["architecture"]]
        against = {ref["label"]: {s: ref["sets"][s]["rgb"] for s in SETS}}
        if other and other[0] in imported and other[1] in imported[other[0]]["rows"]:
            found = imported[other[0]]["rows"][other[1]]
            against[f"{other[1]} of {other[0]} (earlier recipe)"] = {
                s: found[s]["rgb"] for s in SETS}
        best = {s: max(v[s] for v in against.values()) for s in SETS}
        over = {s: round(rows[name]["sets"][s]["int8_psnr"] - best[s], 3) for s in SETS}
        out[name] = {"margin_db": margin, "against": against, "over_best": over,
                     "met": all(v >= margin for v in over.values())}
    return out


def paper_checks(rows: dict) -> dict:
    """Weights made from a zoo checkpoint with published figures: per set, the FP32 and INT8
    PSNR on luma (Y, crop 3 = the scale, as the paper scores) minus the paper's FP32 figure
    (Chao et al., CVPR 2023, Table 2), and whether the INT8 one is within PAPER_TOLERANCE_DB.
    A layout option's weight (``ecbsr_m4c32_relu_pair.etds_div2k``) is held to the figures of
    the network it computes (``ecbsr_m4c32.etds_div2k``)."""
    from mai_sr.registry import published_layout
    from mai_sr.weights import list_weights

    papers = {w.name: w.published_psnr_y for w in list_weights() if w.published_psnr_y}
    out = {}
    for name, r in rows.items():
        arch, tag = name.split(".", 1)
        paper = papers.get(f"{published_layout(arch) or arch}.{tag}")
        if not paper:
            continue
        sets = {s: {"paper_fp32_y": paper[s],
                    "fp32_y_minus_paper": r["sets"][s]["fp32_psnr_y"] - paper[s],
                    "int8_y_minus_paper": r["sets"][s]["int8_psnr_y"] - paper[s]}
                for s in SETS if s in paper and r["sets"][s]["int8_psnr_y"] is not None}
        out[name] = {"sets": sets, "within": all(abs(v["int8_y_minus_paper"])
                                                 <= PAPER_TOLERANCE_DB for v in sets.values())}
    return out


def verdicts(rows: dict, checks: list[dict], targets: dict, papers: dict) -> dict:
    return {
        "gain_at_least_1.2dB": {m: all(r["sets"][s]["gain_db"] >= TARGET_GAIN_DB for s in GAIN_SETS)
                                for m, r in rows.items()},
        "drop_at_most_0.05dB": {m: all(r["sets"][s]["drop_db"] <= TARGET_DROP_DB for s in SETS)
                                for m, r in rows.items()},
        "lint_clean": {m: r["lint"]["errors"] == 0 and r["lint"]["warnings"] == 0
                       for m, r in rows.items()},
        "ranking_agrees": all(c["agrees"] for c in checks),
        "div2k_targets": {m: t["met"] for m, t in targets.items()},
        "int8_y_within_0.05dB_of_paper": {m: p["within"] for m, p in papers.items()},
    }


def shipped_result(previous: dict) -> dict:
    """The result of every shipped weight, from the shipped cards (and the references)."""
    from mai_sr.pretrained import available, default_weights, pretrained_path

    defaults = {w: arch for arch, w in default_weights().items()}
    cards = {n: json.loads(pretrained_path(n, "card").read_text()) for n in available()}
    rows = {n: weight_row(c, defaults.get(n)) for n, c in cards.items()}
    published = published_rows(sorted({r["architecture"] for r in rows.values()}))
    refs = references(previous.get("references", {}))
    checks = ranking_checks(rows, published)
    targets = target_checks(rows, refs)
    papers = paper_checks(rows)
    return {"date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "sets": list(SETS), "crop": CROP, "score_set": SETS[0], "weights": rows,
            "published": published, "references": refs, "ranking": checks,
            "targets": targets, "paper": papers,
            "verdicts": verdicts(rows, checks, targets, papers),
            **({"synap_resimulated": previous["synap_resimulated"]}
               if previous.get("synap_resimulated") else {}),
            **({"retimed": previous["retimed"]} if previous.get("retimed") else {})}


def _db(value, digits: int = 2) -> str:
    return "n.a." if value is None else f"{value:.{digits}f}"


def _pair(rgb, y) -> str:
    return f"{_db(rgb)} / {_db(y)}"


def _in_the_challenge(result: dict, row: dict) -> bool:
    """Whether a weight's architecture has a row in the challenge's Table 1 (the four MAI
    architectures get the long table; the zoo's get one line each)."""
    return row["architecture"] in result["published"]


def quality_table(result: dict) -> list[str]:
    refs = result["references"]
    lines = ["| weight | set | bicubic | FP32 RGB / Y | INT8 RGB / Y | Δ | DIV2K reference "
             "INT8 RGB / Y | gap |", "|---|---|---|---|---|---|---|---|"]
    for name, r in result["weights"].items():
        if not _in_the_challenge(result, r):
            continue
        ref = refs.get(r["architecture"])
        for s in SETS:
            q = r["sets"][s]
            ref_cells = (f"{ref['label']}: {_pair(ref['sets'][s]['rgb'], ref['sets'][s]['y'])}"
                         f" | {q['int8_psnr'] - ref['sets'][s]['rgb']:+.3f}") if ref else "- | -"
            lines.append(f"| {name} | {s} | {q['bicubic_psnr']:.2f} | "
                         f"{_pair(q['fp32_psnr'], q['fp32_psnr_y'])} | "
                         f"{_pair(q['int8_psnr'], q['int8_psnr_y'])} | {q['drop_db']:+.3f} | "
                         f"{ref_cells} |")
    return lines


def zoo_table(result: dict) -> list[str]:
    """One line per weight of a zoo architecture: luma PSNR (the paper's channel) of the
    Keras FP32 model, the shipped INT8 file and the paper's FP32, the RGB drop per set, the
    lint verdict and the VS680 simulator's time."""
    order = ("Set5", "Set14", "B100")
    lines = ["| weight | params | FP32 Y | INT8 Y | paper FP32 Y | Δ RGB | lint (VS680) | "
             "SyNAP ms (sim.) |", "|---|---|---|---|---|---|---|---|"]
    for name, r in result["weights"].items():
        if _in_the_challenge(result, r):
            continue
        paper = result["paper"].get(name, {}).get("sets", {})
        cells = [" / ".join(_db(r["sets"][s][key]) for s in order)
                 for key in ("fp32_psnr_y", "int8_psnr_y")]
        published = " / ".join(_db(paper.get(s, {}).get("paper_fp32_y")) for s in order)
        drops = " / ".join(f"{r['sets'][s]['drop_db']:+.3f}" for s in order)
        lint = ("clean" if r["lint"]["errors"] == r["lint"]["warnings"] == 0
                else f"{r['lint']['errors']} errors, {r['lint']['warnings']} warnings")
        lines.append(f"| {name} | {r['params']:,} | {cells[0]} | {cells[1]} | {published} | "
                     f"{drops} | {lint} | {_db(r['synap_ms'], 1)} |")
    return lines


def weights_table(result: dict) -> list[str]:
    lines = ["| weight | default for | from (licence) | recipe (sha256) | train min | INT8 KB | "
             "CPU ms | SyNAP ms (sim.) | score (sim.) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["weights"].items():
        a, rec = r["attribution"] or {}, r["recipe"] or {}
        recipe = (f"`recipes/{rec['file']}` ({rec['sha256'][:12]})" if rec else "none") + \
            (" *" if rec.get("note") else "")
        lines.append(f"| {name} | {r['default_for'] or ''} | {a.get('source', '?')} "
                     f"({a.get('licence', '?')}) | {recipe} | {_db(rec.get('train_minutes'), 0)} | "
                     f"{r['int8_kb']:.1f} | {_db(r['cpu_ms'], 1)}"
                     + (f" (load {r['cpu_load']:.0f})" if (r["cpu_load"] or 0) > QUIET_LOAD
                        else "") +
                     f" | {_db(r['synap_ms'], 1)} | "
                     f"{r['score']:.2f} |")
    return lines


def table(result: dict) -> str:
    lines = [f"Measured {result['date']} ({result['machine']}) by "
             "`benchmarks/pretrained_table.py` from the shipped files and cards. PSNR (dB) with a "
             "3-pixel border crop on RGB and on BT.601 luma (Y), as `mai-sr eval [--y]` computes "
             "them; FP32 is the Keras deploy model before QAT (output rounded to uint8; for "
             "ncnet.megsr_div2k the authors' INT8 weights dequantized, as no FP32 is published), "
             "INT8 the shipped dynamic-shape file; Δ = FP32 minus INT8 (RGB); DIV2K reference: "
             "the architecture's own authors' DIV2K-trained INT8 file, gap = INT8 minus it (RGB).",
             "", *quality_table(result), ""]
    if len(zoo_table(result)) > 2:
        lines += ["The ETDS zoo's x3 weights (Chao et al., *Equivalent Transformation and Dual "
                  "Stream Network Construction for Mobile Image Super-Resolution*, CVPR 2023: the "
                  "authors' DIV2K-trained checkpoints, imported and quantized by mai-sr), Set5 / "
                  "Set14 / B100; Y with crop 3 as the paper scores; Δ = FP32 minus INT8 (RGB):",
                  "", *zoo_table(result), ""]
    lines += [
             "Where each weight comes from, the recipe file that makes it (`mai-sr train --recipe`;"
             " * = the files predate it, made by `benchmarks/pretrain.sh`, not replayed), its "
             "training time on this 2-core machine (QAT from published weights: one stage; "
             "mai_builtin: FP32 + QAT, one core each), CPU ms (LiteRT, 2 threads, 360x640; a time "
             "taken under a 1-minute load above 2, on these 2 cores, says so: it measures the "
             "other jobs too) and "
             "the VS680 *simulator*'s ms (`mai-sr bench --runner synap`, an estimate"
             + (f", as recalibrated {result['synap_resimulated']}"
                if result.get("synap_resimulated")
                else "") + "); score = 2^(2·PSNR) / (C·ms) with the INT8 B100 PSNR.", "",
             *weights_table(result), ""]
    p = result["published"]
    lines += ["Published (Table 1 of *Efficient and Accurate Quantized Image Super-Resolution on "
              "Mobile NPUs, Mobile AI & AIM 2022 Challenge: Report*, Ignatov, Timofte et al., "
              "ECCV 2022 Workshops; the challenge's own test set and the real VS680, so only the "
              "ranking compares): " + "; ".join(
                  f"{a} {v['team']} {v['psnr']:.2f} dB, {v['size_kb']} KB, {v['npu_ms']} ms, "
                  f"score {v['score']}" for a, v in p.items()) + ".", ""]
    v = result["verdicts"]
    yes = {True: "yes", False: "NO"}
    lines.append("Targets: INT8 ≥ bicubic + 1.2 dB on B100 and Set14: " + ", ".join(
        f"{m} {yes[ok]}" for m, ok in v["gain_at_least_1.2dB"].items()) +
        "; Δ ≤ 0.05 dB on every set: " + ", ".join(
        f"{m} {yes[ok]}" for m, ok in v["drop_at_most_0.05dB"].items()) +
        "; lint without warnings: " + ", ".join(
        f"{m} {yes[ok]}" for m, ok in v["lint_clean"].items()) + ".")
    for m, t in result["targets"].items():
        lines += ["", f"{m} against the best of {', '.join(t['against'])} (INT8 RGB, target "
                  f"{t['margin_db']:+.2f} dB on every set): " + ", ".join(
                      f"{s} {d:+.3f}" for s, d in t["over_best"].items()) +
                  f" ({'met' if t['met'] else 'NOT met'})."]
    for m, p in result.get("paper", {}).items():
        if not _in_the_challenge(result, result["weights"][m]):
            continue  # the zoo table shows it
        lines += ["", f"{m} against its paper's FP32 (Chao et al., CVPR 2023, Table 2; Y, crop "
                  "3), FP32 / INT8 minus the paper: " + ", ".join(
                      f"{s} {v['paper_fp32_y']:.2f}: {v['fp32_y_minus_paper']:+.3f} / "
                      f"{v['int8_y_minus_paper']:+.3f}" for s, v in p["sets"].items()) +
                  f" (INT8 within {PAPER_TOLERANCE_DB} dB: {'yes' if p['within'] else 'NO'})."]
    zoo = {m: p for m, p in result.get("paper", {}).items()
           if not _in_the_challenge(result, result["weights"][m])}
    if zoo:
        lines += ["", f"Zoo weights whose INT8 Y is within {PAPER_TOLERANCE_DB} dB of the paper's "
                  "FP32 on every set: " + ", ".join(f"{m} {'yes' if p['within'] else 'NO'}"
                                                   for m, p in zoo.items()) + "."]
    lines += ["", "Ranking of the default weights (architectures whose published PSNRs differ by"
              " more than 0.1 dB; INT8 PSNR here): " + "; ".join(
                  f"{c['higher']} > {c['lower']} on {c['set']}: {c['measured_gap_db']:+.3f} dB "
                  f"({'agrees' if c['agrees'] else 'DISAGREES'})" for c in result["ranking"]) + "."]
    return "\n".join(lines)


# ---------------------------------------------------------------- maintenance


BUILTIN_NOTE = ("made by benchmarks/pretrain.sh before recipe files existed; this recipe "
                "writes down its steps and was not replayed against the shipped files")


def refresh_records(previous: dict) -> None:
    """Bring each shipped card's records up to date with the table and the recipe files: its
    attribution (from shipped.json), its recipe record (the file's sha256 now, its training
    minutes as recorded; for a ``mai_builtin`` weight the minutes the last pretrain.sh
    measurement recorded and BUILTIN_NOTE), and INT8 luma rows when it has none (measured
    on the shipped dynamic file). The ``mai_builtin`` FP32 networks are not shipped (only
    the float weights QAT left), so their FP32 luma stays unmeasured."""
    from mai_sr.pretrained import architecture, available, pretrained_path
    from mai_sr.report.cards import validate_model_card
    from mai_sr.weights import SHIPPED_TAG

    for name in available():
        path = pretrained_path(name, "card")
        card = json.loads(path.read_text())
        minutes = (card.get("recipe") or {}).get("train_minutes")
        builtin = name.endswith(f".{SHIPPED_TAG}")
        if builtin and minutes is None:
            old = previous.get("models", {}).get(architecture(name), {}).get("training", {})
            minutes = old.get("wall_minutes_one_core")
        card["attribution"] = attribution(name)
        card["recipe"] = recipe_entry(name, minutes, BUILTIN_NOTE if builtin else None)
        if not any(q.get("y_channel") for q in card["quality"]):
            card["quality"] += luma_rows(None, pretrained_path(name, "dynamic"))
        validate_model_card(card)
        write_json(path, card)
        print(f"refreshed {path.relative_to(ROOT)}")


def write_recipes() -> list[Path]:
    """Rewrite the QAT stage of every recipe made of an import stage and a QAT stage from
    :func:`mai_sr.recipes.imported_qat` (after IMPORTED_QAT or IMPORTED_QAT_CHANGES changed)."""
    from mai_sr.pretrained import RECIPES_DIR
    from mai_sr.recipes import imported_qat, read_recipe

    written = []
    for path in sorted(RECIPES_DIR.glob("*.json")):
        recipe = read_recipe(path)
        if [("import" in s, s["name"]) for s in recipe["stages"]] != [(True, "import"),
                                                                     (False, "qat")]:
            continue
        if recipe["stages"][1]["train"] != imported_qat(recipe["name"]):
            recipe["stages"][1]["train"] = imported_qat(recipe["name"])
            path.write_text(json.dumps(recipe, indent=2) + "\n")
            written.append(path)
    return written


def refresh_weights(names) -> None:
    """Rewrite each shipped ``NAME.weights.h5`` as the weights its INT8 file computes with
    (:func:`mai_sr.models.qat.quantize.deploy_from_qat` with ``as_computed``): the QAT model
    is rebuilt from the shipped weights and ranges, as ``export --pretrained`` does, and the
    new weights are written only if the QAT model rebuilt from them converts to a file with
    the shipped file's outputs exactly (an LR crop of each test set, and noise)."""
    import numpy as np

    from mai_sr.data import load_pairs
    from mai_sr.export.convert import _load_source, convert_keras
    from mai_sr.models import create_model
    from mai_sr.models.qat.quantize import deploy_from_qat, quantize_model
    from mai_sr.pretrained import architecture, pretrained_path
    from mai_sr.tflite.runtime import TFLiteSR

    images = [load_pairs(str(DATA / s))[0].lr[:40, :48] for s in SETS]
    images.append(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8))
    REPORT_OUT.mkdir(parents=True, exist_ok=True)
    for name in names:
        deploy = create_model(architecture(name), deploy=True)
        deploy_from_qat(_load_source(None, None, None, name, "int8")[0], deploy,
                        as_computed=True)
        rebuilt = quantize_model(
            deploy, ranges=json.loads(pretrained_path(name, "ranges").read_text()))
        probe = REPORT_OUT / f"{name}.refresh.tflite"
        probe.write_bytes(convert_keras(rebuilt, None, "int8"))
        shipped = TFLiteSR(pretrained_path(name, "dynamic"))
        if not all(np.array_equal(TFLiteSR(probe).upscale(x), shipped.upscale(x))
                   for x in images):
            print(f"{name}: not rewritten (a file from these weights differs from the shipped)")
            continue
        with atomic_path(SHIP_DIR / f"{name}.weights.h5", suffix=".weights.h5") as tmp:
            deploy.save_weights(str(tmp))
        print(f"{name}: {name}.weights.h5 now holds the weights its INT8 file computes with")


def clean_metadata(path: Path) -> bool:
    """Rewrite a shipped file's embedded provenance without local paths, leaving every other
    byte as it is: the record is re-encoded and padded with spaces (valid JSON) to its old
    length, so the graph and all flatbuffer offsets stay byte-identical. Returns whether the
    file changed."""
    from mai_sr.tflite.artifacts import read_metadata

    record = read_metadata(path)
    data = path.read_bytes()
    if record is None:
        return False
    old = json.dumps(record, sort_keys=True).encode()
    at = data.find(old)
    if at < 0 or data.find(old, at + 1) >= 0:
        raise SystemExit(f"{path}: provenance record not found once in the file")
    source = dict(record.get("source") or {})
    if "run" in source:  # the run's folder name, not where it lived on the training machine
        source["run"] = Path(source["run"]).name
    new = json.dumps({**record, "source": source}, sort_keys=True).encode()
    if new == old:
        return False
    if len(new) > len(old):
        raise SystemExit(f"{path}: cleaned provenance is longer than the old one")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data[:at] + new.ljust(len(old), b" ") + data[at + len(old):])
    return True


def retime(previous: dict, runner: str, names, write_cards: bool = False) -> None:
    """Time the shipped fixed-shape files (the ones the cards timed) again with `runner`:
    "synap" after a recalibration of the simulator, "local" on a quiet machine (a CPU time
    taken while other jobs share the cores measures them too). The scores are recomputed from
    the cards' INT8 PSNRs. ``write_cards`` rewrites the runtime and score in the cards (and
    cleans the files' provenance of local paths, keeping every other byte); the result
    records when and under which load each runner's times were taken."""
    from mai_sr.device import get_runner
    from mai_sr.pretrained import pretrained_path
    from mai_sr.report.cards import validate_model_card
    from mai_sr.score import final_score

    for name in names:
        loads = [os.getloadavg()[0]]
        bench = get_runner(runner).bench(pretrained_path(name, "fixed"))
        loads.append(os.getloadavg()[0])
        path = pretrained_path(name, "card")
        card = json.loads(path.read_text())
        row = next(r for r in card["runtimes"] if r["runner"] == runner)
        print(f"{name}: {runner} {row['avg_ms']:.2f} -> {bench.avg_ms:.2f} ms")
        if not write_cards:
            continue
        for kind in ("fixed", "dynamic"):
            clean_metadata(pretrained_path(name, kind))
        row["avg_ms"], row["device"] = bench.avg_ms, bench.device
        if runner == "local":
            _note_load(card, loads)
        if card["score"].get("runner") == runner and card["score"]["psnr"] is not None:
            card["score"]["runtime_ms"] = bench.avg_ms
            card["score"]["value"] = final_score(card["score"]["psnr"], bench.avg_ms)
        for entry in card["files"]:  # the metadata may have changed, so the hashes
            entry["sha256"] = sha256_file(SHIP_DIR / entry["name"])
        validate_model_card(card)
        write_json(path, card)
        print(f"rewrote {path.relative_to(ROOT)}")
    if write_cards:
        from _publish import measured_under

        # One entry per retiming, so retiming some weights keeps when the others were timed.
        entries = previous.setdefault("retimed", {}).get(runner, [])
        entries = [entries] if isinstance(entries, dict) else entries  # the older form
        previous["retimed"][runner] = [*entries, {"weights": list(names), **measured_under()}]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--measure", default=None, metavar="NAME[,NAME]",
                        help="measure these weights from their runs (default: none; the table "
                             "comes from the shipped cards)")
    parser.add_argument("--ship", action="store_true",
                        help="with --measure: copy the files into mai_sr/pretrained")
    parser.add_argument("--report-out", default=str(REPORT_OUT),
                        help="report folder (its cache makes reruns cheap)")
    parser.add_argument("--refresh-records", action="store_true",
                        help="bring the shipped cards' attribution and recipe records up to "
                             "date (and give INT8 luma rows to cards without)")
    parser.add_argument("--write-recipes", action="store_true",
                        help="rewrite the import + QAT recipes from mai_sr.recipes.imported_qat")
    parser.add_argument("--retime", choices=("synap", "local"), default=None,
                        help="time the shipped files again with this runner (synap: after a "
                             "simulator recalibration; local: on a quiet machine)")
    parser.add_argument("--weights", default=None, metavar="NAME[,NAME]",
                        help="with --retime: these weights (default: every shipped one)")
    parser.add_argument("--refresh-weights", action="store_true",
                        help="rewrite every shipped NAME.weights.h5 as the weights its INT8 "
                             "file computes with (checked: the rebuilt export is the same)")
    parser.add_argument("--refresh-cards", action="store_true",
                        help="with --retime: also rewrite the times and scores in the cards")
    add_write_readme(parser)
    args = parser.parse_args(argv)
    if args.write_recipes:
        for path in write_recipes():
            print(f"rewrote {path.relative_to(ROOT)}")
        return 0
    path = result_path(NAME)
    previous = json.loads(path.read_text()) if path.is_file() else {}
    if args.refresh_records:
        refresh_records(previous)
    if args.refresh_weights:
        from mai_sr.pretrained import available

        refresh_weights(args.weights.split(",") if args.weights else available())
    if args.retime:
        from mai_sr.pretrained import available

        names = args.weights.split(",") if args.weights else available()
        retime(previous, args.retime, names, write_cards=args.refresh_cards)
    for name in args.measure.split(",") if args.measure else ():
        card = measure(name, Path(args.report_out))
        if args.ship:
            for shipped in ship(name, card):
                size = shipped.stat().st_size / 1024
                print(f"shipped {shipped.relative_to(ROOT)} ({size:.1f} KB)")
        else:
            print(json.dumps(card["quality"], indent=1))
    result = shipped_result(previous)
    publish(NAME, result, table(result), write_readme=args.write_readme)
    print(table(result))
    total = sum(p.stat().st_size for p in SHIP_DIR.rglob("*") if p.is_file()
                and p.suffix != ".py" and "__pycache__" not in p.parts)
    print(f"mai_sr/pretrained: {total / 1024:.0f} KB in all (data files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
