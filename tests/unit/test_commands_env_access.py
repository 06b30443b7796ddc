"""restic argv builders, the child environment and target access (repository strings, secret files, ssh)."""

from __future__ import annotations

import os
import secrets
import shlex
from pathlib import Path
from typing import Any

import pytest

from preuve import redact
from preuve.config.model import LocalTarget, RestTarget, S3Target, SftpTarget
from preuve.errors import FailureClass, PreuveError
from preuve.restic import commands
from preuve.restic.environment import ALLOWED, child_env
from preuve.targets.access import read_env_file, read_secret_file, repo_access, ssh_command

COMMON: dict[str, Any] = {"password_file": "secrets/repo.pw", "location": "offsite", "media": "nas"}


def _token(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(10)}"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A configuration folder with a password file at the path COMMON names (relative to it)."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "repo.pw").write_text(_token("repo-password") + "\n")
    return tmp_path


def _password(base: Path) -> str:
    return (base / "secrets" / "repo.pw").read_text().strip()


def _all_text(access: Any) -> str:
    return " ".join([access.repository, access.display, *access.options, *access.env.keys(), *access.env.values()])


# --- commands -------------------------------------------------------------------------------------------


def test_commands_are_tuples_of_strings_without_secrets(tmp_path: Path) -> None:
    built = [
        commands.version(),
        commands.cat_config(),
        commands.snapshots(),
        commands.ls("ea460a7a"),
        commands.restore("ea460a7a", tmp_path / "restore", ["/srv/a b.txt", "/srv/c"], verify=True, json=True),
        commands.restore("latest", tmp_path, verify=False),
        commands.check(read_data_subset="1/10", json=True),
        commands.check(),
        commands.stats("ea460a7a"),
        commands.diff("a", "b"),
        commands.init(),
        commands.backup([tmp_path / "src"], tags=["preuve"], host="lab"),
        commands.global_options(cache_dir=tmp_path / "cache", options=["sftp.command=ssh -F none"], no_lock=True),
    ]
    for args in built:
        assert isinstance(args, tuple)
        assert all(isinstance(a, str) for a in args)
        joined = " ".join(args).lower()
        assert "password" not in joined and "secret" not in joined and "aws_" not in joined


def test_command_shapes(tmp_path: Path) -> None:
    assert commands.snapshots() == ("snapshots", "--json")
    assert commands.ls("abc") == ("ls", "--json", "abc")
    assert commands.restore("abc", tmp_path, ["/a", "/b c"]) == (
        "restore", "abc", "--target", str(tmp_path), "--verify", "--include", "/a", "--include", "/b c",
    )  # fmt: skip
    assert commands.restore("abc", tmp_path, verify=False, json=True) == (
        "restore", "abc", "--target", str(tmp_path), "--json",
    )  # fmt: skip
    assert commands.check(read_data_subset="10%") == ("check", "--read-data-subset=10%")
    assert commands.check(json=True) == ("check", "--json")
    assert commands.stats("x", "raw-data") == ("stats", "--json", "--mode", "raw-data", "x")
    assert commands.backup([Path("/a"), Path("/b")]) == ("backup", "--json", "/a", "/b")
    assert commands.backup([Path("/a")], tags=["t1", "t2"], host="h") == (
        "backup", "--json", "--tag", "t1", "--tag", "t2", "--host", "h", "/a",
    )  # fmt: skip


def test_global_options(tmp_path: Path) -> None:
    assert commands.global_options(cache_dir=None) == ("--no-cache",)
    assert commands.global_options(cache_dir=tmp_path / "cache") == ("--cache-dir", str(tmp_path / "cache"))
    assert commands.global_options(cache_dir=None, options=["a=1", "b=2"], no_lock=True) == (
        "--no-cache", "-o", "a=1", "-o", "b=2", "--no-lock",
    )  # fmt: skip


# --- child environment ----------------------------------------------------------------------------------

PARENT = {
    "PATH": "/opt/bin:/usr/bin",
    "LANG": "fr_FR.UTF-8",
    "TZ": "Europe/Paris",
    "HOME": "/root",
    "TMPDIR": "/var/tmp",
    "RESTIC_PASSWORD": "parent-password",
    "RESTIC_PASSWORD_FILE": "/root/pw",
    "RESTIC_REPOSITORY": "/wrong/repo",
    "RESTIC_CACHE_DIR": "/root/.cache/restic",
    "AWS_SECRET_ACCESS_KEY": "parent-secret",
    "AWS_ACCESS_KEY_ID": "parent-id",
    "AWS_PROFILE": "default",
    "SSH_AUTH_SOCK": "/tmp/agent.sock",
    "PREUVE_DEBUG": "1",
}


def test_child_env_keeps_only_allowed_parent_variables(tmp_path: Path) -> None:
    repo_env = {"RESTIC_REPOSITORY": "/srv/repo", "RESTIC_PASSWORD_FILE": "/etc/preuve/pw"}
    env = child_env(repo_env, home=tmp_path / "home", tmpdir=tmp_path / "tmp", parent=PARENT)
    assert env == {
        "PATH": "/opt/bin:/usr/bin",
        "LANG": "fr_FR.UTF-8",
        "TZ": "Europe/Paris",
        "HOME": str(tmp_path / "home"),
        "TMPDIR": str(tmp_path / "tmp"),
        "RESTIC_PROGRESS_FPS": env["RESTIC_PROGRESS_FPS"],
        "RESTIC_REPOSITORY": "/srv/repo",
        "RESTIC_PASSWORD_FILE": "/etc/preuve/pw",
    }
    assert "parent-password" not in env.values() and "parent-secret" not in env.values()
    assert set(ALLOWED) >= {"PATH", "LANG"}


def test_child_env_from_the_real_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTIC_PASSWORD", "leak-me-not")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "leak-me-not-either")
    monkeypatch.setenv("RESTIC_REPOSITORY", "/wrong")
    env = child_env({}, home=tmp_path / "h", tmpdir=tmp_path / "t")
    assert "RESTIC_PASSWORD" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert "RESTIC_REPOSITORY" not in env
    assert env["HOME"] == str(tmp_path / "h") and env["TMPDIR"] == str(tmp_path / "t")
    assert set(env) <= {*ALLOWED, "HOME", "TMPDIR", "RESTIC_PROGRESS_FPS"}


def test_child_env_default_path(tmp_path: Path) -> None:
    env = child_env({}, home=tmp_path, tmpdir=tmp_path, parent={})
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"


# --- secret files ---------------------------------------------------------------------------------------


def test_password_file_missing(base: Path) -> None:
    spec = LocalTarget.model_validate({**COMMON, "kind": "local", "path": "/srv/repo", "password_file": "nope.pw"})
    with pytest.raises(PreuveError) as caught:
        repo_access(spec, base)
    assert caught.value.failure_class is FailureClass.AUTH
    assert str(base / "nope.pw") in caught.value.message
    assert "does not exist" in caught.value.message


def test_password_file_empty(base: Path) -> None:
    (base / "empty.pw").write_text("  \n")
    spec = LocalTarget.model_validate({**COMMON, "kind": "local", "path": "/srv/repo", "password_file": "empty.pw"})
    with pytest.raises(PreuveError) as caught:
        repo_access(spec, base)
    assert caught.value.failure_class is FailureClass.AUTH
    assert str(base / "empty.pw") in caught.value.message
    assert "empty" in caught.value.message


def test_secret_file_is_a_folder(tmp_path: Path) -> None:
    with pytest.raises(PreuveError) as caught:
        read_secret_file(tmp_path, "repository password file")
    assert caught.value.failure_class is FailureClass.AUTH
    assert str(tmp_path) in caught.value.message


def test_read_secret_file_registers_it(tmp_path: Path) -> None:
    secret = _token("pw")
    (tmp_path / "pw").write_text(f"{secret}\n")
    assert read_secret_file(tmp_path / "pw", "password file") == secret
    assert redact.mask(f"x {secret} y") == f"x {redact.MASK} y"


def test_env_file_parser(tmp_path: Path) -> None:
    secret, session = _token("secret"), _token("session")
    path = tmp_path / "s3.env"
    path.write_text(
        "# S3 credentials for acme\n"
        "\n"
        "AWS_ACCESS_KEY_ID=AKIAEXAMPLE\n"
        f"export AWS_SECRET_ACCESS_KEY='{secret}'\n"
        f'  AWS_SESSION_TOKEN = "{session}"  \n'
        "AWS_DEFAULT_REGION=eu-west-3\n"
        "WITH_EQUALS=a=b=c\n"
        "EMPTY=\n"
        "   # indented comment\n"
    )
    values = read_env_file(path)
    assert values == {
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_SESSION_TOKEN": session,
        "AWS_DEFAULT_REGION": "eu-west-3",
        "WITH_EQUALS": "a=b=c",
        "EMPTY": "",
    }
    assert secret not in redact.mask(f"{secret}") and session not in redact.mask(session)


@pytest.mark.parametrize(
    "bad_line",
    ["AWS_SECRET_ACCESS_KEY wJalrXUtnFEMIbadline", "=wJalrXUtnFEMIbadline", "MY KEY=wJalrXUtnFEMIbadline"],
)
def test_env_file_bad_line_names_file_and_line_without_echoing(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "s3.env"
    path.write_text(f"# comment\nAWS_ACCESS_KEY_ID=AKIAEXAMPLE\n{bad_line}\n")
    with pytest.raises(PreuveError) as caught:
        read_env_file(path)
    error = caught.value
    assert error.failure_class is FailureClass.AUTH
    assert f"{path}:3" in error.message
    assert "wJalrXUtnFEMI" not in error.message and "wJalrXUtnFEMI" not in error.full_message


# --- local ----------------------------------------------------------------------------------------------


def test_local_access(base: Path) -> None:
    spec = LocalTarget.model_validate({**COMMON, "kind": "local", "path": "repos/acme"})
    access = repo_access(spec, base)
    assert access.repository == access.display == str(base / "repos" / "acme")
    assert access.options == ()
    assert access.env == {
        "RESTIC_REPOSITORY": str(base / "repos" / "acme"),
        "RESTIC_PASSWORD_FILE": str(base / "secrets" / "repo.pw"),
    }
    assert _password(base) not in _all_text(access)
    assert redact.mask(_password(base)) == redact.MASK


def test_local_access_absolute_paths(base: Path) -> None:
    spec = LocalTarget.model_validate(
        {**COMMON, "kind": "local", "path": "/mnt/nas/restic", "password_file": str(base / "secrets" / "repo.pw")}
    )
    access = repo_access(spec, Path("/nonexistent-config-dir"))
    assert access.env["RESTIC_REPOSITORY"] == "/mnt/nas/restic"
    assert access.env["RESTIC_PASSWORD_FILE"] == str(base / "secrets" / "repo.pw")


# --- sftp -----------------------------------------------------------------------------------------------


def _sftp_files(base: Path, folder: str = "keys") -> tuple[Path, Path]:
    keys = base / folder
    keys.mkdir()
    identity = keys / "id_ed25519"
    identity.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n")
    identity.chmod(0o600)
    known_hosts = keys / "known_hosts"
    known_hosts.write_text("[nas.example]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample\n")
    return identity, known_hosts


def _sftp_spec(folder: str = "keys", **over: Any) -> SftpTarget:
    return SftpTarget.model_validate(
        {
            **COMMON,
            "kind": "sftp",
            "host": "nas.example",
            "port": 2222,
            "user": "backup",
            "identity_file": f"{folder}/id_ed25519",
            "known_hosts": f"{folder}/known_hosts",
            "path": "/volume1/restic/acme",
            **over,
        }
    )


def _sftp_command(option: str) -> list[str]:
    key, sep, command = option.partition("=")
    assert (key, sep) == ("sftp.command", "=")
    return shlex.split(command)


def test_sftp_access(base: Path) -> None:
    identity, known_hosts = _sftp_files(base)
    access = repo_access(_sftp_spec(), base)
    assert access.repository == "sftp:nas.example:/volume1/restic/acme"
    assert access.display == "sftp:backup@nas.example:2222/volume1/restic/acme"
    assert access.env == {
        "RESTIC_REPOSITORY": access.repository,
        "RESTIC_PASSWORD_FILE": str(base / "secrets" / "repo.pw"),
    }
    (option,) = access.options
    argv = _sftp_command(option)
    assert argv[:3] == ["ssh", "-F", "none"]
    assert argv[-2:] == ["-s", "sftp"]
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == str(identity)
    assert argv[argv.index("-l") + 1] == "backup"
    assert "nas.example" in argv
    for setting in (
        "StrictHostKeyChecking=yes",
        "BatchMode=yes",
        "IdentitiesOnly=yes",
        f"UserKnownHostsFile={known_hosts}",
    ):
        assert argv[argv.index(setting) - 1] == "-o"
    assert _password(base) not in _all_text(access)


def test_sftp_key_path_with_spaces_is_quoted(base: Path) -> None:
    identity, known_hosts = _sftp_files(base, "ssh keys")
    access = repo_access(_sftp_spec("ssh keys"), base)
    (option,) = access.options
    assert f"'{identity}'" in option
    assert f"'UserKnownHostsFile={known_hosts}'" in option
    argv = _sftp_command(option)
    assert argv[argv.index("-i") + 1] == str(identity)


def test_sftp_key_readable_by_others(base: Path) -> None:
    identity, _ = _sftp_files(base)
    identity.chmod(0o644)
    with pytest.raises(PreuveError) as caught:
        repo_access(_sftp_spec(), base)
    assert caught.value.failure_class is FailureClass.AUTH
    assert f"chmod 600 {identity}" in caught.value.message


def test_sftp_key_missing(base: Path) -> None:
    identity, _ = _sftp_files(base)
    identity.unlink()
    with pytest.raises(PreuveError) as caught:
        repo_access(_sftp_spec(), base)
    assert caught.value.failure_class is FailureClass.AUTH
    assert str(identity) in caught.value.message


def test_sftp_known_hosts_missing(base: Path) -> None:
    _, known_hosts = _sftp_files(base)
    known_hosts.unlink()
    with pytest.raises(PreuveError) as caught:
        ssh_command(_sftp_spec(), base)
    assert caught.value.failure_class is FailureClass.AUTH
    assert str(known_hosts) in caught.value.message
    assert "ssh-keyscan -p 2222 nas.example" in caught.value.message


# --- s3 -------------------------------------------------------------------------------------------------


def _s3_spec(**over: Any) -> S3Target:
    return S3Target.model_validate(
        {
            **COMMON,
            "media": "object-storage",
            "kind": "s3",
            "endpoint": "https://s3.example.net/",
            "bucket": "acme-backups",
            "prefix": "/restic/",
            "env_file": "secrets/s3.env",
            **over,
        }
    )


def test_s3_access(base: Path) -> None:
    secret = _token("aws-secret")
    (base / "secrets" / "s3.env").write_text(f"AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY={secret}\n")
    access = repo_access(_s3_spec(region="eu-west-3"), base)
    assert access.repository == access.display == "s3:https://s3.example.net/acme-backups/restic"
    assert access.options == ()
    assert access.env == {
        "RESTIC_REPOSITORY": access.repository,
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "eu-west-3",
        "RESTIC_PASSWORD_FILE": str(base / "secrets" / "repo.pw"),
    }
    assert secret not in access.display
    assert redact.mask(secret) == redact.MASK
    assert _password(base) not in _all_text(access)


def test_s3_without_prefix(base: Path) -> None:
    (base / "secrets" / "s3.env").write_text("AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=abcdefgh\n")
    access = repo_access(_s3_spec(prefix=""), base)
    assert access.repository == "s3:https://s3.example.net/acme-backups"
    assert "AWS_DEFAULT_REGION" not in access.env


def test_s3_env_file_lacks_the_secret(base: Path) -> None:
    (base / "secrets" / "s3.env").write_text("AWS_ACCESS_KEY_ID=AKIAEXAMPLE\n")
    with pytest.raises(PreuveError) as caught:
        repo_access(_s3_spec(), base)
    assert caught.value.failure_class is FailureClass.AUTH
    assert "AWS_SECRET_ACCESS_KEY" in caught.value.message
    assert str(base / "secrets" / "s3.env") in caught.value.message


def test_s3_env_file_missing(base: Path) -> None:
    with pytest.raises(PreuveError) as caught:
        repo_access(_s3_spec(), base)
    assert caught.value.failure_class is FailureClass.AUTH
    assert str(base / "secrets" / "s3.env") in caught.value.message


# --- rest -----------------------------------------------------------------------------------------------


def _rest_spec(**over: Any) -> RestTarget:
    return RestTarget.model_validate({**COMMON, "kind": "rest", "url": "https://rest.example.net:8000/acme", **over})


def test_rest_without_credentials(base: Path) -> None:
    access = repo_access(_rest_spec(), base)
    assert access.repository == access.display == "rest:https://rest.example.net:8000/acme/"
    assert access.env["RESTIC_REPOSITORY"] == access.repository
    assert access.options == ()


def test_rest_credentials_only_in_restic_repository(base: Path) -> None:
    password = _token("rest-p@ss/w:rd")
    (base / "secrets" / "rest.env").write_text(f"RESTIC_REST_USERNAME=acme\nRESTIC_REST_PASSWORD='{password}'\n")
    access = repo_access(_rest_spec(env_file="secrets/rest.env"), base)
    quoted = password.replace("@", "%40").replace("/", "%2F").replace(":", "%3A")
    assert access.repository == f"rest:https://acme:{quoted}@rest.example.net:8000/acme/"
    assert access.env["RESTIC_REPOSITORY"] == access.repository
    assert access.display == "rest:https://rest.example.net:8000/acme/"
    assert access.options == ()
    for value in (password, quoted):
        assert value not in access.display
        assert value not in redact.mask(access.repository)
        assert value not in redact.mask(f"Fatal: unable to open config file at {access.repository}")
    others = {k: v for k, v in access.env.items() if k != "RESTIC_REPOSITORY"}
    assert others == {"RESTIC_PASSWORD_FILE": str(base / "secrets" / "repo.pw")}


def test_no_secret_in_any_argv_part(base: Path) -> None:
    """What may reach argv (display and options) never holds a secret that was read."""
    _sftp_files(base)
    (base / "secrets" / "s3.env").write_text("AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=s3-secret-x\n")
    (base / "secrets" / "rest.env").write_text("RESTIC_REST_USERNAME=u\nRESTIC_REST_PASSWORD=rest-secret-x\n")
    accesses = [
        repo_access(LocalTarget.model_validate({**COMMON, "kind": "local", "path": "/srv/r"}), base),
        repo_access(_sftp_spec(), base),
        repo_access(_s3_spec(), base),
        repo_access(_rest_spec(env_file="secrets/rest.env"), base),
    ]
    for access in accesses:
        visible = " ".join([access.display, *access.options])
        for secret in (_password(base), "s3-secret-x", "rest-secret-x"):
            assert secret not in visible
        assert "RESTIC_PASSWORD" not in access.env
        assert os.path.isabs(access.env["RESTIC_PASSWORD_FILE"])
