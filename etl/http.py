"""One HTTP session shape for every source: retries with backoff, a default timeout, one error type.

Adapters never let a ``requests`` or JSON exception escape: they raise :class:`SourceError`,
whose message is one human line (the CLI prints ``str(exc)`` and exits 1).
"""

from __future__ import annotations

import logging
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from core.settings import Settings

log = logging.getLogger(__name__)

# Seconds; urllib3 sleeps backoff_factor * 2**(retry - 1). Tests set it to 0.
BACKOFF_FACTOR: float = 0.5
RETRY_STATUSES: Final = (429, 500, 502, 503, 504)
_MAX_MESSAGE_CHARS: Final = 300


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


def get_response(
    session: requests.Session,
    url: str,
    *,
    source: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    """GET ``url``; transport failures become :class:`SourceError`. Any status is returned."""
    retries = _retries_of(session)
    after = f" after {retries} retries" if retries else ""
    try:
        return session.get(url, params=params, headers=headers)
    except requests.Timeout as exc:
        raise SourceError(f"{source}: timed out{after} on {url}") from exc
    except requests.ConnectionError as exc:
        raise SourceError(f"{source}: cannot connect{after} to {url}") from exc
    except requests.RequestException as exc:
        raise SourceError(f"{source}: request to {url} failed: {exc}") from exc


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
    url = response.url.split("?", 1)[0]
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
        raise SourceError(f"{source}: malformed JSON from {response.url}: {exc}") from exc


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
