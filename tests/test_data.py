"""Data sources, LR/HR pairs and the tf.data training pipeline, on real images."""

import warnings

import numpy as np
import pytest
from PIL import Image

from mai_sr import data
from mai_sr.train import dataset
from mai_sr.errors import MaiSrError

PATCH = 32  # small patches keep the pipeline tests fast; the geometry is the same at 64


def _save(img, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture(scope="module")
def set14(shared_data):
    return data.load_pairs(shared_data / "Set14")


# ---------------------------------------------------------------- pairs


def test_set14_pairs_are_exact_thirds(shared_data, set14):
    assert [p.name for p in set14] == sorted(p.stem for p in (shared_data / "Set14").glob("*.png"))
    assert len(set14) == 14
    for p in set14:
        with Image.open(shared_data / "Set14" / f"{p.name}.png") as im:
            w, h = im.size
        assert p.hr.shape == (h - h % 3, w - w % 3, 3) and p.hr.dtype == np.uint8
        assert p.lr.shape == (p.hr.shape[0] // 3, p.hr.shape[1] // 3, 3) and p.lr.dtype == np.uint8


def test_greyscale_becomes_rgb_and_lr_is_pillow_bicubic(shared_data, set14):
    bridge = next(p for p in set14 if p.name == "bridge")  # PIL mode "L" on disk
    assert np.array_equal(bridge.hr[..., 0], bridge.hr[..., 2])
    with Image.open(shared_data / "Set14" / "zebra.png") as im:
        w, h = im.size[0] // 3 * 3, im.size[1] // 3 * 3
        expected = np.asarray(im.convert("RGB").crop((0, 0, w, h))
                              .resize((w // 3, h // 3), Image.BICUBIC, reducing_gap=None))
    zebra = next(p for p in set14 if p.name == "zebra")
    assert np.array_equal(zebra.lr, expected)


def test_rgba_and_palette_become_rgb(tmp_path, set14):
    hr = set14[0].hr[:96, :96]
    rgba = _save(np.dstack([hr, np.full(hr.shape[:2], 128, np.uint8)]), tmp_path / "a.png")
    Image.fromarray(hr).convert("P").save(tmp_path / "p.png")
    assert np.array_equal(data.read_image_rgb(rgba), hr)
    assert data.read_image_rgb(tmp_path / "p.png").shape == (96, 96, 3)


def test_builtin_has_at_least_six_colour_photos():
    pairs = data.load_pairs("builtin")
    assert len(pairs) >= 6
    for p in pairs:
        assert p.hr.ndim == 3 and p.hr.shape[2] == 3
        assert not np.array_equal(p.hr[..., 0], p.hr[..., 1]), p.name  # colour, not grey
        assert p.lr.shape[0] * 3 == p.hr.shape[0] and p.lr.shape[1] * 3 == p.hr.shape[1]


def test_folders_recursive_sorted_and_comma_separated(tmp_path, set14):
    _save(set14[0].hr, tmp_path / "a" / "z.png")
    _save(set14[1].hr, tmp_path / "a" / "sub" / "b.bmp")
    _save(set14[2].hr, tmp_path / "c" / "x.jpg")
    (tmp_path / "a" / "notes.txt").write_text("not an image, and not an image suffix")
    names = [p.name for p in data.iter_pairs(tmp_path / "a")]
    assert names == ["sub/b", "z"]
    both = data.load_pairs(f"{tmp_path / 'a'},{tmp_path / 'c'}")
    assert [p.name for p in both] == ["sub/b", "z", "x"]
    assert len(data.load_pairs([tmp_path / "a", tmp_path / "c"])) == 3


def test_corrupt_file_is_a_one_line_error_naming_it(tmp_path, set14):
    _save(set14[0].hr, tmp_path / "good.png")
    (tmp_path / "bad.png").write_text("this is a text file, not a PNG\nsecond line\n")
    with pytest.raises(MaiSrError) as info:
        data.load_pairs(tmp_path)
    message = str(info.value)
    assert "bad.png" in message and "\n" not in message


@pytest.mark.parametrize("make", ["empty", "missing", "file"])
def test_bad_folders_are_errors_naming_them(tmp_path, make):
    target = tmp_path / "images"
    if make == "empty":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    with pytest.raises(MaiSrError, match="images"):
        data.iter_pairs(target)  # raised up front, before iteration


def test_small_image_skipped_with_warning(tmp_path, set14):
    _save(set14[0].hr, tmp_path / "big.png")
    _save(set14[0].hr[:60, :90], tmp_path / "tiny.png")  # LR 30x20
    with pytest.warns(UserWarning, match="tiny"):
        pairs = data.load_pairs(tmp_path, min_lr_size=PATCH)
    assert [p.name for p in pairs] == ["big"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(data.load_pairs(tmp_path)) == 2  # no minimum by default
    with pytest.warns(UserWarning), pytest.raises(MaiSrError, match="no image"):
        data.load_pairs(tmp_path, min_lr_size=10 ** 6)


# ---------------------------------------------------------------- DIV2K layout


@pytest.fixture()
def div2k(tmp_path, set14):
    """A tiny DIV2K tree made of real Set14 images: DIV2K_train_HR/0001.png, 0002.png."""
    hrs = [set14[i].hr[:301, :302] for i in (0, 4)]  # sides not multiples of 3
    for i, hr in enumerate(hrs, start=1):
        _save(hr, tmp_path / "DIV2K_train_HR" / f"{i:04d}.png")
    return tmp_path, hrs


def test_div2k_without_lr_folder_uses_bicubic(div2k):
    root, hrs = div2k
    pairs = data.load_pairs(root / "DIV2K_train_HR")
    assert [p.name for p in pairs] == ["0001", "0002"]
    for p, hr in zip(pairs, hrs):
        assert np.array_equal(p.hr, hr[:300, :300])
        assert np.array_equal(p.lr, data.bicubic_downscale(hr[:300, :300]))


def test_div2k_with_lr_folder_uses_the_provided_files(div2k):
    root, hrs = div2k
    lr_dir = root / "DIV2K_train_LR_bicubic" / "X3"
    provided = [hr[1:300:3, 1:300:3] for hr in hrs]  # nearest-neighbour: differs from bicubic
    for i, lr in enumerate(provided, start=1):
        _save(lr, lr_dir / f"{i:04d}x3.png")
    for source in (root / "DIV2K_train_HR", root):  # the HR folder or the DIV2K root
        pairs = data.load_pairs(source)
        assert [p.name for p in pairs] == ["0001", "0002"]
        for p, lr in zip(pairs, provided):
            assert np.array_equal(p.lr, lr)

    _save(provided[1][:50], lr_dir / "0002x3.png")
    with pytest.raises(MaiSrError, match="0002x3.png"):
        data.load_pairs(root)
    (lr_dir / "0002x3.png").unlink()
    with pytest.raises(MaiSrError, match="0002x3.png"):
        data.load_pairs(root)


# ---------------------------------------------------------------- training pipeline


@pytest.fixture(scope="module")
def train_pairs(set14):
    return [p for p in set14 if p.name in ("comic", "face", "zebra")]


def _batches(pairs, n, **kw):
    kw = {"patch": PATCH, "batch": 8, "seed": 7, **kw}
    it = iter(dataset.make_train_dataset(pairs, **kw))
    return [tuple(t.numpy() for t in next(it)) for _ in range(n)]


DIHEDRAL = [(t, h, v) for t in (False, True) for h in (False, True) for v in (False, True)]


def _undo(patch, transform):
    """Invert the pipeline's transform: it transposes, then flips columns (h) and rows (v)."""
    t, h, v = transform
    if v:
        patch = patch[::-1]
    if h:
        patch = patch[:, ::-1]
    return patch.transpose(1, 0, 2) if t else patch


def _locate(lr_patch, hr_patch, pairs):
    """(image, y, x, transform) such that the LR patch is that crop of the image's LR and the
    HR patch the crop at 3x the position, under one of the 8 flips/rotations; else None."""
    for i, pair in enumerate(pairs):
        for transform in DIHEDRAL:
            lr = _undo(lr_patch, transform)
            ys, xs = np.nonzero(np.all(pair.lr == lr[0, 0], axis=-1))
            for y, x in zip(ys, xs):
                if np.array_equal(pair.lr[y:y + PATCH, x:x + PATCH], lr) and np.array_equal(
                        pair.hr[3 * y:3 * y + 3 * PATCH, 3 * x:3 * x + 3 * PATCH],
                        _undo(hr_patch, transform)):
                    return i, y, x, transform
    return None


@pytest.mark.tf  # the tf.data training pipeline
def test_batches_shapes_and_range(train_pairs):
    (lr, hr), = _batches(train_pairs, 1)
    assert lr.shape == (8, PATCH, PATCH, 3) and hr.shape == (8, 3 * PATCH, 3 * PATCH, 3)
    assert lr.dtype == hr.dtype == np.float32
    assert 0 <= lr.min() and hr.max() <= 255 and np.array_equal(hr, np.round(hr))


@pytest.mark.tf  # the tf.data training pipeline
def test_patches_are_aligned_crops_under_all_flips_and_rotations(train_pairs):
    found = [_locate(lr, hr, train_pairs) for lr_b, hr_b in _batches(train_pairs, 8)
             for lr, hr in zip(lr_b, hr_b)]
    assert None not in found
    assert {f[3] for f in found} == set(DIHEDRAL)   # every flip/rotation occurs (64 samples)
    assert {f[0] for f in found} == {0, 1, 2}        # every image is sampled


@pytest.mark.tf  # the tf.data training pipeline
def test_hr_patch_downscales_to_lr_patch(train_pairs):
    for lr_b, hr_b in _batches(train_pairs, 1):
        for lr, hr in zip(lr_b.astype(np.uint8), hr_b.astype(np.uint8)):
            # Pillow resizes horizontally first, so a transposed patch only matches exactly
            # when resized transposed; away from the patch border (2 LR pixels) it is exact.
            down = [data.bicubic_downscale(hr),
                    data.bicubic_downscale(hr.swapaxes(0, 1)).swapaxes(0, 1)]
            assert any(np.array_equal(d[2:-2, 2:-2], lr[2:-2, 2:-2]) for d in down)


@pytest.mark.tf  # the tf.data training pipeline
def test_deterministic_and_resumable(train_pairs):
    fresh = _batches(train_pairs, 4)
    again = _batches(train_pairs, 4)
    resumed = _batches(train_pairs, 2, start_step=2)
    other_seed = _batches(train_pairs, 1, seed=8)
    for a, b in zip(fresh, again):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for a, b in zip(fresh[2:], resumed):
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(fresh[0][1], fresh[1][1])
    assert not np.array_equal(fresh[0][1], other_seed[0][1])


@pytest.mark.tf  # the tf.data training pipeline
def test_intensity_augmentation_scales_lr_and_hr_alike(train_pairs):
    plain = _batches(train_pairs, 2)
    scaled = _batches(train_pairs, 2, intensity_aug=True)
    factors = []
    for (lr, hr), (lr_s, hr_s) in zip(plain, scaled):
        for i in range(len(lr)):
            f = hr_s[i].sum() / hr[i].sum()
            assert np.allclose(hr_s[i], hr[i] * f, atol=1e-3)
            assert np.allclose(lr_s[i], lr[i] * f, atol=1e-3)
            factors.append(round(float(f), 4))
    assert set(factors) == {1.0, 0.7, 0.5}


@pytest.mark.tf  # the tf.data training pipeline
def test_pairs_smaller_than_a_patch_are_skipped(train_pairs, set14):
    small = data.ImagePair("small", set14[0].hr[:60, :60], set14[0].lr[:20, :20])
    with pytest.warns(UserWarning, match="small"):
        dataset.make_train_dataset([small, *train_pairs], patch=PATCH)
    with pytest.warns(UserWarning), pytest.raises(MaiSrError, match="no training image"):
        dataset.make_train_dataset([small], patch=PATCH)
