"""Publish a leaderboard to a Hugging Face Hub dataset repository, merge it with what is there, and read it back.

The only module of lead_hub that writes to the Hub. Layout of a leaderboard repository: see
:mod:`lead_hub.hub_card`; merge rule and key: see :mod:`lead_hub.hub_merge`.

Concurrency: a push reads the head commit of ``main``, merges into the table found there, and commits with
``parent_commit=<that head>``. When another writer committed in between, the Hub answers 412 and the push
re-reads, re-merges and retries after an exponential back-off with jitter (:func:`lead_hub.network.backoff_wait`,
``CONFLICT_BASE_WAIT_S`` doubling up to ``CONFLICT_MAX_WAIT_S``), at most ``CONFLICT_ATTEMPTS`` attempts and no new
attempt after ``CONFLICT_DEADLINE_S`` seconds. A push that still loses raises :class:`HubConflictError`. Publishing
the same leaderboard again is always safe: rows merge by key, so a retry replaces its own rows (also when an
earlier attempt landed but its answer was lost) and never duplicates them.

Token: resolved by huggingface_hub on every request (the ``token`` argument when given, else ``HF_TOKEN``, else
the token stored by ``hf auth login``). lead_hub never stores, logs or prints it, keeps it out of every object
and error message, and refuses to publish files that contain it.

Errors: every failure is a :class:`HubError` subclass whose message names the repository and the fix. Network
failures follow :mod:`lead_hub.network` (bounded timeouts, HTTP 429/5xx retried there and only there, no further
request after the first failure) and raise :class:`HubNetworkError`. The token is masked (``hf_***``) in every
message, also in text the server sent back.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pandas as pd
from huggingface_hub import CommitOperationAdd, HfApi, constants, get_token
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from lead_hub import network
from lead_hub.hub_card import CARD_PATH, LEADERBOARD_PATH, PROVENANCE_PATH, render_card
from lead_hub.hub_merge import MergeResult, merge_leaderboards, published_rows, run_id
from lead_hub.public_names import public_leaderboard

logger = logging.getLogger(__name__)

CONFLICT_ATTEMPTS = 24
CONFLICT_BASE_WAIT_S = 0.5
CONFLICT_MAX_WAIT_S = 8.0
CONFLICT_DEADLINE_S = 180.0
_REPO_ID = re.compile(r"[\w.\-]+/[\w.\-]+")
_FILES_OF_AN_EMPTY_REPO = {".gitattributes", CARD_PATH}
SAFE_TO_RETRY = "publishing the same leaderboard again is safe: rows merge by key, so none is duplicated"


class HubError(RuntimeError):
    """A Hub operation of lead_hub failed; the message names the repository and what to do.

    ``retryable``: running the same operation again, unchanged, may succeed (the network or the server failed, or
    other writers won every race); otherwise something must be fixed first.
    """

    retryable = False


class HubAuthError(HubError):
    """No token, a token the Hub rejects (401), or a token without the needed permission (403)."""


class HubRepoTypeError(HubError):
    """The id names a model or Space repository; leaderboards live in dataset repositories."""


class HubNotFoundError(HubError):
    """No such dataset repository or revision, or the repository holds no leaderboard."""


class HubNetworkError(HubError):
    """The Hub could not be reached or kept failing (see :mod:`lead_hub.network`), or offline mode is on."""

    retryable = True


class HubConflictError(HubError):
    """Other writers kept committing to the branch: every attempt found a newer head. Nothing was published."""

    retryable = True


@dataclass(frozen=True)
class PushResult:
    """What a push did: the commit (or pull request) it made and how the rows merged."""

    repo_id: str
    commit_oid: str
    commit_url: str
    pull_request_url: str | None
    created_repo: bool
    rows_added: int
    rows_replaced: int
    rows_kept: int
    attempts: int


@dataclass(frozen=True)
class PublishedLeaderboard:
    """A leaderboard read from the Hub: the table, the provenance of each ranking, and the commit it came from."""

    repo_id: str
    commit_oid: str
    table: pd.DataFrame = field(repr=False)
    provenance_by_run: dict[str, dict[str, Any]] = field(repr=False)


@network.one_run()
def push_leaderboard(table: pd.DataFrame, provenance: Mapping[str, Any], repo_id: str, *, create_pr: bool = False,
                     private: bool = False, commit_message: str | None = None, license: str = "apache-2.0",
                     top_k: int = 10, token: str | None = None) -> PushResult:
    """Merge ``table`` (one ranking and its ``provenance``) into the leaderboard dataset repo ``repo_id`` and commit.

    The rows published are :func:`~lead_hub.hub_merge.published_rows` of the table; they replace the published rows
    with the same merge key and every other row is kept.

    Creates the dataset repository (``private`` applies then) when it does not exist. With ``create_pr`` the
    merged files are proposed as a pull request against ``main`` (for repositories you cannot write to) instead
    of committed. ``token``: an explicit Hub token (e.g. a Space's OAuth token); by default huggingface_hub
    resolves ``HF_TOKEN`` or your login. Works with any ``Leaderboard`` as
    ``push_leaderboard(board.table, board.provenance, repo_id)``. Absolute local paths never leave: the table and
    provenance are published as :func:`~lead_hub.public_names.public_leaderboard` writes them.
    """
    repo_id = check_can_publish(repo_id, token)
    table, provenance = public_leaderboard(table, provenance)
    incoming = published_rows(table, provenance)
    api = _client()
    message = commit_message or _default_commit_message(incoming)
    started = time.monotonic()
    action = f"publishing the leaderboard to {repo_id}"
    with _explained(action, repo_id, token, outcome="nothing was published"):
        api.whoami(token=token)
        created = _ensure_dataset_repo(api, repo_id, private=private, create_pr=create_pr, token=token)
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        with _explained(action, repo_id, token, outcome="nothing was published"):
            head = api.dataset_info(repo_id, revision="main", token=token)
            merged, files = _merged_files(api, repo_id, head, incoming, provenance, top_k=top_k, license=license,
                                          token=token)
            _refuse_files_containing_token({**files, "the commit message": message.encode()}, token)
        with _explained(action, repo_id, token, outcome="the commit may or may not have landed"):
            commit = _commit_unless_moved(api, repo_id, files, message, head.sha, create_pr=create_pr, token=token)
        if commit is None:
            logger.info("%s moved on since commit %s; re-reading and merging again", repo_id, head.sha[:8])
            if attempt < CONFLICT_ATTEMPTS and time.monotonic() - started < CONFLICT_DEADLINE_S:
                time.sleep(network.backoff_wait(attempt, CONFLICT_BASE_WAIT_S, CONFLICT_MAX_WAIT_S))
                continue
            raise HubConflictError(
                f"{repo_id} kept changing while publishing: each of {attempt} attempts in "
                f"{time.monotonic() - started:.0f} s found a newer commit on main, so nothing was published; "
                f"{SAFE_TO_RETRY}") from None
        return PushResult(repo_id, commit.oid, commit.commit_url, commit.pr_url, created, merged.added,
                          merged.replaced, merged.kept, attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _commit_unless_moved(api: HfApi, repo_id: str, files: Mapping[str, bytes], message: str, parent: str, *,
                         create_pr: bool, token: str | None) -> Any:
    """Commit ``files`` on top of commit ``parent``; None when main moved on since (HTTP 412)."""
    try:
        return api.create_commit(repo_id, [CommitOperationAdd(path, content) for path, content in files.items()],
                                 commit_message=message, repo_type="dataset", revision="main", parent_commit=parent,
                                 create_pr=create_pr, token=token)
    except HfHubHTTPError as error:
        if _status(error) == 412:
            return None
        raise


@network.one_run()
def read_leaderboard(repo_id: str, *, revision: str | None = None, token: str | None = None) -> PublishedLeaderboard:
    """The leaderboard published in the dataset repo ``repo_id`` at ``revision`` (default: head of ``main``)."""
    repo_id = dataset_repo_id(repo_id)
    _require_online()
    api = _client()
    with _explained(f"reading the leaderboard {repo_id}", repo_id, token):
        try:
            head = api.dataset_info(repo_id, revision=revision, token=token)
        except RepositoryNotFoundError:
            _refuse_other_repo_types(api, repo_id, token)
            raise
        if LEADERBOARD_PATH not in _file_names(head):
            raise HubNotFoundError(f"{repo_id} has no {LEADERBOARD_PATH}: it is not a lead_hub leaderboard "
                                   "(publish one with `lead-hub push RESULTS OWNER/NAME`)")
        table, provenance_by_run = _read_leaderboard_files(api, repo_id, head, token)
    return PublishedLeaderboard(repo_id, head.sha, table, provenance_by_run)


def check_can_publish(repo_id: str, token: str | None = None) -> str:
    """``repo_id`` as a dataset repository id, after the checks that need no network: a valid id (ValueError),
    not offline and a token at hand (HubError). Cheap: callers run it before the work whose result they publish."""
    repo_id = dataset_repo_id(repo_id)
    _require_online()
    if token is None and get_token() is None:
        raise HubAuthError(f"publishing to {repo_id} needs a Hugging Face token with write access: set HF_TOKEN, or "
                           "run `hf auth login`")
    return repo_id


def dataset_repo_id(repo_id: str) -> str:
    """``OWNER/NAME`` from ``OWNER/NAME`` or ``datasets/OWNER/NAME``; model and Space ids are refused."""
    for prefix, kind in (("models/", "model"), ("spaces/", "Space")):
        if repo_id.startswith(prefix):
            raise HubRepoTypeError(f"{repo_id} names a {kind} repository; a leaderboard is published to a dataset "
                                   f"repository: pass OWNER/NAME of a dataset")
    repo_id = repo_id.removeprefix("datasets/")
    if not _REPO_ID.fullmatch(repo_id):
        raise ValueError(f"{repo_id!r} is not a repository id: expected OWNER/NAME, e.g. my-user/my-leaderboard")
    return repo_id


def _client() -> HfApi:
    try:
        version = metadata.version("lead-hub")
    except metadata.PackageNotFoundError:
        version = "unknown"  # running from a source tree that was not pip-installed: only the user agent says so
    return HfApi(library_name="lead_hub", library_version=version)


def _require_online() -> None:
    if constants.is_offline_mode():
        raise HubNetworkError("HF_HUB_OFFLINE is set, so lead_hub cannot reach the Hub: unset it (or set it to 0) "
                              "to publish or read a leaderboard")


def _ensure_dataset_repo(api: HfApi, repo_id: str, *, private: bool, create_pr: bool, token: str | None) -> bool:
    """Create the dataset repository when it does not exist; True when created."""
    if api.repo_exists(repo_id, repo_type="dataset", token=token):
        return False
    _refuse_other_repo_types(api, repo_id, token)
    if create_pr:
        raise HubNotFoundError(f"cannot open a pull request on {repo_id}: no such dataset repository. Drop "
                               "--create-pr to create it (in a namespace you can write to)")
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True, token=token)
    return True


def _refuse_other_repo_types(api: HfApi, repo_id: str, token: str | None) -> None:
    for kind in ("model", "space"):
        if api.repo_exists(repo_id, repo_type=kind, token=token):
            raise HubRepoTypeError(f"{repo_id} is a {kind} repository, not a dataset repository: a leaderboard lives "
                                   "in a dataset repository. Choose another name (a new name creates a dataset "
                                   "repository)")


def _file_names(head: Any) -> set[str]:
    return {sibling.rfilename for sibling in head.siblings or []}


def _read_leaderboard_files(api: HfApi, repo_id: str, head: Any,
                            token: str | None) -> tuple[pd.DataFrame | None, dict[str, dict[str, Any]]]:
    """The table and provenance at commit ``head.sha``; (None, {}) for a repository without a leaderboard yet."""
    names = _file_names(head)
    if LEADERBOARD_PATH not in names:
        foreign = sorted(names - _FILES_OF_AN_EMPTY_REPO)
        if foreign:
            raise HubError(f"{repo_id} holds {', '.join(foreign[:5])} but no {LEADERBOARD_PATH}: it is not a lead_hub "
                           f"leaderboard, and publishing would replace its {CARD_PATH}. Choose another repository")
        return None, {}
    with tempfile.TemporaryDirectory(prefix="lead_hub_") as folder:

        def download(path: str) -> str:
            return api.hf_hub_download(repo_id, path, repo_type="dataset", revision=head.sha, cache_dir=folder,
                                       token=token)

        table = pd.read_parquet(download(LEADERBOARD_PATH))
        provenance_by_run: dict[str, dict[str, Any]] = {}
        if PROVENANCE_PATH in names:
            with open(download(PROVENANCE_PATH), encoding="utf-8") as handle:
                provenance_by_run = json.load(handle)
    return table, provenance_by_run


def _merged_files(api: HfApi, repo_id: str, head: Any, incoming: pd.DataFrame, provenance: Mapping[str, Any], *,
                  top_k: int, license: str, token: str | None) -> tuple[MergeResult, dict[str, bytes]]:
    """The merge of ``incoming`` into the leaderboard at commit ``head``, and the files (path -> bytes) to commit.

    The provenance file keeps the record of every ranking that still has a row in the merged table.
    """
    existing, provenance_by_run = _read_leaderboard_files(api, repo_id, head, token)
    merged = merge_leaderboards(existing, incoming)
    runs_left = set(merged.table["run_id"])
    provenance_by_run = {identifier: record
                         for identifier, record in {**provenance_by_run, run_id(provenance): dict(provenance)}.items()
                         if identifier in runs_left}
    return merged, _serialise(merged.table, provenance_by_run, repo_id=repo_id, top_k=top_k, license=license)


def _serialise(table: pd.DataFrame, provenance_by_run: dict[str, dict[str, Any]], *, repo_id: str, top_k: int,
               license: str) -> dict[str, bytes]:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    provenance_text = json.dumps(provenance_by_run, indent=2, sort_keys=True, default=str) + "\n"
    card = render_card(table, provenance_by_run, repo_id=repo_id, top_k=top_k, license=license)
    return {LEADERBOARD_PATH: buffer.getvalue(), PROVENANCE_PATH: provenance_text.encode(), CARD_PATH: card.encode()}


def _refuse_files_containing_token(files: Mapping[str, bytes], token: str | None) -> None:
    """Raise HubError naming the files (path -> content) that contain the Hub token, without showing it."""
    secret = token or get_token()
    if not secret:
        return
    leaking = [path for path, content in files.items() if secret.encode() in content]
    if leaking:
        raise HubError(f"refusing to publish: {', '.join(leaking)} would contain your Hub token (it came with the "
                       "leaderboard table, its provenance or the commit message). Remove it and publish again")


def _default_commit_message(table: pd.DataFrame) -> str:
    datasets = ", ".join(sorted(map(str, table["dataset"].dropna().unique()))) or "unknown dataset"
    return f"lead_hub: publish ranking on {datasets} ({len(table)} rows)"


def _status(error: HfHubHTTPError) -> int | None:
    return error.response.status_code if error.response is not None else None


@contextmanager
def _explained(action: str, repo_id: str, token: str | None, *, outcome: str | None = None) -> Iterator[None]:
    """Turn Hub failures into HubError subclasses whose message says what to do, with the token masked.

    ``outcome`` (for a push: whether anything may have been published) is added to network failures.
    """
    secret = token or get_token()
    try:
        yield
    except RepositoryNotFoundError as error:
        raise HubNotFoundError(f"{action}: no dataset repository {repo_id} (or it is private and your token cannot "
                               "read it). Check the id, or log in with a token that can read it") from error
    except RevisionNotFoundError as error:
        raise HubNotFoundError(f"{action}: that revision does not exist in {repo_id}; pass a branch, tag or "
                               "commit of the repository") from error
    except RemoteEntryNotFoundError as error:
        raise HubNotFoundError(f"{action}: a file of the leaderboard vanished from {repo_id} while reading it; "
                               "retry") from error
    except (ConnectionError, LocalEntryNotFoundError) as error:
        # HubUnreachableError and huggingface_hub's reports of a Hub it could not reach (a missing cache entry)
        found = network.outage()
        cause = found.describe() if found is not None else str(error)
        then = f"; {outcome}, and {SAFE_TO_RETRY}" if outcome else ""
        raise HubNetworkError(f"{action}: {network.mask(cause, secret)}{then}. Check your network connection "
                              "(and HF_ENDPOINT), then run the same command again") from error
    except HfHubHTTPError as error:
        status = _status(error)
        if status == 401:
            raise HubAuthError(f"{action}: the Hub rejected your token (HTTP 401). Set HF_TOKEN to a valid token or "
                               "run `hf auth login`") from error
        if status == 403:
            raise HubAuthError(f"{action}: your token may not write to {repo_id} (HTTP 403). Use a token with write "
                               "access to that namespace, publish to a repository you own, or propose the change "
                               "as a pull request (--create-pr)") from error
        server_message = network.mask(getattr(error, "server_message", None) or "no message", secret)
        then = f"; {outcome}, and {SAFE_TO_RETRY}" if outcome and status is not None and status >= 500 else ""
        failure = HubError(f"{action}: the Hub answered HTTP {status} ({server_message}){then}")
        failure.retryable = status is not None and status >= 500
        raise failure from error
