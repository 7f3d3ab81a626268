"""The compiled-rules cache: a second process loads instead of compiling, and a bad file is rebuilt.

A cache file is an input like any other: truncated, flipped, emptied, swapped for another
rule base's file, or well-formed but not a Hyperscan database, it must be ignored (the rules
are compiled again and the file rewritten), never trusted, and the matches never change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medic.events import Category
from medic.services.analyzer import matcher as matcher_module
from medic.services.analyzer.compiled_rules import (
    CompiledLayer,
    CompiledRulesCache,
    decode_layers,
    default_cache_dir,
    encode_layers,
)
from medic.services.analyzer.matcher import Matcher
from medic.services.analyzer.rules import Rule

needs_hyperscan = pytest.mark.requires(matcher_module.hyperscan_available(), "hyperscan (pip: hyperscan)")

LINES = [
    "npm ERR! code ECONNRESET",
    "all good here",
    "src/main.c:12:3: error: 'x' undeclared",
    "FATAL: no space left on device",
    "fine",
]


def rules(*extra: str) -> list[Rule]:
    return [
        Rule(
            name="net",
            patterns=(r"\bECONNRESET\b",),
            category=Category.INFRASTRUCTURE,
            risk_floor=1,
            confidence=0.9,
        ),
        Rule(
            name="cc",
            patterns=(r"^\S+:\d+:\d+: error:", *extra),
            category=Category.COMPILE,
            risk_floor=5,
            confidence=0.9,
        ),
        Rule(
            name="disk",
            patterns=("no space left",),
            category=Category.INFRASTRUCTURE,
            risk_floor=1,
            confidence=0.9,
        ),
    ]


def only_file(directory: Path) -> Path:
    files = sorted(directory.glob("rules-*.hsdb"))
    assert len(files) == 1, files
    return files[0]


@needs_hyperscan
def test_second_matcher_loads_what_the_first_compiled(tmp_path: Path) -> None:
    cache = CompiledRulesCache(tmp_path)
    first = Matcher(rules(), engine="hyperscan", cache=cache)
    second = Matcher(rules(), engine="hyperscan", cache=cache)
    assert (first.source, second.source) == ("compiled", "cache")
    expected = Matcher(rules(), engine="re2").scan_lines(LINES)
    assert expected == [(0, 0), (2, 1), (3, 2)]
    assert first.scan_lines(LINES) == second.scan_lines(LINES) == expected


@needs_hyperscan
def test_other_rules_get_their_own_file(tmp_path: Path) -> None:
    cache = CompiledRulesCache(tmp_path)
    Matcher(rules(), engine="hyperscan", cache=cache)
    changed = Matcher(rules("undefined reference"), engine="hyperscan", cache=cache)
    assert changed.source == "compiled"
    assert len(list(tmp_path.glob("rules-*.hsdb"))) == 2


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


@needs_hyperscan
@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(_flip_last_byte, id="flipped"),
        pytest.param(lambda data: b"\x00" * len(data), id="zeroed"),
        pytest.param(lambda data: b"not a cache file at all\n" * 100, id="garbage"),
        pytest.param(lambda data: data + b"trailing", id="appended"),
    ],
)
def test_a_damaged_file_is_ignored_and_rebuilt(tmp_path: Path, damage: object) -> None:
    cache = CompiledRulesCache(tmp_path)
    Matcher(rules(), engine="hyperscan", cache=cache)
    path = only_file(tmp_path)
    good = path.read_bytes()
    path.write_bytes(damage(good))  # type: ignore[operator]
    rebuilt = Matcher(rules(), engine="hyperscan", cache=cache)
    assert rebuilt.source == "compiled"
    assert rebuilt.scan_lines(LINES) == Matcher(rules(), engine="re2").scan_lines(LINES)
    assert Matcher(rules(), engine="hyperscan", cache=cache).source == "cache"


@needs_hyperscan
def test_another_rule_base_file_under_this_name_is_ignored(tmp_path: Path) -> None:
    cache = CompiledRulesCache(tmp_path)
    Matcher(rules("undefined reference"), engine="hyperscan", cache=cache)
    foreign = only_file(tmp_path).read_bytes()
    ours = Matcher(rules(), engine="hyperscan", cache=cache)
    mine = next(p for p in tmp_path.glob("rules-*.hsdb") if p.read_bytes() != foreign)
    mine.write_bytes(foreign)
    again = Matcher(rules(), engine="hyperscan", cache=cache)
    assert again.source == "compiled"
    assert again.scan_lines(LINES) == ours.scan_lines(LINES)


@needs_hyperscan
@pytest.mark.parametrize(
    "layer",
    [
        pytest.param(
            CompiledLayer(accepted=(0, 1, 2, 3), refused=(), database=b"\x00" * 64), id="not-a-database"
        ),
        pytest.param(CompiledLayer(accepted=(0, 1), refused=(), database=None), id="patterns-missing"),
        pytest.param(
            CompiledLayer(accepted=(0, 1, 2, 9), refused=(), database=None), id="index-out-of-range"
        ),
        pytest.param(CompiledLayer(accepted=(0, 0, 1, 2), refused=(), database=None), id="index-twice"),
    ],
)
def test_a_well_signed_but_wrong_payload_is_ignored(tmp_path: Path, layer: CompiledLayer) -> None:
    cache = CompiledRulesCache(tmp_path)
    Matcher(rules(), engine="hyperscan", cache=cache)
    key = only_file(tmp_path).name.removeprefix("rules-").removesuffix(".hsdb")
    assert cache.store(key, encode_layers([layer]))
    rebuilt = Matcher(rules(), engine="hyperscan", cache=cache)
    assert rebuilt.source == "compiled"
    assert rebuilt.scan_lines(LINES) == Matcher(rules(), engine="re2").scan_lines(LINES)


@needs_hyperscan
def test_an_unwritable_cache_only_costs_the_compile(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    cache = CompiledRulesCache(blocked / "cache")
    first = Matcher(rules(), engine="hyperscan", cache=cache)
    second = Matcher(rules(), engine="hyperscan", cache=cache)
    assert (first.source, second.source) == ("compiled", "compiled")
    assert second.scan_lines(LINES) == Matcher(rules(), engine="re2").scan_lines(LINES)


def test_cache_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "ci-medic"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "ci-medic"


def test_layers_round_trip() -> None:
    layers = [CompiledLayer(accepted=(0, 2), refused=(1,), database=b"db-bytes")]
    assert decode_layers(encode_layers(layers), patterns=3) == layers
    assert decode_layers(encode_layers(layers), patterns=2) is None


@given(st.binary(max_size=512))
def test_any_payload_decodes_to_layers_or_none(payload: bytes) -> None:
    decoded = decode_layers(payload, patterns=4)
    assert decoded is None or all(isinstance(layer, CompiledLayer) for layer in decoded)
