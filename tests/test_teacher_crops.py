"""Teacher crops: inputs without an HR (rotated and shrunk copies of the training images),
scored against the teacher's output alone, mixed into every batch, and resumed exactly."""

from __future__ import annotations

import math
import signal

import numpy as np
import pytest
from PIL import Image

from mai_sr.data import bicubic_downscale, load_pairs
from mai_sr.errors import MaiSrError
from mai_sr.imageio import read_image_rgb
from mai_sr.train.teacher_crops import inscribed_size, rotate_inscribed, teacher_crop_pool


def _inside(x, y, width, height, angle_deg, tol=1e-6) -> bool:
    """Whether (x, y) (centred coordinates) lies in a width x height rectangle rotated by
    angle_deg about its centre."""
    a = math.radians(angle_deg)
    u = x * math.cos(a) + y * math.sin(a)
    v = -x * math.sin(a) + y * math.cos(a)
    return abs(u) <= width / 2 + tol and abs(v) <= height / 2 + tol


@pytest.mark.parametrize("width,height", [(300, 200), (200, 300), (481, 321), (400, 40)])
@pytest.mark.parametrize("angle", [0.0, 7.5, 30.0, 45.0, 63.0, 89.0, 90.0])
def test_the_inscribed_rectangle_fits_and_cannot_grow(width, height, angle):
    """Its corners lie in the rotated image; one pixel more in either direction does not."""
    w, h = inscribed_size(width, height, angle)
    assert w >= 1 and h >= 1

    def fits(rw, rh):
        return all(_inside(sx * rw / 2, sy * rh / 2, width, height, angle)
                   for sx in (-1, 1) for sy in (-1, 1))

    assert fits(w, h)
    assert not fits(w + 1, h + 1)
    if angle in (0.0, 90.0):
        assert (w, h) == ((width, height) if angle == 0.0 else (height, width))


def test_a_rotated_copy_holds_only_image_pixels_and_matches_an_independent_rotation(
        shared_data):
    """A flat image stays flat (no fill from outside it); a photo's copy equals
    scikit-image's rotation of it about its centre, cropped to the same rectangle."""
    from skimage.transform import AffineTransform, warp

    flat = np.full((210, 333, 3), 123, np.uint8)
    for angle in (5.0, 33.0, 71.0):
        assert np.all(rotate_inscribed(flat, angle) == 123)

    photo = read_image_rgb(shared_data / "Set14" / "baboon.png").astype(np.float64)
    angle = 21.0
    ours = rotate_inscribed(photo.astype(np.uint8), angle).astype(np.float64)
    (h, w), (big_h, big_w) = ours.shape[:2], photo.shape[:2]

    def psnr_against(turn_deg):
        # Each output pixel, centred on the crop, turned by turn_deg and moved to the photo's
        # centre: where scikit-image reads it (bicubic spline).
        where = (AffineTransform(translation=(-(w - 1) / 2, -(h - 1) / 2))
                 + AffineTransform(rotation=math.radians(turn_deg))
                 + AffineTransform(translation=((big_w - 1) / 2, (big_h - 1) / 2)))
        theirs = warp(photo, where, output_shape=(h, w), order=3, mode="reflect",
                      preserve_range=True)
        inner = (slice(4, -4), slice(4, -4))  # the kernels differ at the very edge
        return 10 * np.log10(255 ** 2 / np.mean((ours[inner] - theirs[inner]) ** 2))

    assert psnr_against(angle) > 40    # measured 43.9 dB: cubic convolution vs spline
    assert psnr_against(-angle) < 15   # the other direction is another image


def test_the_pool_is_a_seeded_function_of_its_images(shared_data):
    """Same seed, same pool; another seed, other copies. Every copy is an LR made as the
    pairs' are, at least a patch on each side."""
    pairs = load_pairs(shared_data / "Set14", scale=3)[:3]
    hrs = [p.hr for p in pairs]
    a = teacher_crop_pool(hrs, scale=3, patch=24, seed=0)
    b = teacher_crop_pool(hrs, scale=3, patch=24, seed=0)
    c = teacher_crop_pool(hrs, scale=3, patch=24, seed=1)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, c))
    assert 0 < len(a) <= 4 * len(hrs)
    assert all(min(x.shape[:2]) >= 24 and x.dtype == np.uint8 for x in a)
    # The copy of image 0, copy 0 rebuilt by hand from its seeded draws.
    rng = np.random.default_rng([0, 0, 0])
    angle, shrink = rng.uniform(0, 90), rng.uniform(0.5, 1.0)
    rotated = rotate_inscribed(hrs[0], angle)
    small = Image.fromarray(rotated).resize(
        (round(rotated.shape[1] * shrink), round(rotated.shape[0] * shrink)), Image.BICUBIC,
        reducing_gap=None)
    np.testing.assert_array_equal(a[0], bicubic_downscale(np.asarray(small), 3))


@pytest.mark.tf
def test_batches_end_with_teacher_samples_that_have_no_hr(shared_data):
    """The last round(batch x share) samples come from the teacher inputs, with zero HR and
    has_hr 0; the pairs' part is the batch a stream of that size gives."""
    from mai_sr.train.dataset import make_train_dataset

    pairs = load_pairs(shared_data / "Set5", scale=3)
    flat = [np.full((40, 50, 3), 77, np.uint8), np.full((30, 64, 3), 200, np.uint8)]
    mixed = make_train_dataset(pairs, patch=16, batch=8, seed=3, start_step=5,
                               teacher_lr=flat, teacher_share=0.25)
    plain = make_train_dataset(pairs, patch=16, batch=6, seed=3, start_step=5)
    (lr, hr, has_hr), (lr6, hr6) = next(iter(mixed)), next(iter(plain))
    assert lr.shape == (8, 16, 16, 3) and hr.shape == (8, 48, 48, 3)
    np.testing.assert_array_equal(has_hr.numpy(), [1] * 6 + [0] * 2)
    np.testing.assert_array_equal(lr[:6].numpy(), lr6.numpy())
    np.testing.assert_array_equal(hr[:6].numpy(), hr6.numpy())
    assert not np.any(hr[6:].numpy())
    for sample in lr[6:].numpy():
        assert np.unique(sample).tolist() in ([77.0], [200.0])
    with pytest.raises(MaiSrError, match="at least 1"):
        make_train_dataset(pairs, patch=16, batch=2, teacher_lr=flat, teacher_share=0.2)


@pytest.mark.tf
def test_teacher_samples_are_scored_against_the_guide_alone():
    """has_hr 1: the usual mix of HR and guide; has_hr 0: the guide only (numpy L1)."""
    from mai_sr.train.loop import distillation_loss, per_example_loss

    rng = np.random.default_rng(0)
    sr, hr, guide = (rng.uniform(0, 255, (2, 6, 6, 3)).astype(np.float32) for _ in range(3))
    got = distillation_loss(per_example_loss("l1"), sr, hr, guide, 0.3,
                            np.array([1.0, 0.0], np.float32)).numpy()
    l1 = lambda a, b: np.abs(a - b).mean(axis=(1, 2, 3)) / 255  # noqa: E731
    want = [0.7 * l1(sr, hr)[0] + 0.3 * l1(sr, guide)[0], l1(sr, guide)[1]]
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.tf
def test_a_run_with_teacher_crops_resumes_to_the_same_weights(shared_data, tmp_path, capsys):
    """Interrupted and resumed, a run with teacher crops (its pool rebuilt) ends where an
    uninterrupted one does; the option's errors are one line."""
    from mai_sr.train import (FP32_TRAIN_WEIGHTS, TrainConfig, TrainingInterrupted,
                              train_from_config)
    from test_train import assert_same_weights, metrics, tiny_config

    teacher = train_from_config(tiny_config(shared_data, tmp_path / "teacher", qat=False),
                                quiet=True)
    crops = dict(qat=False, teacher=str(teacher), teacher_crops=0.5)
    capsys.readouterr()
    whole = train_from_config(tiny_config(shared_data, tmp_path / "whole", **crops), quiet=True)
    assert "teacher crops: 16 inputs (4 rotated and shrunk copies of 4 images" in \
        capsys.readouterr().err

    def sigterm_at_4(stage, step):
        if step == 4:
            signal.raise_signal(signal.SIGTERM)

    config = tiny_config(shared_data, tmp_path / "parts", **crops)
    with pytest.raises(TrainingInterrupted):
        train_from_config(config, quiet=True, on_step=sigterm_at_4)
    parts = train_from_config(config, resume=True, quiet=True)
    assert_same_weights(whole, parts, FP32_TRAIN_WEIGHTS)
    assert [r["loss"] for r in metrics(whole)] == [r["loss"] for r in metrics(parts)]
    # Against a run without crops the losses differ from the first step.
    plain = train_from_config(tiny_config(shared_data, tmp_path / "plain", qat=False,
                                          teacher=str(teacher)), quiet=True)
    assert metrics(plain)[0]["loss"] != metrics(whole)[0]["loss"]
    for kwargs, message in [(dict(teacher_crops=0.5), "needs --teacher"),
                            (dict(teacher=str(teacher), teacher_crops=1.0), r"\[0, 1\)"),
                            (dict(teacher=str(teacher), teacher_crop_data="builtin"),
                             "needs --teacher-crops")]:
        with pytest.raises(MaiSrError, match=message):
            TrainConfig(**kwargs)
