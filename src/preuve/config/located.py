"""YAML and TOML loading that remembers where each value came from, so errors can name file:line.

YAML is composed into nodes (which carry their line) and built into plain Python values alongside a map from key
path to line. Duplicate keys are errors (PyYAML would silently keep the last one).

Every problem reads ``FILE:LINE: key.path: message`` (without ``key.path`` when it concerns the whole file).
Odd YAML never escapes as an exception: tags other than plain scalars, mappings and lists are refused (``!!python/...``
as unsafe), anchors and aliases work but may not refer to themselves or expand beyond :data:`MAX_VALUES` values,
nesting is limited to :data:`MAX_DEPTH` levels, and merge keys (``<<: *defaults``) follow YAML's rules: the keys
written in the mapping win over the merged ones.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

PathKey = tuple[str | int, ...]

MAX_DEPTH = 64  # nesting levels in a document; the composer and the builder recurse
MAX_VALUES = 100_000  # values built from one document, aliases expanded ("billion laughs")

_YAML_TAG = "tag:yaml.org,2002:"
_MAP_TAG = _YAML_TAG + "map"
_SEQ_TAG = _YAML_TAG + "seq"
_MERGE_TAG = _YAML_TAG + "merge"
_SCALAR_TAGS = frozenset(_YAML_TAG + name for name in ("str", "int", "float", "bool", "null", "timestamp"))


@dataclass
class Located:
    """A loaded document: its data, the line of each key path (1-based), and its problems."""

    file: Path
    data: Any = None
    lines: dict[PathKey, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # key paths whose value was refused while loading (and replaced by None): validation errors there are noise
    refused: set[PathKey] = field(default_factory=set)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of the longest prefix of ``path`` that was seen in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: Sequence[str | int], message: str) -> None:
        self.problem_at(self.line_of(path), path, message)

    def problem_at(self, line: int | None, path: Sequence[str | int], message: str) -> None:
        """Record ``FILE:LINE: key.path: message``; the key path is left out when empty."""
        where = f"{self.file}:{line or 1}"
        key = format_path(path)
        self.problems.append(f"{where}: {key}: {message}" if key else f"{where}: {message}")


def format_path(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 10] + "..." + text[-6:]


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag


class _Abort(Exception):
    """Stop building a document: the problem is already recorded."""


class _Builder:
    """Nodes to plain values (dict, list, str, int, float, bool, None, date), recording each key path's line."""

    def __init__(self, doc: Located) -> None:
        self.doc = doc
        self.constructor = yaml.SafeLoader("")
        self.active: set[int] = set()  # ids of the collection nodes being built: an alias to one is a cycle
        self.count = 0

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        line = node.start_mark.line + 1
        self.doc.lines.setdefault(path, line)
        self.count += 1
        if self.count > MAX_VALUES:
            self.doc.problem_at(line, path, f"too many values (aliases expand to more than {MAX_VALUES})")
            raise _Abort
        if len(path) > MAX_DEPTH:
            self.doc.problem_at(line, path, f"nested more than {MAX_DEPTH} levels deep")
            raise _Abort
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        if not self._tag_ok(node, _MAP_TAG if isinstance(node, yaml.MappingNode) else _SEQ_TAG, path):
            self.doc.refused.add(path)
            return None
        if id(node) in self.active:
            self.doc.problem_at(line, path, "an alias refers to the value that contains it (a loop)")
            self.doc.refused.add(path)
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        finally:
            self.active.discard(id(node))

    def _tag_ok(self, node: yaml.Node, expected: str, path: PathKey) -> bool:
        tag = node.tag or ""
        if tag == expected or (isinstance(node, yaml.ScalarNode) and tag in _SCALAR_TAGS):
            return True
        line = node.start_mark.line + 1
        if "python/" in tag:
            self.doc.problem_at(line, path, f"the YAML tag {_tag_name(tag)} is refused as unsafe; write a plain value")
        else:
            self.doc.problem_at(line, path, f"the YAML tag {_tag_name(tag)} is not supported; write a plain value")
        return False

    def _scalar(self, node: yaml.ScalarNode, path: PathKey) -> Any:
        if not self._tag_ok(node, _YAML_TAG + "str", path):
            self.doc.refused.add(path)
            return None
        if node.tag == _YAML_TAG + "int" and len(node.value) > 100:
            self.doc.problem_at(node.start_mark.line + 1, path, "this number has too many digits")
            self.doc.refused.add(path)
            return None
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError, yaml.YAMLError) as exc:
            reason = getattr(exc, "problem", None) or str(exc)
            self.doc.problem_at(node.start_mark.line + 1, path, f"invalid value: {reason}")
            self.doc.refused.add(path)
            return None

    def _key(self, node: yaml.Node, path: PathKey) -> str | None:
        """A key as written (so ``no:`` stays "no" and ``1:`` is "1"), or None after recording a problem."""
        if not isinstance(node, yaml.ScalarNode):
            self.doc.problem_at(node.start_mark.line + 1, path, "keys must be plain words, not lists or mappings")
            return None
        if not self._tag_ok(node, _YAML_TAG + "str", path):
            return None
        if not node.value:
            self.doc.problem_at(node.start_mark.line + 1, path, "a key is empty")
            return None
        return str(node.value)

    def _mapping(self, node: yaml.MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged += self._merge_sources(key_node, value_node, path)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            child = (*path, key)
            line = key_node.start_mark.line + 1
            if key in result:
                self.doc.problem_at(line, child, f"duplicate key (first on line {self.doc.lines.get(child)})")
                continue
            self.doc.lines[child] = line
            result[key] = self.build(value_node, child)
        # merged keys come after, so that the keys written here win (YAML merge semantics)
        for key, key_node, value_node in self._merged_entries(merged, path):
            if key not in result:
                child = (*path, key)
                self.doc.lines[child] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, child)
        return result

    def _merge_sources(self, key_node: yaml.Node, value_node: yaml.Node, path: PathKey) -> list[yaml.MappingNode]:
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        if all(isinstance(source, yaml.MappingNode) and source.tag == _MAP_TAG for source in sources):
            return list(sources)
        self.doc.problem_at(
            key_node.start_mark.line + 1, path, "<< merges a mapping (an alias like *defaults) or a list of them"
        )
        return []

    def _merged_entries(
        self, sources: list[yaml.MappingNode], path: PathKey, seen: frozenset[int] = frozenset()
    ) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The entries that merge keys bring, first source first, each source's own keys before its merges."""
        entries: list[tuple[str, yaml.Node, yaml.Node]] = []
        for source in sources:
            if id(source) in seen or id(source) in self.active:
                self.doc.problem_at(source.start_mark.line + 1, path, "a merge (<<) refers to itself (a loop)")
                continue
            nested: list[yaml.MappingNode] = []
            for key_node, value_node in source.value:
                if key_node.tag == _MERGE_TAG:
                    nested += self._merge_sources(key_node, value_node, path)
                    continue
                key = self._key(key_node, path)
                if key is not None:
                    entries.append((key, key_node, value_node))
            entries += self._merged_entries(nested, path, seen | {id(source)})
        return entries


_YAML_HINTS = (
    ("mapping values are not allowed", "quote values that contain ': ', and check the indentation"),
    ("expected <block end>", "check the indentation"),
    ("cannot start any token", "indent with spaces, not tabs; quote values that start with @ or `"),
    ("found undefined alias", "define the anchor (&name) before using it (*name)"),
)


def _yaml_error(doc: Located, text: str, exc: yaml.YAMLError) -> None:
    """A located syntax error, with the key path the parser had reached when it failed."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # an unclosed quote or bracket: where it was opened, not the end of the file
        line = mark.line + 1 if mark else None
        message = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem:
            context = exc.context
            if exc.context_mark is not None and exc.context_mark.line + 1 != line:
                context += f" (line {exc.context_mark.line + 1})"
            message = f"{context}: {message}"
        for clue, hint in _YAML_HINTS:
            if clue in message:
                message += f" ({hint})"
                break
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text[: exc.position].count("\n") + 1 if isinstance(exc.position, int) else None
        character = exc.character if isinstance(exc.character, str) else chr(exc.character)
        message = f"character #x{ord(character):04x} is not allowed in YAML"
    else:
        line, message = None, str(exc).splitlines()[0]
    stop = exc.problem_mark.index if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark else None
    path = list(_parse_path(text, stop))
    while path and isinstance(path[-1], int):
        path.pop()  # "host" rather than "host[1]": the parser's position inside a list is rarely the mistake
    doc.problem_at(line, path, f"invalid YAML: {message}")


def _parse_path(text: str, stop: int | None = None) -> PathKey:
    """The key path reached when the YAML parser stops on a syntax error, or reaches character ``stop``."""
    return _walk(text, stop)[0]


def _walk(text: str, stop: int | None = None) -> tuple[PathKey, int | None]:
    """Follow the parser's events (the parser does not recurse, the composer does).

    Returns the key path reached when the parser stops (the end, a syntax error, or nesting deeper than
    MAX_DEPTH) and, in the last case, the line where the nesting went too deep.
    """
    # a frame is [is_mapping, current key (None: none yet) or item index, waiting for a key]
    stack: list[list[Any]] = []
    too_deep: int | None = None

    def value_done() -> None:
        if stack:
            frame = stack[-1]
            if frame[0]:
                frame[1], frame[2] = None, True
            else:
                frame[1] += 1

    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if stop is not None and event.start_mark is not None and event.start_mark.index >= stop:
                break
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                if stack and stack[-1][0] and stack[-1][2]:
                    stack[-1][2] = False  # a mapping or list used as a key: refused later, no path for it
                if len(stack) >= MAX_DEPTH:
                    too_deep = event.start_mark.line + 1 if event.start_mark else None
                    break
                is_mapping = isinstance(event, yaml.MappingStartEvent)
                stack.append([is_mapping, None if is_mapping else 0, is_mapping])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                if stack:
                    stack.pop()
                value_done()
            elif isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                frame = stack[-1] if stack else None
                if frame is not None and frame[0] and frame[2]:
                    frame[1] = event.value if isinstance(event, yaml.ScalarEvent) else None
                    frame[2] = False
                else:
                    value_done()
    except yaml.YAMLError:
        pass
    path: list[str | int] = []
    for is_mapping, key, waiting in stack:
        if is_mapping and (waiting or key is None):
            break
        path.append(key)
    return tuple(path), too_deep


def _read(doc: Located) -> str | None:
    try:
        raw = doc.file.read_bytes()
    except OSError as exc:
        doc.problem_at(1, (), f"cannot be read: {exc.strerror or exc}")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        doc.problem_at(line, (), f"not UTF-8 text ({exc.reason} at byte {exc.start}); save the file as UTF-8")
        return None
    return text.removeprefix("\ufeff")


def load_yaml(file: Path) -> Located:
    doc = Located(file=file)
    text = _read(doc)
    if text is None:
        return doc
    path, too_deep = _walk(text)
    if too_deep is not None:
        doc.problem_at(too_deep, path[:8], f"nested more than {MAX_DEPTH} levels deep")
        return doc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        _yaml_error(doc, text, exc)
        return doc
    except RecursionError:  # defensive: _walk keeps the composer well inside the stack
        doc.problem_at(None, (), "invalid YAML: nested too deeply")
        return doc
    if node is None:
        doc.problem_at(1, (), "the file is empty")
        return doc
    try:
        doc.data = _Builder(doc).build(node, ())
    except _Abort:
        doc.data = None
    except RecursionError:  # defensive: the builder stops at MAX_DEPTH
        doc.problem_at(None, (), f"nested more than {MAX_DEPTH} levels deep")
        doc.data = None
    return doc


_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)\s*$")


def load_toml(file: Path) -> Located:
    doc = Located(file=file)
    text = _read(doc)
    if text is None:
        return doc
    try:
        doc.data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)" or "(at end of document)"
        message = str(exc)
        match = _TOML_POSITION.search(message)
        line: int | None = None
        if match:
            message = message[: match.start()]
            if match.group(1):
                line = int(match.group(1))
                message += f" (column {match.group(2)})"
            else:
                line = max(1, len(text.splitlines()))
                message += " (at the end of the file)"
        doc.problem_at(line, (), f"invalid TOML: {message}")
        return doc
    except ValueError as exc:  # an integer with thousands of digits
        reason = "a number has too many digits" if "digits" in str(exc) else str(exc)
        doc.problem_at(None, (), f"invalid TOML: {reason}")
        return doc
    doc.lines[()] = 1
    _toml_lines(text, doc)
    return doc


_TOML_TABLE = re.compile(r"^\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_TOML_KEY = re.compile(r"""^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


def _toml_key(text: str) -> PathKey:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return tuple(part[1:-1] if part[:1] in "\"'" else part for part in parts)


def _toml_lines(text: str, doc: Located) -> None:
    """Key-path lines for TOML: table headers and ``key =`` lines, skipping the insides of multi-line values."""
    table: PathKey = ()
    depth = 0  # open brackets of a multi-line array or inline table
    quote: str | None = None  # the delimiter of an open multi-line string
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if quote is None and depth == 0:
            header = _TOML_TABLE.match(line)
            key = _TOML_KEY.match(line)
            if header and not line.startswith("[["):
                table = _toml_key(header.group(1))
                doc.lines.setdefault(table, number)
                continue
            if line.startswith("[["):
                table = _toml_key(line.strip("[] "))
                continue
            if key:
                doc.lines.setdefault((*table, *_toml_key(key.group(1))), number)
        quote, depth = _toml_scan(raw, quote, depth)


def _toml_scan(line: str, quote: str | None, depth: int) -> tuple[str | None, int]:
    """Follow strings, comments and brackets through one line; what is still open at its end."""
    index = 0
    while index < len(line):
        if quote is not None:
            if line.startswith(quote, index):
                index += len(quote)
                quote = None
                continue
            index += 2 if line[index] == "\\" and quote.startswith('"') else 1
            continue
        char = line[index]
        if char == "#":
            break
        for delimiter in ('"""', "'''", '"', "'"):
            if line.startswith(delimiter, index):
                quote = delimiter
                index += len(delimiter)
                break
        else:
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth = max(0, depth - 1)
            index += 1
    if quote in ('"', "'"):
        quote = None  # single-line strings cannot span lines
    return quote, depth


def report_validation(doc: Located, error: ValidationError, prefix: PathKey = ()) -> None:
    """Turn every pydantic error into a located problem on ``doc``."""
    for item in error.errors(include_url=False):
        path = _data_path(doc.data, (*prefix, *item["loc"]))
        if any(path[:end] in doc.refused for end in range(len(path) + 1)):
            continue  # already reported where the value was refused
        message = item["msg"]
        ctx = item.get("ctx") or {}
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "union_tag_invalid":
            path = (*path, "kind")
            message = f"unknown kind {_shown(ctx.get('tag'))}; expected one of {ctx.get('expected_tags')}"
        elif item["type"] == "union_tag_not_found":
            message = "needs a 'kind' key (local, sftp, s3 or rest)"
        elif item["type"] in ("dict_type", "model_type", "model_attributes_type"):
            message = f"must be a mapping of keys and values, not {_describe(item.get('input'))}"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        doc.problem(path, message)


def _describe(value: object) -> str:
    """The kind of a value, never the value itself (it may be a secret written in the wrong place)."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return "a value of another kind"


def _data_path(data: Any, loc: Sequence[str | int]) -> PathKey:
    """Drop the parts of a pydantic location that are not keys in the data (union tags, validator names)."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        if part == "[key]":
            continue  # pydantic's marker for an error on a mapping key: the key is already in the path
        found, child = _child(node, part)
        if found:
            node = child
            path.append(part)
        elif isinstance(node, dict) and isinstance(part, str) and part == node.get("kind"):
            continue  # the tag of a discriminated union (targets.nas.sftp.host)
        elif isinstance(node, dict) and isinstance(part, str) and index == len(loc) - 1:
            path.append(part)  # a missing key: name it, its mapping gives the line
        else:
            break
    return tuple(path)


def _child(node: Any, part: str | int) -> tuple[bool, Any]:
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, None
