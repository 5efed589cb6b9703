"""Image files of every kind: the odd ones work as documented, the broken ones are clear errors.

Every image is generated here with Pillow (nothing big is committed). The messages of
the broken cases are in the catalogue (test_hostile_catalogue.py); these tests check
the pixels of the ones that work, the command line, and fuzz the loader.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_hostile_catalogue import catalogue

from mobilevit_np import MobileViTImageProcessor, cli
from mobilevit_np.image_processing import load_image

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))


def gradient() -> Image.Image:
    return catalogue.gradient()  # 64 x 48 RGB


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# ------------------------------------------------------------ kinds that work


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1"])
def test_png_modes_load_as_their_rgb_conversion(mode, tmp_path):
    image = gradient().convert(mode)
    image.save(tmp_path / "x.png")
    loaded = load_image(tmp_path / "x.png")
    assert loaded.mode == "RGB" and loaded.size == (64, 48)
    np.testing.assert_array_equal(pixels(loaded), pixels(image.convert("RGB")))


def test_grey_is_repeated_and_alpha_dropped(tmp_path):
    grey = gradient().convert("L")
    grey.save(tmp_path / "grey.png")
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "grey.png")), np.stack([pixels(grey)] * 3, axis=-1))
    rgba = gradient().copy()
    rgba.putalpha(Image.new("L", rgba.size, 0))  # fully transparent: alpha is dropped, not composited
    rgba.save(tmp_path / "clear.png")
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "clear.png")), pixels(gradient()))


def test_palette_png_with_transparency(tmp_path):
    image = gradient().quantize(16)
    image.save(tmp_path / "p.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "palette images with transparency" warning either
        loaded = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(pixels(loaded), pixels(image.convert("RGB")))


def test_cmyk_jpeg(tmp_path):
    gradient().convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"
    loaded = load_image(tmp_path / "cmyk.jpg")
    assert loaded.mode == "RGB"
    assert np.abs(pixels(loaded) - pixels(gradient())).mean() < 3  # JPEG's loss only: the colours survive


def png_16_bit_rgb(values: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG, which Pillow cannot write: rows of filter byte 0 + big-endian samples."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width, _ = values.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in values)
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def test_16_bit_png_keeps_the_high_byte(tmp_path):
    values = (np.arange(48 * 64 * 3).reshape(48, 64, 3) * 7).astype(np.uint16)
    (tmp_path / "deep.png").write_bytes(png_16_bit_rgb(values))
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "deep.png")), values >> 8)


def test_animated_gif_gives_its_first_frame(tmp_path):
    first, second = gradient(), Image.fromarray(255 - np.asarray(gradient()))
    first.save(tmp_path / "anim.gif", save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(tmp_path / "anim.gif").n_frames == 2
    loaded = pixels(load_image(tmp_path / "anim.gif"))
    # GIF is 256 colours: compare with the first frame as the GIF holds it, and check it is not the second.
    np.testing.assert_array_equal(loaded, pixels(Image.open(tmp_path / "anim.gif").convert("RGB")))
    assert np.abs(loaded - pixels(first)).mean() < np.abs(loaded - pixels(second)).mean() / 10


# The transpose that turns an upright picture into what a camera stores under each EXIF orientation.
STORED_AS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


@pytest.mark.parametrize("orientation", sorted(STORED_AS))
def test_exif_orientation_is_applied_to_paths(orientation, tmp_path):
    """As documented (and as transformers' load_image): a path loads upright; PNG keeps the pixels exact."""
    upright = gradient()
    exif = Image.Exif()
    exif[0x0112] = orientation
    upright.transpose(STORED_AS[orientation]).save(tmp_path / "photo.png", exif=exif)
    np.testing.assert_array_equal(pixels(load_image(tmp_path / "photo.png")), pixels(upright))


# ---------------------------------------------------------------- bombs


def test_warning_level_bomb_loads_with_pillows_warning(tmp_path, monkeypatch):
    gradient().save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 3072 pixels: over the limit, under twice it
    with pytest.warns(Image.DecompressionBombWarning):
        loaded = load_image(tmp_path / "big.png")
    np.testing.assert_array_equal(pixels(loaded), pixels(gradient()))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)  # 3072 > 2 x 1500: refused
    with pytest.raises(ValueError, match="decompression bomb.*3072 pixels"):
        load_image(tmp_path / "big.png")


# ------------------------------------------------------------ command line


@pytest.fixture
def classifier(make_checkpoint):
    folder = make_checkpoint("classification")
    MobileViTImageProcessor(size=72, crop_size=64).save_pretrained(folder)
    return folder


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("cut.jpg", catalogue.encoded("jpg", 0.5), "cut.jpg: truncated or corrupt image file"),
        ("bomb.png", lambda: catalogue.png_header(100_000, 100_000), "refused as a possible decompression bomb"),
        ("empty.png", lambda: b"", "empty.png: empty file (0 bytes)"),
        ("notes.jpg", lambda: b"not a picture", "notes.jpg: not an image file Pillow can read"),
    ],
    ids=["truncated", "bomb", "empty", "text"],
)
def test_classify_reports_a_broken_image_in_one_line(name, data, message, classifier, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # main() replaces it; put it back after
    gradient().save(tmp_path / "good.png")
    (tmp_path / name).write_bytes(data())
    code = cli.main(["classify", str(tmp_path / "good.png"), str(tmp_path / name), "--model", str(classifier)])
    stderr = capsys.readouterr().err
    assert code == 1
    errors = [line for line in stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in stderr, stderr


# ---------------------------------------------------------------- fuzzing


def encodings() -> dict[str, bytes]:
    out = {}
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buffer = io.BytesIO()
        gradient().save(buffer, fmt)
        out[fmt] = buffer.getvalue()
    return out


ENCODED = encodings()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(ENCODED)),
    st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=6),
    st.floats(0.05, 1.0),
)
def test_mutated_images_load_or_raise_value_error(fmt, flips, keep):
    """Byte flips and truncations of six formats: an RGB image or a ValueError, nothing else."""
    data = bytearray(ENCODED[fmt])
    for where, value in flips:
        data[int(where * len(data))] = value
    data = bytes(data[: max(1, int(len(data) * keep))])
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = 10**6  # a flipped size field cannot make Pillow decode gigabytes here
    fd, path = tempfile.mkstemp(suffix=".img")
    try:
        os.write(fd, data)
        os.close(fd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning, TIFF metadata warnings
            image = load_image(path)
        assert image.mode == "RGB" and min(image.size) >= 1
    except ValueError as e:
        assert path in str(e)
    finally:
        Image.MAX_IMAGE_PIXELS = limit
        os.unlink(path)
