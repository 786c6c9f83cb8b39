"""A loopback stand-in for the weight servers, so downloads run their real code path offline.

Two functions (used by the zoo tests and the pipeline's end-to-end test):

``make_weight_files(rows, root) -> dict[model, Path]``
    Builds each row's architecture with random weights (``torch.manual_seed(0)``) and saves them
    in the format its source serves:

    * torch.hub-style rows (torchvision, and timm rows with a ``url``) -> ``torch.save(state_dict)``
      as ``{root}/models/{stem}-{sha8}.pth``, where ``stem`` is the real file's name without its
      hash and ``sha8`` the first 8 hex digits of *this* file's sha256, so the torch.hub hash
      check in ``htsr.zoo`` runs unmodified. Point a row at it with :func:`served_table`.
    * timm hub rows -> ``safetensors.torch.save_file`` as
      ``{root}/hf/{org}/{repo}/model.safetensors`` (the repository timm names, e.g.
      ``timm/mobilenetv2_050.lamb_in1k``).
    * hf rows -> a small random language model of the row's ``model_id`` (a hub ``model_type``:
      gpt2, gpt_neox, opt, bloom; ``tests/lm_states.py``) whose width is the ``hidden N`` of
      its ``note`` (default 64), seeded by its revision, saved as the hub serves the row's
      ``filename`` (one file, or an index and two shards) beside ``config.json``, in the
      folder ``{root}/hf/{org}/{repo}/{revision}/`` (one folder per repository revision).
    * pytorchcv rows -> today's ``pytorchcv`` architecture (random init), ``torch.save`` as the
      store's ``{name}-{error}-{sha1[:8]}.pth`` (``error`` from the row's URL, ``sha1`` of *this*
      file), zipped like the store's release assets, as
      ``{root}/releases/download/{tag}/{name}-{error}-{sha1[:8]}.pth.zip``. The ``.pth`` is
      saved in torch's legacy (pre-1.6) format when the row's ``note`` says ``legacy``, like
      the store's 2018 files.

``serve_zoo(files, *, faults=None)`` (context manager)
    Serves those files on ``http://127.0.0.1:<ephemeral port>`` (a ``ThreadingHTTPServer`` in a
    thread, stopped when the context exits) and yields the base URL, to be passed both as
    ``torchvision_base_url`` and as ``hf_endpoint``:

    * ``GET /{name}.pth``: torch.hub-style files;
    * ``GET /releases/download/{tag}/{file}.pth.zip``: OSMR store zips (pass the base URL as
      ``pytorchcv_base_url``, it replaces ``https://github.com/osmr/imgclsmob``);
    * ``GET /api/models/{org}/{repo}[/revision/{rev}]``: the hub's model-info JSON, with each
      file's LFS ``sha256`` and ``size`` (weights files) or git ``blobId`` and ``size`` (small
      files: ``config.json``, shard indexes) and the commit ``sha``;
    * ``HEAD|GET /{org}/{repo}/resolve/{rev}/{file}``: the file, with the headers
      ``huggingface_hub`` reads (``X-Repo-Commit``, ``ETag``/``X-Linked-Etag`` = sha256 or the
      blob id, ``X-Linked-Size``, ``Content-Length``) and no Xet headers, so it downloads over
      plain HTTP. ``rev`` is ``main`` (timm repositories), a revision folder's name (hf
      repositories: ``step143000``, ``main``) or the revision's commit (a fake hash).

    ``faults`` maps a model key (or a request path) to a fault; the dict is read on every
    request, so a test can change it while the server runs (e.g. ``faults.clear()`` to "fix" the
    server):

    * ``"corrupt"``: the file's bytes arrive with one byte flipped (headers and model info
      still describe the good file);
    * ``"error_once"``: the first GET of the file answers HTTP 500, later ones succeed;
    * ``"error"``: every request for the model answers HTTP 500.

    The yielded value is a ``str`` (the base URL) with two extra attributes: ``requests``, the
    list of ``(method, path, status, model)`` served so far, and ``downloads(model)``, how many
    times the model's file body was sent (GET answered 200).

``served_table(rows, files)`` returns a copy of ``rows`` whose torch.hub-style rows point
(``url`` column, a bare file name) at the served files, and whose pytorchcv rows carry the served
zip's store URL and sha1, so a model table written from it works for any port.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pandas as pd

from htsr.weights import osmr, zoo

__all__ = ["make_weight_files", "serve_zoo", "served_table"]

_HASH_AND_SUFFIX = re.compile(r"(-[a-f0-9]+)?\.[A-Za-z]+$")


def _rows(rows: pd.DataFrame | list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    if isinstance(rows, pd.DataFrame):
        return [r for _, r in rows.iterrows()]
    return list(rows)


def _hf_folder(row: Mapping[str, Any], root: Path) -> Path:
    """A random language model of the row's architecture, saved as the hub serves it."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from lm_states import lm_state, save_hub_folder

    revision = zoo._cell(row, "revision") or "main"
    folder = root / "hf" / zoo._cell(row, "repo") / revision
    if not folder.is_dir():
        match = re.search(r"hidden (\d+)", zoo._cell(row, "note"))
        seed = int(hashlib.sha1(f"{row['repo']}@{revision}".encode()).hexdigest()[:8], 16)
        state, config = lm_state(str(row["model_id"]), int(match[1]) if match else 64, seed=seed)
        save_hub_folder(folder, state, config, zoo._cell(row, "filename"))
    return folder


def _is_hub_row(row: Mapping[str, Any]) -> bool:
    return row["source"] == "timm" and not zoo._cell(row, "url")


def _store_zip(row: Mapping[str, Any], state: Mapping[str, Any], root: Path) -> Path:
    """``state`` saved and zipped as the OSMR store names it, for the row's release tag."""
    import zipfile

    import torch

    store = osmr.parse_store_url(zoo._cell(row, "url"))
    folder = root / "releases" / "download" / str(row["weights_tag"])
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{row['model_id']}.tmp"
    legacy = "legacy" in zoo._cell(row, "note")
    torch.save(dict(state), tmp, _use_new_zipfile_serialization=not legacy)
    sha1 = hashlib.sha1(tmp.read_bytes()).hexdigest()
    member = osmr.store_file_name(store.name, store.error, sha1)
    path = folder / f"{member}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(tmp, member)
    tmp.unlink()
    return path


def make_weight_files(
    rows: pd.DataFrame | list[Mapping[str, Any]], root: str | Path
) -> dict[str, Path]:
    """Random-init weight files for ``rows`` under ``root``, in each source's format."""
    import safetensors.torch
    import torch

    root = Path(root)
    files: dict[str, Path] = {}
    for row in _rows(rows):
        if row["source"] == "hf":
            files[str(row["model"])] = _hf_folder(row, root)
            continue
        torch.manual_seed(0)
        state = {k: v.contiguous() for k, v in zoo.build_model(row).state_dict().items()}
        if row["source"] == "pytorchcv":
            path = _store_zip(row, state, root)
        elif _is_hub_row(row):
            repo_id = zoo.weights_source(row).repo_id
            path = root / "hf" / repo_id / zoo.HF_WEIGHTS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            safetensors.torch.save_file(state, path)
        else:
            real = zoo.weights_url(row).rsplit("/", 1)[-1]  # e.g. shufflenetv2_x0.5-f707e7126e.pth
            stem = _HASH_AND_SUFFIX.sub("", real)
            tmp = root / "models" / f"{row['model']}.tmp"
            tmp.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, tmp)
            sha = hashlib.sha256(tmp.read_bytes()).hexdigest()
            path = tmp.with_name(f"{stem}-{sha[:8]}.pth")
            tmp.replace(path)
        files[str(row["model"])] = path
    return files


def served_table(
    rows: pd.DataFrame | list[Mapping[str, Any]], files: Mapping[str, Path]
) -> pd.DataFrame:
    """Copy of ``rows`` with torch.hub-style rows' ``url`` set to their served file's name (hf
    rows are served under their own repository and revision: unchanged)."""
    table = pd.DataFrame([dict(r) for r in _rows(rows)])
    if "url" not in table.columns:
        table["url"] = ""
    if "sha1" not in table.columns:
        table["sha1"] = ""
    for i, row in table.iterrows():
        path = files[str(row["model"])]
        if path.is_dir():
            continue
        if path.parent.name == "models":
            table.at[i, "url"] = path.name
        elif path.name.endswith(".pth.zip"):
            store = osmr.parse_store_url(
                f"{osmr.IMGCLSMOB_REPO_URL}/releases/download/x/{path.name}"
            )
            with zipfile.ZipFile(path) as zf:
                sha1 = hashlib.sha1(zf.read(store.member)).hexdigest()
            table.at[i, "sha1"] = sha1
            table.at[i, "url"] = osmr.store_url(store.name, store.error, sha1, row["weights_tag"])
    return table


class _Zoo:
    """What the server serves, by URL path, plus the request log."""

    def __init__(self, files: Mapping[str, Path], faults: dict[str, str]) -> None:
        self.faults = faults
        self.requests: list[tuple[str, str, int, str]] = []
        self.lock = threading.Lock()
        self.plain: dict[str, tuple[str, Path]] = {}  # file name -> (model, path)
        self.releases: dict[str, tuple[str, Path]] = {}  # releases/download/tag/file -> ...
        self.repos: dict[str, dict[str, Any]] = {}  # repo id -> model, path, sha256, commit
        # hf repo id -> {revision or commit -> {"model", "commit", "dir"}}
        self.snapshots: dict[str, dict[str, dict[str, Any]]] = {}
        self.errored: set[str] = set()
        for model, path in files.items():
            path = Path(path)
            if path.is_dir():
                repo_id, rev = f"{path.parent.parent.name}/{path.parent.name}", path.name
                revs = self.snapshots.setdefault(repo_id, {})
                if rev not in revs:
                    commit = hashlib.sha1(f"{repo_id}@{rev}".encode()).hexdigest()
                    revs[rev] = revs[commit] = {"model": model, "commit": commit, "dir": path}
            elif path.parent.name == "models":
                self.plain[path.name] = (model, path)
            elif path.name.endswith(".pth.zip"):
                self.releases[f"releases/download/{path.parent.name}/{path.name}"] = (model, path)
            else:
                repo_id = f"{path.parent.parent.name}/{path.parent.name}"
                sha = hashlib.sha256(path.read_bytes()).hexdigest()
                commit = hashlib.sha1(f"{repo_id}:{sha}".encode()).hexdigest()
                self.repos[repo_id] = {"model": model, "path": path, "sha": sha, "commit": commit}

    def fault(self, model: str, path: str) -> str:
        return self.faults.get(path) or self.faults.get(model) or ""

    def downloads(self, model: str) -> int:
        with self.lock:
            return sum(
                1
                for m, p, s, mod in self.requests
                if mod == model and m == "GET" and s == 200 and not p.startswith("/api/")
            )


class _ServedZoo(str):
    """The base URL, plus the server's request log."""

    requests: list[tuple[str, str, int, str]]
    _zoo: _Zoo

    def downloads(self, model: str) -> int:
        return self._zoo.downloads(model)


def _handler(state: _Zoo) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            pass

        def _send(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _record(self, status: int, model: str) -> None:
            with state.lock:
                state.requests.append((self.command, self.path, status, model))

        def _file(self, model: str, path: Path, extra: dict[str, str]) -> None:
            fault = state.fault(model, self.path)
            if fault == "error_once" and self.command == "GET" and model not in state.errored:
                state.errored.add(model)
                self._record(500, model)
                return self._send(500, b"injected server error")
            data = path.read_bytes()
            if fault == "corrupt" and self.command == "GET":
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            self._record(200, model)
            self._send(200, data, {"Content-Type": "application/octet-stream", **extra})

        def _hub(self, parts: list[str]) -> None:
            if parts[0] == "api":  # api/models/{org}/{repo}[/revision/{rev}]
                repo_id, rev = "/".join(parts[2:4]), parts[5] if len(parts) > 5 else "main"
            else:  # {org}/{repo}/resolve/{rev}/{file}
                repo_id, rev = "/".join(parts[:2]), parts[3]
            if repo_id in state.snapshots:
                return self._snapshot(parts, repo_id, rev)
            repo = state.repos.get(repo_id)
            if repo is None:
                self._record(404, "")
                return self._send(404, b"repo not found", {"X-Error-Code": "RepoNotFound"})
            model = repo["model"]
            if state.fault(model, self.path) == "error":
                self._record(500, model)
                return self._send(500, b"injected server error")
            if rev not in ("main", repo["commit"]):
                self._record(404, model)
                return self._send(404, b"no such revision", {"X-Error-Code": "RevisionNotFound"})
            size = repo["path"].stat().st_size
            if parts[0] == "api":
                info = {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": repo["commit"],
                    "private": False,
                    "siblings": [
                        {
                            "rfilename": repo["path"].name,
                            "size": size,
                            "blobId": hashlib.sha1(repo["sha"].encode()).hexdigest(),
                            "lfs": {"sha256": repo["sha"], "size": size, "pointerSize": 135},
                        }
                    ],
                }
                self._record(200, model)
                return self._send(
                    200, json.dumps(info).encode(), {"Content-Type": "application/json"}
                )
            if "/".join(parts[4:]) != repo["path"].name:
                self._record(404, model)
                headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": repo["commit"]}
                return self._send(404, b"entry not found", headers)
            headers = {
                "X-Repo-Commit": repo["commit"],
                "ETag": f'"{repo["sha"]}"',
                "X-Linked-Etag": f'"{repo["sha"]}"',
                "X-Linked-Size": str(size),
            }
            self._file(model, repo["path"], headers)

        def _snapshot(self, parts: list[str], repo_id: str, rev: str) -> None:
            snap = state.snapshots[repo_id].get(rev)
            if snap is None:
                self._record(404, "")
                return self._send(404, b"no such revision", {"X-Error-Code": "RevisionNotFound"})
            model, folder = snap["model"], snap["dir"]
            if state.fault(model, self.path) == "error":
                self._record(500, model)
                return self._send(500, b"injected server error")
            files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
                     if p.is_file()}  # fmt: skip

            def describe(path: Path) -> dict[str, Any]:
                data = path.read_bytes()
                blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                info: dict[str, Any] = {"size": len(data), "blobId": blob}
                if path.suffix in (".safetensors", ".bin"):
                    info["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                                   "pointerSize": 135}  # fmt: skip
                return info

            if parts[0] == "api":
                siblings = [{"rfilename": n, **describe(p)} for n, p in files.items()]
                info = {"id": repo_id, "modelId": repo_id, "sha": snap["commit"],
                        "private": False, "siblings": siblings}  # fmt: skip
                self._record(200, model)
                return self._send(
                    200, json.dumps(info).encode(), {"Content-Type": "application/json"}
                )
            name = "/".join(parts[4:])
            if name not in files:
                self._record(404, model)
                headers = {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": snap["commit"]}
                return self._send(404, b"entry not found", headers)
            desc = describe(files[name])
            etag = desc["lfs"]["sha256"] if "lfs" in desc else desc["blobId"]
            headers = {"X-Repo-Commit": snap["commit"], "ETag": f'"{etag}"'}
            if "lfs" in desc:
                headers |= {"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(desc["size"])}
            self._file(model, files[name], headers)

        def _route(self) -> None:
            path = self.path.split("?", 1)[0]
            parts = [p for p in path.split("/") if p]
            served = state.releases.get("/".join(parts))
            if served is None and len(parts) == 1:
                served = state.plain.get(parts[0])
            if served is not None:
                model, file = served
                if state.fault(model, self.path) == "error":
                    self._record(500, model)
                    return self._send(500, b"injected server error")
                return self._file(model, file, {})
            if (parts[:2] == ["api", "models"] and len(parts) in (4, 6)) or (
                len(parts) >= 5 and parts[2] == "resolve"
            ):
                return self._hub(parts)
            self._record(404, "")
            self._send(404, b"not found")

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._route()

        def do_HEAD(self) -> None:  # noqa: N802
            self._route()

    return Handler


@contextmanager
def serve_zoo(
    files: Mapping[str, Path], *, faults: dict[str, str] | None = None, port: int = 0
) -> Iterator[_ServedZoo]:
    """Serve ``files`` (from :func:`make_weight_files`) on 127.0.0.1 (``port``; 0: any free
    one); yield the base URL."""
    state = _Zoo(files, faults if faults is not None else {})
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="zoo-server", daemon=True)
    thread.start()
    base = _ServedZoo(f"http://127.0.0.1:{server.server_address[1]}")
    base.requests = state.requests
    base._zoo = state
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
