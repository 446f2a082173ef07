"""The training pipeline: a ``tf.data`` stream of random (LR, HR) patch batches.

:func:`make_train_dataset` turns :class:`~mai_sr.data.ImagePair` objects (from
:func:`mai_sr.data.load_pairs`, which stays TensorFlow-free) into an infinite, resumable
stream. TensorFlow is imported inside the functions.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mai_sr.challenge import CHALLENGE_SCALE
from mai_sr.data import ImagePair, warn_skipped
from mai_sr.errors import MaiSrError

# Per-sample intensity factors of XCAT's augmentation (MAI 2022 challenge report, section 4.17).
INTENSITY_FACTORS = (1.0, 0.7, 0.5)


def make_train_dataset(pairs: Sequence[ImagePair], *, patch: int = 64, batch: int = 16,
                       scale: int = CHALLENGE_SCALE, seed: int = 0, start_step: int = 0,
                       intensity_aug: bool = False, teacher_lr: Sequence[np.ndarray] = (),
                       teacher_share: float = 0.0):
    """Infinite ``tf.data.Dataset`` of ``(lr, hr)`` float32 batches with values in [0, 255].

    Shapes: lr ``(batch, patch, patch, 3)``, hr ``(batch, scale*patch, scale*patch, 3)``.
    Each sample is a random image (uniform over images), a random LR patch position with the
    HR patch at ``scale`` times that position, one of the 8 flips/90° rotations applied to
    both, and with `intensity_aug` both multiplied by 1, 0.7 or 0.5 (XCAT).

    Batch ``k`` is a pure function of ``(seed, k)``: all randomness comes from stateless ops
    seeded by ``(seed, k)``, and the stream starts at ``Dataset.counter(start_step)``. So a run
    resumed with ``start_step=k`` sees exactly the batches an uninterrupted run would have.

    The decoded images are held once in memory as two flat uint8 tensors (all HR pixels, all
    LR pixels); a batch is two gathers whose indices already encode crop, flip and rotation.
    Pairs whose LR side is smaller than `patch` are skipped with a warning.

    With `teacher_share` > 0, the last ``round(batch * teacher_share)`` samples of every batch
    are patches of the `teacher_lr` images (inputs without an HR; see
    :mod:`mai_sr.train.teacher_crops`), drawn the same way, and the elements are
    ``(lr, hr, has_hr)``: those samples' HR is zeros and ``has_hr`` (float, one per sample)
    is 0 for them, 1 for the pairs'. Their draws are seeded apart from the pairs', so the
    pairs' part of batch ``k`` depends only on ``(seed, k)`` and its size.
    """
    from mai_sr._tf import tf

    if patch < 1 or batch < 1 or start_step < 0:
        raise MaiSrError(f"patch, batch must be >= 1 and start_step >= 0 "
                         f"(got {patch}, {batch}, {start_step})")
    usable, skipped = _usable_pairs(pairs, patch, scale)
    warn_skipped(skipped, len(pairs), f"their LR side is smaller than the {patch}x{patch} patch")
    if not usable:
        raise MaiSrError(f"no training image has an LR side of at least {patch} pixels")
    n_teacher = round(batch * teacher_share) if teacher_share else 0
    if teacher_share and not 1 <= n_teacher < batch:
        raise MaiSrError(f"teacher crops: {teacher_share} of a batch of {batch} is "
                         f"{n_teacher} sample(s); need at least 1 and at most {batch - 1}")
    images = _PixelBuffers([p.lr for p in usable], [p.hr for p in usable])
    make_batch = _batch_maker(images, patch=patch, batch=batch - n_teacher, scale=scale,
                              seed=seed, intensity_aug=intensity_aug)
    if n_teacher:
        teacher_lr = [lr for lr in teacher_lr if min(lr.shape[:2]) >= patch]
        if not teacher_lr:
            raise MaiSrError(f"teacher crops: no image has an LR side of at least {patch}")
        make_batch = _with_teacher_samples(make_batch, _PixelBuffers(teacher_lr),
                                           patch=patch, n=n_teacher, scale=scale, seed=seed,
                                           intensity_aug=intensity_aug)
    options = tf.data.Options()
    options.deterministic = True
    ds = tf.data.Dataset.counter(start=start_step, dtype=tf.int64)
    ds = ds.map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _usable_pairs(pairs: Sequence[ImagePair], patch: int,
                  scale: int) -> tuple[list[ImagePair], list[str]]:
    """(the pairs a `patch` fits in, the names of the others); MaiSrError for a pair whose
    HR is not `scale` times its LR."""
    usable, skipped = [], []
    for p in pairs:
        if p.lr.shape[0] * scale != p.hr.shape[0] or p.lr.shape[1] * scale != p.hr.shape[1]:
            raise MaiSrError(f"{p.name}: HR {p.hr.shape[:2]} is not {scale}x LR {p.lr.shape[:2]}")
        if min(p.lr.shape[:2]) < patch:
            skipped.append(p.name)
            continue
        usable.append(p)
    return usable, skipped


class _PixelBuffers:
    """Every image's pixels as two flat tensors ([N_pixels, 3] HR and LR), where each image
    starts in them, and the LR sides. Without `hr_images`, ``hr_flat`` is None."""

    def __init__(self, lr_images: Sequence[np.ndarray],
                 hr_images: Sequence[np.ndarray] | None = None):
        from mai_sr._tf import tf

        def flat(images):
            pixels = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.int64)
            return (tf.constant(np.concatenate([im.reshape(-1, 3) for im in images])),
                    tf.constant(np.concatenate([[0], np.cumsum(pixels)[:-1]])))

        lr_shapes = np.array([lr.shape[:2] for lr in lr_images], dtype=np.int64)
        self.lr_flat, self.lr_start = flat(lr_images)
        # Inputs without an HR (teacher crops) have none.
        self.hr_flat, self.hr_start = flat(hr_images) if hr_images is not None else (None, None)
        self.lr_h = tf.constant(lr_shapes[:, 0])
        self.lr_w = tf.constant(lr_shapes[:, 1])
        self.count = len(lr_images)


def _gather_patches(flat, start, width, y0, x0, size, transpose, flip_h, flip_v):
    """Patches (B, size, size, 3) at (y0, x0) of row-major images, with a dihedral transform.

    Output pixel (i, j) reads source (r, c) = (j, i) if transposed else (i, j), then
    r -> size-1-r if flip_v and c -> size-1-c if flip_h. The flat index
    start + (y0 + r) * width + x0 + c splits into a term in i and a term in j.
    """
    from mai_sr._tf import tf

    k = tf.range(size, dtype=tf.int64)[None, :]                 # (1, size)
    rev = size - 1 - k
    v_term = width[:, None] * tf.where(flip_v[:, None], rev, k)  # source row r, x width
    h_term = tf.where(flip_h[:, None], rev, k)                  # source column c
    t = transpose[:, None]
    term_i = tf.where(t, h_term, v_term)                        # (B, size)
    term_j = tf.where(t, v_term, h_term)
    base = start + y0 * width + x0                              # (B,)
    index = base[:, None, None] + term_i[:, :, None] + term_j[:, None, :]
    return tf.gather(flat, index)                               # (B, size, size, 3)


def _draw_patches(images: _PixelBuffers, seeds, n: int, patch: int, scale: int,
                  intensity_aug: bool):
    """(lr, hr) float32 of `n` random patches of `images` (hr None without HR images), every
    draw from the 5 stateless `seeds`: image, row, column, dihedral transform, and with
    `intensity_aug` the factor both are multiplied by."""
    from mai_sr._tf import tf

    image = tf.random.stateless_uniform([n], seeds[0], 0, images.count, dtype=tf.int64)
    h, w = tf.gather(images.lr_h, image), tf.gather(images.lr_w, image)
    # Uniform positions in [0, side - patch]; float64 keeps the floor exact for any size.
    uy = tf.random.stateless_uniform([n], seeds[1], dtype=tf.float64)
    ux = tf.random.stateless_uniform([n], seeds[2], dtype=tf.float64)
    y0 = tf.cast(tf.floor(uy * tf.cast(h - patch + 1, tf.float64)), tf.int64)
    x0 = tf.cast(tf.floor(ux * tf.cast(w - patch + 1, tf.float64)), tf.int64)
    flips = tf.random.stateless_uniform([3, n], seeds[3], 0, 2, dtype=tf.int32) > 0
    lr = tf.cast(_gather_patches(images.lr_flat, tf.gather(images.lr_start, image), w, y0, x0,
                                 patch, flips[0], flips[1], flips[2]), tf.float32)
    hr = None
    if images.hr_flat is not None:
        hr = tf.cast(_gather_patches(images.hr_flat, tf.gather(images.hr_start, image),
                                     w * scale, y0 * scale, x0 * scale, patch * scale,
                                     flips[0], flips[1], flips[2]), tf.float32)
    if intensity_aug:
        which = tf.random.stateless_uniform([n], seeds[4], 0, len(INTENSITY_FACTORS),
                                            dtype=tf.int32)
        factor = tf.gather(tf.constant(INTENSITY_FACTORS, dtype=tf.float32),
                           which)[:, None, None, None]
        lr, hr = lr * factor, None if hr is None else hr * factor
    return lr, hr


def _batch_maker(images: _PixelBuffers, *, patch: int, batch: int, scale: int, seed: int,
                 intensity_aug: bool):
    """The function step -> (lr, hr) batch, every random draw seeded by (seed, step)."""
    from mai_sr._tf import tf

    def make_batch(step):
        seeds = tf.random.experimental.stateless_split(
            tf.stack([tf.constant(seed, tf.int64), step]), num=5)
        return _draw_patches(images, seeds, batch, patch, scale, intensity_aug)

    return make_batch


def _with_teacher_samples(make_batch, inputs: _PixelBuffers, *, patch: int, n: int,
                          scale: int, seed: int, intensity_aug: bool):
    """`make_batch` with `n` patches of `inputs` (no HR) appended: step -> (lr, hr, has_hr)."""
    from mai_sr._tf import tf

    def make_mixed_batch(step):
        lr, hr = make_batch(step)
        # Seeds of their own (the pairs' seed pair folded with 1): the pairs' draws stay
        # those of a batch of their size.
        base = tf.stack([tf.constant(seed, tf.int64), step])
        seeds = tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base, 1), num=5)
        extra, _ = _draw_patches(inputs, seeds, n, patch, scale, intensity_aug)
        hr_side = patch * scale
        has_hr = tf.concat([tf.ones([tf.shape(lr)[0]]), tf.zeros([n])], axis=0)
        return (tf.concat([lr, extra], axis=0),
                tf.concat([hr, tf.zeros([n, hr_side, hr_side, 3])], axis=0), has_hr)

    return make_mixed_batch
