"""`mai-sr report`: leaderboard, plots, HTML (rendered in headless Chromium), model cards, cache.

One report is built per session on small factory models (tests/tflite_factory.py: raw TF
ops, no project code; prebuilt in tests/data) and three real images; the tests read its files. References are
independent: PSNR from skimage on outputs of a bare LiteRT interpreter, complexity from the
factory's weight shapes, published figures from MAI 2022 challenge report, Table 1.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import link_images
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

import mai_sr.device
import mai_sr.evaluate
import mai_sr.tflite.runtime
import mai_sr.report.build
import mai_sr.report.measure
from mai_sr.cli import main
from mai_sr.data import load_pairs
from mai_sr.errors import MaiSrError
from mai_sr.report import build_model_card, make_report, validate_model_card
from mai_sr.report.plots import iso_score_psnr, iso_score_levels
from mai_sr.report.table import MEASURED, PUBLISHED
from mai_sr.results import BenchResult, EvalResult, ImageScore
from tflite_factory import prebuilt

RUNNERS = ["local", "synap"]
# Few timed runs: the test checks plumbing, benchmarks/report_cache.py measures.
FAST = {"local": {"min_runs": 3, "min_seconds": 0.01, "warmup_runs": 1,
                  "warmup_min_seconds": 0.0}}
# C fitted to all 25 scored rows of MAI 2022 report, Table 1 (derivation in mai_sr/score.py).
C_TABLE1 = 2.81515e15
# Seed 004 Table 1, row "ABPN [19] baseline": 53 KB, 29.87 dB, 0.8686, CPU 998 ms, NPU 36.9 ms.
ABPN_TABLE1 = {"size_kb": 53, "psnr": 29.87, "ssim": 0.8686, "cpu_ms": 998, "npu_ms": 36.9,
               "score": 9.27}


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> Path:
    """small(.tflite fixed + _none dynamic), wide_none (dynamic only), floaty (float32)."""
    d = tmp_path_factory.mktemp("report_models")
    prebuilt("int8", d / "small.tflite")                 # 24x32
    prebuilt("dynamic", d / "small_none.tflite")
    prebuilt("dynamic_wide", d / "wide_none.tflite")     # 16 channels, seed 1
    prebuilt("float", d / "floaty.tflite")               # 24x32
    # Provenance as `mai-sr export` writes it, naming an architecture: the report must then
    # show that architecture's published row (the tiny network is not really ABPN).
    (d / "small.tflite.json").write_text(json.dumps({"model": "abpn", "scale": 3}))
    return d


@pytest.fixture(scope="session")
def images(shared_data, tmp_path_factory) -> Path:
    """Three real colour images, linked (never copied) from the shared data."""
    return link_images(tmp_path_factory.mktemp("mini"), shared_data,
                       ("Set5/bird.png", "Set5/butterfly.png", "Set14/comic.png"))


def _inputs(models: Path) -> list[str]:
    return [str(models / n) for n in ("small.tflite", "wide_none.tflite", "floaty.tflite")]


@pytest.fixture(scope="session")
def report(models, images, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    return make_report(_inputs(models), data=[str(images)], runners=RUNNERS, out_dir=out,
                       quiet=True, runner_options=FAST)


def _table(report: Path) -> pd.DataFrame:
    return pd.read_csv(report / "leaderboard.csv")


def _litert_psnr(model: Path, folder: Path) -> float:
    """Mean RGB PSNR (border crop 3) of a dynamic uint8 model: bare interpreter + skimage."""
    scores = []
    for pair in load_pairs(str(folder)):
        interp = Interpreter(model_path=str(model))
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        interp.resize_tensor_input(inp["index"], [1, *pair.lr.shape])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], pair.lr[None])
        interp.invoke()
        sr = interp.get_tensor(out["index"])[0]
        scores.append(peak_signal_noise_ratio(pair.hr[3:-3, 3:-3], sr[3:-3, 3:-3], data_range=255))
    return float(np.mean(scores))


# ---------------------------------------------------------------- leaderboard


def test_leaderboard_values_match_independent_references(report, models, images):
    table = _table(report)
    measured = table[table.source == MEASURED].set_index("model")
    # wide_none.tflite alone is the model "wide" (X_none.tflite is X's dynamic-shape file).
    assert set(measured.index) == {"small", "wide", "floaty"}
    small = measured.loc["small"]
    # PSNR of the dynamic partner (small_none.tflite), evaluated whole.
    assert small.psnr == pytest.approx(_litert_psnr(models / "small_none.tflite", images),
                                       abs=1e-3)
    assert measured.loc["wide"].psnr == pytest.approx(
        _litert_psnr(models / "wide_none.tflite", images), abs=1e-3)
    # Size and complexity of the timing file (24x32 input). Factory net: conv3x3 3->8,
    # conv3x3 8->27, 1x1 anchor 3->27 (TFLite gives the bias-free anchor a 27-zero bias).
    assert small.size_kb == pytest.approx((models / "small.tflite").stat().st_size / 1024, rel=1e-5)
    assert small.params == 3 * 3 * 3 * 8 + 8 + 3 * 3 * 8 * 27 + 27 + 3 * 27 + 27
    macs = 24 * 32 * (3 * 3 * 3 * 8 + 3 * 3 * 8 * 27 + 3 * 27)
    assert small.gflops == pytest.approx(2 * macs / 1e9, rel=1e-5)
    assert small.activations_m == pytest.approx(24 * 32 * (8 + 27 + 27) / 1e6, rel=1e-5)
    assert small.input_hw == "24x32" and measured.loc["wide"].input_hw == "360x640"
    # Score from the challenge formula on the NPU (simulated) time; speed-up CPU / NPU.
    for name in ("small", "wide"):
        row = measured.loc[name]
        assert row.cpu_ms > 0 and row.npu_ms > 0
        assert row.npu_runner == "synap (simulated)"
        assert row.score == pytest.approx(2 ** (2 * row.psnr) / (C_TABLE1 * row.npu_ms), rel=1e-3)
        assert row.speedup == pytest.approx(row.cpu_ms / row.npu_ms, rel=1e-3)
        assert row.status == "ok" and pd.isna(row.error)
    # Not the challenge's test images, nor its NPU: the score says so (one predicate).
    assert measured.loc["small"].score_caveat == (
        f"not a challenge score: PSNR on {images.name}, 24x32 input, simulated NPU time")
    assert measured.loc["wide"].score_caveat == (
        f"not a challenge score: PSNR on {images.name}, simulated NPU time")
    assert pd.isna(measured.loc["floaty"].score_caveat)  # no score, nothing to qualify
    # dPSNR needs a run's FP32 network: bare files have none.
    assert measured.delta_psnr.isna().all()


def test_failing_model_stays_in_table_with_its_error(report):
    row = _table(report).set_index("model").loc["floaty"]
    assert row.status == "error"
    assert "lint" in row.error and "float32" in row.error
    assert "synap" in row.error
    assert pd.isna(row.npu_ms) and pd.isna(row.score)
    assert row.psnr > 20  # still evaluated: the failure is recorded, not fatal


def test_rows_sorted_by_score_then_published_reference(report):
    table = _table(report)
    measured = table[table.source == MEASURED]
    scores = measured.score.tolist()
    ranked = [s for s in scores if not math.isnan(s)]
    assert ranked == sorted(ranked, reverse=True)
    assert all(math.isnan(s) for s in scores[len(ranked):])  # missing scores last
    published = table[table.source == PUBLISHED]
    assert table.index[table.source == PUBLISHED].min() > measured.index.max()
    assert len(published) == 1  # only the architecture named by small.tflite.json
    row = published.iloc[0]
    assert row.architecture == "abpn" and "ABPN" in row.model
    for column, value in ABPN_TABLE1.items():
        assert row[column] == pytest.approx(value)
    assert pd.isna(row.score_caveat)  # a published challenge score carries no caveat


def test_markdown_and_pngs(report, images):
    md = (report / "leaderboard.md").read_text()
    assert "| Model | Architecture | Size KB | PSNR | SSIM | dPSNR FP32->INT8 | CPU ms | " \
           "NPU ms | Speed-up | Final score | Status |" in md
    for name in ("small", "wide", "floaty", PUBLISHED, "arxiv.org/abs/2211.05910"):
        assert name in md
    # The caveat sits in the score's own cell, not in a footnote.
    small = next(line for line in md.splitlines() if line.startswith("| small |"))
    score = _table(report).set_index("model").loc["small"].score
    assert f"| {score:.2f} (not a challenge score: PSNR on {images.name}, 24x32 input, " \
           "simulated NPU time) |" in small
    assert "seed" not in md.lower()
    pngs = sorted(p.name for p in (report / "plots").glob("*.png"))
    assert pngs == ["comparison.png", "delta_psnr.png", "psnr_vs_runtime.png"]
    for name in pngs:
        with Image.open(report / "plots" / name) as im:
            pixels = np.asarray(im.convert("RGB"))
        assert min(pixels.shape[:2]) > 200 and pixels.std() > 10, name
    # The comparison has a column per model after HR and bicubic: 5 crops of 96 px per row.
    with Image.open(report / "plots" / "comparison.png") as im:
        assert im.width > 5 * 96


def test_iso_score_curves_follow_the_challenge_formula():
    from mai_sr.score import final_score

    for level in iso_score_levels([0.3, 9.27, 22.2]):
        for ms in (5.0, 36.9, 400.0):
            assert final_score(float(iso_score_psnr(level, ms, C_TABLE1)), ms) == \
                pytest.approx(level, rel=1e-9)
    assert iso_score_levels([9.27, 22.2])[0] < 9.27 and iso_score_levels([9.27, 22.2])[-1] > 22.2


# ---------------------------------------------------------------- model cards


def test_cards_follow_the_schema(report, models):
    cards = {p.stem: json.loads(p.read_text()) for p in (report / "cards").glob("*.json")}
    assert set(cards) == {"small", "wide", "floaty"}
    for card in cards.values():
        validate_model_card(card)
    small = cards["small"]
    assert [f["name"] for f in small["files"]] == ["small.tflite", "small_none.tflite"]
    assert small["files"][1]["input_shape"] == [1, -1, -1, 3]
    assert small["architecture"] == "abpn" and small["precision"] == "int8"
    assert [r["runner"] for r in small["runtimes"]] == RUNNERS
    assert [r["simulated"] for r in small["runtimes"]] == [False, True]
    row = _table(report).set_index("model").loc["small"]
    assert small["score"]["value"] == pytest.approx(row.score, rel=1e-5)
    assert small["score"]["runner"] == "synap" and small["score"]["simulated"]
    assert cards["floaty"]["status"] == "error" and cards["floaty"]["lint"]["errors"] > 0


def test_card_validation_names_the_bad_field(report):
    card = json.loads((report / "cards" / "small.json").read_text())
    bad = json.loads(json.dumps(card))
    bad["quality"][0]["psnr"] = "high"
    with pytest.raises(MaiSrError, match=r"card\.quality\[0\]\.psnr"):
        validate_model_card(bad)
    del bad["runtimes"]
    with pytest.raises(MaiSrError, match="'runtimes' is a required property"):
        validate_model_card(bad)
    with pytest.raises(MaiSrError, match=r"\('extra' was unexpected\)"):
        validate_model_card({**card, "extra": 1})
    with pytest.raises(MaiSrError, match=r"card\.size_kb: nan is not a finite number"):
        validate_model_card({**card, "size_kb": float("nan")})


def test_build_model_card_from_results(models):
    """The builder the pretrained cards use: results in, validated card out."""
    img = ImageScore("a", 30.0, 0.9, 28.0, 0.85, 96, 96)
    int8 = EvalResult("small.tflite", "Set14", (img,))
    fp32 = EvalResult("small", "Set14", (ImageScore("a", 30.1, 0.9, 28.0, 0.85, 96, 96),))
    benches = [BenchResult("local", "small.tflite", 500.0, device={"name": "x86"}),
               BenchResult("synap", "small.tflite", 20.0, simulated=True)]
    card = build_model_card("small", tflite=models / "small.tflite", architecture="abpn",
                            int8_results=[int8], fp32_results=[fp32], bench_results=benches,
                            run_config_hash="f" * 64)
    assert card["score"]["value"] == pytest.approx(2 ** 60 / (C_TABLE1 * 20.0), rel=1e-5)
    assert [(q["source"], q["psnr"]) for q in card["quality"]] == [("keras", 30.1),
                                                                   ("tflite", 30.0)]
    assert card["status"] == "ok" and card["complexity"]["convs"] == 3


# ---------------------------------------------------------------- cache


class _Counter:
    def __init__(self, monkeypatch, owner, name):
        self.calls = []
        real = getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls.append(args[:1])
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


@pytest.mark.slow
def test_rerun_does_no_eval_or_bench_work(report, models, images, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(report, out)
    evals = _Counter(monkeypatch, mai_sr.evaluate, "evaluate_tflite")
    runners = _Counter(monkeypatch, mai_sr.device, "get_runner")
    lints = _Counter(monkeypatch, mai_sr.report.measure, "lint_summary")
    crops = _Counter(monkeypatch, mai_sr.tflite.runtime, "TFLiteSR")  # model runs of the crop grid
    make_report(_inputs(models), data=[str(images)], runners=RUNNERS, out_dir=out, quiet=True,
                runner_options=FAST)
    assert (evals.calls, runners.calls, lints.calls, crops.calls) == ([], [], [], [])
    assert (out / "leaderboard.csv").read_text() == (report / "leaderboard.csv").read_text()
    # A renamed copy has the same content hashes: still no work.
    shutil.copy(models / "small.tflite", tmp_path / "renamed.tflite")
    shutil.copy(models / "small_none.tflite", tmp_path / "renamed_none.tflite")
    make_report([str(tmp_path / "renamed.tflite")], data=[str(images)], runners=RUNNERS,
                out_dir=out, quiet=True, runner_options=FAST)
    assert (evals.calls, runners.calls) == ([], [])
    # New local options: only the local benchmarks are redone.
    slower = {"local": {**FAST["local"], "min_runs": 4}}
    make_report(_inputs(models), data=[str(images)], runners=RUNNERS, out_dir=out, quiet=True,
                runner_options=slower)
    assert evals.calls == [] and [c[0] for c in runners.calls] == ["local"] * 3


# ---------------------------------------------------------------- inputs and errors


def _keras_psnr(model, folder: Path) -> float:
    """Mean RGB PSNR (border crop 3) of a Keras model's rounded output, via skimage."""
    scores = []
    for pair in load_pairs(str(folder)):
        out = model(pair.lr[None].astype(np.float32), training=False).numpy()[0]
        sr = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        scores.append(peak_signal_noise_ratio(pair.hr[3:-3, 3:-3], sr[3:-3, 3:-3], data_range=255))
    return float(np.mean(scores))


@pytest.fixture()
def run_dir(models, tmp_path) -> Path:
    """A training run as `mai-sr train` lays it out: config, metrics, FP32 deploy weights of a
    (randomly initialised) ABPN, and no export yet."""
    from mai_sr.models import create_model
    from mai_sr.runs import FP32_DEPLOY_WEIGHTS

    run = tmp_path / "abpn-run"
    (run / "fp32").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"model": "abpn", "scale": 3, "steps": 2, "seed": 0}))
    (run / "metrics.csv").write_text("step,stage,loss,lr,val_psnr,time\n1,fp32,9.0,0.001,,0.1\n"
                                     "2,fp32,7.0,0.001,24.0,0.2\n1,qat,6.5,1e-05,24.5,0.3\n")
    create_model("abpn", deploy=True).save_weights(str(run / FP32_DEPLOY_WEIGHTS))
    return run


@pytest.mark.tf
def test_run_directory_is_exported_and_gets_dpsnr_and_curves(run_dir, models, images,
                                                            tmp_path, monkeypatch):
    import mai_sr.export.convert
    from mai_sr.runs import load_run_model

    exports = []

    def fake_export(output, *, run=None, dynamic=False, **_):
        # Real conversion takes a minute here (tests/test_export* cover it): copy the small
        # factory files where `mai-sr export` would write them.
        exports.append((Path(output), Path(run), dynamic))
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(models / "small.tflite", output)
        shutil.copy(models / "small_none.tflite", Path(output).with_name("abpn_none.tflite"))
        return [Path(output), Path(output).with_name("abpn_none.tflite")]

    monkeypatch.setattr(mai_sr.export.convert, "export", fake_export)
    out = make_report([str(run_dir)], data=[str(images)], runners=[], out_dir=tmp_path / "r",
                      quiet=True)
    assert exports == [(run_dir / "export" / "abpn.tflite", run_dir, True)]
    card = json.loads((out / "cards" / "abpn-run.json").read_text())
    assert card["architecture"] == "abpn" and card["status"] == "ok"
    assert [f["name"] for f in card["files"]] == ["abpn.tflite", "abpn_none.tflite"]
    assert len(card["run_config_hash"]) == 64
    fp32, int8 = card["quality"]
    assert (fp32["source"], int8["source"]) == ("keras", "tflite")
    assert fp32["psnr"] == pytest.approx(
        _keras_psnr(load_run_model(run_dir, stage="fp32"), images), abs=1e-3)
    row = _table(out).set_index("model").loc["abpn-run"]
    assert row.delta_psnr == pytest.approx(fp32["psnr"] - int8["psnr"], abs=1e-4)
    assert (out / "plots" / "training_curves.png").stat().st_size > 1000
    assert "Training curves" in (out / "index.html").read_text()
    assert (_table(out).source == PUBLISHED).sum() == 1
    # The run now has its export: the next report uses it, exporting nothing.
    make_report([str(run_dir)], data=[str(images)], runners=[], out_dir=tmp_path / "r",
                quiet=True)
    assert len(exports) == 1


@pytest.mark.slow
def test_cli_report_and_one_line_errors(models, images, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["report", str(models / "small.tflite"), "--data", str(images),
                 "--runner", "synap", "--out", str(out), "--quiet"])
    assert code == 0 and capsys.readouterr().out.strip() == f"report: {out}"
    assert (out / "index.html").is_file() and (out / "cards" / "small.json").is_file()
    for argv, fragment in ((["report", str(tmp_path / "missing.tflite")], "missing.tflite"),
                           (["report", str(models / "small.tflite"), "--runner", "gpu"], "gpu"),
                           (["report", str(models / "small.tflite"), "--data",
                             str(tmp_path / "nowhere")], "nowhere"),
                           (["report", "--pretrained", "abpnx"], "--pretrained abpnx"),
                           (["report", "abpn.etds_div2k_x2"],
                            "mai-sr fetch abpn.etds_div2k_x2"),
                           (["report"], "no models to report on"),
                           (["report", "--pretrained", "abpn", "--tflite",
                             str(models / "small.tflite")], "give the run it was exported")):
        assert main(argv + ["--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mai-sr report: error: ") and fragment in err
        assert "\n" not in err


def test_score_cli_rescores_the_leaderboard_csv(report, capsys):
    """`mai-sr score --csv leaderboard.csv`: npu_ms is the runtime, empty cells get no score."""
    assert main(["score", "--csv", str(report / "leaderboard.csv"), "--json"]) == 0
    rows = {r["model"]: r["score"] for r in json.loads(capsys.readouterr().out)}
    table = _table(report).set_index("model")
    for name in ("small", "wide"):
        assert rows[name] == pytest.approx(table.loc[name].score, rel=1e-3)
    assert rows["floaty"] is None
    assert rows["ABPN [19] (ABPN)"] == pytest.approx(ABPN_TABLE1["score"], abs=0.02)


def test_third_party_files_pair_as_their_repositories_name_them(shared_artifacts):
    """X_time.tflite (fixed, timed) + X.tflite (dynamic), as in the official ABPN repository,
    and X.tflite (fixed) + X_none.tflite (dynamic), as in MegSR's; either file of a pair
    brings the other from beside it. Which one is fixed is read from the files."""
    from mai_sr.report.build import resolve_inputs
    from mai_sr.tflite.graph import read_graph

    nju, meg = shared_artifacts / "nju_abpn", shared_artifacts / "megsr_ncnet"
    abpn = "base7_D4C28_bs16ps64_lr1e-3"
    expected = {
        (nju / f"{abpn}_time.tflite", nju / f"{abpn}.tflite"),
        (nju / f"{abpn}_qat_time.tflite", nju / f"{abpn}_qat.tflite"),
        (meg / "model.tflite", meg / "model_none.tflite"),
    }
    for timing, fidelity in expected:
        assert not read_graph(timing).is_dynamic and read_graph(fidelity).is_dynamic
    for given in ([nju / f"{abpn}_time.tflite", nju / f"{abpn}_qat.tflite", meg / "model.tflite"],
                  [nju / f"{abpn}.tflite", nju / f"{abpn}_qat_time.tflite",
                   meg / "model_none.tflite", meg / "model.tflite"]):
        models = resolve_inputs([str(p) for p in given])
        assert {(m.timing, m.fidelity) for m in models} == expected


def test_no_local_absolute_path_in_committed_results_or_readme():
    # Results, cards and the README are shared: a path of the machine that wrote them
    # (checkout, home, temp folder) means nothing elsewhere.
    root = Path(__file__).resolve().parents[1]
    import re
    import tempfile

    local = re.compile(re.escape(f"{root.parent}/") + "|" +
                       re.escape(tempfile.gettempdir().rstrip("/") + "/tmp"))
    files = [root / "README.md", *sorted((root / "docs").glob("*.md")),
             *sorted((root / "benchmarks" / "results").glob("*.json")),
             *sorted((root / "mai_sr" / "pretrained").glob("*.json"))]
    found = [f"{p.relative_to(root)}: {m.group(0)}" for p in files
             for m in local.finditer(p.read_text())]
    assert len(files) > 5 and not found, found


def test_files_are_named_for_what_they_are(models, tmp_path):
    """A third-party `model.tflite` is named by its folder; clashing names get their folder."""
    from mai_sr.report.build import card_file_name, resolve_inputs

    for team in ("megsr_ncnet", "other_team"):
        (tmp_path / team).mkdir()
        shutil.copy(models / "wide_none.tflite", tmp_path / team / "model_none.tflite")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(models / "small.tflite", tmp_path / folder / "net.tflite")
    inputs = [tmp_path / "megsr_ncnet" / "model_none.tflite",
              tmp_path / "other_team" / "model_none.tflite",
              tmp_path / "a" / "net.tflite", tmp_path / "b" / "net.tflite"]
    assert [m.name for m in resolve_inputs(inputs)] == ["megsr_ncnet", "other_team", "a/net",
                                                         "b/net"]
    assert card_file_name("a/net") == "a-net.json"
    assert card_file_name("scsrn (shipped)") == "scsrn-shipped.json"


# ---------------------------------------------------------------- shipped models, user exports


@pytest.mark.slow  # Set5 through two shipped models
def test_shipped_models_by_name_with_their_drop_from_their_cards(shared_data, tmp_path, capsys):
    """`report abpn --pretrained xcat.mai_builtin` reports the shipped files (abpn: its
    default weight, abpn.etds_div2k); on the very images of their cards (Set5) the INT8 PSNR
    measured here equals the card's, and the drop is the card's FP32 PSNR minus it. The cards
    are the shipped files' own references."""
    from mai_sr.pretrained import pretrained_path
    from mai_sr.report.cards import card_quality

    out = tmp_path / "shipped"
    code = main(["report", "abpn", "--pretrained", "xcat.mai_builtin", "--data",
                 str(shared_data / "Set5"), "--runner", "synap", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    names = ("abpn.etds_div2k", "xcat.mai_builtin")
    for name in names:  # the output says which files were scored
        assert f"{name} (shipped): scoring " in printed and f"{name}_none.tflite" in printed
    table = _table(out)
    measured = table[table.source == MEASURED].set_index("model")
    assert set(measured.index) == {f"{name} (shipped)" for name in names}
    for name in names:
        shipped = json.loads(pretrained_path(name, "card").read_text())
        row = measured.loc[f"{name} (shipped)"]
        assert row.psnr == pytest.approx(card_quality(shipped, "Set5", "tflite")["psnr"],
                                         abs=1e-3)
        assert row.delta_psnr == pytest.approx(
            card_quality(shipped, "Set5", "keras")["psnr"] - row.psnr, abs=1e-9)
        card = json.loads((out / "cards" / f"{name}-shipped.json").read_text())
        assert [q.get("from_card") for q in card["quality"]] == [name, None]
    page = (out / "index.html").read_text()
    assert "(from its card abpn.etds_div2k)" in page
    assert '"quality": [' not in page  # tables, not JSON
    # The details' Error cells are empty for models without errors (not "n.a.").
    from mai_sr.report.table import details_frame

    assert list(details_frame(table)["Error"]) == [""] * len(table)


@pytest.mark.slow
def test_the_drop_needs_the_cards_images(shared_data, tmp_path):
    """Two of Set5's images under the name Set5 are not the card's Set5: no drop from it."""
    (tmp_path / "Set5").mkdir()
    folder = link_images(tmp_path / "Set5", shared_data, ("Set5/bird.png", "Set5/baby.png"))
    out = make_report(pretrained=["abpn"], data=[str(folder)], runners=[],
                      out_dir=tmp_path / "r", quiet=True)
    row = _table(out).set_index("model").loc["abpn.etds_div2k (shipped)"]
    assert row.psnr_data == "Set5" and pd.isna(row.delta_psnr)


def _user_export(run_dir: Path, models: Path, folder: Path, run_name=None) -> Path:
    """`mai-sr export model.tflite --run RUN` as the quick start runs it: the INT8 file in
    `folder` with a sidecar naming the run and its config hash."""
    from mai_sr.fileio import sha256_file, sha256_json

    target = folder / "model.tflite"
    shutil.copy(models / "wide_none.tflite", target)
    config = json.loads((run_dir / "config.json").read_text())
    (folder / "model.tflite.json").write_text(json.dumps({
        "model": "abpn", "scale": 3, "precision": "int8", "sha256": sha256_file(target),
        "source": {"run": run_name or run_dir.name, "stage": "qat",
                   "run_config_sha256": sha256_json(config)}}))
    return target


@pytest.mark.tf  # the run fixture builds an ABPN
@pytest.mark.slow
def test_report_run_scores_the_users_export(run_dir, models, images, tmp_path, monkeypatch,
                                             capsys):
    """`report RUN` scores the file the user exported from the run (found in the working
    folder by its provenance, or given with --tflite) instead of exporting again, and says so."""
    import mai_sr.export.convert

    def no_export(*_args, **_kwargs):
        raise AssertionError("the report exported the run again")

    monkeypatch.setattr(mai_sr.export.convert, "export", no_export)
    work = tmp_path / "work"
    work.mkdir()
    exported = _user_export(run_dir, models, work)
    monkeypatch.chdir(work)
    out = tmp_path / "r"
    assert main(["report", str(run_dir), "--data", str(images), "--runner", "synap",
                 "--out", str(out)]) == 0
    assert "abpn-run: scoring model.tflite, exported from this run" in capsys.readouterr().out
    card = json.loads((out / "cards" / "abpn-run.json").read_text())
    assert [f["name"] for f in card["files"]] == ["model.tflite"]
    # Given explicitly, from anywhere: the same file, said to be the one given.
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(run_dir), "--tflite", str(exported), "--data", str(images),
                 "--runner", "synap", "--out", str(out)]) == 0
    assert "abpn-run: scoring work/model.tflite, given with --tflite" in capsys.readouterr().out
    # A file exported from another run is refused, naming the run given.
    other = tmp_path / "other"
    other.mkdir()
    foreign = _user_export(run_dir, models, other, run_name="another-run")
    assert main(["report", str(run_dir), "--tflite", str(foreign), "--out", str(out)]) == 2
    assert "its provenance names none of the runs given (abpn-run)" in capsys.readouterr().err


# ---------------------------------------------------------------- per-device estimates


@pytest.mark.slow  # two shipped models through every device profile, and bench per profile
def test_shipped_models_get_every_profiles_estimate_as_bench_gives_it(tmp_path, capsys,
                                                                      monkeypatch):
    """`report --runner sim`: each shipped model's row, card and page carry one estimate
    per device profile, equal to `bench FILE --runner sim --device NAME --json` on the
    model's timing file, labelled as an estimate with the profile's validation; the score
    takes the VS680's, never a phone's. A refitted profile invalidates the cached figures."""
    from mai_sr.device.estimate import SimRunner
    from mai_sr.device.profiles import load_profile, profile_names
    from mai_sr.pretrained import PRETRAINED_DIR, pretrained_path
    from mai_sr.report.table import ESTIMATE_PREFIX

    out = make_report(pretrained=["abpn", "xcat"], data="builtin", runners=["sim"],
                      out_dir=tmp_path / "r", quiet=True)
    table = _table(out).set_index("model")
    page = (out / "index.html").read_text()
    markdown = (out / "leaderboard.md").read_text()
    assert "Latency per device: estimates, not measurements" in page and \
        "## Latency per device: estimates, not measurements" in markdown
    for name in ("abpn.etds_div2k", "xcat.mai_builtin"):  # the architectures' defaults
        card = json.loads((out / "cards" / f"{name}-shipped.json").read_text())
        timing = PRETRAINED_DIR / card["files"][0]["name"]
        assert timing == pretrained_path(name, "fixed")
        estimates = {e["profile"]: e for e in card["estimates"]}
        assert list(estimates) == list(profile_names())
        for profile in profile_names():
            capsys.readouterr()
            assert main(["bench", str(timing), "--runner", "sim", "--device", profile,
                         "--json"]) == 0
            bench = json.loads(capsys.readouterr().out)
            est = estimates[profile]
            assert est["estimate_ms"] == pytest.approx(bench["avg_ms"], rel=1e-12)
            assert table.loc[f"{name} (shipped)", ESTIMATE_PREFIX + profile] == \
                pytest.approx(bench["avg_ms"], rel=1e-9)
            fit = load_profile(profile).fit
            assert (est["fit_date"], est["median_abs_error_pct"], est["max_abs_error_pct"]) == \
                (fit["date"], fit["validation"]["median_abs_pct"],
                 fit["validation"]["max_abs_pct"])
            assert est["validation"] == fit["validation"]["method"] and est["error"] is None
            if profile != "vs680-synap":  # labelled an estimate wherever it is shown
                assert f"{profile} ms, estimated" in markdown
                assert "(estimated)" in est["device"]
        # the score's runtime is the VS680 simulator's, the only challenge device
        assert card["score"]["runtime_ms"] == estimates["vs680-synap"]["estimate_ms"]
        assert table.loc[f"{name} (shipped)", "npu_runner"] == "sim vs680-synap (simulated)"
    assert "fitted cost models, not measurements" in page
    assert "leave-one-architecture-out" in page

    # a refitted profile (new file content) gives new cache keys: the estimates are redone
    calls = []
    original = SimRunner.bench
    monkeypatch.setattr(SimRunner, "bench",
                        lambda self, path: calls.append(path) or original(self, path))
    make_report(pretrained=["abpn"], data="builtin", runners=["sim"], out_dir=tmp_path / "r",
                quiet=True)
    assert calls == []  # nothing changed: from the cache
    monkeypatch.setattr(SimRunner, "cache_inputs", staticmethod(lambda: {"refitted": "yes"}))
    make_report(pretrained=["abpn"], data="builtin", runners=["sim"], out_dir=tmp_path / "r",
                quiet=True)
    assert len(calls) == 1


def test_a_phone_estimate_is_never_the_score():
    """A card whose only NPU-like figures are phone estimates has no score; the VS680's
    estimate, or the synap runner's time before it, is the score's runtime."""
    from mai_sr.report.cards import npu_runtime

    def row(runner, ms, profile=None):
        return {"runner": runner, "avg_ms": ms, "simulated": True, "timed_on": None,
                "device": {"profile": profile} if profile else {}}

    phones = [row("sim", 5.0, "dimensity8100-nnapi"), row("sim", 9.0, "snapdragon8gen1-nnapi")]
    assert npu_runtime(phones) is None
    vs680 = row("sim", 27.0, "vs680-synap")
    assert npu_runtime(phones + [vs680]) is vs680
    synap = row("synap", 30.0)
    assert npu_runtime(phones + [vs680, synap]) is synap
