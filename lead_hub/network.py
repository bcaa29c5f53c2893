"""How lead_hub talks to the Hugging Face Hub: bounded timeouts, one retry policy, offline after the first failure.

Every request that ``huggingface_hub`` sends (and through it ``timm``, ``transformers`` and ``datasets``) goes
through the shared HTTP client that :func:`install` gives ``huggingface_hub.set_client_factory``. That client is
the one place where lead_hub's network policy lives:

* **Bounded timeouts.** Each connect, read, write and pool wait is capped at ``LEAD_HUB_HUB_TIMEOUT_S`` seconds
  (default 10; huggingface_hub leaves its API calls without a timeout and waits 60 s on its second metadata try).
* **One retry policy.** Inside a lead_hub run (:func:`one_run`), an answer 408, 429, 500, 502, 503 or 504 is retried
  up to ``LEAD_HUB_HUB_ATTEMPTS`` attempts in all (default 4), waiting ``w_k = d_k/2 + U(0, d_k/2)`` before attempt
  k+1 with ``d_k = min(8, LEAD_HUB_HUB_RETRY_WAIT_S · 2^(k-1))`` (default 1 s; a ``Retry-After`` up to 8 s is
  honoured). The last failing answer is raised as huggingface_hub's ``HfHubHTTPError``, which huggingface_hub's own
  back-off does not retry, so retries never stack: at most ``LEAD_HUB_HUB_ATTEMPTS`` requests per call.
* **Offline after the first failure.** Inside a run, the first request to the Hub (the ``HF_ENDPOINT`` host, or a
  ``*.hf.co`` download host) that cannot reach it (refused, reset, timed out) or that keeps failing after its
  retries makes the rest of the run skip the network: one warning line
  names the cause and suggests ``HF_HUB_OFFLINE=1``, and every later request raises :class:`HubUnreachableError`
  at once without touching the network. It is an ``OfflineModeIsEnabled``, so huggingface_hub falls back to the
  local cache exactly as it does with ``HF_HUB_OFFLINE=1``: cached models and datasets still load.
* **No token in server text.** The bearer token of a request is replaced by ``hf_***`` in the body and headers of
  every error answer before any library reads them, so no message built from server text (an error body that
  echoes the ``Authorization`` header) can show it, in any of the altered forms :func:`mask` finds (another case, a
  prefix, base64) and in the reason phrase too; httpcore's wire-level debug log, which prints answers' raw
  headers, and httpx's request log, which prints the reason phrase, are masked the same way.

Outside :func:`one_run` (a user's own huggingface_hub calls in the same process) only the timeout bound and the
token masking apply; failures there are left to huggingface_hub.

The state is per process and shared by threads: concurrent runs (a Space serving several visitors) see one
outage together, and it is cleared when a run starts with no other run active.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import random
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx2
from huggingface_hub import constants, set_client_factory
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import hf_raise_for_status
from huggingface_hub.utils._http import hf_request_event_hook

logger = logging.getLogger(__name__)

TIMEOUT_VARIABLE = "LEAD_HUB_HUB_TIMEOUT_S"
ATTEMPTS_VARIABLE = "LEAD_HUB_HUB_ATTEMPTS"
RETRY_WAIT_VARIABLE = "LEAD_HUB_HUB_RETRY_WAIT_S"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_ATTEMPTS = 4
DEFAULT_RETRY_WAIT_S = 1.0
MAX_RETRY_WAIT_S = 8.0
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MASK = "hf_***"
_WIRE_LOGGERS = ("httpcore2.connection", "httpcore2.http11", "httpcore2.http2", "httpcore2.proxy", "httpcore2.socks",
                 "httpx2", "httpx")
"""Loggers whose records may hold server text (raw headers; httpx's INFO line carries the reason phrase)."""


class HubUnreachableError(OfflineModeIsEnabled):
    """The Hub could not be reached in this run (now, or by an earlier request); the message says why and what to do.

    A ``ConnectionError``. ``first`` is True for the request that found the outage, False for the requests that
    were not sent because of it.
    """

    def __init__(self, message: str, *, first: bool = False):
        super().__init__(message)
        self.first = first


@dataclass(frozen=True)
class Outage:
    """Why the Hub was given up in this run: its address and the cause, e.g. ``connection refused``."""

    endpoint: str
    cause: str

    def describe(self) -> str:
        return f"the Hub at {self.endpoint} could not be reached ({self.cause})"


@dataclass(frozen=True)
class NetworkPolicy:
    """The settings of :mod:`lead_hub.network`, read from the environment on every request."""

    timeout_s: float
    attempts: int
    retry_wait_s: float

    @classmethod
    def from_environment(cls) -> "NetworkPolicy":
        return cls(_positive(TIMEOUT_VARIABLE, DEFAULT_TIMEOUT_S, float),
                   _positive(ATTEMPTS_VARIABLE, DEFAULT_ATTEMPTS, int),
                   _positive(RETRY_WAIT_VARIABLE, DEFAULT_RETRY_WAIT_S, float, allow_zero=True))


def _positive(name: str, default, kind, allow_zero: bool = False):
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}={text!r} is not a {'non-negative' if allow_zero else 'positive'} "
                         f"{'integer' if kind is int else 'number'}; unset it for the default {default}")
    return value


def backoff_wait(attempt: int, base_s: float, cap_s: float = MAX_RETRY_WAIT_S) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): ``d/2 + U(0, d/2)``, ``d = min(cap, base·2^(a-1))``.

    The random half spreads writers that failed together so they do not collide again in lock-step; it never
    touches a result.
    """
    ceiling = min(cap_s, base_s * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


class _RunState:
    """Active lead_hub runs in this process and the outage found in them (see the module docstring)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.outage: Outage | None = None


_STATE = _RunState()
_QUIET = threading.local()  # see outage_reported_by_caller
_INSTALL_LOCK = threading.Lock()
_installed = False
_SENT_TOKENS: set[str] = set()  # bearer tokens of this process's requests, to mask them in wire logs (memory only)


@contextmanager
def one_run() -> Iterator[None]:
    """A lead_hub run: inside it, the first Hub failure makes the rest of the run skip the network.

    Nested runs (``rank`` inside the CLI, ``load_images`` inside ``rank``) belong to the outermost one. Entering
    an outermost run clears the previous outage; :func:`outage` still reports it after the run ended. Usable as a
    decorator.
    """
    install()
    with _STATE.lock:
        if _STATE.active == 0:
            _STATE.outage = None
        _STATE.active += 1
    try:
        yield
    finally:
        with _STATE.lock:
            _STATE.active -= 1


@contextmanager
def outage_reported_by_caller() -> Iterator[None]:
    """Within the block, this thread's first Hub failure is not logged: the caller stops on it and reports it in
    its own words (a Hub search, which no local cache can stand in for)."""
    _QUIET.active = True
    try:
        yield
    finally:
        _QUIET.active = False


def outage() -> Outage | None:
    """The outage of the current (or last) run, None when the Hub never failed in it."""
    return _STATE.outage


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it was raised from) is a :class:`HubUnreachableError`."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, HubUnreachableError):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def install() -> None:
    """Make huggingface_hub's shared HTTP client the guarded one (once per process; later calls do nothing)."""
    global _installed
    with _INSTALL_LOCK:
        if not _installed:
            set_client_factory(_guarded_client)
            for name in _WIRE_LOGGERS:
                logging.getLogger(name).addFilter(_mask_sent_tokens)
            _installed = True


def mask(text: str, secret: str | None) -> str:
    """``text`` with the token ``secret`` replaced by ``hf_***`` in every form a server may echo it.

    A server may echo the token whole, lower- or upper-cased, cut to a prefix, or base64-encoded (alone, or inside
    ``user:token`` of a Basic or ``Bearer`` value). So every stretch of text that matches
    :data:`MIN_MASKED_CHARS` characters or more of the token, or of one of its base64 forms, in any case, is
    masked; overlapping and adjacent stretches become one ``hf_***``. Unchanged when there is no secret.

    Parameters
    ----------
    text : str
        Server text, or a message built from it.
    secret : str or None
        The token.

    Returns
    -------
    str
        ``text`` without any form of the token.

    Examples
    --------
    >>> mask("bad token HF_ABCDEFGHIJKLMNOP (aGZfYWJjZGVmZ2hpamtsbW5vcA==)", "hf_abcdefghijklmnop")
    'bad token hf_*** (hf_***cA==)'
    """
    if not secret or not text:
        return text
    covered = bytearray(len(text) + 1)
    for match in _leak_pattern(secret).finditer(text):
        start = match.start()
        covered[start:start + len(match.group(1))] = b"\1" * len(match.group(1))
    if not any(covered):
        return text
    parts, start = [], 0
    for index, flag in enumerate(covered):
        if flag and (index == 0 or not covered[index - 1]):
            parts.append(text[start:index])
        elif not flag and index > 0 and covered[index - 1]:
            parts.append(MASK)
            start = index
    parts.append(text[start:len(text)] if not covered[len(text) - 1] else "")
    return "".join(parts)


MIN_MASKED_CHARS = 8
"""The shortest stretch of a token (or of its base64 forms) that :func:`mask` masks: a random 8-character
stretch does not occur by chance in a server message, and a prefix that short no longer lets anyone use it."""


@functools.lru_cache(maxsize=8)
def _leak_pattern(secret: str) -> re.Pattern:
    """A regex finding, at every position, a stretch of ``MIN_MASKED_CHARS`` characters of a form of ``secret``."""
    grams = {form[start:start + MIN_MASKED_CHARS] for form in _token_forms(secret)
             for start in range(len(form) - MIN_MASKED_CHARS + 1)}
    if not grams:  # a token shorter than the stretch: only the whole token
        grams = {secret}
    alternatives = "|".join(re.escape(gram) for gram in sorted(grams))
    return re.compile(f"(?=({alternatives}))", re.IGNORECASE)


def _token_forms(secret: str) -> list[str]:
    """The token and the parts of its base64 encodings that do not depend on what surrounds it: a token at any of
    the three byte alignments inside a longer encoded value (``user:token``), in the standard and URL alphabets."""
    raw, forms = secret.encode(), [secret]
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        stable = encoded[4 if offset else 0:-4]  # the first and last groups mix in the neighbouring bytes
        forms += [stable, stable.replace("+", "-").replace("/", "_")]
    return [form for form in forms if form]


def _mask_sent_tokens(record: logging.LogRecord) -> bool:
    """A logging filter: the record's message with every token this process sent masked (the record is kept)."""
    message = record.getMessage()
    masked = message
    for secret in list(_SENT_TOKENS):
        masked = mask(masked, secret)
    if masked != message:
        record.msg, record.args = masked, ()
    return True


def _guarded_client() -> httpx2.Client:
    """huggingface_hub's default client (its request hook, redirects followed) with lead_hub's policy."""
    return _GuardedClient(event_hooks={"request": [hf_request_event_hook]}, follow_redirects=True,
                          timeout=NetworkPolicy.from_environment().timeout_s)


class _GuardedClient(httpx2.Client):
    """An ``httpx2.Client`` whose ``send`` applies the policy of :mod:`lead_hub.network` to every request."""

    def send(self, request: httpx2.Request, *, stream: bool = False, **options) -> httpx2.Response:
        policy = NetworkPolicy.from_environment()
        in_run = _STATE.active > 0
        known = _STATE.outage
        if in_run and known is not None:
            raise HubUnreachableError(f"not tried: {known.describe()} earlier in this run; set HF_HUB_OFFLINE=1 to "
                                      "work from the local cache without trying the Hub")
        _bound_timeouts(request, policy.timeout_s)
        secret = _bearer_token(request)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = super().send(request, stream=stream, **options)
            except httpx2.TransportError as error:
                if not in_run or not _is_hub(request.url):
                    raise  # e.g. datasets' best-effort download counter on another host
                raise _give_up(request, _describe_failure(error, policy.timeout_s)) from error
            response = _without_token(response, request, secret)
            if stream and in_run and _is_hub(request.url):
                response.stream = _GuardedStream(response.stream, request, policy.timeout_s)
            if not in_run or response.status_code not in RETRIED_STATUSES or not _is_hub(request.url):
                return response
            wait = _retry_wait(response, attempt, policy)
            if wait is None or not isinstance(request.stream, httpx2.ByteStream):
                response.read()
                error = _http_error(response)
                _give_up(request, f"HTTP {response.status_code} after {attempt} attempt(s)")
                raise error
            logger.info("%s %s answered HTTP %d; attempt %d of %d in %.1f s", request.method, request.url.path,
                        response.status_code, attempt + 1, policy.attempts, wait)
            response.close()
            time.sleep(wait)


class _GuardedStream(httpx2.SyncByteStream):
    """A response body whose transport failures (a server that stalls mid-body) end the run's network use."""

    def __init__(self, stream: httpx2.SyncByteStream, request: httpx2.Request, timeout_s: float):
        self._stream, self._request, self._timeout_s = stream, request, timeout_s

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except httpx2.TransportError as error:
            raise _give_up(self._request, _describe_failure(error, self._timeout_s)) from error

    def close(self) -> None:
        self._stream.close()


def _is_hub(url: httpx2.URL) -> bool:
    """Whether ``url`` is on the Hub: the configured endpoint's host, or a download host (``*.hf.co``, where files
    are redirected). Best-effort side services (``datasets-server.huggingface.co``, which ``datasets`` asks for a
    parquet export and does without) are not: their failure must not end a run's use of the Hub."""
    host = url.host.lower()
    return host == httpx2.URL(constants.ENDPOINT).host.lower() or host == "hf.co" or host.endswith(".hf.co")


def _bound_timeouts(request: httpx2.Request, bound_s: float) -> None:
    """Cap the request's connect/read/write/pool timeouts at ``bound_s`` (None, i.e. wait forever, included)."""
    timeouts = dict(request.extensions.get("timeout") or {})
    request.extensions = {**request.extensions, "timeout": {
        phase: bound_s if timeouts.get(phase) is None else min(timeouts[phase], bound_s)
        for phase in ("connect", "read", "write", "pool")}}


def _retry_wait(response: httpx2.Response, attempt: int, policy: NetworkPolicy) -> float | None:
    """Seconds before the next attempt, or None when the attempts are spent or the server asks for a longer wait."""
    if attempt >= policy.attempts:
        return None
    retry_after = response.headers.get("Retry-After", "")
    if retry_after.strip().isdigit():
        seconds = float(retry_after)
        return seconds if seconds <= MAX_RETRY_WAIT_S else None
    return backoff_wait(attempt, policy.retry_wait_s)


def _http_error(response: httpx2.Response) -> Exception:
    """The exception huggingface_hub raises for ``response`` (an error answer)."""
    try:
        hf_raise_for_status(response)
    except Exception as error:  # noqa: BLE001 - it is returned to be raised by the caller
        return error
    return httpx2.HTTPStatusError(f"HTTP {response.status_code}", request=response.request, response=response)


def _give_up(request: httpx2.Request, cause: str) -> HubUnreachableError:
    """Record the run's outage (the first one wins), log it once, and return the error that reports it."""
    endpoint = f"{request.url.scheme}://{request.url.netloc.decode()}"
    with _STATE.lock:
        first = _STATE.outage is None
        if first:
            _STATE.outage = Outage(endpoint, cause)
        found = _STATE.outage
    if first and not getattr(_QUIET, "active", False):
        longer = f", or {TIMEOUT_VARIABLE} to wait longer on a slow link" if "within" in cause else ""
        logger.warning("%s; the rest of this run will not try the network again and uses only the local "
                       "Hugging Face cache. Set HF_HUB_OFFLINE=1 to work offline from the start%s", found.describe(),
                       longer)
    return HubUnreachableError(f"{found.describe()}; set HF_HUB_OFFLINE=1 to work from the local cache without "
                               "trying the Hub", first=first)


def _describe_failure(error: httpx2.TransportError, timeout_s: float) -> str:
    if isinstance(error, httpx2.ConnectTimeout):
        return f"no connection within {timeout_s:g} s"
    if isinstance(error, httpx2.TimeoutException):
        return f"no answer within {timeout_s:g} s"
    if isinstance(error, httpx2.ConnectError):
        text = str(error)
        return "connection refused" if "refused" in text.lower() else f"cannot connect: {text}"
    return f"{type(error).__name__}: {error}"


def _bearer_token(request: httpx2.Request) -> str:
    """The token of the request's ``Authorization: Bearer`` header ("" without one); remembered for the log filter."""
    authorization = request.headers.get("authorization", "")
    secret = authorization[len("bearer "):].strip() if authorization.lower().startswith("bearer ") else ""
    if secret:
        _SENT_TOKENS.add(secret)
    return secret


def _without_token(response: httpx2.Response, request: httpx2.Request, secret: str) -> httpx2.Response:
    """An error answer with the bearer token ``secret`` masked (:func:`mask`: altered forms too) in its body, headers
    and reason phrase; other answers unchanged."""
    if response.status_code < 400 or not secret:
        return response
    body = response.read().decode("utf-8", "surrogateescape")
    reason = response.extensions.get("reason_phrase", b"").decode("latin-1")
    items = response.headers.multi_items()
    masked_body, masked_reason = mask(body, secret), mask(reason, secret)
    masked_items = [(name, mask(value, secret)) for name, value in items]
    if masked_body == body and masked_reason == reason and masked_items == items:
        return response
    headers = [(name, value) for name, value in masked_items
               if name.lower() not in ("content-length", "content-encoding", "transfer-encoding")]
    masked = httpx2.Response(response.status_code, headers=headers,
                             content=masked_body.encode("utf-8", "surrogateescape"), request=request,
                             extensions={**response.extensions, "reason_phrase": masked_reason.encode("latin-1")})
    response.close()
    return masked
