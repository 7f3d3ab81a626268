"""Mechanisms found on real CI logs, each on the shape it was built for (lines modelled on
tests/data/real-ci-logs): rule families by output shape, own vs third-party missing modules,
repeated blocks read once, wrapper prefixes and carriage returns, warning lines."""

from __future__ import annotations

import pytest

from medic.events import Category
from medic.services.analyzer.analysis import LogAnalysis
from medic.services.analyzer.classify import analyze_log
from medic.services.analyzer.excerpt import extract_excerpt
from medic.services.analyzer.knowledge import KnowledgeBase, default_knowledge_base
from medic.services.analyzer.logtext import clean_line
from medic.services.analyzer.ownership import is_own_module, project_names

NOISE = [f"building part {n} ok" for n in range(150)]


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return default_knowledge_base()


def gha_step(command: str, output: list[str], kb: KnowledgeBase) -> LogAnalysis:
    lines = [f"##[group]Run {command}", *NOISE, *output, "##[error]Process completed with exit code 1."]
    return analyze_log("\n".join(lines), knowledge_base=kb)


@pytest.mark.parametrize(
    ("line", "category"),
    [
        (
            "[error] /home/travis/build/hbz/nwbib/app/views/tags/schema_org.scala.html:37: ')' expected",
            "compile",
        ),
        ("[error] (Compile / compileIncremental) Compilation failed", "compile"),
        ("src/Lib.hs:12:5: error:", "compile"),
        ("src/foo.erl:12: syntax error before: ')'", "compile"),
        ("Sources/App/Model.swift:41:17: error: cannot find 'x' in scope", "compile"),
        ("** BUILD FAILED **", "compile"),
        ("There were 2 failures:", "test_failure"),
        ("1) Acme\\CartTest::testTotal", "test_failure"),
        ("12 examples, 3 failures", "test_failure"),
        ("** TEST FAILED **", "test_failure"),
        (
            "[ERROR] Failed to execute goal com.diffplug.spotless:spotless-maven-plugin:2.30.0:check",
            "lint",
        ),
        ("Execution failed for task ':app:ktlintMainSourceSetCheck'.", "lint"),
        ("> Task :core:checkstyleMain FAILED", "lint"),
        ("Error: generated files are out of date, please run make generate", "lint"),
        ('npm ERR! Missing script: "test:ci"', "config"),
        (
            "[ERROR] The goal you specified requires a project but there is no POM in this directory",
            "config",
        ),
        ("npm ERR! code EJSONPARSE", "config"),
    ],
)
def test_rule_families_by_output_shape(line: str, category: str, kb: KnowledgeBase) -> None:
    assert gha_step("make ci", [line], kb).category.value == category


@pytest.mark.parametrize(
    "line",
    [
        "[INFO] --- maven-checkstyle-plugin:3.1.2:check (checkstyle-validation) @ app ---",
        "> Task :servicetalk-annotations:spotbugsTest NO-SOURCE",
        "[WARNING] /home/runner/work/a/a/src/main/java/A.java:[12,3] deprecated API",
        "/home/runner/work/a/a/src/main/java/A.java:40: warning: no @param for x",
    ],
)
def test_lines_that_are_not_errors_do_not_decide(line: str, kb: KnowledgeBase) -> None:
    analysis = gha_step("./gradlew test", [line, "com.acme.OrderTest > total() FAILED"], kb)
    assert analysis.category is Category.TEST_FAILURE


def test_a_missing_module_of_the_project_itself_is_a_code_failure(kb: KnowledgeBase) -> None:
    output = [
        "____ ERROR collecting tests/unit/test_models.py ____",
        "ImportError while importing test module '/home/runner/work/vizro/vizro/vizro-ai/tests/t.py'.",
        "E   ModuleNotFoundError: No module named 'vizro_ai.dashboard.build'",
        "!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!",
    ]
    assert gha_step("pytest", output, kb).category is Category.TEST_FAILURE


def test_a_missing_third_party_package_is_a_dependency_failure(kb: KnowledgeBase) -> None:
    output = [
        "____ ERROR collecting tests/bert_test.py ____",
        "ImportError while importing test module '/home/runner/work/pyc/pyc/tests/bert_test.py'.",
        "E   ModuleNotFoundError: No module named 'transformers'",
        "!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!",
    ]
    assert gha_step("pytest", output, kb).category is Category.DEPENDENCY


def test_ownership_ignores_virtualenvs_inside_the_workspace() -> None:
    names = project_names(["/home/runner/work/app/app/.venv/lib/python3.11/site-packages/requests/api.py"])
    assert is_own_module("No module named 'requests'", names) is False
    assert is_own_module("No module named 'app.models'", names) is True
    assert is_own_module("nothing here", names) is None


def test_a_repeated_block_is_read_where_it_first_appears() -> None:
    body = ["##[group]Run mvn test", *NOISE]
    for n in range(30):
        body += [
            f"[ERROR] test{n}  Time elapsed: 0.01 s  <<< ERROR!",
            "org.mockito.InjectMocksException:",
            "",
            *NOISE[:5],
        ]
    body += ["##[error]Process completed with exit code 1."]
    numbers = {line.line for line in extract_excerpt(body, max_lines=20)}
    assert {152, 153} <= numbers, "the first of thirty identical failures"


def test_wrapper_prefixes_and_carriage_returns_are_read_through() -> None:
    assert clean_line("test_1  | npm ERR! code ERESOLVE")[0] == "npm ERR! code ERESOLVE"
    assert clean_line("#19 22.32 [ERROR] Failed to execute goal")[0] == "[ERROR] Failed to execute goal"
    assert (
        clean_line("travis_fold:start:install\r\x1b[0Ktravis_time:start:1a\r\x1b[0K$ ant deps\r")[0]
        == "$ ant deps"
    )
    assert clean_line("| a | b |")[0] == "| a | b |", "a table is not a wrapper prefix"


@pytest.mark.parametrize(
    ("log", "passed"),
    [
        ("##[group]Run make\nok\n##[endgroup]\nPost job cleanup.\nCleaning up orphan processes", True),
        (
            "##[group]Run make\n##[error]Process completed with exit code 2.\nCleaning up orphan processes",
            False,
        ),
        ("##[group]Run make\nok", False),
        ('$ make\nok\nThe command "make" exited with 0.\n\nDone. Your build exited with 0.', True),
        ('$ make\nThe command "make" exited with 2.\n\nDone. Your build exited with 1.', False),
        ("[Pipeline] { (Build)\n+ make\n[Pipeline] // stage\nFinished: SUCCESS", True),
        ("Cleaning up orphan processes", False),
    ],
)
def test_a_passing_job_is_recognised_from_its_ci_systems_own_words(
    log: str, passed: bool, kb: KnowledgeBase
) -> None:
    assert analyze_log(log, knowledge_base=kb).job_passed is passed
