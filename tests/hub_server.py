"""A small Hub-compatible HTTP server for tests: repos on disk, the endpoints `huggingface_hub`, `datasets` and
`transformers` use to push and to load, and nothing else.

Point a client at it with `HF_ENDPOINT=server.url` (plus `HF_HUB_DISABLE_XET=1`, so uploads use the LFS protocol
rather than Xet) *before* the libraries are imported: run clients in a subprocess. Tests read what was pushed with
`server.files(...)`, `server.read(...)` and `server.commits(...)`.

Storage, under `root`: `objects/<sha256>` (every blob, content-addressed) and one folder per repo,
`repos/<type>s/<namespace>/<name>/`, holding `repo.json` (branches, privacy) and `commits/<sha>.json` (the full file
table of each commit, with its parent). A commit id is 40 hex characters, as git's.

Endpoints (checked against huggingface_hub 2.x and datasets 5.x clients):
- write: `POST /api/repos/create`, `POST /api/validate-yaml`, `POST /api/{type}s/{repo}/preupload/{rev}`,
  `POST /{prefix}{repo}.git/info/lfs/objects/batch` + `PUT /lfs-upload/{oid}`, `POST /api/{type}s/{repo}/commit/{rev}`
- read: `GET /api/{type}s/{repo}[/revision/{rev}]`, `GET /api/{type}s/{repo}/tree/{rev}[/{path}]`,
  `POST /api/{type}s/{repo}/paths-info/{rev}`, `GET /api/{type}s/{repo}/refs`,
  `HEAD|GET /{prefix}{repo}/resolve/{rev}/{path}`,
  `GET /api/whoami-v2`, `GET /api/agent-harnesses` (an empty registry: huggingface_hub fetches it once a day)
A request that matches no endpoint gets a 404 and is recorded in `server.unhandled`.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

USER = "user"
PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
# What a new Hub repo's .gitattributes sends to LFS (abridged): weights, archives, Arrow and Parquet.
GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in (
        "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.gz", "*.h5", "*.joblib", "*.msgpack", "*.npy", "*.npz",
        "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt", "*.pth", "*.safetensors", "*.tar",
        "*.tflite", "*.zip", "*.zst", "*tfevents*",
    )
)  # fmt: skip
LFS_SIZE = 10 * 1024 * 1024  # larger files go to LFS whatever their name
REPO = r"(?P<repo>[^/]+/[^/]+)"


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def now_iso() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


class HubStore:
    """Repos on disk: content-addressed blobs plus one JSON file table per commit."""

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "objects").mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.counter = 0

    # -- repos
    def repo_dir(self, repo_type: str, repo_id: str) -> Path:
        return self.root / "repos" / f"{repo_type}s" / repo_id

    def exists(self, repo_type: str, repo_id: str) -> bool:
        return (self.repo_dir(repo_type, repo_id) / "repo.json").is_file()

    def meta(self, repo_type: str, repo_id: str) -> dict:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        if not path.is_file():
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return json.loads(path.read_text())

    def write_meta(self, repo_type: str, repo_id: str, meta: dict) -> None:
        path = self.repo_dir(repo_type, repo_id) / "repo.json"
        path.write_text(json.dumps(meta, indent=1))

    def create(self, repo_type: str, repo_id: str, private: bool) -> bool:
        """Create the repo with an initial commit holding `.gitattributes`; False if it exists."""
        with self.lock:
            if self.exists(repo_type, repo_id):
                return False
            d = self.repo_dir(repo_type, repo_id)
            (d / "commits").mkdir(parents=True)
            self.write_meta(repo_type, repo_id, {"private": bool(private), "createdAt": now_iso(), "branches": {}})
            self.commit(
                repo_type, repo_id, "main", "initial commit", "", {}, {".gitattributes": GITATTRIBUTES.encode()}
            )
            return True

    # -- blobs and commits
    def put_object(self, data: bytes) -> str:
        oid = hashlib.sha256(data).hexdigest()
        path = self.root / "objects" / oid
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return oid

    def has_object(self, oid: str) -> bool:
        return (self.root / "objects" / oid).is_file()

    def object(self, oid: str) -> bytes:
        return (self.root / "objects" / oid).read_bytes()

    def resolve(self, repo_type: str, repo_id: str, revision: str) -> str:
        """A branch name or a (prefix of a) commit id -> the commit id."""
        meta = self.meta(repo_type, repo_id)
        revision = unquote(revision)
        if revision in meta["branches"]:
            return meta["branches"][revision]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            matches = [p.stem for p in (self.repo_dir(repo_type, repo_id) / "commits").glob(f"{revision}*.json")]
            if len(matches) == 1:
                return matches[0]
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def load_commit(self, repo_type: str, repo_id: str, sha: str) -> dict:
        return json.loads((self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json").read_text())

    def snapshot(self, repo_type: str, repo_id: str, revision: str = "main") -> tuple[str, dict]:
        sha = self.resolve(repo_type, repo_id, revision)
        return sha, self.load_commit(repo_type, repo_id, sha)["files"]

    def is_lfs(self, files: dict, path: str, size: int) -> bool:
        attributes = self.object(files[".gitattributes"]["sha256"]).decode() if ".gitattributes" in files else ""
        patterns = [line.split()[0] for line in attributes.splitlines() if "filter=lfs" in line]
        name = path.rsplit("/", 1)[-1]
        return size > LFS_SIZE or any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)

    def commit(
        self,
        repo_type: str,
        repo_id: str,
        branch: str,
        title: str,
        description: str,
        lfs_files: dict[str, str],
        regular_files: dict[str, bytes],
        deleted: tuple[str, ...] = (),
        deleted_folders: tuple[str, ...] = (),
        parent_commit: str | None = None,
    ) -> str:
        """Apply one commit to `branch`; `parent_commit` must be the branch head (412 otherwise)."""
        with self.lock:
            meta = self.meta(repo_type, repo_id)
            head = meta["branches"].get(branch)
            if parent_commit is not None and not (head or "").startswith(parent_commit):
                raise HubError(412, f"A commit has happened since {parent_commit}: the head of {branch} is {head}")
            files = dict(self.load_commit(repo_type, repo_id, head)["files"]) if head else {}
            for path in deleted:
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            for folder in deleted_folders:
                folder = folder.rstrip("/") + "/"
                for path in [p for p in files if p.startswith(folder)]:
                    del files[path]
            for path, data in regular_files.items():
                files[path] = {"sha256": self.put_object(data), "size": len(data), "oid": git_blob_oid(data)}
                files[path]["lfs"] = False
            for path, oid in lfs_files.items():
                if not self.has_object(oid):
                    raise HubError(422, f"LFS object {oid} for {path} was never uploaded")
                data = self.object(oid)
                files[path] = {"sha256": oid, "size": len(data), "oid": git_blob_oid(lfs_pointer(oid, len(data)))}
                files[path]["lfs"] = True
            self.counter += 1
            payload = json.dumps([head, files, title, self.counter, time.time()], sort_keys=True).encode()
            sha = hashlib.sha1(payload).hexdigest()
            record = {"id": sha, "parent": head, "title": title, "description": description, "date": now_iso()}
            record["files"] = files
            (self.repo_dir(repo_type, repo_id) / "commits" / f"{sha}.json").write_text(json.dumps(record, indent=1))
            meta["branches"][branch] = sha
            meta.setdefault("history", {}).setdefault(branch, []).append(sha)
            meta["lastModified"] = record["date"]
            self.write_meta(repo_type, repo_id, meta)
            return sha


def lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def file_entry(path: str, info: dict) -> dict:
    entry = {"type": "file", "oid": info["oid"], "size": info["size"], "path": path}
    if info["lfs"]:
        entry["lfs"] = {
            "oid": info["sha256"],
            "size": info["size"],
            "pointerSize": len(lfs_pointer(info["sha256"], 0)),
        }
    return entry


def folder_entry(path: str, sha: str) -> dict:
    return {"type": "directory", "oid": hashlib.sha1(f"{sha}:{path}".encode()).hexdigest(), "path": path}


def front_matter(text: str) -> dict | None:
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.S)
    if not match:
        return None
    return yaml.safe_load(match.group(1)) or {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    def log_message(self, format, *args):  # quiet; requests are in server.requests
        pass

    # -- plumbing
    def body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, payload=None, headers: dict | None = None, body: bytes | None = None):
        if body is None:
            body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error_json(self, e: HubError):
        headers = {"X-Error-Message": e.message}
        if e.code:
            headers["X-Error-Code"] = e.code
        self.send(e.status, {"error": e.message, **e.extra}, headers)

    def authenticated(self) -> bool:
        """No `Authorization` header: anonymous. A header with the wrong token: 401 (as the Hub answers)."""
        auth = self.headers.get("Authorization")
        if auth is None:
            return False
        if self.server.token is not None and auth != f"Bearer {self.server.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def require_auth(self):
        if not self.authenticated():
            raise HubError(401, "You must be authenticated to write to the Hub")

    def readable(self, repo_type: str, repo_id: str) -> None:
        meta = self.server.store.meta(repo_type, repo_id)
        if meta["private"] and not self.authenticated():
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")

    def handle_any(self):
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.server.requests.append((self.command, url.path))
        body = self.body()
        try:
            for method, pattern, handler in ROUTES:
                if method == self.command or (method == "GET" and self.command == "HEAD"):
                    match = re.fullmatch(pattern, url.path)
                    if match:
                        self.authenticated()  # a bad token is a 401 everywhere
                        return handler(self, body, **match.groupdict())
            self.server.unhandled.append((self.command, self.path))
            raise HubError(404, f"No endpoint for {self.command} {url.path}")
        except HubError as e:
            self.send_error_json(e)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any

    # -- write endpoints
    def create_repo(self, body: bytes):
        self.require_auth()
        payload = json.loads(body)
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
        url = f"{self.server.url}/{PREFIXES[repo_type]}{repo_id}"
        private = payload.get("private", payload.get("visibility") == "private")
        if not self.server.store.create(repo_type, repo_id, private):
            raise HubError(409, f"You already created this {repo_type} repo", url=url)
        self.send(200, {"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self, body: bytes):
        content = json.loads(body)["content"]
        try:
            meta = front_matter(content)
        except yaml.YAMLError as e:
            raise HubError(400, f"Invalid YAML in README.md: {e}") from None
        if meta is not None and not isinstance(meta, dict):
            raise HubError(400, "README.md metadata must be a mapping")
        self.send(200, {"errors": [], "warnings": []})

    def preupload(self, body: bytes, kind: str, repo: str, rev: str):
        self.require_auth()
        repo_type = TYPES[kind]
        sha, files = self.server.store.snapshot(repo_type, repo, rev)
        answer = []
        for f in json.loads(body)["files"]:
            lfs = self.server.store.is_lfs(files, f["path"], f["size"])
            remote = files.get(f["path"])
            oid = None if remote is None else (remote["sha256"] if remote["lfs"] else remote["oid"])
            answer.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False})
            answer[-1]["oid"] = oid
        self.send(200, {"files": answer, "commitOid": sha})

    def lfs_batch(self, body: bytes, prefix: str | None, repo: str):
        self.require_auth()
        payload = json.loads(body)
        if payload.get("operation") != "upload":
            raise HubError(400, "only uploads are supported")
        objects = []
        for obj in payload["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self.server.store.has_object(obj["oid"]):
                href = f"{self.server.url}/lfs-upload/{obj['oid']}?size={obj['size']}"
                entry["actions"] = {"upload": {"href": href, "header": {}}}
            objects.append(entry)
        self.send(200, {"transfer": "basic", "objects": objects}, {"Content-Type": "application/vnd.git-lfs+json"})

    def lfs_upload(self, body: bytes, oid: str):
        expected_size = int(self.query.get("size", [len(body)])[0])
        if hashlib.sha256(body).hexdigest() != oid or len(body) != expected_size:
            raise HubError(400, f"LFS upload does not match {oid} ({len(body)} bytes)")
        self.server.store.put_object(body)
        self.send(200, body=b"")

    def commit(self, body: bytes, kind: str, repo: str, rev: str):
        self.require_auth()
        if self.server.fail_commits:
            raise HubError(500, self.server.fail_commits)
        if "create_pr" in self.query:
            raise HubError(400, "pull requests are not supported by this test server")
        repo_type, branch = TYPES[kind], unquote(rev)
        if branch not in self.server.store.meta(repo_type, repo)["branches"]:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
        header, lfs_files, regular, deleted, deleted_folders = {}, {}, {}, [], []
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                regular[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                lfs_files[value["path"]] = value["oid"]
            elif key == "deletedFile":
                deleted.append(value["path"])
            elif key == "deletedFolder":
                deleted_folders.append(value["path"])
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        if "README.md" in regular:
            try:
                front_matter(regular["README.md"].decode())
            except yaml.YAMLError as e:
                raise HubError(400, f"Invalid YAML in README.md: {e}") from None
        sha = self.server.store.commit(
            repo_type,
            repo,
            branch,
            header.get("summary", ""),
            header.get("description", ""),
            lfs_files,
            regular,
            tuple(deleted),
            tuple(deleted_folders),
            parent_commit=header.get("parentCommit"),
        )
        url = f"{self.server.url}/{PREFIXES[repo_type]}{repo}/commit/{sha}"
        self.send(200, {"success": True, "commitOid": sha, "commitUrl": url, "hookOutput": ""})

    # -- read endpoints
    def whoami(self, body: bytes):
        self.require_auth()
        self.send(200, {"type": "user", "name": USER, "fullname": USER, "orgs": [], "auth": {"type": "access_token"}})

    def agent_harnesses(self, body: bytes):  # huggingface_hub's user-agent registry: an empty one
        self.send(200, {"standardEnvVars": [], "harnesses": {}})

    def repo_info(self, body: bytes, kind: str, repo: str, rev: str | None = None):
        repo_type = TYPES[kind]
        self.readable(repo_type, repo)
        meta = self.server.store.meta(repo_type, repo)
        sha, files = self.server.store.snapshot(repo_type, repo, rev or "main")
        siblings = []
        for path, info in sorted(files.items()):
            sibling = {"rfilename": path, "size": info["size"], "blobId": info["oid"]}
            if info["lfs"]:
                sibling["lfs"] = {"size": info["size"], "sha256": info["sha256"], "pointerSize": 134}
            siblings.append(sibling)
        card = {}
        if "README.md" in files:
            try:
                card = front_matter(self.server.store.object(files["README.md"]["sha256"]).decode()) or {}
            except yaml.YAMLError:
                card = {}
        info = {
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
            "id": repo,
            "author": repo.split("/")[0],
            "sha": sha,
            "private": meta["private"],
            "gated": False,
            "disabled": False,
            "createdAt": meta["createdAt"],
            "lastModified": meta.get("lastModified", meta["createdAt"]),
            "tags": card.get("tags") or [],
            "cardData": card,
            "siblings": siblings,
            "downloads": 0,
            "likes": 0,
        }
        if repo_type == "model":
            info["modelId"] = repo
            info["library_name"] = card.get("library_name")
            info["pipeline_tag"] = card.get("pipeline_tag")
        self.send(200, info)

    def refs(self, body: bytes, kind: str, repo: str):
        repo_type = TYPES[kind]
        self.readable(repo_type, repo)
        branches = self.server.store.meta(repo_type, repo)["branches"]
        self.send(
            200,
            {
                "branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": s} for b, s in branches.items()],
                "converts": [],
                "tags": [],
            },
        )

    def entries(self, files: dict, sha: str, base: str, recursive: bool) -> list[dict]:
        prefix = base.strip("/") + "/" if base.strip("/") else ""
        out, folders = [], set()
        for path, info in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):
                if depth == 1 or recursive:
                    folders.add(prefix + "/".join(rest[:depth]))
            if len(rest) == 1 or recursive:
                out.append(file_entry(path, info))
        return sorted([folder_entry(f, sha) for f in folders] + out, key=lambda e: e["path"])

    def tree(self, body: bytes, kind: str, repo: str, rev: str, path: str | None = None):
        repo_type = TYPES[kind]
        self.readable(repo_type, repo)
        sha, files = self.server.store.snapshot(repo_type, repo, rev)
        path = unquote(path or "").strip("/")
        if path and not any(p.startswith(path + "/") for p in files):
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        self.send(200, self.entries(files, sha, path, recursive))

    def paths_info(self, body: bytes, kind: str, repo: str, rev: str):
        repo_type = TYPES[kind]
        self.readable(repo_type, repo)
        sha, files = self.server.store.snapshot(repo_type, repo, rev)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(body)["paths"]
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        out = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                out.append(file_entry(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                out.append(folder_entry(path, sha))
        self.send(200, out)

    def resolve(self, body: bytes, prefix: str | None, repo: str, rev: str, path: str):
        repo_type = {None: "model", "": "model", "datasets/": "dataset", "spaces/": "space"}[prefix]
        self.readable(repo_type, repo)
        sha, files = self.server.store.snapshot(repo_type, repo, rev)
        path = unquote(path)
        if path not in files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        info = files[path]
        data = self.server.store.object(info["sha256"])
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        if info["lfs"]:
            headers.update({"ETag": f'"{info["sha256"]}"', "X-Linked-Etag": f'"{info["sha256"]}"'})
            headers["X-Linked-Size"] = info["size"]
        else:
            headers["ETag"] = f'"{info["oid"]}"'
        range_header = self.headers.get("Range")
        if range_header:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if not match or match.group(1) == match.group(2) == "":
                raise HubError(416, f"bad range {range_header}")
            if match.group(1) == "":
                start, end = max(len(data) - int(match.group(2)), 0), len(data) - 1
            else:
                start = int(match.group(1))
                end = min(int(match.group(2)), len(data) - 1) if match.group(2) else len(data) - 1
            if start >= len(data) and len(data) > 0:
                self.send(416, {"error": "range not satisfiable"}, {"Content-Range": f"bytes */{len(data)}"})
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self.send(206, headers=headers, body=data[start : end + 1])
            return
        self.send(200, headers=headers, body=data)


ROUTES = [
    ("POST", r"/api/repos/create", Handler.create_repo),
    ("POST", r"/api/validate-yaml", Handler.validate_yaml),
    ("GET", r"/api/whoami-v2", Handler.whoami),
    ("GET", r"/api/agent-harnesses", Handler.agent_harnesses),
    ("POST", rf"/api/(?P<kind>models|datasets|spaces)/{REPO}/preupload/(?P<rev>[^/]+)", Handler.preupload),
    ("POST", rf"/api/(?P<kind>models|datasets|spaces)/{REPO}/commit/(?P<rev>[^/]+)", Handler.commit),
    ("POST", rf"/api/(?P<kind>models|datasets|spaces)/{REPO}/paths-info/(?P<rev>[^/]+)", Handler.paths_info),
    ("GET", rf"/api/(?P<kind>models|datasets|spaces)/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", Handler.tree),
    ("GET", rf"/api/(?P<kind>models|datasets|spaces)/{REPO}/refs", Handler.refs),
    ("GET", rf"/api/(?P<kind>models|datasets|spaces)/{REPO}(?:/revision/(?P<rev>[^/]+))?", Handler.repo_info),
    ("POST", rf"/(?P<prefix>datasets/|spaces/)?{REPO}\.git/info/lfs/objects/batch", Handler.lfs_batch),
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", Handler.lfs_upload),
    ("GET", rf"/(?P<prefix>datasets/|spaces/)?{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)", Handler.resolve),
]


class HubServer(ThreadingHTTPServer):
    """`HubServer(root, token=...)`: serve on 127.0.0.1 at a free port (`.url`); `token=None` accepts any token."""

    daemon_threads = True

    def __init__(self, root: Path, token: str | None = None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.store = HubStore(root)
        self.token = token
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.requests: list[tuple[str, str]] = []
        self.unhandled: list[tuple[str, str]] = []
        self.fail_commits: str | None = None  # set: every commit fails with HTTP 500 and this message
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()

    # -- what tests read
    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, dict]:
        """`{path: {"size", "sha256", "oid", "lfs"}}` at `revision`."""
        return self.store.snapshot(repo_type, repo_id, revision)[1]

    def read(self, repo_type: str, repo_id: str, path: str, revision: str = "main") -> bytes:
        return self.store.object(self.files(repo_type, repo_id, revision)[path]["sha256"])

    def commits(self, repo_type: str, repo_id: str, branch: str = "main") -> list[dict]:
        """The branch's commits, oldest first (each with `id`, `parent`, `title`, `files`)."""
        meta = self.store.meta(repo_type, repo_id)
        return [self.store.load_commit(repo_type, repo_id, sha) for sha in meta["history"][branch]]

    def private(self, repo_type: str, repo_id: str) -> bool:
        return self.store.meta(repo_type, repo_id)["private"]


def client_env(url: str, home: Path, token: str | None, **extra: str) -> dict[str, str]:
    """The environment of a client subprocess that talks to the server at `url` (and to nothing else): Xet off, a
    fresh `HF_HOME` (hub cache, datasets cache, remote-code modules), `token` as `HF_TOKEN`, not offline, and no
    `PYTHONPATH` unless `extra` gives one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_")) and k != "PYTHONPATH"}
    env.update(
        HF_ENDPOINT=url,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(home),
        HF_DATASETS_CACHE=str(Path(home) / "datasets"),
        HF_HUB_DISABLE_TELEMETRY="1",
        TOKENIZERS_PARALLELISM="false",
        WANDB_DISABLED="true",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    env.update(extra)
    return env
