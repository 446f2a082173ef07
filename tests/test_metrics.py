"""PSNR/SSIM against scikit-image on real images (HR vs bicubic upscaling of its LR)."""

from itertools import islice

import numpy as np
import pytest
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mai_sr import data, metrics
from mai_sr.errors import MaiSrError


def sk_ssim(a, b, channel_axis=-1):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=255,
                                 channel_axis=channel_axis)


@pytest.fixture(scope="module")
def real_pairs(shared_data):
    """(name, sr, hr): bicubic x3 of the LR against the HR, from Set14 and B100."""
    pairs = [p for p in data.load_pairs(shared_data / "Set14") if p.name in ("comic", "bridge")]
    pairs += islice(data.iter_pairs(shared_data / "B100"), 2)
    return [(p.name, data.bicubic_upscale(p.lr), p.hr) for p in pairs]


def _crop(img, c):
    return img[c:-c, c:-c] if c else img


@pytest.mark.parametrize("crop", [3, 0, 6])
def test_rgb_psnr_ssim_equal_skimage(real_pairs, crop):
    for name, sr, hr in real_pairs:
        a, b = _crop(sr, crop), _crop(hr, crop)
        # PSNR is exact (integer arithmetic); SSIM within 1e-6, so that its printed 4 and 5
        # decimals are scikit-image's.
        assert metrics.psnr(sr, hr, crop=crop) == peak_signal_noise_ratio(b, a, data_range=255), \
            name
        assert metrics.ssim(sr, hr, crop=crop) == pytest.approx(sk_ssim(b, a), abs=1e-6), name


def test_y_channel_equals_skimage_on_matlab_luma(real_pairs):
    for name, sr, hr in real_pairs:
        # skimage's rgb2ycbcr is MATLAB's: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
        ya, yb = (rgb2ycbcr(_crop(img, 3))[..., 0] for img in (sr, hr))
        assert metrics.rgb_to_y(hr) == pytest.approx(rgb2ycbcr(hr)[..., 0], abs=1e-9)
        assert metrics.psnr(sr, hr, y_channel=True) == pytest.approx(
            peak_signal_noise_ratio(yb, ya, data_range=255), abs=1e-6), name
        assert metrics.ssim(sr, hr, y_channel=True) == pytest.approx(
            sk_ssim(yb, ya, channel_axis=None), abs=1e-6), name


def test_default_crop_is_the_scale(real_pairs):
    _, sr, hr = real_pairs[0]
    assert metrics.psnr(sr, hr) == metrics.psnr(sr, hr, crop=3)
    assert metrics.psnr(sr, hr) != metrics.psnr(sr, hr, crop=0)


def test_set5_bicubic_matches_published_baseline(shared_data):
    # Bicubic x3 on Set5, Y channel, border = scale: 30.39 dB (Kim et al., VDSR, CVPR 2016,
    # Table 2; MATLAB imresize). Pillow's antialiased bicubic lands within a few hundredths.
    scores = [metrics.psnr(data.bicubic_upscale(p.lr), p.hr, y_channel=True)
              for p in data.iter_pairs(shared_data / "Set5")]
    assert np.mean(scores) == pytest.approx(30.39, abs=0.05)


def test_identical_images_and_greyscale(real_pairs):
    _, sr, hr = real_pairs[0]
    assert metrics.psnr(hr, hr) == float("inf")
    assert metrics.ssim(hr, hr) == pytest.approx(1.0)
    g_sr, g_hr = sr[..., 1], hr[..., 1]
    assert metrics.ssim(g_sr, g_hr) == pytest.approx(sk_ssim(g_hr[3:-3, 3:-3], g_sr[3:-3, 3:-3],
                                                             channel_axis=None), abs=1e-6)


def test_ssim_precise_where_float32_is_weakest(real_pairs):
    """Float32 loses precision on large, nearly equal numbers: bright flat areas (E[x^2] and
    mu^2 near 255^2), images that differ everywhere (large x - y), a photo against its
    negative, and a photo against an unrelated one. SSIM stays within 1e-6 of scikit-image."""
    rng = np.random.default_rng(0)
    _, sr, hr = real_pairs[0]
    bright = np.clip(250 + rng.normal(0, 1.5, hr.shape), 0, 255).astype(np.uint8)
    noise = rng.integers(0, 256, hr.shape, dtype=np.uint8)
    other = real_pairs[1][2][:hr.shape[0], :hr.shape[1]]
    h, w = min(hr.shape[0], other.shape[0]), min(hr.shape[1], other.shape[1])
    cases = {"bright flat": (bright, np.clip(bright.astype(int) + 1, 0, 255).astype(np.uint8)),
             "noise vs photo": (noise, hr), "negative": (255 - hr, hr),
             "unrelated photos": (other[:h, :w], hr[:h, :w]), "constant": (hr * 0 + 255, hr * 0)}
    for name, (a, b) in cases.items():
        assert metrics.ssim(a, b, crop=0) == pytest.approx(sk_ssim(b, a), abs=1e-6), name
        assert metrics.psnr(a, b, crop=0) == peak_signal_noise_ratio(b, a, data_range=255), name


def test_bad_inputs_raise(real_pairs):
    _, sr, hr = real_pairs[0]
    with pytest.raises(MaiSrError, match="shapes differ"):
        metrics.psnr(sr[:-3], hr)
    with pytest.raises(MaiSrError, match="crop"):
        metrics.ssim(sr, hr, crop=-1)
    with pytest.raises(MaiSrError, match="at least 11x11"):
        metrics.ssim(sr[:16, :16], hr[:16, :16])
    with pytest.raises(MaiSrError, match="RGB"):
        metrics.rgb_to_y(hr[..., 0])
