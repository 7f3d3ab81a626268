"""The weakening check and the exact application of a fix's edits: each rule refuses by name."""

from __future__ import annotations

import pytest

from medic.events import FileEdit
from medic.services.executor.edits import EditRefused, apply_edits, fix_branch
from medic.services.executor.weakening import weakenings


def rules(path: str, old: str, new: str) -> list[str]:
    return [w.rule for w in weakenings([FileEdit(path=path, old_text=old, new_text=new)])]


def test_the_seeds_own_fix_passes_30s_to_60s() -> None:
    assert rules("jest.config.js", "testTimeout: 30000,", "testTimeout: 60000,") == []
    assert rules("jest.config.js", "testTimeout: 30000,", "testTimeout: 60001,") == ["timeout-raised"]
    assert rules(".github/workflows/ci.yml", "timeout-minutes: 10", "timeout-minutes: 30") == [
        "timeout-raised"
    ]
    assert rules("pytest.ini", "timeout = 30", "timeout = 1m") == []  # units are read: 60 s


@pytest.mark.parametrize(
    ("path", "old", "new", "rule"),
    [
        (
            "tests/test_a.py",
            "def test_x():\n    assert f()",
            "@pytest.mark.skip\ndef test_x():\n    assert f()",
            "skip-added",
        ),
        ("tests/test_a.py", "def test_x():", "@unittest.skip('flaky')\ndef test_x():", "skip-added"),
        ("src/a.test.js", "it('adds', () => {", "xit('adds', () => {", "skip-added"),
        ("src/a.test.js", "it('adds', () => {", "it.skip('adds', () => {", "skip-added"),
        ("src/a.test.js", "it('adds', () => {", "it.only('adds', () => {", "focus-added"),
        ("src/a.test.js", "it.only('adds', () => {", "it('adds', () => {", "only-removed"),
        (
            "tests/test_a.py",
            "def test_x():\n    pass\ndef test_y():\n    pass",
            "def test_x():\n    pass",
            "test-deleted",
        ),
        ("tests/test_a.py", "assert total() == 3\n", "", "test-deleted"),
        (
            ".github/workflows/ci.yml",
            "run: npm test",
            "run: npm test\n    continue-on-error: true",
            "continue-on-error",
        ),
        (".github/workflows/ci.yml", "run: npm test", "run: npm test || true", "|| true"),
        ("scripts/ci.sh", "set -e\nnpm test", "set +e\nnpm test", "set +e"),
        ("scripts/ci.sh", "npm test", "npm test || exit 0", "|| true"),
        ("setup.cfg", "fail_under = 90", "fail_under = 80", "coverage-lowered"),
        ("pyproject.toml", "--cov-fail-under=85", "--cov-fail-under=10", "coverage-lowered"),
        (
            "jest.config.js",
            "coverageThreshold: { global: { lines: 80 } }",
            "coverageThreshold: { global: { lines: 50 } }",
            "coverage-lowered",
        ),
        ("setup.cfg", "fail_under = 90\n", "\n", "coverage-lowered"),
    ],
)
def test_each_weakening_is_refused_by_its_rule(path: str, old: str, new: str, rule: str) -> None:
    found = weakenings([FileEdit(path=path, old_text=old, new_text=new)])
    assert rule in [w.rule for w in found]
    assert any(rule in str(w) and path in str(w) for w in found)


@pytest.mark.parametrize(
    ("path", "old", "new"),
    [
        ("src/app.py", "return a+b", "return a + b"),
        ("requirements.txt", "requests==2.31.0", "requests==2.32.3"),
        ("setup.cfg", "fail_under = 80", "fail_under = 85"),
        ("tests/test_a.py", "assert total() == 3", "assert total() == pytest.approx(3)"),
        (".github/workflows/ci.yml", "node-version: 18", "node-version: 20"),
        ("src/a.test.js", "it('adds', () => {", "test('adds', () => {"),
    ],
)
def test_honest_fixes_pass(path: str, old: str, new: str) -> None:
    assert rules(path, old, new) == []


def test_edits_apply_only_where_the_old_text_occurs_exactly_once() -> None:
    files = {"jest.config.js": "module.exports = { testTimeout: 30000 };\n", "a.py": "x = 1\nx = 1\n"}
    edit = FileEdit(path="jest.config.js", old_text="testTimeout: 30000", new_text="testTimeout: 60000")
    assert apply_edits(files, [edit]) == {"jest.config.js": "module.exports = { testTimeout: 60000 };\n"}
    with pytest.raises(EditRefused, match="occurs 2 times"):
        apply_edits(files, [FileEdit(path="a.py", old_text="x = 1", new_text="x = 2")])
    with pytest.raises(EditRefused, match="is not in"):
        apply_edits(files, [FileEdit(path="a.py", old_text="y = 1", new_text="y = 2")])
    with pytest.raises(EditRefused, match="does not exist"):
        apply_edits(files, [FileEdit(path="b.py", old_text="y", new_text="z")])
    twice = [edit, FileEdit(path="jest.config.js", old_text="60000", new_text="45000")]
    assert apply_edits(files, twice)["jest.config.js"].count("45000") == 1


def test_the_fix_branch_is_named_after_the_failure_and_is_stable() -> None:
    branch = fix_branch("0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b")
    assert branch == "medic/fix-0193a2b45c6d" == fix_branch("0193a2b4-5c6d-7e8f-9a0b-1c2d3e4f5a6b")
