"""Compiled Hyperscan databases kept on disk, so a process compiles only when the rules change.

Compiling the shipped knowledge base into Hyperscan takes seconds; loading the serialized
database takes milliseconds. A cold ``medic analyze`` is dominated by that compile, so the
compiled form is written once under a cache directory and read by every later process.

A cache file is only a shortcut: its name and its header carry the key (a digest of every
pattern, the flags, the cache format and the Hyperscan version), and its body carries its own
SHA-256, so a truncated, corrupt, foreign or stale file is ignored and rebuilt, never trusted.
Any failure to read or write the cache falls back to compiling, as if there were no cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FORMAT = "ci-medic-hyperscan/1"
_MAGIC = b"CIMEDIC-HS1\n"
_DIGEST = hashlib.sha256().digest_size
MAX_CACHE_FILE_BYTES = 256 * 1024 * 1024
"""A file larger than this is not read: a compiled rule base is a few MiB at most."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ci-medic``, else ``~/.cache/ci-medic`` (the XDG rule for a relative value).

    Read when a knowledge base is built, not at import time.
    """
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "ci-medic"


def cache_key(patterns: Sequence[str], *, flags: Sequence[int], engine_version: str) -> str:
    """Digest of everything the compiled form depends on; any change gives a new key."""
    material = json.dumps(
        {
            "format": FORMAT,
            "engine": engine_version,
            "machine": platform.machine(),
            "flags": list(flags),
            "patterns": list(patterns),
        },
        ensure_ascii=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True, slots=True)
class CompiledLayer:
    """One Hyperscan database: which patterns (by position in the full list) it holds."""

    accepted: tuple[int, ...]
    refused: tuple[int, ...]
    database: bytes | None


def encode_layers(layers: Sequence[CompiledLayer]) -> bytes:
    header = json.dumps(
        [
            {
                "accepted": list(layer.accepted),
                "refused": list(layer.refused),
                "size": -1 if layer.database is None else len(layer.database),
            }
            for layer in layers
        ]
    ).encode()
    blobs = b"".join(layer.database or b"" for layer in layers)
    return struct.pack(">I", len(header)) + header + blobs


def decode_layers(payload: bytes, *, patterns: int) -> list[CompiledLayer] | None:
    """The layers in ``payload``, or None when it does not describe ``patterns`` patterns."""
    try:
        (length,) = struct.unpack_from(">I", payload)
        header = json.loads(payload[4 : 4 + length])
        offset = 4 + length
        layers = []
        for entry in header:
            accepted = tuple(int(i) for i in entry["accepted"])
            refused = tuple(int(i) for i in entry["refused"])
            size = int(entry["size"])
            if any(not 0 <= i < patterns for i in accepted + refused):
                return None
            database = None if size < 0 else payload[offset : offset + size]
            if database is not None and len(database) != size:
                return None
            offset += max(size, 0)
            layers.append(CompiledLayer(accepted, refused, database))
    except (struct.error, ValueError, TypeError, KeyError):
        return None
    if offset != len(payload) or not isinstance(header, list):
        return None
    return layers


class CompiledRulesCache:
    """Files named by key under one directory; reads verify, writes are atomic renames."""

    magic = _MAGIC
    suffix = ".hsdb"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, key: str) -> Path:
        return self.directory / f"rules-{key}{self.suffix}"

    def load(self, key: str) -> bytes | None:
        """The payload stored under ``key``, or None if absent, unreadable, corrupt or foreign."""
        path = self.path_for(key)
        try:
            with path.open("rb") as handle:
                if os.fstat(handle.fileno()).st_size > MAX_CACHE_FILE_BYTES:
                    return None
                data = handle.read()
        except OSError:
            return None
        prefix = self.magic + key.encode() + b"\n"
        if not data.startswith(prefix) or len(data) < len(prefix) + _DIGEST:
            return None
        digest = data[len(prefix) : len(prefix) + _DIGEST]
        payload = data[len(prefix) + _DIGEST :]
        if hashlib.sha256(payload).digest() != digest:
            return None
        return payload

    def store(self, key: str, payload: bytes) -> bool:
        """Write atomically (temp file, then rename); False if the directory is not writable."""
        data = self.magic + key.encode() + b"\n" + hashlib.sha256(payload).digest() + payload
        temporary: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".rules-", suffix=".tmp")
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(temporary, self.path_for(key))
        except OSError:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
            return False
        return True


class ParsedRulesCache(CompiledRulesCache):
    """Rule files already parsed and checked, as JSON, beside the compiled databases.

    Parsing the shipped YAML and checking each of its hundreds of patterns with RE2 cost a
    cold ``medic analyze`` more than loading the compiled database; the parsed form is keyed by
    a digest of the rule file's text and of the code that checks it (see
    :func:`medic.services.analyzer.rules.load_rules_text`), so an edited file is parsed again.
    """

    magic = b"CIMEDIC-RULES1\n"
    suffix = ".rules.json"

    @classmethod
    def beside(cls, compiled: CompiledRulesCache) -> ParsedRulesCache:
        return cls(compiled.directory)
