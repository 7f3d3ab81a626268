"""``medic analyze``: one JSON object, a readable report, exit 2 for an unreadable file."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from medic.services.analyzer.offline import analyze_file


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=120, color_system=None), buffer


def write_log(tmp_path: Path) -> Path:
    log = tmp_path / "job.log"
    lines = [f"2025-01-01T00:00:00.0000000Z setup {i}" for i in range(100)]
    lines += [
        "[bold red]not markup[/]",
        "npm ERR! code ECONNRESET",
        "##[error]Process completed with exit code 1.",
    ]
    log.write_text("\n".join(lines), encoding="utf-8")
    return log


def run_json(path: Path, **options: object) -> dict[str, object]:
    out, _ = console()
    stdout = io.StringIO()
    assert analyze_file(path, as_json=True, console=out, stdout=stdout, **options) == 0  # type: ignore[arg-type]
    text = stdout.getvalue()
    assert text.count("\n") == 1, "one JSON object on one line"
    document: dict[str, object] = json.loads(text)
    return document


def test_json_is_one_object_with_the_agreed_keys(tmp_path: Path) -> None:
    document = run_json(write_log(tmp_path))
    assert {"category", "risk", "confidence", "action", "fingerprint", "method", "excerpt"} <= set(document)
    assert document["category"] == "infrastructure"
    assert document["action"]["kind"] == "rerun_failed_jobs"
    assert document["method"] == "rules"
    assert {"line": 102, "text": "npm ERR! code ECONNRESET"} in document["excerpt"]


def test_report_shows_original_line_numbers_and_log_text_verbatim(tmp_path: Path) -> None:
    out, buffer = console()
    assert analyze_file(write_log(tmp_path), as_json=False, console=out) == 0
    report = buffer.getvalue()
    for expected in (
        "infrastructure",
        "rerun_failed_jobs",
        "fingerprint",
        "rules",
        "102 │ npm ERR! code ECONNRESET",
    ):
        assert expected in report
    assert "[bold red]not markup[/]" in report


def test_missing_or_unreadable_file_exits_2_with_a_message(tmp_path: Path) -> None:
    out, buffer = console()
    assert analyze_file(tmp_path / "nope.log", as_json=True, console=out) == 2
    assert "cannot read" in buffer.getvalue() and "no such file" in buffer.getvalue()
    out, buffer = console()
    assert analyze_file(tmp_path, as_json=False, console=out) == 2
    assert "not a regular file" in buffer.getvalue()


def test_json_is_exact_no_markup_no_emoji(tmp_path: Path) -> None:
    """rich used to turn ``:end:`` into an emoji and ``[bold]`` into style in --json."""
    log = tmp_path / "job.log"
    weird = "Error: ended at :end: with [bold]x[/bold] and :thumbs_up: \\u0000 “quotes”"
    log.write_text(
        f"##[group]Run make\n{weird}\n##[error]Process completed with exit code 2.\n", encoding="utf-8"
    )
    document = run_json(log)
    texts = [line["text"] for line in document["excerpt"]]  # type: ignore[attr-defined, index]
    assert weird in texts


SEEDED_SECRETS = {
    "github": "ghp_" + "Zq9" * 12,
    "github_pat": "github_pat_11AAAAAAA0_" + "k" * 59,
    "aws_id": "AKIAZ7Q3EXAMPLE4KEYS",
    "aws_secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9EXAMPLE",
    "slack": "xoxb-2222222222-3333333333-QwErTyUiOpAs",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjaS1tZWRpYyJ9"
    ".c2lnbmF0dXJlX29mX3RoZV90b2tlbl9oZXJl",
    "password": "hunter2-very-secret",
    "url_password": "s3cr3tP4ss",
    "pem_body": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
    "npm": "npm_" + "a1B2c3D4e5" * 3 + "ABCDEF",
}


def secret_log(tmp_path: Path) -> Path:
    log = tmp_path / "secrets.log"
    s = SEEDED_SECRETS
    body = [
        "##[group]Run ./deploy.sh",
        f"Error: push failed with token {s['github']}",
        f"Error: fine-grained {s['github_pat']}",
        f"AWS_ACCESS_KEY_ID={s['aws_id']} error: denied",
        f"aws_secret_access_key = {s['aws_secret']}",
        f"Error: slack {s['slack']}",
        f"Error: Authorization: Bearer {s['jwt']}",
        f"DB_PASSWORD={s['password']} FAILED",
        f"fatal: could not read from https://deploy:{s['url_password']}@github.com/o/r.git",
        "-----BEGIN RSA PRIVATE KEY-----",
        s["pem_body"],
        "-----END RSA PRIVATE KEY-----",
        f"npm ERR! //registry.npmjs.org/:_authToken={s['npm']}",
        "##[error]Process completed with exit code 1.",
    ]
    log.write_text("\n".join(f"2025-01-01T00:00:00.0000000Z {line}" for line in body), encoding="utf-8")
    return log


def test_seeded_secrets_are_absent_from_json_and_text_output(tmp_path: Path) -> None:
    log = secret_log(tmp_path)
    out, buffer = console()
    stdout = io.StringIO()
    assert analyze_file(log, as_json=True, console=out, stdout=stdout) == 0
    assert analyze_file(log, as_json=False, console=out) == 0
    document = json.loads(stdout.getvalue())
    shown = {line["line"] for line in document["excerpt"]}
    assert set(range(2, 14)) <= shown, "the secret lines are in the excerpt, so the test means something"
    for output in (stdout.getvalue(), buffer.getvalue()):
        leaked = [name for name, literal in SEEDED_SECRETS.items() if literal in output]
        assert leaked == []


def test_baseline_ranks_the_new_lines_and_says_so(tmp_path: Path) -> None:
    common = [f"2025-01-0{d}T00:00:00.0000000Z step output {n}" for d in (1,) for n in range(300)]
    passing = tmp_path / "pass.log"
    failing = tmp_path / "fail.log"
    passing.write_text("\n".join(["##[group]Run make test", *common, "all good"]), encoding="utf-8")
    new = "2025-01-02T00:00:00.0000000Z the total came out as 2, not 3"
    failing.write_text(
        "\n".join(
            [
                "##[group]Run make test",
                *common[:150],
                new,
                *common[150:],
                "##[error]Process completed with exit code 1.",
            ]
        ),
        encoding="utf-8",
    )
    with_baseline = run_json(failing, baseline=passing, max_lines=10)
    without = run_json(failing, max_lines=10)
    assert with_baseline["baseline_used"] is True and without["baseline_used"] is False
    assert 152 in {line["line"] for line in with_baseline["excerpt"]}  # type: ignore[attr-defined, index]
    assert 152 not in {line["line"] for line in without["excerpt"]}  # type: ignore[attr-defined, index]


def test_missing_baseline_exits_2(tmp_path: Path) -> None:
    out, buffer = console()
    assert analyze_file(write_log(tmp_path), as_json=True, console=out, baseline=tmp_path / "none.log") == 2
    assert "none.log" in buffer.getvalue()


def test_a_passing_jobs_log_is_reported_as_none(tmp_path: Path) -> None:
    log = tmp_path / "pass.log"
    log.write_text(
        "##[group]Run make test\nall good\n##[endgroup]\nCleaning up orphan processes\n", encoding="utf-8"
    )
    document = run_json(log)
    assert document["category"] == "none" and document["job_passed"] is True
