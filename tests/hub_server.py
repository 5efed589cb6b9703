"""A Hub-shaped HTTP server on 127.0.0.1: what huggingface_hub's snapshot_download and hf_hub_download call.

    with serve_hub({"apple/mobilevit-small": {"config.json": b"...", "pytorch_model.bin": b"..."}}) as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf")}

The endpoints (read from huggingface_hub 2.4's source):
- GET /api/models/{repo}/revision/{rev} (and /api/models/{repo}): {"id", "sha", "siblings"} (HfApi.repo_info);
- GET /api/models/{repo}/tree/{rev}?recursive=...: the file list, with each file's git blob id
  and, for large (LFS) files, their sha256 (HfApi.list_repo_tree);
- HEAD and GET /{repo}/resolve/{rev}/{file}: small files answer directly with ETag (the git
  blob id) and X-Repo-Commit; LFS files answer 302 to a second server standing in for the
  CDN (another origin, so the client stops at the redirect and reads X-Linked-Etag (the
  sha256), X-Linked-Size and Location from it, as on the real Hub);
- an unknown repository is a 404 with X-Error-Code: RepoNotFound, a missing file a 404 with
  X-Error-Code: EntryNotFound.
`hub.mode` switches the whole Hub to failing: "500" (every request), "stall" (no answer),
"truncate" (the CDN sends half of each file and closes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

from http_server import Server, stall

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".bin", ".safetensors")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Hub:
    def __init__(self, repos: dict[str, dict[str, bytes]]) -> None:
        self.repos = repos
        self.mode = "ok"
        self.downloads: list[str] = []  # "repo/file" of every file body sent (resolve or CDN)
        self.api = Server({"*": self._api})
        self.cdn = Server({"*": self._cdn})
        self.blobs = {hashlib.sha256(d).hexdigest(): d for files in repos.values() for d in files.values()}

    @property
    def endpoint(self) -> str:
        return self.api.url()

    # ------------------------------------------------------------ helpers
    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]) -> None:
        handler.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            handler.send_header(key, value)
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def _json(self, handler: BaseHTTPRequestHandler, data, status: int = 200, headers: dict | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(handler, status, body, {"Content-Type": "application/json", **(headers or {})})

    def _failing(self, handler: BaseHTTPRequestHandler) -> bool:
        if self.mode == "500":
            self._json(handler, {"error": "Internal Error"}, 500)
            return True
        if self.mode == "stall":
            stall(handler)
            return True
        return False

    # ------------------------------------------------------------ routes
    def _api(self, handler: BaseHTTPRequestHandler) -> None:
        if self._failing(handler):
            return
        path = handler.path.split("?", 1)[0]
        if path.startswith("/api/models/"):
            owner_name = "/".join(path[len("/api/models/") :].split("/")[:2])
            rest = path[len("/api/models/") + len(owner_name) :]
            return self._api_model(handler, owner_name, rest)
        owner, name, kind, revision, *file = path.lstrip("/").split("/")
        if kind != "resolve" or not file:
            return self._json(handler, {"error": "not found"}, 404)
        return self._resolve(handler, f"{owner}/{name}", revision, "/".join(file))

    def _not_found(self, handler: BaseHTTPRequestHandler, repo: str) -> None:
        self._json(handler, {"error": f"Repository {repo} not found"}, 404, {"X-Error-Code": "RepoNotFound"})

    def _api_model(self, handler: BaseHTTPRequestHandler, repo: str, rest: str) -> None:
        if repo not in self.repos:
            return self._not_found(handler, repo)
        files = self.repos[repo]
        if rest in ("", "/") or rest.startswith("/revision/"):
            siblings = [{"rfilename": f} for f in sorted(files)]
            return self._json(handler, {"id": repo, "modelId": repo, "sha": COMMIT, "siblings": siblings})
        if rest.startswith("/tree/"):
            return self._json(handler, [self._tree_entry(f, d) for f, d in sorted(files.items())])
        return self._json(handler, {"error": "not found"}, 404)

    def _tree_entry(self, path: str, data: bytes) -> dict:
        entry = {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(data)}
        if path.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def _resolve(self, handler: BaseHTTPRequestHandler, repo: str, revision: str, file: str) -> None:
        if repo not in self.repos:
            return self._not_found(handler, repo)
        if revision not in ("main", COMMIT):
            return self._json(handler, {"error": "no revision"}, 404, {"X-Error-Code": "RevisionNotFound"})
        data = self.repos[repo].get(file)
        if data is None:
            return self._json(handler, {"error": "Entry not found"}, 404, {"X-Error-Code": "EntryNotFound"})
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{git_blob_id(data)}"'}
        if file.endswith(LFS_SUFFIXES):
            sha = hashlib.sha256(data).hexdigest()
            headers.update(
                {
                    "Location": self.cdn.url(f"/blobs/{sha}"),
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                }
            )
            return self._send(handler, 302, b"", headers)
        if handler.command == "GET":
            self.downloads.append(f"{repo}/{file}")
        return self._send(handler, 200, data, {"Content-Type": "application/octet-stream", **headers})

    def _cdn(self, handler: BaseHTTPRequestHandler) -> None:
        data = self.blobs.get(handler.path.split("?", 1)[0].rsplit("/", 1)[-1])
        if data is None:
            return self._json(handler, {"error": "no blob"}, 404)
        if handler.command == "GET":
            self.downloads.append(handler.path)
        if self.mode == "truncate":  # promise the whole file, send half, hang up
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.close_connection = True
            return
        self._send(handler, 200, data, {"Content-Type": "application/octet-stream"})


@contextlib.contextmanager
def serve_hub(repos: dict[str, dict[str, bytes]]) -> Iterator[Hub]:
    hub = Hub(repos)
    for server in (hub.api, hub.cdn):
        server.thread.start()
    try:
        yield hub
    finally:
        hub.api.close()
        hub.cdn.close()
