"""`preuve users ...` and `preuve web`: registered in preuve.cli with two lines; the code lives here.

Passwords are read from a prompt (twice, not echoed) or, when the standard input is not a terminal, from its first
line: never from the command line, where `ps` and shell histories would show them.
"""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Any

import typer

users_app = typer.Typer(
    help="Web console users: admin, technician, or client (sees one client only).", no_args_is_help=True
)


def _cli() -> Any:
    from preuve import cli

    return cli


def _read_password() -> str:
    cli = _cli()
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            cli._die("error: the two passwords differ; nothing was changed", cli.EXIT_USAGE)
        return first
    line = sys.stdin.readline()
    if not line:
        cli._die("error: no password on the standard input (give it on the first line)", cli.EXIT_USAGE)
    return line.rstrip("\r\n")


def _run(action: Any) -> Any:
    """Run ``action(store)`` with the configured store; a UserError exits 2 with its message."""
    from preuve.store.records import sync_config
    from preuve.web.users import UserError

    cli = _cli()
    config = cli._config()
    with cli._store(config) as store:
        sync_config(store, config)  # clients named by --client exist in the store once their job file is read
        try:
            return action(store)
        except UserError as exc:
            cli._die(f"error: {exc}", cli.EXIT_USAGE)


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="admin, technician or client.")],
    client: Annotated[str | None, typer.Option("--client", help="For --role client: the client they may see.")] = None,
) -> None:
    """Add a user; the password is asked for (or read from the standard input's first line)."""
    from preuve.web.users import add_user

    password = _read_password()
    user = _run(lambda store: add_user(store, name, role, password, client))
    scope = f" of client {user.client}" if user.client else ""
    typer.echo(f"user {user.name} added ({user.role.value}{scope})")


@users_app.command("remove")
def users_remove(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Remove a user, their sessions and API tokens (logged out at once)."""
    from preuve.web.users import remove_user

    _run(lambda store: remove_user(store, name))
    typer.echo(f"user {name} removed, with their sessions and API tokens")


@users_app.command("reset")
def users_reset(name: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Set a new password: unlocks the account and ends its browser sessions."""
    from preuve.web.users import reset_password

    password = _read_password()
    _run(lambda store: reset_password(store, name, password))
    typer.echo(f"password of {name} changed; the account is unlocked and its sessions ended")


@users_app.command("token")
def users_token(
    name: Annotated[str, typer.Argument(help="Login name.")],
    revoke: Annotated[bool, typer.Option("--revoke", help="Revoke every API token of the user instead.")] = False,
) -> None:
    """Print a new API token for scripts (Authorization: Bearer TOKEN). It is shown once; only its hash is kept."""
    from preuve.web.users import new_token, revoke_tokens

    if revoke:
        count = _run(lambda store: revoke_tokens(store, name))
        typer.echo(f"{count} API token(s) of {name} revoked")
        return
    token = _run(lambda store: new_token(store, name))
    typer.echo(token)
    typer.echo("Keep it now: it is not shown again (`preuve users token NAME --revoke` revokes it).", err=True)


@users_app.command("list")
def users_list(as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False) -> None:
    """Every user: role, client, tokens, open sessions, lock-out."""
    from preuve.web.users import list_users

    cli = _cli()
    users = _run(list_users)
    if as_json:
        cli._print_json(
            {
                "users": [
                    {
                        "name": u.name,
                        "role": u.role.value,
                        "client": u.client,
                        "created_at": u.created_at,
                        "tokens": u.tokens,
                        "sessions": u.sessions,
                        "locked_until": u.locked_until,
                    }
                    for u in users
                ]
            }
        )
        return
    if not users:
        typer.echo("No users yet: `preuve users add NAME --role admin`.")
    for u in users:
        locked = f"  locked until {u.locked_until:%Y-%m-%d %H:%M} UTC" if u.locked_until else ""
        typer.echo(
            f"{u.name:<24} {u.role.value:<11} {u.client or '-':<20} tokens {u.tokens}  sessions {u.sessions}{locked}"
        )


def web_command(
    listen: Annotated[
        str | None, typer.Option("--listen", help="HOST:PORT, instead of [web] listen (default 127.0.0.1:8080).")
    ] = None,
) -> None:
    """Serve the web console (provider console and client portal) until Ctrl-C or SIGTERM."""
    from preuve.errors import ConfigurationError, PreuveError
    from preuve.logs import setup_logging
    from preuve.web.server import serve

    cli = _cli()
    setup_logging(cli.state.verbose)
    try:
        code = serve(cli.state.config_dir, listen)
    except ConfigurationError as exc:
        cli._die("error: " + "\n".join(exc.problems), cli.EXIT_USAGE)
    except ValueError as exc:
        cli._die(f"error: --listen: {exc}", cli.EXIT_USAGE)
    except PreuveError as exc:
        cli._die(f"error: {exc.full_message}", cli.EXIT_ERROR)
    raise typer.Exit(code)
