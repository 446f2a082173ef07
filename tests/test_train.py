"""`mai_sr.train`: the run directory, exact resume, signals, QAT stage, distribution, errors.

Everything trains ABPN on Set5 (one image held out for validation) with tiny settings
(LR patches 16x16, batch 4, ~10 steps), so a run takes seconds.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from mai_sr.cli import main
from mai_sr.errors import MaiSrError
from mai_sr.train import (CONFIG_FILE, FP32_DEPLOY_WEIGHTS, FP32_TRAIN_WEIGHTS, METRICS_FILE,
                          QAT_WEIGHTS, SUMMARY_FILE, TrainConfig, TrainingInterrupted,
                          load_run_model, read_run_config, train_from_config)

pytestmark = pytest.mark.tf  # training (mai_sr._tf is imported at module level below)

TINY = dict(steps=10, patch=16, batch=4, val_every=5, ckpt_every=4, log_every=1,
            qat=True, qat_steps=6)


def tiny_config(shared_data: Path, out: Path, **overrides) -> TrainConfig:
    return TrainConfig(**{**TINY, "data": str(shared_data / "Set5"), "out": str(out),
                          **overrides})


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                     if isinstance(obj, h5py.Dataset) else None)
    return arrays


def checkpoint_state(run: Path, stage: str) -> dict:
    with np.load(run / "checkpoints" / f"{stage}-last.npz") as npz:
        return json.loads(str(npz["state"]))


def metrics(run: Path) -> list[dict]:
    with open(run / METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


def assert_same_weights(run_a: Path, run_b: Path, relative: str, atol: float = 1e-6):
    a, b = h5_arrays(run_a / relative), h5_arrays(run_b / relative)
    assert a.keys() == b.keys() and a
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=atol, err_msg=name)


@pytest.fixture(scope="module")
def reference_run(shared_data, tmp_path_factory) -> Path:
    """An uninterrupted FP32 + QAT run (also the source of the other tests)."""
    out = tmp_path_factory.mktemp("train") / "runs" / "ref"
    return train_from_config(tiny_config(shared_data, out), quiet=True)


def test_run_directory_layout(reference_run):
    for relative in (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, FP32_TRAIN_WEIGHTS,
                     FP32_DEPLOY_WEIGHTS, QAT_WEIGHTS, "checkpoints/fp32-last.npz",
                     "checkpoints/fp32-best.npz", "checkpoints/qat-last.npz",
                     "checkpoints/qat-best.npz"):
        assert (reference_run / relative).is_file(), relative
    assert os.readlink(reference_run.parent / "latest") == "ref"
    config = read_run_config(reference_run)
    assert config["model"] == "abpn" and config["scale"] == 3 and config["steps"] == 10
    assert config["loss"] == "l1" and config["weight_clip"] is True
    assert set(config["versions"]) >= {"python", "tensorflow", "tf_keras",
                                        "tensorflow_model_optimization", "mai_sr"}
    # Set5 has 5 images: one is held out for validation, the others train.
    assert len(config["data_images"]["val"]) == 1 and len(config["data_images"]["train"]) == 4
    assert not set(config["data_images"]["val"]) & set(config["data_images"]["train"])
    rows = metrics(reference_run)
    assert [(r["stage"], int(r["step"])) for r in rows] == \
        [("fp32", s) for s in range(1, 11)] + [("qat", s) for s in range(1, 7)]
    assert all(float(r["loss"]) > 0 and float(r["lr"]) > 0 for r in rows)
    assert [r["step"] for r in rows if r["val_psnr"] and r["stage"] == "fp32"] == ["5", "10"]


@pytest.mark.slow
def test_resumed_runs_end_with_the_same_weights(reference_run, shared_data, tmp_path):
    """SIGTERM in FP32, then a kill in QAT, then --resume: the reference's weights and log."""
    config = tiny_config(shared_data, tmp_path / "b")

    def sigterm_at_fp32_step_6(stage, step):
        if (stage, step) == ("fp32", 6):
            signal.raise_signal(signal.SIGTERM)

    with pytest.raises(TrainingInterrupted, match=r"SIGTERM at fp32 step 6/10.*--resume"):
        train_from_config(config, quiet=True, on_step=sigterm_at_fp32_step_6)
    # The handler finished step 6 and checkpointed it, although ckpt_every is 4.
    assert checkpoint_state(tmp_path / "b", "fp32")["step"] == 6

    def killed_at_qat_step_5(stage, step):
        if (stage, step) == ("qat", 5):
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train_from_config(config, resume=True, quiet=True, on_step=killed_at_qat_step_5)
    assert checkpoint_state(tmp_path / "b", "qat")["step"] == 4  # lost step 5 only
    assert metrics(tmp_path / "b")[-1]["step"] == "4"  # the log matches the checkpoint

    run = train_from_config(config, resume=True, quiet=True)
    for relative in (FP32_TRAIN_WEIGHTS, FP32_DEPLOY_WEIGHTS, QAT_WEIGHTS):
        assert_same_weights(reference_run, run, relative)
    ours, theirs = metrics(run), metrics(reference_run)
    assert [(r["stage"], r["step"]) for r in ours] == [(r["stage"], r["step"]) for r in theirs]
    np.testing.assert_allclose([float(r["loss"]) for r in ours],
                               [float(r["loss"]) for r in theirs], rtol=0, atol=1e-6)


def test_load_run_model_reproduces_the_validation(reference_run, shared_data):
    from mai_sr.data import load_pairs
    from mai_sr.metrics import psnr
    from mai_sr.models import create_model

    config = read_run_config(reference_run)
    summary = json.loads((reference_run / SUMMARY_FILE).read_text())
    val = [p for p in load_pairs(shared_data / "Set5") if p.name in config["data_images"]["val"]]

    def val_psnr(model):
        out = [model(p.lr[None].astype(np.float32), training=False).numpy()[0] for p in val]
        return np.mean([psnr(np.clip(np.rint(o), 0, 255).astype(np.uint8), p.hr)
                        for o, p in zip(out, val)])

    fp32, qat = load_run_model(reference_run, "fp32"), load_run_model(reference_run, "qat")
    assert val_psnr(fp32) == pytest.approx(summary["fp32"]["val_psnr_deploy"], abs=1e-6)
    assert val_psnr(qat) == pytest.approx(summary["qat"]["val_psnr"], abs=1e-6)
    # The saved training graph is the best checkpoint, and the deploy graph its collapse.
    train_graph = create_model("abpn", deploy=False)
    train_graph.load_weights(str(reference_run / FP32_TRAIN_WEIGHTS))
    lr = val[0].lr[None].astype(np.float32)
    np.testing.assert_allclose(train_graph(lr).numpy(), fp32(lr).numpy(), rtol=0, atol=1e-3)
    assert summary["fp32"]["val_psnr"] == pytest.approx(summary["fp32"]["val_psnr_deploy"],
                                                        abs=1e-3)


def test_qat_from_a_finished_run_leaves_it_untouched(reference_run, shared_data, tmp_path,
                                                     capsys):
    before = {p: p.read_bytes() for p in reference_run.rglob("*") if p.is_file()}
    config = TrainConfig(from_run=str(reference_run), data=str(shared_data / "Set5"),
                         patch=16, batch=4, qat_steps=3, val_every=3, log_every=1,
                         out=str(tmp_path / "q"))
    assert config.qat and config.model == "abpn"
    run = train_from_config(config, quiet=False)
    assert {p: p.read_bytes() for p in reference_run.rglob("*") if p.is_file()} == before
    assert (run / QAT_WEIGHTS).is_file() and not (run / "checkpoints" / "fp32-last.npz").exists()
    assert (run / FP32_DEPLOY_WEIGHTS).read_bytes() == \
        (reference_run / FP32_DEPLOY_WEIGHTS).read_bytes()
    assert [r["stage"] for r in metrics(run)] == ["qat"] * 3
    # The progress bar shows step, loss, LR and the last validation PSNR.
    err = capsys.readouterr().err
    for text in ("qat 3/3", ", loss 0.", " lr ", " val ", " dB"):
        assert text in err, text
    assert json.loads((run / SUMMARY_FILE).read_text())["fp32"] == \
        json.loads((reference_run / SUMMARY_FILE).read_text())["fp32"]
    with pytest.raises(MaiSrError, match="--model ncnet: --from .* trained abpn"):
        TrainConfig(from_run=str(reference_run), model="ncnet")
    # On the command line, --from takes the model, data and patch settings of the FP32 run.
    cli = TrainConfig.from_cli(cli_args(from_run=str(reference_run), batch=2))
    assert (cli.model, cli.data, cli.patch, cli.batch) == ("abpn", str(shared_data / "Set5"), 16, 2)


def test_qat_that_only_loses_leaves_the_calibrated_model(reference_run, shared_data,
                                                         tmp_path, capsys):
    """The calibrated (PTQ) start is validated at step 0 and kept when every QAT step
    validates worse (here a learning rate that wrecks the weights)."""
    config = TrainConfig(from_run=str(reference_run), data=str(shared_data / "Set5"),
                         patch=16, batch=4, qat_steps=2, qat_lr=50.0, val_every=1,
                         out=str(tmp_path / "q"))
    run = train_from_config(config, quiet=True)
    summary = json.loads((run / SUMMARY_FILE).read_text())["qat"]
    assert summary["best_step"] == 0
    start = re.search(r"qat: val PSNR ([0-9.]+) dB at step 0", capsys.readouterr().err)
    assert start and float(start.group(1)) == pytest.approx(summary["val_psnr"], abs=1e-3)
    later = [r["val_psnr"] for r in metrics(run) if r["val_psnr"] not in ("", None)]
    assert len(later) == 2 and max(float(v) for v in later) < summary["val_psnr"]


@pytest.mark.slow
def test_init_fine_tunes_from_the_run_and_a_teacher_replaces_the_target(reference_run,
                                                                         shared_data, tmp_path):
    """--init starts FP32 from a run's weights; --teacher with weight 1 makes the student's
    target the teacher's output. Student = teacher (same run) so that loss is ~0 from step 1,
    while the same student against HR starts at the reference run's own loss (> 0.005)."""
    def fine_tune(name, **overrides):
        config = tiny_config(shared_data, tmp_path / name, init_run=str(reference_run),
                             steps=2, qat=False, loss="l1", weight_clip=False, **overrides)
        assert config.model == "abpn"
        return train_from_config(config, quiet=True)

    against_hr = fine_tune("hr", lr=1e-12)
    assert_same_weights(against_hr, reference_run, FP32_TRAIN_WEIGHTS)
    assert float(metrics(against_hr)[0]["loss"]) > 0.005
    distilled = fine_tune("kd", lr=1e-12, teacher=str(reference_run), distill_weight=1.0)
    assert float(metrics(distilled)[0]["loss"]) < 1e-4
    assert read_run_config(distilled)["teacher"] == str(reference_run.resolve())
    # A shipped model's name is a teacher too; bad values name the option.
    assert TrainConfig(teacher="scsrn").teacher == "scsrn"
    for kwargs, message in [(dict(teacher=str(tmp_path / "nowhere")), "--teacher"),
                            (dict(teacher="scsrn", distill_weight=1.5), "--distill-weight"),
                            (dict(init_run=str(reference_run), from_run=str(reference_run)),
                             "--init: not with --from"),
                            (dict(init_run=str(reference_run), model="xcat"),
                             "--model xcat: --init")]:
        with pytest.raises(MaiSrError, match=message):
            TrainConfig(**kwargs)


@pytest.mark.slow
def test_weight_clip_hook_runs_after_every_step_of_both_stages(shared_data, tmp_path,
                                                              monkeypatch):
    """A spy clip to +-1e-5 (initial kernels are far larger) must bound the clipped kernels (the
    first conv's: 3 input channels, see mai_sr.models.qat.weight_clip) saved by both stages; with
    weight_clip=False it must not run."""
    import mai_sr.models.qat.weight_clip as weight_clip
    from mai_sr._tf import tf

    def clip_to_hundredth(model):
        for variable in weight_clip.kernel_variables(model):
            variable.assign(tf.clip_by_value(variable, -1e-5, 1e-5))

    monkeypatch.setattr(weight_clip, "apply_weight_clip", clip_to_hundredth)
    tiny = dict(steps=2, qat_steps=2, val_every=2, ckpt_every=2)
    clipped = train_from_config(tiny_config(shared_data, tmp_path / "on", **tiny), quiet=True)
    free = train_from_config(tiny_config(shared_data, tmp_path / "off", weight_clip=False,
                                         **tiny), quiet=True)

    def largest_3x3_weight(run: Path, relative: str) -> float:
        return max(float(np.abs(a).max()) for a in h5_arrays(run / relative).values()
                   if a.ndim == 4 and a.shape[:3] == (3, 3, 3))

    for relative in (FP32_TRAIN_WEIGHTS, QAT_WEIGHTS):
        assert largest_3x3_weight(clipped, relative) <= 1e-5
        assert largest_3x3_weight(free, relative) > 1e-4


def test_hold_anchor_taps_is_scsrn_only(shared_data, tmp_path):
    with pytest.raises(MaiSrError, match="--hold-anchor-taps: only SCSRN"):
        tiny_config(shared_data, tmp_path, model="abpn", hold_anchor_taps=True)


def test_anchor_tap_hold_keeps_the_qat_start_and_clips_in_fp32():
    """Feature taps over 1 (as after a range equalization with gain below 1): the FP32 hold
    clips them to [-1, 1]; the QAT hold (keep_start) leaves them, so the calibrated start is
    unchanged; both put the image taps on the nearest-neighbour kernel."""
    from mai_sr.models import create_model
    from mai_sr.models.blocks import nearest_conv_kernel
    from mai_sr.models.scsrn import anchor_tap_hold

    rng = np.random.default_rng(0)
    for keep_start in (False, True):
        model = create_model("scsrn", scale=3, deploy=True)
        layer = model.get_layer("conv_out")
        kernel, bias = layer.get_weights()
        kernel = rng.uniform(-3, 3, kernel.shape).astype(np.float32)
        layer.set_weights([kernel, bias])
        anchor_tap_hold(model, keep_start=keep_start)()
        held = layer.get_weights()[0]
        image_taps = np.zeros_like(held[:, :, :3])
        image_taps[1, 1] = nearest_conv_kernel(3)[0, 0]
        np.testing.assert_array_equal(held[:, :, :3], image_taps)
        features = held[:, :, 3:]
        if keep_start:
            np.testing.assert_array_equal(features, kernel[:, :, 3:])
        else:
            np.testing.assert_array_equal(features, np.clip(kernel[:, :, 3:], -1, 1))


def int8_image_taps(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The int8 kernel (OHWI) of the conv that reads 35 channels in the INT8 file at `path`
    (SCSRN's [image, features]) and its per-output-channel scales."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # Without the default XNNPACK delegate, which takes the constant buffers it packs.
    interpreter = Interpreter(str(path), experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interpreter.allocate_tensors()
    kernel = next(d for d in interpreter.get_tensor_details()
                  if tuple(d["shape"]) == (27, 3, 3, 35) and d["dtype"] == np.int8)
    return (interpreter.get_tensor(kernel["index"]),
            kernel["quantization_parameters"]["scales"])


@pytest.mark.slow
def test_hold_anchor_taps_makes_scsrn_int8_anchor_exact(shared_data, tmp_path):
    """Held, SCSRN's output conv reads the image through the nearest-neighbour kernel alone,
    and the INT8 file stores it exactly: 127 steps (the channel's largest weight) at each
    output channel's colour on the centre tap, 0 on every other image tap. Not held, the
    learned taps are off that grid (the check can fail)."""
    from mai_sr.export.convert import export
    from mai_sr.models.blocks import nearest_conv_kernel

    expected = np.zeros((27, 3, 3, 3), np.int8)
    expected[:, 1, 1, :] = 127 * nearest_conv_kernel(3)[0, 0].T
    taps = {}
    for held in (True, False):
        run = train_from_config(tiny_config(shared_data, tmp_path / f"held-{held}",
                                            model="scsrn", steps=4, qat_steps=4,
                                            weight_clip=False, hold_anchor_taps=held),
                                quiet=True)
        [path] = export(tmp_path / f"held-{held}.tflite", run=run, shape=(24, 24))
        kernel, scales = int8_image_taps(path)
        taps[held] = kernel[..., :3]
        if held:
            np.testing.assert_allclose(scales * 127, 1.0, rtol=1e-6)
    np.testing.assert_array_equal(taps[True], expected)
    assert not np.array_equal(taps[False], expected)


# ---------------------------------------------------------------- CLI, signals, kill


def cli_train(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mai_sr.cli", "train", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_checkpoint(run: Path, min_step: int, proc: subprocess.Popen, timeout=120) -> None:
    path = run / "checkpoints" / "fp32-last.npz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.communicate()[1][-2000:]}")
        if path.is_file() and checkpoint_state(run, "fp32")["step"] >= min_step:
            return
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"no checkpoint at step >= {min_step} within {timeout} s")


@pytest.mark.slow
def test_sigterm_then_sigkill_of_the_cli(shared_data, tmp_path):
    """SIGTERM: finish the step, checkpoint, exit 130 saying how to resume. SIGKILL of the
    resumed run: the run directory holds the last periodic checkpoint, consistent with
    metrics.csv, so at most --ckpt-every steps are lost."""
    run = tmp_path / "runs" / "cli"
    args = ["--data", str(shared_data / "Set5"), "--steps", "100000", "--patch", "16",
            "--batch", "2", "--ckpt-every", "3", "--val-every", "3", "--quiet", "--out", str(run)]
    proc = cli_train(*args, cwd=tmp_path)
    wait_for_checkpoint(run, 3, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    stopped = checkpoint_state(run, "fp32")["step"]
    assert f"SIGTERM at fp32 step {stopped}/100000" in err and "--resume" in err

    proc = cli_train("--out", str(run), "--resume", "--quiet", cwd=tmp_path)
    wait_for_checkpoint(run, stopped + 6, proc)
    proc.kill()
    _, err = proc.communicate(timeout=60)
    assert f"resuming at step {stopped}/100000" in err
    saved = checkpoint_state(run, "fp32")["step"]
    assert saved >= stopped + 6 and saved % 3 == 0  # periodic checkpoints: multiples of 3
    steps = [int(r["step"]) for r in metrics(run)]
    # The checkpoint is written first, holding its rows; metrics.csv right after. A kill
    # between the two leaves the file one checkpoint behind, and the next resume puts the
    # rows back from the checkpoint (restore_metrics), so at most that window may be missing.
    assert steps == sorted(set(steps)) and saved - 3 <= steps[-1] <= saved


@pytest.mark.parametrize("option, value, stored", [
    ("--steps", "50", "steps=10"), ("--model", "ncnet", "model='abpn'"),
    ("--scale", "2", "scale=3"), ("--val-every", "7", "val_every=5")])
def test_resume_with_other_settings_names_the_field(reference_run, capsys, option, value,
                                                    stored):
    assert main(["train", "--out", str(reference_run), "--resume", option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mai-sr train: error: --resume:") and err.count("\n") == 1, err
    assert stored in err and value in err


def test_bad_input_gives_one_line_errors(reference_run, tmp_path, capsys):
    empty, new, unfinished = tmp_path / "empty", tmp_path / "new", tmp_path / "unfinished"
    empty.mkdir()
    unfinished.mkdir()
    (unfinished / CONFIG_FILE).write_text('{"model": "abpn"}')
    cases = [
        (["--data", str(empty), "--out", str(new)], f"--data {empty}"),
        (["--data", str(tmp_path / "missing"), "--out", str(new)], "no such folder"),
        (["--out", str(reference_run)], "already exists; add --resume"),
        (["--resume", "--out", str(new)], "not a `mai-sr train` run"),
        (["--distribute", "multiworker"], "give --out"),
        (["--from", str(new), "--out", str(new)], "not a `mai-sr train` run"),
        (["--from", str(unfinished), "--out", str(new)], "not a finished FP32 run"),
        (["--init", str(unfinished), "--out", str(new)], "not a finished FP32 run"),
        (["--teacher", str(unfinished), "--out", str(new)], "not a finished FP32 run"),
    ]
    for args, message in cases:
        assert main(["train", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("mai-sr train: error: ") and err.count("\n") == 1, err
        assert message in err, (args, err)
        assert not new.exists()  # nothing is created on bad input


def test_source_runs_lend_their_scale_and_other_scales_are_refused(reference_run):
    """--from/--init adopt the run's scale (recorded in config.json, read by run_scale); a
    different --scale, or a teacher of another scale, is a one-line error."""
    from mai_sr.runs import run_scale

    assert run_scale(read_run_config(reference_run)) == 3
    assert TrainConfig(from_run=str(reference_run)).scale == 3
    assert TrainConfig(init_run=str(reference_run)).scale == 3
    assert TrainConfig(scale=4).scale == 4 and TrainConfig().scale == 3
    for kwargs, message in [
            (dict(from_run=str(reference_run), scale=4), f"--scale 4: --from {reference_run}"),
            (dict(init_run=str(reference_run), scale=2), "trained x3"),
            (dict(teacher="scsrn", scale=2), "--teacher scsrn: upscales x3, this run trains x2"),
            (dict(teacher=str(reference_run), scale=4), "upscales x3, this run trains x4"),
            (dict(scale=5), "--scale: scale 5 is not one of 2, 3, 4"),
            (dict(model="toy"), "--model: unknown model 'toy'")]:
        with pytest.raises(MaiSrError, match=re.escape(message)):
            TrainConfig(**kwargs)


def test_a_run_being_trained_cannot_be_resumed_twice(reference_run, capsys):
    """pretrain.sh and qat_quality.py may both reach for the same run: the second stops."""
    from mai_sr.train import hold_run_lock

    lock = hold_run_lock(reference_run)
    try:
        assert main(["train", "--out", str(reference_run), "--resume", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"pid {os.getpid()}" in err
        assert "is training this run" in err
    finally:
        lock.close()
    hold_run_lock(reference_run).close()  # released with its file: free again


# ---------------------------------------------------------------- configuration


def cli_args(**given) -> dict:
    """vars() of a parsed `mai-sr train` with only `given` set, as argparse leaves it."""
    from mai_sr.cli import build_parser

    return {**vars(build_parser().parse_args(["train"])), **given}


def test_config_defaults_are_per_model_data():
    abpn = TrainConfig.from_cli(cli_args())
    assert (abpn.model, abpn.loss, abpn.qat_loss, abpn.intensity_aug) == ("abpn", "l1", "l1", False)
    assert abpn.weight_clip and not abpn.qat and abpn.explicit == frozenset()
    # XCAT: Charbonnier loss and x1/0.7/0.5 intensity augmentation (MAI 2022 report, sec. 4.17);
    # SCSRN: a 0.1 warm-up ratio (4.1). Explicit options win.
    xcat = TrainConfig.from_cli(cli_args(model="xcat"))
    assert (xcat.loss, xcat.intensity_aug) == ("charbonnier", True)
    assert TrainConfig.from_cli(cli_args(model="scsrn")).warmup == 0.1
    mine = TrainConfig.from_cli(cli_args(model="xcat", loss="l2", qat=True, no_weight_clip=True))
    assert (mine.loss, mine.qat_loss, mine.qat, mine.weight_clip) == ("l2", "l2", True, False)
    assert mine.explicit == {"model", "loss", "qat", "weight_clip"}
    from mai_sr.cli import build_parser

    plain = TrainConfig.from_cli(vars(build_parser().parse_args(
        ["train", "--model", "xcat", "--no-intensity-aug"])))
    assert (plain.loss, plain.intensity_aug) == ("charbonnier", False)
    with pytest.raises(MaiSrError, match="--loss: 'huber'"):
        TrainConfig(loss="huber")


def test_lr_schedules_follow_their_formulas():
    from mai_sr.train import make_lr_schedule

    cosine = make_lr_schedule(TrainConfig(steps=100, lr=1e-3, warmup=0.1), "fp32")
    values = np.array([float(cosine(s)) for s in range(101)])
    # Linear warm-up over 10 steps, then half a cosine period down to 0 over 90.
    expected = np.where(np.arange(101) < 10, 1e-3 * np.arange(101) / 10,
                        1e-3 * 0.5 * (1 + np.cos(np.pi * (np.arange(101) - 10) / 90)))
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-9)
    step = make_lr_schedule(TrainConfig(qat_steps=40, qat_lr=1e-4, schedule="step"), "qat")
    assert [float(step(s)) for s in (0, 9, 10, 19, 20, 39)] == pytest.approx(
        [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 1.25e-5])


def test_losses_match_numpy():
    from mai_sr.train import per_example_loss

    rng = np.random.default_rng(0)
    sr, hr = (rng.uniform(0, 255, (2, 4, 5, 3)).astype(np.float32) for _ in range(2))
    d = (sr - hr).reshape(2, -1) / 255
    for name, reference in [("l1", np.abs(d)), ("l2", d ** 2),
                            ("charbonnier", np.sqrt(d ** 2 + 1e-6))]:
        np.testing.assert_allclose(per_example_loss(name)(sr, hr).numpy(),
                                   reference.mean(axis=1), rtol=1e-5, err_msg=name)


# ---------------------------------------------------------------- distribution

MIRRORED_SCRIPT = """
import json, sys
from mai_sr._tf import tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from mai_sr.train import TrainConfig, make_strategy, train_from_config
assert make_strategy("mirrored").num_replicas_in_sync == 2
data, root = sys.argv[1:3]
for mode in ("none", "mirrored"):
    train_from_config(TrainConfig(distribute=mode, data=data, out=f"{root}/{mode}", steps=8,
                                  patch=16, batch=4, log_every=1, val_every=4, ckpt_every=4),
                      quiet=True)
"""


@pytest.mark.slow
def test_mirrored_two_cpu_replicas_match_one_device(shared_data, tmp_path):
    """The same global batch split over 2 logical CPUs gives the one-device trajectory."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(MIRRORED_SCRIPT),
                           str(shared_data / "Set5"), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = metrics(tmp_path / "none"), metrics(tmp_path / "mirrored")
    assert [r["step"] for r in one] == [r["step"] for r in two] == [str(s) for s in range(1, 9)]
    np.testing.assert_allclose([float(r["loss"]) for r in two], [float(r["loss"]) for r in one],
                               rtol=0, atol=1e-4)
    assert_same_weights(tmp_path / "none", tmp_path / "mirrored", FP32_TRAIN_WEIGHTS, atol=1e-4)


# ---------------------------------------------------------------- damage and leftovers


def damaged_copy(reference_run: Path, tmp_path: Path) -> Path:
    import shutil

    run = tmp_path / "runs" / "copy"
    shutil.copytree(reference_run, run)
    return run


def test_resume_rebuilds_lost_summary_entries_and_removes_dead_writers_temps(
        reference_run, tmp_path, capsys):
    """A SIGKILL right after a stage's weights land used to lose its summary.json entry for
    good, and killed writers' temp files outlived a successful --resume."""
    run = damaged_copy(reference_run, tmp_path)
    reference = json.loads((reference_run / SUMMARY_FILE).read_text())
    (run / SUMMARY_FILE).write_text(json.dumps({"bicubic_val_psnr": 1.0}))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    temps = [run / "checkpoints" / f".fp32-last.npz.{dead}.abcd1234.npz",
             run / "fp32" / f".deploy.weights.h5.{dead}.abcd_123.weights.h5",
             run / f".metrics.csv.{dead}.zz99zz99.csv"]
    for temp in temps:
        temp.write_bytes(b"half written")
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    summary = json.loads((run / SUMMARY_FILE).read_text())
    for stage in ("fp32", "qat"):
        assert summary[stage] == reference[stage], stage
    assert not [t for t in temps if t.exists()]
    assert "summary entry rebuilt" in capsys.readouterr().err


def test_damaged_checkpoint_and_metrics_fall_back_and_say_so(reference_run, tmp_path, capsys):
    run = damaged_copy(reference_run, tmp_path)
    (run / QAT_WEIGHTS).unlink()  # the QAT stage is unfinished: it resumes from checkpoints
    last = run / "checkpoints" / "qat-last.npz"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    (run / METRICS_FILE).write_text(metrics_text := (reference_run / METRICS_FILE).read_text()
                                    [:200] + "\x00garbled,\n")
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"{last}: damaged" in err and "qat-best.npz" in err
    assert f"{run / METRICS_FILE}: damaged" in err
    assert "Traceback" not in err
    # The best checkpoint is a complete resume point: the QAT weights are the reference's.
    assert_same_weights(run, reference_run, QAT_WEIGHTS, atol=0)
    assert metrics_text  # (the damaged text was written)


def test_resume_after_a_damaged_or_lost_metrics_file_keeps_every_row(reference_run, tmp_path,
                                                                      capsys):
    """The rows before the resume come back: the readable ones from the file, the rest from
    the rows each stage's checkpoint holds."""
    reference = metrics(reference_run)
    text = (reference_run / METRICS_FILE).read_text()
    tail = "".join(text.splitlines(keepends=True)[-3:])
    for name, damaged in (("garbled", text[:200] + "\x00garbled,\n" + tail), ("lost", None)):
        run = damaged_copy(reference_run, tmp_path / name)
        (run / QAT_WEIGHTS).unlink()  # the QAT stage resumes from its last checkpoint
        if damaged is None:
            (run / METRICS_FILE).unlink()
        else:
            (run / METRICS_FILE).write_text(damaged)
        assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
        err = capsys.readouterr().err
        assert "lost row(s) restored from the checkpoints" in err, name
        assert metrics(run) == reference, name


def test_two_trainings_on_one_new_out_and_bad_seed_or_val_are_one_line(reference_run,
                                                                       tmp_path, capsys):
    from mai_sr.train.rundir import RunWriter, resolve_run

    out = tmp_path / "race"
    config = TrainConfig(out=str(out))
    run_dir, config = resolve_run(config, resume=False, chief=True)
    out.mkdir()  # the other training won the race between the check and the mkdir
    with pytest.raises(MaiSrError, match=r"--out .*race: already exists"):
        RunWriter(run_dir, config, True, True, {}).create([], [])

    from PIL import Image

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    Image.new("RGB", (5, 5), "gray").save(tiny / "dot.png")
    new = tmp_path / "new"
    for args, message in [(["--seed", str(2**32)], "--seed: must be a whole number in [0, "),
                          (["--seed", "-1"], "--seed: must be a whole number in [0, "),
                          (["--val", str(tiny)], f"--val {tiny}")]:
        assert main(["train", "--out", str(new), "--steps", "1", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mai-sr train: error: ") and err.count("\n") == 1, err
        assert message in err, err
        assert not new.exists()


@pytest.mark.parametrize("tf_config, message", [
    ('[1, 2]', "must be a JSON object"),
    (('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
      '"task": {"type": "worker", "index": "one"}}'), 'task "index" must be a whole number'),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "task index 3 but the cluster has 1 worker(s)")])
def test_malformed_tf_config_is_one_line(tf_config, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    out = tmp_path / "run"
    assert main(["train", "--distribute", "multiworker", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mai-sr train: error: TF_CONFIG: ") and err.count("\n") == 1, err
    assert message in err and not out.exists()


def test_a_dead_worker_is_one_line_naming_it_and_the_resume_command(monkeypatch):
    """On TF's own error type, with the text its collectives give when a peer is gone (two
    real workers would take minutes on this machine)."""
    from mai_sr._tf import tf
    from mai_sr.train.session import worker_lost_error

    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:20001", "127.0.0.1:20002"]},
        "task": {"type": "worker", "index": 0}}))
    exc = tf.errors.UnavailableError(None, None, "Collective ops is aborted by: failed to "
                                     "connect to all addresses\nAdditional GRPC error "
                                     "information from remote target "
                                     "/job:worker/replica:0/task:1:\n:{...}")
    err = worker_lost_error(exc, Path("runs/mw"))
    assert str(err).startswith("--distribute multiworker: worker 1 stopped responding "
                               "(UnavailableError: Collective ops is aborted")
    assert str(err).endswith("mai-sr train --out runs/mw --resume --distribute multiworker")
    assert "\n" not in str(err)
    by_address = tf.errors.DeadlineExceededError(None, None, "ipv4:127.0.0.1:20002: timeout")
    assert "worker 1 (127.0.0.1:20002)" in str(worker_lost_error(by_address, Path("r")))
    assert worker_lost_error(ValueError("x"), Path("r")) is None


def test_resume_waits_for_a_run_that_is_still_stopping(tmp_path):
    """After Ctrl-C the old process holds the lock while it saves: a --resume meanwhile
    waits for it instead of being refused."""
    import threading

    from mai_sr.train.session import hold_run_lock, mark_stopping

    lock = hold_run_lock(tmp_path)
    mark_stopping(lock)
    threading.Timer(1.0, lock.close).start()
    started = time.perf_counter()
    hold_run_lock(tmp_path).close()  # would raise "is training this run" without waiting
    assert 0.9 < time.perf_counter() - started < 5


def test_the_bar_fits_80_columns_and_shows_the_loss_from_the_first_step(capsys):
    """A 6-step QAT stage with rows every 20 steps showed no loss until it ended, and the
    bar's tail (loss, val PSNR) was cut off at 80 columns."""
    from types import SimpleNamespace

    from mai_sr.train.session import Progress

    run = SimpleNamespace(quiet=False, chief=True, rows=[], log=print)
    state = {"step": 0, "elapsed": 0.0, "val_psnr": 27.123, "window": []}
    progress = Progress(run, "qat", 6000, state)
    for loss in (0.02, 0.04):
        state["step"] += 1
        state["window"].append(loss)
        progress.update(4.5e-5, None, log=False)
    progress.bar.ncols = 80
    line = str(progress.bar)
    progress.close()
    assert "loss 0.0300" in line and "val 27.12 dB" in line and "lr 4.5e-05" in line, line
    assert len(line) <= 80, line


def test_tensorboard_logs_hold_the_metrics_rows_and_validation_images(reference_run):
    """Read back with TF's own event parser (no tensorboard package): every metrics.csv row
    is a loss/lr scalar at its step, validations are val_psnr, and each stage has images."""
    from mai_sr._tf import tf
    from tensorflow.core.util import event_pb2

    scalars, images = {}, set()
    for path in (reference_run / "tensorboard").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                if plugin == "scalars":
                    scalars[(value.tag, event.step)] = tf.make_ndarray(value.tensor).item()
                elif plugin == "images":
                    width, height = tf.make_ndarray(value.tensor)[:2]
                    images.add((value.tag.split("/")[0], int(width) // 3, int(height)))
    rows = metrics(reference_run)
    assert rows
    for row in rows:
        step, stage = int(row["step"]), row["stage"]
        assert scalars[(f"{stage}/loss", step)] == pytest.approx(float(row["loss"]), rel=1e-6)
        assert scalars[(f"{stage}/lr", step)] == pytest.approx(float(row["lr"]), rel=1e-6)
        if row["val_psnr"]:
            assert scalars[(f"{stage}/val_psnr", step)] == pytest.approx(float(row["val_psnr"]))
    assert {stage for stage, _, _ in images} == {"fp32", "qat"}
    assert all(w > 0 and h > 0 for _, w, h in images)


def test_images_too_small_for_the_patch_are_one_summary_line(tmp_path):
    """`--patch 64` on T91 printed one raw Python warning per skipped image."""
    import warnings

    from PIL import Image

    from mai_sr import data

    for i in range(8):
        Image.new("RGB", (30, 30), (i * 20, 50, 90)).save(tmp_path / f"small{i}.png")
    Image.new("RGB", (240, 240), "gray").save(tmp_path / "big.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = data.load_pairs(tmp_path, min_lr_size=64)
    assert [p.name for p in pairs] == ["big"]
    assert [str(w.message) for w in caught] == [
        ("skipped 8 of 9 images (small0, small1, small2, small3, small4 and 3 more): their "
         "LR side is below 64 pixels at x3")]


def test_train_help_states_the_defaults_of_the_config():
    """--batch, --lr, --seed, --qat-steps, --val-every, --steps had no help and no default."""
    import dataclasses

    from mai_sr.cli import build_parser

    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    entries, current = {}, None
    for line in train.format_help().splitlines():  # "  --batch BATCH  help..." + indented
        if line.startswith("  -"):
            current = line.split()[0]
            entries[current] = " ".join(line.split()[2:])
        elif current and line.startswith("      "):
            entries[current] += " " + line.strip()
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for option, name in [("--batch", "batch"), ("--lr", "lr"), ("--seed", "seed"),
                         ("--qat-steps", "qat_steps"), ("--val-every", "val_every"),
                         ("--steps", "steps")]:
        help_text = entries[option].strip()
        assert help_text.endswith(f"(default {defaults[name]})"), (option, help_text)


def test_a_run_rebuilds_the_training_graph_its_record_names():
    """New ETDS runs record the dual-stream graph; an ETDS record from before that option
    (and a record without any train_graph, before the [0, 1] domain) rebuilds what those
    runs trained, so their checkpoints resume exactly."""
    from mai_sr.train.config import new_train_graph, stored_train_graph

    assert new_train_graph("etds_l") == {"normalize": True, "dual_stream": True}
    assert new_train_graph("abpn") == {"normalize": True}
    for model in ("etds_l", "abpn"):
        assert stored_train_graph(model, new_train_graph(model)) == new_train_graph(model)
    assert stored_train_graph("etds", {"normalize": True}) == {"normalize": True,
                                                                "dual_stream": False}
    assert stored_train_graph("abpn", None) == {"normalize": False}
    assert stored_train_graph("etds_s", None) == {"normalize": False, "dual_stream": False}
