"""load_image from http(s) URLs, base64 and data URIs, against a real HTTP server on 127.0.0.1.

transformers' load_image reads the same URLs, so its results are the reference where it runs.
"""

from __future__ import annotations

import base64
import io
import time
from pathlib import Path

import numpy as np
import pytest
from http_server import redirect, send_bytes, serve, stall
from PIL import Image, ImageOps

from mobilevit_np import load_image, pipeline
from mobilevit_np.cli import main

CATS = Path(__file__).parent.parent / "examples" / "images" / "cats.png"
SHAPES_MODEL = CATS.parent.parent / "models" / "shapes-classifier"


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def cats():
    return Image.open(CATS).convert("RGB")


@pytest.fixture(scope="module")
def server(cats):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    jpeg = encoded(cats.resize((64, 48)), "JPEG", quality=90, exif=exif.tobytes())
    routes = {
        "/cats.png": send_bytes(encoded(cats, "PNG"), "image/png"),
        "/rotated.jpg": send_bytes(jpeg, "image/jpeg"),
        "/moved": redirect("/cats.png"),
        "/moved-twice": redirect("/moved", 301),
        "/missing.png": send_bytes(b"not here", "text/plain", status=404),
        "/page.html": send_bytes(b"<html>an error page</html>", "text/html"),
        "/stalls.png": stall,
    }
    with serve(routes) as running:
        running.jpeg = jpeg
        yield running


def test_png_url_and_redirects_equal_the_file(server, cats):
    for path in ("/cats.png", "/moved", "/moved-twice"):
        image = load_image(server.url(path))
        assert image.mode == "RGB" and image.size == cats.size
        np.testing.assert_array_equal(np.asarray(image), np.asarray(cats))


def test_jpeg_url_is_rotated_upright(server):
    image = load_image(server.url("/rotated.jpg"))
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(server.jpeg))).convert("RGB")
    assert image.size == (48, 64)  # the EXIF rotation swapped width and height
    np.testing.assert_array_equal(np.asarray(image), np.asarray(expected))


@pytest.mark.parity
def test_urls_match_transformers_load_image(server):
    transformers_load_image = pytest.importorskip("transformers.image_utils").load_image
    for path in ("/cats.png", "/rotated.jpg", "/moved"):
        url = server.url(path)
        np.testing.assert_array_equal(np.asarray(load_image(url)), np.asarray(transformers_load_image(url)))


def test_base64_and_data_uri(cats):
    text = base64.b64encode(encoded(cats, "PNG")).decode()
    for source in (text, "data:image/png;base64," + text, base64.encodebytes(encoded(cats, "PNG")).decode()):
        np.testing.assert_array_equal(np.asarray(load_image(source)), np.asarray(cats))
    with pytest.raises(ValueError, match="base64 image data .* not an image file Pillow can read"):
        load_image(base64.b64encode(b"hello, not an image").decode())


@pytest.mark.parametrize(
    "path, error, message",
    [
        ("/missing.png", OSError, r"could not download http://127\.0\.0\.1:\d+/missing\.png: HTTP 404"),
        ("/page.html", ValueError, r"http://127\.0\.0\.1:\d+/page\.html: not an image file Pillow can read"),
    ],
)
def test_bad_urls_are_one_clear_error(server, path, error, message):
    with pytest.raises(error, match=message):
        load_image(server.url(path))


def test_a_stalled_server_times_out(server):
    start = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"stalls\.png: no answer within timeout=0\.5 s"):
        load_image(server.url("/stalls.png"), timeout=0.5)
    assert time.perf_counter() - start < 10


def test_a_refused_connection_and_a_missing_file():
    with pytest.raises(OSError, match="could not download http://127.0.0.1:9/x.png"):
        load_image("http://127.0.0.1:9/x.png", timeout=2)
    with pytest.raises(FileNotFoundError, match="image not found: no-such.png .not a file, an http.s. URL or base64"):
        load_image("no-such.png")


def test_pipeline_and_cli_take_urls(server, make_checkpoint, capsys):
    folder = make_checkpoint("classification")
    classifier = pipeline("image-classification", model=folder, image_processor=_processor(), backend="numpy")
    assert classifier(server.url("/cats.png"), timeout=5) == classifier(str(CATS))
    assert main(["classify", server.url("/moved"), "--model", str(folder), "--json"]) == 0
    assert "LABEL_" in capsys.readouterr().out
    assert main(["classify", server.url("/missing.png"), "--model", str(folder)]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def _processor():
    from mobilevit_np import MobileViTImageProcessor

    return MobileViTImageProcessor(crop_size=64, size=72)


def test_classifying_a_local_file_never_imports_the_http_client():
    """urllib.request brings http.client, email and ssl (1.75-3.25 MB of RSS, ~35 ms): imported only to download."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mobilevit_np import pipeline\n"
        f"print(pipeline('image-classification', model={str(SHAPES_MODEL)!r})({str(CATS)!r})[0]['label'])\n"
        "print(sorted(m for m in ('urllib.request', 'http.client', 'ssl') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == "[]" and out[0]
