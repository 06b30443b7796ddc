"""Policy files: the built-in ones, the configuration folder's ``policies/``, and a client's ``policy_overrides``.

One YAML file per policy; the file name is the policy's name. The built-in policies (``standard``, ``health-data``,
shipped in ``preuve/policies/builtin``) are read first; a file of the same name in the configuration folder's
``policies/`` replaces one. Every problem reads ``FILE:LINE: key.path: message``; a file with problems contributes
nothing (a broken ``policies/standard.yaml`` leaves the built-in ``standard`` in place).

A job file names its policy (``policy: health-data``) and may change single values for that client
(``policy_overrides: {rpo: 2h, copies: {min: 3}}``): the overrides are merged key by key into the policy and the
result is validated again; its problems are located in the job file, at ``policy_overrides.<key path>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from preuve.config.located import Located, PathKey, load_yaml, report_validation
from preuve.config.model import JobFile
from preuve.errors import ConfigurationError
from preuve.policies.model import Policy

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_OVERRIDES = "policy_overrides"


@dataclass
class PolicySet:
    """What :func:`load_policy_set` found."""

    policies: dict[str, Policy] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # where each policy in use was read
    problems: list[str] = field(default_factory=list)
    # names whose configuration file has problems: a job naming one is not checked against it (the file's own
    # problems say what is wrong; a second report in every job file would be noise)
    broken: set[str] = field(default_factory=set)


def is_builtin(file: Path) -> bool:
    return file.parent == BUILTIN_DIR


def policy_files(folder: Path) -> list[Path]:
    """The policy files of a folder, sorted; editor lock and backup files (``.#gold.yaml``) left out."""
    if not folder.is_dir():
        return []
    files = [*folder.glob("*.yaml"), *folder.glob("*.yml")]
    return sorted(file for file in files if not file.name.startswith("."))


def load_policies(config_dir: Path) -> tuple[dict[str, Policy], list[str]]:
    """The built-in policies, then each ``config_dir/policies/*.yaml``; with the problems of every file."""
    found = load_policy_set(config_dir)
    return found.policies, found.problems


def load_policy_set(config_dir: Path) -> PolicySet:
    found = PolicySet()
    for file in policy_files(BUILTIN_DIR):
        policy, problems = load_policy_file(file)
        found.problems += problems
        if policy is not None:
            found.policies[policy.name] = policy
            found.files[policy.name] = file
    seen: dict[str, Path] = {}
    for file in policy_files(config_dir / "policies"):
        policy, problems = load_policy_file(file)
        name = file.stem
        if problems:
            found.problems += problems
            found.broken.add(name)
            continue
        assert policy is not None
        if name in seen:
            found.problems.append(f"{file}:1: policy {name!r} is also defined by {seen[name]}")
            found.broken.add(name)
            continue
        seen[name] = file
        found.policies[name] = policy
        found.files[name] = file
    return found


def load_policy_file(file: Path) -> tuple[Policy | None, list[str]]:
    """One policy file, named after the file; the policy, or None and every problem found in it."""
    name = file.stem
    doc = load_yaml(file)
    if not _NAME.match(name):
        doc.problems.insert(
            0,
            f"{file}:1: the file name is the policy name: {name!r} must be lowercase letters, digits, '-' or '_' "
            "(rename the file, for example to gold.yaml)",
        )
    if doc.data is None and doc.problems:
        return None, doc.problems
    if not isinstance(doc.data, dict):
        doc.problems.append(f"{file}:1: a policy file is a mapping of rules: rpo, rto, drill, copies, ...")
        return None, doc.problems
    data = dict(doc.data)
    if data.get("name", name) != name:
        doc.problem(("name",), f"the file name is the policy name: write {name!r}, or leave this key out")
    data["name"] = name
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        report_validation(doc, exc)
        return None, doc.problems
    for path, _involved, message in coherence_problems(policy):
        doc.problem(path, message)
    if doc.problems:
        return None, doc.problems
    return policy, []


def coherence_problems(policy: Policy) -> list[tuple[PathKey, tuple[PathKey, ...], str]]:
    """Values that are each possible but impossible together: (key path, key paths involved, message)."""
    found: list[tuple[PathKey, tuple[PathKey, ...], str]] = []
    copies = policy.copies
    total = ("copies", "min")
    if copies.media > copies.min:
        found.append(
            (
                ("copies", "media"),
                (("copies", "media"), total),
                f"{copies.media} kinds of media need at least {copies.media} copies, but copies.min is {copies.min}",
            )
        )
    for key, what in (("offsite", "offsite copies"), ("immutable", "immutable copies")):
        count = getattr(copies, key)
        if count > copies.min:
            found.append(
                (
                    ("copies", key),
                    (("copies", key), total),
                    f"{count} {what} need at least {count} copies, but copies.min is {copies.min}",
                )
            )
    return found


def unknown_policy(name: str, policies: Mapping[str, Policy], config_dir: Path | None = None) -> str:
    """Why a policy name is not known, naming the policies that are."""
    where = config_dir / "policies" / f"{name}.yaml" if config_dir is not None else Path("policies", f"{name}.yaml")
    available = ", ".join(sorted(policies)) or "none"
    return f"no policy {name!r}: neither built in nor a file {where} (available: {available})"


def effective_policy(policies: Mapping[str, Policy], job: JobFile, job_doc_or_file: Located | Path) -> Policy:
    """The policy a job is held to: the one it names, with its ``policy_overrides`` applied.

    ``job_doc_or_file`` is the job file as loaded by :func:`preuve.config.located.load_yaml` (or its path, loaded
    here): problems are located in it. Raises :class:`ConfigurationError` listing every problem.
    """
    source = load_yaml(job_doc_or_file) if isinstance(job_doc_or_file, Path) else job_doc_or_file
    # a fresh list of problems: those already recorded on the job file are not this function's to report
    doc = Located(file=source.file, data=source.data, lines=source.lines, refused=source.refused)
    policy = apply_overrides(policies, job, doc)
    if policy is None:
        raise ConfigurationError(doc.problems or [f"{doc.file}:1: {_OVERRIDES}: cannot be applied"])
    return policy


def apply_overrides(
    policies: Mapping[str, Policy], job: JobFile, doc: Located, config_dir: Path | None = None
) -> Policy | None:
    """Like :func:`effective_policy`, recording problems on ``doc``; None when there are any."""
    base = policies.get(job.policy)
    if base is None:
        doc.problem(("policy",), unknown_policy(job.policy, policies, config_dir))
        return None
    overrides = dict(job.policy_overrides)
    if not overrides:
        return base
    before = len(doc.problems)
    if "name" in overrides:
        doc.problem((_OVERRIDES, "name"), "the policy is chosen with `policy:`; its name cannot be overridden")
        del overrides["name"]
    data = merge(base.model_dump(exclude={"name"}), overrides)
    data["name"] = base.name
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        report_validation(doc, exc, prefix=(_OVERRIDES,))
        return None
    written = set(override_paths(overrides))
    for path, involved, message in coherence_problems(policy):
        overridden = [key for key in involved if any(key[:end] in written for end in range(1, len(key) + 1))]
        doc.problem((_OVERRIDES, *(overridden[0] if overridden else path)), message)
    return policy if len(doc.problems) == before else None


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` merged into ``base`` key by key: mappings are merged, any other value replaces."""
    result = dict(base)
    for key, value in overrides.items():
        current = result.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            result[key] = merge(current, value)
        else:
            result[key] = value
    return result


def override_paths(overrides: Mapping[str, Any], prefix: PathKey = ()) -> Iterator[PathKey]:
    """The key path of every value written in ``overrides`` (a mapping's own path when it is empty)."""
    for key, value in overrides.items():
        path = (*prefix, key)
        if isinstance(value, Mapping) and value:
            yield from override_paths(value, path)
        else:
            yield path
