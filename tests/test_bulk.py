"""Bulk inference on one machine (mobilevit_np.bulk): inputs, one row per image, shards, resume, kill -9, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from photos import LABELS, write_photos, write_segmenter
from PIL import Image

from mobilevit_np import MobileViTForImageClassification, MobileViTForSemanticSegmentation, MobileViTImageProcessor
from mobilevit_np.bulk import InputError, OutputError, expand_inputs, iter_predictions, predict_files, read_rows
from mobilevit_np.bulk.predictor import prefetched
from mobilevit_np.image_processing import load_image
from mobilevit_np.layers import softmax
from mobilevit_np.postprocess import segment_image
from mobilevit_np.progress import Progress, progress_bar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKEN = (4,)


@pytest.fixture
def photos(tmp_path):
    return write_photos(tmp_path / "photos", 14, broken=BROKEN)


def by_image(rows) -> dict:
    return {row["image"]: row for row in rows}


# ---------------------------------------------------------------- inputs


def test_folders_globs_lists_and_urls_expand_in_a_stable_order(photos, tmp_path):
    folder = str(tmp_path / "photos")
    (tmp_path / "photos" / "notes.txt").write_text("not listed: no image extension")
    assert expand_inputs([folder]) == photos  # recursive, sorted, images only
    assert expand_inputs([f"{folder}/**/*.jpg"]) == sorted(photos)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# a comment\n{photos[1]}\n\n  {photos[0]}  \nhttps://example.com/x.jpg\n")
    assert expand_inputs([f"@{listing}", photos[2]]) == [photos[1], photos[0], "https://example.com/x.jpg", photos[2]]
    assert expand_inputs([f"file://{folder}/sub"]) == [f"file://{p}" for p in photos if "/sub/" in p]
    assert expand_inputs(["/nowhere/cat.jpg"]) == ["/nowhere/cat.jpg"]  # a missing file is a row, not a failed run


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t: f"{t}/photos/*.png", "no files match this pattern"),
        (lambda t: f"@{t}/missing.txt", "cannot read the list file"),
        (lambda t: str(t / "empty"), "is a folder with no image files in it"),
        (lambda t: "nosuchprotocol://bucket/x.jpg", "nosuchprotocol://bucket/x.jpg"),
    ],
)
def test_inputs_the_run_cannot_start_from_are_one_clear_error(make, message, photos, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=message):
        expand_inputs([make(tmp_path)])


def test_memory_urls_are_read_through_fsspec(photos, tiny_classifier):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for i, path in enumerate(photos[:3]):
        fs.pipe(f"/bulk-test/{i}.jpg", open(path, "rb").read())
    fs.pipe("/bulk-test/cut.jpg", open(photos[0], "rb").read()[:300])
    urls = expand_inputs(["memory://bulk-test/"])
    assert urls == [f"memory:///bulk-test/{n}" for n in ("0.jpg", "1.jpg", "2.jpg", "cut.jpg")]
    rows = list(iter_predictions(urls, tiny_classifier, batch_size=2))
    local = list(iter_predictions(photos[:3], tiny_classifier, batch_size=2))
    assert [r["predictions"] for r in rows[:3]] == [r["predictions"] for r in local]
    assert set(rows[3]) == {"image", "error"} and rows[3]["image"] == urls[3]
    assert rows[3]["error"].startswith(f"{urls[3]}: truncated or corrupt image file")
    fs.rm("/bulk-test", recursive=True)


# ---------------------------------------------------------------- rows


def test_every_input_gets_one_row_equal_to_the_model_run_image_by_image(photos, tiny_classifier, tmp_path):
    missing = str(tmp_path / "gone.jpg")
    summary = predict_files([*photos, missing], tiny_classifier, str(tmp_path / "rows.jsonl"), batch_size=4, top_k=5)
    rows = list(read_rows(tmp_path / "rows.jsonl"))
    assert [row["image"] for row in rows] == [*photos, missing]
    assert summary["total"] == 15 and summary["done"] == 13 and summary["failed"] == 2 and summary["skipped"] == 0
    assert rows[BROKEN[0]] == {
        "image": photos[BROKEN[0]],
        "error": f"{photos[BROKEN[0]]}: not an image file Pillow can read",
    }
    assert set(rows[-1]) == {"image", "error"} and rows[-1]["error"].startswith(f"image not found: {missing}")
    model = MobileViTForImageClassification.from_pretrained(tiny_classifier)
    processor = MobileViTImageProcessor.from_pretrained(tiny_classifier)
    for path, row in zip(photos, rows, strict=False):
        if "error" in row:
            continue
        probs = softmax(model(processor(load_image(path))["pixel_values"]).logits[0].astype(np.float64))
        top = np.argsort(-probs, kind="stable")[:5]
        assert [p["index"] for p in row["predictions"]] == top.tolist()
        assert [p["label"] for p in row["predictions"]] == [LABELS[int(i)] for i in top]
        got = np.array([p["probability"] for p in row["predictions"]])
        np.testing.assert_allclose(got, probs[top], rtol=2e-5)  # batch 4 vs batch 1: float32 rounding only


def test_parquet_rows_equal_the_jsonl_rows(photos, tiny_classifier, tmp_path):
    pytest.importorskip("pyarrow")
    predict_files(photos, tiny_classifier, str(tmp_path / "rows.jsonl"), shard_size=5, quiet=True)
    predict_files(photos, tiny_classifier, str(tmp_path / "rows.parquet"), shard_size=5, quiet=True)
    predict_files(photos, tiny_classifier, str(tmp_path / "parts"), shard_size=5, output_format="parquet", quiet=True)
    jsonl = list(read_rows(tmp_path / "rows.jsonl"))
    assert list(read_rows(tmp_path / "rows.parquet")) == jsonl
    assert list(read_rows(tmp_path / "parts")) == jsonl
    assert sorted(os.listdir(tmp_path / "parts")) == [
        "_MANIFEST.json",
        "_SUCCESS",
        *(f"part-00000{i}.parquet" for i in range(3)),
    ]


def test_segment_writes_one_mask_per_image_as_segment_image_computes(photos, tmp_path):
    segmenter = write_segmenter(tmp_path / "segmenter")
    masks = tmp_path / "masks"
    predict_files(photos[:5], segmenter, str(tmp_path / "rows.jsonl"), "segment", masks_dir=str(masks), batch_size=1)
    rows = list(read_rows(tmp_path / "rows.jsonl"))
    model = MobileViTForSemanticSegmentation.from_pretrained(segmenter)
    processor = MobileViTImageProcessor.from_pretrained(segmenter)
    assert "error" in rows[BROKEN[0]] and len(os.listdir(masks)) == 4
    for index, (path, row) in enumerate(zip(photos[:5], rows, strict=True)):
        if index in BROKEN:
            continue
        assert row["mask"] == str(masks / f"{index:08d}-{os.path.basename(path)[:-4]}.png")
        mask = np.asarray(Image.open(row["mask"]))
        expected = segment_image(model, processor, path)
        np.testing.assert_array_equal(mask, expected)
        assert (row["height"], row["width"]) == mask.shape
        assert sum(c["fraction"] for c in row["classes"]) == pytest.approx(1.0)


# ---------------------------------------------------------------- shards and resume


def test_a_finished_run_writes_success_and_rerunning_it_changes_nothing(photos, tiny_classifier, tmp_path):
    out = tmp_path / "results"
    summary = predict_files(photos, tiny_classifier, str(out), shard_size=4, quiet=True)
    parts = sorted(n for n in os.listdir(out) if n.startswith("part-"))
    assert parts == [f"part-00000{i}.jsonl" for i in range(4)]  # 14 rows in shards of 4
    success = json.loads((out / "_SUCCESS").read_text())
    weights = hashlib.sha256(open(os.path.join(tiny_classifier, "model.safetensors"), "rb").read()).hexdigest()
    assert (
        success["summary"] == summary and summary["weights_sha256"] == weights and summary["model"] == tiny_classifier
    )
    assert success["manifest"]["inputs"] == 14 and success["manifest"]["shard_size"] == 4
    stamps = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)}
    again = predict_files(photos, tiny_classifier, str(out), shard_size=4, quiet=True)
    assert again["skipped"] == 14 and again["done"] == 0 and again["failed"] == 0
    assert {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out)} == stamps
    assert len(list(read_rows(out))) == 14


def test_resume_computes_only_the_missing_shards(photos, tiny_classifier, tmp_path):
    out = tmp_path / "results"
    predict_files(photos, tiny_classifier, str(out), shard_size=4, quiet=True)
    before = list(read_rows(out))
    os.remove(out / "_SUCCESS")
    os.remove(out / "part-000002.jsonl")
    (out / ".part-000003.jsonl.tmp-99999").write_text('{"image": "half a row')  # a killed writer's leftover
    loaded = []
    summary = predict_files(
        photos, tiny_classifier, str(out), shard_size=4, quiet=True, load=lambda p: loaded.append(p) or load_image(p)
    )
    assert loaded == photos[8:12] and summary["skipped"] == 10 and summary["done"] + summary["failed"] == 4
    assert list(read_rows(out)) == before and not [n for n in os.listdir(out) if ".tmp-" in n]


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(top_k=3), "top_k: 5, now 3"),
        (dict(shard_size=5), "shard_size: 4, now 5"),
        (dict(inputs=slice(1, None)), "inputs: 14, now 13"),
    ],
)
def test_a_different_run_into_the_same_output_is_refused(change, message, photos, tiny_classifier, tmp_path):
    out = str(tmp_path / "rows.jsonl")
    predict_files(photos, tiny_classifier, out, shard_size=4, quiet=True)
    inputs = photos[change.pop("inputs", slice(None))]
    with pytest.raises(OutputError, match=f"rows.jsonl._SUCCESS is from a different run \\({message}"):
        predict_files(inputs, tiny_classifier, out, **{"shard_size": 4, **change})


def test_an_output_that_holds_something_else_is_left_alone(photos, tiny_classifier, tmp_path):
    mine = tmp_path / "mine.jsonl"
    mine.write_text("my own notes\n")
    with pytest.raises(OutputError, match="mine.jsonl already exists and is not from an unfinished run"):
        predict_files(photos, tiny_classifier, str(mine))
    assert mine.read_text() == "my own notes\n"
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="holds other files \\(thesis.tex"):
        predict_files(photos, tiny_classifier, str(tmp_path / "folder"))


KILLABLE_RUN = """
import sys, time
from mobilevit_np.bulk import predict_files
from mobilevit_np.image_processing import load_image

def slow(path):
    time.sleep(0.05)  # so that the test can kill the run between shards
    return load_image(path)

predict_files(sys.argv[1:-2], sys.argv[-2], sys.argv[-1], shard_size=3, batch_size=2, load=slow, quiet=True)
"""


def test_kill_9_mid_run_then_the_same_command_loses_nothing_and_duplicates_nothing(photos, tiny_classifier, tmp_path):
    out = tmp_path / "rows.jsonl"
    parts = tmp_path / "rows.jsonl.parts"
    run = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLABLE_RUN), *photos, tiny_classifier, str(out)])
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and len([n for n in os.listdir(parts) if n.startswith("part-")] if parts.is_dir() else []) < 2
    ):
        time.sleep(0.02)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    written = sorted(n for n in os.listdir(parts) if n.startswith("part-"))
    assert 2 <= len(written) < 5 and not out.exists(), written  # killed mid-run: some shards, no final file
    summary = predict_files(photos, tiny_classifier, str(out), shard_size=3, batch_size=2, quiet=True)
    assert summary["skipped"] == 3 * len(written) and summary["total"] == 14
    predict_files(photos, tiny_classifier, str(tmp_path / "whole.jsonl"), shard_size=3, batch_size=2, quiet=True)
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()  # the same rows, each once, in order
    assert not parts.exists()


# ---------------------------------------------------------------- reading ahead, progress


def test_reading_ahead_is_bounded_whatever_the_number_of_items():
    from concurrent.futures import ThreadPoolExecutor

    pulled = []

    def items():
        for i in range(1000):
            pulled.append(i)
            yield i

    with ThreadPoolExecutor(2) as pool:
        for consumed, (item, result) in enumerate(prefetched(items(), lambda x: x * 2, pool, depth=5)):
            assert result == item * 2 and item == consumed
            assert len(pulled) - consumed <= 6  # at most depth + 1 items taken ahead of the consumer
            if consumed == 100:
                break


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_bar_shows_rate_and_eta_only_on_a_terminal():
    terminal = FakeTerminal()
    bar = Progress(4, terminal, width=8)
    for _ in range(4):
        bar.update()
    text = terminal.getvalue()
    assert "\r[##......] 1/4 images" in text and "\r[########] 4/4 images" in text and "/s, ETA " in text
    assert text.endswith("\n")
    for stream, total in ((FakeTerminal(), 1), (io.StringIO(), 4)):
        Progress(total, stream).update()
        assert stream.getvalue() == ""


def test_tqdm_bar_on_a_terminal_silent_when_quiet_or_piped():
    pytest.importorskip("tqdm")
    shown, quiet, piped = FakeTerminal(), FakeTerminal(), io.StringIO()
    for stream, be_quiet in ((shown, False), (quiet, True), (piped, False)):
        with progress_bar(10, be_quiet, stream) as bar:
            bar.update(10)
    assert "10/10" in shown.getvalue() and "img/s" in shown.getvalue()
    assert quiet.getvalue() == "" and piped.getvalue() == ""


# ---------------------------------------------------------------- command line


def mobilevit_np(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mobilevit_np", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_cli_classify_a_folder_into_jsonl_then_resume_is_a_no_op(photos, tiny_classifier, tmp_path):
    folder, out = str(tmp_path / "photos"), str(tmp_path / "rows.jsonl")
    first = mobilevit_np(
        "classify", folder, "--model", tiny_classifier, "-o", out, "--batch-size", "3", "--shard-size", "5"
    )
    assert first.returncode == 0, first.stderr  # a broken file is a row, not a failed run
    assert "13 done, 1 failed, 0 skipped of 14" in first.stderr and "images/s" in first.stderr
    assert "\r" not in first.stderr  # stderr is a pipe: no progress bar
    rows = list(read_rows(out))
    assert [r["image"] for r in rows] == photos and by_image(rows)[photos[BROKEN[0]]]["error"].endswith(
        "Pillow can read"
    )
    again = mobilevit_np("classify", folder, "--model", tiny_classifier, "-o", out, "--shard-size", "5", "--quiet")
    assert again.returncode == 0 and again.stderr == "" and list(read_rows(out)) == rows


def test_cli_segment_many_images_needs_masks_dir(photos, tmp_path):
    segmenter = write_segmenter(tmp_path / "segmenter")
    refused = mobilevit_np("segment", photos[0], photos[1], "--model", segmenter)
    assert refused.returncode == 1 and "several images need --masks-dir" in refused.stderr
    masks, out = tmp_path / "masks", tmp_path / "rows.jsonl"
    done = mobilevit_np("segment", *photos[:3], "--model", segmenter, "--masks-dir", str(masks), "-o", str(out), "-q")
    assert done.returncode == 0, done.stderr
    assert [r["mask"] for r in read_rows(out)] == [str(masks / n) for n in sorted(os.listdir(masks))]
    printed = mobilevit_np("segment", photos[4], photos[5], "--model", segmenter, "--masks-dir", str(masks))
    lines = [json.loads(line) for line in printed.stdout.splitlines()]
    assert printed.returncode == 1 and "error" in lines[0] and "mask" in lines[1]  # 1: an image failed


def test_tqdm_is_optional(photos, tiny_classifier, tmp_path):
    """Without tqdm the run works the same (the plain bar); shown by hiding tqdm from a fresh interpreter."""
    code = (
        "import sys; sys.modules['tqdm'] = None\n"
        "from mobilevit_np.bulk import predict_files\n"
        f"print(predict_files({photos!r}, {tiny_classifier!r}, {str(tmp_path / 'r.jsonl')!r})['done'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "13", result.stderr


def test_reader_threads_overlap_decoding_with_the_model(photos, tiny_classifier):
    """Several reader threads are busy at once (decoding is not serialised behind the model)."""
    busy, peak, lock = [0], [0], threading.Lock()

    def load(path):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.02)
        with lock:
            busy[0] -= 1
        return load_image(path)

    rows = list(iter_predictions(photos, tiny_classifier, batch_size=4, readers=3, load=load))
    assert len(rows) == 14 and peak[0] >= 2
