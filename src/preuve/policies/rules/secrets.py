"""Secrets hygiene: each repository password file readable by its owner only.

Whoever reads the password file can read, and with the repository's keys delete, every backup in it. The file
is examined on this machine when the rule runs: its mode is a present fact, not one recorded at the period's end.
"""

from __future__ import annotations

import stat

from preuve.policies.facts import ANSSI, ISO27001, NIS2, RuleResult, TargetFacts, Verdict
from preuve.policies.model import Policy
from preuve.policies.period import Period
from preuve.policies.rules._common import per_target, result

RULE = "secrets"
REFERENCES = (ISO27001, NIS2, ANSSI)
THRESHOLD = {"mode": "0600"}  # at most: no access for group or others (0400 is as good)


def check_target(policy: Policy, target: TargetFacts, period: Period) -> RuleResult:
    path = target.password_file
    if path is None:
        return result(
            RULE, target.ref, Verdict.UNKNOWN, {"path": None, "mode": None}, THRESHOLD,
            "No password file is known for this target.", REFERENCES,
        )  # fmt: skip
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        verdict, value, reason = Verdict.VIOLATED, None, f"The password file {path} does not exist."
    except OSError as exc:
        verdict, value, reason = (
            Verdict.UNKNOWN,
            None,
            f"The password file {path} could not be examined: {exc.strerror}.",
        )
    else:
        value = f"{mode:04o}"
        if mode & 0o077:
            verdict = Verdict.VIOLATED
            reason = f"The password file {path} has mode {mode:04o}: others than its owner can read it (chmod 600 it)."
        else:
            verdict, reason = Verdict.MET, f"The password file {path} has mode {mode:04o}: its owner only."
    return result(RULE, target.ref, verdict, {"path": str(path), "mode": value}, THRESHOLD, reason, REFERENCES)


check = per_target(check_target)
