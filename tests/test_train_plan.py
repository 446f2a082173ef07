"""`mai-sr train` says what it will do and what it did: the plan before the first step, the
bicubic baseline, the gains and the next command at the end, and "already finished" for a
``--resume`` of a finished run (which trains nothing).

The plan's figures are checked against the run's own files (config.json, metrics.csv,
summary.json) read here with the csv and json modules.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from mai_sr.cli import main
from mai_sr.runs import FP32_DEPLOY_WEIGHTS, METRICS_FILE, QAT_WEIGHTS, SUMMARY_FILE
from mai_sr.train import TrainConfig
from mai_sr.train.plan import (MEASURED_BATCH, MEASURED_PATCH, MEASURED_STEPS_PER_S,
                               TrainPlan, end_lines, is_finished, recorded_speed, run_speed)

TINY_ARGS = ["--steps", "6", "--patch", "16", "--batch", "4", "--val-every", "3",
             "--qat", "--qat-steps", "4", "--no-tensorboard", "--quiet"]


def write_run(folder: Path, rows: list[tuple], **config) -> Path:
    """A run folder as `mai-sr train` leaves it: config.json and metrics.csv rows
    (stage, step, time)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(
        {"model": "abpn", "scale": 3, "batch": 16, "patch": 48, **config}))
    with open(folder / METRICS_FILE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "stage", "loss", "lr", "val_psnr", "time"])
        writer.writerows([step, stage, 0.1, 1e-3, "", time] for stage, step, time in rows)
    return folder


def test_speed_is_the_steps_over_the_time_between_logged_rows(tmp_path):
    run = write_run(tmp_path / "a", [("fp32", 20, 10.0), ("fp32", 40, 14.0), ("fp32", 60, 18.0),
                                     ("qat", 20, 5.0), ("qat", 40, 15.0)])
    assert run_speed(run) == {"fp32": 40 / 8.0, "qat": 20 / 10.0}


@pytest.mark.tf  # a TrainConfig reads its model's recipe from the model's module
def test_a_new_run_takes_the_speed_of_a_like_run_beside_it(tmp_path):
    write_run(tmp_path / "runs" / "old", [("fp32", 20, 2.0), ("fp32", 60, 12.0)])
    write_run(tmp_path / "runs" / "x4", [("fp32", 20, 2.0), ("fp32", 60, 3.0)], scale=4)
    new = tmp_path / "runs" / "new"
    speed, source = recorded_speed(new, TrainConfig(model="abpn", batch=16, patch=48))
    assert speed == {"fp32": 4.0} and source == "the speed of run old here"
    # another batch: the runs beside it do not apply; the figure measured here does, scaled
    speed, source = recorded_speed(new, TrainConfig(model="abpn", batch=8, patch=48))
    fp32, qat = MEASURED_STEPS_PER_S["abpn"]
    ratio = MEASURED_BATCH * MEASURED_PATCH ** 2 / (8 * 48 ** 2)
    assert speed == pytest.approx({"fp32": fp32 * ratio, "qat": qat * ratio})
    assert "measured" in source and "scaled by the pixels per batch" in source


def test_the_plan_adds_the_time_of_the_steps_left(tmp_path):
    plan = TrainPlan(run_dir=tmp_path / "r", model="abpn", scale=3, data="builtin",
                     train_images=8, val=None, val_images=("immunohistochemistry",),
                     stages=(("fp32", 200, 1200), ("qat", 0, 300)),
                     speed={"fp32": 4.0, "qat": 5.0}, speed_source="the speed of run old here",
                     batch=16, patch=48, resumed=True)
    assert plan.expected_seconds() == pytest.approx(1000 / 4.0 + 300 / 5.0)
    lines = plan.lines()
    assert lines[0] == ("resuming abpn x3: FP32 1200 steps (200 done), then QAT 300 steps "
                        "(batch 16, LR patch 48)")
    assert lines[1] == ("  data: builtin, 8 training images; validation: 1 image held out of "
                        "the data (immunohistochemistry)")
    assert lines[3].startswith("  expected: about 5 min of training steps (FP32 4.0 steps/s, "
                               "QAT 5.0 steps/s, the speed of run old here)")


@pytest.mark.tf
@pytest.mark.slow
def test_train_prints_its_plan_and_its_end_and_a_finished_resume_trains_nothing(
        shared_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "tiny"
    assert main(["train", "--data", str(shared_data / "Set5"), "--out", str(out),
                 *TINY_ARGS]) == 0
    captured = capsys.readouterr()
    config = json.loads((out / "config.json").read_text())
    val = config["data_images"]["val"]
    plan = captured.err.splitlines()[:4]
    assert plan[0] == "training abpn x3: FP32 6 steps, then QAT 4 steps (batch 4, LR patch 16)"
    assert plan[1] == (f"  data: {shared_data / 'Set5'}, {len(config['data_images']['train'])} "
                       f"training images; validation: 1 image held out of the data ({val[0]})")
    assert plan[2] == f"  run folder: {out}"
    assert plan[3].startswith("  expected: ")
    summary = json.loads((out / SUMMARY_FILE).read_text())
    bicubic = summary["bicubic_val_psnr"]
    fp32, qat = summary["fp32"]["val_psnr_deploy"], summary["qat"]["val_psnr"]
    assert captured.out.splitlines() == [
        f"run: {out}",
        f"validation PSNR (RGB, crop = scale): bicubic {bicubic:.2f} dB, FP32 {fp32:.2f} dB "
        f"({fp32 - bicubic:+.2f} dB), QAT {qat:.2f} dB ({qat - bicubic:+.2f} dB)",
        f"next: mai-sr export model.tflite --run {out}"]
    assert is_finished(out, TrainConfig(**{k: config[k] for k in ("qat", "steps")}))

    metrics, weights = (out / METRICS_FILE).read_bytes(), (out / QAT_WEIGHTS).stat().st_mtime_ns
    assert main(["train", "--resume", "--quiet"]) == 0  # runs/latest
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0] == (f"{out}: already finished (FP32 6/6 steps, QAT 4/4 "
                                            "steps); nothing to resume")
    assert captured.out.splitlines()[-1] == "next: mai-sr export model.tflite --run runs/latest"
    assert (out / METRICS_FILE).read_bytes() == metrics
    assert (out / QAT_WEIGHTS).stat().st_mtime_ns == weights
    assert "expected" not in captured.err  # no plan: nothing to train

    # a second run beside it plans with the first one's speed, and a finished-FP32 run
    # whose summary lost its entry is not finished (resume rebuilds it)
    os.remove(out / SUMMARY_FILE)
    assert not is_finished(out, TrainConfig(qat=True))
    assert (out / FP32_DEPLOY_WEIGHTS).is_file()
    assert main(["train", "--data", str(shared_data / "Set5"), "--out",
                 str(tmp_path / "runs" / "two"), *TINY_ARGS]) == 0
    speed = run_speed(out)["fp32"]
    assert f"FP32 {speed:.1f} steps/s" in capsys.readouterr().err


def test_end_lines_of_an_fp32_only_run_and_an_existing_model_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = write_run(tmp_path / "runs" / "r", [("fp32", 10, 1.0)])
    (run / SUMMARY_FILE).write_text(json.dumps(
        {"bicubic_val_psnr": 28.0, "fp32": {"val_psnr": 29.5, "val_psnr_deploy": 29.25}}))
    (tmp_path / "model.tflite").write_bytes(b"the user's")  # not to be overwritten
    assert end_lines(run, "runs/r") == [
        f"run: {run}", "validation PSNR (RGB, crop = scale): bicubic 28.00 dB, FP32 29.25 dB "
        "(+1.25 dB)", "next: mai-sr export r.tflite --run runs/r"]
