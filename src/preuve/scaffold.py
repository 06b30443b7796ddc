"""`preuve init`: a new configuration folder with commented starting points."""

from __future__ import annotations

from pathlib import Path

PREUVE_TOML = """\
# Preuve settings. Every key is optional; relative paths are relative to this folder.
database = "sqlite:///preuve.db"      # or postgresql+psycopg://preuve@dbhost/preuve
sandbox = "sandbox"                   # where drills restore; needs room for a sample (default budget 2 GiB)
keys = "keys"                         # signing keys for attestations
restic = "restic"                     # the restic binary

[drill]
confidence = 0.99                     # with this probability a sample catches...
defect_rate = 0.01                    # ...a backup in which at least this share of files is broken
max_sample_bytes = "2GiB"             # byte budget of a sampled drill
open_timeout = "120s"                 # deadline to open a repository; restores get more in proportion to size
min_throughput = "2MiB"               # per second: a restore slower than this is stopped as timed out
entropy_threshold = 7.8               # bits/byte above which a text-like file looks encrypted
max_suspicious_files = 0              # more suspicious files than this fails the drill
"""

EXAMPLE_JOB = """\
# One file per client; its name (here: example) is the client id used in commands: example/usb.
client: Example SARL
language: fr                          # fr | en: the language of the client's attestations
contacts: [direction@example.fr]
policy: standard                      # a file in policies/, or a built-in: standard, health-data
targets:
  usb:
    kind: local                       # local | sftp | s3 | rest
    path: /mnt/usb/restic/example     # the restic repository
    password_file: secrets/example.pass   # mode 0600; never put the password itself here
    location: onsite                  # onsite | offsite
    media: disk                       # disk | nas | object-storage | tape | other
    # source: /srv/data               # optional: live data to compare restored files with
    # canaries:                       # optional: files with known content, always checked
    #   - {path: /srv/data/.preuve-canary, sha256: "..."}
schedule:
  drill: "0 2 * * *"
"""


def scaffold(directory: Path) -> list[Path]:
    directory = directory.resolve()
    toml = directory / "preuve.toml"
    if toml.exists():
        raise FileExistsError(f"{toml} already exists; nothing was changed")
    created: list[Path] = []
    for sub, mode in (("", 0o750), ("jobs", 0o750), ("policies", 0o750), ("secrets", 0o700), ("keys", 0o700)):
        folder = directory / sub
        if not folder.exists():
            folder.mkdir(parents=True, mode=mode)
            created.append(folder)
    toml.write_text(PREUVE_TOML, encoding="utf-8")
    created.append(toml)
    example = directory / "jobs" / "example.yaml.sample"
    example.write_text(EXAMPLE_JOB, encoding="utf-8")
    created.append(example)
    return created
