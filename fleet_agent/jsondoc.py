"""JSON from outside (targets, commands), parsed within bounds before anything looks at it.

Both JSON parsers at hand recurse in C and raise RecursionError on deep nesting, and both let
the last of two equal keys silently win. So the nesting depth and the number of arrays and
objects are measured first, on the raw bytes, in time linear in their size; the payload is then
decoded strictly (UTF-8, no NaN, no lone surrogates) by msgspec. When the decoded document holds
fewer keys than the text (a key was repeated and lost), the text is read once more, object by
object, to report each repeated key with its path; documents without repeated keys (nearly
all) pay for counting only. Nothing here raises anything but `Malformed`.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

import msgspec

from fleet_agent.model import FieldError

MAX_DEPTH = 32  # a target needs 7 levels; anything deeper is an attack or a mistake
MAX_CONTAINERS = 10_000  # arrays and objects in one document; a full target needs ~1,000
MAX_KEY_IN_PATH = 100  # characters of a key shown in an error path
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # linear: no backtracking
_WHITESPACE = b" \t\r\n"
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[{]}")))


class Malformed(Exception):
    """The payload is not a JSON document we read: not JSON, or nested too deeply."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.error = FieldError("$", f"invalid JSON: {message}")


def key_path(path: str, key: str) -> str:
    """`path.key`, with an absurdly long key shortened so errors stay small."""
    if len(key) > MAX_KEY_IN_PATH:
        key = key[:MAX_KEY_IN_PATH] + "..."
    return f"{path}.{key}"


def _skeleton(document: bytes) -> bytes:
    """The document with each string reduced to `"` and whitespace removed: `"` followed by
    `:` is then exactly an object key, and brackets are exactly nesting."""
    return _STRING.sub(b'"', document).translate(None, _WHITESPACE)


def _too_deep(skeleton: bytes) -> bool:
    brackets = skeleton.translate(_BRACKETS, _NOT_BRACKETS)
    return max(accumulate(memoryview(brackets).cast("b")), default=0) > MAX_DEPTH


def load(payload: bytes, max_containers: int = MAX_CONTAINERS) -> tuple[Any, list[FieldError]]:
    """The decoded document and one error per repeated key (the last value is kept)."""
    skeleton = None
    if payload.count(b"[") + payload.count(b"{") > MAX_DEPTH:  # else it cannot be too deep
        skeleton = _skeleton(payload)
        if _too_deep(skeleton):
            raise Malformed(f"nested deeper than {MAX_DEPTH} levels")
        containers = skeleton.count(b"[") + skeleton.count(b"{")
        if containers > max_containers:  # each one costs memory and time before any check
            raise Malformed(f"{containers} arrays and objects, more than {max_containers}")
    try:
        value = msgspec.json.decode(payload)
    except (msgspec.DecodeError, RecursionError, ValueError) as exc:
        raise Malformed(str(exc)) from None
    if not _lost_keys(skeleton if skeleton is not None else _skeleton(payload), value):
        return value, []
    return value, repeated_keys(payload)


def _lost_keys(skeleton: bytes, value: Any) -> bool:
    """Whether decoding dropped keys (a repeated key keeps only its last value). The decoded
    keys are counted by walking its containers or by re-encoding it and counting the keys of
    the text, whichever is cheaper for this document: few containers, or few strings."""
    keys = skeleton.count(b'":')
    if skeleton.count(b"[") + skeleton.count(b"{") <= skeleton.count(b'"'):
        return _count_keys(value) != keys
    return _skeleton(msgspec.json.encode(value)).count(b'":') != keys


def _count_keys(value: Any) -> int:
    count, stack = 0, [value] if type(value) in (dict, list) else []
    while stack:
        node = stack.pop()
        items = node.values() if type(node) is dict else node
        count += len(node) if type(node) is dict else 0
        stack += [item for item in items if type(item) in (dict, list)]
    return count


class _Repeats(dict[str, Any]):
    """A JSON object that held some key more than once."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    marked = _Repeats(obj)
    seen: set[str] = set()
    marked.repeated = []
    for key, _ in pairs:
        if key in seen and key not in marked.repeated:
            marked.repeated.append(key)
        seen.add(key)
    return marked


def repeated_keys(payload: bytes) -> list[FieldError]:
    """Every repeated key with its path, in document order (msgspec cannot see them)."""
    found = {"any": False}

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = _pairs(pairs)
        found["any"] = found["any"] or isinstance(obj, _Repeats)
        return obj

    try:
        tree = json.loads(payload, object_pairs_hook=hook)
    except (ValueError, RecursionError) as exc:  # msgspec read it, so this is not expected
        raise Malformed(str(exc)) from None
    return _walk_repeats(tree) if found["any"] else []


def _walk_repeats(tree: Any) -> list[FieldError]:
    """Pre-order, without recursion: the document has been bounded in depth, not in breadth."""
    errors: list[FieldError] = []
    stack: list[tuple[Any, str]] = [(tree, "$")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            if isinstance(value, _Repeats):
                errors += [FieldError(key_path(path, k), "duplicate key") for k in value.repeated]
            stack += [(v, key_path(path, k)) for k, v in reversed(value.items())]
        elif isinstance(value, list):
            stack += [(v, f"{path}[{i}]") for i, v in reversed(list(enumerate(value)))]
    return errors
