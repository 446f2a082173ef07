"""The one fallback rule, row by row: the README's table of transcripts is the specification.

Each row names a transcript of tests/fake_adb/transcripts/, the delegate asked for, the
placement the run must record, the exit code without and with --allow-fallback, what
`bench` prints and the leaderboard column `report` puts the time in. The rows are read from
docs/android.md itself, so the table cannot drift from the behaviour.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mai_sr.cli import main
from test_adb_runner import (MEDIATEK_LIBS, NPU_LIBS, device, library_folder, mediatek_phone,
                             phone, qairt_sdk)

README = Path(__file__).resolve().parents[1] / "docs" / "android.md"


def table_rows() -> list[dict]:
    text = README.read_text()
    body = text.split("<!-- fallback-table -->")[1].split("<!-- /fallback-table -->")[0]
    lines = [ln for ln in body.strip().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = []
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells)))
    return rows


ROWS = table_rows()


def test_the_table_covers_every_benchmark_transcript():
    shipped = {p.stem for p in (Path(__file__).parent / "fake_adb" / "transcripts").glob("*.txt")
               if not p.stem.startswith("logcat_")}  # a logcat capture, not a bench run
    listed = {row["transcript"].strip("`") for row in ROWS}
    assert listed == shipped


@pytest.fixture
def fake(tmp_path, monkeypatch):
    from test_adb_runner import FakeAdb

    return FakeAdb(tmp_path, monkeypatch)


@pytest.fixture
def model(tmp_path):
    from mai_sr.pretrained import pretrained_path

    path = tmp_path / "abpn.tflite"
    path.write_bytes(pretrained_path("abpn", "fixed").read_bytes())
    return path


def _argv(row, fake, model, tmp_path) -> list[str]:
    name = row["transcript"].strip("`")
    words = row["`--delegate` (and flags)"].replace("`", "").split()
    delegate, flags = words[0], words[1:]
    argv = ["bench", str(model), "--runner", "adb", "--benchmark-binary", str(fake.binary),
            "--delegate", delegate, *flags]
    if delegate == "npu" and name.startswith("mediatek_"):
        fake.devices(mediatek_phone(transcript=f"{name}.txt"))
        argv += ["--npu-libs", str(library_folder(tmp_path / "npu_libs", MEDIATEK_LIBS))]
    elif delegate == "npu":
        fake.devices(phone(transcript=f"{name}.txt"))
        argv += ["--npu-libs", str(library_folder(tmp_path / "npu_libs", NPU_LIBS))]
    elif delegate == "qnn":
        fake.devices(phone(transcript=f"{name}.txt", tool="classic"))
        argv += ["--qairt", str(qairt_sdk(tmp_path / "qairt"))]
    else:
        dev = device("D1")
        dev["transcripts"] = {"": f"{name}.txt"}
        if name == "nnapi_accelerator_missing":
            dev["exit_codes"] = {f"{name}.txt": 1}
        fake.devices(dev)
    return argv


@pytest.mark.parametrize("row", ROWS, ids=[r["transcript"].strip("`") for r in ROWS])
def test_each_transcript_gets_the_verdict_of_its_row(row, fake, model, tmp_path, capsys):
    from mai_sr.report.cards import build_model_card
    from mai_sr.report.table import card_row
    from mai_sr.results import BenchResult

    argv = _argv(row, fake, model, tmp_path)
    assert main(argv) == int(row["exit"])
    out, err = capsys.readouterr()
    if row["exit"] == "2":
        assert err.startswith("mai-sr bench: error: ") and err.count("\n") == 1
        assert "Traceback" not in err
        if "fell back" in err:
            assert "--allow-fallback" in err
            assert ("took no node" in err) == ("(none)" in row["placement found"])
    code = main(argv + ["--allow-fallback"])
    assert code == int(row["exit with `--allow-fallback`"])
    text, _ = capsys.readouterr()
    if code != 0:
        return
    assert row["`bench` says"] in text, text
    assert main(argv + ["--allow-fallback", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    coverage = re.search(r"\((full|partial|none)\)$", row["placement found"])
    if coverage:
        assert result["delegate"]["coverage"] == coverage.group(1)
        counts = re.match(r"\w+ (\d+) of (\d+) nodes", row["placement found"])
        if counts:
            assert (result["delegate"]["delegated_nodes"],
                    result["delegate"]["total_nodes"]) == tuple(map(int, counts.groups()))
    card = build_model_card("m", tflite=model, bench_results=[BenchResult.from_dict(result)])
    leader = card_row(card, [])
    if row["`report` column"] == "NPU ms":
        assert leader["npu_ms"] == pytest.approx(result["avg_ms"]) and leader["device_ms"] is None
    else:
        assert row["`report` column"] == "Device ms, not NPU"
        assert leader["npu_ms"] is None and card["score"]["value"] is None
        assert leader["device_ms"] == pytest.approx(result["avg_ms"])
        assert "no score" in leader["npu_runner"]
        assert card["runtimes"][0]["notes"] == result["notes"]  # the card keeps the notes
