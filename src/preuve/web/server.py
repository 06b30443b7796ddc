"""Serving the console: on its own (`preuve web`) or on a thread of the daemon (when preuve.toml has [web]).

uvicorn listens exactly on ``[web] listen``; behind a TLS reverse proxy, the proxy's X-Forwarded-For and
X-Forwarded-Proto are trusted from loopback only (see deploy/nginx-preuve.conf).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import uvicorn

from preuve.config.loader import Config, load_config
from preuve.config.model import WebSettings
from preuve.errors import FailureClass, PreuveError
from preuve.store.db import Store
from preuve.store.records import sync_config
from preuve.web.app import create_app
from preuve.web.context import ConfigSource, WebContext, register_secrets

log = logging.getLogger("preuve.web")

START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


class WebError(PreuveError):
    """The console cannot listen where it is configured to."""

    def __init__(self, message: str) -> None:
        super().__init__(FailureClass.INTERNAL, message)


def parse_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _bind(settings: WebSettings) -> socket.socket:
    """Bind here, not in uvicorn, so that "address in use" is an error with the setting's name, raised at once."""
    host, port = parse_listen(settings.listen)
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICSERV)[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except (OSError, socket.gaierror) as exc:
        raise WebError(f"[web] listen = {settings.listen!r}: cannot resolve {host!r} ({exc})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise WebError(
            f"cannot serve the console on {settings.listen} ([web] listen in preuve.toml): {exc.strerror or exc}"
        ) from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        pass  # the daemon (or `preuve web`) owns the signals


class WebServer:
    """A running console; :meth:`stop` ends it (open connections get a few seconds)."""

    def __init__(self, server: _Server, sock: socket.socket, thread: threading.Thread) -> None:
        self._server = server
        self._sock = sock
        self._thread = thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host if ':' not in host else f'[{host}]'}:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(1.0)
        self._sock.close()


def _uvicorn_config(context: WebContext, settings: WebSettings) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(context),
        log_config=None,  # Preuve's own logging (JSON off a terminal) handles uvicorn's loggers too
        access_log=False,  # state-changing requests are logged with their user by the app itself
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1,::1",
        server_header=False,
        timeout_graceful_shutdown=int(STOP_TIMEOUT_S),
    )


def start_web(context: WebContext, settings: WebSettings) -> WebServer:
    """Serve ``context`` on a thread; returns once it accepts connections. WebError if it cannot listen."""
    sock = _bind(settings)
    server = _Server(_uvicorn_config(context, settings))

    def run() -> None:
        asyncio.run(server.serve(sockets=[sock]))

    thread = threading.Thread(target=run, name="web", daemon=True)
    thread.start()
    deadline = START_TIMEOUT_S
    step = 0.05
    while not server.started and thread.is_alive() and deadline > 0:
        threading.Event().wait(step)
        deadline -= step
    if not server.started:
        server.should_exit = True
        sock.close()
        raise WebError(f"the console did not start on {settings.listen} within {START_TIMEOUT_S:.0f} s")
    started = WebServer(server, sock, thread)
    public = settings.public_url or started.url
    log.info("web console at %s (listening on %s)", public, settings.listen, extra={"event": "web.listening"})
    return started


def start_web_server(
    config: Config, store: Store, config_getter: Callable[[], Config] | None = None
) -> WebServer | None:
    """The daemon's hook: serve the console when preuve.toml has a [web] section, else nothing (None)."""
    settings = config.settings.web
    if settings is None:
        return None
    register_secrets(config)
    context = WebContext(
        store=store, config=config_getter or ConfigSource(config.directory, store, config), settings=settings
    )
    return start_web(context, settings)


def serve(config_dir: Path, listen: str | None = None) -> int:
    """`preuve web`: serve until SIGTERM or Ctrl-C; returns the exit code."""
    config = load_config(config_dir)
    settings = config.settings.web or WebSettings()
    if listen is not None:
        settings = settings.model_copy(update={"listen": WebSettings(listen=listen).listen})
    store = Store.open(config.database_url)
    try:
        sync_config(store, config)
        register_secrets(config)
        context = WebContext(store=store, config=ConfigSource(config.directory, store, config), settings=settings)
        server = start_web(context, settings)
        stopping = threading.Event()

        def stop(signum: int, _frame: object) -> None:
            log.info("received %s: stopping", signal.Signals(signum).name, extra={"event": "web.stopping"})
            stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        stopping.wait()
        server.stop()
        return 0
    finally:
        store.close()
