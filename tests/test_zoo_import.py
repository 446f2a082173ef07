"""`mai-sr import` without --model: the DIV2K-trained ETDS zoo placed by its keys and shapes,
its ET files read back to their plain weights, unknown architectures answered in one line
and in bounded time, and the weights written as one set with their record.

References: the published checkpoints themselves (../shared/artifacts/etds_zoo), the paper's
Table 2 (Chao et al., "Equivalent Transformation and Dual Stream Network Construction for
Mobile Image Super-Resolution", CVPR 2023; ``table2.csv``), and a depth-first search as the
reference for the chain order.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import crafted_files as crafted
from conftest import SHARED_ARTIFACTS, zoo_checkpoint
from mai_sr.errors import MaiSrError

ROOT = Path(__file__).resolve().parents[1]
ZOO = SHARED_ARTIFACTS / "etds_zoo"
PRETRAINED = ZOO / "pretrained"
# File stem (without _ET_ and _xS) -> the registry name it must be placed as.
EXPECTED_NAME = {"ESPCN": "espcn", "FSRCNN": "fsrcnn", "ECBSR_M4C16": "ecbsr",
                 "ECBSR_M4C32": "ecbsr_m4c32", "ECBSR_M6C40": "ecbsr_m6c40",
                 "ABPN_M4C28": "abpn", "ABPN_M6C40": "abpn_m6c40", "ETDS_M5C16": "etds",
                 "ETDS_M4C32": "etds_s", "ETDS_M6C32": "etds_m", "ETDS_M7C48": "etds_l"}


def paper_row(checkpoint: str) -> dict:
    with open(ZOO / "table2.csv", newline="") as f:
        return next(r for r in csv.DictReader(f) if r["checkpoint"].endswith(checkpoint))


# ------------------------------------------------------------------ placement (TF-free)


def test_every_zoo_checkpoint_is_placed_by_its_keys_and_shapes():
    from mai_sr.importer.torch_checkpoint import read_state_dict
    from mai_sr.importer.zoo import describe, recognise

    files = sorted(PRETRAINED.glob("*/*.pth")) if PRETRAINED.is_dir() else []
    if not files:
        pytest.skip(f"{PRETRAINED} not present")
    placed_count = 0
    for path in files:
        tensors, _ = read_state_dict(path)
        placed = recognise(tensors)
        if path.stem.startswith("Plain"):  # no registered graph: one line on what it holds
            assert placed is None
            assert "not a known architecture: found 8 convs (3->32, 32->32 x6, 32->48)" \
                in describe(path.name, tensors)
            continue
        stem = re.sub(r"_ET_", "_", path.stem)
        family_size, scale = stem.rsplit("_x", 1)
        assert placed.model == EXPECTED_NAME[family_size], path.name
        assert placed.scales == ((2, 3, 4) if family_size == "FSRCNN" else (int(scale),))
        assert ("equivalent-transformation" in placed.architecture) == ("_ET_" in path.name)
        placed_count += 1
    assert placed_count == 48  # 33 main checkpoints and 15 ET forms


def test_a_tampered_et_file_is_refused_in_one_line():
    from mai_sr.importer.torch_checkpoint import read_state_dict
    from mai_sr.importer.zoo import recognise

    tensors, _ = read_state_dict(zoo_checkpoint("ABPN_ET_M4C28_x3"))
    tensors["backbone.2.0.weight"] = tensors["backbone.2.0.weight"].copy()
    tensors["backbone.2.0.weight"][-1, -1, 1, 1] = 0.9  # an image copy that no longer copies
    placed = recognise(tensors)
    with pytest.raises(MaiSrError, match="backbone.2.0: the ET form's image-copy channels are "
                                         "not the identity"):
        placed.convert(3, "crd", 1.0)
    tensors, _ = read_state_dict(zoo_checkpoint("ECBSR_ET_M4C16_x2"))
    tensors["backbone.6.0.bias"] = tensors["backbone.6.0.bias"] * 0.5
    with pytest.raises(MaiSrError, match="1x1 clip conv is not -I"):
        recognise(tensors).convert(2, "crd", 1.0)


@pytest.mark.parametrize("convs", [10, 20, 40])
def test_an_unknown_architecture_is_one_line_within_two_seconds(tmp_path, convs):
    """The CLI process, start to end (an EDSR-like file once took 45 s in the chain search)."""
    path = crafted.unknown_architecture(tmp_path / "edsr.pth", convs)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mai_sr", "import", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"mai-sr import: error: {path}: not a known architecture: found "
                           f"{convs} convs (3->16, 16->16 x{convs - 2}, 16->3); the known ones "
                           "are ESPCN, FSRCNN, ECBSR, ABPN and ETDS at their published sizes "
                           "(mai-sr's registry); give --model to fit a plain conv chain to "
                           "another graph\n")
    assert elapsed < 2.0, elapsed


def _reference_chain(convs):
    """Depth-first search in file order (the former implementation): the reference."""
    def extend(chain, rest):
        if not rest:
            return chain
        want = chain[-1].kernel.shape[3] if chain else 3
        for i, conv in enumerate(rest):
            if conv.kernel.shape[2] == want:
                found = extend(chain + [conv], rest[:i] + rest[i + 1:])
                if found is not None:
                    return found
        return None
    return extend([], list(convs))


def _convs(shapes):
    from mai_sr.importer.source import SourceConv

    return [SourceConv(np.zeros((1, 1, i, o), np.float32), None, f"c{k}")
            for k, (i, o) in enumerate(shapes)]


def test_chain_order_equals_a_depth_first_search_in_file_order():
    from mai_sr.importer.matcher import chain_order

    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 7))
        widths = [3] + list(rng.choice([3, 4, 5], n))
        shapes = [(widths[k], widths[k + 1]) for k in range(n)]
        order = rng.permutation(n)
        convs = _convs([shapes[k] for k in order])
        if rng.random() < 0.3:  # sometimes no chain at all
            convs.append(_convs([(int(rng.integers(6, 8)), 3)])[0])
        expected = _reference_chain(convs)
        got = chain_order(convs)
        assert (got is None) == (expected is None)
        if got is not None:
            assert [c.label for c in got] == [c.label for c in expected]


@pytest.mark.parametrize("convs", [10, 25, 40])
def test_chain_order_is_bounded_where_the_search_was_exponential(convs):
    from mai_sr.importer.matcher import chain_order

    # Same-shape body convs and a dead end: a depth-first search tries every order of the
    # body before it fails ((n - 3)! paths).
    shapes = [(3, 64)] + [(64, 64)] * (convs - 3) + [(64, 128), (7, 7)]
    started = time.monotonic()
    assert chain_order(_convs(shapes)) is None
    shuffled = [(64, 27), (64, 64)] + [(3, 64)] + [(64, 64)] * (convs - 3)
    assert [c.kernel.shape[2:] for c in chain_order(_convs(shuffled))][0] == (3, 64)
    assert time.monotonic() - started < 0.5


def test_a_crafted_tflite_is_one_line(tmp_path, capsys):
    import struct

    from mai_sr.cli import main

    data = bytearray((ROOT / "mai_sr" / "pretrained" / "abpn.mai_builtin.tflite").read_bytes())
    # The 27 x 3 x 3 x 28 int8 kernel's vector length, four bytes short of its shape.
    length = struct.pack("<I", 27 * 3 * 3 * 28)
    where = data.rindex(length)
    data[where:where + 4] = struct.pack("<I", 27 * 3 * 3 * 28 - 4)
    path = tmp_path / "crafted.tflite"
    path.write_bytes(bytes(data))
    assert main(["import", str(path), "--model", "abpn"]) == 2
    err = capsys.readouterr().err
    assert err == (f"mai-sr import: error: {path}: CONV_2D op 7: its weights tensor is "
                   "malformed (cannot reshape array of size 6800 into shape (27,3,3,28))\n")
    assert main(["import", str(path)]) == 2
    assert "give --model" in capsys.readouterr().err


# ------------------------------------------------------------------ import (TF)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ESPCN_x3", "ETDS_M5C16_x2", "ECBSR_M4C32_x4"])
def test_import_without_model_reaches_the_papers_set5(tmp_path, shared_data, name):
    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.metrics import psnr
    from mai_sr.models import create_model

    out = tmp_path / "w.weights.h5"
    result = import_weights(zoo_checkpoint(name), None, out)
    scale = int(name.rsplit("_x", 1)[1])
    assert (result.model, result.scale) == (EXPECTED_NAME[name.rsplit("_x", 1)[0]], scale)
    assert "recognised from the state dict" in result.conventions["architecture"]
    model = create_model(result.model, scale=scale, deploy=True)
    model.load_weights(str(out))
    values = [psnr(np.clip(np.rint(model(p.lr[None].astype(np.float32)).numpy()[0]), 0, 255)
                   .astype(np.uint8), p.hr, crop=scale, y_channel=True)
              for p in iter_pairs(shared_data / "Set5", scale=scale)]
    assert np.mean(values) == pytest.approx(float(paper_row(f"{name}.pth")["set5_psnr_y"]),
                                            abs=0.05)


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("plain, et", [("ABPN_M4C28_x3", "ABPN_ET_M4C28_x3"),
                                       ("ECBSR_M6C40_x4", "ECBSR_ET_M6C40_x4")])
def test_an_et_file_imports_as_its_plain_counterpart(tmp_path, shared_data, plain, et):
    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.models import create_model

    models = []
    for name in (plain, et):
        out = tmp_path / f"{name}.weights.h5"
        result = import_weights(zoo_checkpoint(name), None, out)
        model = create_model(result.model, scale=result.scale, deploy=True)
        model.load_weights(str(out))
        models.append(model)
    assert "ET" in result.conventions["architecture"]
    scale = result.scale
    lr = next(iter(iter_pairs(shared_data / "Set14", scale=scale))).lr[None].astype(np.float32)
    a, b = (np.asarray(m(lr)) / 255.0 for m in models)
    assert np.abs(a - b).max() <= 1e-4


def etds_training_form(inference: dict, residual: int = 3) -> dict:
    """The authors' two-stream training state dict (``ETDS``) that their converter turns into
    the published inference one: each conv's rows and columns split back into backbone,
    residual-to-backbone and residual convs (a bias sum goes to the backbone conv), the
    last conv un-negated, the x3 padding channel and the clip conv dropped."""
    first = inference["conv_first.weight"]
    features = first.shape[0] - residual
    out = {"conv_first.weight": first[:features],
           "conv_first.bias": inference["conv_first.bias"][:features],
           "conv_residual_first.weight": first[features:],
           "conv_residual_first.bias": inference["conv_first.bias"][features:]}
    blocks = sum(1 for k in inference if k.startswith("backbone_convs.") and k.endswith("weight"))
    for i in range(blocks):
        w, b = inference[f"backbone_convs.{i}.weight"], inference[f"backbone_convs.{i}.bias"]
        assert not w[features:, :features].any()  # the published residual rows read no feature
        out.update({f"backbone_convs.{i}.weight": w[:features, :features],
                    f"backbone_convs.{i}.bias": b[:features],
                    f"residual_convs.{i}.weight": w[features:, features:],
                    f"residual_convs.{i}.bias": b[features:],
                    f"add_residual_convs.{i}.weight": w[:features, features:],
                    f"add_residual_convs.{i}.bias": np.zeros(features, np.float32)})
    n = 3 * (inference["conv_clip.weight"].shape[0] // 3)  # without the x3 padding channel
    last, bias = -inference["conv_last.weight"][:n], 1.0 - inference["conv_last.bias"][:n]
    out.update({"conv_last.weight": last[:, :features], "conv_last.bias": bias,
                "conv_residual_last.weight": last[:, features:],
                "conv_residual_last.bias": np.zeros(n, np.float32)})
    return out


@pytest.mark.tf
@pytest.mark.slow
@pytest.mark.parametrize("name", ["ETDS_M5C16_x3", "ETDS_M4C32_x4"])
def test_an_etds_training_file_imports_as_the_published_inference_one(tmp_path, shared_data,
                                                                       name):
    """The training form is placed without --model, passes the sanity gate, and mai-sr's
    equivalent transformation of it gives the published network."""
    from crafted_files import state_dict_file

    from mai_sr.data import iter_pairs
    from mai_sr.importer import import_weights
    from mai_sr.importer.torch_checkpoint import read_state_dict
    from mai_sr.models import create_model

    published, _ = read_state_dict(zoo_checkpoint(name))
    training = state_dict_file(tmp_path / f"{name}_training.pth", etds_training_form(published))
    models = []
    for source in (zoo_checkpoint(name), training):
        out = tmp_path / f"{source.stem}.weights.h5"
        result = import_weights(source, None, out)
        model = create_model(result.model, scale=result.scale, deploy=True)
        model.load_weights(str(out))
        models.append(model)
    assert "dual-stream" in result.conventions["architecture"]
    assert result.model == EXPECTED_NAME[name.rsplit("_x", 1)[0]]
    lr = next(iter(iter_pairs(shared_data / "Set14", scale=result.scale))).lr
    a, b = (np.asarray(m(lr[None].astype(np.float32))) / 255.0 for m in models)
    assert np.abs(a - b).max() <= 1e-4


@pytest.mark.tf
@pytest.mark.slow
def test_fsrcnn_scale_is_measured_and_given(tmp_path):
    from mai_sr.importer import import_weights

    result = import_weights(zoo_checkpoint("FSRCNN_x4"), None, None)
    assert result.scale == 4 and "measured" in result.conventions["scale"]
    assert re.search(r"x2 -[\d.]+ dB, x3 -[\d.]+ dB, x4 \+", result.conventions["scale"])
    assert import_weights(zoo_checkpoint("FSRCNN_x2"), None, None, scale=2).scale == 2
    with pytest.raises(MaiSrError, match="--scale 3: .*ECBSR_M4C16_x2.pth holds an x2 ECBSR"):
        import_weights(zoo_checkpoint("ECBSR_M4C16_x2"), None, None, scale=3)


# ------------------------------------------------------------------ the written set


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    from mai_sr.cli import main

    out = tmp_path_factory.mktemp("set") / "etds.weights.h5"
    assert main(["import", str(zoo_checkpoint("ETDS_M5C16_x3")), "--out", str(out)]) == 0
    return out


@pytest.mark.tf
def test_the_record_holds_the_weights_hash_and_outputs_need_force(imported, capsys):
    import hashlib

    from mai_sr.cli import main

    record = json.loads(Path(f"{imported}.json").read_text())
    assert record["weights_sha256"] == hashlib.sha256(imported.read_bytes()).hexdigest()
    assert (record["model"], record["scale"], record["weights_file"]) == ("etds", 3,
                                                                          imported.name)
    before = imported.read_bytes()
    capsys.readouterr()
    assert main(["import", str(zoo_checkpoint("ETDS_M5C16_x3")), "--out", str(imported)]) == 2
    assert capsys.readouterr().err == (f"mai-sr import: error: {imported} exists; give --force "
                                       "to replace it (and its record)\n")
    assert imported.read_bytes() == before


@pytest.mark.tf
def test_a_record_of_other_weights_is_refused_by_its_readers(imported, tmp_path):
    from mai_sr.importer.weights_file import weights_file_model

    other = tmp_path / "other.weights.h5"
    data = bytearray(imported.read_bytes())
    data[len(data) // 2] ^= 0xFF  # torn or swapped weights
    other.write_bytes(bytes(data))
    Path(f"{other}.json").write_text(Path(f"{imported}.json").read_text())
    with pytest.raises(MaiSrError, match=r"other.weights.h5 does not match its record "
                                         r"other.weights.h5.json \(weights sha256 .*another "
                                         "import's record or a torn write"):
        weights_file_model(other, None)
    assert weights_file_model(imported, None)[1:] == ("etds", 3)


@pytest.mark.tf
def test_a_full_disk_leaves_neither_file(tmp_path, monkeypatch):
    """The record, the second file of the set, does not fit (ENOSPC while writing its temp
    file): one line, neither file in place, no temp left, an older set untouched."""
    import errno

    from mai_sr.importer import import_weights

    out = tmp_path / "w.weights.h5"
    out.write_bytes(b"older weights")
    Path(f"{out}.json").write_text("{}")
    real_write = Path.write_bytes

    def write_bytes(self, data):
        if ".json." in self.name:  # the record's temp file beside its target
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(MaiSrError) as info:
        import_weights(zoo_checkpoint("ETDS_M5C16_x3"), None, out, force=True)
    assert str(info.value) == f"{out}.json: cannot write (No space left on device)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.weights.h5", "w.weights.h5.json"]
    assert out.read_bytes() == b"older weights" and Path(f"{out}.json").read_text() == "{}"
