"""Whatever a technician does to a policy file or to policy_overrides: it loads, or the file and line are named."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from preuve.config.loader import load_config
from preuve.errors import ConfigurationError
from preuve.policies.display import policy_json, policy_text
from preuve.policies.model import Policy

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL = (ROOT / "policies" / "health-data.yaml").read_text(encoding="utf-8")  # with its comments
BASE = yaml.safe_load(ORIGINAL)
JOB = """\
client: ACME
policy: gold
targets:
  usb:
    kind: local
    path: /mnt/usb/restic/acme
    password_file: secrets/acme.pass
    location: onsite
    media: disk
"""

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
    st.sampled_from(
        ["24h", "0h", "-1h", "7d", "90s", "1.5h", "1ms", "0.0000001s", "9" * 30 + "d", "2GiB", "20%", "120%", "0%",
         "100%", "12.5%", "-5%", "%", "h", "yes", "no", "~", ""]
    ),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["rpo", "rto", "drill", "every", "grace", "full_restore_every", "window", "daily", "min", "media", "offsite",
         "immutable", "min_retention", "max_changed", "name", "<<", "1", "true"]
    ),
)  # fmt: skip


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def _containers(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = [prefix] if isinstance(node, dict) else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        found += _containers(child, (*prefix, key))
    return found


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _mutate(draw: st.DrawFn, data: Any, times: int) -> Any:
    """``data`` changed ``times`` times at the level of its values: deleted, replaced, inserted, retyped."""
    for _ in range(times):
        operation = draw(st.sampled_from(["delete", "replace", "insert", "retype"]))
        paths = _paths(data)
        if operation == "insert" or not paths:
            containers = _containers(data)
            if not containers:
                return data
            container = _get(data, draw(st.sampled_from(containers)))
            container[draw(keys)] = draw(values)
            continue
        path = draw(st.sampled_from(paths))
        parent = _get(data, path[:-1])
        if operation == "delete":
            del parent[path[-1]]
        elif operation == "replace":
            parent[path[-1]] = draw(values)
        else:
            value = parent[path[-1]]
            parent[path[-1]] = draw(st.sampled_from([[value], {"value": value}, str(value), None, 0, True, 1.5]))
    return data


def _dump(draw: st.DrawFn, data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=draw(st.booleans()), default_flow_style=None)


@st.composite
def mutated_data(draw: st.DrawFn) -> str:
    """The health-data policy, changed a few times, written back as YAML."""
    data = _mutate(draw, copy.deepcopy(BASE), draw(st.integers(min_value=1, max_value=4)))
    return _dump(draw, data)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    """The health-data policy file (comments and all), truncated or with characters inserted or replaced."""
    text = ORIGINAL
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
                 '"', "'", "#", "\n  ", "!!binary ", "|\n", "\x00", "\ufeff", "9" * 5000, "-", "%", "0"]
            )  # fmt: skip
            text = text[:at] + draw(noise) + text[at:]
        else:
            lines = text.splitlines(keepends=True)
            if lines:
                index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
                lines[index] = draw(st.text(max_size=30)) + "\n"
                text = "".join(lines)
    return text


@st.composite
def overrides(draw: st.DrawFn) -> str:
    """A job file whose policy_overrides are a random part of a policy, mutated."""
    chosen = draw(st.lists(st.sampled_from(sorted(BASE)), max_size=4, unique=True))
    data: dict[str, Any] = {key: copy.deepcopy(BASE[key]) for key in chosen}
    data = _mutate(draw, data, draw(st.integers(min_value=0, max_value=4)))
    return JOB + _dump(draw, {"policy_overrides": data})


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
    policy = config.client_policy("acme")
    assert isinstance(policy, Policy)
    assert policy.name == "gold"
    json.dumps(policy_json(policy))
    assert policy_text(policy, header=["shown"]).startswith("# shown\n")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = tmp_path_factory.mktemp("policy-property").resolve()
    (config / "jobs").mkdir()
    (config / "policies").mkdir()
    return config


@PROPERTY
@given(text=st.one_of(mutated_data(), mutated_text()))
def test_mutated_policy_file_is_accepted_or_located(folder: Path, text: str) -> None:
    (folder / "jobs" / "acme.yaml").write_text(JOB, encoding="utf-8")
    file = folder / "policies" / "gold.yaml"
    file.write_text(text, encoding="utf-8", errors="surrogatepass")
    _check(folder, file)


@PROPERTY
@given(text=overrides())
def test_mutated_overrides_are_accepted_or_located(folder: Path, text: str) -> None:
    (folder / "policies" / "gold.yaml").write_text(ORIGINAL, encoding="utf-8")
    file = folder / "jobs" / "acme.yaml"
    file.write_text(text, encoding="utf-8")
    _check(folder, file)


def test_the_unmutated_policy_loads(folder: Path) -> None:
    (folder / "jobs" / "acme.yaml").write_text(JOB, encoding="utf-8")
    (folder / "policies" / "gold.yaml").write_text(ORIGINAL, encoding="utf-8")
    assert load_config(folder).client_policy("acme").copies.immutable == 1
