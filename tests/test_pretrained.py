"""The shipped pretrained models (mai_sr/pretrained), used the way the README tells users to.

Their figures come from `benchmarks/pretrained_table.py`, which wrote each model card; the
tests here measure again, with the CLI, and compare. What ships is one set of files per
weight of the table `mai_sr/pretrained/shipped.json`, named by the weight (`abpn.etds_div2k`,
`abpn.mai_builtin`, ...); each architecture's bare name means its default weight."""

import json

import numpy as np
import pytest

from mai_sr.cli import main
from mai_sr.lint import lint_model
from mai_sr.fileio import sha256_file
from mai_sr.tflite.runtime import TFLiteSR
from mai_sr.pretrained import (KINDS, PRETRAINED_DIR, RECIPES_DIR, architecture, available,
                               default_weights, pretrained_path, recipe_path, shipped_weights,
                               weight_name)
from mai_sr.report.cards import card_quality, validate_model_card

# Each shipped weight's five files stay under this many bytes per parameter of its network
# plus a fixed allowance (the card, the tables of two flatbuffers and an HDF5 file): float32
# weights take 4.75 bytes per parameter in NAME.weights.h5 and each INT8 file 1.3-1.4. The
# package's total follows the table: its weights' limits plus the tables and recipes. Sizes
# per weight: 161 KiB (ecbsr.etds_div2k, 14 K parameters) to 2,253 KiB
# (ecbsr_m6c40_relu_pair.etds_div2k, 368 K parameters); 17,162 KiB in all with 29 weights.
WEIGHT_BYTES_PER_PARAM = 8
WEIGHT_FIXED_BYTES = 64 * 1024
TABLES_LIMIT_BYTES = 128 * 1024      # shipped.json, zoo.json, recipes/
REPRODUCE_DB = 0.01                  # eval --pretrained reproduces the README to 0.01 dB
GAIN_TARGET_DB = 1.2                 # target: INT8 PSNR - bicubic PSNR on Set14 and B100
# The weights in the table (every one must ship all its files).
SHIPPED = [w["name"] for w in shipped_weights()]
ZOO_SHIPPED = ("etds_l", "etds_m", "etds_s", "etds", "espcn", "ecbsr", "ecbsr_m4c32",
               "ecbsr_m6c40", "abpn_m6c40", "fsrcnn",
               # ECBSR's and FSRCNN's layout option, the same networks with each PReLU as two
               # ReLUs
               "ecbsr_m4c16_relu_pair", "ecbsr_m4c32_relu_pair", "ecbsr_m6c40_relu_pair",
               "fsrcnn_relu_pair",
               # FSRCNN's with two ReLUs and its transposed conv as a conv and depth-to-space,
               # and that with every hidden tensor written twice
               "fsrcnn_relu_pair_subpixel", "fsrcnn_relu_pair_subpixel_copies",
               # ESPCN's, the same network with each tanh layer's channels in groups, and
               # with each group's channels twice
               "espcn_tanh_groups", "espcn_tanh_copies",
               # ETDS's, the same networks with the image path carried twice (ETDS-L's
               # also four times)
               "etds_image_pair", "etds_s_image_pair", "etds_m_image_pair",
               "etds_l_image_pair", "etds_l_image_quad")
# The README's architectures: each must keep a shipped default.
IN_THE_README = ("abpn", "ncnet", "scsrn", "xcat")
# Each architecture's default, as decided: the DIV2K-trained weights where they are published.
# The ETDS zoo's x3 architectures ship their DIV2K weights as their only (default) weight.
DEFAULTS = {"abpn": "abpn.etds_div2k", "ncnet": "ncnet.megsr_div2k",
            "scsrn": "scsrn.mai_builtin", "xcat": "xcat.mai_builtin",
            **{arch: f"{arch}.etds_div2k" for arch in ZOO_SHIPPED}}
TABLES = ("__init__.py", "shipped.json", "zoo.json")


def card(name: str) -> dict:
    return json.loads(pretrained_path(name, "card").read_text())


def test_every_weight_of_the_table_ships_its_files_and_nothing_else_is_there():
    assert available() == SHIPPED and len(set(SHIPPED)) == len(SHIPPED)
    assert default_weights() == DEFAULTS
    for name in SHIPPED:
        assert name.split(".")[0] == architecture(name) and "." in name
        for kind in KINDS:
            assert pretrained_path(name, kind).is_file(), (name, kind)
    expected = {f"{name}{suffix}" for name in SHIPPED for suffix in KINDS.values()}
    found = {p.name for p in PRETRAINED_DIR.iterdir() if p.is_file()}
    assert found - set(TABLES) == expected  # no file of a weight the table does not list
    for arch in IN_THE_README:  # the bare name is the default weight's files
        for kind in KINDS:
            assert pretrained_path(arch, kind) == pretrained_path(DEFAULTS[arch], kind)
    with pytest.raises(Exception, match="not a shipped model"):
        weight_name("abpn.nonexistent")


def test_the_package_size_follows_the_weights_table():
    limits = {name: WEIGHT_BYTES_PER_PARAM * card(name)["complexity"]["params"]
              + WEIGHT_FIXED_BYTES for name in SHIPPED}
    for name in SHIPPED:
        size = sum(pretrained_path(name, kind).stat().st_size for kind in KINDS)
        assert 0 < size < limits[name], name
    tables = sum(p.stat().st_size for p in [*(PRETRAINED_DIR / t for t in TABLES[1:]),
                                             *RECIPES_DIR.glob("*.json")])
    assert tables < TABLES_LIMIT_BYTES
    data = [p for p in PRETRAINED_DIR.rglob("*") if p.is_file() and p.suffix != ".py"
            and "__pycache__" not in p.parts]
    assert sum(p.stat().st_size for p in data) < sum(limits.values()) + TABLES_LIMIT_BYTES


@pytest.mark.parametrize("name", SHIPPED)
def test_card_describes_the_shipped_files_and_where_they_come_from(name):
    from mai_sr.recipes import read_recipe, recipe_hash

    c = card(name)
    validate_model_card(c)
    assert c["name"] == name and c["architecture"] == architecture(name)
    assert c["status"] == "ok" and c["precision"] == "int8"
    files = {f["name"]: f for f in c["files"]}
    for kind in ("fixed", "dynamic"):
        path = pretrained_path(name, kind)
        assert files[path.name]["sha256"] == sha256_file(path)
        assert files[path.name]["bytes"] == path.stat().st_size
    for channel in (False, True):  # RGB and luma, INT8 on every test set
        assert {q["dataset"] for q in c["quality"] if q["y_channel"] == channel
                and q["source"] == "tflite"} >= {"Set5", "Set14", "B100"}
    row = next(w for w in shipped_weights() if w["name"] == name)
    assert c["attribution"]["source"] == row["source"]
    assert c["attribution"]["licence"] == row["licence"] == "Apache-2.0"
    assert c["attribution"]["paper"] == row.get("paper")
    # the recipe that made it: the file's own sha256, and what each replayed stage records
    recipe = recipe_path(name)
    assert recipe.name == f"{name}.json" and c["recipe"]["file"] == recipe.name
    assert c["recipe"]["sha256"] == sha256_file(recipe)
    assert c["recipe"]["name"] == read_recipe(recipe)["name"] == name
    assert c["recipe"]["json_sha256"] == recipe_hash(read_recipe(recipe))


# Warnings a shipped file may carry: the published computation of its family, kept as
# published (ESPCN's 5x5 and FSRCNN's 5x5 and 9x9 kernels, which FSRCNN's two-ReLU layout
# keeps; its subpixel layout keeps the 5x5 and moves the 9x9 taps into a 4x4 conv; ESPCN's
# tanh groups split its 5x5 conv into four); every other weight lints clean.
PUBLISHED_FORM_WARNINGS = {"espcn": {"kernel"}, "fsrcnn": {"kernel"},
                           "fsrcnn_relu_pair": {"kernel"}, "fsrcnn_relu_pair_subpixel": {"kernel"},
                           "fsrcnn_relu_pair_subpixel_copies": {"kernel"},
                           "espcn_tanh_groups": {"kernel"}, "espcn_tanh_copies": {"kernel"}}
# FSRCNN's dynamic-shape files with a transposed conv compute its output shape in the graph,
# on int32 shape data, which lint flags for the NPU targets; the fixed file (the one an NPU
# runs) has no such op, nor has the subpixel layout's dynamic file.
SHAPE_OPS = {"SHAPE", "STRIDED_SLICE", "MUL", "PACK"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_files_are_uint8_and_lint_as_their_card_says(name):
    allowed = PUBLISHED_FORM_WARNINGS.get(architecture(name), set())
    for kind in ("fixed", "dynamic"):
        path = pretrained_path(name, kind)
        report = lint_model(path)
        errors = [f for f in report.findings if f.severity == "error"]
        if kind == "dynamic" and architecture(name) in ("fsrcnn", "fsrcnn_relu_pair"):
            types = {row.index: row.type for row in report.rows}
            errors = [f for f in errors if types.get(f.op) not in SHAPE_OPS]
        assert not errors, [f.message for f in errors]
        warned = {f.code for f in report.findings if f.severity == "warning"}
        assert warned <= allowed, [f.message for f in report.findings]
        if kind == "fixed":
            assert report.warnings == card(name)["lint"]["warnings"]
        model = TFLiteSR(path)
        assert tuple(model.input_quant) == (1.0, 0) and tuple(model.output_quant) == (1.0, 0)
    assert TFLiteSR(pretrained_path(name, "fixed")).fixed_shape == (360, 640)


@pytest.mark.parametrize("name", SHIPPED)
def test_eval_pretrained_reproduces_the_published_set14_figures(name, shared_data, capsys):
    """The acceptance command, `mai-sr eval --pretrained X --data .../Set14 [--y]`."""
    for y in (False, True):
        assert main(["eval", "--pretrained", name, "--data", str(shared_data / "Set14"),
                     "--json", "--quiet", *(["--y"] if y else [])]) == 0
        measured = json.loads(capsys.readouterr().out)[0]
        assert measured["dataset"] == "Set14" and len(measured["images"]) == 14
        recorded = card_quality(card(name), "Set14", "tflite", y_channel=y)
        assert abs(measured["mean"]["psnr"] - recorded["psnr"]) <= REPRODUCE_DB
        assert abs(measured["mean"]["ssim"] - recorded["ssim"]) <= 1e-4
        if not y:
            assert measured["mean"]["psnr"] - measured["mean"]["bicubic_psnr"] >= GAIN_TARGET_DB


def test_the_div2k_defaults_lead_the_builtin_weights_on_their_cards():
    """Why abpn and ncnet default to the published DIV2K weights: on every test set (INT8,
    RGB) they lead the weights mai-sr trained on 291 small images."""
    for arch in ("abpn", "ncnet"):
        div2k, builtin = card(DEFAULTS[arch]), card(f"{arch}.mai_builtin")
        for dataset in ("Set5", "Set14", "B100"):
            assert card_quality(div2k, dataset, "tflite")["psnr"] > \
                card_quality(builtin, dataset, "tflite")["psnr"], (arch, dataset)


@pytest.mark.parametrize("name", ["abpn", "scsrn"])
@pytest.mark.tf
@pytest.mark.slow
def test_export_pretrained_writes_the_shipped_model_again(name, shared_data, tmp_path, capsys):
    """Weights + QAT ranges rebuild the QAT model: any export shape gives the shipped outputs.
    (ABPN: plain convs + anchor, its default weight abpn.etds_div2k; SCSRN: skip concat, the
    most range-sensitive graph.)"""
    out = tmp_path / f"{name}.tflite"
    assert main(["export", str(out), "--pretrained", name, "--shape", "40x48"]) == 0
    rebuilt, shipped = TFLiteSR(out), TFLiteSR(pretrained_path(name, "dynamic"))
    from mai_sr.data import load_pairs

    lr = load_pairs(str(shared_data / "Set5"))[0].lr[:40, :48]
    noise = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    for image in (lr, noise):
        np.testing.assert_array_equal(rebuilt.upscale(image), shipped.upscale(image))
    sidecar = json.loads((tmp_path / f"{name}.tflite.json").read_text())
    assert sidecar["source"]["pretrained"] == weight_name(name)  # the weight the name means
    assert sidecar["model"] == architecture(name) and sidecar["quantization"] == "qat"


def test_bench_and_upscale_run_the_pretrained_models_offline(tmp_path, capsys):
    assert main(["bench", "--pretrained", "xcat", "--runner", "synap", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["simulated"] is True and bench["avg_ms"] > 0
    image = tmp_path / "in.png"
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(image)
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


def _on_int8_grid(values, axes) -> bool:
    """Whether `values` are integer multiples of max|v| / 127 over `axes` (zero-free)."""
    step = np.abs(values).max(axis=axes, keepdims=True) / 127
    levels = values / np.where(step > 0, step, 1)
    return bool(np.abs(levels - np.round(levels)).max() < 1e-3)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_float_weights_are_the_ones_the_int8_file_computes_with(name):
    """Every kernel on its per-channel (or, for a transposed conv, per-tensor) int8 grid and
    every PReLU slope on its per-tensor one: the float weights a user fine-tunes or distils
    from are the INT8 network's, not QAT's shadow weights (those of ETDS-T scored 19.7 dB
    on Set5 as a float model, against 31.1 on their grid)."""
    import h5py

    with h5py.File(pretrained_path(name, "weights"), "r") as f:
        arrays = {}
        f.visititems(lambda key, obj: arrays.__setitem__(key, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    kernels = {k: v for k, v in arrays.items() if v.ndim == 4}
    slopes = {k: v for k, v in arrays.items() if "re_lu" in k}
    assert kernels
    for key, kernel in kernels.items():
        assert _on_int8_grid(kernel, (0, 1, 2)) or _on_int8_grid(kernel, None), key
    for key, slope in slopes.items():
        assert _on_int8_grid(slope, None), key
