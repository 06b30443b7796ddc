"""Alerts: a message when something changes state, never one per failed run.

The daemon reports what it observes (:func:`on_drill_finished`, :func:`on_policy_report`, :func:`on_config_error`);
a change of state is recorded as a flip with one pending delivery per configured channel (e-mail, webhook).
:func:`remind` adds a reminder while a failure lasts, :func:`deliver_pending` sends what is due, retrying with
back-off, and :func:`ping_dead_man` tells an outside watcher that the scheduler is alive. See
:mod:`preuve.alerts.flips` for which changes are alerted, and :mod:`preuve.alerts.delivery` for how deliveries are
claimed and retried.
"""

from __future__ import annotations

from preuve.alerts.channels import ChannelError, ChannelOutcome, ping_dead_man, send_test
from preuve.alerts.delivery import backoff, deliver_pending
from preuve.alerts.flips import (
    DeliveryRecord,
    FlipRecord,
    get_flip,
    list_alerts,
    on_config_error,
    on_daemon_state,
    on_drill_finished,
    on_policy_report,
    remind,
)

__all__ = [
    "ChannelError",
    "ChannelOutcome",
    "DeliveryRecord",
    "FlipRecord",
    "backoff",
    "deliver_pending",
    "get_flip",
    "list_alerts",
    "on_config_error",
    "on_daemon_state",
    "on_drill_finished",
    "on_policy_report",
    "ping_dead_man",
    "remind",
    "send_test",
]
