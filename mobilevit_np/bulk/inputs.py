"""What a bulk run reads: folders, globs, @list files and fsspec URLs, expanded into one ordered path list.

    expand_inputs(["photos/", "extra/*.jpg", "@more.txt", "memory://bucket/"])

- a folder: every image file below it (recursive), by Pillow's known extensions, sorted;
- a glob (`*`, `?`, `[`; `**` recurses): its matches, sorted;
- `@list.txt`: one path or URL per line, taken as written (blank lines and `#` comments skipped);
- a URL `scheme://...` other than http(s): a file, a folder or a glob on that fsspec filesystem
  (`file://`, `memory://`; `s3://` etc. once the filesystem package is installed);
- anything else (a file, an http(s) URL, a missing path) as given: a missing file becomes
  that file's error row, not a failed run.

The order is deterministic, so the same command names the same shards when a run resumes.
Only the path strings are held in memory; images are read later, a batch at a time.
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Iterable, Iterator

from PIL import Image

from mobilevit_np.image_processing import decode_image, load_image

IMAGE_SUFFIXES = frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)
WEB_SCHEMES = ("http://", "https://")


class InputError(ValueError):
    """An input the run cannot start from (a list file or folder that does not exist, a glob that matches nothing)."""


def has_scheme(path: str) -> bool:
    return "://" in path


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _walk(folder: str) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()  # os.walk visits in the order of `dirs`: sorted, so the path list is reproducible
        yield from (os.path.join(root, f) for f in sorted(files) if _is_image_name(f))


def _filesystem(url: str):
    try:
        import fsspec
    except ImportError:
        raise InputError(f"{url}: reading URLs needs fsspec (pip install 'mobilevit-np[bulk]')") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # an unknown protocol, or its filesystem package is missing
        raise InputError(f"{url}: {e}") from None


def _expand_url(url: str) -> list[str]:
    fs, root = _filesystem(url)
    if glob.has_magic(root):
        found = fs.glob(root)
    elif fs.isdir(root):
        found = [p for p in fs.find(root) if _is_image_name(p)]
    else:
        return [url]
    if not found:
        raise InputError(f"{url}: no images there")
    return [fs.unstrip_protocol(p) for p in sorted(found)]


def _read_list(list_file: str) -> list[str]:
    try:
        with open(list_file, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except OSError as e:
        raise InputError(f"@{list_file}: cannot read the list file ({e.strerror or e})") from None
    return [line for line in lines if line and not line.startswith("#")]


def _expand_one(item: str) -> list[str]:
    if item.startswith("@"):
        return _read_list(item[1:])
    if has_scheme(item) and not item.startswith(WEB_SCHEMES):
        return _expand_url(item)
    if os.path.isdir(item):
        found = list(_walk(item))
        if not found:
            some = ", ".join(sorted(IMAGE_SUFFIXES)[:6])
            raise InputError(f"{item} is a folder with no image files in it (looked for {some}, ...)")
        return found
    if glob.has_magic(item) and not os.path.exists(item):
        found = sorted(glob.glob(item, recursive=True))
        if not found:
            raise InputError(f"{item}: no files match this pattern")
        return found
    return [item]


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Every image the run covers, in order (duplicates kept: each input gets its own row)."""
    return [path for item in inputs for path in _expand_one(os.fspath(item))]


def open_image(path: str) -> Image.Image:
    """A path or URL -> upright RGB PIL image (fsspec for URLs); errors are one line naming `path`."""
    if not has_scheme(path) or path.startswith(WEB_SCHEMES):
        return load_image(path)
    fs, root = _filesystem(path)
    try:
        with fs.open(root, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    if not data:
        raise ValueError(f"{path}: empty (0 bytes), not an image")
    return decode_image(io.BytesIO(data), path)
