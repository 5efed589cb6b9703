"""Where an image comes from: a local path, an http(s) URL, or base64 text (a data URI or bare base64).

    open_source("cats.png")                          -> "cats.png" (a path Pillow opens)
    open_source("https://example.com/cats.jpg", 5)   -> BytesIO of the downloaded bytes
    open_source("data:image/png;base64,iVBORw0...")  -> BytesIO of the decoded bytes

The rules are transformers' load_image's: a string starting with http:// or https:// is
downloaded (redirects followed, `timeout` seconds per blocking step; None waits forever, as
transformers does); else an existing file is opened; else the text after "data:image/...,"
(or the whole string) is read as base64. Downloads use only the standard library (urllib).
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import socket

URL_PREFIXES = ("http://", "https://")
DATA_URI_PREFIX = "data:image/"
USER_AGENT = "mobilevit-np"


def is_url(source: object) -> bool:
    return isinstance(source, str) and source.startswith(URL_PREFIXES)


def open_source(source: str | os.PathLike, timeout: float | None = None) -> str | io.BytesIO:
    """A path to open, or the image's bytes in memory; FileNotFoundError / OSError / ValueError name the source."""
    if is_url(source):
        return io.BytesIO(download(source, timeout))
    path = os.fspath(source)
    if os.path.exists(path) or not isinstance(source, str):
        return path  # load_image reports a folder, a device or an unreadable file by its path
    data = decode_base64(source)
    if data is None:
        raise FileNotFoundError(f"image not found: {source} (not a file, an http(s) URL or base64 image data)")
    return io.BytesIO(data)


def decode_base64(text: str) -> bytes | None:
    """The bytes of a data URI or bare base64 string, or None when the text is not base64 at all."""
    if text.startswith(DATA_URI_PREFIX):
        text = text.split(",", 1)[-1]
    compact = "".join(text.split())  # base64 text may be wrapped over lines
    if not compact:
        return None
    try:
        return base64.b64decode(compact, validate=True)  # strict: "cats.png" is not base64
    except (binascii.Error, ValueError):
        return None


def download(url: str, timeout: float | None = None) -> bytes:
    """The body of a GET to `url` (redirects followed); one-line OSError on HTTP errors, timeouts, refusals."""
    # Imported here: urllib.request brings http.client, email and ssl (libcrypto), 1.75-3.25 MB of RSS and
    # ~35 ms of import that a process classifying local files never uses.
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as e:
        raise OSError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except TimeoutError:
        raise TimeoutError(f"could not download {url}: no answer within timeout={timeout} s") from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (TimeoutError, socket.timeout)):
            raise TimeoutError(f"could not download {url}: no answer within timeout={timeout} s") from None
        raise OSError(f"could not download {url}: {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:  # the connection dropped mid-body, a bad status line, ...
        raise OSError(f"could not download {url}: {type(e).__name__}: {e}") from None
