"""The one parser of data arguments (mai_sr.data.split_sources), as every command uses it."""

import pytest

from mai_sr.data import split_sources
from mai_sr.errors import MaiSrError


def test_strings_paths_and_lists_split_alike(tmp_path):
    assert split_sources("Set14, B100,,") == ["Set14", "B100"]
    assert split_sources(["Set14,B100", " builtin "]) == ["Set14", "B100", "builtin"]
    assert split_sources(tmp_path) == [str(tmp_path)]
    with pytest.raises(MaiSrError, match=r"^--val: empty"):
        split_sources(" , ", "--val")
    with pytest.raises(MaiSrError, match=r"^--data: empty"):
        split_sources([])


def test_eval_report_and_export_read_data_arguments_through_it(monkeypatch, tmp_path):
    """Each command's data argument reaches split_sources (a stand-in records the calls)."""
    from mai_sr import data
    from mai_sr.report import build

    calls = []
    real = data.split_sources

    def recording(value, option="--data"):
        calls.append((value, option))
        return real(value, option)

    monkeypatch.setattr(data, "split_sources", recording)
    assert [d.name for d in build.resolve_datasets("builtin,builtin")] == ["builtin"] * 2
    assert build.validation_set({"val": "a/Set5,b/Set14"}) == "Set5+Set14"
    assert build.validation_set({"data": ""}) == "held-out builtin"
    with pytest.raises(MaiSrError, match="--data: empty"):
        list(data.iter_pairs(" "))
    assert [c[0] for c in calls] == ["builtin,builtin", "a/Set5,b/Set14", "builtin", " "]
