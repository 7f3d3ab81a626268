"""Secrets never leave the process: each kind, hostile input, and the invariants."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medic.redact import MARKER_PREFIX, SECRET_KINDS, SECRET_PATTERN, count_secrets, redact
from tests.property.strategies import SECRET_FORMATS, redaction_texts, texts_with_secrets

GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
KEY_BLOCK = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "QyNTUxOQAAACDx\n"
    "-----END OPENSSH PRIVATE KEY-----"
)

CASES: list[tuple[str, str, str]] = [
    (f"token is {GHP} ok", GHP, "github_token"),
    ("gho_" + "x" * 36, "gho_" + "x" * 36, "github_token"),
    ("ghu_" + "Y" * 36, "ghu_" + "Y" * 36, "github_token"),
    ("ghs_" + "z9" * 18, "ghs_" + "z9" * 18, "github_token"),
    ("ghr_" + "a" * 40, "ghr_" + "a" * 40, "github_token"),
    ("github_pat_11ABCDEFG0_" + "q" * 59, "github_pat_11ABCDEFG0_" + "q" * 59, "github_token"),
    ("slack xoxb-1234567890-0987654321-AbCdEfGh", "xoxb-1234567890-0987654321-AbCdEfGh", "slack_token"),
    ("xoxp-1111111111-abcdefghij", "xoxp-1111111111-abcdefghij", "slack_token"),
    ("xoxa-2-abcdefghijkl", "xoxa-2-abcdefghijkl", "slack_token"),
    ("xoxs-abcdefghij12", "xoxs-abcdefghij12", "slack_token"),
    ("xapp-1-A0123-4567-abcdef", "xapp-1-A0123-4567-abcdef", "slack_token"),
    ("id AKIAIOSFODNN7EXAMPLE here", "AKIAIOSFODNN7EXAMPLE", "aws_access_key_id"),
    ("ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A", "aws_access_key_id"),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key",
    ),
    (
        'AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key",
    ),
    (f"before\n{KEY_BLOCK}\nafter", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "private_key"),
    (f"id_token={JWT}", JWT, "token"),
    (f"cookie {JWT}", JWT, "jwt"),
    ("git clone https://bob:hunter2@github.com/o/r.git", "bob:hunter2", "url_credentials"),
    ("postgres://app:s3cr3t!@db:5432/medic", "app:s3cr3t!", "url_credentials"),
    ("password=hunter2", "hunter2", "password"),
    ("DB_PASSWORD='correct horse'", "correct horse", "password"),
    ('{"passwd": "p@ss w0rd"}', "p@ss w0rd", "password"),
    ("passwd: letmein", "letmein", "password"),
    ("client_secret=abc123def", "abc123def", "secret"),
    ("NPM_TOKEN=npm_abcdef0123456789", "npm_abcdef0123456789", "token"),
    ("api_key: sk-live-0123456789", "sk-live-0123456789", "api_key"),
    ('"apiKey":"AIzaSyD-0123456789"', "AIzaSyD-0123456789", "api_key"),
    ("Authorization: Bearer abc.def-ghi", "abc.def-ghi", "authorization"),
    ("authorization: token 0123456789abcdef", "0123456789abcdef", "authorization"),
    ("curl -H 'Authorization: Basic dXNlcjpwYXNz'", "dXNlcjpwYXNz", "authorization"),
    ("sent Bearer abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345", "bearer"),
]


@pytest.mark.parametrize(("text", "secret", "kind"), CASES, ids=[c[2] + str(i) for i, c in enumerate(CASES)])
def test_each_secret_kind_is_replaced_by_its_marker(text: str, secret: str, kind: str) -> None:
    out = redact(text)
    assert secret not in out
    assert f"[REDACTED:{kind}]" in out
    assert kind in SECRET_KINDS


SecretFormat = dict[str, Any]
FORMATS: list[SecretFormat] = SECRET_FORMATS
IN_CONTEXT = [(f, context) for f in FORMATS for context in f["contexts"]]
STANDALONE = [f for f in FORMATS if f["standalone"]]
ANY_PLACE = [
    "{secret}",
    " {secret} ",
    "\n{secret}\n",
    '"{secret}"',
    "'{secret}'",
    "({secret})",
    "{secret}.",
    "::debug::{secret}",
]


def leaked(secret: str, text: str) -> list[str]:
    """Pieces of ``secret`` still in ``text``: the literal, or any 12 characters of it.

    The oracle is the inserted literal, never the redaction pattern: a format the pattern
    does not know, or cuts short, shows up here.
    """
    width = min(12, len(secret))
    return sorted({secret[i : i + width] for i in range(len(secret) - width + 1)} & _windows(text, width))


def _windows(text: str, width: int) -> set[str]:
    return {text[i : i + width] for i in range(len(text) - width + 1)}


def test_the_format_list_covers_what_the_issue_names() -> None:
    names = " ".join(f["format"] for f in FORMATS)
    for prefix in (
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "AKIA",
        "xoxb-",
        "xoxp-",
        "xapp-",
        "eyJ",
        "npm_",
        "pypi-",
    ):
        assert any(f["secret"].startswith(prefix) for f in FORMATS), prefix
    for kind in ("aws secret access key", "slack incoming webhook", "pem", "url", "private key"):
        assert kind in names, kind


@pytest.mark.parametrize(
    ("secret_format", "context"),
    IN_CONTEXT,
    ids=[f"{f['format']}:{i}" for i, (f, _) in enumerate(IN_CONTEXT)],
)
def test_every_known_format_is_redacted_where_logs_print_it(
    secret_format: SecretFormat, context: str
) -> None:
    secret = secret_format["secret"]
    text = context.format(secret=secret)
    out = redact(text)
    assert not leaked(secret, out), out
    assert MARKER_PREFIX in out
    assert out.count("\n") == text.count("\n"), "excerpt line numbers must survive redaction"


@pytest.mark.parametrize("secret_format", STANDALONE, ids=[f["format"] for f in STANDALONE])
@pytest.mark.parametrize("place", ANY_PLACE)
def test_a_format_recognisable_by_shape_is_redacted_with_no_context(
    secret_format: SecretFormat, place: str
) -> None:
    secret = secret_format["secret"]
    out = redact(place.format(secret=secret))
    assert not leaked(secret, out), out


def test_context_around_a_secret_is_kept() -> None:
    out = redact("git clone https://bob:hunter2@github.com/o/r.git && echo done")
    assert out == "git clone https://[REDACTED:url_credentials]@github.com/o/r.git && echo done"
    assert redact("export DB_PASSWORD=x1; make") == "export DB_PASSWORD=[REDACTED:password]; make"


def test_private_key_keeps_line_count_so_excerpt_numbers_still_match() -> None:
    text = f"a\n{KEY_BLOCK}\nb"
    out = redact(text)
    assert out.count("\n") == text.count("\n")
    assert out.splitlines()[0] == "a" and out.splitlines()[-1] == "b"


def test_truncated_private_key_is_redacted_to_the_end() -> None:
    out = redact("x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0123\nMIIEo")
    assert "MIIE" not in out
    assert out.startswith("x\n[REDACTED:private_key]")


@pytest.mark.parametrize(
    "text",
    [
        "Ran 12 tests in 0.3s\nFAILED (failures=1)",
        "AssertionError: assert 1 == 2",
        "npm ERR! code ECONNRESET",
        "token count: 42",
        "the password prompt appeared",
        "ghp_short",
        "https://github.com/o/r/actions/runs/1",
    ],
)
def test_ordinary_log_text_is_untouched(text: str) -> None:
    assert redact(text) == text


def test_markers_are_not_redacted_again() -> None:
    once = redact(f"password={GHP} {JWT} https://u:p@h Authorization: Bearer xyz0123456789abcdef")
    assert redact(once) == once
    assert count_secrets(once) == 0


HOSTILE = [
    "eyJ" * 700_000,
    "eyJa." * 400_000,
    "-----BEGIN PRIVATE KEY-----\n" * 80_000,
    "password=" * 250_000,
    "https://a:" * 250_000,
    "ghp_" * 500_000,
    "Bearer " * 300_000,
    "a_token_" * 300_000,
    "x" * 3_000_000,
    ("DB_PASSWORD=hunter2 " + GHP + "\n") * 20_000,
]


@pytest.mark.parametrize("text", HOSTILE, ids=[t[:12] for t in HOSTILE])
def test_hostile_multi_megabyte_input_leaves_no_secret(text: str) -> None:
    out = redact(text)
    assert count_secrets(out) == 0
    for literal in ("hunter2", GHP):  # the secrets some of these inputs carry, checked as literals
        assert literal not in out


def test_the_patterns_run_on_re2_so_hostile_input_stays_linear() -> None:
    # RE2 guarantees linear time by construction; a backtracking engine would not
    assert type(SECRET_PATTERN).__module__.split(".")[0] == "re2"


def test_a_ten_megabyte_log_keeps_everything_but_its_one_secret() -> None:
    line = "2024-05-01T12:00:00.1234567Z npm ERR! network request to https://registry.npmjs.org failed\n"
    text = line * (10_000_000 // len(line)) + f"GITHUB_TOKEN={GHP}\n"
    out = redact(text)
    assert GHP not in out and out.count(MARKER_PREFIX) == 1


_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(redaction_texts)
def test_redact_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@_SETTINGS
@given(texts_with_secrets())
def test_no_inserted_secret_survives_hostile_surroundings(text_and_secrets: tuple[str, list[str]]) -> None:
    text, secrets = text_and_secrets
    out = redact(text)
    for secret in secrets:
        assert not leaked(secret, out), (secret, out)


@_SETTINGS
@given(redaction_texts)
def test_redact_leaves_nothing_its_own_pattern_still_sees(text: str) -> None:
    # a consistency check of the pattern with itself; the oracle is the literal test above
    assert count_secrets(redact(text)) == 0


@_SETTINGS
@given(st.text(max_size=200))
def test_text_without_secrets_is_unchanged(text: str) -> None:
    if count_secrets(text) == 0:
        assert redact(text) == text
