"""A loopback Hugging Face Hub for the test suite: the real ``huggingface_hub`` client talks to it over HTTP.

Start it with ``with LoopbackHub() as hub:`` and point the client at ``hub.endpoint`` (``HF_ENDPOINT`` for a
subprocess; ``huggingface_hub.constants.ENDPOINT`` or ``HfApi(endpoint=...)`` in-process). It listens on
127.0.0.1 on a free port, serves each request in its own thread, and keeps every repository in memory in a
:class:`HubStore` (``hub.store``) that tests seed and inspect directly.

What it speaks (the subset of the Hub HTTP API that ``huggingface_hub`` 2.4 uses for these calls):

====================================================  ==========================================================
``GET  /api/whoami-v2``                               ``whoami``
``POST /api/repos/create``, ``DELETE /api/repos/delete``  ``create_repo`` / ``delete_repo``
``GET  /api/{models,datasets,spaces}``                ``list_models`` / ``list_datasets`` / ``list_spaces``
                                                      (``search``, ``author``, ``filter``, ``sort``, ``direction``,
                                                      ``limit``; one page)
``GET  /api/{type}s/{repo}[/revision/{rev}]``         ``repo_info`` / ``model_info`` / ``dataset_info``, ``repo_exists``
``POST /api/validate-yaml``                           README metadata check made by ``create_commit``
``POST /api/{type}s/{repo}/preupload/{rev}``          always answers ``uploadMode: "regular"``: files travel base64
                                                      inline in the commit (no LFS or Xet storage here)
``POST /api/{type}s/{repo}/commit/{rev}``             NDJSON commit (``file``, ``deletedFile``, ``deletedFolder``);
                                                      ``parentCommit`` not at the branch head answers 412;
                                                      ``?create_pr=1`` opens ``refs/pr/N`` from the parent
``GET  /api/{type}s/{repo}/tree/{rev}[/{path}]``      ``list_repo_tree`` / ``list_repo_files`` (one page, no expand)
``POST /api/{type}s/{repo}/paths-info/{rev}``         ``get_paths_info``
``GET  /api/{type}s/{repo}/refs``                     ``list_repo_refs`` (branches, pull requests)
``GET  /api/{type}s/{repo}/commits/{rev}``            ``list_repo_commits``
``GET|HEAD /[datasets/|spaces/]{repo}/resolve/{rev}/{path}``  ``hf_hub_download`` and ranged reads (``Range``)
====================================================  ==========================================================

Revisions are branch names, ``refs/pr/N``, full or abbreviated commit ids. Errors carry the Hub's
``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and ``X-Error-Message`` headers so the
client raises its usual exception classes.

Access model: ``store.add_user(name, token, orgs=...)`` registers a bearer token. Anyone reads public repos; a user
writes to repos in their own namespace and their organisations'; any signed-in user who can read a repo may open a
pull request on it. An unknown token answers 401 ``Invalid credentials in Authorization header``.

Test hooks on the store: ``fail_next(count, status, path_contains=None)`` answers the next requests (whose path
contains ``path_contains``, e.g. ``"/commit/"``) with an error status (transient failures);
``stall_next(count, path_contains, after_handling=False)`` never answers them (the connection stays open until
the server closes), optionally after handling them (a commit that lands but whose answer is lost);
``echo_headers_next(count, status=400)`` answers with the request's headers in the error message and body (a
server that echoes the ``Authorization`` header); ``rendezvous("preupload", parties=2)`` holds the first requests
of an endpoint until that many have arrived (to force two writers to read the same head before either commits);
``requests`` logs every request (method, path, status, whether it was authenticated); ``conflicts`` counts 412
answers.

Two servers that are not a Hub, for network failures: :func:`refusing_endpoint` (every connection refused) and
:class:`StalledServer` (accepts connections, reads nothing, never answers; ``connections`` counts them).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REPO_TYPES = ("model", "dataset", "space")
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_CONFLICT_MESSAGE = "A commit has happened since. Please refresh and try again."


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob: sha1(b"blob <size>\\0" + content), as the Hub reports it."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Commit:
    """One commit: the full file tree (path -> bytes) after it, and its parent."""

    oid: str
    parent: str | None
    files: dict[str, bytes]
    title: str
    message: str
    author: str
    date: str


@dataclass
class Repo:
    """A repository: its commits, refs (``main``, ``refs/pr/N``) and the extra fields its info reports."""

    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    pull_requests: dict[int, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.repo_id.split("/")[0]

    def head(self, branch: str = "main") -> Commit:
        return self.commits[self.branches[branch]]


@dataclass(frozen=True)
class User:
    name: str
    orgs: tuple[str, ...]
    role: str  # "write" or "read"


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    status: int
    authenticated: bool


class LoopbackError(Exception):
    """An HTTP error answer: status, message, and the Hub's X-Error-Code when it has one."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None,
                 reason: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.reason = reason


class _Stalled(Exception):
    """Raised in a handler to drop a stalled request without answering."""


class HubStore:
    """The in-memory state of the loopback Hub: users, repositories, commits, and the test hooks.

    Every method is thread-safe (one lock); the server calls these methods, and tests call them directly to seed
    repositories (``create_repo`` then ``commit``) and to inspect what was pushed (``files``).
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[RequestRecord] = []
        self.conflicts = 0
        self._oid_counter = itertools.count()
        self._failures: list[tuple[int, str | None]] = []
        self._stalls: list[tuple[str, bool]] = []
        self._echoes: list[tuple[int, Callable[[str], str] | None, bool]] = []
        self.released = threading.Event()
        self._rendezvous: dict[str, threading.Barrier] = {}
        self._rendezvous_timeout_s = 30.0

    # -- users -----------------------------------------------------------------------------------------------
    def add_user(self, name: str, token: str, *, orgs: tuple[str, ...] = (), role: str = "write") -> None:
        """Register ``token`` as the bearer token of user ``name`` (member of ``orgs``; role "write" or "read")."""
        with self.lock:
            self.users[token] = User(name, tuple(orgs), role)

    def can_write(self, user: User | None, repo_id: str) -> bool:
        namespace = repo_id.split("/")[0]
        return user is not None and user.role == "write" and namespace in (user.name, *user.orgs)

    def can_read(self, user: User | None, repo: Repo) -> bool:
        return not repo.private or (user is not None and repo.namespace in (user.name, *user.orgs))

    # -- repositories ----------------------------------------------------------------------------------------
    def create_repo(self, repo_type: str, repo_id: str, *, private: bool = False, author: str = "loopback",
                    info: dict[str, Any] | None = None) -> Repo:
        """A new repository with one initial commit holding ``.gitattributes``, as the Hub creates it.

        ``info``: extra fields its info and listings report (``downloads``, ``likes``, ``pipeline_tag``, ...).
        """
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise LoopbackError(409, f"You already created this {repo_type} repo: {repo_id}")
            repo = Repo(repo_type, repo_id, private, _now(), info=dict(info or {}))
            self.repos[(repo_type, repo_id)] = repo
            self._add_commit(repo, None, {".gitattributes": b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"},
                             "initial commit", "", author, branch="main")
            return repo

    def delete_repo(self, repo_type: str, repo_id: str) -> None:
        with self.lock:
            if self.repos.pop((repo_type, repo_id), None) is None:
                raise LoopbackError(404, f"Repository {repo_id} not found", "RepoNotFound")

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            try:
                return self.repos[(repo_type, repo_id)]
            except KeyError:
                raise LoopbackError(404, "Repository not found", "RepoNotFound") from None

    def resolve(self, repo: Repo, revision: str) -> Commit:
        """The commit a revision names: a branch, ``refs/pr/N``, ``refs/heads/<branch>`` or a (short) commit id."""
        with self.lock:
            name = revision.removeprefix("refs/heads/")
            if name in repo.branches:
                return repo.commits[repo.branches[name]]
            if name.startswith("refs/pr/") and name[len("refs/pr/"):].isdigit():
                number = int(name[len("refs/pr/"):])
                if number in repo.pull_requests:
                    return repo.commits[repo.pull_requests[number]]
            matches = [oid for oid in repo.commits if len(name) >= 7 and oid.startswith(name)]
            if len(matches) == 1:
                return repo.commits[matches[0]]
            raise LoopbackError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def files(self, repo_type: str, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The file tree (path -> content) of a repository at ``revision``."""
        with self.lock:
            repo = self.repo(repo_type, repo_id)
            return dict(self.resolve(repo, revision).files)

    def commit(self, repo_type: str, repo_id: str, *, add: dict[str, bytes] | None = None,
               delete: tuple[str, ...] = (), message: str = "update", description: str = "",
               revision: str = "main", parent_commit: str | None = None, create_pr: bool = False,
               author: str = "loopback") -> tuple[Commit, int | None]:
        """Apply additions and deletions (a path ending in "/" deletes a folder) as one commit.

        Direct commits go to ``revision`` (a branch or ``refs/pr/N``) and fail with 412 when ``parent_commit`` is
        not its head; with ``create_pr`` the commit opens a new ``refs/pr/N`` from ``parent_commit`` (or the head).
        Returns the commit and the pull-request number (None for a direct commit).
        """
        with self.lock:
            repo = self.repo(repo_type, repo_id)
            base = self.resolve(repo, revision)
            if create_pr:
                if parent_commit is not None:
                    base = self.resolve(repo, parent_commit)
            elif parent_commit is not None and not base.oid.startswith(parent_commit):
                self.conflicts += 1
                raise LoopbackError(412, _CONFLICT_MESSAGE)
            files = dict(base.files)
            for path in delete:
                if path.endswith("/"):
                    doomed = [name for name in files if name.startswith(path)]
                    if not doomed:
                        raise LoopbackError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                else:
                    if path not in files:
                        raise LoopbackError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    doomed = [path]
                for name in doomed:
                    del files[name]
            files.update(add or {})
            if create_pr:
                number = max([0, *repo.pull_requests]) + 1
                commit = self._add_commit(repo, base.oid, files, message, description, author, pull_request=number)
                return commit, number
            branch = revision.removeprefix("refs/heads/")
            if branch.startswith("refs/pr/"):
                number = int(branch[len("refs/pr/"):])
                return self._add_commit(repo, base.oid, files, message, description, author,
                                        pull_request=number), None
            if branch not in repo.branches:
                raise LoopbackError(400, f"Cannot commit to {revision}: not a branch", "RevisionNotFound")
            return self._add_commit(repo, base.oid, files, message, description, author, branch=branch), None

    def _add_commit(self, repo: Repo, parent: str | None, files: dict[str, bytes], title: str, message: str,
                    author: str, *, branch: str | None = None, pull_request: int | None = None) -> Commit:
        seed = f"{repo.repo_type}/{repo.repo_id}/{parent}/{next(self._oid_counter)}/{title}".encode()
        commit = Commit(hashlib.sha1(seed).hexdigest(), parent, files, title, message, author, _now())
        repo.commits[commit.oid] = commit
        if pull_request is not None:
            repo.pull_requests[pull_request] = commit.oid
        else:
            repo.branches[branch or "main"] = commit.oid
        return commit

    # -- test hooks ------------------------------------------------------------------------------------------
    def fail_next(self, count: int, status: int = 503, path_contains: str | None = None) -> None:
        """Answer the next ``count`` requests (whose path contains ``path_contains``) with HTTP ``status``."""
        with self.lock:
            self._failures.extend([(status, path_contains)] * count)

    def stall_next(self, count: int, path_contains: str, *, after_handling: bool = False) -> None:
        """Never answer the next ``count`` requests whose path contains ``path_contains``; with ``after_handling``
        handle them first (a commit lands) and lose only the answer."""
        with self.lock:
            self._stalls.extend([(path_contains, after_handling)] * count)

    def echo_headers_next(self, count: int, status: int = 400, *, altered: Callable[[str], str] | None = None,
                          in_reason: bool = False) -> None:
        """Answer the next ``count`` requests with HTTP ``status`` and every request header in the error text.

        ``altered(token)`` is how the bearer token is echoed (lower-cased, cut, base64-encoded: a server that
        mangles it); ``in_reason`` puts the echo in the HTTP reason phrase too.
        """
        with self.lock:
            self._echoes.extend([(status, altered, in_reason)] * count)

    def rendezvous(self, endpoint: str, parties: int) -> None:
        """Hold the first ``parties`` requests to ``endpoint`` (e.g. "preupload", "commit") until all have come."""
        with self.lock:
            self._rendezvous[endpoint] = threading.Barrier(parties, timeout=self._rendezvous_timeout_s)

    def _take_failure(self, path: str) -> int | None:
        with self.lock:
            for position, (status, path_contains) in enumerate(self._failures):
                if path_contains is None or path_contains in path:
                    del self._failures[position]
                    return status
            return None

    def _take_stall(self, path: str) -> bool | None:
        """None: answer normally; False: stall before handling; True: handle, then stall instead of answering."""
        with self.lock:
            for position, (path_contains, after_handling) in enumerate(self._stalls):
                if path_contains in path:
                    del self._stalls[position]
                    return after_handling
            return None

    def _take_echo(self) -> tuple[int, Callable[[str], str] | None, bool] | None:
        with self.lock:
            return self._echoes.pop(0) if self._echoes else None

    def _wait_rendezvous(self, endpoint: str) -> None:
        with self.lock:
            barrier = self._rendezvous.get(endpoint)
        if barrier is None:
            return
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # a party never came (it failed earlier): let the others go on rather than hang the suite
        with self.lock:
            if self._rendezvous.get(endpoint) is barrier:
                del self._rendezvous[endpoint]


def _card_data(files: dict[str, bytes]) -> dict[str, Any] | None:
    """The YAML front matter of README.md, as the Hub reports it in ``cardData``."""
    text = files.get("README.md", b"").decode("utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    _, _, rest = text.partition("\n")
    front, separator, _ = rest.partition("\n---")
    if not separator:
        return None
    data = yaml.safe_load(front)
    return data if isinstance(data, dict) else None


class _Handler(BaseHTTPRequestHandler):
    """Routes one HTTP request to the store; every answer has a Content-Length so keep-alive works."""

    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log: the store keeps its own request log."""

    # -- plumbing --------------------------------------------------------------------------------------------
    @property
    def store(self) -> HubStore:
        return self.server.store

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _user(self) -> User | None:
        authorization = self.headers.get("Authorization", "")
        if not authorization.lower().startswith("bearer "):
            return None
        user = self.store.users.get(authorization[len("bearer "):].strip())
        if user is None:
            raise LoopbackError(401, "Invalid credentials in Authorization header")
        return user

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json", reason: str | None = None) -> None:
        if getattr(self, "_stall_answer", False):
            self._stall()
        with self.store.lock:  # logged before the client can see the answer, so a test reading the log sees it
            self.store.requests.append(RequestRecord(self.command, self.path, status,
                                                     "Authorization" in self.headers))
        self.send_response(status, reason)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None,
              reason: str | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers, reason=reason)

    def _stall(self) -> None:
        """Answer nothing until the server closes; then drop the connection."""
        self.store.released.wait(timeout=120)
        self.close_connection = True
        raise _Stalled

    def _dispatch(self) -> None:
        try:
            self._answer()
        except _Stalled:
            pass

    def _answer(self) -> None:
        self._stall_answer = False
        try:
            echo = self.store._take_echo()
            if echo is not None:
                self._body()
                status, altered, in_reason = echo
                sent = "; ".join(f"{name}: {value}" for name, value in self.headers.items())
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if altered is not None and token:
                    sent = sent.replace(token, altered(token))
                raise LoopbackError(status, f"Bad request. You sent: {sent}",
                                    reason=f"Bad token {altered(token)}" if in_reason and altered and token else None)
            stall = self.store._take_stall(self.path)
            if stall is False:
                self._stall()
            self._stall_answer = bool(stall)
            failure = self.store._take_failure(self.path)
            if failure is not None:
                self._body()
                raise LoopbackError(failure, f"loopback hub: injected failure {failure}")
            self._route()
        except LoopbackError as error:
            headers = {"X-Error-Message": error.message, **error.headers}
            if error.code:
                headers["X-Error-Code"] = error.code
            self._json({"error": error.message}, error.status, headers, reason=error.reason)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    # -- routing ---------------------------------------------------------------------------------------------
    def _route(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        method = self.command
        if parts[:2] == ["api", "whoami-v2"]:
            return self._whoami()
        if parts[:2] == ["api", "repos"] and len(parts) == 3:
            return self._create_repo() if parts[2] == "create" else self._delete_repo()
        if parts[:2] == ["api", "validate-yaml"]:
            return self._validate_yaml()
        if parts[0] == "api" and len(parts) >= 2 and parts[1].rstrip("s") in REPO_TYPES:
            repo_type = parts[1][:-1]
            if len(parts) == 2 and method == "GET":
                return self._list_repos(repo_type, query)
            if len(parts) >= 4:
                repo_id, action, rest = f"{parts[2]}/{parts[3]}", (parts[4:5] or [""])[0], parts[5:]
                return self._repo_api(repo_type, repo_id, action, rest, query)
        resolve = self._parse_resolve(parts)
        if resolve is not None:
            return self._resolve(*resolve)
        raise LoopbackError(404, f"loopback hub: no route for {method} {url.path}")

    def _repo_api(self, repo_type: str, repo_id: str, action: str, rest: list[str],
                  query: dict[str, list[str]]) -> None:
        revision = rest[0] if rest else "main"
        if action == "" and self.command == "GET":
            return self._repo_info(repo_type, repo_id, "main", query)
        if action == "revision" and self.command == "GET":
            return self._repo_info(repo_type, repo_id, revision, query)
        if action == "preupload" and self.command == "POST":
            return self._preupload(repo_type, repo_id, revision, query)
        if action == "commit" and self.command == "POST":
            return self._commit(repo_type, repo_id, revision, query)
        if action == "tree" and self.command == "GET":
            return self._tree(repo_type, repo_id, revision, "/".join(rest[1:]), query)
        if action == "paths-info" and self.command == "POST":
            return self._paths_info(repo_type, repo_id, revision)
        if action == "refs" and self.command == "GET":
            return self._refs(repo_type, repo_id, query)
        if action == "commits" and self.command == "GET":
            return self._commits(repo_type, repo_id, revision)
        raise LoopbackError(404, f"loopback hub: no route for {self.command} {action!r} on {repo_id}")

    def _parse_resolve(self, parts: list[str]) -> tuple[str, str, str, str] | None:
        repo_type = {"datasets": "dataset", "spaces": "space"}.get(parts[0], "model")
        offset = 0 if repo_type == "model" else 1
        if len(parts) < offset + 5 or parts[offset + 2] != "resolve":
            return None
        repo_id = f"{parts[offset]}/{parts[offset + 1]}"
        return repo_type, repo_id, parts[offset + 3], "/".join(parts[offset + 4:])

    def _readable_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.store.repo(repo_type, repo_id)
        if not self.store.can_read(self._user(), repo):
            raise LoopbackError(404, "Repository not found", "RepoNotFound")
        return repo

    def _repo_url(self, repo: Repo) -> str:
        return f"{self.endpoint}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}"

    # -- endpoints -------------------------------------------------------------------------------------------
    def _whoami(self) -> None:
        user = self._user()
        if user is None:
            raise LoopbackError(401, "You must be authenticated to access this endpoint")
        self._json({
            "type": "user", "id": hashlib.sha1(user.name.encode()).hexdigest()[:24], "name": user.name,
            "fullname": user.name, "orgs": [{"type": "org", "name": org} for org in user.orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": user.role}},
        })

    def _create_repo(self) -> None:
        payload = json.loads(self._body() or b"{}")
        user = self._user()
        if user is None:
            raise LoopbackError(401, "You must be authenticated to create a repository")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or user.name}/{payload['name']}"
        if not self.store.can_write(user, repo_id):
            raise LoopbackError(403, f"You don't have the rights to create a {repo_type} under the namespace "
                                f"\"{repo_id.split('/')[0]}\"")
        private = payload.get("private", payload.get("visibility") == "private")
        try:
            repo = self.store.create_repo(repo_type, repo_id, private=bool(private), author=user.name)
        except LoopbackError as error:
            self._json({"error": error.message, "url": f"{self.endpoint}/{_URL_PREFIX[repo_type]}{repo_id}"},
                       error.status, {"X-Error-Message": error.message})
            return
        self._json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        payload = json.loads(self._body() or b"{}")
        user = self._user()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or (user.name if user else '')}/{payload['name']}"
        if not self.store.can_write(user, repo_id):
            raise LoopbackError(403, f"You don't have the rights to delete {repo_id}")
        self.store.delete_repo(repo_type, repo_id)
        self._send(200)

    def _validate_yaml(self) -> None:
        payload = json.loads(self._body() or b"{}")
        content = payload.get("content", "")
        try:
            _card_data({"README.md": content.encode()})
        except yaml.YAMLError as error:
            self._json({"errors": [{"message": f"Invalid YAML: {error}"}], "warnings": []}, 400)
            return
        self._json({"errors": [], "warnings": []})

    def _info(self, repo: Repo, commit: Commit, with_blobs: bool) -> dict[str, Any]:
        siblings = []
        for path, content in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=len(content), blobId=git_blob_oid(content))
            siblings.append(sibling)
        card_data = _card_data(commit.files)
        tags = list((card_data or {}).get("tags") or [])
        info = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id,
            "author": repo.namespace, "sha": commit.oid, "private": repo.private, "gated": False,
            "disabled": False, "downloads": 0, "likes": 0, "tags": tags, "createdAt": repo.created_at,
            "lastModified": commit.date, "siblings": siblings,
        }
        if card_data is not None:
            info["cardData"] = card_data
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
            for key in ("pipeline_tag", "library_name"):
                if card_data and key in card_data:
                    info[key] = card_data[key]
        info.update(repo.info)
        return info

    def _repo_info(self, repo_type: str, repo_id: str, revision: str, query: dict[str, list[str]]) -> None:
        repo = self._readable_repo(repo_type, repo_id)
        commit = self.store.resolve(repo, revision)
        self._json(self._info(repo, commit, _truthy(query.get("blobs"))))

    def _list_repos(self, repo_type: str, query: dict[str, list[str]]) -> None:
        user = self._user()
        with self.store.lock:
            repos = [repo for (kind, _), repo in self.store.repos.items()
                     if kind == repo_type and self.store.can_read(user, repo)]
        search = (query.get("search") or [""])[0].lower()
        author = (query.get("author") or [None])[0]
        filters = query.get("filter") or []
        entries = []
        for repo in repos:
            info = self._info(repo, repo.head(), with_blobs=False)
            labels = {*info.get("tags", []), info.get("pipeline_tag"), info.get("library_name")}
            if search in repo.repo_id.lower() and author in (None, repo.namespace) and set(filters) <= labels:
                if not _truthy(query.get("full")):
                    info.pop("siblings")
                entries.append(info)
        sort = (query.get("sort") or [None])[0]
        if sort is not None:
            descending = (query.get("direction") or ["-1"])[0] == "-1"
            entries.sort(key=lambda entry: (entry.get(sort) is not None, entry.get(sort) or 0), reverse=descending)
        limit = (query.get("limit") or [None])[0]
        self._json(entries[: int(limit)] if limit else entries)

    def _writable_for(self, repo: Repo, create_pr: bool) -> User:
        user = self._user()
        if user is None:
            raise LoopbackError(401, "You must be authenticated to write to this repository")
        allowed = self.store.can_read(user, repo) if create_pr else self.store.can_write(user, repo.repo_id)
        if not allowed:
            raise LoopbackError(403, f"You don't have the rights to write to {repo.repo_id}: open a pull request "
                                "instead")
        return user

    def _preupload(self, repo_type: str, repo_id: str, revision: str, query: dict[str, list[str]]) -> None:
        payload = json.loads(self._body() or b"{}")
        repo = self._readable_repo(repo_type, repo_id)
        self._writable_for(repo, _truthy(query.get("create_pr")))
        head = self.store.resolve(repo, revision)
        self.store._wait_rendezvous("preupload")
        files = []
        for entry in payload.get("files", []):
            existing = head.files.get(entry["path"])
            files.append({"path": entry["path"], "uploadMode": "regular", "shouldIgnore": False,
                          "oid": git_blob_oid(existing) if existing is not None else None})
        self._json({"files": files, "commitOid": head.oid})

    def _commit(self, repo_type: str, repo_id: str, revision: str, query: dict[str, list[str]]) -> None:
        body = self._body()
        repo = self._readable_repo(repo_type, repo_id)
        create_pr = _truthy(query.get("create_pr"))
        user = self._writable_for(repo, create_pr)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), {})
        additions: dict[str, bytes] = {}
        deletions: list[str] = []
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                if value.get("encoding") != "base64":
                    raise LoopbackError(400, f"unsupported encoding {value.get('encoding')!r}")
                additions[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                deletions.append(value["path"])
            elif key == "deletedFolder":
                deletions.append(value["path"].rstrip("/") + "/")
            elif key in ("lfsFile", "xetFile"):
                raise LoopbackError(400, "the loopback hub stores no LFS/Xet objects: it answers preupload with "
                                    "uploadMode 'regular', so files must come inline")
            elif key != "header":
                raise LoopbackError(400, f"unknown commit operation {key!r}")
        self.store._wait_rendezvous("commit")
        commit, number = self.store.commit(
            repo_type, repo_id, add=additions, delete=tuple(deletions), message=header.get("summary", ""),
            description=header.get("description", ""), revision=revision,
            parent_commit=header.get("parentCommit"), create_pr=create_pr, author=user.name)
        url = self._repo_url(repo)
        answer = {"success": True, "commitOid": commit.oid, "commitUrl": f"{url}/commit/{commit.oid}",
                  "hookOutput": ""}
        if number is not None:
            answer["pullRequestUrl"] = f"{url}/discussions/{number}"
        self._json(answer)

    def _entries(self, commit: Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        folders: set[str] = set()
        entries = []
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        for path, content in sorted(commit.files.items()):
            if not path.startswith(base):
                continue
            relative = path[len(base):].split("/")
            for depth in range(1, len(relative)):
                folder = base + "/".join(relative[:depth])
                if (recursive or depth == 1) and folder not in folders:
                    folders.add(folder)
                    entries.append({"type": "directory", "path": folder, "size": 0,
                                    "oid": hashlib.sha1(f"{commit.oid}:{folder}".encode()).hexdigest()})
            if recursive or len(relative) == 1:
                entries.append({"type": "file", "path": path, "size": len(content), "oid": git_blob_oid(content)})
        return sorted(entries, key=lambda entry: entry["path"])

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str, query: dict[str, list[str]]) -> None:
        repo = self._readable_repo(repo_type, repo_id)
        commit = self.store.resolve(repo, revision)
        entries = self._entries(commit, path, _truthy(query.get("recursive")))
        if path and not entries:
            raise LoopbackError(404, f"{path} does not exist on {revision}", "EntryNotFound",
                           {"X-Repo-Commit": commit.oid})
        self._json(entries)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        form = parse_qs(self._body().decode())
        repo = self._readable_repo(repo_type, repo_id)
        commit = self.store.resolve(repo, revision)
        everything = {entry["path"]: entry for entry in self._entries(commit, "", recursive=True)}
        self._json([everything[path.strip("/")] for path in form.get("paths", []) if path.strip("/") in everything])

    def _refs(self, repo_type: str, repo_id: str, query: dict[str, list[str]]) -> None:
        repo = self._readable_repo(repo_type, repo_id)
        with self.store.lock:
            branches = [{"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid}
                        for name, oid in sorted(repo.branches.items())]
            pulls = [{"name": f"refs/pr/{number}", "ref": f"refs/pr/{number}", "targetCommit": oid}
                     for number, oid in sorted(repo.pull_requests.items())]
        answer: dict[str, Any] = {"branches": branches, "converts": [], "tags": []}
        if _truthy(query.get("include_prs")):
            answer["pullRequests"] = pulls
        self._json(answer)

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._readable_repo(repo_type, repo_id)
        commit: Commit | None = self.store.resolve(repo, revision)
        history = []
        while commit is not None:
            history.append({"id": commit.oid, "title": commit.title, "message": commit.message,
                            "date": commit.date, "authors": [{"user": commit.author}]})
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(history)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._readable_repo(repo_type, repo_id)
        commit = self.store.resolve(repo, revision)
        content = commit.files.get(path)
        if content is None:
            raise LoopbackError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{git_blob_oid(content)}"', "Accept-Ranges": "bytes"}
        status, body = 200, content
        byte_range = self.headers.get("Range")
        if byte_range and byte_range.startswith("bytes="):
            start_text, _, end_text = byte_range[len("bytes="):].partition("-")
            if start_text:
                start, end = int(start_text), min(int(end_text) if end_text else len(content) - 1, len(content) - 1)
            else:
                start, end = max(len(content) - int(end_text), 0), len(content) - 1
            if start >= len(content):
                raise LoopbackError(416, f"Range {byte_range} is outside {len(content)} bytes",
                               headers={"Content-Range": f"bytes */{len(content)}"})
            status, body = 206, content[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        self._send(status, body, headers, content_type="application/octet-stream")


def _truthy(values: list[str] | None) -> bool:
    return bool(values) and values[0].lower() in ("1", "true", "yes")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # many writers connect at once; the default backlog of 5 drops connections
    store: HubStore
    endpoint: str


class LoopbackHub:
    """A running loopback Hub: ``endpoint`` (http://127.0.0.1:<port>) and its ``store``. A context manager."""

    def __init__(self, store: HubStore | None = None) -> None:
        self.store = store or HubStore()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.store = self.store
        host, port = self._server.server_address[:2]
        self.endpoint = self._server.endpoint = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="loopback-hub", daemon=True)

    def __enter__(self) -> "LoopbackHub":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        self.store.released.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def refusing_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a port that refuses every connection (bound, never listening)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}"


class StalledServer:
    """A server on 127.0.0.1 that accepts connections and never answers: ``connections`` counts them.

    A context manager; ``endpoint`` is its address. Closing it closes every connection it holds.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="stalled-server", daemon=True)

    @property
    def connections(self) -> int:
        return len(self._held)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(connection)

    def __enter__(self) -> "StalledServer":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._closed.set()
        self._listener.close()
        for connection in self._held:
            connection.close()


def client_environment(endpoint: str, home: str, token: str | None = None) -> dict[str, str]:
    """Environment variables pointing a ``huggingface_hub`` client in a subprocess at the loopback Hub.

    ``home`` becomes HF_HOME (so no real login or cache is used); ``token`` becomes HF_TOKEN when given.
    Merge the result into a copy of ``os.environ``.
    """
    environment = {"HF_ENDPOINT": endpoint, "HF_HOME": home, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                   "HF_UPDATE_DOWNLOAD_COUNTS": "0"}  # datasets would ping an S3 host: no traffic off loopback
    if token is not None:
        environment["HF_TOKEN"] = token
    return environment


def point_client_at(monkeypatch: Any, endpoint: str, home: str, token: str | None = None) -> None:
    """Point the in-process ``huggingface_hub`` (and ``datasets``) at the loopback Hub for one test.

    ``monkeypatch`` is pytest's fixture. huggingface_hub and datasets read HF_ENDPOINT, HF_HUB_OFFLINE, HF_HOME and
    the paths under it once, at import, so the constants derived from them are patched as well as the environment
    (those of ``datasets`` only when it is already imported: a later import reads the patched environment).
    Downloads, caches and token files then live under ``home``, never in the user's real cache.
    """
    from huggingface_hub import constants

    for name, value in client_environment(endpoint, home, token).items():
        monkeypatch.setenv(name, value)
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", f"{home}/token")
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", f"{home}/stored_tokens")
    monkeypatch.setattr(constants, "HF_HOME", home)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", f"{home}/hub")
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", f"{home}/assets")
    monkeypatch.setattr(constants, "HF_XET_CACHE", f"{home}/xet")
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        monkeypatch.setattr(datasets_config, "HF_ENDPOINT", endpoint)
        monkeypatch.setattr(datasets_config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
        monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(datasets_config, "HF_DATASETS_OFFLINE", False)
        monkeypatch.setattr(datasets_config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
        monkeypatch.setattr(datasets_config, "USE_PARQUET_EXPORT", False)  # no lookup of datasets-server.<host>
        monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", Path(home) / "datasets")
