"""Who may see what: the access decisions, with no Streamlit in them.

Two roles. *Public* visitors see the public briefing and nothing else. *Staff* see every page.
Which one a visitor is depends on how the app is served (``access_mode``):

- ``PUBLIC``: ``VZ_PUBLIC_MODE=1`` serves only the briefing, to everyone.
- ``LOGIN``: an ``[auth]`` section (Streamlit's built-in OIDC, ``st.login``) is configured;
  a signed-in visitor is staff when ``StaffRule`` says so (an allow-list of e-mail addresses
  and domains, or a groups claim); everyone else is public.
- ``OPEN``: no login configured and the server listens on loopback only (``make run``, the
  demo): every page, no login, as on a laptop.
- ``INSECURE``: no login configured, on a network address, and the operator passed
  ``vz serve --insecure-no-auth``: every page to anyone, under a warning banner.
- ``LOCKED``: no login configured on a network address without that flag (or behind a proxy):
  only the briefing; the staff pages say how to configure login. ``vz serve`` refuses to
  start in this case, so it is reached only by running ``streamlit run`` directly.
"""

from __future__ import annotations

import enum
import ipaddress
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from core.settings import Settings

REDIRECT_PATH: Final = "/oauth2callback"
MIN_COOKIE_SECRET_CHARS: Final = 32
# The placeholder of .streamlit/secrets.toml.example: refused, the operator sets their own.
EXAMPLE_COOKIE_SECRET: Final = "replace-with-the-output-of-python-secrets-token-urlsafe-32"
PROVIDER_KEYS: Final = ("client_id", "client_secret", "server_metadata_url")
PROXY_HEADERS: Final = ("x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host")
SECRETS_HINT: Final = (
    "configure login in .streamlit/secrets.toml (copy .streamlit/secrets.toml.example; "
    'README "Serving safely")'
)


class Mode(enum.Enum):
    PUBLIC = "public"
    LOGIN = "login"
    OPEN = "open"
    INSECURE = "insecure"
    LOCKED = "locked"

    @property
    def everyone_is_staff(self) -> bool:
        """Every visitor sees every page, without signing in."""
        return self in (Mode.OPEN, Mode.INSECURE)


# ------------------------------------------------------------------------------------------
# staff


def _norm(value: str) -> str:
    return value.strip().casefold()


def email_domain(email: str) -> str | None:
    """The domain of an e-mail address (lower case), or None when it is not one."""
    local, at, domain = _norm(email).rpartition("@")
    if not at or not local or not domain or "@" in domain:
        return None
    return domain


def _domain_allowed(domain: str, allowed: frozenset[str]) -> bool:
    """Exact match, or a subdomain of an entry written ``*.example.org``. A look-alike such
    as ``evilnyc.gov`` never matches ``nyc.gov``."""
    if domain in allowed:
        return True
    parts = domain.split(".")
    return any(f"*.{'.'.join(parts[i:])}" in allowed for i in range(1, len(parts)))


def _claim_values(value: Any) -> list[str]:
    """A groups claim as a list of names: a list of strings, or one string."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, Mapping | bytes):
        return [str(item) for item in value if isinstance(item, str | int)]
    return []


@dataclass(frozen=True)
class StaffRule:
    """Who counts as staff: an allow-list of e-mail addresses and domains, or membership of
    a group named in an ID-token claim. Everything compares case-insensitively."""

    emails: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    groups_claim: str = "groups"

    @classmethod
    def of(
        cls,
        *,
        emails: Iterable[str] = (),
        domains: Iterable[str] = (),
        groups: Iterable[str] = (),
        groups_claim: str = "groups",
    ) -> StaffRule:
        return cls(
            emails=frozenset(_norm(e) for e in emails if e.strip()),
            domains=frozenset(_norm(d).lstrip("@") for d in domains if d.strip()),
            groups=frozenset(_norm(g) for g in groups if g.strip()),
            groups_claim=groups_claim.strip() or "groups",
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> StaffRule:
        return cls.of(
            emails=settings.staff_emails,
            domains=settings.staff_email_domains,
            groups=settings.staff_groups,
            groups_claim=settings.staff_groups_claim,
        )

    @property
    def empty(self) -> bool:
        return not (self.emails or self.domains or self.groups)

    def is_staff(self, claims: Mapping[str, Any]) -> bool:
        """Whether a signed-in user with these ID-token claims is staff. An address the
        provider marks unverified (``email_verified: false``) does not count; groups do."""
        email = claims.get("email")
        if isinstance(email, str) and claims.get("email_verified") is not False:
            domain = email_domain(email)
            if domain is not None and (
                _norm(email) in self.emails or _domain_allowed(domain, self.domains)
            ):
                return True
        if self.groups:
            member_of = {_norm(g) for g in _claim_values(claims.get(self.groups_claim))}
            if member_of & self.groups:
                return True
        return False


# ------------------------------------------------------------------------------------------
# login configuration ([auth] in Streamlit's secrets)


def auth_problems(section: Mapping[str, Any] | None) -> list[str]:
    """What keeps an ``[auth]`` section from working with ``st.login()`` (empty: it works).

    The default provider is used, so ``client_id``, ``client_secret`` and
    ``server_metadata_url`` sit in ``[auth]`` itself, beside ``redirect_uri`` and
    ``cookie_secret``.
    """
    if not section:
        return ["no [auth] section"]
    problems = []
    missing = [
        key
        for key in ("redirect_uri", "cookie_secret", *PROVIDER_KEYS)
        if not str(section.get(key) or "").strip()
    ]
    if missing:
        problems.append(f"[auth] lacks {', '.join(missing)}")
    redirect = str(section.get("redirect_uri") or "")
    if redirect and not redirect.rstrip().endswith(REDIRECT_PATH):
        problems.append(f"redirect_uri must end with {REDIRECT_PATH}")
    secret = str(section.get("cookie_secret") or "")
    if secret == EXAMPLE_COOKIE_SECRET:
        problems.append("cookie_secret is the example's placeholder: generate your own")
    elif secret and len(secret) < MIN_COOKIE_SECRET_CHARS:
        problems.append(f"cookie_secret is shorter than {MIN_COOKIE_SECRET_CHARS} characters")
    return problems


def secrets_files(
    explicit: Path | None,
    *,
    project_root: Path,
    cwd: Path,
    home: Path,
    streamlit_env: str | None = None,
) -> list[Path]:
    """The secrets files Streamlit reads, in its order (later files win): the one given,
    else those of ``STREAMLIT_SECRETS_FILES`` (``streamlit_env``), else ``~/.streamlit``'s,
    the working directory's and the app's ``.streamlit/secrets.toml``."""
    if explicit is not None:
        return [explicit]
    if streamlit_env and streamlit_env.split():
        return [Path(item) for item in streamlit_env.split()]
    candidates = [home, cwd, project_root]
    paths: list[Path] = []
    for folder in candidates:
        path = folder / ".streamlit" / "secrets.toml"
        if path not in paths:
            paths.append(path)
    return paths


def read_auth_section(paths: Sequence[Path]) -> dict[str, Any] | None:
    """The ``[auth]`` section the files add up to (top-level keys of later files win, as in
    Streamlit), or None. A file that is given explicitly must exist; any file must parse."""
    merged: dict[str, Any] = {}
    for path in paths:
        if path.suffix != ".toml":
            raise ValueError(f"{path}: Streamlit reads secrets only from a file ending in .toml")
        if not path.is_file():
            if len(paths) == 1:
                raise FileNotFoundError(f"{path}: no such secrets file")
            continue
        try:
            merged.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    section = merged.get("auth")
    return dict(section) if isinstance(section, Mapping) else None


# ------------------------------------------------------------------------------------------
# serving


def is_loopback(host: str | None) -> bool:
    """Whether a listen address only accepts connections from this machine. ``None`` (all
    interfaces, Streamlit's default), wildcards, Unix sockets and names other than
    ``localhost`` are not."""
    if not host:
        return False
    name = host.strip().strip("[]").casefold()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def behind_proxy(headers: Mapping[str, str]) -> bool:
    """Whether a request came through a reverse proxy (which makes a loopback server public)."""
    return any(name.casefold() in PROXY_HEADERS for name in headers)


def access_mode(
    *,
    public_mode: bool,
    auth_ready: bool,
    loopback: bool,
    insecure_no_auth: bool,
    proxied: bool = False,
) -> Mode:
    """How the app serves this visitor (see the module docstring)."""
    if public_mode:
        return Mode.PUBLIC
    if auth_ready:
        return Mode.LOGIN
    if insecure_no_auth:
        return Mode.INSECURE
    if loopback and not proxied:
        return Mode.OPEN
    return Mode.LOCKED


def serve_refusal(
    *, host: str, auth: Mapping[str, Any] | None, insecure_no_auth: bool, public_mode: bool
) -> str | None:
    """Why ``vz serve`` must not start (one line), or None when it may."""
    if auth is not None and (problems := auth_problems(auth)):
        return f"login is misconfigured: {'; '.join(problems)}"
    if auth is not None or public_mode or insecure_no_auth or is_loopback(host):
        return None
    return (
        f"refusing to serve every page on {host} without login: {SECRETS_HINT}, "
        "or pass --insecure-no-auth to let anyone who can reach the port see them"
    )
