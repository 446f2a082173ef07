"""The shipped pretrained models (mai_sr/pretrained), used the way the README tells users to.

Their figures come from `benchmarks/pretrained_table.py`, which wrote each model card; the
tests here measure again, with the CLI, and compare. They run over what is shipped: a newly
registered model has no files until `pretrained_table.py --ship` writes them, and that is not
a failure (adding a model is one file plus one registry line)."""

import json

import numpy as np
import pytest

from mai_sr.cli import main
from mai_sr.lint import lint_model
from mai_sr.fileio import sha256_file
from mai_sr.tflite.runtime import TFLiteSR
from mai_sr.pretrained import NAMES, PRETRAINED_DIR, available, pretrained_path
from mai_sr.report.cards import card_quality, validate_model_card

SIZE_LIMIT_BYTES = 2 * 1024 * 1024   # the shipped set's target: "Total added size under 2 MB"
REPRODUCE_DB = 0.01                  # eval --pretrained reproduces the README to 0.01 dB
GAIN_TARGET_DB = 1.2                 # target: INT8 PSNR - bicubic PSNR on Set14 and B100
KINDS = ("fixed", "dynamic", "weights", "ranges", "card")
SUFFIXES = (".tflite", "_none.tflite", ".weights.h5", ".qat.json", ".json")  # KINDS' files
# The models whose INT8 files are in mai_sr/pretrained (their other files are checked below).
SHIPPED = available()
# The README's pretrained table: these four must stay shipped.
IN_THE_README = ("abpn", "ncnet", "scsrn", "xcat")


def card(name: str) -> dict:
    return json.loads(pretrained_path(name, "card").read_text())


def test_shipped_models_have_every_file_in_under_2_mb():
    assert set(IN_THE_README) <= set(SHIPPED)
    for name in SHIPPED:
        for kind in KINDS:
            assert pretrained_path(name, kind).is_file()
    for name in set(NAMES) - set(SHIPPED):  # a registered model ships all its files or none
        assert not [s for s in SUFFIXES if (PRETRAINED_DIR / f"{name}{s}").exists()], name
    shipped = [p for p in PRETRAINED_DIR.iterdir() if p.is_file() and p.suffix != ".py"]
    assert 0 < sum(p.stat().st_size for p in shipped) < SIZE_LIMIT_BYTES


@pytest.mark.parametrize("name", SHIPPED)
def test_card_describes_the_shipped_files(name):
    c = card(name)
    validate_model_card(c)
    assert c["architecture"] == name and c["status"] == "ok" and c["precision"] == "int8"
    files = {f["name"]: f for f in c["files"]}
    for kind in ("fixed", "dynamic"):
        path = pretrained_path(name, kind)
        assert files[path.name]["sha256"] == sha256_file(path)
        assert files[path.name]["bytes"] == path.stat().st_size
    datasets = {q["dataset"] for q in c["quality"]}
    assert {"Set5", "Set14", "B100"} <= datasets


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_are_uint8_and_lint_without_warnings(name):
    for kind in ("fixed", "dynamic"):
        path = pretrained_path(name, kind)
        report = lint_model(path)
        assert (report.errors, report.warnings) == (0, 0), [f.message for f in report.findings]
        model = TFLiteSR(path)
        assert tuple(model.input_quant) == (1.0, 0) and tuple(model.output_quant) == (1.0, 0)
    assert TFLiteSR(pretrained_path(name, "fixed")).fixed_shape == (360, 640)


@pytest.mark.parametrize("name", SHIPPED)
def test_eval_pretrained_reproduces_the_published_set14_figures(name, shared_data, capsys):
    """The acceptance command, `mai-sr eval --pretrained X --data .../Set14`."""
    assert main(["eval", "--pretrained", name, "--data", str(shared_data / "Set14"), "--json",
                 "--quiet"]) == 0
    measured = json.loads(capsys.readouterr().out)[0]
    assert measured["dataset"] == "Set14" and len(measured["images"]) == 14
    recorded = card_quality(card(name), "Set14", "tflite")
    assert abs(measured["mean"]["psnr"] - recorded["psnr"]) <= REPRODUCE_DB
    assert abs(measured["mean"]["ssim"] - recorded["ssim"]) <= 1e-4
    assert measured["mean"]["psnr"] - measured["mean"]["bicubic_psnr"] >= GAIN_TARGET_DB


@pytest.mark.parametrize("name", ["abpn", "scsrn"])
@pytest.mark.tf
@pytest.mark.slow
def test_export_pretrained_writes_the_shipped_model_again(name, shared_data, tmp_path, capsys):
    """Weights + QAT ranges rebuild the QAT model: any export shape gives the shipped outputs.
    (ABPN: plain convs + anchor; SCSRN: skip concat, the most range-sensitive graph.)"""
    out = tmp_path / f"{name}.tflite"
    assert main(["export", str(out), "--pretrained", name, "--shape", "40x48"]) == 0
    rebuilt, shipped = TFLiteSR(out), TFLiteSR(pretrained_path(name, "dynamic"))
    from mai_sr.data import load_pairs

    lr = load_pairs(str(shared_data / "Set5"))[0].lr[:40, :48]
    noise = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    for image in (lr, noise):
        np.testing.assert_array_equal(rebuilt.upscale(image), shipped.upscale(image))
    sidecar = json.loads((tmp_path / f"{name}.tflite.json").read_text())
    assert sidecar["source"]["pretrained"] == name and sidecar["quantization"] == "qat"


def test_bench_and_upscale_run_the_pretrained_models_offline(tmp_path, capsys):
    assert main(["bench", "--pretrained", "xcat", "--runner", "synap", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["simulated"] is True and bench["avg_ms"] > 0
    image = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(image)
    assert main(["upscale", str(image), str(tmp_path / "out.png"), "--pretrained", "xcat",
                 "--quiet"]) == 0
    assert Image.open(tmp_path / "out.png").size == (120, 90)


@pytest.mark.parametrize("argv", [["eval", "--pretrained", "xcat"],
                                  pytest.param(["export", "m.tflite", "--pretrained", "xcat"],
                                               marks=pytest.mark.tf),
                                  ["bench", "--pretrained", "xcat", "--runner", "synap"],
                                  ["push", "--pretrained", "xcat"]])
def test_a_missing_shipped_file_is_a_one_line_error(argv, tmp_path, monkeypatch, capsys):
    """A broken install (files deleted) names the missing file; nothing is written."""
    import mai_sr.pretrained

    monkeypatch.setattr(mai_sr.pretrained, "PRETRAINED_DIR", tmp_path / "empty")
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--pretrained xcat" in err and "is not shipped" in err
    assert not list(tmp_path.glob("*.tflite"))
