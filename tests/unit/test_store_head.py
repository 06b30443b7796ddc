"""The schema check on every open: the shipped head read from the revision files agrees with Alembic's, odd
revision files leave the decision to Alembic, and a current database is opened without importing Alembic."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from preuve.store import db

HEADER = '''"""{doc}"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "{rev}"
down_revision: str | None = {down}
branch_labels: str | Sequence[str] | None = {branch}
depends_on: str | Sequence[str] | None = None
'''


@pytest.fixture
def versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "migrations" / "versions"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    monkeypatch.setattr(db, "MIGRATIONS", folder.parent)
    db.shipped_head.cache_clear()
    yield folder
    db.shipped_head.cache_clear()


def revision(folder: Path, rev: str, down: str | None, *, branch: str = "None") -> None:
    down_text = "None" if down is None else f'"{down}"'
    (folder / f"{rev}_x.py").write_text(HEADER.format(doc=rev, rev=rev, down=down_text, branch=branch))


def test_the_shipped_head_is_alembic_s_head() -> None:
    from alembic.script import ScriptDirectory

    db.shipped_head.cache_clear()
    assert [db.shipped_head()] == ScriptDirectory.from_config(db.alembic_config()).get_heads()


def test_a_plain_chain(versions: Path) -> None:
    revision(versions, "0001", None)
    revision(versions, "0002", "0001")
    revision(versions, "0003", "0002")
    assert db.shipped_head() == "0003"


@pytest.mark.parametrize(
    "make",
    [
        lambda f: (revision(f, "0001", None), revision(f, "0002", "0001"), revision(f, "0003", "0001")),  # 2 heads
        lambda f: (revision(f, "0001", None), revision(f, "0002", "0001", branch='("b",)')),  # a branch label
        lambda f: (revision(f, "0001", None), revision(f, "0002", "0009")),  # a missing parent
        lambda f: (revision(f, "0001", None), (f / "0002_x.py").write_text("revision = compute()\n")),
    ],
    ids=["two heads", "branch label", "missing parent", "unreadable header"],
)
def test_anything_else_is_left_to_alembic(versions: Path, make: object) -> None:
    make(versions)  # type: ignore[operator]
    assert db.shipped_head() is None


def test_a_current_database_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'preuve.db'}"
    db.Store.open(url).close()  # creates and migrates
    code = (
        f"import sys\nfrom preuve.store.db import Store\nStore.open({url!r}).close()\nprint('alembic' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
