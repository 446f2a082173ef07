"""PSNR and SSIM for super-resolution, in NumPy and OpenCV's separable filters (no TensorFlow).

Conventions (the SR literature's, and the challenge's):

- Inputs are uint8 images (HxWx3 RGB, or HxW), values 0..255; ``data_range`` is 255.
- ``crop`` pixels are removed from every border first (default 3 = the scale), because the
  border of an upscaled image depends on how the network pads.
- By default both metrics use all RGB channels: PSNR from the MSE over all channels, SSIM as
  the mean of the per-channel SSIMs. ``y_channel=True`` uses the BT.601 luma instead, with
  the studio-range convention of MATLAB's ``rgb2ycbcr``:
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (Y in 16..235), kept as float, not
  rounded to uint8 (as BasicSR and EDSR do).
- SSIM is Wang et al.'s: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
  population (not sample) covariances, averaged over the positions where the window fits
  inside the image. This equals ``skimage.metrics.structural_similarity(...,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`` to about
  1e-9 (see :func:`ssim` for how it is computed); PSNR equals scikit-image's exactly.
"""

from __future__ import annotations

import cv2
import numpy as np

from mai_sr.errors import MaiSrError

DATA_RANGE = 255.0
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # 11x11 window: int(3.5 * sigma + 0.5), as Wang et al. and scikit-image
SSIM_K1, SSIM_K2 = 0.01, 0.03


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 RGB image, float64 in [16, 235] (MATLAB ``rgb2ycbcr``'s Y)."""
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise MaiSrError(f"rgb_to_y: expected an HxWx3 RGB image, got shape {img.shape}")
    return 16.0 + img @ np.array([65.481, 128.553, 24.966]) / 255.0


def _prepare(sr, hr, crop: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validate, crop borders, optionally take Y; return HxWxC views (uint8 stays uint8, so
    the callers can do exact integer arithmetic; Y is float64)."""
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise MaiSrError(f"image shapes differ: {sr.shape} vs {hr.shape}")
    if sr.ndim not in (2, 3):
        raise MaiSrError(f"expected HxW or HxWxC images, got shape {sr.shape}")
    if crop < 0:
        raise MaiSrError(f"crop: must be >= 0, got {crop}")
    if crop:
        sr, hr = sr[crop:-crop, crop:-crop], hr[crop:-crop, crop:-crop]
    if sr.shape[0] < 1 or sr.shape[1] < 1:
        raise MaiSrError(f"images of shape {np.shape(hr)} are empty after a {crop}-pixel crop")
    if y_channel:
        return rgb_to_y(sr)[..., None], rgb_to_y(hr)[..., None]
    if sr.dtype != np.uint8 or hr.dtype != np.uint8:
        sr, hr = sr.astype(np.float64), hr.astype(np.float64)
    if sr.ndim == 2:
        sr, hr = sr[..., None], hr[..., None]
    return sr, hr


def psnr(sr, hr, *, crop: int = 3, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    sr, hr = _prepare(sr, hr, crop, y_channel)
    if sr.dtype == np.uint8:
        # Integer arithmetic is exact: the same MSE as NumPy's float64 mean (whose partial
        # sums are integers below 2**53, hence exact too), with a fifth of the memory traffic.
        diff = sr.astype(np.int16) - hr
        mse = int(np.square(diff, dtype=np.int32).sum(dtype=np.int64)) / diff.size
    else:
        mse = np.mean((sr - hr) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(DATA_RANGE ** 2 / mse))


def _gaussian_window() -> np.ndarray:
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


def _local_mean(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Gaussian-weighted mean of every channel of HxWxC `x`, HxWxC in x's float type. Only
    the positions at least the window's radius inside the image are valid; the others
    (OpenCV's reflected border) are computed and left out of the mean at the end, because
    NumPy's arithmetic on the whole contiguous arrays is about twice as fast as on the
    strided view of the valid positions."""
    # OpenCV's separable filter is 5-10x faster than scipy.ndimage here.
    out = cv2.sepFilter2D(x, -1, window, window, borderType=cv2.BORDER_REFLECT)
    return out if out.ndim == 3 else out[..., None]


def ssim(sr, hr, *, crop: int = 3, y_channel: bool = False) -> float:
    """Mean structural similarity (Gaussian-weighted, Wang et al. 2004), averaged over channels.

    Computed from the sum s = x + y and the difference d = x - y rather than from x and y,
    which makes float32 exact enough where it is fast. With the local (Gaussian) means
    and variances, ``2 mu_x mu_y + C1 = (mu_x^2 + mu_y^2 + C1) - mu_d^2`` and
    ``2 cov + C2 = (var_x + var_y + C2) - var_d``, so SSIM is
    ``(1 - mu_d^2 / (mu_x^2 + mu_y^2 + C1)) * (1 - var_d / (var_x + var_y + C2))``
    with ``mu_x^2 + mu_y^2 = (mu_s^2 + mu_d^2) / 2`` and ``var_x + var_y = (var_s + var_d) / 2``.
    The denominators are only needed to relative precision; what needs absolute precision is
    var_s = E[s^2] - mu_s^2 (a difference of large numbers), so s goes through float64,
    while d, small wherever the images agree, goes through float32 at twice the speed. The
    result equals the all-float64 computation to about 1e-9.
    """
    sr, hr = _prepare(sr, hr, crop, y_channel)
    size = 2 * SSIM_RADIUS + 1
    if sr.shape[0] < size or sr.shape[1] < size:
        raise MaiSrError(f"SSIM needs images of at least {size}x{size} after cropping, "
                         f"got {sr.shape[1]}x{sr.shape[0]}")
    if sr.dtype == np.uint8:
        # Exact, and faster than NumPy's uint8 -> float casting loops: an int16 sum widened
        # to float64, OpenCV's uint8 difference straight into float32.
        s = np.add(sr, hr, dtype=np.int16).astype(np.float64)
        d = cv2.subtract(sr, hr, dtype=cv2.CV_32F).reshape(sr.shape)
    else:
        s = np.add(sr, hr, dtype=np.float64)
        d = np.subtract(sr, hr, dtype=np.float32)
    # Centring s on the middle of its range (an exact shift for uint8) halves E[s^2].
    s -= DATA_RANGE
    window = _gaussian_window()
    window32 = window.astype(np.float32)
    mu_s = _local_mean(s, window)
    var_s = _local_mean(np.square(s, out=s), window)
    var_s -= np.square(mu_s, out=s)
    # From here on only relative precision is needed: float32.
    var_s = var_s.astype(np.float32)
    mu_s = mu_s.astype(np.float32)
    mu_s += DATA_RANGE  # the uncentred mean of s
    mu_d = _local_mean(d, window32)
    var_d = _local_mean(np.square(d, out=d), window32)
    mu_d *= mu_d  # mu_d^2 from here on
    var_d -= mu_d
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    mu_s *= mu_s
    mu_s += mu_d
    mu_s *= 0.5
    mu_s += c1  # mu_x^2 + mu_y^2 + C1
    var_s += var_d
    var_s *= 0.5
    var_s += c2  # var_x + var_y + C2
    lum = np.divide(mu_d, mu_s, out=mu_s)
    np.subtract(1, lum, out=lum)
    cs = np.divide(var_d, var_s, out=var_s)
    np.subtract(1, cs, out=cs)
    lum *= cs
    # Every channel has as many positions, so the mean over all is the mean of the
    # per-channel means; only the positions whose window lies inside the image count.
    r = SSIM_RADIUS
    return float(np.mean(lum[r:-r, r:-r], dtype=np.float64))
