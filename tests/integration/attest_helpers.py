"""A configuration folder for attestation tests: two clients, keys, optionally an SMTP server."""

from __future__ import annotations

from pathlib import Path

from preuve.config.loader import Config, load_config
from preuve.reports.keys import init_keys

JOB = """\
client: {name}
language: {language}
contacts: [{contacts}]
targets:
  nas:
    kind: local
    path: /srv/restic/{client}/nas
    password_file: secrets/{client}.pass
    location: onsite
    media: nas
  offsite:
    kind: local
    path: /srv/restic/{client}/offsite
    password_file: secrets/{client}.pass
    location: offsite
    media: object-storage
"""


def write_config(folder: Path, database: str, *, smtp_port: int | None = None) -> Config:
    """A configuration folder with two clients (acme in French, beta in English, without contacts) and keys."""
    (folder / "jobs").mkdir(parents=True, exist_ok=True)
    smtp = (
        f'\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nfrom = "Preuve <preuve@provider.example>"\ntimeout = "5s"\n'
    )
    (folder / "preuve.toml").write_text(f'database = "{database}"\n' + (smtp if smtp_port else ""))
    (folder / "jobs" / "acme.yaml").write_text(
        JOB.format(client="acme", name="ACME Bâtiment", language="fr", contacts="direction@acme.example")
    )
    (folder / "jobs" / "beta.yaml").write_text(JOB.format(client="beta", name="Beta Ltd", language="en", contacts=""))
    if not (folder / "keys").exists():
        init_keys(folder / "keys", common_name="Infogérance Test SARL")
    return load_config(folder)
