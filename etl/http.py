"""One HTTP session shape for every source: retries with backoff, a default timeout, one error type.

Adapters never let a ``requests`` or JSON exception escape: they raise :class:`SourceError`,
whose message is one human line (the CLI prints ``str(exc)`` and exits 1).
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.settings import Settings

log = logging.getLogger(__name__)

# Seconds; urllib3 sleeps backoff_factor * 2**(retry - 1). Tests set it to 0.
BACKOFF_FACTOR: float = 0.5
RETRY_STATUSES: Final = (429, 500, 502, 503, 504)
_MAX_MESSAGE_CHARS: Final = 300
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


class SourceError(RuntimeError):
    """A source that cannot deliver usable data; ``str(exc)`` is one line meant for a human."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def one_line(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    """Collapse whitespace (newlines included) and cut long text with an ellipsis."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class TimeoutSession(requests.Session):
    """A ``requests.Session`` whose every request has a timeout unless the caller gives one."""

    def __init__(self, timeout_s: float, retries: int) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.retries = retries

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def make_retry(retries: int) -> Retry:
    """Retry GETs on 429/5xx, connection errors and timeouts, honouring ``Retry-After``.

    ``raise_on_status=False``: once retries are spent the last response is returned, so the
    caller can name its status in the error message.
    """
    return Retry(
        total=retries,
        backoff_factor=BACKOFF_FACTOR,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


def make_session(settings: Settings) -> requests.Session:
    """A session retrying ``settings.http_retries`` times, timing out after ``http_timeout_s``."""
    session = TimeoutSession(timeout_s=settings.http_timeout_s, retries=settings.http_retries)
    adapter = HTTPAdapter(max_retries=make_retry(settings.http_retries))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _retries_of(session: requests.Session) -> int | None:
    return session.retries if isinstance(session, TimeoutSession) else None


def _timeout_of(session: requests.Session) -> float | None:
    return session.timeout_s if isinstance(session, TimeoutSession) else None


def public_url(url: str) -> str:
    """``url`` as a message may show it: no query string, fragment or credentials."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0]
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def get_response(
    session: requests.Session,
    url: str,
    *,
    source: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """GET ``url``; transport failures become :class:`SourceError`. Any status is returned.

    The message says which failure it was, in words: ``could not connect to <url>: <cause>``
    (host name not found, connection refused…), ``connect timeout after N s``, ``read timeout
    after N s`` (the server accepted the connection but sent nothing for N seconds), or a
    connection that broke while the response was being read; the URL without its query string.
    """
    retries = _retries_of(session)
    tried = f" (retried {retries} times)" if retries else ""
    seconds = _timeout_of(session)
    after = f" after {seconds:g} s" if seconds is not None else ""
    shown = public_url(url)
    try:
        return session.get(url, params=params, headers=headers)
    except requests.ConnectTimeout as exc:  # before ConnectionError: it is one too
        raise SourceError(f"{source}: connect timeout{after} to {shown}{tried}") from exc
    except requests.ReadTimeout as exc:
        raise SourceError(f"{source}: read timeout{after} from {shown}{tried}") from exc
    except requests.Timeout as exc:
        raise SourceError(f"{source}: timeout{after} on {shown}{tried}") from exc
    except requests.ConnectionError as exc:
        cause = connection_cause(exc)
        because = f": {cause}" if cause else ""
        raise SourceError(f"{source}: could not connect to {shown}{because}{tried}") from exc
    except requests.exceptions.ChunkedEncodingError as exc:
        raise SourceError(
            f"{source}: the connection broke while reading the response from {shown}{tried}"
        ) from exc
    except requests.RequestException as exc:
        raise SourceError(f"{source}: request to {shown} failed: {exc}") from exc


def connection_cause(exc: BaseException) -> str:
    """The reason a connection failed, in words, from the exceptions ``requests`` wraps."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        error = pending.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, requests.exceptions.SSLError):
            return "TLS/SSL error (certificate or protocol)"
        if isinstance(error, requests.exceptions.ProxyError):
            return "the proxy refused or failed the connection"
        if isinstance(error, socket.gaierror) or "NameResolution" in type(error).__name__:
            return "host name not found"
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(error, ConnectionResetError):
            return "connection reset by the server"
        if "RemoteDisconnected" in type(error).__name__:
            return "the server closed the connection without a response"
        for nested in (getattr(error, "reason", None), error.__cause__, error.__context__):
            if isinstance(nested, BaseException):
                pending.append(nested)
        pending.extend(arg for arg in error.args if isinstance(arg, BaseException))
    return ""


def looks_like_html(content_type: str, body: bytes) -> bool:
    """An HTML page (a captive portal, a proxy's or server's error page) rather than data."""
    if "html" in content_type.lower():
        return True
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--"))


def html_title(body: bytes) -> str:
    """The ``<title>`` of an HTML page, cut short, or ``""``."""
    match = _TITLE.search(body[:65_536])
    if match is None:
        return ""
    return one_line(match.group(1).decode("utf-8", "replace"), limit=60)


def raise_for_status(
    response: requests.Response, *, source: str, retries: int | None = None, detail: str = ""
) -> None:
    """Turn a non-2xx response into a :class:`SourceError` naming status, retries and URL.

    A retryable status that comes back from a retrying session means the retries are spent.
    """
    if response.ok:
        return
    code = response.status_code
    after = f" after {retries} retries" if retries and code in RETRY_STATUSES else ""
    url = public_url(response.url)
    tail = f": {detail}" if detail else ""
    raise SourceError(f"{source}: HTTP {code}{after} from {url}{tail}")


def get_json(
    session: requests.Session,
    url: str,
    *,
    source: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """GET and decode JSON; HTTP errors and malformed bodies become :class:`SourceError`."""
    response = get_response(session, url, source=source, params=params, headers=headers)
    if not response.ok:
        raise_for_status(
            response, source=source, retries=_retries_of(session), detail=_error_detail(response)
        )
    try:
        return response.json()
    except ValueError as exc:  # requests.JSONDecodeError is a ValueError
        shown = public_url(response.url)
        if looks_like_html(response.headers.get("Content-Type", ""), response.content):
            title = html_title(response.content)
            named = f' ("{title}")' if title else ""
            raise SourceError(
                f"{source}: the server returned an HTML page{named}, not JSON, from {shown}"
            ) from exc
        raise SourceError(f"{source}: malformed JSON from {shown}: {exc}") from exc


def _error_detail(response: requests.Response) -> str:
    """The ``reason``/``message`` of a JSON error body, if there is one."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("reason", "message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return ""
