"""Whatever a technician does to a job file, loading it either works or names the file and line: no traceback."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from preuve.config.loader import load_config
from preuve.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = (ROOT / "jobs" / "acme.yaml").read_text(encoding="utf-8")  # with its comments
BASE = yaml.safe_load(ORIGINAL)
TOML = (ROOT / "deploy" / "preuve.toml.example").read_text(encoding="utf-8")

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["sftp", "s3", "rest", "local", "fr", "onsite", "disk", "24h", "/srv/data", "a@b.c", "", "~"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["kind", "port", "pasword_file", "<<", "targets", "canaries", "sha256", "source", "1", "true"]),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``node`` (not the root itself)."""
    found: list[tuple[Any, ...]] = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _containers(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of the mappings inside ``node``, the root included."""
    found: list[tuple[Any, ...]] = [prefix] if isinstance(node, dict) else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found += _containers(child, (*prefix, key))
    return found


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    """The example job, changed a few times at the level of its values, written back as YAML."""
    data = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        operation = draw(st.sampled_from(["delete", "replace", "insert", "retype"]))
        paths = _paths(data)
        if operation == "insert" or not paths:
            container = _get(data, draw(st.sampled_from(_containers(data))))
            container[draw(keys)] = draw(values)
            continue
        path = draw(st.sampled_from(paths))
        parent = _get(data, path[:-1])
        if operation == "delete":
            del parent[path[-1]]
        elif operation == "replace":
            parent[path[-1]] = draw(values)
        else:  # the same value as another type
            value = parent[path[-1]]
            parent[path[-1]] = draw(st.sampled_from([[value], {"value": value}, str(value), None, 0, True]))
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=draw(st.booleans()), default_flow_style=None)


@st.composite
def mutated_text(draw: st.DrawFn, base: str = ORIGINAL) -> str:
    """The example file (comments and all), truncated or with random characters inserted or replaced."""
    text = base
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        operation = draw(st.sampled_from(["truncate", "insert", "replace-line", "yaml-noise"]))
        at = draw(st.integers(min_value=0, max_value=len(text)))
        if operation == "truncate":
            text = text[:at]
        elif operation == "insert":
            text = text[:at] + draw(st.text(min_size=1, max_size=10)) + text[at:]
        elif operation == "yaml-noise":
            noise = st.sampled_from(
                [":", "- ", "&a ", "*a", "<<: *a\n", "!!python/object:os.system ", "{", "]", "\t", "? ", "---\n",
                 '"', "'", "#", "\n  ", "!!binary ", "%YAML 1.1\n", "|\n", "\x00", "\ufeff", "9" * 5000]
            )  # fmt: skip
            text = text[:at] + draw(noise) + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
                lines[index] = draw(st.text(max_size=30)) + "\n"
                text = "".join(lines)
    return text


def _check(folder: Path, file: Path) -> None:
    """Accepted, or a ConfigurationError whose every problem starts with FILE:LINE: ."""
    try:
        config = load_config(folder)
    except ConfigurationError as error:
        event("rejected")
        assert error.problems
        pattern = re.compile(rf"^{re.escape(str(file))}:\d+: \S")
        for problem in error.problems:
            assert pattern.match(problem), problem
        return
    event("accepted")
    assert file.suffix != ".yaml" or list(config.clients) == [file.stem]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("property").resolve()
    (config / "jobs").mkdir()
    return config


@PROPERTY
@given(text=st.one_of(mutated_data(), mutated_text()))
def test_mutated_job_file_is_accepted_or_located(folder: Path, text: str) -> None:
    file = folder / "jobs" / "acme.yaml"
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(folder, file)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=mutated_text(TOML))
def test_mutated_preuve_toml_is_accepted_or_located(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    folder = tmp_path_factory.mktemp("toml").resolve()
    file = folder / "preuve.toml"
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(folder, file)


def test_the_unmutated_example_loads(folder: Path) -> None:
    file = folder / "jobs" / "acme.yaml"
    file.write_text(ORIGINAL, encoding="utf-8")
    assert list(load_config(folder).clients) == ["acme"]
    file.write_text(yaml.safe_dump(BASE, allow_unicode=True), encoding="utf-8")
    assert list(load_config(folder).clients) == ["acme"]
