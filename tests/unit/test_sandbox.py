"""The drill sandbox: layout, guaranteed removal (also of read-only restored trees), refusals, space, sweep."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from preuve.drills.sandbox import MARKER, PREFIX, Sandbox, _make_writable, remove_tree, sweep
from preuve.errors import FailureClass, PreuveError

NOBODY = 65534
DEAD_PID = 2**30  # above any pid_max (at most 2**22): no such process


def _restic_like_tree(top: Path) -> list[Path]:
    """Folders 0500 and files 0400, as restic restores a read-only source; returns every path made."""
    folders = [top / "srv", top / "srv" / "data", top / "srv" / "data" / "deep"]
    made: list[Path] = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        made.append(folder)
    for index, folder in enumerate(folders):
        for name in (f"file{index}.txt", f"file{index}.bin"):
            path = folder / name
            path.write_bytes(b"x" * 100)
            made.append(path)
    (top / "srv" / "link").symlink_to("data/file0.txt")
    made.append(top / "srv" / "link")
    for path in sorted(made, key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink():
            continue
        path.chmod(0o500 if path.is_dir() else 0o400)
    return made


def test_creates_layout_and_marker(tmp_path: Path) -> None:
    root = tmp_path / "sandboxes"  # created on entry
    with Sandbox(root, 42) as box:
        assert box.path.parent == root.resolve()
        assert box.path.name.startswith(f"{PREFIX}42-")
        for folder in (box.restore_dir, box.cache_dir, box.home, box.tmp):
            assert folder.is_dir()
            assert folder.parent == box.path
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(box.path.stat().st_mode) == 0o700
        marker = json.loads((box.path / MARKER).read_text())
        assert marker["pid"] == os.getpid()
        assert marker["host"] == socket.gethostname()
        assert marker["drill"] == "42"
        assert marker["created"]
    assert not box.path.exists()
    assert root.is_dir()  # the root stays, only the sandbox goes


def test_two_sandboxes_for_one_drill_do_not_collide(tmp_path: Path) -> None:
    with Sandbox(tmp_path, 7) as first, Sandbox(tmp_path, 7) as second:
        assert first.path != second.path
    assert list(tmp_path.iterdir()) == []


def test_cleanup_removes_read_only_restored_tree(tmp_path: Path) -> None:
    with Sandbox(tmp_path, 1) as box:
        made = _restic_like_tree(box.restore_dir)
        (box.cache_dir / "index").mkdir()
        (box.cache_dir / "index" / "abc").write_bytes(b"i")
        assert all(p.exists() or p.is_symlink() for p in made)
    assert not box.path.exists()
    assert list(tmp_path.iterdir()) == []


def test_cleanup_when_the_restore_folder_itself_is_read_only(tmp_path: Path) -> None:
    box = Sandbox(tmp_path, 2).__enter__()
    _restic_like_tree(box.restore_dir)
    box.restore_dir.chmod(0o500)
    box.path.chmod(0o500)
    box.cleanup()
    assert not box.path.exists()
    box.cleanup()  # twice is fine


def test_sandbox_removed_when_the_body_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="drill failed"), Sandbox(tmp_path, 3) as box:
        _restic_like_tree(box.restore_dir)
        raise RuntimeError("drill failed")
    assert not box.path.exists()


def test_sandbox_removed_on_keyboard_interrupt(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), Sandbox(tmp_path, 4) as box:
        (box.restore_dir / "partial").write_bytes(b"x")
        raise KeyboardInterrupt
    assert not box.path.exists()


def test_make_writable_opens_the_parent_and_retries(tmp_path: Path) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    child = parent / "sub"
    child.mkdir()
    child.chmod(0o500)
    parent.chmod(0o500)
    try:
        raise PermissionError(13, "Permission denied", str(child))
    except PermissionError as exc:
        _make_writable(os.rmdir, str(child), (type(exc), exc, exc.__traceback__))
    assert not child.exists()
    assert stat.S_IMODE(parent.stat().st_mode) == 0o700


def test_make_writable_ignores_vanished_paths(tmp_path: Path) -> None:
    calls: list[str] = []
    gone = str(tmp_path / "gone")
    exc = FileNotFoundError(2, "No such file or directory", gone)
    _make_writable(calls.append, gone, (FileNotFoundError, exc, None))
    assert calls == []


def test_remove_tree_on_missing_path_and_symlink(tmp_path: Path) -> None:
    remove_tree(tmp_path / "does-not-exist")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    # a sandbox path that is a symlink (planted, or a mistake): never follow it into the target
    link = tmp_path / f"{PREFIX}9-link"
    link.symlink_to(outside)
    with contextlib.suppress(OSError):
        remove_tree(link)
    assert (outside / "keep.txt").read_text() == "keep"


def test_symlinks_inside_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("precious")
    with Sandbox(tmp_path / "root", 5) as box:
        (box.restore_dir / "escape").symlink_to(outside)
    assert (outside / "precious.txt").read_text() == "precious"


@pytest.fixture
def nobody_dir() -> Iterator[Path]:
    """A folder owned by nobody in /tmp (pytest's tmp_path is 0700 root, so nobody cannot reach it)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as another user")
    path = Path(tempfile.mkdtemp(prefix="preuve-test-nobody-", dir="/tmp"))
    os.chown(path, NOBODY, NOBODY)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_nobody(action: str, tree: Path) -> int:
    """Fork, drop to nobody and run shutil.rmtree ('plain') or remove_tree ('ours'); return the exit status."""
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery from here on
        status = 3
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            if action == "plain":
                shutil.rmtree(tree)
            else:
                remove_tree(tree)
            status = 0
        except PermissionError:
            status = 1
        except BaseException:
            status = 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_cleanup_as_an_ordinary_user_removes_read_only_trees(nobody_dir: Path) -> None:
    # As root, permission bits never block; as the owner of 0500 folders and 0400 files they do.
    tree = nobody_dir / f"{PREFIX}8-abcd"
    tree.mkdir()
    _restic_like_tree(tree / "restore")
    for path in [tree, *tree.rglob("*")]:
        os.lchown(path, NOBODY, NOBODY)
    assert _as_nobody("plain", tree) == 1, "a plain rmtree should fail here, or this test proves nothing"
    assert tree.exists()
    assert _as_nobody("ours", tree) == 0
    assert not tree.exists()


@pytest.mark.parametrize("root", ["/", "/etc", "/home", "/usr"])
def test_refuses_system_roots(root: str) -> None:
    with pytest.raises(PreuveError) as caught:
        Sandbox(Path(root), 1)
    assert caught.value.failure_class is FailureClass.SANDBOX
    assert root in caught.value.message


def test_refuses_root_overlapping_a_source(tmp_path: Path) -> None:
    source = tmp_path / "data"
    source.mkdir()
    for root, sources in (
        (source / "sandboxes", (str(source),)),  # sandbox inside the source
        (tmp_path, (str(source),)),  # source inside the sandbox root
        (source, ("/unrelated", str(source))),
    ):
        with pytest.raises(PreuveError) as caught:
            Sandbox(root, 1, sources=sources)
        assert caught.value.failure_class is FailureClass.SANDBOX
        assert str(source) in caught.value.message
    assert not (source / "sandboxes").exists()


def test_accepts_unrelated_and_remote_sources(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sandbox", 1, sources=(str(tmp_path / "data"), "sftp://nas/volume1", "relative")) as box:
        assert box.path.is_dir()


def test_require_space(tmp_path: Path) -> None:
    with Sandbox(tmp_path, 1) as box:
        box.require_space(1024)  # a kilobyte fits
        with pytest.raises(PreuveError) as caught:
            box.require_space(2**62)
        assert caught.value.failure_class is FailureClass.SANDBOX
        assert str(2**62) in caught.value.message
        assert box.free_bytes() > 0


def test_require_space_counts_the_margin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Sandbox(tmp_path, 1) as box:
        monkeypatch.setattr(Sandbox, "free_bytes", lambda self: 100 * 1024 * 1024)
        box.require_space(80 * 1024 * 1024)  # 80 MiB + 16 MiB margin fits in 100 MiB
        with pytest.raises(PreuveError):
            box.require_space(90 * 1024 * 1024)  # 90 MiB + 16 MiB does not


def _leftover(root: Path, name: str, marker: dict[str, object] | None) -> Path:
    path = root / f"{PREFIX}{name}"
    _restic_like_tree(path / "restore")
    if marker is not None:
        (path / MARKER).write_text(json.dumps(marker))
    return path


def test_sweep(tmp_path: Path) -> None:
    host = socket.gethostname()
    dead = _leftover(tmp_path, "1-dead", {"pid": DEAD_PID, "host": host, "drill": "1"})
    no_marker = _leftover(tmp_path, "2-nomarker", None)
    broken = _leftover(tmp_path, "3-broken", None)
    (broken / MARKER).write_text("{not json")
    alive = _leftover(tmp_path, "4-alive", {"pid": os.getpid(), "host": host, "drill": "4"})
    unrelated = tmp_path / "not-a-sandbox"
    unrelated.mkdir()
    (unrelated / "keep").write_text("keep")
    stray_file = tmp_path / f"{PREFIX}file"
    stray_file.write_text("a file, not a sandbox")

    other_host = _leftover(tmp_path, "5-other-host", {"pid": DEAD_PID, "host": host + "-elsewhere", "drill": "5"})

    # unmarked sandboxes may be in the middle of being created: kept while young
    assert sweep(tmp_path) == [dead]
    assert no_marker.exists() and broken.exists()

    removed = sweep(tmp_path, unmarked_after_s=0)

    assert sorted(removed) == sorted([no_marker, broken])
    for path in (dead, no_marker, broken):
        assert not path.exists()
    assert (alive / MARKER).exists()
    assert (other_host / MARKER).exists(), "another host's sandbox cannot be judged from here"
    assert (unrelated / "keep").exists()
    assert stray_file.exists()


def test_sweep_keeps_a_live_sandbox_and_missing_root(tmp_path: Path) -> None:
    assert sweep(tmp_path / "nothing-here") == []
    with Sandbox(tmp_path, 11) as box:
        assert sweep(tmp_path) == []
        assert box.path.is_dir()


def test_create_failure_is_a_sandbox_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(PreuveError) as caught, Sandbox(blocker / "root", 1):
        pass
    assert caught.value.failure_class is FailureClass.SANDBOX
    assert str(blocker) in caught.value.message
