"""Outside text in Slack messages: no mention, link or formatting can be smuggled through."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from medic.slack import mrkdwn

HOSTILE = [
    "<!channel> deploy now",
    "<!here|here>",
    "<@U0ADMIN01> approve this",
    "<https://evil.example/approve|Approve>",
    "*bold* _italic_ ~strike~ `code`",
    "```\n</code> escape```",
    "a & b > c < d",
    "line\nbreak\u2028sep\u202eevil",
]
_CONTROL_SEQUENCE = re.compile(r"<[!@#]|<https?:|\|[^>]*>")


def test_hostile_text_is_shown_not_interpreted() -> None:
    for text in HOSTILE:
        for rendered in (mrkdwn.escape(text), mrkdwn.code(text), mrkdwn.code_block([text])):
            assert "<" not in rendered and ">" not in rendered.replace("&gt;", ""), rendered
            assert not _CONTROL_SEQUENCE.search(rendered)
    assert mrkdwn.escape("*bold*").count("*") == 0
    assert mrkdwn.code("a`b`c").count("`") == 2  # only the span's own marks
    assert mrkdwn.code_block(["```", "x"]).count("```") == 2
    assert "\n" not in mrkdwn.escape("a\nb") and "\u202e" not in mrkdwn.plain("x\u202ey")


def test_links_only_for_http_urls_and_labels_escaped() -> None:
    assert mrkdwn.link("https://github.com/o/r/actions/runs/1", "run 1") == (
        "<https://github.com/o/r/actions/runs/1|run 1>"
    )
    assert mrkdwn.link("javascript:alert(1)", "run") == "run"
    assert mrkdwn.link("https://x.example/|<!channel>", "run") == "run"
    assert "<!channel>" not in mrkdwn.link("https://ok.example", "<!channel>")


def test_long_text_is_cut() -> None:
    assert len(mrkdwn.plain("x" * 1000, 50)) == 50
    assert len(mrkdwn.code_block([str(n) for n in range(100)], max_lines=5).splitlines()) == 7


@given(st.text())
def test_no_text_survives_as_a_control_sequence(text: str) -> None:
    for rendered in (mrkdwn.escape(text), mrkdwn.code(text)):
        assert "<" not in rendered and ">" not in rendered


def test_signature_verification_takes_any_bytes_and_refuses_stale_or_forged() -> None:
    from medic.slack.signing import signature, verify

    body = b"\xff\xfe not utf-8"
    good = signature("s", "1700000000", body)
    assert verify("s", body, "1700000000", good, now=1700000100)
    assert not verify("s", body, "1700000000", good, now=1700000301)  # older than five minutes
    assert not verify("t", body, "1700000000", good, now=1700000000)
    assert not verify("s", body + b"x", "1700000000", good, now=1700000000)
    assert not verify("s", body, "17e8", good, now=1700000000)
    assert not verify("", body, "1700000000", signature("", "1700000000", body), now=1700000000)
    assert not verify("s", body, "1700000000", "v0=\u00e9", now=1700000000)
