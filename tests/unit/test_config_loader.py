"""Loading a configuration folder: every problem in every file at once, each as FILE:LINE: key.path: message."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from preuve.config.loader import load_config
from preuve.config.located import MAX_DEPTH, load_yaml
from preuve.config.model import LocalTarget, RestTarget, S3Target, SftpTarget
from preuve.errors import ConfigurationError

SHA = "bea62b24b4bf554292df625bb38efb82640b798525b5c8541a3de7d3befc71c0"

GOOD = f"""\
client: ACME Bâtiment
language: fr
contacts: [direction@acme.example, it@acme.example]
policy: standard
targets:
  nas:
    kind: sftp
    host: nas.acme.lan
    port: 22
    user: backup
    identity_file: secrets/acme-nas.key
    known_hosts: secrets/known_hosts
    path: /volume1/restic/acme
    password_file: secrets/acme.pass
    location: onsite
    media: nas
    source: /srv/data
    canaries:
      - {{path: /srv/data/.preuve-canary, sha256: "{SHA}"}}
  cloud:
    kind: s3
    endpoint: https://s3.example.net
    bucket: acme-backup
    prefix: restic
    env_file: secrets/acme-s3.env
    password_file: secrets/acme.pass
    location: offsite
    media: object-storage
  usb:
    kind: local
    path: /mnt/usb/restic/acme
    password_file: secrets/acme.pass
    location: onsite
    media: disk
  vault:
    kind: rest
    url: https://vault.example.net:8000/acme
    password_file: secrets/acme.pass
    location: offsite
    media: other
schedule:
  drill: "0 2 * * *"
"""

GOOD_TOML = """\
database = "sqlite:///preuve.db"
max_concurrent_drills = 3

[drill]   # a comment after the table
open_timeout = "90s"
max_sample_bytes = "1GiB"
"""


def write(folder: Path, name: str, text: str | bytes) -> Path:
    file = folder / name
    file.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        file.write_bytes(text)
    else:
        file.write_text(text, encoding="utf-8")
    return file


def line_of(text: str, fragment: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``fragment``."""
    found = [number for number, line in enumerate(text.splitlines(), start=1) if fragment in line]
    assert len(found) >= occurrence, f"{fragment!r} not in the text"
    return found[occurrence - 1]


def problems(folder: Path) -> list[str]:
    with pytest.raises(ConfigurationError) as error:
        load_config(folder)
    found = error.value.problems
    assert found, "a ConfigurationError lists at least one problem"
    assert str(error.value) == "\n".join(found)
    for problem in found:
        assert re.match(r"^/\S.*?:\d+: \S", problem), f"not FILE:LINE: ...: {problem!r}"
        assert "Traceback" not in problem
    return found


def expect(found: list[str], file: Path, line: int, path: str | None, fragment: str) -> None:
    """One of ``found`` reads ``FILE:LINE: path: ...fragment...``."""
    prefix = f"{file}:{line}: " + (f"{path}: " if path else "")
    matching = [problem for problem in found if problem.startswith(prefix) and fragment in problem]
    assert matching, f"no problem starting {prefix!r} containing {fragment!r} in:\n" + "\n".join(found)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    config = (tmp_path / "config").resolve()
    config.mkdir()
    return config


def job(folder: Path, text: str, name: str = "acme.yaml") -> Path:
    return write(folder, f"jobs/{name}", text)


def only(folder: Path, file: Path, line: int, path: str | None, fragment: str) -> None:
    """The configuration fails with exactly one problem, the one described."""
    found = problems(folder)
    expect(found, file, line, path, fragment)
    assert len(found) == 1, "\n".join(found)


# --- a valid configuration --------------------------------------------------------------------------------


def test_valid_configuration_with_all_four_kinds(folder: Path) -> None:
    write(folder, "preuve.toml", GOOD_TOML)
    job(folder, GOOD)
    config = load_config(folder)
    assert config.directory == folder
    assert config.settings.max_concurrent_drills == 3
    assert config.settings.drill.open_timeout == "90s"
    assert list(config.clients) == ["acme"]
    client = config.clients["acme"]
    assert client.name == "ACME Bâtiment"
    assert client.file == folder / "jobs" / "acme.yaml"
    assert client.job.contacts == ["direction@acme.example", "it@acme.example"]
    assert [target.ref for target in config.targets()] == ["acme/cloud", "acme/nas", "acme/usb", "acme/vault"]
    assert isinstance(config.target("acme/nas").spec, SftpTarget)
    assert isinstance(config.target("acme/cloud").spec, S3Target)
    assert isinstance(config.target("acme/usb").spec, LocalTarget)
    assert isinstance(config.target("acme/vault").spec, RestTarget)
    nas = config.target("acme/nas").spec
    assert isinstance(nas, SftpTarget)
    assert nas.port == 22
    assert nas.canaries[0].sha256 == SHA
    assert config.path("secrets/acme.pass") == folder / "secrets" / "acme.pass"
    assert config.database_url == f"sqlite:///{folder / 'preuve.db'}"


def test_no_preuve_toml_uses_the_defaults(folder: Path) -> None:
    job(folder, GOOD)
    config = load_config(folder)
    assert config.settings.drill.open_timeout == "120s"


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(tmp_path / "nowhere")


def test_custom_policy_file_is_accepted(folder: Path) -> None:
    write(folder, "policies/gold.yaml", "rpo: 1h\n")
    job(folder, GOOD.replace("policy: standard", "policy: gold"))
    assert load_config(folder).clients["acme"].job.policy == "gold"


def test_builtin_policy_needs_no_file(folder: Path) -> None:
    job(folder, GOOD.replace("policy: standard", "policy: health-data"))
    assert load_config(folder).clients["acme"].job.policy == "health-data"


def test_sftp_source_on_the_targets_host(folder: Path) -> None:
    text = GOOD.replace("    source: /srv/data\n", "    source: sftp://nas.acme.lan/volume1/data\n").replace(
        "/srv/data/.preuve-canary", "/volume1/data/.preuve-canary"
    )
    job(folder, text)
    assert load_config(folder).target("acme/nas").spec.source == "sftp://nas.acme.lan/volume1/data"


def test_hidden_files_in_jobs_are_ignored(folder: Path) -> None:
    job(folder, GOOD)
    job(folder, "not: [yaml", name=".#acme.yaml")
    assert list(load_config(folder).clients) == ["acme"]


# --- Config.target ----------------------------------------------------------------------------------------


def test_target_lookup_errors(folder: Path) -> None:
    job(folder, GOOD)
    job(folder, GOOD.replace("ACME Bâtiment", "Dupont"), name="dupont.yaml")
    config = load_config(folder)
    assert config.target("dupont/usb").client.id == "dupont"

    with pytest.raises(ConfigurationError) as error:
        config.target("globex/nas")
    message = str(error.value)
    assert "unknown client 'globex'" in message
    assert "acme, dupont" in message  # names what exists

    with pytest.raises(ConfigurationError) as error:
        config.target("acme/tape")
    message = str(error.value)
    assert "no target 'tape'" in message
    assert "cloud, nas, usb, vault" in message
    assert str(folder / "jobs" / "acme.yaml") in message

    with pytest.raises(ConfigurationError, match="CLIENT/TARGET"):
        config.target("acme")


# --- one problem, located ---------------------------------------------------------------------------------

CASES = [
    # (id, replace this, by this, fragment of the line reported, key path, fragment of the message)
    ("syntax", "    user: backup\n", "    user: backup: admin\n", "user: backup: admin", None, "invalid YAML"),
    ("tab", "    user: backup\n", "\tuser: backup\n", "\tuser", None, "tabs"),
    ("unclosed-quote", "    user: backup\n", "    user: 'backup\n", "user: 'backup", "targets.nas.user", "invalid YAML"),
    ("duplicate", "    user: backup\n", "    user: backup\n    port: 2222\n", "port: 2222", "targets.nas.port",
     "duplicate key (first on line 9)"),
    ("duplicate-target", "  vault:\n", "  usb:\n", "  usb:", "targets.usb", "duplicate key"),
    ("wrong-type", "    port: 22\n", '    port: "abc"\n', 'port: "abc"', "targets.nas.port", "valid integer"),
    ("out-of-range", "    port: 22\n", "    port: 70000\n", "port: 70000", "targets.nas.port", "65535"),
    ("unknown-kind", "    kind: local\n", "    kind: ftp\n", "kind: ftp", "targets.usb.kind", "unknown kind 'ftp'"),
    ("null-kind", "    kind: local\n", "    kind:   # none\n", "# none", "targets.usb.kind", "unknown kind"),
    ("missing-kind", "    kind: local\n", "", "  usb:", "targets.usb", "needs a 'kind' key"),
    ("missing-required", "    host: nas.acme.lan\n", "", "  nas:", "targets.nas.host", "required key is missing"),
    ("missing-targets", "targets:\n", "policy_overrides:\n", "client:", "targets", "required key is missing"),
    ("bad-language", "language: fr", "language: de", "language: de", "language", "'fr' or 'en'"),
    ("bad-email", "it@acme.example", "it-at-acme", "contacts:", "contacts[1]", "'it-at-acme' is not an e-mail"),
    ("bad-sha256", SHA, "abc123", "abc123", "targets.nas.canaries[0].sha256", "64 hexadecimal"),
    ("relative-canary", "{path: /srv/data/.preuve-canary", "{path: srv/data/.preuve-canary", ".preuve-canary",
     "targets.nas.canaries[0].path", "absolute path"),
    ("s3-endpoint-path", "endpoint: https://s3.example.net", "endpoint: https://s3.example.net/acme", "endpoint:",
     "targets.cloud.endpoint", "no path"),
    ("s3-endpoint-scheme", "endpoint: https://s3.example.net", "endpoint: s3.example.net", "endpoint:",
     "targets.cloud.endpoint", "http:// or https://"),
    ("s3-bucket", "bucket: acme-backup", "bucket: ACME_Backup", "bucket:", "targets.cloud.bucket",
     "not a valid S3 bucket name"),
    ("rest-credentials", "url: https://vault", "url: https://acme:hunter2@vault", "url:", "targets.vault.url",
     "must not carry credentials"),
    ("sftp-relative-path", "path: /volume1/restic/acme", "path: volume1/restic/acme", "path: volume1",
     "targets.nas.path", "absolute path on the NAS"),
    ("bad-location", "    location: offsite\n    media: other\n", "    location: cloud\n    media: other\n",
     "location: cloud", "targets.vault.location", "'onsite' or 'offsite'"),
    ("bad-media", "media: disk", "media: floppy", "media: floppy", "targets.usb.media", "'disk'"),
    ("bad-timeout", "    media: disk\n", "    media: disk\n    timeout: soon\n", "timeout: soon",
     "targets.usb.timeout", "not a duration"),
    ("bad-target-name", "  usb:\n", "  USB Disk:\n", "USB Disk:", "targets.USB Disk", "target name 'USB Disk'"),
    ("no-targets", "targets:\n", "targets: {}\npolicy_overrides:\n", "targets: {}", "targets",
     "at least one target"),
    ("null-target", "  vault:\n", "  empty:\n  vault:\n", "  empty:", "targets.empty", "must be a mapping"),
    ("unknown-top-key", "policy: standard\n", "policy: standard\npolcy: x\n", "polcy:", "polcy", "unknown key"),
    ("schedule-typo", '  drill: "0 2 * * *"', '  drills: "0 2 * * *"', "drills:", "schedule.drills", "unknown key"),
    ("unknown-policy", "policy: standard", "policy: gold", "policy: gold", "policy", "no policy 'gold'"),
    ("bad-policy-name", "policy: standard", "policy: ../../etc/passwd", "policy:", "policy", "not a policy name"),
    ("canary-outside-source", "{path: /srv/data/.preuve-canary", "{path: /etc/.preuve-canary", "/etc/.preuve",
     "targets.nas.canaries[0].path", "outside the target's source /srv/data"),
    ("sftp-source-other-host", "    source: /srv/data\n", "    source: sftp://other.lan/data\n", "source: sftp",
     "targets.nas.source", "own host 'nas.acme.lan'"),
    ("sftp-source-on-local", "    media: disk\n", "    media: disk\n    source: sftp://nas.acme.lan/data\n",
     "source: sftp", "targets.usb.source", "needs an sftp target"),
    ("empty-password-file", "    password_file: secrets/acme.pass\n    location: onsite\n    media: disk\n",
     '    password_file: " "\n    location: onsite\n    media: disk\n', 'password_file: " "',
     "targets.usb.password_file", "must name a file"),
    ("client-not-text", "client: ACME Bâtiment", "client: [ACME]", "client:", "client", "valid string"),
    ("client-null", "client: ACME Bâtiment", "client:", "client:", "client", "valid string"),
    ("enabled-not-bool", "    media: disk\n", "    media: disk\n    enabled: maybe\n", "enabled: maybe",
     "targets.usb.enabled", "valid boolean"),
]  # fmt: skip


@pytest.mark.parametrize(("replace", "by", "at", "path", "fragment"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])  # fmt: skip
def test_one_problem_located(folder: Path, replace: str, by: str, at: str, path: str | None, fragment: str) -> None:
    assert replace in GOOD
    text = GOOD.replace(replace, by, 1)
    file = job(folder, text)
    only(folder, file, _last(text, at), path, fragment)


def test_unknown_key_typo_reports_both_the_typo_and_the_missing_key(folder: Path) -> None:
    text = GOOD.replace("    password_file: secrets/acme.pass\n", "    pasword_file: secrets/acme.pass\n", 1)
    file = job(folder, text)
    found = problems(folder)
    expect(found, file, line_of(text, "pasword_file"), "targets.nas.pasword_file", "unknown key")
    expect(found, file, line_of(text, "  nas:"), "targets.nas.password_file", "required key is missing")
    assert len(found) == 2


def test_rest_credentials_are_not_repeated(folder: Path) -> None:
    job(folder, GOOD.replace("url: https://vault", "url: https://acme:hunter2@vault"))
    assert not any("hunter2" in problem for problem in problems(folder))


def test_wrong_type_message_does_not_quote_the_value(folder: Path) -> None:
    job(folder, GOOD.replace("  vault:\n", "  secret: hunter2\n  vault:\n"))
    found = problems(folder)
    assert not any("hunter2" in problem for problem in found)
    assert any("targets.secret: must be a mapping of keys and values, not text" in problem for problem in found)


# --- files that are not job files -------------------------------------------------------------------------


def test_empty_file(folder: Path) -> None:
    file = job(folder, "")
    only(folder, file, 1, None, "the file is empty")


def test_file_with_only_comments(folder: Path) -> None:
    file = job(folder, "# nothing yet\n\n")
    only(folder, file, 1, None, "the file is empty")


@pytest.mark.parametrize("text", ["- nas\n- usb\n", "just some text\n", "42\n", "~\n"])
def test_file_that_is_not_a_mapping(folder: Path, text: str) -> None:
    file = job(folder, text)
    only(folder, file, 1, None, "a job file is a mapping")


def test_non_utf8_file(folder: Path) -> None:
    file = job(folder, GOOD.replace("ACME Bâtiment", "ACME B\xe2timent").encode("latin-1"))
    only(folder, file, 1, None, "not UTF-8")
    file.write_bytes(b"client: ACME\nlanguage: fr\ncontacts: [\xff]\n")
    only(folder, file, 3, None, "not UTF-8")


def test_utf8_bom_is_accepted(folder: Path) -> None:
    job(folder, "\ufeff" + GOOD)
    assert load_config(folder).clients["acme"].name == "ACME Bâtiment"


def test_invalid_client_id_file_name(folder: Path) -> None:
    file = job(folder, GOOD, name="ACME Corp.yaml")
    only(folder, file, 1, None, "the file name is the client id: 'ACME Corp'")


def test_invalid_file_name_and_content_reported_together(folder: Path) -> None:
    text = GOOD.replace("language: fr", "language: de")
    file = job(folder, text, name="ACME Corp.yaml")
    found = problems(folder)
    expect(found, file, 1, None, "the file name is the client id")
    expect(found, file, 2, "language", "'fr' or 'en'")
    assert len(found) == 2


def test_unreadable_file(folder: Path) -> None:
    (folder / "jobs" / "acme.yaml").mkdir(parents=True)
    file = folder / "jobs" / "acme.yaml"
    only(folder, file, 1, None, "cannot be read")


def test_same_client_in_yaml_and_yml(folder: Path) -> None:
    job(folder, GOOD)
    other = job(folder, GOOD, name="acme.yml")
    only(folder, other, 1, None, "client id 'acme' is also defined by")


# --- all at once ------------------------------------------------------------------------------------------


def test_every_problem_in_every_file_at_once(folder: Path) -> None:
    toml = write(folder, "preuve.toml", GOOD_TOML.replace('open_timeout = "90s"', 'open_timeout = "fast"'))
    acme_text = GOOD.replace("    port: 22\n", "    port: 70000\n").replace("kind: local", "kind: ftp")
    acme = job(folder, acme_text)
    broken_text = GOOD.replace("    user: backup\n", "    user: backup: admin\n")
    broken = job(folder, broken_text, name="broken.yaml")
    dupont_text = GOOD.replace("language: fr", "language: de").replace(SHA, "nothex")
    dupont = job(folder, dupont_text, name="dupont.yaml")
    good = job(folder, GOOD, name="good.yaml")

    found = problems(folder)
    expect(found, toml, line_of(GOOD_TOML, "open_timeout"), "drill.open_timeout", "'fast' is not a duration")
    expect(found, acme, line_of(acme_text, "port: 70000"), "targets.nas.port", "65535")
    expect(found, acme, line_of(acme_text, "kind: ftp"), "targets.usb.kind", "unknown kind")
    expect(found, broken, line_of(broken_text, "backup: admin"), None, "invalid YAML")
    expect(found, dupont, 2, "language", "'fr' or 'en'")
    expect(found, dupont, line_of(dupont_text, "nothex"), "targets.nas.canaries[0].sha256", "64 hexadecimal")
    assert len(found) == 6
    assert not any(str(good) in problem for problem in found)


def test_one_good_and_one_bad_file_applies_nothing(folder: Path) -> None:
    job(folder, GOOD)
    bad_text = GOOD.replace("    port: 22\n", '    port: "abc"\n')
    bad = job(folder, bad_text, name="bad.yaml")
    found = problems(folder)  # raises: no Config at all, so nothing from the good file is applied either
    assert len(found) == 1
    expect(found, bad, line_of(bad_text, 'port: "abc"'), "targets.nas.port", "valid integer")
    bad.unlink()
    assert list(load_config(folder).clients) == ["acme"]


# --- preuve.toml ------------------------------------------------------------------------------------------


def test_toml_syntax_error_with_its_line(folder: Path) -> None:
    text = GOOD_TOML.replace('max_sample_bytes = "1GiB"', "max_sample_bytes = 1GiB")
    file = write(folder, "preuve.toml", text)
    only(folder, file, line_of(text, "1GiB"), None, "invalid TOML")


def test_toml_unknown_key(folder: Path) -> None:
    text = GOOD_TOML + "opn_timeout = 5\n"  # under [drill]
    file = write(folder, "preuve.toml", text)
    only(folder, file, line_of(text, "opn_timeout"), "drill.opn_timeout", "unknown key")


def test_toml_unknown_top_level_key(folder: Path) -> None:
    text = 'databse = "sqlite:///x.db"\n' + GOOD_TOML
    file = write(folder, "preuve.toml", text)
    only(folder, file, 1, "databse", "unknown key")


def test_toml_bad_duration(folder: Path) -> None:
    text = GOOD_TOML.replace('open_timeout = "90s"', 'open_timeout = "fast"')
    file = write(folder, "preuve.toml", text)
    only(folder, file, line_of(text, "open_timeout"), "drill.open_timeout", "'fast' is not a duration")


@pytest.mark.parametrize(
    ("text", "at", "path", "fragment"),
    [
        ("max_concurrent_drills = 0\n", "max_concurrent", "max_concurrent_drills", "greater than or equal to 1"),
        ('[drill]\nmin_throughput = "quick"\n', "min_throughput", "drill.min_throughput", "not a size"),
        ("[drill]\nconfidence = 1.5\n", "confidence", "drill.confidence", "less than 1"),
        ('drill.open_timeout = "x"\n', "open_timeout", "drill.open_timeout", "not a duration"),
        ('drill = {open_timeout = "x"}\n', "open_timeout", "drill.open_timeout", "not a duration"),
        ("drill = 5\n", "drill", "drill", "must be a mapping"),
        # keys inside a multi-line string or array are not mistaken for settings
        ('[smtp]\nusername = """\n[drill]\nopen_timeout = 1\n"""\n[drill]\nopen_timeout = "x"\n', 'open_timeout = "x"',
         "drill.open_timeout", "not a duration"),
        ('[alerts]\nemail = [\n  "a@b.c",\n]\n[drill]\nopen_timeout = "x"\n', 'open_timeout = "x"',
         "drill.open_timeout", "not a duration"),
        ("a = 1\na = 2\n", "a = 2", None, "invalid TOML"),
        ("[drill]\n[drill]\n", "[drill]", None, "invalid TOML"),
        ("max_concurrent_drills = " + "9" * 5000 + "\n", "max_concurrent", None, "too many digits"),
    ],
)  # fmt: skip
def test_toml_problems(folder: Path, text: str, at: str, path: str | None, fragment: str) -> None:
    file = write(folder, "preuve.toml", text)
    found = problems(folder)
    occurrence = 2 if text.count(at) > 1 and path is None else 1
    expect(found, file, line_of(text, at, occurrence) if fragment != "invalid TOML" else _last(text, at), path,
           fragment)  # fmt: skip


def _last(text: str, fragment: str) -> int:
    return [n for n, line in enumerate(text.splitlines(), start=1) if fragment in line][-1]


def test_toml_not_utf8(folder: Path) -> None:
    file = write(folder, "preuve.toml", b'database = "\xff"\n')
    only(folder, file, 1, None, "not UTF-8")


def test_bad_toml_and_bad_job_together(folder: Path) -> None:
    toml = write(folder, "preuve.toml", "sandbox = \n")
    text = GOOD.replace("language: fr", "language: de")
    acme = job(folder, text)
    found = problems(folder)
    expect(found, toml, 1, None, "invalid TOML")
    expect(found, acme, 2, "language", "'fr' or 'en'")


# --- odd YAML ---------------------------------------------------------------------------------------------

USB_ANCHOR = """\
client: ACME
targets:
  usb: &usb
    kind: local
    path: /mnt/usb1/restic
    password_file: secrets/acme.pass
    location: onsite
    media: disk
"""


def test_anchors_and_aliases(folder: Path) -> None:
    job(folder, USB_ANCHOR + "  usb2: *usb\ncontacts: &who [a@acme.example]\n")
    config = load_config(folder)
    assert config.target("acme/usb2").spec == config.target("acme/usb").spec


def test_merge_keys_follow_yaml_rules(folder: Path) -> None:
    text = USB_ANCHOR + "  usb2:\n    <<: *usb\n    path: /mnt/usb2/restic\n    location: offsite\n"
    job(folder, text)
    usb2 = load_config(folder).target("acme/usb2").spec
    assert isinstance(usb2, LocalTarget)
    assert usb2.path == "/mnt/usb2/restic"  # written here: wins over the merged value
    assert usb2.location == "offsite"
    assert usb2.media == "disk"  # merged


def test_merge_list_first_source_wins(folder: Path) -> None:
    text = USB_ANCHOR + ("  usb2: &usb2\n    <<: *usb\n    media: nas\n  usb3:\n    <<: [*usb2, *usb]\n")
    job(folder, text)
    config = load_config(folder)
    assert config.target("acme/usb3").spec.media == "nas"
    assert config.target("acme/usb").spec.media == "disk"


def test_error_in_a_merged_mapping_is_located(folder: Path) -> None:
    text = USB_ANCHOR + "  usb2:\n    <<: *usb\n    media: floppy\n"
    file = job(folder, text)
    only(folder, file, line_of(text, "floppy"), "targets.usb2.media", "'disk'")


def test_error_inherited_through_merge_points_at_the_anchor(folder: Path) -> None:
    text = USB_ANCHOR.replace("media: disk", "media: floppy") + "  usb2:\n    <<: *usb\n"
    file = job(folder, text)
    found = problems(folder)
    expect(found, file, line_of(text, "floppy"), "targets.usb.media", "'disk'")
    expect(found, file, line_of(text, "floppy"), "targets.usb2.media", "'disk'")


@pytest.mark.parametrize(
    "merge",
    ["    <<: 5\n", "    <<: [*usb, 5]\n", "    <<: !!python/object:os.system {}\n"],
)
def test_merge_of_something_else_than_a_mapping(folder: Path, merge: str) -> None:
    text = USB_ANCHOR + "  usb2:\n" + merge + "    kind: local\n"
    file = job(folder, text)
    found = problems(folder)
    expect(found, file, line_of(text, "<<"), "targets.usb2", "<< merges a mapping")


def test_merge_loop(folder: Path) -> None:
    text = "client: ACME\ntargets: &t\n  usb:\n    <<: *t\n"
    file = job(folder, text)
    found = problems(folder)
    expect(found, file, 2, "targets.usb", "refers to itself")


def test_alias_loop(folder: Path) -> None:
    text = "client: ACME\npolicy_overrides: &loop\n  again: *loop\ntargets: {}\n"
    file = job(folder, text)
    found = problems(folder)
    expect(found, file, 2, "policy_overrides.again", "a loop")


def test_alias_bomb_is_stopped_quickly(folder: Path) -> None:
    lines = ["client: ACME", "targets: {}", "policy_overrides:", "  a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"  {name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    file = job(folder, "\n".join(lines) + "\n")
    started = time.monotonic()
    found = problems(folder)
    assert time.monotonic() - started < 5
    assert any(problem.startswith(f"{file}:") and "too many values" in problem for problem in found)


def test_undefined_alias(folder: Path) -> None:
    text = GOOD.replace('  drill: "0 2 * * *"', "  drill: *nightly")
    file = job(folder, text)
    only(folder, file, line_of(text, "*nightly"), "schedule.drill", "undefined alias 'nightly'")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("!!python/object/apply:os.system ['touch {marker}']", "refused as unsafe"),
        ("!!python/object:os.system {{}}", "refused as unsafe"),
        ("!!python/name:os.system", "refused as unsafe"),
        ("!!python/tuple [1, 2]", "refused as unsafe"),
        ("!!binary aGVsbG8=", "not supported"),
        ("!!set {{a, b}}", "not supported"),
        ("!!omap [a: 1]", "not supported"),
        ("!custom value", "not supported"),
    ],
)
def test_tags_are_refused(folder: Path, tmp_path: Path, value: str, fragment: str) -> None:
    marker = tmp_path / "pwned"
    text = GOOD.replace("client: ACME Bâtiment", "client: " + value.format(marker=marker))
    file = job(folder, text)
    only(folder, file, 1, "client", fragment)
    assert not marker.exists()


def test_unsafe_tag_on_a_key(folder: Path) -> None:
    text = GOOD + "!!python/name:os.system : x\n"
    file = job(folder, text)
    only(folder, file, line_of(text, "python/name"), None, "refused as unsafe")


def test_explicit_standard_tags_are_fine(folder: Path) -> None:
    job(folder, GOOD.replace("client: ACME Bâtiment", "client: !!str 1234"))
    assert load_config(folder).clients["acme"].name == "1234"


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("1", "1"),
        ("1.5", "1.5"),
        ("true", "true"),
        ("no", "no"),
        ("null", "null"),
        ("~", "~"),
        ("2024-01-01", "2024-01-01"),
    ],
)
def test_non_string_keys_are_named_as_written(folder: Path, key: str, shown: str) -> None:
    text = GOOD + f"{key}: x\n"
    file = job(folder, text)
    only(folder, file, len(text.splitlines()), shown, "unknown key")


@pytest.mark.parametrize("key", ["? [a, b]\n: x\n", "? {a: 1}\n: x\n"])
def test_complex_keys_are_refused(folder: Path, key: str) -> None:
    text = GOOD + key
    file = job(folder, text)
    only(folder, file, len(GOOD.splitlines()) + 1, None, "keys must be plain words")


def test_empty_key(folder: Path) -> None:
    text = GOOD + '"": x\n'
    file = job(folder, text)
    only(folder, file, len(text.splitlines()), None, "a key is empty")


def test_null_values(folder: Path) -> None:
    text = "client:\nlanguage:\ncontacts:\npolicy:\ntargets:\nschedule:\n"
    file = job(folder, text)
    found = problems(folder)
    expect(found, file, 1, "client", "valid string")
    expect(found, file, 2, "language", "'fr' or 'en'")
    expect(found, file, 3, "contacts", "valid list")
    expect(found, file, 4, "policy", "valid string")
    expect(found, file, 5, "targets", "must be a mapping of keys and values, not empty")
    expect(found, file, 6, "schedule", "must be a mapping")


def test_null_values_inside_a_target(folder: Path) -> None:
    text = GOOD.replace("    path: /mnt/usb/restic/acme\n", "    path:   # none\n")
    text = text.replace("    media: disk\n", "    media: ~\n")
    file = job(folder, text)
    found = problems(folder)
    expect(found, file, line_of(text, "# none"), "targets.usb.path", "valid string")
    expect(found, file, line_of(text, "media: ~"), "targets.usb.media", "'disk'")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("9" * 40, "less than or equal to 65535"),
        ("9" * 5000, "too many digits"),
        ("-1", "greater than or equal to 1"),
        ("1e400", "valid integer"),
        (".nan", "finite number"),
        ("0x16", None),  # 22 in hexadecimal: YAML 1.1 accepts it
    ],
)
def test_odd_numbers(folder: Path, value: str, fragment: str | None) -> None:
    text = GOOD.replace("    port: 22\n", f"    port: {value}\n")
    file = job(folder, text)
    if fragment is None:
        spec = load_config(folder).target("acme/nas").spec
        assert isinstance(spec, SftpTarget)
        assert spec.port == 22
    else:
        only(folder, file, line_of(text, "port:"), "targets.nas.port", fragment)


def test_impossible_date(folder: Path) -> None:
    text = GOOD.replace("client: ACME Bâtiment", "client: 2024-13-45")
    file = job(folder, text)
    only(folder, file, 1, "client", "invalid value")


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_deep_nesting(folder: Path, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    depth = 5000
    text = GOOD + "policy_overrides:\n  x: " + opening * depth + "1" + closing * depth + "\n"
    file = job(folder, text)
    found = problems(folder)
    assert len(found) == 1
    assert found[0].startswith(f"{file}:{line_of(text, '  x: ')}: policy_overrides.x")
    assert found[0].endswith(f": nested more than {MAX_DEPTH} levels deep")


def test_nesting_within_the_limit_is_fine(folder: Path) -> None:
    text = GOOD + "policy_overrides:\n  x: " + "[" * 20 + "]" * 20 + "\n"
    file = job(folder, text)
    # read in full, no nesting problem: x is then refused as no key of a policy
    only(folder, file, line_of(text, "  x: "), "policy_overrides.x", "unknown key")
    value = load_yaml(file).data["policy_overrides"]["x"]
    for _ in range(19):
        assert isinstance(value, list)
        assert len(value) == 1
        value = value[0]
    assert value == []


def test_deep_nesting_through_aliases(folder: Path) -> None:
    lines = ["client: ACME", "targets: {}", "policy_overrides:", "  a0: &a0 [[[[[[[[[[1]]]]]]]]]]"]
    lines += [f"  a{n}: &a{n} [[[[[[[[[[*a{n - 1}]]]]]]]]]]" for n in range(1, 10)]
    file = job(folder, "\n".join(lines) + "\n")
    found = problems(folder)
    assert any(problem.startswith(f"{file}:") and "nested more than" in problem for problem in found)


def test_several_documents(folder: Path) -> None:
    text = GOOD + "---\nclient: Other\n"
    file = job(folder, text)
    only(folder, file, line_of(text, "---"), None, "single document")


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b"])
def test_control_characters(folder: Path, character: str) -> None:
    text = GOOD.replace("ACME Bâtiment", f"ACME{character}Bâtiment")
    file = job(folder, text)
    only(folder, file, 1, None, "is not allowed in YAML")


def test_duplicate_key_in_flow_mapping(folder: Path) -> None:
    text = GOOD.replace(f'sha256: "{SHA}"', f'sha256: "{SHA}", path: /srv/data/x')
    file = job(folder, text)
    only(folder, file, line_of(text, SHA), "targets.nas.canaries[0].path", "duplicate key")


def test_load_yaml_keeps_lines(tmp_path: Path) -> None:
    file = write(tmp_path, "acme.yaml", GOOD)
    doc = load_yaml(file)
    assert doc.problems == []
    assert doc.lines[("targets", "nas", "port")] == line_of(GOOD, "port: 22")
    assert doc.lines[("targets", "nas", "canaries", 0, "sha256")] == line_of(GOOD, SHA)
    assert doc.line_of(("targets", "nas", "nonexistent", "deeper")) == line_of(GOOD, "  nas:")
