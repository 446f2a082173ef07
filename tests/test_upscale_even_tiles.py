"""`mai-sr upscale` runs large images in even tiles by default: fewest tiles within the limit,
no tile wasted on a shifted-back remainder, and the whole-image invoke's pixels."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mai_sr.pretrained import pretrained_path
from mai_sr.tflite.runtime import TFLiteSR, tile_spans
from mai_sr.upscale import AUTO_TILE, even_tile, upscale_paths


def covered_by(count: int, tile: int, margin: int) -> int:
    """Pixels that `count` tiles of `tile` overlapping by 2*margin can cover."""
    return count * tile - 2 * margin * (count - 1)


@pytest.mark.parametrize("margin", [0, 2, 7, 20])
def test_even_tiles_are_the_fewest_within_the_limit(margin):
    for length in range(2 * margin + 1, 3000, 37):
        for most in (2 * margin + 1, 64, 360, 640):
            tile = even_tile(length, 10, margin, limit=(most, 10))
            if length <= most:
                assert tile is None
                continue
            spans = tile_spans(length, tile[0], margin)
            assert tile[0] <= most
            # the fewest: one tile fewer, even at the largest size allowed, cannot cover
            assert covered_by(len(spans) - 1, most, margin) < length
            # and none wasted: the spans' reads add up to at most a tile's rounding more
            # than the image plus the overlaps
            read = sum(s.stop - s.start for s in spans)
            assert read - (length + 2 * margin * (len(spans) - 1)) < len(spans)


def test_a_1080p_input_runs_in_16_tiles_of_281x491():
    tile = even_tile(1080, 1920, 7)
    assert tile == (281, 491) and tile[0] <= AUTO_TILE[0] and tile[1] <= AUTO_TILE[1]
    rows, cols = tile_spans(1080, 281, 7), tile_spans(1920, 491, 7)
    assert len(rows) * len(cols) == 16
    computed = sum(r.stop - r.start for r in rows) * sum(c.stop - c.start for c in cols)
    assert computed / (1080 * 1920) < 1.07  # the overlaps cost 6.5% more pixels


def test_small_images_and_tiny_limits_run_whole():
    assert even_tile(360, 640, 7) is None
    assert even_tile(1000, 1000, 10, limit=(20, 20)) is None  # no pixel kept per tile


def test_default_upscale_of_a_large_image_is_tiled_and_equals_one_invoke(shared_data,
                                                                          tmp_path):
    model = TFLiteSR(pretrained_path("abpn", "dynamic"))  # the shipped ABPN, radius 7
    with Image.open(shared_data / "Set14" / "barbara.png") as im:  # 576x720: over 360x640
        lr = np.asarray(im.convert("RGB"))
    tile = even_tile(*lr.shape[:2], model.receptive_field)
    assert len(model.tiles(*lr.shape[:2], tile)) == 4
    (out,) = upscale_paths(shared_data / "Set14" / "barbara.png", tmp_path / "x3.png",
                           model=model.path, quiet=True)
    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im), model.run(lr))
