"""A policy as a technician reads it: human units (``24h``, ``7d``, ``30%``), as commented YAML or as JSON.

The text is itself a valid policy file: saved as ``policies/NAME.yaml`` it loads back to the same policy.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from preuve.config.located import PathKey
from preuve.policies.model import Policy

# the comment shown after each key (the wording of the example files)
DESCRIPTIONS: dict[PathKey, str] = {
    ("rpo",): "newest snapshot younger than this (recovery point objective)",
    ("rto",): "a full restore must fit in this (recovery time objective)",
    ("drill",): "restore drills",
    ("drill", "every"): "at least one passing drill per target per interval",
    ("drill", "grace"): "a failure must be followed by a pass within this",
    ("drill", "full_restore_every"): "a full restore (not a sample) of each target at least this often",
    ("integrity",): "restic check --read-data, spread over time",
    ("integrity", "window"): "every pack of the repository read at least once within this",
    ("retention",): "snapshots the client's `restic forget` must keep: the last N of each",
    ("copies",): "targets holding the same data",
    ("copies", "min"): "copies in all",
    ("copies", "media"): "distinct kinds of medium among them",
    ("copies", "offsite"): "copies away from the premises",
    ("copies", "immutable"): "copies that cannot be deleted (S3 Object Lock, append-only REST)",
    ("immutability",): "applies to the targets counted as immutable",
    ("immutability", "min_retention"): "an immutable copy keeps each backup at least this long",
    ("anomalies",): "from one snapshot to the next, reported when exceeded",
    ("anomalies", "max_size_drop"): "total size dropping by more than this",
    ("anomalies", "max_files_drop"): "number of files dropping by more than this",
    ("anomalies", "max_changed"): "share of the files changed",
}

_UNITS = (("d", 86_400_000_000), ("h", 3_600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1000))
_COLUMN = 28  # where comments start


def human_duration(value: timedelta) -> str:
    """``24h``, ``7d``, ``90s``: the largest unit that divides the duration exactly; read back by parse_duration.

    Days from two days on: a day is written ``24h``, as RPOs usually are.
    """
    micros = value // timedelta(microseconds=1)
    for unit, size in _UNITS:
        if micros % size == 0 and (unit != "d" or micros >= 2 * size):
            return f"{micros // size}{unit}"
    whole, part = divmod(micros, 1_000_000)
    return f"{whole}.{part:06d}".rstrip("0") + "s"


def human_percent(value: float) -> str:
    """``0.3`` -> ``30%``: the shortest decimal that parse_percent reads back as the same fraction."""
    percent = value * 100
    for digits in range(16):
        text = f"{round(percent, digits):.{digits}f}"
        if float(text) / 100 == value:
            return text + "%"
    return format(Decimal(repr(percent)), "f") + "%"  # never an exponent: parse_percent reads plain decimals


def human_value(value: Any) -> Any:
    if isinstance(value, timedelta):
        return human_duration(value)
    if isinstance(value, float):
        return human_percent(value)
    return value


def _seconds(value: timedelta) -> int | float:
    seconds = value.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def _sections(policy: Policy) -> dict[str, Any]:
    """The policy's values as model objects, by key, without its name (the file name)."""
    return {key: getattr(policy, key) for key in Policy.model_fields if key != "name"}


def _line(indent: str, key: str, value: str, path: PathKey, overridden: set[PathKey]) -> str:
    text = f"{indent}{key}:" + (f" {value}" if value else "")
    comments = [DESCRIPTIONS[path]] if path in DESCRIPTIONS else []
    if path in overridden:
        comments.append("overridden for this client")
    if not comments:
        return text
    return f"{text:<{_COLUMN - 1}} # " + "; ".join(comments)


def policy_text(policy: Policy, header: list[str] | None = None, overridden: set[PathKey] | None = None) -> str:
    """Commented YAML; ``header`` lines become comments on top, keys in ``overridden`` are marked."""
    marked = overridden or set()
    lines = [f"# {line}" for line in header or []]
    for key, value in _sections(policy).items():
        if isinstance(value, timedelta):
            lines.append(_line("", key, human_duration(value), (key,), marked))
            continue
        lines.append(_line("", key, "", (key,), marked))
        for sub, item in value.model_dump().items():
            lines.append(_line("  ", sub, str(human_value(item)), (key, sub), marked))
    return "\n".join(lines) + "\n"


def policy_json(policy: Policy) -> dict[str, Any]:
    """Durations as their human text and in seconds (``rpo``, ``rpo_s``), shares as text and ratio (``_ratio``)."""

    def entries(key: str, value: Any) -> dict[str, Any]:
        if isinstance(value, timedelta):
            return {key: human_duration(value), f"{key}_s": _seconds(value)}
        if isinstance(value, float):
            return {key: human_percent(value), f"{key}_ratio": value}
        return {key: value}

    out: dict[str, Any] = {"name": policy.name}
    for key, value in _sections(policy).items():
        if isinstance(value, timedelta):
            out.update(entries(key, value))
        else:
            section: dict[str, Any] = {}
            for sub, item in value.model_dump().items():
                section.update(entries(sub, item))
            out[key] = section
    return out
