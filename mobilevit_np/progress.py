"""A progress bar on stderr for runs over many images: tqdm when it is installed, else one plain line.

    with progress_bar(total=2000, quiet=False) as bar:
        bar.update(8)  # after each batch

Shown only when the stream is a terminal, there is more than one image and the run is not
--quiet, so logs and pipes stay clean. Both forms show images done, images/s and the ETA.
"""

from __future__ import annotations

import sys
import time
from typing import Protocol, TextIO


class Bar(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


class Progress:
    """The plain bar: `[#####.....] 120/2000 images, 41.3/s, ETA 0:45`, redrawn in place."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 30) -> None:
        self.total, self.done, self.width = total, 0, width
        self.stream = sys.stderr if stream is None else stream
        self.enabled = total > 1 and self.stream.isatty()
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        filled = self.width * self.done // max(self.total, 1)
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        eta = int((self.total - self.done) / rate) if rate > 0 else 0
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} images, {rate:.1f}/s, ETA {eta // 60}:{eta % 60:02d}")
        if self.done >= self.total:
            self.stream.write("\n")
        self.stream.flush()

    def close(self) -> None:
        pass

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(total: int, quiet: bool = False, stream: TextIO | None = None) -> Bar:
    """tqdm's bar if tqdm is installed (the `bulk` extra), else Progress; silent when quiet or not a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        from tqdm import tqdm
    except ImportError:
        return Progress(0 if quiet else total, stream)
    disable = quiet or total <= 1 or not stream.isatty()
    return tqdm(total=total, file=stream, unit="img", disable=disable, dynamic_ncols=True, smoothing=0.1)
