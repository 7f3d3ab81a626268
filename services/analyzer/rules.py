"""The rules knowledge base: known failure causes recognised by patterns.

In the spirit of Jenkins' Build Failure Analyzer and dotnet/arcade's known issues,
a rule names a cause, the lines that betray it, and what that cause means for the
gate (risk floor, retryable, the typed action). Patterns are RE2 syntax: every rule
is checked at load, so a knowledge base that could backtrack catastrophically, or
that matches every line, is refused with the offending rule's name.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.version import VERSION as PYDANTIC_VERSION

from medic.events import ActionKind, Category, ProposedAction
from medic.services.analyzer.compiled_rules import ParsedRulesCache

MAX_PATTERN_CHARS = 1000
MAX_REPEAT = 100
"""Largest counted repetition: ``.{0,300}`` compiles to a huge automaton (minutes in
Hyperscan's UTF-8 mode); ``.*`` says the same on one line and stays linear."""
_COUNTED_REPEAT = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")
DEFAULT_PRIORITY = 50


class RuleError(ValueError):
    """A rule file is unusable; the message names the file and the rule."""


class RuleAction(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ActionKind = ActionKind.NONE
    cache_key: str | None = None

    def proposed(self) -> ProposedAction:
        return ProposedAction(kind=self.kind, cache_key=self.cache_key)


class Rule(BaseModel):
    """One known cause. ``priority`` breaks ties when several causes match one log:
    a runner or network fault outranks the test failure it provoked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=120, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    patterns: tuple[str, ...] = Field(min_length=1)
    category: Category
    risk_floor: int = Field(ge=0, le=10)
    confidence: float = Field(ge=0.0, le=1.0)
    retryable: bool = False
    action: RuleAction = RuleAction()
    priority: int = Field(default=DEFAULT_PRIORITY, ge=0, le=100)
    description: str = ""
    enabled: bool = True

    @field_validator("patterns")
    @classmethod
    def _patterns_are_linear_time(cls, patterns: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if info.context is not _PATTERNS_CHECKED:
            for pattern in patterns:
                check_pattern(pattern)
        return patterns


_PATTERNS_CHECKED = object()
"""Validation context of a rule read back from the parsed-rules cache: its patterns passed
:func:`check_pattern` when the entry was written (the entry's key covers this module's code and
RE2's build), and re-checking 500 patterns with RE2 is most of what the cache saves. Only this
module holds the object, so no other caller can skip the check."""


def re2_options() -> re2.Options:
    """Case-insensitive, quiet RE2 options shared by validation and matching."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    return options


def check_pattern(pattern: str) -> None:
    """Refuse a pattern RE2 cannot run in linear time, or one that matches every line."""
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"pattern must be 1..{MAX_PATTERN_CHARS} characters: {pattern[:60]!r}")
    for repeat in _COUNTED_REPEAT.finditer(pattern):
        if max(int(n) for n in repeat.groups() if n) > MAX_REPEAT:
            raise ValueError(f"pattern {pattern!r}: repetition {repeat.group(0)} is over {MAX_REPEAT}; use *")
    try:
        compiled = re2.compile(pattern, re2_options())
    except re2.error as exc:
        raise ValueError(f"unsupported pattern {pattern!r} (RE2 syntax only): {_text(exc)}") from None
    if compiled.search("") is not None:
        raise ValueError(f"pattern {pattern!r} matches the empty line, so it would match every line")


def _text(exc: BaseException) -> str:
    arg = exc.args[0] if exc.args else exc
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)


def parse_rules(document: Any, *, source: str) -> tuple[Rule, ...]:
    """Rules of one parsed YAML document (``{rules: [...]}``), each validated."""
    if not isinstance(document, Mapping) or not isinstance(document.get("rules"), list):
        raise RuleError(f"{source}: expected a mapping with a 'rules' list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(document["rules"]):
        name = raw.get("name", f"#{index}") if isinstance(raw, Mapping) else f"#{index}"
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            raise RuleError(f"{source}: rule {name!r} is invalid: {_first_errors(exc)}") from None
        if rule.name in seen:
            raise RuleError(f"{source}: rule {rule.name!r} is defined twice")
        seen.add(rule.name)
        rules.append(rule)
    return tuple(rules)


def _first_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(item) for item in error["loc"])
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _parse_yaml(text: str, *, source: str) -> tuple[Rule, ...]:
    """The rules of a YAML text, every pattern checked. yaml is imported here, not at the top:
    a process whose rules come from the parsed-rules cache never loads it. libyaml's safe loader
    when the wheel has it: the same safe subset, parsed in C (the shipped rule file took most of
    a cold ``medic analyze`` in pure Python)."""
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        document = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader, C or Python
    except yaml.YAMLError as exc:
        raise RuleError(f"{source}: not valid YAML: {exc}") from None
    return parse_rules(document, source=source)


PARSED_RULES_FORMAT = "ci-medic-parsed-rules/1"


@functools.cache
def _checker_stamp() -> bytes | None:
    """What a parsed rule's validity depends on besides its text: this module's code (the model,
    the pattern check), pydantic's version and RE2's build (what it refuses). One small read and
    one stat, once per process; None when this module's source cannot be read (a zip import),
    and then nothing is cached: a key that missed a code change would be trusted wrongly."""
    material = hashlib.sha256(PARSED_RULES_FORMAT.encode())
    try:
        material.update(Path(__file__).read_bytes())
    except OSError:
        return None
    material.update(PYDANTIC_VERSION.encode())
    try:
        built = os.stat(re2._re2.__file__)  # the extension module: RE2's build
        material.update(f"{built.st_size}:{built.st_mtime_ns}".encode())
    except (AttributeError, TypeError, OSError):
        material.update(b"re2:unknown")
    return material.digest()


def parsed_rules_key(text: str) -> str | None:
    """Digest of a rule file's text and of :func:`_checker_stamp`: any edit gives a new key
    (None: no key can be trusted here, see :func:`_checker_stamp`)."""
    stamp = _checker_stamp()
    if stamp is None:
        return None
    digest = hashlib.sha256(stamp)
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _encode_rules(rules: Sequence[Rule]) -> bytes:
    return json.dumps([rule.model_dump(mode="json") for rule in rules], ensure_ascii=True).encode()


def _decode_rules(payload: bytes) -> tuple[Rule, ...] | None:
    """The cached rules, validated again (all but the RE2 pattern check); None if they do not read
    as rules, e.g. after a change to the categories in :mod:`medic.events`."""
    try:
        raw = json.loads(payload)
        if not isinstance(raw, list):
            return None
        rules = tuple(Rule.model_validate(entry, context=_PATTERNS_CHECKED) for entry in raw)
    except (ValueError, TypeError, RecursionError):  # ValidationError, JSONDecodeError: ValueErrors
        return None
    if len({rule.name for rule in rules}) != len(rules):
        return None
    return rules


def load_rules_text(text: str, *, source: str, cache: ParsedRulesCache | None = None) -> tuple[Rule, ...]:
    """The rules of one YAML text, each validated; refused with the rule's name if any is not.

    With ``cache``, a text parsed before (same digest, see :func:`parsed_rules_key`) is read
    back from its JSON instead; a missing, damaged or unreadable entry is parsed again and
    rewritten. Only a text that parsed cleanly is stored, so a bad file always gives its error.
    """
    key = None if cache is None else parsed_rules_key(text)
    if cache is None or key is None:
        return _parse_yaml(text, source=source)
    payload = cache.load(key)
    cached = None if payload is None else _decode_rules(payload)
    if cached is not None:
        return cached
    rules = _parse_yaml(text, source=source)
    cache.store(key, _encode_rules(rules))
    return rules


def load_rules_file(path: Path, *, cache: ParsedRulesCache | None = None) -> tuple[Rule, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleError(f"{path}: cannot read rule file: {exc.strerror or exc}") from None
    return load_rules_text(text, source=str(path), cache=cache)


def default_rules(*, cache: ParsedRulesCache | None = None) -> tuple[Rule, ...]:
    """The shipped knowledge base (package data, so it travels with the wheel)."""
    resource = resources.files(__package__ or "medic.services.analyzer") / "rules" / "default.yaml"
    return load_rules_text(resource.read_text(encoding="utf-8"), source="default.yaml", cache=cache)


def merge_rules(*layers: Iterable[Rule]) -> tuple[Rule, ...]:
    """Later layers override earlier ones by rule name; ``enabled: false`` removes a rule.

    An override keeps its place and a new rule goes last, so the merged base is deterministic.
    """
    merged: dict[str, Rule] = {}
    for layer in layers:
        for rule in layer:
            merged[rule.name] = rule
    return tuple(rule for rule in merged.values() if rule.enabled)


def load_knowledge_rules(
    *,
    organisation: Path | None = None,
    repository: Path | None = None,
    extra: Sequence[Path] = (),
    cache: ParsedRulesCache | None = None,
) -> tuple[Rule, ...]:
    """Default rules, then the organisation's file, then the repository's: last word wins."""
    layers = [default_rules(cache=cache)]
    for path in (organisation, repository, *extra):
        if path is not None:
            layers.append(load_rules_file(path, cache=cache))
    return merge_rules(*layers)
