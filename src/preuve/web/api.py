"""The JSON API under /api: the console's operations for scripts (``Authorization: Bearer TOKEN``) and pages.

Routes keep their meaning across versions (see the issue that introduced them). A client user gets only their own
client, in plain words, and no drill, log or other client: provider routes answer 403 whatever the id, and another
client's objects answer 404 exactly like missing ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from preuve import redact
from preuve.drills.result import DrillStatus
from preuve.store.records import DrillDetail, DrillSummary, list_drills
from preuve.web import attestations as att
from preuve.web.actions import acknowledge, drill_or_404, queue_drill
from preuve.web.auth import ApiProvider, ApiUser, ctx, visible_client
from preuve.web.data import acknowledgements
from preuve.web.status import ClientStatus, Overview, TargetStatus
from preuve.web.users import User

router = APIRouter(prefix="/api", tags=["api"])


class DrillRequest(BaseModel):
    target: str = Field(description='"client/target"', examples=["acme/nas"])
    kind: Literal["sample", "full", "integrity"] = "sample"


class DrillQueued(BaseModel):
    id: int


class AckRequest(BaseModel):
    note: str = Field(min_length=1, max_length=4000)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def target_json(target: TargetStatus, now: datetime, *, provider: bool) -> dict[str, Any]:
    age = target.snapshot_age(now)
    data: dict[str, Any] = {
        "ref": target.ref,
        "name": target.name,
        "light": target.light.value,
        "last_drill": (
            {"status": target.last_drill.status, "finished_at": _iso(target.last_drill.finished_at)}
            if target.last_drill
            else None
        ),
        "newest_snapshot": _iso(target.newest_snapshot),
        "newest_snapshot_age_s": age.total_seconds() if age is not None else None,
        "rpo_s": target.rpo.total_seconds(),
        "reasons": [r.text if provider else r.plain for r in target.reasons],
    }
    if provider:
        data.update(
            kind=target.kind,
            location=target.location,
            media=target.media,
            last_integrity=(
                {"status": target.last_integrity.status, "finished_at": _iso(target.last_integrity.finished_at)}
                if target.last_integrity
                else None
            ),
            integrity_coverage=target.coverage,
            verdicts=target.verdicts,
        )
    return data


def client_json(client: ClientStatus, now: datetime, *, provider: bool, with_targets: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": client.id,
        "name": client.name,
        "light": client.light.value,
        "summary": client.light.words,
        "reasons": [
            (f"{name}: " if name else "") + (r.text if provider else r.plain)
            for name, r in client.all_reasons
            if r.light.rank > 0
        ],
    }
    if provider:
        data["verdicts"] = client.verdicts
    if with_targets:
        data["targets"] = [target_json(t, now, provider=provider) for t in client.targets]
    return data


def drill_json(d: DrillSummary) -> dict[str, Any]:
    return {
        "id": d.id,
        "target": d.target,
        "client": d.client,
        "kind": d.kind.value,
        "status": d.status.value,
        "failure_class": d.failure_class.value if d.failure_class else None,
        "message": redact.mask(d.message),
        "requested_by": d.requested_by,
        "requested_at": _iso(d.requested_at),
        "started_at": _iso(d.started_at),
        "finished_at": _iso(d.finished_at),
        "snapshot_id": d.snapshot_id,
        "snapshot_time": _iso(d.snapshot_time),
        "files_checked": d.files_checked,
        "bytes_restored": d.bytes_restored,
        "duration_s": d.duration_s,
    }


def drill_detail_json(d: DrillDetail) -> dict[str, Any]:
    return {
        **drill_json(d),
        "repository": d.repository,
        "files_in_snapshot": d.files_in_snapshot,
        "bytes_in_snapshot": d.bytes_in_snapshot,
        "files_changed_since_snapshot": d.files_changed_since_snapshot,
        "restore_s": d.restore_s,
        "estimated_full_restore_s": d.estimated_full_restore_s,
        "canaries_checked": d.canaries_checked,
        "subset": d.subset,
        "restic_version": d.restic_version,
        "host": d.host,
        "findings": [
            {"path": redact.mask(f.path), "failure_class": f.failure_class.value, "detail": redact.mask(f.detail)}
            for f in d.findings
        ],
    }


def log_json(d: DrillDetail) -> dict[str, Any]:
    return {
        "id": d.id,
        "status": d.status.value,
        "final": d.status.final,
        "commands": [
            {
                "argv": [redact.mask(arg) for arg in c.argv],
                "started_at": _iso(c.started_at),
                "duration_s": c.duration_s,
                "exit_code": c.exit_code,
                "timed_out": c.timed_out,
                "running": c.running,
                "note": redact.mask(c.note),
                "stdout": redact.mask(c.stdout),
                "stderr": redact.mask(c.stderr),
            }
            for c in d.commands
        ],
    }


def attestation_json(a: att.AttestationInfo, verification: att.Verification) -> dict[str, Any]:
    return {
        "id": a.id,
        "client": a.client,
        "month": a.month,
        "version": a.version,
        "language": a.language,
        "verdict": a.verdict,
        "restorable": a.restorable,
        "keyid": a.keyid,
        "pdf_sha256": a.pdf_sha256,
        "created_at": _iso(a.created_at),
        "verified": verification.ok,
        "verification": verification.text,
        "pdf": f"/api/attestations/{a.id}/pdf",
    }


def _overview(request: Request) -> Overview:
    context = ctx(request)
    return context.board.overview(context.config())


def _client_status(request: Request, user: User, client: str) -> ClientStatus:
    visible_client(user, client)
    found = _overview(request).client(client)
    if found is None:
        raise HTTPException(404, f"no client {client!r}")
    return found


@router.get("/clients", summary="The clients the caller may see, each with its traffic light")
def get_clients(request: Request, user: ApiUser) -> list[dict[str, Any]]:
    overview = _overview(request)
    return [
        client_json(c, overview.at, provider=user.is_provider, with_targets=False)
        for c in overview.clients
        if user.may_see(c.id)
    ]


@router.get("/clients/{client}", summary="One client's status, with its targets")
def get_client(request: Request, user: ApiUser, client: str) -> dict[str, Any]:
    found = _client_status(request, user, client)
    return client_json(found, _overview(request).at, provider=user.is_provider, with_targets=True)


@router.get("/clients/{client}/targets", summary="A client's targets, each with its traffic light")
def get_client_targets(request: Request, user: ApiUser, client: str) -> list[dict[str, Any]]:
    found = _client_status(request, user, client)
    now = _overview(request).at
    return [target_json(t, now, provider=user.is_provider) for t in found.targets]


@router.get("/drills", summary="Drills, newest first (provider only)")
def get_drills(
    request: Request,
    user: ApiProvider,
    client: str | None = None,
    target: str | None = None,
    status: DrillStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    drills = list_drills(ctx(request).store, client=client, target=target, status=status, limit=limit)
    return [drill_json(d) for d in drills]


@router.post("/drills", status_code=202, summary="Queue a drill for the daemon (provider only)")
def post_drill(request: Request, user: ApiProvider, body: DrillRequest) -> DrillQueued:
    return DrillQueued(id=queue_drill(ctx(request), user, body.target, body.kind))


@router.get("/drills/{drill_id}", summary="One drill with its findings (provider only)")
def get_drill_api(request: Request, user: ApiProvider, drill_id: int) -> dict[str, Any]:
    context = ctx(request)
    detail = drill_or_404(context, drill_id)
    data = drill_detail_json(detail)
    data["acknowledgements"] = [
        {"text": a.text, "by": a.by, "at": _iso(a.at), "ledger_seq": a.seq}
        for a in acknowledgements(context.store, detail.client, detail.id)
    ]
    return data


@router.get("/drills/{drill_id}/log", summary="A drill's restore log: every command and its output (provider only)")
def get_drill_log(request: Request, user: ApiProvider, drill_id: int) -> dict[str, Any]:
    return log_json(drill_or_404(ctx(request), drill_id))


@router.post("/drills/{drill_id}/ack", status_code=201, summary="Acknowledge a failed drill with a note (ledger)")
def post_ack(request: Request, user: ApiProvider, drill_id: int, body: AckRequest) -> dict[str, Any]:
    context = ctx(request)
    entry = acknowledge(context, user, drill_or_404(context, drill_id), body.note)
    return {"drill": drill_id, "ledger_seq": entry.seq, "entry_hash": entry.entry_hash}


@router.get("/attestations", summary="Issued attestations, newest month first (a client user: their own)")
def get_attestations(request: Request, user: ApiUser, client: str | None = None) -> list[dict[str, Any]]:
    context = ctx(request)
    if client is not None:
        visible_client(user, client)
    elif not user.is_provider:
        client = user.client
    base = context.config().directory
    verifier: att.Verifier = request.app.state.verifier
    keys_dir = context.keys_dir()
    return [
        attestation_json(a, verifier.verify(a, keys_dir))
        for a in att.list_attestations(context.store, base, client=client)
    ]


def attestation_or_404(request: Request, user: User, attestation_id: int) -> att.AttestationInfo:
    context = ctx(request)
    found = att.get_attestation(context.store, context.config().directory, attestation_id)
    if found is None or not user.may_see(found.client):
        raise HTTPException(404, f"no attestation {attestation_id}")
    return found


@router.get("/attestations/{attestation_id}/pdf", summary="Download an attestation's PDF")
def get_attestation_pdf(request: Request, user: ApiUser, attestation_id: int) -> FileResponse:
    return pdf_response(attestation_or_404(request, user, attestation_id))


def pdf_response(found: att.AttestationInfo) -> FileResponse:
    if not found.pdf_path.is_file():
        raise HTTPException(404, f"the PDF of attestation {found.id} is missing on the server ({found.pdf_path.name})")
    return FileResponse(found.pdf_path, media_type="application/pdf", filename=found.pdf_path.name)


def statement_response(found: att.AttestationInfo) -> FileResponse:
    if not found.statement_path.is_file():
        raise HTTPException(404, f"the statement of attestation {found.id} is missing on the server")
    return FileResponse(found.statement_path, media_type="application/json", filename=found.statement_path.name)
