"""The one scoring loop (mai_sr.scoring) for every predictor, against scikit-image's PSNR/SSIM
on the same crops and against `mai-sr eval`."""

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from mai_sr.data import load_pairs
from mai_sr.scoring import Scoring, mean_psnr, nearest_upscale, score_pairs


@pytest.fixture(scope="module")
def set5(shared_data):
    return load_pairs(shared_data / "Set5")


def pillow_bicubic(lr, scale=3):
    return np.asarray(Image.fromarray(lr).resize((lr.shape[1] * scale, lr.shape[0] * scale),
                                                 Image.BICUBIC))


def reference(sr, hr, crop):
    a, b = sr[crop:-crop, crop:-crop], hr[crop:-crop, crop:-crop]
    return (peak_signal_noise_ratio(b, a, data_range=255),
            structural_similarity(b, a, channel_axis=2, data_range=255, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False))


def test_a_callable_and_its_bicubic_baseline_score_as_scikit_image_does(set5):
    shifted = lambda lr: np.roll(pillow_bicubic(lr), 1, axis=1)  # noqa: E731
    rows = score_pairs(shifted, set5, Scoring(3))
    assert [r.name for r in rows] == [p.name for p in set5]
    for row, pair in zip(rows, set5):
        want = reference(shifted(pair.lr), pair.hr, 3)
        base = reference(pillow_bicubic(pair.lr), pair.hr, 3)
        assert (row.psnr, row.ssim) == pytest.approx(want, abs=1e-4)
        assert (row.baseline_psnr, row.baseline_ssim) == pytest.approx(base, abs=1e-4)
        assert (row.height, row.width) == pair.hr.shape[:2]
    assert mean_psnr(rows, baseline=True) == pytest.approx(28.62, abs=0.01)  # Set5 bicubic


def test_float_outputs_are_rounded_and_tuples_are_named_by_position(set5):
    pairs = [(p.lr, p.hr) for p in set5[:2]]
    exact = score_pairs(lambda lr: pillow_bicubic(lr), pairs, Scoring(3, ssim=False,
                                                                    baseline="nearest"))
    nudged = score_pairs(lambda lr: pillow_bicubic(lr) + 0.4, pairs,
                         Scoring(3, ssim=False, baseline="nearest"))
    assert [r.name for r in exact] == ["0", "1"] and exact == nudged
    assert exact[0].ssim is None
    want = peak_signal_noise_ratio(set5[0].hr[3:-3, 3:-3],
                                   nearest_upscale(set5[0].lr, 3)[3:-3, 3:-3], data_range=255)
    assert exact[0].baseline_psnr == pytest.approx(want, abs=1e-6)


def test_a_tflite_file_scores_as_eval_does(shared_data):
    from mai_sr.evaluate import evaluate_tflite
    from mai_sr.pretrained import pretrained_path

    path = pretrained_path("abpn", "dynamic")
    result = evaluate_tflite(path, str(shared_data / "Set5"), quiet=True, use_cache=False)[0]
    rows = score_pairs(path, load_pairs(shared_data / "Set5"), Scoring(3, y_channel=True))
    luma = evaluate_tflite(path, str(shared_data / "Set5"), quiet=True, use_cache=False,
                           y_channel=True)[0]
    assert [r.image_score() for r in rows] == list(luma.images)
    assert result.psnr > result.bicubic_psnr + 1  # a trained model, not the baseline


@pytest.mark.tf
def test_a_keras_model_is_called_on_float_batches(set5):
    """A Keras nearest-neighbour upsampler scores exactly as the nearest-neighbour anchor."""
    from mai_sr._tf import keras

    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.UpSampling2D(3, interpolation="nearest")(inp))
    rows = score_pairs(model, set5, Scoring(3, baseline="nearest"))
    for row in rows:
        assert row.psnr == row.baseline_psnr and row.ssim == row.baseline_ssim


def _pairs_of_sizes(sizes, scale=3):
    from mai_sr.data import ImagePair

    rng = np.random.default_rng(0)
    pairs = []
    for i, (h, w) in enumerate(sizes):
        hr = rng.integers(0, 256, (h * scale, w * scale, 3), dtype=np.uint8)
        pairs.append(ImagePair(f"img{i}", hr, rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return pairs


def _size_changes(pairs):
    return sum(1 for a, b in zip([None, *pairs], pairs) if a is None or a.lr.shape != b.lr.shape)


def test_by_size_groups_sizes_within_its_look_ahead_and_keeps_every_pair():
    from mai_sr.scoring import by_size

    # B100's orientations in file order (P: portrait, L: landscape): 36 runs of one size.
    layout = ("PPPLLLLLLLLLLLLLLLLLPLLLLLLLLPLPLLPLLLPPLLLLLPLLLLLLLLPPLLLLLLPLPLLPLLLPLLLLLPLL"
              "LPPLLLLPLLLPLLPLLLPL")
    pairs = _pairs_of_sizes([(16, 24) if c == "L" else (24, 16) for c in layout])
    assert _size_changes(pairs) == 36
    consumed = []

    def source():
        for pair in pairs:
            consumed.append(pair)
            yield pair

    held_most = 0
    order = []
    for position, pair in by_size(source(), images=16):
        if not order:  # the model starts on the first pair, without reading ahead
            assert len(consumed) == 1
        held_most = max(held_most, len(consumed) - len(order))
        order.append(position)
        assert pairs[position] is pair
    assert sorted(order) == list(range(len(pairs)))
    assert held_most <= 16
    assert _size_changes([pairs[i] for i in order]) == 4
    # All at once (a list in memory): one run per size, each in input order.
    whole = [i for i, _ in by_size(pairs, len(pairs), None)]
    assert _size_changes([pairs[i] for i in whole]) == 2
    assert whole == sorted(whole, key=lambda i: (layout[i] != layout[0], i))
    # The byte bound holds fewer pairs than the count bound.
    one_pair = pairs[0].lr.nbytes + pairs[0].hr.nbytes
    tight = [i for i, _ in by_size(iter(pairs), images=16, nbytes=2 * one_pair)]
    assert sorted(tight) == list(range(len(pairs)))
    assert 4 < _size_changes([pairs[i] for i in tight]) < 36


def test_rows_come_back_in_input_order_with_each_pairs_own_scores():
    """The model runs the pairs grouped by size; every row is still its own pair's, in the
    input's order, equal to scoring the pairs one by one."""
    pairs = _pairs_of_sizes([(16, 24), (24, 16), (16, 24), (24, 16), (20, 20), (16, 24)])
    seen = []

    def model(lr):
        seen.append(lr.shape)
        return pillow_bicubic(lr)

    scoring = Scoring(3)
    for given in (pairs, iter(pairs)):
        seen.clear()
        rows = score_pairs(model, given, scoring)
        # three sizes, each run once (the six pairs fit in the look-ahead)
        assert sum(1 for a, b in zip([None, *seen], seen) if a != b) == 3
        assert sorted(seen) == sorted(p.lr.shape for p in pairs)
        assert [r.name for r in rows] == [p.name for p in pairs]
        for row, pair in zip(rows, pairs):
            want = reference(pillow_bicubic(pair.lr), pair.hr, 3)
            assert (row.psnr, row.ssim) == pytest.approx(want, abs=1e-6)
            assert row.psnr == row.baseline_psnr  # the model is the bicubic baseline
