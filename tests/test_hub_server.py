"""The Hub path for real: huggingface_hub's own client against a Hub-shaped server on 127.0.0.1 (hub_server.py).

A repository laid out like apple/mobilevit-small's main branch (config.json,
preprocessor_config.json, only pytorch_model.bin for weights, and a README the download must
skip) is fetched by the README's first command in a subprocess with HF_ENDPOINT pointing at
the server and a fresh HF_HOME; then offline; then against a Hub that fails in each way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hub_server import serve_hub
from test_torch_pickle import fake_bin

from mobilevit_np import MobileViTImageProcessor
from mobilevit_np.presets import tiny_config
from mobilevit_np.random_weights import random_state_dict

pytest.importorskip("huggingface_hub")

ROOT = Path(__file__).parent.parent
REPO = "apple/mobilevit-small"


def readme_first_command() -> str:
    """The part of the README's first command that runs the model (after the pip install)."""
    block = re.search(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S).group(1)
    return block.split("&&", 1)[1].strip()


@pytest.fixture
def repository(tmp_path) -> dict[str, bytes]:
    config = tiny_config(num_labels=5)
    config.extra["architectures"] = ["MobileViTForImageClassification"]
    folder = tmp_path / "repo"
    config.save_pretrained(folder)
    MobileViTImageProcessor(size=72, crop_size=64).save_pretrained(folder)
    fake_bin(folder / "pytorch_model.bin", random_state_dict(config, "classification"))
    (folder / "README.md").write_text("---\nlicense: other\n---\n# a MobileViT\n")
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def run(command: str, hub, hf_home: Path, **extra_env) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],  # this tree's mobilevit-np
        **extra_env,
    }
    env.pop("HF_HUB_OFFLINE", None) if "HF_HUB_OFFLINE" not in extra_env else None
    return subprocess.run(command, shell=True, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def assert_one_error_line(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mobilevit-np: error: could not get"), result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def test_readme_first_command_downloads_converts_once_then_works_offline(repository, tmp_path):
    command = readme_first_command()
    assert command == f"mobilevit-np classify examples/images/cats.png --model {REPO}"
    with serve_hub({REPO: repository}) as hub:
        first = run(command, hub, tmp_path / "hf")
        assert first.returncode == 0, first.stderr
        assert "note: converted" in first.stderr  # pytorch_model.bin -> model.safetensors, once
        assert sorted(hub.downloads) == sorted(
            [f"{REPO}/config.json", f"{REPO}/preprocessor_config.json", next(p for p in hub.downloads if "blobs" in p)]
        )  # the README was not fetched; the .bin came from the CDN
        requests = len(hub.api.requests)
        again = run(command, hub, tmp_path / "hf", HF_HUB_OFFLINE="1")
        assert again.returncode == 0, again.stderr
        assert len(hub.api.requests) == requests  # offline: the server was not asked
        assert "converted" not in again.stderr
        assert again.stdout == first.stdout
    unreachable = run(command, hub, tmp_path / "hf")  # the server is gone: the cached snapshot is used
    assert unreachable.returncode == 0, unreachable.stderr
    assert unreachable.stdout == first.stdout
    # the same answer as from a local folder holding the repository's files
    folder = tmp_path / "local"
    folder.mkdir()
    for name, data in repository.items():
        (folder / name).write_bytes(data)
    local = run(command.replace(REPO, str(folder)), hub, tmp_path / "hf2")
    assert local.stdout.replace(str(folder), REPO) == first.stdout
    assert "LABEL_" in first.stdout


def test_summary_with_a_hub_id_downloads_only_config_json(repository, tmp_path):
    with serve_hub({REPO: repository}) as hub:
        result = run(f"mobilevit-np summary --model {REPO}", hub, tmp_path / "hf")
    assert result.returncode == 0, result.stderr
    assert hub.downloads == [f"{REPO}/config.json"]
    assert "classification" in result.stdout


@pytest.mark.parametrize(
    "mode, repo, pattern, extra_env",
    [
        ("ok", "apple/no-such-model", r"RepositoryNotFoundError", {}),
        ("500", REPO, r"HfHubHTTPError: .*500", {}),
        ("truncate", REPO, r"could not get .*(Consistency check failed|size|Incomplete|RemoteProtocol)", {}),
        ("stall", REPO, r"(Timeout|timed out)", {"HF_HUB_ETAG_TIMEOUT": "1", "HF_HUB_DOWNLOAD_TIMEOUT": "1"}),
    ],
)
def test_a_failing_hub_is_one_clear_line(repository, tmp_path, mode, repo, pattern, extra_env):
    with serve_hub({REPO: repository}) as hub:
        hub.mode = mode
        start = time.perf_counter()
        result = run(
            f"mobilevit-np classify examples/images/cats.png --model {repo}", hub, tmp_path / "hf", **extra_env
        )
        elapsed = time.perf_counter() - start
    assert_one_error_line(result, pattern)
    assert elapsed < 120
