"""Normalisation examples a reviewer can read (the properties live in tests/property)."""

from __future__ import annotations

import pytest

from medic.services.analyzer.fingerprint import fingerprint, normalise_line


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("2024-01-02T03:04:05.123Z done in 0.53s", "<time> done in <dur>"),
        ("connect ECONNREFUSED 127.0.0.1:5432", "connect ECONNREFUSED <ip>"),
        ("open /tmp/pytest-of-runner/pytest-3/x/f.txt: denied", "open <tmp>: denied"),
        ('File "/home/runner/work/app/app/src/orders.py", line 42', 'File "<ws><path>/orders.py", line <n>'),
        ("commit a1b2c3d4e5 at 0x7ffeefbff5c8", "commit <hash> at <hex>"),
        ("id 123e4567-e89b-12d3-a456-426614174000", "id <uuid>"),
        ("took 12m 3s at 10:22:01", "took <dur> <dur> at <time>"),
        ("  words   stay  facade  ", "words stay facade"),
    ],
)
def test_normalise_line(raw: str, normalised: str) -> None:
    assert normalise_line(raw) == normalised


def test_blank_lines_do_not_count_and_only_the_first_lines_do() -> None:
    assert fingerprint(["a", "", "b"]) == fingerprint(["a", "b"])
    many = [f"line {chr(97 + i)}" for i in range(20)]
    assert fingerprint(many) == fingerprint([*many[:12], "something else"])
