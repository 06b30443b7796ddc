"""The web console over HTTP (FastAPI's TestClient on the real app and a real SQLite store): every route for every
role, a client user against every provider route and against another client's ids, CSRF, lock-out, API tokens."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from preuve import redact
from preuve.config.loader import Config, load_config
from preuve.drills.result import CommandLog, DrillKind, DrillResult, DrillStatus, Finding
from preuve.errors import FailureClass
from preuve.restic.parse import Snapshot
from preuve.store.db import Store
from preuve.store.ledger import verify_chains
from preuve.store.records import create_drill, finish_drill, get_drill, record_snapshots, sync_config
from preuve.web.app import create_app
from preuve.web.context import WebContext, register_secrets
from preuve.web.users import add_user, new_token, reset_password
from tests.support.web import PASSWORD, issue_attestation, write_client

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
REPO_SECRET = "pw-acme-nas-secret"  # the content of acme/nas's password file (see write_client)


@dataclass
class Console:
    config: Config
    store: Store
    app: object
    failed_drill: int
    passed_drill: int
    beta_drill: int
    running_drill: int
    acme_attestation: int
    beta_attestation: int
    keyid: str

    def client(self) -> TestClient:
        return TestClient(self.app, base_url="http://testserver")  # type: ignore[arg-type]


def _snapshot(n: int, when: datetime) -> Snapshot:
    sid = f"{n:064x}"
    return Snapshot(
        id=sid,
        short_id=sid[:8],
        time=when,
        paths=("/data",),
        hostname="srv",
        username="root",
        tags=(),
        tree="t",
        parent=None,
    )


def _finish(store: Store, ref: str, status: DrillStatus, **extra: object) -> int:
    drill_id = create_drill(store, ref, DrillKind.SAMPLE, "cron@server")
    result = DrillResult(
        status=status,
        kind=DrillKind.SAMPLE,
        started_at=NOW - timedelta(minutes=5),
        finished_at=NOW - timedelta(minutes=4),
        files_checked=12,
        **extra,  # type: ignore[arg-type]
    )
    finish_drill(store, drill_id, result)
    return drill_id


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "preuve.toml").write_text(
        'database = "sqlite:///preuve.db"\nsandbox = "sandbox"\n[web]\nlisten = "127.0.0.1:8080"\nmax_failed_logins = 3\n'
    )
    write_client(
        config_dir, "acme", "ACME Bâtiment", {"nas": {"path": "/srv/acme-nas"}, "cloud": {"path": "/srv/acme-cloud"}}
    )
    write_client(config_dir, "beta", "Beta Conseil", {"usb": {"path": "/srv/beta-usb"}})
    config = load_config(config_dir)
    store = Store.open(config.database_url)
    sync_config(store, config)
    register_secrets(config)
    record_snapshots(store, "acme/nas", [_snapshot(i, NOW - timedelta(hours=30 - i * 6)) for i in range(5)], NOW)
    record_snapshots(store, "beta/usb", [_snapshot(100, NOW - timedelta(hours=2))], NOW)
    failed = _finish(
        store,
        "acme/nas",
        DrillStatus.FAILED,
        failure_class=FailureClass.CONTENT_MISMATCH,
        message="2 files differ from the snapshot",
        findings=[Finding("/data/ledger.xlsx", FailureClass.CONTENT_MISMATCH, "sha256 differs")],
        log=[
            CommandLog(
                argv=("restic", "-r", "/srv/acme-nas", "restore", "abcd1234", "--target", "/sandbox/x"),
                started_at=NOW - timedelta(minutes=5),
                duration_s=1.5,
                exit_code=0,
                stdout="restoring <Snapshot abcd1234> to /sandbox/x\n",
                stderr="",
            )
        ],
    )
    passed = _finish(store, "acme/cloud", DrillStatus.PASSED, message="12 files verified")
    beta = _finish(
        store, "beta/usb", DrillStatus.FAILED, failure_class=FailureClass.CORRUPT_DATA, message="beta pack damaged"
    )
    running = create_drill(store, "acme/cloud", DrillKind.FULL, "cron@server")
    # A secret that reached a stored output by some other road than the masked writers must still not be shown.
    with store.connection(write=True) as connection:
        connection.execute(
            text("UPDATE drillcommand SET stderr = :leak WHERE drill_id = :id"),
            {"leak": f"debug: RESTIC_PASSWORD={REPO_SECRET}", "id": failed},
        )
    keys = config_dir / "keys"
    acme_att = issue_attestation(store, tmp_path / "reports", keys, "acme", "2026-10")
    beta_att = issue_attestation(store, tmp_path / "reports", keys, "beta", "2026-10")
    for name, role, client in (
        ("admin", "admin", None),
        ("tech", "technician", None),
        ("acme-user", "client", "acme"),
        ("beta-user", "client", "beta"),
    ):
        add_user(store, name, role, PASSWORD, client)
    settings = config.settings.web
    assert settings is not None
    context = WebContext(store=store, config=lambda: config, settings=settings, reading_ttl_s=0.0)
    keyid = next(p.stem for p in (keys / "public").glob("*.pem"))
    try:
        yield Console(
            config, store, create_app(context), failed, passed, beta, running, acme_att.id, beta_att.id, keyid
        )
    finally:
        store.close()


def _login_token(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def login(client: TestClient, name: str, password: str = PASSWORD) -> str:
    """Logs in; returns the session's CSRF token, read from a page as a browser would."""
    token = _login_token(client)
    done = client.post("/login", data={"name": name, "password": password, "csrf": token}, follow_redirects=False)
    assert done.status_code == 303, done.text
    page = client.get("/keys")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found
    return found.group(1)


# ---------------------------------------------------------------------------------------------- anonymous


PAGES = ["/", "/clients/acme", "/targets/acme/nas", "/drills", "/drills/1", "/attestations", "/keys", "/users"]
API_GETS = [
    "/api/clients",
    "/api/clients/acme",
    "/api/clients/acme/targets",
    "/api/drills",
    "/api/drills/1",
    "/api/drills/1/log",
    "/api/attestations",
    "/api/attestations/1/pdf",
]


def test_anonymous_pages_go_to_login_and_api_answers_401(console: Console) -> None:
    client = console.client()
    for path in PAGES:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/login?next="), path
    for path in API_GETS:
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["detail"].startswith("log in")
    assert client.post("/api/drills", json={"target": "acme/nas", "kind": "sample"}).status_code == 401
    assert client.post("/api/drills/1/ack", json={"note": "x"}).status_code == 401


def test_login_needs_the_form_token_and_the_right_password(console: Console) -> None:
    client = console.client()
    _login_token(client)
    refused = client.post(
        "/login", data={"name": "tech", "password": PASSWORD, "csrf": "forged"}, follow_redirects=False
    )
    assert refused.status_code == 403
    token = _login_token(client)
    wrong = client.post("/login", data={"name": "tech", "password": "nope nope nope", "csrf": token})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    token = _login_token(client)
    unknown = client.post("/login", data={"name": "nobody", "password": "nope nope nope", "csrf": token})
    assert unknown.status_code == 401 and "Wrong name or password" in unknown.text
    login(client, "tech")
    assert client.get("/").status_code == 200


def test_login_cookie_flags(console: Console) -> None:
    client = console.client()
    token = _login_token(client)
    done = client.post("/login", data={"name": "tech", "password": PASSWORD, "csrf": token}, follow_redirects=False)
    cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("preuve_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie


def test_cookies_are_secure_when_the_public_url_is_https(console: Console) -> None:
    settings = console.config.settings.web
    assert settings is not None
    https = settings.model_copy(update={"public_url": "https://preuve.example.net"})
    app = create_app(WebContext(store=console.store, config=lambda: console.config, settings=https))
    client = TestClient(app, base_url="https://testserver")
    token = _login_token(client)
    done = client.post("/login", data={"name": "tech", "password": PASSWORD, "csrf": token}, follow_redirects=False)
    cookie = next(v for k, v in done.headers.multi_items() if k == "set-cookie" and v.startswith("preuve_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_wrong_passwords_lock_the_account_even_for_the_right_one(console: Console) -> None:
    client = console.client()
    statuses = []
    for _ in range(3):  # max_failed_logins = 3 in this configuration
        token = _login_token(client)
        statuses.append(
            client.post("/login", data={"name": "tech", "password": "guess guess", "csrf": token}).status_code
        )
    assert statuses == [401, 401, 429]
    token = _login_token(client)
    locked = client.post("/login", data={"name": "tech", "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert locked.status_code == 429 and "locked" in locked.text
    assert "preuve_session" not in locked.cookies
    reset_password(console.store, "tech", PASSWORD)  # `preuve users reset` unlocks
    login(client, "tech")
    assert client.get("/").status_code == 200


def test_one_address_cannot_guess_many_names(console: Console) -> None:
    client = console.client()
    statuses = []
    for n in range(21):
        token = _login_token(client)
        statuses.append(
            client.post("/login", data={"name": f"user{n}", "password": "guess guess", "csrf": token}).status_code
        )
    assert statuses[:20] == [401] * 20 and statuses[20] == 429
    token = _login_token(client)  # even a right password from that address waits for the window to pass
    assert client.post("/login", data={"name": "admin", "password": PASSWORD, "csrf": token}).status_code == 429


def test_login_redirects_only_to_this_site(console: Console) -> None:
    client = console.client()
    token = _login_token(client)
    done = client.post(
        "/login",
        data={"name": "tech", "password": PASSWORD, "csrf": token, "next": "//evil.example/x"},
        follow_redirects=False,
    )
    assert done.headers["location"] == "/"


def test_logout_ends_the_session(console: Console) -> None:
    client = console.client()
    csrf = login(client, "tech")
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.get("/").status_code == 200
    out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


# ------------------------------------------------------------------------------------------- the provider


@pytest.mark.parametrize("name", ["admin", "tech"])
def test_provider_pages(console: Console, name: str) -> None:
    client = console.client()
    login(client, name)
    overview = client.get("/")
    assert overview.status_code == 200
    assert "ACME Bâtiment" in overview.text and "Beta Conseil" in overview.text
    assert 'class="light red"' in overview.text  # acme/nas's last drill failed
    filtered = client.get("/", params={"q": "beta"})
    assert "Beta Conseil" in filtered.text and "ACME Bâtiment" not in filtered.text
    assert "ACME Bâtiment" not in client.get("/", params={"light": "green"}).text
    page = client.get("/clients/acme")
    assert page.status_code == 200 and "Run now" in page.text and "nas" in page.text
    target = client.get("/targets/acme/nas")
    assert target.status_code == 200 and "<svg" in target.text and "RPO" in target.text
    assert f"/drills/{console.failed_drill}" in target.text
    drill = client.get(f"/drills/{console.failed_drill}")
    assert drill.status_code == 200
    assert (
        "content-mismatch" in drill.text
        and "/data/ledger.xlsx" in drill.text
        and "restic -r /srv/acme-nas restore" in drill.text
    )
    assert "Acknowledge" in drill.text
    assert "Acknowledge this failure" not in client.get(f"/drills/{console.passed_drill}").text
    running = client.get(f"/drills/{console.running_drill}")
    assert "/live" in running.text  # the page follows a drill that is not finished
    live = client.get(f"/drills/{console.running_drill}/live").json()
    assert live["status"] == "queued" or live["status"] == "running"
    assert live["final"] is False
    listing = client.get("/drills", params={"client": "acme", "status": "failed"})
    assert f'/drills/{console.failed_drill}"' in listing.text and f'/drills/{console.beta_drill}"' not in listing.text
    attestations = client.get("/attestations")
    assert attestations.status_code == 200 and attestations.text.count("verified</span>") == 2
    pdf = client.get(f"/attestations/{console.acme_attestation}/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    statement = client.get(f"/attestations/{console.beta_attestation}/statement")
    assert statement.status_code == 200 and "payloadType" in statement.text
    keys = client.get("/keys")
    assert console.keyid in keys.text and "preuve verify" in keys.text
    assert client.get(f"/keys/{console.keyid}.pem").text.startswith("-----BEGIN PUBLIC KEY-----")
    assert client.get("/keys/0000.pem").status_code == 404
    assert client.get("/users").status_code == (200 if name == "admin" else 403)
    assert client.get("/drills/999999").status_code == 404
    assert client.get("/targets/acme/nope").status_code == 404


def test_restore_log_never_shows_a_secret(console: Console) -> None:
    client = console.client()
    login(client, "tech")
    for path in (
        f"/drills/{console.failed_drill}",
        f"/drills/{console.failed_drill}/live",
        f"/api/drills/{console.failed_drill}/log",
    ):
        answer = client.get(path)
        assert answer.status_code == 200
        assert REPO_SECRET not in answer.text, path
        assert "RESTIC_PASSWORD=***" in answer.text, path


def test_provider_runs_a_drill_and_acknowledges_a_failure_through_forms(console: Console) -> None:
    client = console.client()
    csrf = login(client, "tech")
    refused = client.post("/targets/acme/nas/drills", data={"kind": "full"})
    assert refused.status_code == 403
    queued = client.post("/targets/acme/nas/drills", data={"kind": "full", "csrf": csrf}, follow_redirects=False)
    assert queued.status_code == 303
    drill_id = int(queued.headers["location"].rsplit("/", 1)[1])
    detail = get_drill(console.store, drill_id)
    assert detail is not None and detail.status is DrillStatus.QUEUED and detail.kind is DrillKind.FULL
    assert detail.requested_by == "tech (web console)"
    assert client.post(f"/drills/{console.failed_drill}/ack", data={"note": "forged"}).status_code == 403
    done = client.post(
        f"/drills/{console.failed_drill}/ack",
        data={"note": "Disk replaced; re-run passed.", "csrf": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    page = client.get(f"/drills/{console.failed_drill}")
    assert "Disk replaced; re-run passed." in page.text and "tech (web console)" in page.text
    assert all(status.problem is None for status in verify_chains(console.store, "acme"))
    again = client.post(f"/drills/{console.passed_drill}/ack", data={"note": "n/a", "csrf": csrf})
    assert "only failures are acknowledged" in again.text


def test_api_for_the_provider_with_a_token(console: Console) -> None:
    client = console.client()
    headers = {"Authorization": f"Bearer {new_token(console.store, 'tech')}"}
    clients = client.get("/api/clients", headers=headers).json()
    assert [c["id"] for c in clients] == ["acme", "beta"]
    assert clients[0]["light"] == "red" and any("failed" in r for r in clients[0]["reasons"])
    acme = client.get("/api/clients/acme", headers=headers).json()
    assert {t["name"] for t in acme["targets"]} == {"nas", "cloud"}
    targets = client.get("/api/clients/acme/targets", headers=headers).json()
    nas = next(t for t in targets if t["name"] == "nas")
    assert nas["last_drill"]["status"] == "failed" and nas["newest_snapshot_age_s"] > 0 and nas["media"] == "disk"
    drills = client.get("/api/drills", params={"client": "acme", "status": "failed"}, headers=headers).json()
    assert [d["id"] for d in drills] == [console.failed_drill]
    by_target = client.get("/api/drills", params={"target": "beta/usb"}, headers=headers).json()
    assert [d["id"] for d in by_target] == [console.beta_drill]
    assert client.get("/api/drills", params={"status": "bogus"}, headers=headers).status_code == 422
    one = client.get(f"/api/drills/{console.failed_drill}", headers=headers).json()
    assert one["findings"][0]["path"] == "/data/ledger.xlsx" and one["failure_class"] == "content-mismatch"
    log = client.get(f"/api/drills/{console.failed_drill}/log", headers=headers).json()
    assert log["final"] is True and log["commands"][0]["argv"][:2] == ["restic", "-r"]
    queued = client.post("/api/drills", json={"target": "beta/usb", "kind": "integrity"}, headers=headers)
    assert queued.status_code == 202
    new_id = queued.json()["id"]
    assert client.get(f"/api/drills/{new_id}", headers=headers).json()["status"] == "queued"
    assert (
        client.post("/api/drills", json={"target": "beta/none", "kind": "sample"}, headers=headers).status_code == 404
    )
    assert client.post("/api/drills", json={"target": "beta/usb", "kind": "quick"}, headers=headers).status_code == 422
    ack = client.post(f"/api/drills/{console.beta_drill}/ack", json={"note": "Pack rebuilt"}, headers=headers)
    assert ack.status_code == 201 and ack.json()["ledger_seq"] >= 1
    assert (
        client.get(f"/api/drills/{console.beta_drill}", headers=headers).json()["acknowledgements"][0]["text"]
        == "Pack rebuilt"
    )
    assert (
        client.post(f"/api/drills/{console.passed_drill}/ack", json={"note": "x"}, headers=headers).status_code == 409
    )
    assert client.post("/api/drills/999999/ack", json={"note": "x"}, headers=headers).status_code == 404
    listed = client.get("/api/attestations", headers=headers).json()
    assert {a["client"] for a in listed} == {"acme", "beta"} and all(a["verified"] for a in listed)
    assert [
        a["client"] for a in client.get("/api/attestations", params={"client": "beta"}, headers=headers).json()
    ] == ["beta"]
    pdf = client.get(f"/api/attestations/{console.beta_attestation}/pdf", headers=headers)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"


def test_wrong_and_revoked_tokens_are_refused(console: Console) -> None:
    from preuve.web.users import revoke_tokens

    client = console.client()
    assert client.get("/api/clients", headers={"Authorization": "Bearer preuve_nope"}).status_code == 401
    token = new_token(console.store, "tech")
    assert client.get("/api/clients", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoke_tokens(console.store, "tech")
    assert client.get("/api/clients", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    with console.store.connection() as connection:
        stored = [row[0] for row in connection.execute(text("SELECT token_hash FROM apitoken"))]
        users = [row[0] for row in connection.execute(text("SELECT password_hash FROM webuser"))]
    assert token not in stored and all(h.startswith("$argon2id$") for h in users)


def test_api_with_a_cookie_needs_the_csrf_header(console: Console) -> None:
    client = console.client()
    csrf = login(client, "tech")
    refused = client.post("/api/drills", json={"target": "acme/nas", "kind": "sample"})
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    wrong = client.post(
        "/api/drills", json={"target": "acme/nas", "kind": "sample"}, headers={"X-CSRF-Token": "x" * 64}
    )
    assert wrong.status_code == 403
    assert client.post(f"/api/drills/{console.failed_drill}/ack", json={"note": "x"}).status_code == 403
    accepted = client.post("/api/drills", json={"target": "acme/nas", "kind": "sample"}, headers={"X-CSRF-Token": csrf})
    assert accepted.status_code == 202
    # GETs with the cookie need no token
    assert client.get("/api/drills").status_code == 200


def test_changes_are_logged_with_their_user(console: Console, caplog: pytest.LogCaptureFixture) -> None:
    client = console.client()
    headers = {"Authorization": f"Bearer {new_token(console.store, 'admin')}"}
    with caplog.at_level(logging.INFO, logger="preuve.web"):
        client.post("/api/drills", json={"target": "acme/nas", "kind": "sample"}, headers=headers)
        client.get("/api/clients", headers=headers)
    requests = [r for r in caplog.records if getattr(r, "event", None) == "web.request"]
    assert [(r.user, r.method, r.path, r.status) for r in requests] == [("admin", "POST", "/api/drills", 202)]  # type: ignore[attr-defined]
    assert any(getattr(r, "event", None) == "web.drill_requested" and r.user == "admin" for r in caplog.records)  # type: ignore[attr-defined]


def test_openapi_describes_the_routes(console: Console) -> None:
    document = console.client().get("/api/openapi.json").json()
    paths = document["paths"]
    for path, method in [
        ("/api/clients", "get"),
        ("/api/clients/{client}", "get"),
        ("/api/clients/{client}/targets", "get"),
        ("/api/drills", "get"),
        ("/api/drills", "post"),
        ("/api/drills/{drill_id}", "get"),
        ("/api/drills/{drill_id}/log", "get"),
        ("/api/drills/{drill_id}/ack", "post"),
        ("/api/attestations", "get"),
        ("/api/attestations/{attestation_id}/pdf", "get"),
    ]:
        assert method in paths[path], (path, method)
    assert "202" in paths["/api/drills"]["post"]["responses"]
    assert not any(p.startswith("/login") for p in paths)  # pages are not part of the API


# ------------------------------------------------------------------------------------------- client users


def _provider_routes(console: Console) -> list[tuple[str, str, dict[str, object]]]:
    d = console.failed_drill
    return [
        ("GET", "/drills", {}),
        ("GET", f"/drills/{d}", {}),
        ("GET", f"/drills/{console.beta_drill}", {}),
        ("GET", "/drills/999999", {}),
        ("GET", f"/drills/{d}/live", {}),
        ("GET", "/targets/acme/nas", {}),
        ("GET", "/targets/beta/usb", {}),
        ("GET", "/users", {}),
        ("POST", "/targets/acme/nas/drills", {"data": {"kind": "sample"}}),
        ("POST", "/targets/beta/usb/drills", {"data": {"kind": "sample"}}),
        ("POST", f"/drills/{d}/ack", {"data": {"note": "x"}}),
        ("GET", "/api/drills", {}),
        ("GET", "/api/drills?client=beta", {}),
        ("POST", "/api/drills", {"json": {"target": "acme/nas", "kind": "sample"}}),
        ("GET", f"/api/drills/{d}", {}),
        ("GET", f"/api/drills/{console.beta_drill}", {}),
        ("GET", "/api/drills/999999", {}),
        ("GET", f"/api/drills/{d}/log", {}),
        ("POST", f"/api/drills/{d}/ack", {"json": {"note": "x"}}),
    ]


def _other_client_routes(console: Console) -> list[str]:
    return [
        "/clients/beta",
        "/attestations?client=beta",
        f"/attestations/{console.beta_attestation}/pdf",
        f"/attestations/{console.beta_attestation}/statement",
        "/api/clients/beta",
        "/api/clients/beta/targets",
        "/api/attestations?client=beta",
        f"/api/attestations/{console.beta_attestation}/pdf",
    ]


def test_client_user_sees_only_their_company(console: Console) -> None:
    client = console.client()
    login(client, "acme-user")
    home = client.get("/")
    assert home.status_code == 200
    assert "ACME Bâtiment" in home.text and "at risk" in home.text and "found a problem" in home.text
    assert "Beta" not in home.text and "/srv/acme-nas" not in home.text  # no repository paths for clients
    assert "2026-10" in home.text and f"/attestations/{console.acme_attestation}/pdf" in home.text
    assert client.get("/clients/acme").status_code == 200
    assert client.get(f"/attestations/{console.acme_attestation}/pdf").status_code == 200
    listing = client.get("/attestations")
    assert "acme" in listing.text and "beta" not in listing.text
    assert client.get("/keys").status_code == 200
    api = client.get("/api/clients").json()
    assert [c["id"] for c in api] == ["acme"]
    assert "verdicts" not in api[0]
    targets = client.get("/api/clients/acme/targets").json()
    assert all("media" not in t and "kind" not in t for t in targets)
    assert [a["client"] for a in client.get("/api/attestations").json()] == ["acme"]


@pytest.mark.parametrize("name", ["acme-user", "beta-user"])
def test_client_user_gets_403_on_every_provider_route(console: Console, name: str) -> None:
    client = console.client()
    csrf = login(client, name)
    for method, path, kwargs in _provider_routes(console):
        if method == "POST" and "data" in kwargs:
            kwargs = {"data": {**kwargs["data"], "csrf": csrf}}  # type: ignore[dict-item]
        headers = {"X-CSRF-Token": csrf} if method == "POST" else {}
        answer = client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 403, (method, path, answer.status_code)
        assert "Beta Conseil" not in answer.text and "ACME Bâtiment" not in answer.text
    with console.store.connection() as connection:
        queued = connection.execute(text("SELECT count(*) FROM drillrun WHERE requested_by LIKE '%web console%'"))
        assert queued.scalar_one() == 0


def test_client_user_gets_404_for_another_clients_objects_as_for_missing_ones(console: Console) -> None:
    client = console.client()
    login(client, "acme-user")
    for path in _other_client_routes(console):
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "Beta Conseil" not in answer.text and "beta pack damaged" not in answer.text
    # Another client's attestation answers exactly like one that does not exist (no id oracle).
    other = client.get(f"/api/attestations/{console.beta_attestation}/pdf").json()["detail"]
    missing = client.get("/api/attestations/987654/pdf").json()["detail"]
    assert other.replace(str(console.beta_attestation), "N") == missing.replace("987654", "N")
    assert client.get("/api/clients/beta").json() == {"detail": "no client 'beta'"}
    assert client.get("/api/clients/zulu").json() == {"detail": "no client 'zulu'"}


def test_client_user_with_a_token_is_bound_the_same_way(console: Console) -> None:
    client = console.client()
    headers = {"Authorization": f"Bearer {new_token(console.store, 'beta-user')}"}
    assert [c["id"] for c in client.get("/api/clients", headers=headers).json()] == ["beta"]
    assert client.get("/api/clients/acme", headers=headers).status_code == 404
    assert client.get(f"/api/attestations/{console.acme_attestation}/pdf", headers=headers).status_code == 404
    assert client.post("/api/drills", json={"target": "beta/usb", "kind": "sample"}, headers=headers).status_code == 403
    assert client.get(f"/api/drills/{console.beta_drill}/log", headers=headers).status_code == 403


def test_attestation_whose_pdf_was_altered_is_not_verified(console: Console) -> None:
    from preuve.web.attestations import get_attestation

    found = get_attestation(console.store, console.config.directory, console.acme_attestation)
    assert found is not None
    found.pdf_path.write_bytes(found.pdf_path.read_bytes() + b"% tampered\n")
    client = console.client()
    headers = {"Authorization": f"Bearer {new_token(console.store, 'admin')}"}
    listed = {a["client"]: a for a in client.get("/api/attestations", headers=headers).json()}
    assert listed["acme"]["verified"] is False and "SHA-256 differs" in listed["acme"]["verification"]
    assert listed["beta"]["verified"] is True
    found.pdf_path.unlink()
    assert client.get(f"/api/attestations/{console.acme_attestation}/pdf", headers=headers).status_code == 404


def test_secrets_registered_by_the_console(console: Console) -> None:
    assert redact.mask(f"x {REPO_SECRET} y") == "x *** y"
