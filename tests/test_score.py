"""The challenge score against Table 1 of the MAI 2022 report, and `mai-sr score`."""

import json
import math

import pytest

from mai_sr import published, score
from mai_sr.cli import main
from mai_sr.errors import MaiSrError

# Table 1 of *Efficient and Accurate Quantized Image Super-Resolution on Mobile NPUs, Mobile
# AI & AIM 2022 Challenge: Report* (Ignatov, Timofte et al., ECCV 2022 Workshops), transcribed
# here independently of mai_sr/published.py. Columns: team | model size KB | PSNR | SSIM |
# PSNR drop FP32->INT8 | CPU runtime ms | NPU runtime ms | speed-up | Final Score.
TABLE1_TEXT = """
Z6                 | 67  | 30.03 | 0.8738 | 0.06 | 809  | 19.2 | 42.1 | 22.22
TCLResearchEurope  | 53  | 29.88 | 0.8705 | 0.13 | 824  | 15.9 | 51.8 | 21.84
ECNUSR             | 50  | 29.82 | 0.8697 | 0.10 | 553  | 15.1 | 36.6 | 21.08
LCVG               | 48  | 29.76 | 0.8675 | 0.11 | 787  | 15.0 | 52.5 | 19.59
BOE-IOT-AIBD       | 57  | 29.80 | 0.8675 | 0.19 | 877  | 16.1 | 54.5 | 19.27
NJUST              | 57  | 29.76 | 0.8676 | 0.16 | 767  | 15.8 | 48.5 | 18.56
Antins.cv          | 38  | 29.58 | 0.8609 | n.a. | 543  | 15.2 | 35.7 | 15.02
GenMedia Group     | 56  | 29.90 | 0.8704 | 0.11 | 855  | 25.6 | 33.4 | 13.91
Vccip              | 67  | 29.98 | 0.8729 | n.a. | 1042 | 30.5 | 34.2 | 13.07
MegSR              | 65  | 29.94 | 0.8704 | n.a. | 965  | 29.8 | 32.4 | 12.65
DoubleZ            | 63  | 29.94 | 0.8712 | 0.1  | 990  | 30.1 | 32.9 | 12.54
Jeremy Kwon        | 48  | 29.80 | 0.8691 | 0.09 | 782  | 25.7 | 30.4 | 12.09
Lab216             | 78  | 29.94 | 0.8728 | 0    | 1110 | 31.8 | 34.9 | 11.85
TOVB               | 56  | 30.01 | 0.8740 | 0.04 | 950  | 43.3 | 21.9 | 9.60
ABPN [19]          | 53  | 29.87 | 0.8686 | n.a. | 998  | 36.9 | 27   | 9.27
Samsung Research   | 57  | 29.95 | 0.8728 | 0.1  | 941  | 43.2 | 21.8 | 8.84
Rtsir2022          | 68  | 30.00 | 0.8729 | 0.09 | 977  | 46.4 | 21.1 | 8.83
Aselsan Research   | 30  | 29.67 | 0.8651 | n.a. | 598  | 30.2 | 19.8 | 8.59
Klab_SR            | 39  | 29.88 | 0.8700 | n.a. | 850  | 43.1 | 19.7 | 8.05
TCL Research HK    | 121 | 30.10 | 0.8751 | 0.04 | 1772 | 60.2 | 29.4 | 7.81
RepGSR             | 90  | 30.06 | 0.8739 | 0.02 | 1679 | 61.3 | 27.4 | 7.26
ICL                | 55  | 29.76 | 0.8641 | 0.23 | 949  | 43.2 | 22.0 | 6.79
Just A try         | 39  | 29.75 | 0.8671 | n.a. | 766  | 42.9 | 17.9 | 6.76
Bilibili AI        | 75  | 29.99 | 0.8729 | n.a. | 1075 | 68.2 | 15.8 | 5.92
MobileSR           | 82  | 30.02 | 0.8735 | 0.07 | 1057 | 72.4 | 14.6 | 5.82
A+ regression [72] | -   | 29.32 | 0.8520 | -    | -    | -    | -    | -
Bicubic Upscaling  | -   | 28.26 | 0.8277 | -    | -    | -    | -    | -
"""
FIELDS = ("team", "size_kb", "psnr", "ssim", "delta_psnr", "cpu_ms", "npu_ms", "speedup", "score")
ROWS = [dict(zip(FIELDS, [c.strip() for c in line.split("|")]))
        for line in TABLE1_TEXT.strip().splitlines()]
SCORED = [r for r in ROWS if r["score"] != "-"]

PSNR_ROUNDING = 0.005    # PSNR printed to 0.01 dB
RUNTIME_ROUNDING = 0.05  # runtime printed to 0.1 ms
SCORE_TOLERANCE = 0.02
# Measured with score.C and the rounded inputs: max |error| = 0.0525 (ECNUSR).
EXACT_ERROR_BOUND = 0.06


def _num(text):
    return None if text in ("-", "n.a.") else float(text)


def _score(c, psnr, runtime_ms):
    return 2.0 ** (2.0 * psnr) / (c * runtime_ms)


def reproducible_within_rounding(c, row) -> bool:
    """Some (psnr, runtime) inside the printed rounding gives the published score +-0.02.

    The score rises with PSNR and falls with runtime, so its range over the rounding box is
    [score(psnr-0.005, rt+0.05), score(psnr+0.005, rt-0.05)]; it must meet score +-0.02.
    """
    psnr, runtime, published_score = float(row["psnr"]), float(row["npu_ms"]), float(row["score"])
    low = _score(c, psnr - PSNR_ROUNDING, runtime + RUNTIME_ROUNDING)
    high = _score(c, psnr + PSNR_ROUNDING, runtime - RUNTIME_ROUNDING)
    return low <= published_score + SCORE_TOLERANCE and high >= published_score - SCORE_TOLERANCE


def max_exact_error(c) -> float:
    return max(abs(_score(c, float(r["psnr"]), float(r["npu_ms"])) - float(r["score"]))
               for r in SCORED)


def c_reproduces_table(c) -> bool:
    return all(reproducible_within_rounding(c, r) for r in SCORED) and \
        max_exact_error(c) <= EXACT_ERROR_BOUND


def test_transcription_has_27_rows_25_scored():
    assert len(ROWS) == 27
    assert len(SCORED) == 25


def test_library_table_matches_this_transcription():
    assert len(published.TABLE1) == len(ROWS)
    for lib, row in zip(published.TABLE1, ROWS):
        assert lib.team == row["team"]
        for name in FIELDS[1:]:
            assert getattr(lib, name) == _num(row[name]), (lib.team, name)
    assert [r.team for r in published.scored_rows()] == [r["team"] for r in SCORED]


def test_our_architectures_are_mapped():
    assert published.for_architecture("scsrn").team == "Z6"
    assert published.for_architecture("ncnet").team == "MegSR"
    assert published.for_architecture("xcat").team == "Aselsan Research"
    assert published.for_architecture("abpn").npu_ms == 36.9
    with pytest.raises(KeyError):
        published.for_architecture("edsr")


def test_c_is_the_log_space_least_squares_fit():
    implied = [2 * float(r["psnr"]) - math.log2(float(r["npu_ms"]) * float(r["score"]))
               for r in SCORED]
    fit = sum(implied) / len(implied)
    assert math.log2(score.C) == pytest.approx(fit, abs=1e-5)
    assert score.C == pytest.approx(2 ** score.LOG2_C, rel=1e-5)


@pytest.mark.parametrize("row", SCORED, ids=[r["team"] for r in SCORED])
def test_every_scored_row_is_reproduced_within_rounding(row):
    assert reproducible_within_rounding(score.C, row)


def test_exact_error_with_rounded_inputs_is_small():
    assert max_exact_error(score.C) <= EXACT_ERROR_BOUND
    # The library function gives the same numbers as the formula written here.
    for r in SCORED:
        assert score.final_score(float(r["psnr"]), float(r["npu_ms"])) == \
            pytest.approx(_score(score.C, float(r["psnr"]), float(r["npu_ms"])), rel=1e-12)


@pytest.mark.parametrize("factor", [0.99, 1.01])
def test_a_c_off_by_one_percent_fails_these_checks(factor):
    assert c_reproduces_table(score.C)
    assert not c_reproduces_table(score.C * factor)


def test_cli_z6(capsys):
    assert main(["score", "--psnr", "30.03", "--runtime-ms", "19.2", "--challenge"]) == 0
    out = capsys.readouterr().out.strip()
    assert abs(float(out) - 22.22) <= 0.02  # Z6's published Final Score
    assert len(out.split(".")[1]) == 2


def test_a_score_says_when_it_is_not_a_challenge_score(capsys):
    """The same predicate as the report's: what is unstated or differs is named."""
    from mai_sr.challenge import score_caveats

    assert main(["score", "--psnr", "30.03", "--runtime-ms", "19.2"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("22.24  (not a challenge score: PSNR on unstated data, an unstated "
                          "device's time)")
    assert main(["score", "--psnr", "27.6", "--runtime-ms", "19.2", "--device", "vs680",
                 "--data", "Set14", "--scale", "2", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["challenge_score"] is False
    assert row["caveats"] == score_caveats(scale=2, input_hw=(540, 960), dataset="Set14",
                                           runtime_source="Synaptics VS680 NPU")
    assert row["caveats"] == ["PSNR on Set14", "x2", "540x960 input"]


def test_runtime_from_a_real_bench_names_the_cpu(tmp_path, capsys):
    """The README's example: a local CPU time of the shipped x3 model is not a VS680 time."""
    from mai_sr.pretrained import pretrained_path

    bench = {"runner": "local", "model": str(pretrained_path("abpn", "fixed")), "avg_ms": 67.6}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    assert main(["score", "--psnr", "29.87", "--runtime-from", str(tmp_path / "b.json"),
                 "--challenge", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["caveats"] == ["this machine's CPU time"]  # x3 at 360x640 read from the file


def test_cli_json(capsys):
    assert main(["score", "--psnr", "29.87", "--runtime-ms", "36.9", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["score"] == pytest.approx(9.27, abs=0.02)  # ABPN baseline row
    assert data["C"] == score.C


@pytest.mark.parametrize("psnr, runtime", [(30.0, 0.0), (30.0, -1.0), (float("nan"), 10.0),
                                           (30.0, float("inf")), (30.0, float("nan")),
                                           ("abc", 10.0)])
def test_library_rejects_bad_values(psnr, runtime):
    with pytest.raises(MaiSrError):
        score.final_score(psnr, runtime)


def test_missing_arguments_are_one_line_errors(capsys):
    for argv in (["score"], ["score", "--psnr", "30"], ["score", "--runtime-ms", "10"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("mai-sr score: error:") and err.count("\n") == 1


def test_runtime_from_bench_json(tmp_path, capsys):
    one = {"runner": "local", "model": "abpn.tflite", "avg_ms": 36.9}
    (tmp_path / "one.json").write_text(json.dumps(one))
    assert main(["score", "--psnr", "29.87", "--runtime-from", str(tmp_path / "one.json")]) == 0
    out = capsys.readouterr().out
    assert float(out.split()[0]) == pytest.approx(9.27, abs=0.02)
    assert "not a challenge score" in out and "this machine's CPU time" in out

    many = [one, dict(one, runner="adb", avg_ms=73.8, device={"name": "VS680"})]
    (tmp_path / "many.json").write_text(json.dumps(many))
    assert main(["score", "--psnr", "29.87", "--runtime-from", str(tmp_path / "many.json")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("VS680:abpn.tflite: 4.6")

    (tmp_path / "failed.json").write_text(json.dumps(dict(one, avg_ms=None, error="offline")))
    assert main(["score", "--psnr", "29.87", "--runtime-from", str(tmp_path / "failed.json")]) == 2
    assert "failed.json" in capsys.readouterr().err


def test_csv_scores_every_row(tmp_path, capsys):
    csv = tmp_path / "runs.csv"
    csv.write_text("model,psnr,runtime_ms\nz6,30.03,19.2\nmegsr,29.94,29.8\n")
    assert main(["score", "--csv", str(csv), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["z6", "megsr"]
    assert rows[1]["score"] == pytest.approx(12.65, abs=0.02)

    csv.write_text("model,psnr,runtime_ms\nz6,30.03,0\n")
    assert main(["score", "--csv", str(csv)]) == 2
    assert "line 2" in capsys.readouterr().err
    csv.write_text("model,psnr\nz6,30.03\n")
    assert main(["score", "--csv", str(csv)]) == 2
    assert "runtime_ms" in capsys.readouterr().err
