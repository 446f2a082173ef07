"""Recipes as files: `mai-sr train --recipe FILE` replays a recipe's stages exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mai_sr.errors import MaiSrError

ROOT = Path(__file__).resolve().parents[1]

SHORT = {
    "name": "abpn.test_short",
    "description": "a shortened two-stage recipe: FP32 then QAT from it, on builtin photos",
    "stages": [
        {"name": "fp32", "train": {"model": "abpn", "data": "builtin", "steps": 6, "patch": 16,
                                   "batch": 2, "val_every": 3, "seed": 7}},
        {"name": "qat", "train": {"from_run": "{stage:fp32}", "qat_steps": 4, "val_every": 2}},
    ],
}


def _weights(path):
    import h5py

    out = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, node: out.append((name, node[()]))
                     if isinstance(node, h5py.Dataset) else None)
    return out


@pytest.mark.tf
@pytest.mark.slow
def test_a_recipe_replays_bit_for_bit(tmp_path, capsys):
    from mai_sr.cli import main

    recipe = tmp_path / "short.json"
    recipe.write_text(json.dumps(SHORT))
    for out in ("a", "b"):
        assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / out),
                     "--quiet", "--no-tensorboard"]) == 0
    a, b = (_weights(tmp_path / o / "qat" / "qat" / "qat.weights.h5") for o in ("a", "b"))
    assert [n for n, _ in a] == [n for n, _ in b] and a
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))
    # a third call finds every stage finished and trains nothing
    assert main(["train", "--recipe", str(recipe), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "stage fp32: skip" in out and "stage qat: skip" in out
    record = json.loads((tmp_path / "a" / "qat" / "recipe.json").read_text())
    from mai_sr.recipes import read_recipe, recipe_hash

    assert record["sha256"] == recipe_hash(read_recipe(recipe))


@pytest.mark.tf
@pytest.mark.slow
def test_a_shortened_shipped_recipe_replays_bit_for_bit(shared_data, shared_artifacts, tmp_path):
    """The recipe of abpn.etds_div2k as shipped (import of the published checkpoint, then
    mai-sr's QAT with the imported model as teacher), shortened to 4 QAT steps on T91 with
    small patches: two replays give the same weights, bit for bit."""
    from mai_sr.pretrained import recipe_path
    from mai_sr.recipes import IMPORTED_QAT, run_recipe

    recipe = json.loads(recipe_path("abpn.etds_div2k").read_text())
    assert recipe["stages"][1]["train"] == IMPORTED_QAT
    recipe["stages"][1]["train"].update(qat_steps=4, val_every=2, patch=16, batch=2,
                                        data="{data}/T91")
    path = tmp_path / "short.json"
    path.write_text(json.dumps(recipe))
    for out in ("a", "b"):
        run_recipe(path, tmp_path / out, quiet=True, tensorboard=False)
    a, b = (_weights(tmp_path / o / "qat" / "qat" / "qat.weights.h5") for o in ("a", "b"))
    assert [n for n, _ in a] == [n for n, _ in b] and a
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(a, b))


@pytest.mark.parametrize("mutate, complaint", [
    (lambda r: r["stages"][0]["train"].update(out="x"), "caller-only field"),
    (lambda r: r["stages"][0]["train"].update(bogus=1), "unknown or caller-only field"),
    (lambda r: r["stages"][1]["train"].update(from_run="{stage:nope}"), "names no earlier"),
    (lambda r: r.pop("stages"), "stages"),
    (lambda r: r["stages"].append(r["stages"][0]), "two stages named fp32"),
])
def test_a_bad_recipe_is_one_line(tmp_path, mutate, complaint):
    from mai_sr.recipes import stage_configs

    recipe = json.loads(json.dumps(SHORT))
    mutate(recipe)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(recipe))
    with pytest.raises(MaiSrError, match=complaint) as info:
        stage_configs(path, tmp_path / "out")
    assert "\n" not in str(info.value)


def test_recipe_refuses_other_training_options(tmp_path, capsys):
    from mai_sr.cli import main

    path = tmp_path / "r.json"
    path.write_text(json.dumps(SHORT))
    assert main(["train", "--recipe", str(path), "--steps", "5"]) == 2
    assert "do not combine it with --steps" in capsys.readouterr().err


def test_an_import_stage_feeds_a_later_stage(tmp_path):
    from mai_sr.recipes import IMPORTED, stage_configs

    recipe = {"name": "ncnet.from_abpn", "stages": [
        {"name": "teacher", "import": {"source": "{artifacts}/etds_abpn/ABPN_M4C28_x3.pth",
                                       "model": "abpn"}},
        {"name": "fp32", "train": {"model": "ncnet", "teacher": "{stage:teacher}",
                                   "data": "{data}/T91"}}]}
    path = tmp_path / "r.json"
    path.write_text(json.dumps(recipe))
    (name, kind, kwargs), (name2, kind2, kwargs2) = stage_configs(path, tmp_path / "out")
    assert (name, kind) == ("teacher", "import") and kwargs["source"].endswith(
        "artifacts/etds_abpn/ABPN_M4C28_x3.pth")
    assert kind2 == "train" and kwargs2["teacher"] == str(tmp_path / "out" / "teacher" / IMPORTED)
    assert kwargs2["data"].endswith("data/T91")


def test_every_shipped_weight_has_its_recipe_and_the_imported_ones_share_one_qat():
    """Each weight of mai_sr/pretrained/shipped.json names a recipe file called after it, that
    parses into stages; the recipes of published weights (an import stage, then QAT) all run
    the one QAT recipe, mai_sr.recipes.IMPORTED_QAT, so a change to it is one edit (and
    `benchmarks/pretrained_table.py --write-recipes`), with the steps and LR of
    IMPORTED_QAT_CHANGES where a longer or slower QAT validated better (each such weight
    measured in benchmarks/results/qat_steps.json)."""
    from mai_sr.pretrained import RECIPES_DIR, recipe_path, shipped_weights
    from mai_sr.recipes import (IMPORTED_QAT, IMPORTED_QAT_CHANGES, imported_qat, read_recipe,
                                stage_configs)

    imported = []
    for weight in shipped_weights():
        path = recipe_path(weight["name"])
        assert path.parent == RECIPES_DIR and path.name == f"{weight['name']}.json"
        recipe = read_recipe(path)
        assert recipe["name"] == weight["name"]
        stages = [s["name"] for s in recipe["stages"]]
        if "import" in recipe["stages"][0]:
            assert stages == ["import", "qat"]
            qat = dict(recipe["stages"][1]["train"])
            changes = IMPORTED_QAT_CHANGES.get(weight["name"], {})
            assert set(changes) <= {"qat_steps", "qat_lr"}
            assert qat == {**IMPORTED_QAT, **changes}
            imported.append(weight["name"])
        # every stage expands: its options are TrainConfig fields, its references earlier stages
        assert [name for name, _, _ in stage_configs(path, RECIPES_DIR / "out")] == stages
    # every weight made from published ones (the two challenge architectures' and the zoo's)
    assert imported == [w["name"] for w in shipped_weights() if w["source"] != "mai-sr"]
    assert {"abpn.etds_div2k", "ncnet.megsr_div2k"} <= set(imported)
    # the QAT of published weights never validates on a test set, nor trains on one
    assert "Set5" not in json.dumps(IMPORTED_QAT) and "B100" not in json.dumps(IMPORTED_QAT)
    assert IMPORTED_QAT["teacher"] == IMPORTED_QAT["from_run"] == "{stage:import}"
    measured = json.loads((ROOT / "benchmarks" / "results" / "qat_steps.json").read_text())
    # each other setting shipped was measured (and, below, chosen by the rule)
    assert set(IMPORTED_QAT_CHANGES) <= set(imported) & set(measured["weights"])
    # every recorded choice follows the stated rule: going up the counts tried, and at each
    # count from the recipe's LR down, a run replaces the one chosen so far when it validates
    # more than 0.002 dB above it
    for name, entry in measured["weights"].items():
        runs = sorted(((run["steps"], -run["lr"]), run["qat_val"])
                      for key, run in entry.items() if key.startswith("qat_steps_"))
        chosen = runs[0]
        for run in runs[1:]:
            chosen = run if run[1] > chosen[1] + 0.002 else chosen
        steps, lr = chosen[0][0], -chosen[0][1]
        assert (entry["chosen_steps"], entry["chosen_lr"]) == (steps, lr), name
        shipped = imported_qat(name)
        assert (shipped["qat_steps"], shipped["qat_lr"]) == (steps, lr), name
