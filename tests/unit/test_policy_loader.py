"""Policy files and policy_overrides: every problem at once, each as FILE:LINE: key.path: message."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest

from preuve.config.loader import load_config
from preuve.config.located import load_yaml
from preuve.config.model import JobFile
from preuve.errors import ConfigurationError
from preuve.policies.display import human_duration, human_percent, policy_json, policy_text
from preuve.policies.loader import (
    BUILTIN_DIR,
    effective_policy,
    is_builtin,
    load_policies,
    load_policy_set,
)
from preuve.policies.model import Policy

ROOT = Path(__file__).resolve().parents[2]

POLICY = """\
rpo: 24h
rto: 8h
drill:
  every: 7d
  grace: 2d
  full_restore_every: 180d
integrity:
  window: 30d
retention:
  daily: 7
  weekly: 4
  monthly: 12
copies:
  min: 2
  media: 2
  offsite: 1
  immutable: 0
immutability:
  min_retention: 30d
anomalies:
  max_size_drop: 30%
  max_files_drop: 30%
  max_changed: 50%
"""

JOB = """\
client: ACME
policy: {policy}
targets:
  usb:
    kind: local
    path: /mnt/usb/restic/acme
    password_file: secrets/acme.pass
    location: onsite
    media: disk
"""


def write(folder: Path, name: str, text: str) -> Path:
    file = folder / name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text, encoding="utf-8")
    return file


def line_of(text: str, fragment: str) -> int:
    found = [number for number, line in enumerate(text.splitlines(), start=1) if fragment in line]
    assert found, f"{fragment!r} not in the text"
    return found[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    config = (tmp_path / "config").resolve()
    config.mkdir()
    return config


def job(folder: Path, overrides: str = "", policy: str = "standard", name: str = "acme") -> Path:
    text = JOB.format(policy=policy) + (f"policy_overrides:\n{overrides}" if overrides else "")
    return write(folder, f"jobs/{name}.yaml", text)


def problems(folder: Path) -> list[str]:
    with pytest.raises(ConfigurationError) as error:
        load_config(folder)
    found = error.value.problems
    for problem in found:
        assert re.match(r"^/\S.*?:\d+: \S", problem), f"not FILE:LINE: ...: {problem!r}"
    return found


def only(folder: Path, expected: str) -> None:
    """The configuration fails with exactly this one problem."""
    assert problems(folder) == [expected]


# --- built-in policies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["standard", "health-data"])
def test_builtin_policies_are_the_top_level_examples(name: str) -> None:
    assert (BUILTIN_DIR / f"{name}.yaml").read_bytes() == (ROOT / "policies" / f"{name}.yaml").read_bytes()


def test_every_builtin_policy_has_its_example() -> None:
    assert {file.name for file in BUILTIN_DIR.glob("*.yaml")} == {
        file.name for file in (ROOT / "policies").glob("*.yaml")
    }


def test_builtin_policies_load_without_a_policies_folder(folder: Path) -> None:
    policies, found = load_policies(folder)
    assert found == []
    assert set(policies) == {"standard", "health-data"}
    standard = policies["standard"]
    assert standard.name == "standard"
    assert standard.rpo == timedelta(hours=24)
    assert standard.drill.full_restore_every == timedelta(days=180)
    assert standard.anomalies.max_changed == 0.5
    health = policies["health-data"]
    assert health.rpo == timedelta(hours=4)
    assert health.drill.full_restore_every == timedelta(days=365)  # yearly full restore
    assert health.copies.immutable == 1  # an immutable copy...
    assert health.copies.offsite == 1  # ...offsite
    assert health.rpo < standard.rpo
    assert all(is_builtin(file) for file in load_policy_set(folder).files.values())


def test_config_policy_replaces_the_builtin(folder: Path) -> None:
    file = write(folder, "policies/standard.yaml", "rpo: 12h\n")
    job(folder)
    config = load_config(folder)
    assert config.policies["standard"].rpo == timedelta(hours=12)
    assert config.policies["standard"].rto == Policy().rto  # not written: the default
    assert config.policy_files["standard"] == file
    assert config.client_policy("acme").rpo == timedelta(hours=12)
    assert is_builtin(config.policy_files["health-data"])


def test_custom_policy(folder: Path) -> None:
    write(folder, "policies/gold.yaml", POLICY.replace("rpo: 24h", "rpo: 1h"))
    job(folder, policy="gold")
    config = load_config(folder)
    assert set(config.policies) == {"standard", "health-data", "gold"}
    assert config.client_policy("acme").name == "gold"
    assert config.client_policy("acme").rpo == timedelta(hours=1)


def test_name_key_matching_the_file_is_accepted(folder: Path) -> None:
    write(folder, "policies/gold.yaml", "name: gold\nrpo: 1h\n")
    assert load_policies(folder)[0]["gold"].name == "gold"


def test_hidden_files_are_ignored(folder: Path) -> None:
    write(folder, "policies/.#gold.yaml", "rpo: [\n")
    policies, found = load_policies(folder)
    assert found == []
    assert set(policies) == {"standard", "health-data"}


# --- one problem in a policy file, located ----------------------------------------------------------------

CASES = [
    # (id, replace this, by this, key path, message)
    ("unknown-key", "rto: 8h\n", "rto: 8h\nrpp: 4h\n", "rpp", "unknown key (check its spelling)"),
    ("unknown-nested-key", "  grace: 2d\n", "  grace: 2d\n  evry: 7d\n", "drill.evry", "unknown key (check its spelling)"),
    ("wrong-type-count", "  daily: 7\n", "  daily: seven\n", "retention.daily", "Input should be a valid integer"),
    ("wrong-type-bool", "  offsite: 1\n", "  offsite: yes\n", "copies.offsite", "Input should be a valid integer"),
    ("wrong-type-float", "  weekly: 4\n", "  weekly: 4.5\n", "retention.weekly", "Input should be a valid integer"),
    ("wrong-type-duration", "rpo: 24h\n", "rpo: 24\n", "rpo", "24 is not a duration; write it like 24h or 7d"),
    ("wrong-type-section", "integrity:\n  window: 30d\n", "integrity: 30d\n", "integrity",
     "must be a mapping of keys and values, not text"),
    ("wrong-type-percent", "max_changed: 50%", "max_changed: 50", "anomalies.max_changed",
     "50 is not a percentage; write it with a % sign, like 20%"),
    ("zero-rpo", "rpo: 24h\n", "rpo: 0h\n", "rpo", "'0h' must be longer than zero"),
    ("zero-seconds", "  window: 30d\n", "  window: 0s\n", "integrity.window", "'0s' must be longer than zero"),
    ("negative-duration", "rto: 8h\n", "rto: -8h\n", "rto", "'-8h' must be longer than zero"),
    ("coverage-120", "max_size_drop: 30%", "max_size_drop: 120%", "anomalies.max_size_drop", "'120%' is more than 100%"),
    ("negative-percent", "max_changed: 50%", "max_changed: -5%", "anomalies.max_changed",
     "'-5%' is not a percentage; write it like 20%"),
    ("bad-duration-unit", "  every: 7d\n", "  every: 7 days\n", "drill.every",
     "'7 days' is not a duration; write it like 90s, 15m, 24h or 7d"),
    ("bad-percent-unit", "max_files_drop: 30%", "max_files_drop: 30 percent", "anomalies.max_files_drop",
     "'30 percent' is not a percentage; write it like 20%"),
    ("negative-count", "  monthly: 12\n", "  monthly: -1\n", "retention.monthly",
     "Input should be greater than or equal to 0"),
    ("zero-copies", "  min: 2\n", "  min: 0\n", "copies.min", "Input should be greater than or equal to 1"),
    ("more-media-than-copies", "  media: 2\n", "  media: 3\n", "copies.media",
     "3 kinds of media need at least 3 copies, but copies.min is 2"),
    ("more-offsite-than-copies", "  offsite: 1\n", "  offsite: 4\n", "copies.offsite",
     "4 offsite copies need at least 4 copies, but copies.min is 2"),
    ("more-immutable-than-copies", "  immutable: 0\n", "  immutable: 3\n", "copies.immutable",
     "3 immutable copies need at least 3 copies, but copies.min is 2"),
    ("duplicate-key", "rto: 8h\n", "rto: 8h\nrpo: 4h\n", "rpo", "duplicate key (first on line 1)"),
    ("name-mismatch", "rpo: 24h\n", "name: platinum\nrpo: 24h\n", "name",
     "the file name is the policy name: write 'gold', or leave this key out"),
    ("unsafe-tag", "rpo: 24h\n", "rpo: !!python/object/apply:os.system [ls]\n", "rpo",
     "the YAML tag !!python/object/apply:os.system is refused as unsafe; write a plain value"),
]  # fmt: skip


@pytest.mark.parametrize(("replace", "by", "path", "message"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])  # fmt: skip
def test_one_problem_in_a_policy_file(folder: Path, replace: str, by: str, path: str, message: str) -> None:
    assert replace in POLICY
    text = POLICY.replace(replace, by, 1)
    file = write(folder, "policies/gold.yaml", text)
    # the line written last by the change (the first one for a name that is not the file's)
    written = by.rstrip("\n").splitlines()
    at = written[0] if path == "name" else written[-1]
    expected = f"{file}:{line_of(text, at)}: {path}: {message}"
    policies, found = load_policies(folder)
    assert found == [expected]
    assert "gold" not in policies  # a file with problems contributes nothing
    job(folder, policy="gold")
    only(folder, expected)  # and a job naming it gets no second report


def test_yaml_syntax_error(folder: Path) -> None:
    text = POLICY.replace("  grace: 2d\n", "  grace: 2d: 3d\n")
    file = write(folder, "policies/gold.yaml", text)
    found = load_policies(folder)[1]
    assert len(found) == 1
    assert found[0].startswith(f"{file}:{line_of(text, 'grace')}: drill: invalid YAML: mapping values are not allowed")


def test_unclosed_bracket(folder: Path) -> None:
    file = write(folder, "policies/gold.yaml", "rpo: 24h\ncopies: {min: 2, media: 2\n")
    found = load_policies(folder)[1]
    assert len(found) == 1
    assert found[0].startswith(f"{file}:3: copies: invalid YAML: while parsing a flow mapping (line 2)")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- rpo: 24h\n", "a policy file is a mapping of rules: rpo, rto, drill, copies, ..."),
        ("24h\n", "a policy file is a mapping of rules: rpo, rto, drill, copies, ..."),
    ],
)
def test_file_that_is_not_a_policy(folder: Path, text: str, message: str) -> None:
    file = write(folder, "policies/gold.yaml", text)
    assert load_policies(folder)[1] == [f"{file}:1: {message}"]


def test_bad_file_name(folder: Path) -> None:
    file = write(folder, "policies/Gold Plan.yaml", "rpo: 0h\n")
    assert load_policies(folder)[1] == [
        f"{file}:1: the file name is the policy name: 'Gold Plan' must be lowercase letters, digits, '-' or '_' "
        "(rename the file, for example to gold.yaml)",
        f"{file}:1: rpo: '0h' must be longer than zero",
    ]


def test_same_policy_in_yaml_and_yml(folder: Path) -> None:
    first = write(folder, "policies/gold.yaml", "rpo: 1h\n")
    other = write(folder, "policies/gold.yml", "rpo: 2h\n")
    assert load_policies(folder)[1] == [f"{other}:1: policy 'gold' is also defined by {first}"]


def test_broken_replacement_changes_nothing(folder: Path) -> None:
    file = write(folder, "policies/standard.yaml", "rpo: 12h\nrto: 0h\n")
    policies, found = load_policies(folder)
    assert found == [f"{file}:2: rto: '0h' must be longer than zero"]
    assert policies["standard"].rpo == timedelta(hours=24)  # still the built-in one
    job(folder)
    only(folder, f"{file}:2: rto: '0h' must be longer than zero")


# --- the job file: policy and policy_overrides ------------------------------------------------------------


def test_unknown_policy_names_the_available_ones(folder: Path) -> None:
    write(folder, "policies/gold.yaml", "rpo: 1h\n")
    file = job(folder, policy="platinum")
    only(
        folder,
        f"{file}:2: policy: no policy 'platinum': neither built in nor a file {folder / 'policies' / 'platinum.yaml'} "
        "(available: gold, health-data, standard)",
    )


def test_overrides_are_applied(folder: Path) -> None:
    job(folder, "  rpo: 2h\n  copies:\n    min: 3\n    immutable: 1\n  anomalies: {max_changed: 20%}\n")
    job(folder, name="other")
    config = load_config(folder)
    policy = config.client_policy("acme")
    base = config.policies["standard"]
    assert policy.name == "standard"
    assert policy.rpo == timedelta(hours=2)
    assert policy.copies.min == 3
    assert policy.copies.immutable == 1
    assert policy.copies.media == base.copies.media  # kept from the policy
    assert policy.anomalies.max_changed == 0.2
    assert policy.anomalies.max_size_drop == base.anomalies.max_size_drop
    assert policy.rto == base.rto
    assert config.policies["standard"] == base  # the policy itself is unchanged
    assert config.client_policy("other") == base  # a client without overrides gets the policy as it is


def test_client_policy_of_an_unknown_client(folder: Path) -> None:
    job(folder)
    with pytest.raises(ConfigurationError, match="unknown client 'globex'"):
        load_config(folder).client_policy("globex")


OVERRIDE_CASES = [
    # (id, overrides, line fragment, key path, message)
    ("unknown-key", "  rop: 2h\n", "rop:", "policy_overrides.rop", "unknown key (check its spelling)"),
    ("unknown-nested", "  drill:\n    evry: 3d\n", "evry:", "policy_overrides.drill.evry",
     "unknown key (check its spelling)"),
    ("zero-rpo", "  rpo: 0h\n", "rpo:", "policy_overrides.rpo", "'0h' must be longer than zero"),
    ("coverage-120", "  anomalies:\n    max_changed: 120%\n", "max_changed", "policy_overrides.anomalies.max_changed",
     "'120%' is more than 100%"),
    ("wrong-type", "  retention:\n    daily: lots\n", "daily", "policy_overrides.retention.daily",
     "Input should be a valid integer"),
    ("section-not-a-mapping", "  copies: 3\n", "copies", "policy_overrides.copies",
     "must be a mapping of keys and values, not a number"),
    ("negative-count", "  copies:\n    offsite: -1\n", "offsite", "policy_overrides.copies.offsite",
     "Input should be greater than or equal to 0"),
    ("bad-unit", "  rto: 4 hours\n", "rto", "policy_overrides.rto",
     "'4 hours' is not a duration; write it like 90s, 15m, 24h or 7d"),
    ("fewer-copies-than-media", "  copies:\n    min: 1\n", "min: 1", "policy_overrides.copies.min",
     "2 kinds of media need at least 2 copies, but copies.min is 1"),
    ("name", "  name: health-data\n", "name:", "policy_overrides.name",
     "the policy is chosen with `policy:`; its name cannot be overridden"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "at", "path", "message"), [case[1:] for case in OVERRIDE_CASES],
                         ids=[case[0] for case in OVERRIDE_CASES])  # fmt: skip
def test_problem_in_overrides_is_located_in_the_job_file(
    folder: Path, overrides: str, at: str, path: str, message: str
) -> None:
    file = job(folder, overrides)
    text = file.read_text(encoding="utf-8")
    only(folder, f"{file}:{line_of(text, at)}: {path}: {message}")


def test_overrides_onto_a_config_policy(folder: Path) -> None:
    write(folder, "policies/gold.yaml", "rpo: 1h\ncopies: {min: 3, media: 3}\n")
    file = job(folder, "  copies: {min: 2}\n", policy="gold")
    only(
        folder, f"{file}:11: policy_overrides.copies.min: 3 kinds of media need at least 3 copies, but copies.min is 2"
    )


def test_several_problems_across_files_at_once(folder: Path) -> None:
    gold_text = POLICY.replace("rpo: 24h", "rpo: 0h").replace("  daily: 7", "  daily: -7")
    gold = write(folder, "policies/gold.yaml", gold_text)
    silver = write(folder, "policies/silver.yaml", "rpo: [24h\nrto: 8h\n")
    standard = write(folder, "policies/standard.yaml", "rto: 8h\nrpp: 1h\n")
    acme = job(folder, "  rpo: 0s\n  drill: {grace: 101%}\n", policy="health-data")
    other = job(folder, policy="nothing", name="other")
    good = job(folder, name="good", policy="gold")  # names a broken policy: no second report
    found = problems(folder)
    acme_text = acme.read_text(encoding="utf-8")
    assert f"{gold}:1: rpo: '0h' must be longer than zero" in found
    assert f"{gold}:{line_of(gold_text, 'daily')}: retention.daily: Input should be greater than or equal to 0" in found
    assert any(problem.startswith(f"{silver}:2: rpo: invalid YAML") for problem in found)
    assert f"{standard}:2: rpp: unknown key (check its spelling)" in found
    assert f"{acme}:{line_of(acme_text, 'rpo: 0s')}: policy_overrides.rpo: '0s' must be longer than zero" in found
    assert (
        f"{acme}:{line_of(acme_text, 'grace')}: policy_overrides.drill.grace: "
        "'101%' is not a duration; write it like 90s, 15m, 24h or 7d" in found
    )
    assert any(problem.startswith(f"{other}:2: policy: no policy 'nothing'") for problem in found)
    assert len(found) == 7, "\n".join(found)
    assert not any(str(good) in problem for problem in found)


def test_unknown_policy_and_other_job_problems_together(folder: Path) -> None:
    text = JOB.format(policy="platinum").replace("media: disk", "media: floppy")
    file = write(folder, "jobs/acme.yaml", text)
    found = problems(folder)
    assert len(found) == 1  # the job file does not validate: its policy is not looked at
    assert found[0].startswith(f"{file}:{line_of(text, 'floppy')}: targets.usb.media")


# --- effective_policy on its own --------------------------------------------------------------------------


def test_effective_policy_from_a_file_or_a_loaded_document(folder: Path) -> None:
    policies, _ = load_policies(folder)
    file = job(folder, "  rpo: 6h\n  copies:\n    min: 0\n")
    doc = load_yaml(file)
    data = JobFile.model_validate(doc.data)
    for source in (file, doc):
        with pytest.raises(ConfigurationError) as error:
            effective_policy(policies, data, source)
        assert error.value.problems == [
            f"{file}:{line_of(file.read_text(encoding='utf-8'), 'min: 0')}: policy_overrides.copies.min: "
            "Input should be greater than or equal to 1"
        ]
    assert doc.problems == []  # the loaded document is left as it was
    good = JobFile.model_validate({**doc.data, "policy_overrides": {"rpo": "6h"}})
    assert effective_policy(policies, good, doc).rpo == timedelta(hours=6)
    unknown = JobFile.model_validate({**doc.data, "policy": "gold"})
    with pytest.raises(ConfigurationError, match=r"acme\.yaml:2: policy: no policy 'gold'"):
        effective_policy(policies, unknown, doc)


def test_client_policy_on_a_config_built_by_hand(folder: Path) -> None:
    job(folder, "  rpo: 3h\n")
    loaded = load_config(folder)
    from preuve.config.loader import Config

    config = Config(directory=folder, settings=loaded.settings, clients=loaded.clients)
    assert config.client_policy("acme").rpo == timedelta(hours=3)


# --- display ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(hours=24), "24h"),
        (timedelta(days=1, hours=12), "36h"),
        (timedelta(days=7), "7d"),
        (timedelta(days=365), "365d"),
        (timedelta(minutes=90), "90m"),
        (timedelta(seconds=45), "45s"),
        (timedelta(milliseconds=1500), "1500ms"),
        (timedelta(microseconds=1_000_001), "1.000001s"),
    ],
)
def test_human_duration(value: timedelta, text: str) -> None:
    assert human_duration(value) == text


@pytest.mark.parametrize(("value", "text"), [(0.3, "30%"), (0.07, "7%"), (0.125, "12.5%"), (0.0, "0%"), (1.0, "100%")])
def test_human_percent(value: float, text: str) -> None:
    assert human_percent(value) == text


def test_shown_text_is_a_policy_file_that_loads_back(folder: Path) -> None:
    policies, _ = load_policies(folder)
    odd = Policy.model_validate(
        {"name": "odd", "rpo": "1.5h", "rto": "1.000001s", "anomalies": {"max_changed": "12.34%"}}
    )
    for name, policy in [*policies.items(), ("odd", odd)]:
        text = policy_text(policy, header=["a header"], overridden={("rpo",)})
        assert text.startswith("# a header\n")
        assert "overridden for this client" in text
        write(folder, f"policies/{name}.yaml", text)
        reloaded, found = load_policies(folder)
        assert found == []
        assert reloaded[name] == policy


def test_json_has_seconds_and_text() -> None:
    data = policy_json(Policy())
    assert data["rpo"] == "24h"
    assert data["rpo_s"] == 86400
    assert data["drill"]["every_s"] == 7 * 86400
    assert data["anomalies"]["max_changed"] == "50%"
    assert data["anomalies"]["max_changed_ratio"] == 0.5
    assert data["retention"]["daily"] == 7
    json.dumps(data)
