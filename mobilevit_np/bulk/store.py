"""Where a bulk run's rows go: shard files with atomic renames, a manifest for resuming, `_SUCCESS` at the end.

    results/                      --output results/  (a folder)
        _MANIFEST.json            what run this is: task, model, inputs' count and sha256, shard size
        part-000000.jsonl         rows of inputs 0..255, written whole (tmp file + rename) or not at all
        part-000001.jsonl
        _SUCCESS                  the summary, once every shard is there

    results.jsonl                 --output results.jsonl (or .parquet): one file, made at the end
    results.jsonl._SUCCESS        from the shards in results.jsonl.parts/, which then go

A restarted run (same command) keeps the shards already written and computes only the others,
so an interrupted run (Ctrl-C, kill -9) loses at most the shards in flight and never writes a
row twice. A different run (other inputs, model or options) into the same output is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mobilevit_np.bulk.predictor import Item, Row

FORMATS = ("jsonl", "parquet")
MANIFEST, SUCCESS = "_MANIFEST.json", "_SUCCESS"
PART = re.compile(r"part-(\d{6})\.(jsonl|parquet)$")


class OutputError(ValueError):
    """An --output that holds something else (another run, other files) or cannot be written."""


@dataclass(frozen=True)
class Shard:
    """Inputs start..stop-1 of the path list; `id` names its file."""

    id: int
    start: int
    stop: int

    def items(self, paths: list[str]) -> list[Item]:
        """(position, path) of each input in this shard."""
        return [(i, paths[i]) for i in range(self.start, self.stop)]


def plan_shards(count: int, size: int) -> list[Shard]:
    if size < 1:
        raise ValueError(f"shard size must be at least 1, got {size}")
    return [Shard(i, start, min(start + size, count)) for i, start in enumerate(range(0, count, size))]


def _atomic_write(path: str, write) -> None:
    """write(file) into a temporary name beside `path`, fsync, rename: readers see all of it or nothing."""
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _write_json(path: str, data: dict) -> None:
    _atomic_write(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def _read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise OutputError("Parquet output needs pyarrow (pip install 'mobilevit-np[parquet]')") from None
    return pa, pq


def parquet_schema(task: str):
    pa, _ = _pyarrow()
    if task == "classify":
        item = pa.struct(
            [("rank", pa.int32()), ("index", pa.int64()), ("label", pa.string()), ("probability", pa.float64())]
        )
        fields = [("image", pa.string()), ("predictions", pa.list_(item)), ("error", pa.string())]
    else:
        item = pa.struct([("index", pa.int64()), ("label", pa.string()), ("fraction", pa.float64())])
        fields = [("image", pa.string()), ("mask", pa.string()), ("width", pa.int32()), ("height", pa.int32())]
        fields += [("classes", pa.list_(item)), ("error", pa.string())]
    return pa.schema(fields)


def output_format(output: str, fmt: str | None) -> str:
    """The format an --output asks for: its extension, else `fmt` (a folder of shards; jsonl by default)."""
    ext = os.path.splitext(output)[1].lower().lstrip(".")
    if ext in FORMATS:
        if fmt not in (None, ext):
            raise OutputError(f"--output {output} ends in .{ext} but the format asked for is {fmt}")
        return ext
    if fmt not in (None, *FORMATS):
        raise OutputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt or "jsonl"


class ShardStore:
    """The shards of one run in `output` (a folder, or a .jsonl/.parquet file assembled at the end)."""

    def __init__(self, output: str, manifest: dict[str, Any], fmt: str | None = None) -> None:
        self.output = os.fspath(output)
        self.format = output_format(self.output, fmt)
        self.single_file = os.path.splitext(self.output)[1].lower().lstrip(".") in FORMATS
        self.parts = f"{self.output}.parts" if self.single_file else self.output
        self.success = f"{self.output}.{SUCCESS}" if self.single_file else os.path.join(self.output, SUCCESS)
        self.manifest = {**manifest, "format": self.format}

    # ---------------------------------------------------------------- starting and resuming

    def finished_summary(self) -> dict | None:
        """The summary of this very run if it already finished, else None; another finished run is an error."""
        if not os.path.isfile(self.success):
            return None
        done = _read_json(self.success)
        self._check_same_run(done.get("manifest", {}), self.success)
        return done["summary"]

    def open(self) -> set[int]:
        """Make the output ready and return the ids of the shards already written."""
        if self.single_file and os.path.isdir(self.output):
            raise OutputError(f"--output {self.output} is a folder; a name ending in .{self.format} means one file")
        if self.single_file and os.path.exists(self.output) and not os.path.isdir(self.parts):
            raise OutputError(f"{self.output} already exists and is not from an unfinished run; choose a new --output")
        if os.path.exists(self.parts) and not os.path.isdir(self.parts):
            raise OutputError(f"--output {self.parts} exists and is not a folder")
        os.makedirs(self.parts, exist_ok=True)
        manifest_path = os.path.join(self.parts, MANIFEST)
        if os.path.isfile(manifest_path):
            self._check_same_run(_read_json(manifest_path), manifest_path)
        else:
            strangers = [n for n in os.listdir(self.parts) if not n.startswith(".")]
            if strangers:
                raise OutputError(
                    f"--output {self.parts} holds other files ({strangers[0]}, ...); use a new or empty folder"
                )
            _write_json(manifest_path, self.manifest)
        for name in os.listdir(self.parts):  # a killed run's half-written shard: never renamed, so never counted
            if name.startswith(".part-") and ".tmp-" in name:
                os.remove(os.path.join(self.parts, name))
        found = (PART.match(name) for name in os.listdir(self.parts))
        return {int(m.group(1)) for m in found if m and m.group(2) == self.format}

    def _check_same_run(self, recorded: dict, where: str) -> None:
        for key, value in self.manifest.items():
            if recorded.get(key) != value:
                raise OutputError(
                    f"{where} is from a different run ({key}: {recorded.get(key)!r}, now {value!r}); "
                    "use a new --output, or delete it to start over"
                )

    # ---------------------------------------------------------------- writing

    def part_path(self, shard_id: int) -> str:
        return os.path.join(self.parts, f"part-{shard_id:06d}.{self.format}")

    def write(self, shard_id: int, rows: list[Row]) -> None:
        if self.format == "jsonl":
            data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
            _atomic_write(self.part_path(shard_id), lambda f: f.write(data))
            return
        pa, pq = _pyarrow()
        table = pa.Table.from_pylist(rows, schema=parquet_schema(self.manifest["task"]))
        _atomic_write(self.part_path(shard_id), lambda f: pq.write_table(table, f))

    def finish(self, shard_ids: list[int], summary: dict) -> None:
        """All shards are written: assemble the single file (if asked for one) and write _SUCCESS."""
        record = {"summary": summary, "manifest": self.manifest}
        if not self.single_file:
            _write_json(self.success, record)
            return
        paths = [self.part_path(i) for i in shard_ids]
        _atomic_write(self.output, lambda f: self._concatenate(paths, f))
        _write_json(self.success, record)
        shutil.rmtree(self.parts)

    def _concatenate(self, paths: list[str], out) -> None:
        if self.format == "jsonl":
            for path in paths:
                with open(path, "rb") as f:
                    shutil.copyfileobj(f, out)
            return
        _, pq = _pyarrow()
        with pq.ParquetWriter(out, parquet_schema(self.manifest["task"])) as writer:
            for path in paths:
                writer.write_table(pq.read_table(path))


def read_rows(output: str) -> Iterator[Row]:
    """Every row of a finished run's --output (a .jsonl/.parquet file or a folder of shards), in input order."""
    output = os.fspath(output)
    paths = (
        [output]
        if os.path.isfile(output)
        else sorted(os.path.join(output, n) for n in os.listdir(output) if PART.match(n))
    )
    for path in paths:
        if path.endswith(".jsonl"):
            with open(path, encoding="utf-8") as f:
                yield from (json.loads(line) for line in f)
        else:
            _, pq = _pyarrow()
            for row in pq.read_table(path).to_pylist():
                yield {key: value for key, value in row.items() if value is not None}
