"""YAML and TOML loading that remembers where each value came from, so errors can name file:line.

YAML is composed into nodes (which carry their line) and built into plain Python values alongside a map from key
path to line. Duplicate keys are errors (PyYAML would silently keep the last one).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

PathKey = tuple[str | int, ...]


@dataclass
class Located:
    """A loaded document: its data, the line of each key path (1-based), and its problems."""

    file: Path
    data: Any = None
    lines: dict[PathKey, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of the longest prefix of ``path`` that was seen in the file."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def problem(self, path: Sequence[str | int], message: str) -> None:
        line = self.line_of(path)
        where = f"{self.file}:{line}" if line else f"{self.file}"
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


class _Builder:
    def __init__(self, doc: Located) -> None:
        self.doc = doc
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            self.constructor.flatten_mapping(node)
            for key_node, value_node in node.value:
                key = self.constructor.construct_object(key_node, deep=True)
                if not isinstance(key, str | int | bool | float) or key is None:
                    self.doc.problems.append(
                        f"{self.doc.file}:{key_node.start_mark.line + 1}: keys must be plain words"
                    )
                    continue
                key = str(key)
                child = (*path, key)
                if key in result:
                    self.doc.problems.append(
                        f"{self.doc.file}:{key_node.start_mark.line + 1}: {format_path(child)}: "
                        f"duplicate key (first on line {self.doc.lines.get(child)})"
                    )
                    continue
                self.doc.lines[child] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self.constructor.construct_object(node, deep=True)


def load_yaml(file: Path) -> Located:
    doc = Located(file=file)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        doc.problems.append(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})")
        return doc
    except OSError as exc:
        doc.problems.append(f"{file}: cannot be read: {exc.strerror}")
        return doc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        doc.problems.append(f"{file}{line}: invalid YAML: {exc.problem or exc.context}")
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(f"{file}: invalid YAML: {exc}")
        return doc
    if node is None:
        doc.problems.append(f"{file}:1: the file is empty")
        return doc
    try:
        doc.data = _Builder(doc).build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark else ""
        doc.problems.append(f"{file}{line}: invalid YAML value: {exc.problem}")
    return doc


def load_toml(file: Path) -> Located:
    doc = Located(file=file)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        doc.problems.append(f"{file}: cannot be read: {exc}")
        return doc
    try:
        doc.data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)"
        doc.problems.append(f"{file}: invalid TOML: {exc}")
        return doc
    _toml_lines(text, doc)
    return doc


def _toml_lines(text: str, doc: Located) -> None:
    """Approximate key-path lines for TOML: table headers and ``key =`` lines (enough to locate errors)."""
    table: PathKey = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[") and not line.startswith("[["):
            table = tuple(part.strip().strip('"') for part in line.strip("[]").split("."))
            doc.lines.setdefault(table, number)
        elif "=" in line and not line.startswith("#"):
            key = line.split("=", 1)[0].strip().strip('"')
            doc.lines.setdefault((*table, *key.split(".")), number)


def report_validation(doc: Located, error: ValidationError, prefix: PathKey = ()) -> None:
    """Turn every pydantic error into a located problem on ``doc``."""
    for item in error.errors(include_url=False):
        path = _data_path(doc.data, (*prefix, *item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling)"
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] == "union_tag_invalid":
            message = f"unknown kind {item['input']!r}; expected one of {item['ctx']['expected_tags']}"
        elif item["type"] == "union_tag_not_found":
            message = "needs a 'kind' key (local, sftp, s3 or rest)"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        doc.problem(path, message)


def _data_path(data: Any, loc: Sequence[str | int]) -> PathKey:
    """Drop the parts of a pydantic location that are not keys in the data (union tags, validator names)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if (isinstance(node, dict) and part in node) or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and not isinstance(part, int) and part not in node and path == list(loc[: len(path)]):
            # a missing key or an unknown tag: keep the name if it is the last meaningful part
            if part == loc[-1]:
                path.append(part)
            continue
    return tuple(path)
