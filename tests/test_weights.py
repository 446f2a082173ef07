"""Named weights: the zoo table, `mai-sr fetch` against a local mirror of the zoo (no machine
here reaches the internet), `mai-sr models`, and the one resolver."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mai_sr.errors import MaiSrError

from conftest import SHARED_ARTIFACTS

ZOO = SHARED_ARTIFACTS / "etds_zoo"
MIRROR = ZOO / "pretrained"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MAI_SR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def need_zoo():
    if not MIRROR.is_dir():
        pytest.skip(f"{MIRROR} not present: put ../shared/artifacts beside the checkout")


def test_the_zoo_table_matches_the_published_files():
    """Every row's sha256 and size are those of the real file; every main checkpoint of the
    zoo (11 models x 3 scales) and every _ET_ form has a name; the published figures are
    Table 2's."""
    need_zoo()
    import csv

    from mai_sr.weights import list_weights

    zoo = [w for w in list_weights() if w.sha256]  # a published checkpoint (shipped or not)
    assert len(zoo) == 48 and len({w.name for w in zoo}) == 48
    for w in zoo:
        data = (MIRROR / w.file).read_bytes()
        assert hashlib.sha256(data).hexdigest() == w.sha256 and len(data) == w.bytes, w.name
        assert w.licence == "Apache-2.0" and w.url.endswith(w.file)
    with open(ZOO / "table2.csv", newline="") as f:
        table = {r["checkpoint"]: r for r in csv.DictReader(f) if r["checkpoint"]}
    assert {w.file for w in zoo if "_ET_" not in w.file} == set(table)
    etds_l = next(w for w in zoo if w.name == "etds_l.etds_div2k")
    assert etds_l.published_psnr_y["Set5"] == 33.88 and etds_l.scale == 3  # ETDS-L x3


def test_fetch_every_zoo_name_from_a_local_mirror(cache, monkeypatch, capsys):
    need_zoo()
    from mai_sr.cli import main
    from mai_sr.weights import cached_checkpoint, fetch, get_weight, list_weights

    monkeypatch.setenv("MAI_SR_WEIGHTS_URL", MIRROR.as_uri())
    names = [w.name for w in list_weights() if w.sha256]
    for name in names:
        path = fetch(name)
        assert path == cached_checkpoint(get_weight(name)) and path.is_file()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == get_weight(name).sha256
    # a second fetch reads the cache; the CLI says so without importing anything
    assert main(["fetch", names[0], "--no-import"]) == 0
    assert "sha256 checked" in capsys.readouterr().out


def test_a_wrong_or_truncated_download_leaves_nothing(cache, tmp_path, capsys):
    need_zoo()
    from mai_sr.cli import main
    from mai_sr.weights import get_weight

    weight = get_weight("etds.etds_div2k")
    mirror = tmp_path / "mirror" / Path(weight.file).parent
    mirror.mkdir(parents=True)
    good = (MIRROR / weight.file).read_bytes()
    for bad in (good[: len(good) // 2], good[:-1] + bytes([good[-1] ^ 1])):
        (mirror / Path(weight.file).name).write_bytes(bad)
        assert main(["fetch", weight.name, "--base", str(tmp_path / "mirror"),
                     "--no-import"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mai-sr fetch: error: ") and err.count("\n") == 1
        assert "not cached" in err
        assert not any(p.is_file() for p in cache.rglob("*"))  # no file, no temp left


def test_an_unknown_name_or_missing_mirror_is_one_line(cache, tmp_path, capsys):
    from mai_sr.cli import main

    assert main(["fetch", "etds_l.etds_div2kk", "--no-import"]) == 2
    err = capsys.readouterr().err
    assert "unknown weights 'etds_l.etds_div2kk'; did you mean etds_l.etds_div2k" in err
    assert main(["fetch", "etds_l.etds_div2k", "--base", str(tmp_path / "nowhere"),
                 "--no-import"]) == 2
    err = capsys.readouterr().err
    assert "cannot download" in err and err.count("\n") == 1
    assert not any(p.is_file() for p in cache.rglob("*"))


@pytest.mark.tf
@pytest.mark.slow
def test_a_fetched_weight_is_imported_and_resolves(cache, monkeypatch, capsys):
    need_zoo()
    from mai_sr.cli import main
    from mai_sr.weights import resolve

    monkeypatch.setenv("MAI_SR_WEIGHTS_URL", MIRROR.as_uri())
    # x2: a zoo weight that is not shipped (a shipped name resolves to its shipped files)
    with pytest.raises(MaiSrError, match="not fetched yet; run `mai-sr fetch abpn.etds_div2k_x2`"):
        resolve("abpn.etds_div2k_x2", option="--teacher")
    assert main(["fetch", "abpn.etds_div2k_x2"]) == 0
    assert "imported:" in capsys.readouterr().out
    found = resolve("abpn.etds_div2k_x2", option="--teacher")
    assert found.kind == "file" and found.architecture == "abpn" and found.path.is_file()
    assert found.scale == 2
    record = json.loads(Path(f"{found.path}.json").read_text())
    assert record["model"] == "abpn"


def test_the_resolver_names_each_kind(tmp_path):
    from mai_sr.weights import resolve

    run = tmp_path / "run"
    run.mkdir()
    assert resolve(run).kind == "run"
    shipped = resolve("abpn")  # the architecture's default weight: the DIV2K-trained one
    assert shipped.kind == "shipped" and shipped.name == "abpn.etds_div2k"
    assert resolve("abpn.etds_div2k").path == shipped.path
    builtin = resolve("abpn.mai_builtin")
    assert builtin.kind == "shipped" and builtin.path != shipped.path
    assert builtin.path.name == "abpn.mai_builtin.weights.h5" and builtin.architecture == "abpn"
    with pytest.raises(MaiSrError, match="--init nothing: neither a run directory"):
        resolve("nothing", option="--init")
    with pytest.raises(MaiSrError, match="--from .*missing.weights.h5: not found"):
        resolve(tmp_path / "missing.weights.h5", option="--from")


def test_models_lists_shipped_and_zoo_weights(capsys):
    from mai_sr.cli import main

    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    weights = {w["name"]: w for w in data["weights"]}
    assert weights["abpn.mai_builtin"]["shipped"] and not weights["abpn.mai_builtin"]["sha256"]
    # shipped and published: attribution from the shipped table, checkpoint from the zoo's
    div2k = weights["abpn.etds_div2k"]
    assert div2k["shipped"] and div2k["default_for"] == "abpn" and div2k["sha256"]
    assert div2k["recipe"] == "abpn.etds_div2k.json" and "CVPR 2023" in div2k["paper"]
    assert weights["ncnet.megsr_div2k"]["default_for"] == "ncnet"
    assert weights["ncnet.megsr_div2k"]["licence"] == "Apache-2.0"
    assert main(["models"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:-1]}
    assert "shipped, zoo, default" in listed["abpn.etds_div2k"]
    # one column per field, however long a layout option's name
    assert len({line.index("Apache-2.0") for line in listed.values()
                if "Apache-2.0" in line}) == 1
    assert "default" not in listed["abpn.mai_builtin"]
    if MIRROR.is_dir():
        assert "etds_l.etds_div2k" in weights
