"""PSNR and SSIM for super-resolution, in vectorised NumPy (no TensorFlow).

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
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)``.
"""

from __future__ import annotations

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
    """Validate, crop borders, optionally take Y; return float64 HxWxC arrays."""
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
    sr, hr = sr.astype(np.float64), hr.astype(np.float64)
    if sr.ndim == 2:
        sr, hr = sr[..., None], hr[..., None]
    return sr, hr


def psnr(sr, hr, *, crop: int = 3, y_channel: bool = False) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    sr, hr = _prepare(sr, hr, crop, y_channel)
    mse = np.mean((sr - hr) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(DATA_RANGE ** 2 / mse))


def _gaussian_window() -> np.ndarray:
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / SSIM_SIGMA) ** 2)
    return w / w.sum()


def _filter_axis0(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """'Valid' correlation of x with a symmetric window along axis 0 (window inside x)."""
    n, r = len(window), len(window) // 2
    h = x.shape[0] - n + 1
    out = x[r:r + h] * window[r]
    pair = np.empty_like(out)
    for k in range(r):  # symmetric window: pair up the taps k and n-1-k
        np.add(x[k:k + h], x[n - 1 - k:n - 1 - k + h], out=pair)
        pair *= window[k]
        out += pair
    return out


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of the first two axes of x."""
    rows = _filter_axis0(x, window)
    return _filter_axis0(rows.swapaxes(0, 1), window).swapaxes(0, 1)


def ssim(sr, hr, *, crop: int = 3, y_channel: bool = False) -> float:
    """Mean structural similarity (Gaussian-weighted, Wang et al. 2004), averaged over channels."""
    sr, hr = _prepare(sr, hr, crop, y_channel)
    size = 2 * SSIM_RADIUS + 1
    if sr.shape[0] < size or sr.shape[1] < size:
        raise MaiSrError(f"SSIM needs images of at least {size}x{size} after cropping, "
                         f"got {sr.shape[1]}x{sr.shape[0]}")
    window = _gaussian_window()
    # One filtering pass over the five local statistics of every channel.
    stats = _filter_valid(np.stack([sr, hr, sr * sr, hr * hr, sr * hr], axis=-1), window)
    mu_x, mu_y, xx, yy, xy = np.moveaxis(stats, -1, 0)
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / \
        ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean(axis=(0, 1)).mean())
