"""Extra training inputs labelled only by a teacher: rotated and rescaled copies of images.

Distillation can use inputs that have no trustworthy HR: the teacher's output is their target.
This module makes such inputs from the training images themselves (and any extra photos, e.g.
the builtin ones): each source image gives :data:`VARIANTS` copies, each rotated by a random
angle in [0°, 90°) (the dihedral flips of the batch stream cover the rest) and shrunk by a
random factor in :data:`RESCALE_RANGE`, then made LR the way every training pair is
(:func:`mai_sr.data.bicubic_downscale`). A rotated or shrunk HR is an interpolated image, not
a ground truth (bicubic rotation blurs it), so only the teacher scores the student on these:
the HR loss would teach the student the interpolation's blur.

Why: the shipped students learn from 262 images (T91 + BSD200 less the validation tenth)
while their teacher was trained on DIV2K's 800. New angles and scales of the same photos
show the student textures and edge orientations its HR pairs never have; the teacher knows
what they should become. (The extra unlabelled crops the DIV2K-quality work on SCSRN and
XCAT calls for: rotations, scales, the builtin photos.)

NumPy, Pillow and OpenCV only (no TensorFlow); every draw is seeded by (seed, image, copy),
so the pool is a pure function of its inputs, as the batch stream requires for exact resume.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from mai_sr.data import bicubic_downscale, bicubic_resize

VARIANTS = 4                   # rotated/rescaled copies per source image
RESCALE_RANGE = (0.5, 1.0)     # shrink factors: denser textures, never an upscale (no new detail)


def inscribed_size(width: int, height: int, angle_deg: float) -> tuple[int, int]:
    """(w, h) of the largest axis-aligned rectangle inside a `width` x `height` rectangle
    rotated by `angle_deg`, centred on it (so the crop holds no pixel from outside the image).

    Derivation: a centred w x h rectangle fits when its corners satisfy both slab
    constraints of the rotated rectangle; the maximum area either touches all four sides
    (w cos + h sin = W, w sin + h cos = H, solved directly) or, when the rotated image is
    thin, is limited by its short side alone (half of it over sin and cos).
    """
    a = math.radians(angle_deg % 180.0)
    sin_a, cos_a = abs(math.sin(a)), abs(math.cos(a))
    long_side, short_side = max(width, height), min(width, height)
    if short_side <= 2.0 * sin_a * cos_a * long_side or abs(sin_a - cos_a) < 1e-10:
        half = 0.5 * short_side
        w, h = (half / sin_a, half / cos_a) if width >= height else (half / cos_a, half / sin_a)
    else:
        cos_2a = cos_a * cos_a - sin_a * sin_a
        w = (width * cos_a - height * sin_a) / cos_2a
        h = (height * cos_a - width * sin_a) / cos_2a
    # floor after a small tolerance: 299.99999 is 300, and never a pixel outside.
    return int(math.floor(w + 1e-6)), int(math.floor(h + 1e-6))


def rotate_inscribed(img: np.ndarray, angle_deg: float) -> np.ndarray:
    """`img` rotated by `angle_deg` (counter-clockwise, bicubic), cropped to the largest
    centred axis-aligned rectangle that holds only image pixels."""
    import cv2

    h, w = img.shape[:2]
    cw, ch = inscribed_size(w, h, angle_deg)
    # Rotate about the image centre straight into the crop's canvas: shift the centre to the
    # canvas centre, so no pixel of a larger intermediate canvas is computed.
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle_deg, 1.0)
    m[0, 2] += (cw - w) / 2.0
    m[1, 2] += (ch - h) / 2.0
    return cv2.warpAffine(img, m, (cw, ch), flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT_101)


def teacher_crop_pool(hr_images: Sequence[np.ndarray], *, scale: int, patch: int,
                      seed: int, variants: int = VARIANTS) -> list[np.ndarray]:
    """LR images (uint8, RGB) for teacher-only training samples: `variants` rotated and
    shrunk copies of every HR image, each downscaled by `scale` as training pairs are.
    Copies whose LR side is below `patch` are left out."""
    pool = []
    for index, hr in enumerate(hr_images):
        for copy in range(variants):
            rng = np.random.default_rng([seed, index, copy])
            angle = float(rng.uniform(0.0, 90.0))
            shrink = float(rng.uniform(*RESCALE_RANGE))
            rotated = rotate_inscribed(hr, angle)
            size = (round(rotated.shape[1] * shrink), round(rotated.shape[0] * shrink))
            if min(size) < patch * scale:
                continue
            pool.append(bicubic_downscale(bicubic_resize(rotated, size), scale))
    return pool
