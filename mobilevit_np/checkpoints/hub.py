"""Find a checkpoint: a local folder, or a Hugging Face Hub id such as "apple/mobilevit-small".

Hub downloads need the optional `huggingface_hub` package (`pip install "mobilevit-np[hub]"`)
and go to its usual cache (~/.cache/huggingface). Only the files a MobileViT needs are
fetched: config.json, preprocessor_config.json and the safetensors weights, or, when a
repository has none (the apple/* repositories keep only pytorch_model.bin on their main
branch), pytorch_model.bin, which weights.py converts once to model.safetensors beside it
with the allowlist reader in torch_pickle.py (torch is never imported).
"""

from __future__ import annotations

import os
import re

SAFETENSORS_PATTERNS = ["model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors"]
CONFIG_FILES = ["config.json", "preprocessor_config.json"]
PYTORCH_FILE = "pytorch_model.bin"
# owner/name, each made of letters, digits, "-", "_" and "." (the Hub's own rule, simplified)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


class HubError(OSError):
    """A Hub id that could not be turned into a local folder (no huggingface_hub, offline, unknown repo)."""


def is_hub_id(name: str) -> bool:
    """True for "owner/name" strings, which from_pretrained looks up on the Hub when no such folder exists."""
    return bool(HUB_ID.match(name)) and ".." not in name


def resolve_checkpoint(name_or_path: str | os.PathLike, revision: str | None = None, weights: bool = True) -> str:
    """A local folder holding the checkpoint: `name_or_path` itself, or the Hub download of it.

    weights=False downloads config.json alone (enough for `mobilevit-np summary`).
    """
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        return path
    if os.path.isfile(path):  # e.g. .../model.safetensors: the loader wants the folder (config.json is beside it)
        folder = os.path.dirname(os.path.abspath(path))
        raise NotADirectoryError(f"{path} is a file, not a checkpoint folder; pass the folder that holds it: {folder}")
    if os.path.exists(path) or not is_hub_id(path):
        raise FileNotFoundError(f"checkpoint folder not found: {path} (nor is it a Hub id like apple/mobilevit-small)")
    return download(path, revision, weights)


def _offline_hint(repo_id: str) -> str:
    name = repo_id.split("/")[-1]
    return (
        f"to work offline, download the repository's config.json, preprocessor_config.json and model.safetensors "
        f"(or pytorch_model.bin) into a folder and pass that folder instead, e.g. from_pretrained('./{name}') "
        f"or --model ./{name}"
    )


def download(repo_id: str, revision: str | None = None, weights: bool = True) -> str:
    """Fetch what a MobileViT needs from the Hub; returns the snapshot folder in the Hub cache.

    The repository is first asked for its revision with a timeout (HF_HUB_ETAG_TIMEOUT, 10 s
    by default), since huggingface_hub's own listing call waits forever on a stalled server.
    When the Hub cannot be reached (or HF_HUB_OFFLINE=1), the cached snapshot is used, as
    snapshot_download does; without one, the error names the first problem met.
    """
    try:
        import huggingface_hub
        import huggingface_hub.constants
        import huggingface_hub.errors
    except ImportError:
        raise HubError(
            f"{repo_id!r} is not a local folder, and downloading it from the Hugging Face Hub needs the optional "
            f"package huggingface_hub (pip install 'mobilevit-np[hub]'); {_offline_hint(repo_id)}"
        ) from None
    patterns = CONFIG_FILES + SAFETENSORS_PATTERNS if weights else CONFIG_FILES[:1]
    problem = None  # why the Hub could not be reached, when it could not
    try:
        problem = _probe(huggingface_hub, repo_id, revision)
        offline = problem is not None or huggingface_hub.constants.HF_HUB_OFFLINE
        folder = huggingface_hub.snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns, library_name="mobilevit-np", local_files_only=offline
        )
        if weights and not any(os.path.isfile(os.path.join(folder, f)) for f in SAFETENSORS_PATTERNS[:2]):
            # Pin the snapshot's own commit so the .bin lands in the same folder.
            huggingface_hub.hf_hub_download(
                repo_id, PYTORCH_FILE, revision=os.path.basename(folder), local_files_only=offline
            )
    except Exception as e:  # offline, unknown repo, HTTP and cache errors all come here
        reason = _reason(e if problem is None else problem)  # "timed out" says more than "not in the cache"
        raise HubError(
            f"could not get {repo_id!r} from the Hugging Face Hub ({reason}); {_offline_hint(repo_id)}"
        ) from e
    return folder


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else 'no details'}"


def _probe(huggingface_hub, repo_id: str, revision: str | None) -> Exception | None:
    """Ask the Hub for the repository's revision, in time: None when it answers (or HF_HUB_OFFLINE=1), else why not.

    An unknown repository or revision raises (the cache cannot help); a 5xx, a timeout or a
    refused connection are returned, so that the cached snapshot (if any) is used instead.
    """
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return None
    errors = huggingface_hub.errors
    try:
        huggingface_hub.HfApi().repo_info(
            repo_id, revision=revision, timeout=huggingface_hub.constants.HF_HUB_ETAG_TIMEOUT
        )
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError, errors.GatedRepoError):
        raise
    except Exception as e:  # timeouts, refused connections, 5xx
        return e
    return None
