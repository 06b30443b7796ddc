"""Calls into the alerts package, which may be absent (an installation without it, or one being built).

Imported lazily and looked up by name, so the daemon runs the same whether or not ``preuve.alerts`` exists; a
failing hook is logged and never stops the daemon (an SMTP outage must not stop drills).
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("preuve.scheduler")

ALERTS = "preuve.alerts"
_broken: set[str] = set()  # modules whose import failed: reported once, not on every poll
_lock = threading.Lock()


def hook(name: str, module_name: str = ALERTS) -> Callable[..., Any] | None:
    """``module_name.name`` if that module imports and has it, else None."""
    with _lock:
        if module_name in _broken:
            return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            return None  # not installed: nothing to call
        _report_broken(module_name, exc)
        return None
    except Exception as exc:
        _report_broken(module_name, exc)
        return None
    found = getattr(module, name, None)
    return found if callable(found) else None


def _report_broken(module_name: str, exc: BaseException) -> None:
    with _lock:
        first = module_name not in _broken
        _broken.add(module_name)
    if first:
        log.error("cannot import %s (%s: %s): its hooks are skipped", module_name, type(exc).__name__, exc)


def call(name: str, *args: Any, module_name: str = ALERTS) -> bool:
    """Call the hook if it exists; True if it was called and returned without raising."""
    found = hook(name, module_name)
    if found is None:
        return False
    try:
        found(*args)
    except SQLAlchemyError as exc:
        # The database is away (the daemon's own loops say so once); no traceback per attempt.
        log.warning("%s.%s skipped: database unavailable (%s)", module_name, name, type(exc).__name__)
        return False
    except Exception:
        log.exception("%s.%s failed", module_name, name, extra={"event": "hook.failed", "hook": name})
        return False
    return True
