"""Issuing attestations end to end: signed PDF checked by poppler, statement by securesystemslib, `preuve verify`
against tampering, versions that never overwrite, key rotation, and two issuers racing for the same month.

The content is the real builder's (preuve.reports.month.build_predicate) over results recorded through Preuve's own
paths (tests/integration/month_records.py): acme's October has passes, a failure with a technician's note, a full
restore and an untested target; beta's October has probes and no drill at all.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]  # documented; no __all__
from sqlmodel import select
from typer.testing import CliRunner

from preuve.cli import app
from preuve.config.loader import Config
from preuve.reports.issue import Issued, _claim, issue_attestation
from preuve.reports.keys import init_keys, key_info, keyid_of, load_public_key, rotate_keys
from preuve.reports.month import build_predicate
from preuve.reports.pades import check_pdf_signature, sign_pdf
from preuve.reports.render import render_pdf
from preuve.reports.statement import build_statement, sign_envelope
from preuve.reports.view import Files
from preuve.store.db import Store
from preuve.store.models import Attestation
from preuve.store.records import sync_config
from tests.integration.attest_helpers import write_config
from tests.integration.drill_helpers import PREUVE
from tests.integration.month_records import NOTE, OCT, Clock, Month, build_month, install_clock, probe_month
from tests.support.predicates import full_month

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path / "conf", f"sqlite:///{tmp_path / 'preuve.db'}")


@pytest.fixture
def db(config: Config) -> Any:
    store = Store.open(config.database_url)
    yield store
    store.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return install_clock(monkeypatch)


@pytest.fixture
def october(config: Config, db: Store, clock: Clock) -> Month:
    """acme/nas drilled all October (one failure, fixed, with a note), acme/offsite never; beta/nas only probed."""
    sync_config(db, config)
    recorded = build_month(db, clock, "acme", OCT, usb=False)
    probe_month(db, clock, "beta/nas", OCT)
    clock.at = datetime.now(UTC)  # anything recorded later in a test is recorded now
    return recorded


def _preuve(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PREUVE_CONFIG"}
    return subprocess.run([*PREUVE, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False)


def _issue(config: Config, store: Store, client: str = "acme", **options: Any) -> Issued:
    issued = issue_attestation(config, store, client, "2026-10", **options)
    assert issued is not None
    return issued


def _first_page(pdf: Path) -> str:
    done = subprocess.run(
        ["pdftotext", "-f", "1", "-l", "1", str(pdf), "-"], capture_output=True, text=True, check=True
    )
    return " ".join(done.stdout.replace("\u00a0", " ").split())


def _verify(document: Path, key: Path | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
    return _preuve("verify", str(document), *(["--key", str(key)] if key else []), *extra)


def _rows(store: Store) -> list[Attestation]:
    with store.session() as session:
        return list(session.exec(select(Attestation).order_by(Attestation.id)))  # type: ignore[arg-type]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --- the documents -------------------------------------------------------------------------------------------------


def test_issued_pdf_is_signed_readable_and_named_by_a_signed_statement(
    config: Config, db: Store, tmp_path: Path, october: Month
) -> None:
    expected = build_predicate(config, db, "acme", "2026-10")
    issued = _issue(config, db)
    out = config.directory / "attestations" / "acme"
    assert issued.pdf == out / "acme-2026-10.pdf"
    assert issued.statement == out / "acme-2026-10.statement.json"
    assert issued.html == out / "acme-2026-10.html"
    assert issued.language == "fr" and issued.version == 1
    assert (issued.verdict, issued.restorable) == (expected["headline"]["plan"], "partly")
    assert issued.verdict == "partly" and not issued.partial
    pdf = issued.pdf.read_bytes()

    # poppler, independently of pyHanko: the signature is valid and covers the whole document
    sig = subprocess.run(["pdfsig", str(issued.pdf)], capture_output=True, text=True, check=False, timeout=60)
    assert "Signature Validation: Signature is Valid." in sig.stdout, sig.stdout + sig.stderr
    assert "Total document signed" in sig.stdout
    assert "Infogérance Test SARL" in sig.stdout
    fonts = subprocess.run(["pdffonts", str(issued.pdf)], capture_output=True, text=True, check=True, timeout=60)
    rows = fonts.stdout.splitlines()[2:]
    assert rows and all("DejaVu" in row and " yes yes " in row for row in rows), fonts.stdout  # embedded subsets

    # the first page as a picture for a reviewer, and its words
    subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-r", "80", "-png", str(issued.pdf), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    (png,) = tmp_path.glob("page-*.png")  # page-1.png, or page-01.png for a document of 10 pages or more
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    words = _first_page(issued.pdf)
    for phrase in (
        "Attestation de continuité",
        "ACME Bâtiment · octobre 2026",
        "Période : du 1er octobre 2026 au 31 octobre 2026 inclus (UTC)",
        "Vos sauvegardes ont-elles été restaurées avec succès",
        "En partie",
        "Votre plan de continuité a-t-il été respecté ?",
        "Sauvegardes testées avec succès ce mois-ci : 1 sur 2.",
        "Oui, le 31 octobre 2026",
        "Non : aucun test réussi",
        "32 / 1",  # nas: passed / failed
        "96,8 %",  # nas: within its 24 h RPO but for the day without a snapshot (96.77 %)
    ):
        assert phrase in words, phrase
    assert "mois en cours" not in words
    everything = subprocess.run(["pdftotext", str(issued.pdf), "-"], capture_output=True, text=True, check=True)
    text_all = " ".join(everything.stdout.replace("\u00a0", " ").split())
    for phrase in (
        "Données de sauvegarde endommagées : nas",
        f"Détecté le 7 octobre 2026 à 03:00 UTC (test n° {october.failed}, par échantillon : échec)",
        f"Résolu le 8 octobre 2026 à 03:00 UTC (test n° {october.fixed})",
        NOTE,
        "Règlement d'exécution (UE) 2024/2690 (NIS2), annexe, point 4.2",
        "Faire un test de restauration de offsite",
    ):
        assert phrase in text_all, phrase

    # the statement: an in-toto Statement on the final, signed PDF, in a DSSE envelope securesystemslib accepts
    envelope = json.loads(issued.statement.read_text())
    info = key_info(config.path("keys"))
    public = load_public_key(info.public_key_file)
    theirs = Envelope.from_dict(json.loads(json.dumps(envelope)))
    assert list(theirs.verify([SSlibKey.from_crypto(public, keyid=info.keyid)], 1)) == [info.keyid]
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["subject"] == [{"name": "acme-2026-10.pdf", "digest": {"sha256": hashlib.sha256(pdf).hexdigest()}}]
    predicate = statement["predicate"]
    assert predicate["signing"] == {"keyid": info.keyid, "certificate_sha256": info.certificate_sha256}
    assert predicate["version"] == 1
    assert predicate["partial"] is False and predicate["client"]["name"] == "ACME Bâtiment"
    assert {k: v for k, v in predicate.items() if k not in ("signing", "version", "generated_at")} == {
        k: v for k, v in expected.items() if k not in ("version", "generated_at")
    }
    assert issued.public_key.read_text() == info.public_key_pem

    (row,) = _rows(db)
    assert (row.client_id, row.month, row.version, row.language) == ("acme", "2026-10", 1, "fr")
    assert row.pdf_sha256 == hashlib.sha256(pdf).hexdigest() and row.keyid == info.keyid
    assert (row.ledger_head, row.ledger_seq) == (expected["ledger"]["head"], expected["ledger"]["seq"])
    assert row.emailed_at is None and row.email_error == ""
    assert not list(issued.pdf.parent.glob(".staging-*"))

    done = _verify(issued.pdf, issued.public_key)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PDF signature (PAdES): valid" in done.stdout and info.certificate_sha256 in done.stdout
    assert "VALID" in done.stdout


def test_english_attestation_of_a_month_without_any_drill(config: Config, db: Store, october: Month) -> None:
    issued = _issue(config, db, "beta")  # beta's job file says en
    assert issued.language == "en" and issued.restorable == "no"
    words = _first_page(issued.pdf)
    assert "Continuity attestation" in words and "Beta Ltd · October 2026" in words
    assert "No backup was successfully restored in a test this month." in words
    assert words.count("No: no passing drill") == 2
    assert '<html lang="en">' in issued.html.read_text()
    assert _verify(issued.pdf, issued.public_key).returncode == 0


def test_a_later_issue_is_a_new_version_and_never_overwrites(config: Config, db: Store, october: Month) -> None:
    first = _issue(config, db)
    kept = {p: p.read_bytes() for p in (first.pdf, first.statement, first.html)}
    second = _issue(config, db)
    third = _issue(config, db, lang="en")
    assert second.pdf.name == "acme-2026-10.v2.pdf" and second.statement.name == "acme-2026-10.v2.statement.json"
    assert second.html.name == "acme-2026-10.v2.html" and third.pdf.name == "acme-2026-10.v3.pdf"
    assert {p: p.read_bytes() for p in kept} == kept
    assert [r.version for r in _rows(db)] == [1, 2, 3]
    statement = json.loads(base64.b64decode(json.loads(third.statement.read_text())["payload"]))
    assert statement["predicate"]["version"] == 3 and statement["subject"][0]["name"] == "acme-2026-10.v3.pdf"
    for issued in (first, second, third):
        assert _verify(issued.pdf, issued.public_key).returncode == 0
    # the monthly run never issues a second version
    assert issue_attestation(config, db, "acme", "2026-10", first_only=True) is None
    assert len(_rows(db)) == 3


def test_files_left_by_a_crash_are_skipped_not_overwritten(config: Config, db: Store, october: Month) -> None:
    out = config.directory / "attestations" / "acme"
    out.mkdir(parents=True)
    orphan = out / "acme-2026-10.pdf"
    orphan.write_bytes(b"%PDF-1.7 left by a crash before its row was recorded\n")
    issued = _issue(config, db)
    assert issued.version == 2 and issued.pdf.name == "acme-2026-10.v2.pdf"
    assert orphan.read_bytes().startswith(b"%PDF-1.7 left by a crash")


def test_a_version_taken_by_another_issuer_places_no_file(
    config: Config, db: Store, tmp_path: Path, october: Month
) -> None:
    """The claim itself: the other issuer's row wins, ours is rolled back and none of our files is linked."""
    _issue(config, db)
    staged = tmp_path / "staged.pdf"
    staged.write_bytes(b"ours")
    destination = tmp_path / "acme-2026-10.pdf"
    row = Attestation(client_id="acme", month="2026-10", version=1, language="fr", verdict="met", restorable="yes",
                      keyid="k", pdf_path="p", statement_path="s", html_path="h", pdf_sha256="0" * 64,
                      ledger_head="0" * 64, ledger_seq=0)  # fmt: skip
    assert _claim(db, row, {staged: destination}) is None
    assert not destination.exists() and len(_rows(db)) == 1


# --- tampering -----------------------------------------------------------------------------------------------------


@pytest.fixture
def issued(config: Config, db: Store, october: Month) -> Issued:
    return _issue(config, db)


def _signed_range_offset(pdf: bytes) -> int:
    """An offset inside the content the signature covers (the page stream), not in the signature itself."""
    return pdf.index(b"stream\n") + 40


@pytest.mark.parametrize("where", ["content", "signature", "trailer"])
def test_one_byte_changed_in_the_pdf_fails(issued: Issued, where: str) -> None:
    pdf = issued.pdf.read_bytes()
    contents = re.search(rb"/Contents\s*<([0-9a-fA-F]+)>", pdf)
    assert contents is not None
    offset = {
        "content": _signed_range_offset(pdf),
        "signature": contents.start(1) + 200,  # inside the CMS signature's hex
        "trailer": len(pdf) - 30,
    }[where]
    _flip(issued.pdf, offset)
    done = _verify(issued.pdf, issued.public_key)
    assert done.returncode == 1, done.stdout
    assert "INVALID" in done.stderr and "Traceback" not in done.stderr
    # the PAdES check on its own catches a change in what is signed, whatever the statement says
    if where in ("content", "signature"):
        alone = check_pdf_signature(issued.pdf.read_bytes(), issued.certificate_sha256)
        assert not alone.ok


def test_pades_check_alone_refuses_a_changed_page_and_an_appended_update(issued: Issued) -> None:
    pdf = issued.pdf.read_bytes()
    assert check_pdf_signature(pdf, issued.certificate_sha256).ok
    changed = bytearray(pdf)
    changed[_signed_range_offset(pdf)] ^= 0x01
    problems = check_pdf_signature(bytes(changed), issued.certificate_sha256).problems
    assert any("modified after it was signed" in p for p in problems), problems
    problems = check_pdf_signature(_with_an_update(pdf), issued.certificate_sha256).problems
    assert any("entire file" in p for p in problems), problems
    assert "no PAdES signature" in check_pdf_signature(render_pdf(full_month(), "fr", _files()), None).problems[0]


def _with_an_update(pdf: bytes) -> bytes:
    """The signed PDF with an incremental update appended, as a PDF editor would save a change."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    buffer = io.BytesIO(pdf)
    writer = IncrementalPdfFileWriter(buffer)
    writer.root["/PageMode"] = generic.NameObject("/FullScreen")
    writer.update_root()
    writer.write_in_place()
    return buffer.getvalue()


def _files() -> Files:
    return Files("acme-2026-10.pdf", "acme-2026-10.statement.json", "key.pem")


def test_one_byte_changed_in_the_statement_fails(issued: Issued) -> None:
    envelope = json.loads(issued.statement.read_text())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[payload.index(b'"partly"') + 2] ^= 0x01
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    issued.statement.write_text(json.dumps(envelope))
    for document in (issued.pdf, issued.statement):
        done = _verify(document, issued.public_key)
        assert done.returncode == 1 and "bad signature" in done.stderr


def test_a_statement_signed_with_another_key_fails(issued: Issued) -> None:
    envelope = json.loads(issued.statement.read_text())
    other = Ed25519PrivateKey.generate()
    forged = sign_envelope(json.loads(base64.b64decode(envelope["payload"])), other, keyid_of(other))
    issued.statement.write_text(json.dumps(forged))
    done = _verify(issued.pdf, issued.public_key)
    assert done.returncode == 1 and "unknown key" in done.stderr
    forged["signatures"][0]["keyid"] = envelope["signatures"][0]["keyid"]  # and one that claims to be ours
    issued.statement.write_text(json.dumps(forged))
    done = _verify(issued.pdf, issued.public_key)
    assert done.returncode == 1 and "bad signature" in done.stderr


def test_a_pdf_signed_with_another_certificate_fails(config: Config, issued: Issued, tmp_path: Path) -> None:
    """A genuine statement, signed by us, naming a PDF that someone else signed: the certificate pin catches it."""
    init_keys(tmp_path / "other-keys", common_name="Someone Else")
    content = json.loads(base64.b64decode(json.loads(issued.statement.read_text())["payload"]))["predicate"]
    pdf = sign_pdf(render_pdf(content, "fr", _files()), tmp_path / "other-keys")
    issued.pdf.write_bytes(pdf)
    keys = config.path("keys")
    from preuve.reports.keys import load_signing_key

    signing = load_signing_key(keys)
    statement = build_statement(issued.pdf.name, hashlib.sha256(pdf).hexdigest(), content)
    issued.statement.write_text(json.dumps(sign_envelope(statement, signing, keyid_of(signing))))
    done = _verify(issued.pdf, issued.public_key)
    assert done.returncode == 1, done.stdout
    assert "not the provider's certificate" in done.stderr


def test_one_byte_changed_in_the_ledger_export_fails(issued: Issued, db: Store, tmp_path: Path) -> None:
    from preuve.store.ledger import export_month

    export = tmp_path / "acme-2026-10.jsonl"
    export.write_text("".join(line + "\n" for line in export_month(db, "acme", "2026-10")))
    done = _verify(issued.pdf, issued.public_key, "--ledger", str(export))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is intact and ends at the attested head" in done.stdout
    _flip(export, export.read_bytes().index(b"Disque du NAS") + 1)
    done = _verify(issued.pdf, issued.public_key, "--ledger", str(export))
    assert done.returncode == 1 and "INVALID" in done.stderr


def test_the_month_so_far_is_refused_without_partial_and_says_so_with_it(
    config: Config, db: Store, october: Month, tmp_path: Path
) -> None:
    from preuve.store.ledger import add_note, export_month

    for text in ("Disque du NAS remplacé", "Client prévenu"):
        add_note(db, "acme", text, "j.martin")  # recorded now, in the current month
    month = f"{datetime.now(UTC):%Y-%m}"
    refused = _preuve("--config", str(config.directory), "attest", "acme", "--month", month)
    assert refused.returncode == 2 and "has not ended yet" in refused.stderr and "--partial" in refused.stderr
    assert "Traceback" not in refused.stderr and _rows(db) == []

    done = _preuve("--config", str(config.directory), "attest", "acme", "--month", month, "--partial", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    shown = json.loads(done.stdout)
    assert shown["partial"] is True and shown["version"] == 1
    words = _first_page(Path(shown["pdf"]))
    assert "(mois en cours)" in words and "Mois en cours : cette attestation ne couvre que le début du mois" in words
    (row,) = _rows(db)
    assert row.partial is True
    export = tmp_path / "export.jsonl"
    export.write_text("".join(line + "\n" for line in export_month(db, "acme", month)))
    verified = _verify(Path(shown["pdf"]), Path(shown["public_key"]), "--ledger", str(export))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # the monthly run still issues the complete month: a partial version does not count as the month's attestation
    assert issue_attestation(config, db, "acme", "2026-10", first_only=True) is not None


# --- keys ----------------------------------------------------------------------------------------------------------


def test_after_a_key_rotation_an_older_attestation_still_verifies(config: Config, db: Store, october: Month) -> None:
    old = _issue(config, db)
    retired, info = rotate_keys(config.path("keys"))
    assert retired == old.keyid != info.keyid
    new = _issue(config, db)
    assert new.keyid == info.keyid and new.certificate_sha256 != old.certificate_sha256
    assert new.public_key != old.public_key and old.public_key.is_file()
    for issued in (old, new):
        done = _preuve("--config", str(config.directory), "verify", str(issued.pdf))  # the published keys
        assert done.returncode == 0, done.stdout + done.stderr
        assert _verify(issued.pdf, issued.public_key).returncode == 0  # the key handed out with it
    alone = _verify(old.pdf, new.public_key)
    assert alone.returncode == 1 and "unknown key" in alone.stderr


# --- the command ---------------------------------------------------------------------------------------------------


def test_attest_command_json_default_folder_and_language(config: Config, db: Store, october: Month) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["--config", str(config.directory), "attest", "acme", "--month", "2026-10", "--json"])
    assert done.exit_code == 0, done.output
    shown = json.loads(done.stdout)
    assert {"pdf", "statement", "html", "keyid", "verdict"} <= set(shown)
    assert shown["pdf"] == str(config.directory / "attestations" / "acme" / "acme-2026-10.pdf")
    assert shown["verdict"] == build_predicate(config, db, "acme", "2026-10")["headline"]["plan"]
    assert shown["keyid"] == key_info(config.path("keys")).keyid
    assert shown["language"] == "fr" and shown["partial"] is False  # from jobs/acme.yaml

    elsewhere = config.directory.parent / "handed-over"
    done = runner.invoke(
        app, ["--config", str(config.directory), "attest", "beta", "--month", "2026-10", "--out", str(elsewhere)]
    )
    assert done.exit_code == 0, done.output
    assert (elsewhere / "beta-2026-10.pdf").is_file()
    assert '<html lang="en">' in (elsewhere / "beta-2026-10.html").read_text()  # beta's job file says en
    assert "preuve verify" in done.stdout and "restorable no" in done.stdout

    for args, message in (
        (["attest", "acme", "--month", "2026-13"], "is not a month"),
        (["attest", "nobody", "--month", "2026-10"], "unknown client 'nobody'"),
        (["attest", "acme", "--month", "2026-10", "--lang", "de"], "fr or en"),
        (["attest", "acme", "--month", "2999-01", "--partial"], "has not begun yet"),
    ):
        done = runner.invoke(app, ["--config", str(config.directory), *args])
        assert done.exit_code == 2 and message in done.output, done.output
    assert len(_rows(db)) == 2


def test_keys_show_json_names_the_files(config: Config) -> None:
    done = _preuve("--config", str(config.directory), "keys", "show", "--json")
    shown = json.loads(done.stdout)
    assert Path(shown["public_key_file"]).is_file() and Path(shown["certificate_file"]).is_file()
    assert len(shown["keyid"]) == 64


# --- two issuers -----------------------------------------------------------------------------------------------------

_ISSUER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from preuve.config.loader import load_config
    from preuve.reports.issue import issue_attestation
    from preuve.store.db import Store

    config = load_config(Path(sys.argv[1]))
    store = Store.open(config.database_url)
    sys.stdin.readline()  # start together
    issued = issue_attestation(config, store, "acme", "2026-10", first_only=True)
    print(json.dumps(None if issued is None else issued.version))
    """
)


def test_two_monthly_issuers_at_once_record_one_first_version(store_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path / "conf", store_url)
    Store.open(store_url).close()  # migrated before the race: both issuers then only insert
    issuers = [
        subprocess.Popen(
            [sys.executable, "-c", _ISSUER, str(config.directory)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for issuer in issuers:
        assert issuer.stdin is not None
        issuer.stdin.write("go\n")
        issuer.stdin.flush()
    results = []
    for issuer in issuers:
        out, err = issuer.communicate(timeout=180)
        assert issuer.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(results, key=str) == [1, None]
    with Store.open(store_url) as store:
        assert [(r.client_id, r.version) for r in _rows(store)] == [("acme", 1)]
    out = config.directory / "attestations" / "acme"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("preuve-key-")) == [
        "acme-2026-10.html",
        "acme-2026-10.pdf",
        "acme-2026-10.statement.json",
    ]
    assert _verify(out / "acme-2026-10.pdf", next(out.glob("preuve-key-*.pem"))).returncode == 0
    shutil.rmtree(out)
