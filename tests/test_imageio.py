"""The one image decoder (mai_sr.imageio): 16-bit, greyscale, alpha and palette files read
one way by every command, against conversions computed here from the samples written.

The files are real PNGs: 16-bit greyscale from Pillow, 16-bit RGB/RGBA from OpenCV, and
16-bit grey+alpha and transparency-keyed files from a minimal PNG writer below (neither
Pillow nor OpenCV writes those), so the decoder is checked against independent encoders.
"""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from mai_sr import data, imageio
from mai_sr.errors import MaiSrError

RNG = np.random.default_rng(7)
# Every 16-bit value class: ends, the rounding boundaries around each k * 257 + 128.5 and
# random samples.
EDGES = np.array([0, 1, 128, 129, 256, 257, 385, 386, 32767, 32768, 65407, 65408, 65535],
                 dtype=np.uint16)


def sixteen_bit(shape) -> np.ndarray:
    values = RNG.integers(0, 65536, size=shape, dtype=np.uint16)
    flat = values.reshape(-1)
    flat[:len(EDGES)] = EDGES
    return values


def rounded(samples) -> np.ndarray:
    """The reference conversion: nearest 8-bit value of v / 257, in floating point."""
    return np.round(np.asarray(samples, dtype=np.float64) / 257.0).astype(np.uint8)


def write_png(path, samples, colour_type, extra_chunks=()):
    """A 16-bit PNG written byte by byte (IHDR, optional chunks, one IDAT, IEND)."""
    h, w = samples.shape[:2]
    rows = np.asarray(samples).reshape(h, -1).astype(">u2")
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body))

    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))
    body += b"".join(chunk(kind, payload) for kind, payload in extra_chunks)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))
    return path


def test_rounding_is_nearest_and_keeps_the_ends():
    assert np.array_equal(imageio.to_8bit(EDGES), rounded(EDGES))
    assert imageio.to_8bit(np.array([0, 65535]))[[0, 1]].tolist() == [0, 255]
    every = np.arange(65536)
    assert np.array_equal(imageio.to_8bit(every), rounded(every))


def test_16bit_greyscale_from_pillow_is_rounded_not_clipped_or_truncated(tmp_path):
    grey = sixteen_bit((23, 31))
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)
    with Image.open(path) as im:
        assert im.mode == "I;16"  # what Pillow makes of it: the case that differed
    got = imageio.read_image(path)
    assert got.dtype == np.uint8 and got.shape == grey.shape
    assert np.array_equal(got, rounded(grey))
    assert not np.array_equal(got, (grey >> 8).astype(np.uint8))  # not the high byte


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_from_opencv_is_rounded(tmp_path, channels):
    import cv2

    rgb = sixteen_bit((19, 29, channels))
    path = tmp_path / f"colour{channels}.png"
    bgr = rgb[..., [2, 1, 0, 3][:channels]]
    assert cv2.imwrite(str(path), bgr)
    assert np.array_equal(imageio.read_image(path), rounded(rgb))


def test_16bit_grey_with_alpha_is_la(tmp_path):
    la = sixteen_bit((17, 13, 2))
    path = write_png(tmp_path / "la16.png", la, colour_type=4)
    got = imageio.read_image(path)
    assert got.shape == (17, 13, 2)
    assert np.array_equal(got, rounded(la))
    assert np.array_equal(imageio.read_image_rgb(path), np.repeat(rounded(la[..., :1]), 3, 2))


def test_16bit_transparency_key_is_compared_at_full_precision(tmp_path):
    grey = sixteen_bit((9, 11))
    key = int(grey[4, 5])
    grey[grey // 257 == key // 257] = key ^ 1 if key % 2 == 0 else key - 1  # near misses
    grey[4, 5] = key
    path = write_png(tmp_path / "keyed.png", grey, colour_type=0,
                     extra_chunks=[(b"tRNS", struct.pack(">H", key))])
    got = imageio.read_image(path)
    alpha = np.where(grey == key, 0, 255).astype(np.uint8)
    assert got.shape == (9, 11, 2) and alpha.sum() < 255 * grey.size  # one pixel at most
    assert np.array_equal(got, np.dstack([rounded(grey), alpha]))
    rgb = sixteen_bit((6, 8, 3))
    path = write_png(tmp_path / "keyed_rgb.png", rgb, colour_type=2,
                     extra_chunks=[(b"tRNS", struct.pack(">HHH", *map(int, rgb[2, 3])))])
    got = imageio.read_image(path)
    assert got.shape == (6, 8, 4) and got[2, 3, 3] == 0
    assert np.array_equal(got[..., :3], rounded(rgb))


def test_palette_and_8bit_modes_are_pillow_conversions(tmp_path):
    rgb = RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    palette = Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "p.png")
    assert np.array_equal(imageio.read_image(tmp_path / "p.png"),
                          np.asarray(palette.convert("RGB")))
    palette.save(tmp_path / "pt.png", transparency=3)
    with Image.open(tmp_path / "pt.png") as im:
        expected = np.asarray(im.convert("RGBA"))
    assert np.array_equal(imageio.read_image(tmp_path / "pt.png"), expected)
    la = Image.fromarray(rgb[..., :2], "LA")
    la.save(tmp_path / "la.png")
    assert np.array_equal(imageio.read_image(tmp_path / "la.png"), rgb[..., :2])
    assert np.array_equal(imageio.read_image_rgb(tmp_path / "la.png"),
                          np.asarray(la.convert("RGB")))
    Image.fromarray(rgb[..., 0] > 128).save(tmp_path / "bits.png")
    assert np.array_equal(imageio.read_image(tmp_path / "bits.png"),
                          np.where(rgb[..., 0] > 128, 255, 0).astype(np.uint8))


def test_exif_orientation_applies_to_16bit_files(tmp_path):
    grey = sixteen_bit((10, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to be upright
    Image.fromarray(grey).save(tmp_path / "r.png", exif=exif)
    assert imageio.upright_size(tmp_path / "r.png") == (16, 10)
    assert np.array_equal(imageio.read_image(tmp_path / "r.png"), np.rot90(rounded(grey), -1))


def test_eval_data_and_upscale_read_a_16bit_file_the_same_way(tmp_path):
    """The same 16-bit greyscale PNG gives eval the HR that upscale is given, and upscale's
    output equals its output for the 8-bit file holding the reference conversion."""
    from mai_sr.upscale import upscale_paths

    grey = sixteen_bit((48, 60))
    folder = tmp_path / "hr"
    folder.mkdir()
    Image.fromarray(grey).save(folder / "g16.png")
    Image.fromarray(rounded(grey)).save(tmp_path / "g8.png")
    pair = data.load_pairs(folder, scale=3)[0]
    assert np.array_equal(pair.hr, np.repeat(rounded(grey)[..., None], 3, axis=2))
    upscale_paths(folder / "g16.png", tmp_path / "a.png", pretrained="abpn", quiet=True)
    upscale_paths(tmp_path / "g8.png", tmp_path / "b.png", pretrained="abpn", quiet=True)
    assert np.array_equal(imageio.read_image(tmp_path / "a.png"),
                          imageio.read_image(tmp_path / "b.png"))


def test_a_damaged_16bit_png_is_one_line(tmp_path):
    path = write_png(tmp_path / "cut.png", sixteen_bit((8, 8, 3)), colour_type=2)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(MaiSrError, match="cut.png: not a readable image"):
        imageio.read_image(path)


def bomb_png(path, width=20000, height=10000):
    """A PNG header claiming width x height (200 MP by default) over a few bytes of data:
    what a decompression bomb looks like to the decoder before it inflates anything."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + \
            struct.pack(">I", zlib.crc32(kind + body))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


BOMB_LINE = "bomb.png: 20000x10000 is 200,000,000 pixels, above the 178,956,970-pixel limit"


def test_every_reader_has_the_pixel_guard(tmp_path):
    bomb = bomb_png(tmp_path / "hr" / "bomb.png")
    for read in (imageio.read_image, imageio.read_image_rgb, imageio.upright_size,
                 lambda p: data.load_pairs(p.parent)):
        with pytest.raises(MaiSrError, match=BOMB_LINE):
            read(bomb)


def test_eval_refuses_a_decompression_bomb_in_one_line(tmp_path, capsys):
    from mai_sr.cli import main

    bomb_png(tmp_path / "hr" / "bomb.png")
    assert main(["eval", "--pretrained", "abpn", "--data", str(tmp_path / "hr"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert BOMB_LINE in err and err.count("\n") == 1 and "Traceback" not in err
    assert "--max-pixels" not in err  # eval has no such option: not offered


@pytest.mark.slow
def test_train_refuses_a_decompression_bomb_in_its_data_in_one_line(tmp_path, capsys):
    from mai_sr.cli import main

    Image.new("RGB", (120, 120)).save(bomb_png(tmp_path / "hr" / "bomb.png").parent / "a.png")
    assert main(["train", "--data", str(tmp_path / "hr"), "--out", str(tmp_path / "run"),
                 "--steps", "1", "--quiet", "--no-tensorboard"]) == 2
    err = capsys.readouterr().err
    assert BOMB_LINE in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("suffix", ["gif", "png", "webp", "tif"])
def test_multi_frame_files_give_their_first_frame_and_say_so(suffix, tmp_path, capsys):
    """Animated GIF/APNG/WebP and multi-page TIFF: the first frame, as Pillow decodes it,
    and one line saying the others are not used (the CLI prints it as one line)."""
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
              for _ in range(3)]
    path = tmp_path / f"anim.{suffix}"
    lossless = {"lossless": True} if suffix == "webp" else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], **lossless)
    with pytest.warns(imageio.FirstFrameOnly, match=r"anim\.\w+: has 3 frames; only the "
                                                     r"first is used"):
        img = imageio.read_image_rgb(path)
    with Image.open(path) as im:
        im.seek(0)
        np.testing.assert_array_equal(img, np.asarray(im.convert("RGB")))
    single = tmp_path / f"one.{suffix}"
    frames[0].save(single, **lossless)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a single frame says nothing
        imageio.read_image_rgb(single)
    from mai_sr.cli import main

    assert main(["upscale", str(path), str(tmp_path / "out.png"), "--pretrained", "abpn",
                 "--quiet"]) == 0
    assert capsys.readouterr().err == (f"mai-sr upscale: warning: {path}: has 3 frames; only "
                                       "the first is used\n")
