"""The pretrained models' results table, and with ``--ship`` the packaging.

For each finished run of ``benchmarks/pretrain.sh`` (``benchmarks/out/pretrain/<model>``),
`mai-sr report`'s own machinery (:func:`mai_sr.report.make_report`) exports the run's QAT
model (fixed 1x360x640 and dynamic shape), evaluates the INT8 file with LiteRT and the Keras
FP32 deploy model on B100, Set14 and Set5 (RGB, border crop 3: what ``mai-sr eval`` does),
lints it, and times it with the local LiteRT runner and the SyNAP simulator. This script
turns the model cards into ``benchmarks/results/pretrained.json`` and the README table
(between the ``bench:pretrained`` markers), with the published Table 1 figures beside them,
and checks the targets:

- INT8 PSNR at least 1.2 dB above bicubic on B100 and on Set14;
- FP32 -> INT8 drop at most 0.05 dB on every set;
- the PSNR ranking agrees with the published one for every pair of models whose published
  PSNRs differ by more than 0.1 dB (checked on B100 and Set14).

``--ship`` then writes into ``mai_sr/pretrained/``, for each model: the two .tflite files,
``<model>.weights.h5`` (the float deploy weights QAT left, from
:func:`mai_sr.models.qat.quantize.deploy_from_qat`), ``<model>.qat.json`` (the QAT activation
ranges) and ``<model>.json`` (the model card, whose file hashes are the shipped files').

    python benchmarks/pretrained_table.py [--runs benchmarks/out/pretrain] [--ship]
    python benchmarks/pretrained_table.py --resimulate [--refresh-cards] [--write-readme]

``--resimulate`` recomputes only the SyNAP column (and the scores) from the shipped files,
for when the simulator is recalibrated; ``--refresh-cards`` also rewrites those figures in
the shipped cards.
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
from _publish import ROOT, add_write_readme, publish  # noqa: E402

from mai_sr.fileio import atomic_path, write_json  # noqa: E402

NAME = "pretrained"
MODELS = ("abpn", "ncnet", "scsrn", "xcat")
DATA = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
SETS = ("B100", "Set14", "Set5")  # the first is the score's PSNR (like the report's first set)
TARGET_GAIN_DB = 1.2      # target: INT8 over bicubic, on each of GAIN_SETS
GAIN_SETS = ("B100", "Set14")
TARGET_DROP_DB = 0.05     # target: FP32 -> INT8
RANKING_GAP_DB = 0.1      # target: published PSNRs further apart than this must keep order
REPORT_OUT = ROOT / "benchmarks" / "out" / "pretrained_report"
SHIP_DIR = ROOT / "mai_sr" / "pretrained"


def runtime(card: dict, runner: str) -> float | None:
    return next((r["avg_ms"] for r in card["runtimes"] if r["runner"] == runner), None)


def model_row(card: dict) -> dict:
    """What the table shows for one model, from its card."""
    from mai_sr.published import for_architecture
    from mai_sr.report.cards import card_quality as quality

    row = {"params": card["complexity"]["params"], "int8_kb": round(card["size_kb"], 1),
           "cpu_ms": runtime(card, "local"), "synap_ms": runtime(card, "synap"),
           "score": card["score"]["value"], "score_psnr_set": card["score"]["dataset"],
           "lint": {"errors": card["lint"]["errors"], "warnings": card["lint"]["warnings"]},
           "sets": {}}
    for s in SETS:
        fp32, int8 = quality(card, s, "keras"), quality(card, s, "tflite")
        row["sets"][s] = {"bicubic_psnr": int8["bicubic_psnr"], "bicubic_ssim": int8["bicubic_ssim"],
                          "fp32_psnr": fp32["psnr"], "fp32_ssim": fp32["ssim"],
                          "int8_psnr": int8["psnr"], "int8_ssim": int8["ssim"],
                          "gain_db": int8["psnr"] - int8["bicubic_psnr"],
                          "drop_db": fp32["psnr"] - int8["psnr"], "images": int8["images"]}
    published = for_architecture(card["architecture"])
    row["published"] = {"team": published.team, "psnr": published.psnr, "ssim": published.ssim,
                        "delta_psnr": published.delta_psnr, "size_kb": published.size_kb,
                        "npu_ms": published.npu_ms, "score": published.score}
    return row


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


def training_row(run: Path) -> dict:
    """How a run's model was trained: FP32 steps of each stage of its --init chain, wall time
    of all of them, weights trained (the training graph's) and the last stage's validation
    (mean PSNR over the images of its --val folders, which are named)."""
    from mai_sr.models import create_model

    chain = training_chain(run)
    configs = [c for _, c in chain]
    summaries = [json.loads((r / "summary.json").read_text()) for r, _ in chain]
    model = create_model(configs[-1]["model"], deploy=False, **configs[-1]["train_graph"])
    return {"fp32_steps": [c["steps"] for c in configs], "qat_steps": configs[-1]["qat_steps"],
            "loss": [c.get("loss") for c in configs],
            "teacher": [c.get("teacher") and Path(c["teacher"]).name for c in configs],
            "trained_params": int(sum(w.shape.num_elements() for w in model.trainable_weights)),
            "wall_minutes_one_core": round(sum(s["wall_seconds_last_invocation"]
                                               for s in summaries) / 60, 1),
            "val": [Path(v).name for v in configs[-1]["val"].split(",")],
            "val_fp32": summaries[-1]["fp32"]["val_psnr"],
            "val_qat": summaries[-1]["qat"]["val_psnr"]}


def ranking_checks(rows: dict) -> list[dict]:
    """Pairs whose published PSNRs differ by more than RANKING_GAP_DB: same order here?"""
    checks = []
    for a, b in itertools.combinations(rows, 2):
        pa, pb = rows[a]["published"]["psnr"], rows[b]["published"]["psnr"]
        if abs(pa - pb) <= RANKING_GAP_DB:
            continue
        hi, lo = (a, b) if pa > pb else (b, a)
        for s in GAIN_SETS:
            ours = rows[hi]["sets"][s]["int8_psnr"] - rows[lo]["sets"][s]["int8_psnr"]
            checks.append({"higher": hi, "lower": lo, "set": s,
                           "published_gap_db": round(abs(pa - pb), 2),
                           "measured_gap_db": round(ours, 3), "agrees": ours > 0})
    return checks


def verdicts(rows: dict, checks: list[dict]) -> dict:
    return {
        "gain_at_least_1.2dB": {m: all(r["sets"][s]["gain_db"] >= TARGET_GAIN_DB for s in GAIN_SETS)
                                for m, r in rows.items()},
        "drop_at_most_0.05dB": {m: all(r["sets"][s]["drop_db"] <= TARGET_DROP_DB for s in SETS)
                                for m, r in rows.items()},
        "lint_clean": {m: r["lint"]["errors"] == 0 and r["lint"]["warnings"] == 0
                       for m, r in rows.items()},
        "ranking_agrees": all(c["agrees"] for c in checks),
    }


def _ms(value) -> str:
    return "n.a." if value is None else f"{value:.1f}"


def table(result: dict) -> str:
    rows = result["models"]
    lines = [f"Measured {result['date']} ({result['machine']}) by `benchmarks/pretrained_table.py` "
             f"on the runs of `benchmarks/pretrain.sh` ({result['training']}). PSNR (dB) / SSIM "
             "on RGB with a 3-pixel border crop, as `mai-sr eval` computes them; FP32 is the "
             "Keras deploy model (output rounded to uint8), INT8 the shipped dynamic-shape "
             "LiteRT file; gain = INT8 minus bicubic; Δ = FP32 minus INT8.", "",
             "| model | set | bicubic | FP32 PSNR / SSIM | INT8 PSNR / SSIM | gain | Δ |",
             "|---|---|---|---|---|---|---|"]
    for m, r in rows.items():
        for s in SETS:
            q = r["sets"][s]
            lines.append(f"| {m} | {s} | {q['bicubic_psnr']:.2f} | {q['fp32_psnr']:.2f} / "
                         f"{q['fp32_ssim']:.4f} | {q['int8_psnr']:.2f} / {q['int8_ssim']:.4f} | "
                         f"{q['gain_db']:+.2f} | {q['drop_db']:+.3f} |")
    lines += ["", "Training and efficiency. FP32 steps: one term per training stage (`--init` "
              "chains them); train min: their FP32 + QAT wall time on one core of this "
              "machine (two models trained at a time); trained params: the training graph's "
              "weights, deploy params: the collapsed graph's (XCAT's dense HXBlock kernels "
              "store zeros). CPU ms: this machine, LiteRT, 2 threads, fixed "
              "360x640 input; SyNAP ms: the VS680 *simulator* (`mai-sr bench --runner synap`, "
              "an estimate, not a device"
              + (f"; re-simulated {result['synap_resimulated']} from the shipped files after "
                 "the simulator's recalibration" if result.get("synap_resimulated") else "")
              + f"); score = 2^(2·PSNR) / (C·ms) with the INT8 "
              f"{result['score_set']} PSNR and the simulated ms. Published: Table 1 of "
              "*Efficient and Accurate Quantized Image Super-Resolution on Mobile NPUs, Mobile "
              "AI & AIM 2022 Challenge: Report* (Ignatov, Timofte et al., ECCV 2022 Workshops, "
              "https://arxiv.org/abs/2211.05910) "
              "(the challenge's own test set and the real VS680, so PSNRs are not comparable "
              "with ours, only rankings).", "",
              "| model | FP32 steps | train min | trained / deploy params | INT8 KB | CPU ms | "
              "SyNAP ms (sim.) | score (sim.) | published team | pub. PSNR | pub. ΔPSNR | "
              "pub. KB | pub. NPU ms | pub. score |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, r in rows.items():
        p = r["published"]
        delta = "n.a." if p["delta_psnr"] is None else f"{p['delta_psnr']:.2f}"
        t = r["training"]
        steps = " + ".join(f"{n:,}" for n in t["fp32_steps"])
        lines.append(f"| {m} | {steps} | {t['wall_minutes_one_core']:.0f} | "
                     f"{t['trained_params']:,} / {r['params']:,} | {r['int8_kb']:.1f} | "
                     f"{_ms(r['cpu_ms'])} | {_ms(r['synap_ms'])} | {r['score']:.2f} | "
                     f"{p['team']} | {p['psnr']:.2f} | {delta} | {p['size_kb']} | {p['npu_ms']} | "
                     f"{p['score']} |")
    v = result["verdicts"]
    lines += ["", "Targets: INT8 ≥ bicubic + 1.2 dB on B100 and Set14: " + ", ".join(
        f"{m} {'yes' if ok else 'NO'}" for m, ok in v["gain_at_least_1.2dB"].items()) +
        "; Δ ≤ 0.05 dB on every set: " + ", ".join(
        f"{m} {'yes' if ok else 'NO'}" for m, ok in v["drop_at_most_0.05dB"].items()) +
        "; lint without warnings: " + ", ".join(
        f"{m} {'yes' if ok else 'NO'}" for m, ok in v["lint_clean"].items()) + ".",
        "", "Ranking (pairs whose published PSNRs differ by more than 0.1 dB; INT8 PSNR here): " +
        "; ".join(f"{c['higher']} > {c['lower']} on {c['set']}: {c['measured_gap_db']:+.3f} dB "
                  f"({'agrees' if c['agrees'] else 'DISAGREES'})" for c in result["ranking"]) + "."]
    return "\n".join(lines)


def ship(run: Path, card: dict) -> list[Path]:
    """Copy one model's files into mai_sr/pretrained (atomically, each file)."""
    from mai_sr.models import create_model
    from mai_sr.models.qat.quantize import activation_ranges, deploy_from_qat
    from mai_sr.runs import load_run_model

    from mai_sr.tflite.artifacts import read_metadata

    name = card["architecture"]
    for entry in card["files"]:  # shipped provenance names its run, never a local path
        source = (read_metadata(run / "export" / entry["name"]) or {}).get("source", {})
        if any(Path(str(v)).is_absolute() for v in source.values() if isinstance(v, str)):
            raise SystemExit(f"pretrained_table: {run / 'export' / entry['name']} records a "
                             "local path (exported by an older mai-sr): delete "
                             f"{run / 'export'} and rerun")
    written = []
    for entry in card["files"]:
        target = SHIP_DIR / entry["name"]
        with atomic_path(target) as tmp:
            shutil.copyfile(run / "export" / entry["name"], tmp)
        written.append(target)
    qat = load_run_model(run, "qat")
    deploy = create_model(name, deploy=True)
    deploy_from_qat(qat, deploy)
    with atomic_path(SHIP_DIR / f"{name}.weights.h5", suffix=".weights.h5") as tmp:
        deploy.save_weights(str(tmp))
    write_json(SHIP_DIR / f"{name}.qat.json", activation_ranges(qat))
    write_json(SHIP_DIR / f"{name}.json", card)
    written += [SHIP_DIR / f"{name}{s}" for s in (".weights.h5", ".qat.json", ".json")]
    return written


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


def resimulate(write_cards: bool = False) -> dict:
    """The stored result with every SyNAP figure recomputed by today's simulator: the shipped
    fixed-shape files (the files the cards timed) are re-benchmarked with ``--runner synap``
    and the scores recomputed from the stored INT8 PSNRs. No training run is needed, since
    the simulator reads only the graph. ``write_cards`` also rewrites the SyNAP runtime and
    the score in the shipped model cards (``mai_sr/pretrained/<model>.json``); the .tflite
    files are untouched."""
    from mai_sr.device.synap import SynapRunner
    from mai_sr.fileio import sha256_file
    from mai_sr.pretrained import pretrained_path
    from mai_sr.report.cards import validate_model_card
    from mai_sr.score import final_score

    result = json.loads((ROOT / "benchmarks" / "results" / f"{NAME}.json").read_text())
    for m, row in result["models"].items():
        bench = SynapRunner().bench(SHIP_DIR / f"{m}.tflite")
        ms = bench.avg_ms
        psnr = row["sets"][result["score_set"]]["int8_psnr"]
        print(f"{m}: SyNAP {row['synap_ms']:.2f} -> {ms:.2f} ms (simulated), score "
              f"{row['score']:.3g} -> {final_score(psnr, ms):.3g}")
        row["synap_ms"], row["score"] = ms, final_score(psnr, ms)
        if write_cards:
            for kind in ("fixed", "dynamic"):
                clean_metadata(pretrained_path(m, kind))
            path = SHIP_DIR / f"{m}.json"
            card = json.loads(path.read_text())
            synap = next(r for r in card["runtimes"] if r["runner"] == "synap")
            synap["avg_ms"], synap["device"] = bench.avg_ms, bench.device
            if card["score"].get("runner") == "synap" and card["score"]["psnr"] is not None:
                card["score"]["runtime_ms"] = ms
                card["score"]["value"] = final_score(card["score"]["psnr"], ms)
            for entry in card["files"]:  # the metadata changed, so the hashes did
                entry["sha256"] = sha256_file(SHIP_DIR / entry["name"])
            validate_model_card(card)
            write_json(path, card)
            print(f"rewrote {path.relative_to(ROOT)}")
    result["synap_resimulated"] = datetime.date.today().isoformat()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "benchmarks" / "out" / "pretrain"),
                        help="folder of benchmarks/pretrain.sh runs, one per model")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--ship", action="store_true", help="copy the files into mai_sr/pretrained")
    parser.add_argument("--report-out", default=str(REPORT_OUT),
                        help="report folder (its cache makes reruns cheap)")
    parser.add_argument("--resimulate", action="store_true",
                        help="only recompute the SyNAP ms and scores of the stored result from "
                             "the shipped files (after a simulator recalibration; no runs needed)")
    parser.add_argument("--refresh-cards", action="store_true",
                        help="with --resimulate: also rewrite the SyNAP ms and score in "
                             "mai_sr/pretrained/<model>.json")
    add_write_readme(parser)
    args = parser.parse_args(argv)
    if args.resimulate:
        result = resimulate(write_cards=args.refresh_cards)
        publish(NAME, result, table(result), write_readme=args.write_readme)
        return 0

    from mai_sr.report import make_report
    from mai_sr.runs import read_run_config

    names = args.models.split(",")
    runs = [Path(args.runs) / m for m in names]
    unfinished = [str(r) for r in runs if not (r / "qat" / "qat.weights.h5").is_file()]
    if unfinished:
        raise SystemExit(f"pretrained_table: no finished QAT stage in {', '.join(unfinished)} "
                         "(run benchmarks/pretrain.sh)")
    data = ",".join(str(DATA / s) for s in SETS)
    out = make_report([str(r) for r in runs], data=data, runners=["local", "synap"],
                      out_dir=args.report_out)
    cards = {m: json.loads((out / "cards" / f"{m}.json").read_text()) for m in names}
    failed = {m: c["errors"] for m, c in cards.items() if c["status"] != "ok"}
    if failed:
        raise SystemExit(f"pretrained_table: measurements failed: {failed}")
    rows = {m: model_row(c) for m, c in cards.items()}
    for m, run in zip(names, runs):
        rows[m]["training"] = training_row(run)
    checks = ranking_checks(rows)
    config = read_run_config(runs[0])
    result = {"date": datetime.date.today().isoformat(),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "training": f"FP32 then {config['qat_steps']} QAT steps, batch "
                          f"{config['batch']}, LR patch {config['patch']}, T91 + BSD200",
              "sets": list(SETS), "score_set": SETS[0], "models": rows, "ranking": checks,
              "runs": {m: read_run_config(r) for m, r in zip(names, runs)}}
    result["verdicts"] = verdicts(rows, checks)
    publish(NAME, result, table(result), write_readme=args.write_readme)
    print(table(result))
    if args.ship:
        for m in names:
            for path in ship(Path(args.runs) / m, cards[m]):
                print(f"shipped {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.1f} KB)")
        total = sum(p.stat().st_size for p in SHIP_DIR.iterdir() if p.suffix != ".py" and p.is_file())
        print(f"mai_sr/pretrained: {total / 1024:.0f} KB in all (limit 2048 KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
