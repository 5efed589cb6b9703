"""Record every named intermediate of a forward pass, for people who want to look inside.

    trace = model.trace(pixel_values)      # or: with tracing() as trace: model(pixel_values)
    print(trace)                           # a table: step, name, shape
    trace["encoder.layer.2.unfold"]        # the array itself

The forward functions in model.py call `record("name", x)` at each step worth seeing.
When no trace is active, `record` looks up one context variable and returns: nothing
is stored or copied. The active trace lives in a `contextvars.ContextVar`, so each
thread (and each asyncio task) traces only its own forward passes.

Names follow the module paths of transformers' MobileViTModel, which are also the
parameter prefixes of the checkpoint (`encoder.layer.2.conv_kxk` is the output of the
layer whose weights are `encoder.layer.2.conv_kxk.*`). Steps without weights get a
plain name: `unfold`, `fold`, `pooler`, `logits`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TraceEntry:
    """One recorded intermediate: its full name and the array (not a copy)."""

    name: str
    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape


class Trace:
    """The intermediates of one forward pass, in execution order.

    Index by position or by name; `output` holds what the model returned.
    """

    def __init__(self) -> None:
        self.entries: list[TraceEntry] = []
        self.output: Any = None
        self._prefixes: list[str] = []  # the open `scope`s, outermost first

    def add(self, name: str, array: np.ndarray) -> None:
        full = ".".join([*self._prefixes, name])
        if any(e.name == full for e in self.entries):
            raise ValueError(f"trace already holds {full!r}: trace one forward pass at a time")
        self.entries.append(TraceEntry(full, array))

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {e.name: e.shape for e in self.entries}

    def __getitem__(self, key: str | int) -> np.ndarray:
        if isinstance(key, int):
            return self.entries[key].array
        for entry in self.entries:
            if entry.name == key:
                return entry.array
        raise KeyError(f"{key!r} was not recorded; recorded names: {', '.join(self.names)}")

    def __contains__(self, name: str) -> bool:
        return name in self.names

    def __iter__(self) -> Iterator[TraceEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def table(self) -> str:
        """A Markdown table of the steps: what `print(trace)` shows and the docs embed."""
        rows = [("step", "name", "shape")] + [
            (str(i), f"`{e.name}`", "(" + ", ".join(map(str, e.shape)) + ")") for i, e in enumerate(self.entries)
        ]
        widths = [max(len(row[c]) for row in rows) for c in range(3)]
        lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<Trace of {len(self)} steps>"


_ACTIVE: ContextVar[Trace | None] = ContextVar("mobilevit_np_trace", default=None)


def tracing_active() -> bool:
    """Whether a trace is recording in this thread (or task)."""
    return _ACTIVE.get() is not None


def record(name: str, x: np.ndarray) -> np.ndarray:
    """Store `x` under `name` in the active trace, if any; always return `x` unchanged."""
    trace = _ACTIVE.get()
    if trace is not None:
        trace.add(name, x)
    return x


@contextmanager
def scope(prefix: str) -> Iterator[None]:
    """Prefix the names recorded inside the block: scope("encoder.layer.2") + "unfold"."""
    trace = _ACTIVE.get()
    if trace is None:
        yield
        return
    trace._prefixes.append(prefix)
    try:
        yield
    finally:
        trace._prefixes.pop()


@contextmanager
def tracing() -> Iterator[Trace]:
    """Record every intermediate of the forward passes run inside the block."""
    trace = Trace()
    token = _ACTIVE.set(trace)
    try:
        yield trace
    finally:
        _ACTIVE.reset(token)


def per_image(forward: Callable[[np.ndarray], Any], images: np.ndarray) -> list[Any]:
    """[forward(images[i : i + 1]) for each image]; with a trace active, each image's steps are
    recorded apart, then into the trace joined along the batch axis, as one batched pass records them
    (every recorded array is image-major along axis 0: (B, ...) or (B * patch_area, ...))."""
    if not tracing_active():
        return [forward(images[i : i + 1]) for i in range(len(images))]
    outputs, traces = [], []
    for i in range(len(images)):
        with tracing() as image_trace:
            outputs.append(forward(images[i : i + 1]))
        traces.append(image_trace)
    for steps in zip(*traces, strict=True):
        record(steps[0].name, np.concatenate([step.array for step in steps]))
    return outputs
