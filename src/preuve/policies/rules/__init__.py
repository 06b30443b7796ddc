"""The policy rules: each a small function from a policy, a client's facts and a period to verdicts.

Every rule reads only the facts it is given (:mod:`preuve.policies.facts`); none queries the store.
"""

from __future__ import annotations

from preuve.policies.rules import (
    anomalies,
    canaries,
    copies,
    drills,
    immutability,
    integrity,
    retention,
    rpo,
    rto,
    secrets,
    vanished,
)
from preuve.policies.rules._common import Rule

RULES: dict[str, Rule] = {
    rpo.RULE: rpo.check,
    rto.RULE: rto.check,
    drills.RULE: drills.check,
    integrity.RULE: integrity.check,
    retention.RULE: retention.check,
    copies.RULE: copies.check,
    immutability.RULE: immutability.check,
    secrets.RULE: secrets.check,
    anomalies.RULE: anomalies.check,
    vanished.RULE: vanished.check,
    canaries.RULE: canaries.check,
}

__all__ = ["RULES", "Rule"]
