"""End to end in a real browser: Debian's chromium, driven headless by Playwright, against `preuve daemon` serving
the console on 127.0.0.1 with a real local restic repository.

A technician logs in, starts a drill and watches it finish, opens its restore log, follows the log of a drill while
it runs (its repository's REST server paused for the moment), acknowledges a failed drill
(a target whose canary checksum is wrong), downloads an attestation; a client's manager logs in and sees only their
company. Screenshots of each page are saved under the test's tmp folder (``screens/``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.drill_helpers import PREUVE, Setup, make_setup
from tests.support.fixtures_services import TargetRepo, TargetTemplate, clone_target_repo
from tests.support.postgres import free_port
from tests.support.web import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root in CI containers
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STOP_TIMEOUT_S = 15

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(400),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make setup installs it)"),
    pytest.mark.parametrize("target_repo", ["local"], indirect=True),
]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RESTIC_"))}
    env["PREUVE_LOG_FORMAT"] = "json"
    return env


def _preuve(setup: Setup, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PREUVE, "--config", str(setup.config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )


def _write_job(setup: Setup, remote: TargetRepo) -> None:
    """Two targets on the same repository: "main" as built, "broken" expecting a canary checksum it cannot match;
    and "remote", a copy of it behind a REST server the test can pause (a drill that waits, to follow live)."""
    broken = {**setup.spec, "canaries": [{"path": setup.repo.manifest.canary_abs, "sha256": "0" * 64}]}
    job = {
        "client": "ACME Bâtiment",
        "language": "fr",
        "policy": "standard",
        "targets": {"main": setup.spec, "broken": broken, "remote": remote.write_config(setup.config)},
    }
    (setup.config / "jobs" / "acme.yaml").write_text(yaml.safe_dump(job, allow_unicode=True), encoding="utf-8")


class DaemonProcess:
    def __init__(self, setup: Setup, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [*PREUVE, "--config", str(setup.config), "daemon"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=out,
                env=_env(),
            )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                found.append({"message": line})
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S + 10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError("the daemon did not stop after SIGTERM") from None


def _wait_http(url: str, daemon: DaemonProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.process.poll() is None, f"daemon exited:\n{daemon.log.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 - loopback URL built by the test
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the console did not answer at {url}:\n{daemon.log.read_text()[-4000:]}")


@pytest.fixture
def remote(tmp_path: Path, target_template_rest: TargetTemplate) -> Iterator[TargetRepo]:
    repo = clone_target_repo(target_template_rest.repo, tmp_path / "remote")
    try:
        yield repo
    finally:
        if repo.server is not None:
            repo.server.resume()  # a failed test must not leave the shared server stopped
        repo.destroy()


@pytest.fixture
def served(tmp_path: Path, target_repo: TargetRepo, remote: TargetRepo) -> Iterator[tuple[Setup, str, DaemonProcess]]:
    setup = make_setup(tmp_path, target_repo, canary=True)
    _write_job(setup, remote)
    port = free_port()
    setup.write_settings(
        '[daemon]\npoll_every = "1s"\nprobe_every = "1d"\npolicy_every = "1d"\nstop_timeout = "15s"\n'
        f'[metrics]\nenabled = false\n[web]\nlisten = "127.0.0.1:{port}"\n'
    )
    for name, extra in (("tech", ["--role", "technician"]), ("manager", ["--role", "client", "--client", "acme"])):
        done = _preuve(setup, "users", "add", name, *extra, stdin=PASSWORD + "\n")
        assert done.returncode == 0, done.stderr
    daemon = DaemonProcess(setup, tmp_path / "daemon.log")
    try:
        _wait_http(f"http://127.0.0.1:{port}/login", daemon)
        yield setup, f"http://127.0.0.1:{port}", daemon
    finally:
        code = daemon.stop()
        assert code == 0, daemon.log.read_text()[-4000:]
        assert any(e.get("event") == "daemon.stopped" for e in daemon.events())


def test_technician_and_client_in_a_real_browser(
    served: tuple[Setup, str, DaemonProcess], remote: TargetRepo, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    setup, base, daemon = served
    screens = tmp_path / "screens"
    screens.mkdir()
    # The attestation of the month so far, issued as a technician would (real content from the ledger, PAdES, DSSE).
    month = f"{datetime.now(UTC):%Y-%m}"
    keys = _preuve(setup, "keys", "init")
    assert keys.returncode == 0, keys.stdout + keys.stderr
    attested = _preuve(setup, "attest", "acme", "--month", month, "--partial", "--json")
    assert attested.returncode == 0, attested.stdout + attested.stderr
    issued_pdf = Path(json.loads(attested.stdout)["pdf"])

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(30_000)

            # Log in: the overview lists the client and its two targets.
            page.goto(f"{base}/")
            expect(page).to_have_url(re.compile(r"/login\?next="))
            page.fill("input[name=name]", "tech")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_have_text("Clients and targets")
            expect(page.locator("table")).to_contain_text("ACME Bâtiment")
            page.screenshot(path=str(screens / "01-overview.png"), full_page=True)

            # Start a sample drill of acme/main from the client page and watch it finish.
            page.click("text=ACME Bâtiment")
            expect(page.locator("h1")).to_contain_text("ACME Bâtiment")
            page.screenshot(path=str(screens / "02-client.png"), full_page=True)
            row = page.locator("tr", has=page.locator("a[href='/targets/acme/main']"))
            row.locator("select[name=kind]").select_option("sample")
            row.locator("button", has_text="Run now").click()
            expect(page).to_have_url(re.compile(r"/drills/\d+$"))
            drill_url = page.url
            page.screenshot(path=str(screens / "03-drill-queued.png"), full_page=True)
            expect(page.locator("#status")).to_have_text("passed", timeout=180_000)
            # The restore log: every restic command with its output.
            expect(page.locator("#log")).to_contain_text("restic")
            expect(page.locator("#log")).to_contain_text("restore")
            assert setup.repo.password not in page.content()
            page.screenshot(path=str(screens / "04-drill-passed-log.png"), full_page=True)

            # A drill followed live: with the REST server paused, restic's first request to the repository waits;
            # the page shows the command that ended and the one running, before the drill ends.
            assert remote.server is not None
            remote.server.pause()
            try:
                page.goto(f"{base}/targets/acme/remote")
                page.locator("select[name=kind]").select_option("sample")
                page.locator("button", has_text="Run now").click()
                expect(page).to_have_url(re.compile(r"/drills/\d+$"))
                # `snapshots` and `ls` start together; both wait for the paused server
                running = page.locator("#log .cmd.running", has_text=re.compile(r" snapshots( |$)"))
                expect(running).to_have_count(1, timeout=60_000)
                expect(page.locator("#log .cmd").first).to_contain_text("version")
                expect(page.locator("#status")).to_have_text("running")
                page.screenshot(path=str(screens / "04b-drill-running-live-log.png"), full_page=True)
            finally:
                remote.server.resume()
            expect(page.locator("#status")).to_have_text("passed", timeout=180_000)
            expect(page.locator("#log .cmd.running")).to_have_count(0)
            expect(page.locator("#log")).to_contain_text("restore")
            assert remote.password not in page.content()

            # A failing drill (wrong canary checksum), acknowledged with a note recorded in the ledger.
            page.goto(f"{base}/targets/acme/broken")
            page.locator("select[name=kind]").select_option("sample")
            page.locator("button", has_text="Run now").click()
            expect(page.locator("#status")).to_have_text("failed", timeout=180_000)
            expect(page.locator("body")).to_contain_text("content-mismatch")
            page.fill("textarea[name=note]", "Canary checksum was mistyped in the job file; fixed.")
            page.click("button:has-text('Acknowledge')")
            expect(page.locator("#acknowledgements + .card")).to_contain_text("Canary checksum was mistyped")
            expect(page.locator("#acknowledgements + .card")).to_contain_text("tech (web console)")
            page.screenshot(path=str(screens / "05-drill-failed-acknowledged.png"), full_page=True)

            # The target page: drill history and the snapshot-age chart.
            page.goto(f"{base}/targets/acme/main")
            expect(page.locator("svg.chart")).to_be_visible()
            expect(page.locator("table")).to_contain_text("passed")
            page.screenshot(path=str(screens / "06-target.png"), full_page=True)

            # Download the attestation; the list says it verifies.
            page.goto(f"{base}/attestations")
            expect(page.locator("table")).to_contain_text("verified")
            page.screenshot(path=str(screens / "07-attestations.png"), full_page=True)
            with page.expect_download() as download_info:
                page.click("a:has-text('PDF')")
            saved = tmp_path / "downloaded.pdf"
            download_info.value.save_as(saved)
            assert saved.read_bytes() == issued_pdf.read_bytes()

            page.click("button:has-text('Log out')")
            expect(page).to_have_url(re.compile(r"/login$"))

            # The client's manager: their company in plain words, and nothing of the provider's tools.
            page.fill("input[name=name]", "manager")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator("h1")).to_contain_text("ACME Bâtiment")
            expect(page.locator("body")).to_contain_text("Your backups")
            expect(page.locator("body")).to_contain_text(month)
            assert "Run now" not in page.content()
            page.screenshot(path=str(screens / "08-client-portal.png"), full_page=True)
            forbidden = page.goto(drill_url)
            assert forbidden is not None and forbidden.status == 403
        finally:
            browser.close()

    assert any(e.get("event") == "web.drill_requested" and e.get("user") == "tech" for e in daemon.events())
    acknowledged = [e for e in daemon.events() if e.get("event") == "web.acknowledged"]
    assert acknowledged and acknowledged[0].get("user") == "tech"
    assert all(setup.repo.password not in line for line in daemon.log.read_text().splitlines())
    names = ("01-overview", "04-drill-passed-log", "04b-drill-running-live-log", "05-drill-failed-acknowledged")
    for name in (*names, "08-client-portal"):
        assert (screens / f"{name}.png").stat().st_size > 10_000
