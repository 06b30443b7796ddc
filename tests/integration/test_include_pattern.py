"""``include_pattern`` against the real restic: each pattern restores exactly its one file.

A sample drill restores its files with ``restic restore --include``, whose patterns are globs. A file named
``[draft] *v2?.txt`` or ``a\\b.txt`` must neither restore a neighbour nor nothing at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from preuve.drills.sampling import include_pattern
from preuve.restic.parse import Node, iter_ls

RESTIC = os.environ.get("PREUVE_TEST_RESTIC") or shutil.which("restic") or "/usr/bin/restic"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(RESTIC).exists(), reason="needs the restic binary"),
]

# Relative to the backed-up folder; each with distinct content. Several are decoys: what the unescaped name
# would match as a glob ("ab.txt" for "a\b.txt", "d draft] xv2x.txt" for "[draft] *v2?.txt").
FILES: dict[str, bytes] = {
    "[draft] *v2?.txt": b"the draft",
    "d draft] xv2x.txt": b"decoy for the draft",
    "sub/[draft] *v2?.txt": b"same name, one level down",
    "a\\b.txt": b"backslash in the name",
    "ab.txt": b"decoy for the backslash",
    "Café.txt": "composed é".encode(),
    "Cafe\u0301.txt": "decomposed é".encode(),
    "spaces in name.txt": b"spaces",
    "!bang.txt": b"leading exclamation mark",
    "-dash.txt": b"leading dash",
    "a]b.txt": b"closing bracket",
    "star*.txt": b"literal star",
    "starX.txt": b"decoy for the star",
    "[dir]/inner?.txt": b"glob characters in the folder",
    "d/inner?.txt": b"decoy folder for [dir]",
    "new\nline.txt": b"newline in the name",
    "empty.txt": b"",
}


@dataclass(frozen=True)
class Repo:
    env: dict[str, str]
    source: Path
    nodes: dict[str, Node]  # snapshot path -> node, files only

    def snapshot_path(self, relative: str) -> str:
        return f"{self.source}/{relative}"


def restic(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RESTIC, "--no-cache", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    base = tmp_path_factory.mktemp("include")
    source = base / "src"
    for relative, data in FILES.items():
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    password = base / "password"
    password.write_text("include-pattern-test\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
    env |= {"RESTIC_REPOSITORY": str(base / "repo"), "RESTIC_PASSWORD_FILE": str(password)}
    restic(env, "init")
    restic(env, "backup", str(source))
    listing = restic(env, "ls", "--json", "latest").stdout.splitlines()
    nodes = {item.path: item for item in iter_ls(listing) if isinstance(item, Node) and item.type == "file"}
    return Repo(env, source, nodes)


def restore(repo: Repo, target: Path, includes: Iterable[str]) -> dict[str, bytes]:
    """Restore with these ``--include`` patterns; returns {snapshot path: content} of every file restored."""
    args = ["restore", "latest", "--target", str(target)]
    for pattern in includes:
        args += ["--include", pattern]
    restic(repo.env, *args)
    restored: dict[str, bytes] = {}
    for path in target.rglob("*"):
        if path.is_file():
            restored["/" + str(path.relative_to(target))] = path.read_bytes()
    return restored


def test_listing_has_every_file_under_its_own_name(repo: Repo) -> None:
    assert set(repo.nodes) == {repo.snapshot_path(relative) for relative in FILES}


@pytest.mark.parametrize("relative", list(FILES), ids=[repr(name) for name in FILES])
def test_each_pattern_restores_exactly_its_file(repo: Repo, tmp_path: Path, relative: str) -> None:
    path = repo.snapshot_path(relative)
    assert path in repo.nodes
    restored = restore(repo, tmp_path / "target", [include_pattern(path)])
    assert restored == {path: FILES[relative]}


def test_many_patterns_in_one_restore_bring_back_exactly_those_files(repo: Repo, tmp_path: Path) -> None:
    wanted = ["[draft] *v2?.txt", "a\\b.txt", "Café.txt", "[dir]/inner?.txt", "new\nline.txt", "empty.txt"]
    paths = [repo.snapshot_path(relative) for relative in wanted]
    restored = restore(repo, tmp_path / "target", [include_pattern(p) for p in paths])
    assert restored == {repo.snapshot_path(relative): FILES[relative] for relative in wanted}


# What goes wrong without escaping, and how restic reports a pattern that matches nothing: if a future
# restic changes either, these tests say so.


def test_unescaped_names_restore_the_wrong_files(repo: Repo, tmp_path: Path) -> None:
    draft = restore(repo, tmp_path / "draft", [repo.snapshot_path("[draft] *v2?.txt")])
    assert set(draft) == {repo.snapshot_path("d draft] xv2x.txt")}
    backslash = restore(repo, tmp_path / "backslash", [repo.snapshot_path("a\\b.txt")])
    assert set(backslash) == {repo.snapshot_path("ab.txt")}


def test_a_pattern_that_matches_nothing_restores_nothing_and_exits_zero(repo: Repo, tmp_path: Path) -> None:
    # So a drill must check that every requested file came back; restic's exit code does not tell.
    assert restore(repo, tmp_path / "none", [include_pattern(repo.snapshot_path("no such file.txt"))]) == {}


def test_an_invalid_pattern_is_refused(repo: Repo, tmp_path: Path) -> None:
    # An unescaped "[" opens a character class that never closes: restic refuses the whole command.
    with pytest.raises(subprocess.CalledProcessError) as failure:
        restore(repo, tmp_path / "bad", [repo.snapshot_path("[draft")])
    assert "invalid pattern" in failure.value.stderr
