"""The access decisions of ``app.auth``: who is staff, whether login is configured, which mode
the app serves in and when ``vz serve`` refuses to start."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import auth
from app.auth import Mode, StaffRule
from core.settings import Settings

RULE = StaffRule.of(
    emails=["Chief@NYPD.org"],
    domains=["nyc.gov", "*.cityhall.example"],
    groups=["VZ-Staff"],
)
GOOD_AUTH = {
    "redirect_uri": "https://vz.example.org/oauth2callback",
    "cookie_secret": "s" * 40,
    "client_id": "vz",
    "client_secret": "secret",
    "server_metadata_url": "https://idp.example.org/.well-known/openid-configuration",
}


@pytest.mark.parametrize(
    "email",
    [
        "ana@nyc.gov",
        "ANA@NYC.GOV",
        "  ana@Nyc.Gov ",
        "chief@nypd.org",
        "CHIEF@nypd.ORG",
        "x@police.cityhall.example",
        "x@a.b.cityhall.example",
    ],
)
def test_staff_by_address_or_domain(email: str) -> None:
    assert RULE.is_staff({"email": email})


@pytest.mark.parametrize(
    "email",
    [
        "ana@evilnyc.gov",  # a look-alike domain
        "ana@nyc.gov.evil.com",
        "ana@sub.nyc.gov",  # subdomains only when written *.nyc.gov
        "ana@cityhall.example",  # *.x covers subdomains, not x itself
        "nyc.gov@evil.com",
        "ana@nyc.gov@evil.com",
        "other@nypd.org",  # an address allow-list is not a domain allow-list
        "ana-nyc.gov",
        "@nyc.gov",
        "",
    ],
)
def test_not_staff(email: str) -> None:
    assert not RULE.is_staff({"email": email})


def test_unverified_address_does_not_count() -> None:
    assert not RULE.is_staff({"email": "ana@nyc.gov", "email_verified": False})
    assert RULE.is_staff({"email": "ana@nyc.gov", "email_verified": True})


@pytest.mark.parametrize(
    ("claims", "staff"),
    [
        ({"groups": ["readers", "vz-staff"]}, True),
        ({"groups": "VZ-STAFF"}, True),
        ({"groups": ["readers"]}, False),
        ({"groups": "vz-staff-not"}, False),
        ({"groups": None}, False),
        ({"groups": {"vz-staff": True}}, False),
        ({"roles": ["vz-staff"]}, False),  # another claim than the configured one
        ({}, False),
        ({"email": "ana@example.org", "groups": ["vz-staff"], "email_verified": False}, True),
    ],
)
def test_staff_by_groups_claim(claims: dict[str, object], staff: bool) -> None:
    assert RULE.is_staff(claims) is staff


def test_claim_name_comes_from_settings() -> None:
    settings = Settings(
        staff_groups="VZ-Staff, analysts", staff_groups_claim="roles", _env_file=None
    )
    rule = StaffRule.from_settings(settings)
    assert rule.groups == {"vz-staff", "analysts"}
    assert rule.is_staff({"roles": ["Analysts"]})
    assert not rule.is_staff({"groups": ["analysts"]})


def test_settings_read_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VZ_STAFF_EMAIL_DOMAINS", "nyc.gov, nypd.org")
    monkeypatch.setenv("VZ_STAFF_EMAILS", "a@example.org")
    monkeypatch.setenv("VZ_STAFF_GROUPS", '["CN=Staff,OU=Groups", "vz"]')
    settings = Settings()
    assert settings.staff_email_domains == ["nyc.gov", "nypd.org"]
    assert settings.staff_emails == ["a@example.org"]
    assert settings.staff_groups == ["CN=Staff,OU=Groups", "vz"]


def test_nobody_is_staff_without_a_rule() -> None:
    assert StaffRule.of().empty
    assert not StaffRule.of().is_staff({"email": "ana@nyc.gov", "groups": ["staff"]})


# ------------------------------------------------------------------------------------------
# login configuration


def test_complete_section_has_no_problems() -> None:
    assert auth.auth_problems(GOOD_AUTH) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"cookie_secret": None}, "lacks cookie_secret"),
        ({"client_secret": ""}, "lacks client_secret"),
        ({"server_metadata_url": None}, "lacks server_metadata_url"),
        ({"redirect_uri": "https://vz.example.org/"}, "must end with /oauth2callback"),
        ({"cookie_secret": "short"}, "shorter than 32"),
        ({"cookie_secret": auth.EXAMPLE_COOKIE_SECRET}, "placeholder"),
    ],
)
def test_section_problems(change: dict[str, object], problem: str) -> None:
    section = {k: v for k, v in {**GOOD_AUTH, **change}.items() if v is not None}
    assert problem in "; ".join(auth.auth_problems(section))


def test_example_secrets_file_is_refused_as_it_is(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / ".streamlit" / "secrets.toml.example"
    copied = tmp_path / "secrets.toml"
    copied.write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    section = auth.read_auth_section([copied])
    assert section is not None
    assert any("placeholder" in p for p in auth.auth_problems(section))


def test_secrets_files_follow_streamlit(tmp_path: Path) -> None:
    home, cwd, root = tmp_path / "home", tmp_path / "cwd", tmp_path / "root"
    files = auth.secrets_files(None, project_root=root, cwd=cwd, home=home)
    assert files == [p / ".streamlit" / "secrets.toml" for p in (home, cwd, root)]
    given = tmp_path / "s.toml"
    assert auth.secrets_files(given, project_root=root, cwd=cwd, home=home) == [given]
    from_env = auth.secrets_files(
        None, project_root=root, cwd=cwd, home=home, streamlit_env="/a.toml /b.toml"
    )
    assert from_env == [Path("/a.toml"), Path("/b.toml")]


def test_later_secrets_files_win(tmp_path: Path) -> None:
    first, second = tmp_path / "1.toml", tmp_path / "2.toml"
    first.write_text('[auth]\nclient_id = "one"\n')
    second.write_text('[auth]\nclient_id = "two"\n')
    assert auth.read_auth_section([first, tmp_path / "absent.toml", second]) == {"client_id": "two"}
    assert auth.read_auth_section([tmp_path / "absent.toml", first]) == {"client_id": "one"}
    with pytest.raises(FileNotFoundError):
        auth.read_auth_section([tmp_path / "absent.toml"])
    second.write_text("[auth\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        auth.read_auth_section([second])
    with pytest.raises(ValueError, match=r"ending in \.toml"):
        auth.read_auth_section([tmp_path / "secrets"])


# ------------------------------------------------------------------------------------------
# serving


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        (None, False),
        ("192.168.1.10", False),
        ("vz.example.org", False),
        ("unix:///run/app.sock", False),
    ],
)
def test_loopback(host: str | None, loopback: bool) -> None:
    assert auth.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("kwargs", "mode"),
    [
        ({"public_mode": True, "auth_ready": True}, Mode.PUBLIC),
        ({"auth_ready": True}, Mode.LOGIN),
        ({"auth_ready": True, "loopback": True}, Mode.LOGIN),
        ({"loopback": True}, Mode.OPEN),
        ({"loopback": True, "proxied": True}, Mode.LOCKED),
        ({}, Mode.LOCKED),
        ({"insecure_no_auth": True}, Mode.INSECURE),
    ],
)
def test_access_mode(kwargs: dict[str, bool], mode: Mode) -> None:
    base = {"public_mode": False, "auth_ready": False, "loopback": False, "insecure_no_auth": False}
    assert auth.access_mode(**{**base, **kwargs}) is mode


def test_proxy_headers() -> None:
    assert auth.behind_proxy({"X-Forwarded-For": "203.0.113.9", "Host": "vz"})
    assert not auth.behind_proxy({"Host": "127.0.0.1:8501", "User-Agent": "x"})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "vz.example.org"])
def test_serve_refuses_a_network_address_without_login(host: str) -> None:
    refusal = auth.serve_refusal(host=host, auth=None, insecure_no_auth=False, public_mode=False)
    assert refusal is not None
    assert host in refusal and "secrets.toml" in refusal and "--insecure-no-auth" in refusal
    assert "\n" not in refusal


@pytest.mark.parametrize(
    "kwargs",
    [
        {"host": "127.0.0.1", "auth": None},
        {"host": "0.0.0.0", "auth": GOOD_AUTH},
        {"host": "0.0.0.0", "auth": None, "insecure_no_auth": True},
        {"host": "0.0.0.0", "auth": None, "public_mode": True},
    ],
)
def test_serve_starts(kwargs: dict[str, object]) -> None:
    base: dict[str, object] = {"insecure_no_auth": False, "public_mode": False}
    assert auth.serve_refusal(**{**base, **kwargs}) is None  # type: ignore[arg-type]


def test_serve_refuses_a_broken_login_even_on_loopback() -> None:
    refusal = auth.serve_refusal(
        host="127.0.0.1",
        auth={**GOOD_AUTH, "cookie_secret": "short"},
        insecure_no_auth=False,
        public_mode=False,
    )
    assert refusal is not None and "cookie_secret" in refusal
