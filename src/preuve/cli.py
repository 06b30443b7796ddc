"""The command line: thin; every decision lives in the packages it calls.

Exit codes: 0 passed (or success), 1 failed (a problem with a backup), 3 error (could not verify),
2 bad usage or configuration, 130 interrupted.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from preuve import __version__, redact
from preuve.config.loader import Config, load_config
from preuve.config.units import format_bytes, format_duration
from preuve.drills.engine import DrillOptions, Progress
from preuve.drills.result import DrillKind, DrillResult, DrillStatus
from preuve.errors import ConfigurationError, PreuveError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    help="Preuve proves that backups restore: restore drills, continuity checks and signed attestations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
targets_app = typer.Typer(help="The configured targets (restic repositories).", no_args_is_help=True)
drill_app = typer.Typer(help="Restore drills: run one, list them, show one with its restore log.", no_args_is_help=True)
policy_app = typer.Typer(help="Continuity-plan policies: the rules each client is held to.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
app.add_typer(drill_app, name="drill")
app.add_typer(policy_app, name="policy")


class _State:
    config_dir: Path = Path.cwd()
    verbose: bool = False


state = _State()
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def _setup_logging(verbose: bool) -> None:
    from preuve.logs import setup_logging

    # Commands stay quiet below WARNING; `daemon` calls setup_logging(verbose) again for its INFO default.
    setup_logging(verbose, level=None if verbose else logging.WARNING)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"preuve {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Configuration folder (default: $PREUVE_CONFIG, else the current folder)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every command run.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print Preuve's version.", is_eager=True, callback=_print_version)
    ] = False,
) -> None:
    env_dir = os.environ.get("PREUVE_CONFIG")
    state.config_dir = config or (Path(env_dir) if env_dir else Path.cwd())
    state.verbose = verbose
    _setup_logging(verbose)


def _die(message: str, code: int) -> NoReturn:
    typer.echo(redact.mask(message), err=True)
    raise typer.Exit(code)


def _config() -> Config:
    try:
        return load_config(state.config_dir)
    except ConfigurationError as exc:
        count = len(exc.problems)
        _die(
            f"The configuration in {state.config_dir} has {count} problem{'s' if count > 1 else ''}:\n"
            + "\n".join(f"  {p}" for p in exc.problems),
            EXIT_USAGE,
        )


@contextmanager
def _store(config: Config) -> Iterator[Any]:
    from preuve.store.db import Store

    try:
        store = Store.open(config.database_url)
    except PreuveError as exc:
        _die(f"error: {exc.full_message}", EXIT_ERROR)
    try:
        yield store
    finally:
        store.close()


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _print_json(obj: Any) -> None:
    typer.echo(redact.mask(json.dumps(_jsonable(obj), ensure_ascii=False, sort_keys=False)))


def _interactive(as_json: bool) -> bool:
    return not as_json and sys.stderr.isatty()


# --- init and demo ------------------------------------------------------------------------------------------------


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder to create the configuration in.")]) -> None:
    """Create a configuration folder: preuve.toml, jobs/, policies/, secrets/ (owner-only)."""
    from preuve.scaffold import scaffold

    try:
        created = scaffold(directory)
    except FileExistsError as exc:
        _die(f"error: {exc}", EXIT_USAGE)
    for path in created:
        typer.echo(f"created {path}")
    typer.echo(f"\nNext: describe a client in {directory / 'jobs'}, then `preuve --config {directory} targets list`.")


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="Scratch folder for the demo (dataset, repository, configuration).")
    ] = Path(".demo"),
) -> None:
    """Build a sample dataset and restic repository, configure a demo client, run a drill, print the verdict."""
    from preuve.demo import run_demo

    code = run_demo(directory.resolve(), echo=typer.echo)
    raise typer.Exit(code)


# --- targets -----------------------------------------------------------------------------------------------------


@targets_app.command("list")
def targets_list(as_json: JsonOption = False) -> None:
    """List every configured target."""
    from preuve.targets.display import repository_display

    config = _config()
    rows: list[dict[str, Any]] = [
        {
            "target": t.ref,
            "client": t.client.name,
            "kind": t.spec.kind,
            "location": t.spec.location,
            "media": t.spec.media,
            "repository": repository_display(t.spec),
            "source": t.spec.source,
            "canaries": len(t.spec.canaries),
        }
        for t in config.targets()
    ]
    if as_json:
        _print_json({"targets": rows})
        return
    if not rows:
        typer.echo(f"No targets: add a job file to {config.directory / 'jobs'}.")
        return
    width = max(len(r["target"]) for r in rows)
    for row in rows:
        typer.echo(
            f"{row['target']:<{width}}  {row['kind']:<5}  {row['location']:<7}  {row['media']:<14}  {row['repository']}"
        )


@targets_app.command("probe")
def targets_probe(
    target: Annotated[str, typer.Argument(help="CLIENT/TARGET")],
    as_json: JsonOption = False,
) -> None:
    """Check a target without restoring: reachable, credentials, repository, newest snapshot, storage facts."""
    from preuve.config.units import parse_duration
    from preuve.drills.run import who
    from preuve.scheduler.locks import RepoBusy
    from preuve.targets.refresh import probe_locked

    config = _config()
    try:
        ref = config.target(target)
    except ConfigurationError as exc:
        _die("error: " + "\n".join(exc.problems), EXIT_USAGE)
    with _store(config) as store:
        try:
            done = probe_locked(
                config,
                store,
                ref,
                wait=parse_duration(config.settings.daemon.lock_wait),
                purpose=f"probe of {ref.ref} asked by {who()}",
                on_wait=_lock_wait_notice,
            )
        except RepoBusy as exc:
            _repo_busy(exc, as_json)
        assert done is not None  # waited: never None
        probe_id, result = done
    newest = result.newest
    if as_json:
        _print_json(
            {
                "probe_id": probe_id,
                "target": ref.ref,
                "ok": result.ok,
                "failure_class": result.failure_class,
                "message": result.message,
                "reachable": result.reachable,
                "credentials_ok": result.credentials_ok,
                "repository_opens": result.repository_opens,
                "repository_id": result.repository_id,
                "snapshot_count": len(result.snapshots),
                "newest_snapshot_id": newest.id if newest else None,
                "newest_snapshot_time": newest.time if newest else None,
                "newest_snapshot_age_s": (
                    round((result.finished_at - newest.time).total_seconds()) if newest else None
                ),
                "restic_version": result.restic_version,
                "facts": result.facts,
                "snapshot_stats": result.snapshot_stats,
            }
        )
    else:
        mark = "ok" if result.ok else f"FAILED ({result.failure_class})"
        typer.echo(f"{ref.ref}: {mark}\n{result.message}")
        for kind, facts in result.facts.items():
            typer.echo(
                f"{kind}: " + ", ".join(f"{k}={v}" for k, v in facts.items())
                if isinstance(facts, dict)
                else f"{kind}: {facts}"
            )
    raise typer.Exit(
        EXIT_OK
        if result.ok
        else (EXIT_FAILED if result.failure_class and result.failure_class.is_backup_problem else EXIT_ERROR)
    )


# --- drills ------------------------------------------------------------------------------------------------------


def _exit_code(status: DrillStatus) -> int:
    return {
        DrillStatus.PASSED: EXIT_OK,
        DrillStatus.FAILED: EXIT_FAILED,
        DrillStatus.ERROR: EXIT_ERROR,
        DrillStatus.INTERRUPTED: EXIT_INTERRUPTED,
    }.get(status, EXIT_ERROR)


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import (
        Progress as Bar,
    )

    with Bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("starting", total=None)

        def update(phase: str, done: int | None, total: int | None) -> None:
            bar.update(task, description=phase, completed=done or 0, total=total)

        yield update


FullOption = Annotated[bool, typer.Option("--full", help="Restore the whole snapshot, not a sample.")]
IntegrityOption = Annotated[
    bool, typer.Option("--integrity", help="Read the next part of the repository with `restic check` (rotation).")
]
SnapshotOption = Annotated[str | None, typer.Option("--snapshot", help="Snapshot id (default: the newest).")]


def _drill_kind(full: bool, integrity: bool, snapshot: str | None) -> DrillKind:
    if full and integrity:
        _die("error: --full and --integrity are different drills: choose one", EXIT_USAGE)
    if integrity and snapshot:
        _die("error: an integrity run checks the whole repository: --snapshot does not apply", EXIT_USAGE)
    return DrillKind.FULL if full else DrillKind.INTEGRITY if integrity else DrillKind.SAMPLE


@drill_app.command("run")
def drill_run(
    target: Annotated[str, typer.Argument(help="CLIENT/TARGET")],
    full: FullOption = False,
    integrity: IntegrityOption = False,
    snapshot: SnapshotOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a restore drill now, in the foreground, and record it."""
    from preuve.drills.run import run_now, who
    from preuve.scheduler.locks import RepoBusy

    kind = _drill_kind(full, integrity, snapshot)
    config = _config()
    options = DrillOptions(kind=kind, snapshot=snapshot)
    with _store(config) as store:
        try:
            with _progress(_interactive(as_json)) as progress:
                drill_id, result = run_now(
                    config, store, target, options, requested_by=who(), progress=progress, on_wait=_lock_wait_notice
                )
        except ConfigurationError as exc:
            _die("error: " + "\n".join(exc.problems), EXIT_USAGE)
        except RepoBusy as exc:
            _repo_busy(exc, as_json)
    if as_json:
        _print_json(_run_json(drill_id, result))
    else:
        _print_result(drill_id, result)
    raise typer.Exit(_exit_code(result.status))


def _lock_wait_notice(holder: Any) -> None:
    """Told once when `drill run` or `targets probe` has to wait for a repository's lock."""
    typer.echo(f"waiting for the repository: in use by {holder.describe()} (up to daemon.lock_wait)", err=True)


def _repo_busy(exc: PreuveError, as_json: bool) -> NoReturn:
    """The lock stayed taken: nothing ran, nothing was recorded; exit 3 (could not verify)."""
    if as_json:
        _print_json({"status": "error", "failure_class": exc.failure_class.value, "message": exc.message})
        raise typer.Exit(EXIT_ERROR)
    _die(f"error ({exc.failure_class.value}): {exc.message}", EXIT_ERROR)


@drill_app.command("request")
def drill_request(
    target: Annotated[str, typer.Argument(help="CLIENT/TARGET")],
    full: FullOption = False,
    integrity: IntegrityOption = False,
    snapshot: SnapshotOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a drill for the daemon and return at once with its id (`drill show ID` follows it)."""
    from preuve.drills.run import who
    from preuve.scheduler.queue import enqueue_drill
    from preuve.store.records import sync_config

    kind = _drill_kind(full, integrity, snapshot)
    config = _config()
    try:
        ref = config.target(target)
    except ConfigurationError as exc:
        _die("error: " + "\n".join(exc.problems), EXIT_USAGE)
    with _store(config) as store:
        sync_config(store, config)
        drill_id = enqueue_drill(store, ref.ref, kind, who(), options={"snapshot": snapshot})
    if as_json:
        _print_json({"id": drill_id})
        return
    typer.echo(
        f"Drill {drill_id} of {ref.ref} ({kind.value}) queued; the daemon runs it. "
        f"Follow it with: preuve --config {state.config_dir} drill show {drill_id}"
    )


def _run_json(drill_id: int, result: DrillResult) -> dict[str, Any]:
    return {
        "status": result.status.value,
        "failure_class": result.failure_class.value if result.failure_class else None,
        "message": result.message,
        "drill_id": drill_id,
        "snapshot_id": result.snapshot_id,
        "files_checked": result.files_checked,
        "bytes_restored": result.bytes_restored,
        "duration_s": result.duration_s,
        "estimated_full_restore_s": result.estimated_full_restore_s,
        "kind": result.kind.value,
        "snapshot_time": result.snapshot_time.isoformat() if result.snapshot_time else None,
        "files_in_snapshot": result.files_in_snapshot,
        "bytes_in_snapshot": result.bytes_in_snapshot,
        "files_changed_since_snapshot": result.files_changed_since_snapshot,
        "canaries_checked": result.canaries_checked,
        "findings": [
            {"path": f.path, "failure_class": f.failure_class.value, "detail": f.detail} for f in result.findings
        ],
        "restic_version": result.restic_version,
        "subset": result.subset,
    }


def _print_result(drill_id: int, result: DrillResult) -> None:
    head = result.status.value.upper()
    if result.failure_class:
        head += f" ({result.failure_class.value})"
    typer.echo(f"Drill {drill_id}: {head}")
    typer.echo(redact.mask(result.message))
    if result.findings:
        typer.echo(f"Findings ({len(result.findings)}):")
        for finding in result.findings[:20]:
            typer.echo(f"  {finding.failure_class.value:<18} {finding.path}: {finding.detail}")
        if len(result.findings) > 20:
            typer.echo(f"  ... and {len(result.findings) - 20} more (preuve drill show {drill_id})")
    if result.estimated_full_restore_s is not None:
        typer.echo(
            f"Full restore of {format_bytes(result.bytes_in_snapshot)} estimated at "
            f"{format_duration(result.estimated_full_restore_s)} (measured {format_bytes(result.bytes_restored)} "
            f"in {format_duration(result.restore_s)})."
        )
    typer.echo(f"Restore log: preuve --config {state.config_dir} drill show {drill_id} --log")


@drill_app.command("list")
def drill_list(
    client: Annotated[str | None, typer.Option("--client", help="Only this client.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Only this target (CLIENT/TARGET).")] = None,
    status: Annotated[str | None, typer.Option("--status", help="passed, failed, error, ...")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """The newest drills first."""
    from preuve.store.records import list_drills

    config = _config()
    if status is not None and status not in {s.value for s in DrillStatus}:
        _die(f"error: unknown status {status!r} (one of {', '.join(s.value for s in DrillStatus)})", EXIT_USAGE)
    with _store(config) as store:
        drills = list_drills(store, client=client, target=target, status=status, limit=limit)
    if as_json:
        _print_json({"drills": drills})
        return
    if not drills:
        typer.echo("No drills recorded yet: run `preuve drill run CLIENT/TARGET`.")
        return
    for d in drills:
        when = d.requested_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        cls = f" {d.failure_class}" if d.failure_class else ""
        typer.echo(f"{d.id:>6}  {when}  {d.target:<28} {d.kind:<9} {d.status}{cls}")


@drill_app.command("show")
def drill_show(
    drill_id: Annotated[int, typer.Argument(help="Drill id (see `drill list`).")],
    show_log: Annotated[
        bool, typer.Option("--log", help="Also print the restore log: every command and its output.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """One drill: verdict, figures, findings, and with --log every command run."""
    from preuve.store.records import get_drill

    config = _config()
    with _store(config) as store:
        detail = get_drill(store, drill_id)
    if detail is None:
        _die(f"error: no drill {drill_id} in {redact.mask(config.database_url)}", EXIT_USAGE)
    if as_json:
        data = _jsonable(detail)
        if not show_log:
            data.pop("commands", None)
        _print_json(data)
        return
    _print_detail(detail, show_log)


def _print_detail(d: Any, show_log: bool) -> None:
    cls = f" ({d.failure_class})" if d.failure_class else ""
    typer.echo(f"Drill {d.id}: {d.status.upper()}{cls}   {d.target}   {d.kind}")
    typer.echo(f"Requested by {d.requested_by} at {d.requested_at:%Y-%m-%d %H:%M:%S %Z}")
    if d.message:
        typer.echo(d.message)
    if d.snapshot_id:
        typer.echo(f"Snapshot {d.snapshot_id[:8]} of {d.snapshot_time:%Y-%m-%d %H:%M %Z}")
    typer.echo(
        f"Checked {d.files_checked} of {d.files_in_snapshot} files, restored {format_bytes(d.bytes_restored or 0)} "
        f"in {format_duration(d.restore_s or 0)}; drill took {format_duration(d.duration_s or 0)}"
    )
    if d.estimated_full_restore_s is not None:
        typer.echo(f"Estimated full restore: {format_duration(d.estimated_full_restore_s)}")
    typer.echo(f"restic {d.restic_version} on {d.host}, Preuve {d.preuve_version}")
    for finding in d.findings:
        typer.echo(f"  {finding.failure_class:<18} {finding.path}: {finding.detail}")
    if show_log:
        typer.echo("\nRestore log:")
        for command in d.commands:
            code = "killed at deadline" if command.timed_out else f"exit {command.exit_code}"
            code = "running" if command.running else code
            typer.echo(f"\n$ {' '.join(command.argv)}\n  [{code}, {command.duration_s:.2f} s] {command.note}")
            if command.stdout.strip():
                typer.echo("  stdout:\n" + _indent(command.stdout))
            if command.stderr.strip():
                typer.echo("  stderr:\n" + _indent(command.stderr))


# --- daemon ------------------------------------------------------------------------------------------------------


@app.command()
def daemon() -> None:
    """Run scheduled drills, probes and policy checks, and queued drills, until SIGTERM (see deploy/)."""
    from preuve.scheduler.daemon import run_daemon

    try:
        from preuve.logs import setup_logging
    except ImportError:  # pragma: no cover - logs.py ships with the daemon
        logging.getLogger().setLevel(logging.DEBUG if state.verbose else logging.INFO)
    else:
        setup_logging(state.verbose)  # INFO by default: one line per event, JSON off a terminal
    raise typer.Exit(run_daemon(state.config_dir))


# --- policies ----------------------------------------------------------------------------------------------------


@policy_app.command("show")
def policy_show(
    name: Annotated[str, typer.Argument(help="Policy name: a file in policies/ without .yaml, or a built-in one.")],
    client: Annotated[
        str | None, typer.Option("--client", help="Apply this client's policy_overrides (its job file).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Print a policy as it applies: human units, with a client's overrides if asked."""
    from preuve.config.located import format_path
    from preuve.policies.display import policy_json, policy_text
    from preuve.policies.loader import is_builtin, override_paths

    config = _config()
    policy = config.policies.get(name)
    if policy is None:
        available = ", ".join(sorted(config.policies)) or "none"
        _die(
            f"error: no policy {name!r} (available: {available}; a policy of your own is a file "
            f"{config.directory / 'policies' / (name + '.yaml')})",
            EXIT_USAGE,
        )
    source = config.policy_files[name]
    origin = f"built in ({source})" if is_builtin(source) else str(source)
    header = [f"policy {name}: {origin}"]
    overridden: list[tuple[str | int, ...]] = []
    job_file: Path | None = None
    if client is not None:
        try:
            found = config.client(client)
        except ConfigurationError as exc:
            _die("error: " + "\n".join(exc.problems), EXIT_USAGE)
        if found.job.policy != name:
            _die(
                f"error: client {client!r} is held to policy {found.job.policy!r}, not {name!r} "
                f"(see `preuve policy show {found.job.policy} --client {client}`)",
                EXIT_USAGE,
            )
        policy = config.client_policy(client)
        job_file = found.file
        overridden = list(override_paths(found.job.policy_overrides))
        keys = ", ".join(format_path(path) for path in overridden)
        header.append(
            f"client {client}: overrides from {job_file}: {keys}" if overridden else f"client {client}: no overrides"
        )
    if as_json:
        _print_json(
            {
                "policy": name,
                "source": source,
                "builtin": is_builtin(source),
                "client": client,
                "job_file": job_file,
                "overrides": [format_path(path) for path in overridden],
                "rules": policy_json(policy),
            }
        )
        return
    typer.echo(policy_text(policy, header=header, overridden=set(overridden)), nl=False)


@policy_app.command("check")
def policy_check(
    client: Annotated[str | None, typer.Argument(help="Client id (default: every client).")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="Judge as of this time (ISO; a bare date means its end). Default: now.")
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="Period start (default: 30 days before the end).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Period end; a bare date includes that day.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Check every rule of the policy; exit 0 all met, 1 a rule violated, 3 a fact could not be measured."""
    from preuve.policies.cli_check import check_command

    config = _config()
    with _store(config) as store:
        code = check_command(config, store, client, at=at, date_from=date_from, date_to=date_to, as_json=as_json)
    raise typer.Exit(code)


# --- alerts ------------------------------------------------------------------------------------------------------

alerts_app = typer.Typer(
    help="Alerts: changes of state (flips) and their deliveries by e-mail and webhook.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 50,
    client: Annotated[str | None, typer.Option("--client", help="Only this client.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only alerts with a delivery that failed for good.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The newest alerts first, each with its deliveries: sent, pending (with the next attempt) or failed."""
    from preuve.alerts import list_alerts

    config = _config()
    with _store(config) as store:
        flips = list_alerts(store, limit=limit, client=client, failed_only=failed)
    if as_json:
        _print_json({"alerts": flips})
        return
    if not flips:
        typer.echo("No alerts recorded." if not failed else "No failed deliveries.")
        return
    for f in flips:
        change = f"{f.previous or '-'} -> {f.state}" if not f.reminder else f"still {f.state} (reminder)"
        typer.echo(redact.mask(f"{f.id:>6}  {f.at.astimezone(UTC):%Y-%m-%d %H:%M}  {change:<22} {f.summary}"))
        for d in f.deliveries:
            attempts = f"{d.attempts} attempt{'s' if d.attempts != 1 else ''}"
            if d.status == "sent":
                state = f"sent {d.sent_at.astimezone(UTC):%Y-%m-%d %H:%M}" if d.sent_at else "sent"
            elif d.status == "failed":
                state = f"FAILED after {attempts}: {d.last_error}"
            else:
                retry = f", next {d.next_attempt_at.astimezone(UTC):%Y-%m-%d %H:%M}" if d.next_attempt_at else ""
                state = f"pending ({attempts}{retry})" + (f": {d.last_error}" if d.last_error else "")
            typer.echo(redact.mask(f"        {d.channel:<7} {d.destination}: {state}"))


@alerts_app.command("test")
def alerts_test(as_json: JsonOption = False) -> None:
    """Send a test message through every configured channel and say how each went (exit 3 if one failed)."""
    from preuve.alerts import send_test

    config = _config()
    outcomes = send_test(config)
    if as_json:
        _print_json({"channels": outcomes})
    elif not outcomes:
        typer.echo(
            f"No alert channel: set email or webhook in the [alerts] section of {config.directory / 'preuve.toml'}."
        )
    else:
        for outcome in outcomes:
            shown = "sent" if outcome.ok else "FAILED"
            note = f": {outcome.error}" if outcome.error else ""
            typer.echo(redact.mask(f"{outcome.channel:<7} {outcome.destination}: {shown}{note}"))
    if not outcomes:
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(EXIT_OK if all(o.ok for o in outcomes) else EXIT_ERROR)


# --- keys and verify ---------------------------------------------------------------------------------------------

keys_app = typer.Typer(
    help="The provider's signing keys for attestations: create, show (to hand to clients), rotate.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")

P12Option = Annotated[
    Path | None,
    typer.Option("--import-p12", help="Import the provider's own certificate and key (PKCS#12) for PDF signatures."),
]
P12PasswordOption = Annotated[
    Path | None,
    typer.Option("--p12-password-file", help="File holding the PKCS#12 password (never on the command line)."),
]
CommonNameOption = Annotated[
    str | None, typer.Option("--common-name", help="The provider's name, in the self-signed certificate.")
]


def _keys_dir() -> Path:
    config = _config()
    return config.path(config.settings.keys)


def _key_info_json(info: Any) -> dict[str, Any]:
    return {
        "keyid": info.keyid,
        "public_key_file": str(info.public_key_file),
        "certificate_file": str(info.certificate_file),
        "certificate_sha256": info.certificate_sha256,
        "certificate_subject": info.certificate_subject,
        "certificate_not_after": info.certificate_not_after.isoformat(),
        "certificate_self_signed": info.certificate_self_signed,
        "public_key": info.public_key_pem,
        "retired_keyids": list(info.retired_keyids),
    }


def _print_key_info(info: Any) -> None:
    typer.echo(f"keyid (Ed25519 key fingerprint, SHA-256): {info.keyid}")
    typer.echo(f"public key: {info.public_key_file}")
    typer.echo(info.public_key_pem.rstrip("\n"))
    origin = "self-signed" if info.certificate_self_signed else "issued to the provider"
    typer.echo(f"PDF certificate: {info.certificate_file} ({origin}, {info.certificate_subject})")
    typer.echo(f"  SHA-256 fingerprint: {info.certificate_sha256}")
    typer.echo(f"  valid until: {info.certificate_not_after:%Y-%m-%d}")
    if info.retired_keyids:
        typer.echo("retired keys (still accepted for older attestations): " + ", ".join(info.retired_keyids))


@keys_app.command("init")
def keys_init(
    import_p12: P12Option = None,
    p12_password_file: P12PasswordOption = None,
    common_name: CommonNameOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create the Ed25519 signing key and the PDF certificate (self-signed ECDSA P-256, or imported from PKCS#12)."""
    from preuve.reports.keys import KeysError, init_keys

    if p12_password_file is not None and import_p12 is None:
        _die("error: --p12-password-file goes with --import-p12", EXIT_USAGE)
    keys_dir = _keys_dir()
    try:
        info = init_keys(keys_dir, common_name=common_name, p12_file=import_p12, p12_password_file=p12_password_file)
    except KeysError as exc:
        _die(f"error: {exc}", EXIT_USAGE)
    if as_json:
        _print_json(_key_info_json(info))
        return
    typer.echo(f"created keys in {keys_dir} (private keys readable by the owner only)")
    _print_key_info(info)


@keys_app.command("show")
def keys_show(as_json: JsonOption = False) -> None:
    """The public key, its keyid and the certificate's fingerprint: what clients need to check attestations."""
    from preuve.reports.keys import KeysError, key_info

    try:
        info = key_info(_keys_dir())
    except KeysError as exc:
        _die(f"error: {exc}", EXIT_USAGE)
    if as_json:
        _print_json(_key_info_json(info))
    else:
        _print_key_info(info)


@keys_app.command("rotate")
def keys_rotate(
    import_p12: P12Option = None,
    p12_password_file: P12PasswordOption = None,
    common_name: CommonNameOption = None,
    keep_certificate: Annotated[
        bool, typer.Option("--keep-certificate", help="Keep the current PDF certificate; only the Ed25519 key changes.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Retire the current keys to keys/retired/KEYID/ and create new ones; old public keys keep verifying."""
    from preuve.reports.keys import KeysError, rotate_keys

    if p12_password_file is not None and import_p12 is None:
        _die("error: --p12-password-file goes with --import-p12", EXIT_USAGE)
    if keep_certificate and (import_p12 is not None or common_name is not None):
        _die("error: --keep-certificate cannot be combined with --import-p12 or --common-name", EXIT_USAGE)
    keys_dir = _keys_dir()
    try:
        retired, info = rotate_keys(
            keys_dir,
            common_name=common_name,
            p12_file=import_p12,
            p12_password_file=p12_password_file,
            keep_certificate=keep_certificate,
        )
    except KeysError as exc:
        _die(f"error: {exc}", EXIT_USAGE)
    if as_json:
        _print_json({**_key_info_json(info), "retired_keyid": retired})
        return
    typer.echo(f"retired key {retired} to {keys_dir / 'retired' / retired}")
    _print_key_info(info)


def _verify_keys(key_files: list[Path] | None) -> dict[str, Any]:
    from preuve.reports.keys import KeysError, load_public_keys, published_keys

    try:
        if key_files:
            return load_public_keys(key_files)
        keys = published_keys(_keys_dir())
    except KeysError as exc:
        _die(f"error: {exc}", EXIT_USAGE)
    if not keys:
        _die("error: no public key: give --key PUBKEY.pem (as printed by `preuve keys show`)", EXIT_USAGE)
    return keys


def _statement_beside(pdf: Path) -> Path | None:
    for candidate in (pdf.with_name(pdf.name + ".statement.json"), pdf.with_suffix(".statement.json")):
        if candidate.is_file():
            return candidate
    return None


def _print_attested(statement: Any) -> None:
    for subject in statement.subjects:
        typer.echo(f"subject: {subject.name}  sha256:{subject.sha256}")
    typer.echo(f"predicateType: {statement.predicate_type}")
    for name, value in sorted(statement.predicate.items()):
        if value is None or isinstance(value, bool):
            typer.echo(f"  {name}: {'unknown' if value is None else json.dumps(value)}")
        elif isinstance(value, str | int | float):
            typer.echo(redact.mask(f"  {name}: {value}"))
    # The attestation predicate's own layout: who, which month, and the plain headline.
    client, period, headline = (statement.predicate.get(k) for k in ("client", "period", "headline"))
    if isinstance(client, dict) and isinstance(period, dict):
        typer.echo(redact.mask(f"  attests: {client.get('name') or client.get('id')} ({client.get('id')}), "
                               f"month {period.get('month')}"))  # fmt: skip
    if isinstance(headline, dict):
        typer.echo(
            f"  restorable: {headline.get('restorable', 'unknown')}; plan met: {headline.get('plan', 'unknown')}"
        )


def _attested_head(statement: Any) -> tuple[str | None, int | None]:
    """The ledger head the statement names: ``predicate.ledger.head`` (the entry hash, or a mapping with
    ``entry_hash``) and, when stated, its sequence number (``head.seq`` or ``ledger.seq``)."""
    section = statement.predicate.get("ledger")
    if not isinstance(section, dict):
        return None, None
    head = section.get("head")
    seq = section.get("seq")
    if isinstance(head, dict):
        seq = head.get("seq", seq)
        head = head.get("entry_hash")
    return (head if isinstance(head, str) and head else None), (seq if isinstance(seq, int) else None)


def _check_ledger(export: Path, statement: Any) -> list[str]:
    """Problems with the ledger export; an empty list when its chain is intact and ends at the attested head."""
    from preuve.store.ledger import verify_export

    try:
        lines = export.read_bytes().splitlines(keepends=True)
    except OSError as exc:
        return [f"{export}: cannot read the ledger export ({exc.strerror})"]
    ok, problems, head = verify_export(lines)
    found = [str(p) for p in problems]
    if not ok:
        return found or ["the export's chain is broken"]
    attested, attested_seq = _attested_head(statement)
    end_hash = getattr(head, "entry_hash", head)
    end_seq = getattr(head, "seq", None)
    if attested is None:
        found.append("the statement names no ledger head (predicate.ledger.head)")
    elif end_hash != attested or (attested_seq is not None and end_seq is not None and end_seq != attested_seq):
        shown = f"entry {end_seq} ({end_hash})" if end_seq is not None else str(end_hash)
        found.append(f"the export ends at {shown}, but the statement attests head {attested}")
    return found


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="A CLIENT-YYYY-MM.statement.json, or the PDF it attests.")],
    key: Annotated[
        list[Path] | None,
        typer.Option("--key", help="Public key file (PEM); repeatable. Default: the keys folder's public/*.pem."),
    ] = None,
    ledger: Annotated[
        Path | None, typer.Option("--ledger", help="A `preuve ledger export`: check it ends at the attested head.")
    ] = None,
) -> None:
    """Check an attestation offline: its signature, what it attests, and optionally the ledger behind it."""
    import hashlib

    from preuve.reports.statement import InvalidStatement, load_envelope, verify_envelope

    if not file.is_file():
        _die(f"error: {file}: no such file", EXIT_USAGE)
    if ledger is not None and not ledger.is_file():
        _die(f"error: {ledger}: no such file", EXIT_USAGE)
    with file.open("rb") as head_of_file:
        is_pdf = file.suffix.lower() == ".pdf" or head_of_file.read(5) == b"%PDF-"
    statement_file = _statement_beside(file) if is_pdf else file
    if statement_file is None:
        _die(f"INVALID: no statement beside {file} (expected {file.with_suffix('.statement.json').name})", EXIT_FAILED)
    public_keys = _verify_keys(key)
    try:
        statement = verify_envelope(load_envelope(statement_file.read_bytes()), public_keys)
    except InvalidStatement as exc:
        _die(f"INVALID: {statement_file}: {exc}", EXIT_FAILED)
    problems: list[str] = []
    pades = None
    if is_pdf:
        from preuve.reports.pades import check_pdf_signature, pinned_certificate

        pdf_bytes = file.read_bytes()
        digest = hashlib.sha256(pdf_bytes).hexdigest()
        if all(s.sha256 != digest for s in statement.subjects):
            problems.append(f"{file.name} (sha256:{digest}) is not the subject of {statement_file.name}")
        pades = check_pdf_signature(pdf_bytes, pinned_certificate(statement.predicate))
        problems.extend(f"PDF signature: {p}" for p in pades.problems)
    if ledger is not None:
        problems.extend(_check_ledger(ledger, statement))
    typer.echo(f"statement: {statement_file}")
    typer.echo(f"signature: valid, Ed25519 key {statement.keyid}")
    _print_attested(statement)
    if is_pdf and not problems:
        typer.echo(f"PDF: {file.name} is the attested subject (SHA-256 matches)")
    if pades is not None and pades.ok:
        typer.echo(
            f"PDF signature (PAdES): valid, intact, covers the whole file; signed by {pades.signer} "
            f"(certificate SHA-256 {pades.certificate_sha256}, the one the statement names) at {pades.signed_at}"
        )
    if ledger is not None and not problems:
        typer.echo(f"ledger: {ledger} is intact and ends at the attested head")
    if problems:
        for problem in problems:
            typer.echo(redact.mask(f"INVALID: {problem}"), err=True)
        raise typer.Exit(EXIT_FAILED)
    typer.echo("VALID")


@app.command()
def attest(
    client: Annotated[str, typer.Argument(help="The client (its jobs/CLIENT.yaml).")],
    month: Annotated[str, typer.Option("--month", help="The month to attest, YYYY-MM (UTC).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: attestations/CLIENT/ in the configuration).")
    ] = None,
    lang: Annotated[
        str | None, typer.Option("--lang", help="fr or en (default: the client's language in its job file).")
    ] = None,
    partial: Annotated[
        bool,
        typer.Option("--partial", help="Attest the current month so far (the document says so); refused without it."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Issue CLIENT's signed attestation for a month: PDF (PAdES), statement (DSSE) and HTML; never overwrites.

    A month that has not ended is refused unless --partial is given: the attestation then covers the month up to
    now and says so on its first page ("month so far"); the monthly run still issues the complete month."""
    from preuve.reports.issue import ISSUE_ERRORS, AttestationError, check_month, issue_attestation

    config = _config()
    try:
        check_month(month)
        config.client(client)
        if lang not in (None, "fr", "en"):
            raise AttestationError(f"--lang {lang}: attestations are written in fr or en")
    except AttestationError as exc:
        _die(f"error: {exc}", EXIT_USAGE)
    except ConfigurationError as exc:
        _die(f"error: {exc.problems[0]}", EXIT_USAGE)
    with _store(config) as store:
        try:
            issued = issue_attestation(config, store, client, month, out_dir=out, lang=lang, partial=partial)
        except AttestationError as exc:  # a month not ended (without --partial) is a usage problem, not a fault
            code = EXIT_USAGE if exc.reason in ("month-not-ended", "bad-month", "unknown-client") else EXIT_ERROR
            _die(f"error: {client} {month}: {exc}", code)
        except ISSUE_ERRORS as exc:
            _die(f"error: {client} {month}: {exc}", EXIT_ERROR)
    assert issued is not None  # only the monthly run (first_only) gets None
    if as_json:
        _print_json(issued.as_json())
        return
    so_far = " (month so far)" if issued.partial else ""
    typer.echo(f"{client} {month}{so_far}: attestation version {issued.version} ({issued.language}), "
               f"plan {issued.verdict}, restorable {issued.restorable}")  # fmt: skip
    for path in (issued.pdf, issued.statement, issued.html, issued.public_key):
        typer.echo(f"  {path}")
    typer.echo(f"verify: preuve verify {issued.pdf} --key {issued.public_key}")


# --- ledger ------------------------------------------------------------------------------------------------------

ledger_app = typer.Typer(
    help="The tamper-evident ledger: every recorded result in its client's hash chain.", no_args_is_help=True
)
app.add_typer(ledger_app, name="ledger")


@ledger_app.command("verify")
def ledger_verify(
    client: Annotated[str | None, typer.Argument(help="Only this client's chain (default: every client).")] = None,
) -> None:
    """Walk the chains: "intact" with each head, or the first entry edited, removed or reordered (exit 1)."""
    from preuve.store.ledger import verify_chains

    config = _config()
    with _store(config) as store:
        statuses = verify_chains(store, client)
    if not statuses:
        typer.echo("No ledger entries yet.")
    for status in statuses:
        if status.problem is None:
            typer.echo(f"{status.client}: intact: {status.entries} entries, head {status.head.entry_hash}")
        else:
            typer.echo(redact.mask(f"{status.client}: NOT INTACT: {status.problem.message}"))
    raise typer.Exit(EXIT_OK if all(s.problem is None for s in statuses) else EXIT_FAILED)


@ledger_app.command("export")
def ledger_export(
    client: Annotated[str, typer.Argument(help="The client.")],
    month: Annotated[str, typer.Option("--month", help="The month, YYYY-MM (UTC).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of the standard output.")
    ] = None,
) -> None:
    """The month's entries as JSON Lines, after the head that precedes them, for an auditor."""
    from preuve.store.ledger import export_month

    config = _config()
    with _store(config) as store:
        try:
            lines = export_month(store, client, month)
        except ValueError as exc:
            _die(f"error: {exc}", EXIT_USAGE)
    body = "".join(line + "\n" for line in lines)
    if out is None:
        sys.stdout.write(body)
        return
    out.write_text(body, encoding="utf-8")
    typer.echo(f"{len(lines) - 1} entries of {client} for {month} written to {out}", err=True)


@ledger_app.command("note")
def ledger_note(
    client: Annotated[str, typer.Argument(help="The client.")],
    note: Annotated[str, typer.Argument(help="The acknowledgement or note, as the client should read it.")],
    drill: Annotated[int | None, typer.Option("--drill", help="The drill this note is about.")] = None,
    by: Annotated[str | None, typer.Option("--by", help="Who writes it (default: this user@host).")] = None,
) -> None:
    """Record a technician's acknowledgement or note in the client's ledger (who and when are recorded)."""
    import getpass
    import socket

    from preuve.store.ledger import add_note

    config = _config()
    author = by or f"{getpass.getuser()}@{socket.gethostname()}"
    with _store(config) as store:
        try:
            entry = add_note(store, client, note, author, drill_id=drill)
        except (LookupError, ValueError) as exc:
            _die(f"error: {exc}", EXIT_USAGE)
    typer.echo(f"{client}: note recorded as entry {entry.seq}, hash {entry.entry_hash}")


# --- web console: `preuve users ...` and `preuve web` (code in preuve.web.cli) ----------------------------------

from preuve.web.cli import users_app, web_command  # noqa: E402

app.add_typer(users_app, name="users")
app.command("web")(web_command)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.rstrip("\n").splitlines())


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        # The process is about to end: without this, Python's last collection walks every object the imports
        # made (a tenth of a second or more of each command). Exit handlers and thread joins still run.
        gc.freeze()
