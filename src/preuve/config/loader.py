"""Load a configuration folder: preuve.toml, jobs/*.yaml, policies/*.yaml.

Every problem in every file is collected and reported at once, each with file:line and key path; then the rules
that span fields and files are checked. A file with errors contributes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from preuve.config.located import Located, load_toml, load_yaml, report_validation
from preuve.config.model import JobFile, Settings, Target, resolve
from preuve.errors import ConfigurationError
from preuve.policies.loader import PolicySet, apply_overrides, effective_policy, load_policy_set
from preuve.policies.model import Policy

_CLIENT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Client:
    id: str
    job: JobFile
    file: Path

    @property
    def name(self) -> str:
        return self.job.client


@dataclass(frozen=True)
class TargetRef:
    client: Client
    name: str
    spec: Target

    @property
    def ref(self) -> str:
        return f"{self.client.id}/{self.name}"


@dataclass
class Config:
    directory: Path
    settings: Settings
    clients: dict[str, Client] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)  # built in, then policies/*.yaml, by name
    policy_files: dict[str, Path] = field(default_factory=dict)  # where each of them was read
    client_policies: dict[str, Policy] = field(default_factory=dict, repr=False)  # by client id, overrides applied

    def path(self, value: str) -> Path:
        return resolve(self.directory, value)

    @property
    def database_url(self) -> str:
        url = self.settings.database
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
            return prefix + str(self.path(url[len(prefix) :]))
        return url

    @property
    def sandbox_root(self) -> Path:
        return self.path(self.settings.sandbox)

    def targets(self) -> list[TargetRef]:
        return [
            TargetRef(client, name, spec)
            for client in sorted(self.clients.values(), key=lambda c: c.id)
            for name, spec in sorted(client.job.targets.items())
        ]

    def client(self, client_id: str) -> Client:
        client = self.clients.get(client_id)
        if client is None:
            known = ", ".join(sorted(self.clients)) or "none"
            raise ConfigurationError(
                [f"unknown client {client_id!r} (no jobs/{client_id}.yaml in {self.directory}; known: {known})"]
            )
        return client

    def client_policy(self, client_id: str) -> Policy:
        """The policy a client is held to: the one its job file names, with its ``policy_overrides`` applied."""
        policy = self.client_policies.get(client_id)
        if policy is not None:
            return policy
        client = self.client(client_id)  # a Config assembled by hand: computed now
        policies = self.policies or load_policy_set(self.directory).policies
        policy = effective_policy(policies, client.job, client.file)
        self.client_policies[client_id] = policy
        return policy

    def target(self, ref: str) -> TargetRef:
        client_id, _, name = ref.partition("/")
        if not name:
            raise ConfigurationError([f"{ref!r}: name a target as CLIENT/TARGET, for example acme/nas"])
        client = self.client(client_id)
        spec = client.job.targets.get(name)
        if spec is None:
            known = ", ".join(sorted(client.job.targets))
            raise ConfigurationError([f"{client.file}: client {client_id!r} has no target {name!r} (it has: {known})"])
        return TargetRef(client, name, spec)


def load_config(directory: Path) -> Config:
    directory = directory.resolve()
    problems: list[str] = []
    if not directory.is_dir():
        raise ConfigurationError([f"{directory}: the configuration folder does not exist (see `preuve init`)"])

    settings = Settings()
    toml_file = directory / "preuve.toml"
    if toml_file.exists():
        doc = load_toml(toml_file)
        if not doc.problems:
            try:
                settings = Settings.model_validate(doc.data)
            except ValidationError as exc:
                report_validation(doc, exc)
        problems += doc.problems

    found = load_policy_set(directory)
    problems += found.problems
    config = Config(directory=directory, settings=settings, policies=found.policies, policy_files=found.files)
    jobs_dir = directory / "jobs"
    job_files = sorted([*jobs_dir.glob("*.yaml"), *jobs_dir.glob("*.yml")]) if jobs_dir.is_dir() else []
    for file in job_files:
        if file.name.startswith("."):
            continue  # editor lock and backup files (.#acme.yaml)
        client, policy, file_problems = _load_job(file, directory, found)
        problems += file_problems
        if client is not None and not file_problems:
            if client.id in config.clients:
                problems.append(
                    f"{file}:1: client id {client.id!r} is also defined by {config.clients[client.id].file}"
                )
            else:
                config.clients[client.id] = client
                if policy is not None:
                    config.client_policies[client.id] = policy
    if problems:
        raise ConfigurationError(problems)
    return config


def _load_job(file: Path, directory: Path, policies: PolicySet) -> tuple[Client | None, Policy | None, list[str]]:
    """A job file: the client, the policy it is held to (overrides applied), and the file's problems."""
    client_id = file.stem
    doc = load_yaml(file)
    if not _CLIENT_ID.match(client_id):
        doc.problems.insert(
            0,
            f"{file}:1: the file name is the client id: {client_id!r} must be lowercase letters, digits, "
            "'-' or '_' (rename the file, for example to acme.yaml)",
        )
    if doc.data is None and doc.problems:
        return None, None, doc.problems
    if not isinstance(doc.data, dict):
        doc.problems.append(f"{file}:1: a job file is a mapping with client, targets, ...")
        return None, None, doc.problems
    try:
        job = JobFile.model_validate(doc.data)
    except ValidationError as exc:
        report_validation(doc, exc)
        return None, None, doc.problems
    _check_rules(doc, job, directory)
    policy = None
    if job.policy not in policies.broken:  # else its own file's problems are reported
        policy = apply_overrides(policies.policies, job, doc, directory)
    return Client(client_id, job, file), policy, doc.problems


def _check_rules(doc: Located, job: JobFile, directory: Path) -> None:
    """Rules that span fields: each can only be checked once the whole file has the right shape."""
    for name, target in job.targets.items():
        for index, canary in enumerate(target.canaries):
            if target.source and not target.source.startswith("sftp://"):
                root = target.source.rstrip("/") + "/"
                if not canary.path.startswith(root):
                    doc.problem(
                        ("targets", name, "canaries", index, "path"),
                        f"canary {canary.path} is outside the target's source {target.source}",
                    )
        if target.kind == "sftp" and target.source and target.source.startswith("sftp://"):
            host = target.source[len("sftp://") :].split("/", 1)[0]
            if host != target.host:
                doc.problem(
                    ("targets", name, "source"),
                    f"an SFTP source must be on the target's own host {target.host!r} (its SSH key is used)",
                )
        if target.kind != "sftp" and target.source and target.source.startswith("sftp://"):
            doc.problem(("targets", name, "source"), "an sftp:// source needs an sftp target (its SSH settings)")
        for key in ("password_file", "identity_file", "known_hosts", "env_file"):
            value = getattr(target, key, None)
            if value is not None and not value.strip():
                doc.problem(("targets", name, key), "must name a file")
