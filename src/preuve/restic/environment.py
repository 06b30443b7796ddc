"""The child environment for restic: an allow-list of the parent's variables plus the repository's own.

Nothing else leaks in: a RESTIC_PASSWORD or AWS_* variable in the daemon's environment must not silently change
which repository or credentials a drill uses.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ALLOWED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR", "GODEBUG")


def child_env(
    repo_env: Mapping[str, str], *, home: Path, tmpdir: Path, parent: Mapping[str, str] | None = None
) -> dict[str, str]:
    """HOME and TMPDIR point into the drill's sandbox, so restic and ssh write nothing elsewhere."""
    source = os.environ if parent is None else parent
    env = {key: source[key] for key in ALLOWED if key in source}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = str(home)
    env["TMPDIR"] = str(tmpdir)
    env["RESTIC_PROGRESS_FPS"] = "0.2"  # progress lines are noise in logs
    env.update(repo_env)
    return env
