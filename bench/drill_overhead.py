"""How much a full drill costs over what a technician would do by hand.

Builds a deterministic dataset (default 3094 files, 304 MiB, as in RESTIC.md section 6: mostly random bytes so
that restic really encrypts, chunks and decrypts), backs it up to a local restic repository, writes a Preuve
configuration folder with two local targets on that repository (``bench/data`` with ``source:`` pointing at the
dataset, so the drill hashes every live file too, and ``bench/nosource`` without), then times, alternating the
order from round to round:

* baseline: ``restic restore latest --target T`` with a fresh ``--cache-dir``, then
  ``find T -type f -print0 | xargs -0 sha256sum > /dev/null`` (rm -rf T is timed apart);
* ``preuve --config DIR drill run bench/data --full --json`` as a subprocess (Python start-up included);
* the same for ``bench/nosource``.

It prints medians, min/max, the ratio drill/baseline and, from ``drill show ID --json --log``, where the drill's
time goes. Not a test: run it as ``.venv/bin/python bench/drill_overhead.py [--rounds 3] [--keep]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESTIC = shutil.which("restic") or "/usr/bin/restic"
MIB = 1024 * 1024
FIXED_MTIME = 1_705_312_800  # 2024-01-15 10:00 UTC: every file and folder, so the dataset is byte- and stat-identical
READY = ".bench-ready"

WORDS = (
    "facture", "client", "devis", "contrat", "livraison", "chantier", "patient", "rendez-vous", "ordonnance",
    "compte", "rapport", "annuel", "budget", "projet", "réunion", "équipe", "planning", "stock", "commande",
    "fournisseur", "paiement", "relance", "dossier", "archive", "the", "invoice", "customer", "quote", "delivery",
    "site", "report", "meeting", "schedule", "order", "supplier", "payment", "reminder", "2024", "total", "TVA",
)  # fmt: skip


# --------------------------------------------------------------------------------------------------- dataset


def _loguniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


# (share of files, kind, min size, max size); mean file about 115 KB before scaling to --size-mb
MIX: tuple[tuple[float, str, int, int], ...] = (
    (0.50, "text", 200, 32 * 1024),
    (0.10, "pdf", 8 * 1024, 256 * 1024),
    (0.10, "docx", 8 * 1024, 256 * 1024),
    (0.20, "jpg", 32 * 1024, 1024 * 1024),
    (0.095, "bin", 512, 256 * 1024),
    (0.005, "mp4", 2 * MIB, 16 * MIB),
)
TEXT_EXTENSIONS = ("txt", "csv", "md", "log")
HEADERS = {
    "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
    "docx": b"PK\x03\x04\x14\x00\x06\x00",
    "jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    "mp4": b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00",
    "bin": b"",
}


def _text(rng: random.Random, size: int) -> bytes:
    words = " ".join(rng.choices(WORDS, k=size // 6 + 8)).encode()
    data = words[:size]
    return data.decode("utf-8", errors="ignore").encode().ljust(size, b"\n")


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


@dataclass
class Dataset:
    root: Path
    files: int = 0
    bytes: int = 0
    canary: str = ""
    canary_sha256: str = ""
    kinds: dict[str, int] = field(default_factory=dict)


def make_dataset(root: Path, *, files: int, size: int, seed: int = 20240115) -> Dataset:
    """``files`` regular files (one SQLite database and the canary among them) of ``size`` bytes in all."""
    rng = random.Random(seed)
    tops = [
        f"{name}-{i:02d}" for i, name in enumerate(("Compta", "Clients", "Chantiers", "Photos", "RH", "Admin", "Devis"))
    ]
    tops += [f"Projet-{i:02d}" for i in range(7)]
    folders = [f"{top}/{sub}" for top in tops for sub in ("2021", "2022", "2023", "2024", "archives", "divers")]
    for folder in folders:
        (root / folder).mkdir(parents=True, exist_ok=True)
    plan: list[tuple[str, int]] = []
    for _ in range(max(0, files - 2)):
        u = rng.random()
        acc = 0.0
        kind, low, high = MIX[-1][1:]
        for share, k, lo, hi in MIX:
            acc += share
            if u < acc:
                kind, low, high = k, lo, hi
                break
        plan.append((kind, int(_loguniform(rng, low, high))))
    # scale the binary files so that the total is exactly ``size`` (text stays text-sized)
    db_size = min(2 * MIB, max(64 * 1024, size // 150))
    text_total = sum(s for k, s in plan if k == "text")
    binary_total = sum(s for k, s in plan if k != "text") or 1
    factor = max(0.01, (size - text_total - db_size - 64) / binary_total)
    scaled = [(k, s if k == "text" else max(len(HEADERS[k]) + 16, int(s * factor))) for k, s in plan]
    if scaled:
        excess = sum(s for _, s in scaled) + db_size + 64 - size
        biggest = max(range(len(scaled)), key=lambda i: scaled[i][1])
        k, s = scaled[biggest]
        scaled[biggest] = (k, max(len(HEADERS.get(k, b"")) + 16, s - excess))
    ds = Dataset(root)
    for index, (kind, n) in enumerate(scaled):
        folder = root / folders[rng.randrange(len(folders))]
        if kind == "text":
            ext = TEXT_EXTENSIONS[index % len(TEXT_EXTENSIONS)]
            data = b"" if index % 997 == 13 else _text(rng, n)
        else:
            ext = kind
            header = HEADERS[kind]
            data = header + rng.randbytes(n - len(header))
        _write(folder / f"{kind}-{index:05d}.{ext}", data)
        ds.files += 1
        ds.bytes += len(data)
        ds.kinds[kind] = ds.kinds.get(kind, 0) + 1
    database = root / "Admin-05" / "agenda.sqlite"
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA page_size = 4096")
        db.execute("CREATE TABLE rdv (id INTEGER PRIMARY KEY, who TEXT, at TEXT, note TEXT)")
        db.execute("CREATE INDEX rdv_at ON rdv (at)")
        row = 0
        while database.stat().st_size < db_size:
            db.executemany(
                "INSERT INTO rdv (who, at, note) VALUES (?, ?, ?)",
                [
                    (rng.choice(WORDS), f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", _text(rng, 120).decode())
                    for i in range(500)
                ],
            )
            db.commit()
            row += 500
    db.close()
    ds.files += 1
    ds.bytes += database.stat().st_size
    canary = root / ".preuve-canary"
    content = f"Preuve canary {hashlib.sha256(str(seed).encode()).hexdigest()[:32]}\n".encode()
    _write(canary, content)
    ds.files += 1
    ds.bytes += len(content)
    ds.canary = str(canary)
    ds.canary_sha256 = hashlib.sha256(content).hexdigest()
    for i, target in enumerate(("Compta-00/2024", "Photos-03/2023", "Admin-05/agenda.sqlite")):
        link = root / f"raccourci-{i}"
        link.symlink_to(target)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            os.utime(os.path.join(dirpath, name), (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)
    os.utime(root, (FIXED_MTIME, FIXED_MTIME))
    return ds


# --------------------------------------------------------------------------------------------------- helpers


def restic_env(repo: Path, password_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
    env.update(RESTIC_REPOSITORY=str(repo), RESTIC_PASSWORD_FILE=str(password_file))
    return env


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, what: str, timeout: float = 3600) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        sys.exit(
            f"{what} failed (exit {done.returncode}):\n$ {' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


@dataclass
class Measured:
    wall_s: float
    cpu_s: float  # user + system of the process and every child it waited for (restic, sha256sum...)
    code: int
    stdout: str
    stderr: str


def measured(argv: Sequence[str], *, env: dict[str, str] | None = None, what: str, check: bool = True) -> Measured:
    """Run argv; wall time and CPU time from ``wait4`` (which counts the children the process waited for)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if check and code != 0:
        sys.exit(f"{what} failed (exit {code}):\n$ {' '.join(argv)}\n{stdout[-2000:]}\n{stderr[-4000:]}")
    return Measured(wall, usage.ru_utime + usage.ru_stime, code, stdout, stderr)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def preuve_binary(explicit: str | None) -> str:
    if explicit:
        return explicit
    for candidate in (ROOT / ".venv" / "bin" / "preuve", Path(sys.executable).parent / "preuve"):
        if candidate.exists():
            return str(candidate)
    sys.exit("cannot find the preuve command: pass --preuve PATH")


def write_config(config: Path, *, repo: Path, password_file: Path, sandbox: Path, ds: Dataset) -> None:
    (config / "jobs").mkdir(parents=True, exist_ok=True)
    (config / "preuve.toml").write_text(f'database = "sqlite:///preuve.db"\nsandbox = "{sandbox}"\n', encoding="utf-8")
    canary = f'      - {{path: "{ds.canary}", sha256: "{ds.canary_sha256}"}}\n'
    common = f"    kind: local\n    path: {repo}\n    password_file: {password_file}\n    location: onsite\n    media: disk\n"
    (config / "jobs" / "bench.yaml").write_text(
        "client: Bench\nlanguage: en\ncontacts: [bench@example.org]\npolicy: standard\ntargets:\n"
        f"  data:\n{common}    source: {ds.root}\n    canaries:\n{canary}"
        f"  nosource:\n{common}    canaries:\n{canary}",
        encoding="utf-8",
    )


def fmt(seconds: float) -> str:
    return f"{seconds:6.2f}"


# --------------------------------------------------------------------------------------------------- measurements


@dataclass
class BaselineRun:
    restore_s: float
    sha_s: float
    rm_s: float
    cpu_s: float  # restore + sha256sum

    @property
    def total_s(self) -> float:
        return self.restore_s + self.sha_s


@dataclass
class DrillRun:
    wall_s: float
    cpu_s: float  # the Python process and its restic children
    drill_id: int
    duration_s: float
    restore_s: float
    commands: dict[str, float]  # restic sub-command -> seconds
    first_command_at: float  # seconds from the drill's own start (started_at) to restic's first call
    restore_at: float  # seconds from the drill's own start to the start of `restic restore`
    restore_end: float  # ... to its end
    status: str


def baseline_once(work: Path, env: dict[str, str]) -> BaselineRun:
    target = work / "baseline-restore"
    cache = work / "baseline-cache"
    for path in (target, cache):
        shutil.rmtree(path, ignore_errors=True)
    os.sync()  # no write-back of an earlier round lands in this one
    restore = measured(
        [RESTIC, "--cache-dir", str(cache), "restore", "latest", "--target", str(target)],
        env=env,
        what="restic restore",
    )
    sha = measured(
        ["bash", "-c", 'find "$1" -type f -print0 | xargs -0 sha256sum > /dev/null', "bash", str(target)],
        what="sha256sum",
    )
    rm_s, _ = timed(lambda: subprocess.run(["rm", "-rf", str(target), str(cache)], check=True))
    return BaselineRun(restore.wall_s, sha.wall_s, rm_s, restore.cpu_s + sha.cpu_s)


def _command_name(argv: Sequence[str]) -> str:
    for word in argv[1:]:
        if word in ("version", "snapshots", "ls", "restore", "check", "cat", "stats"):
            return word
    return argv[1] if len(argv) > 1 else "?"


def drill_once(preuve: str, config: Path, ref: str, env: dict[str, str]) -> DrillRun:
    os.sync()
    done = measured(
        [preuve, "--config", str(config), "drill", "run", ref, "--full", "--json"], env=env, what="drill", check=False
    )
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError:
        sys.exit(f"drill printed no JSON (exit {done.code}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    if result.get("status") != "passed":
        sys.exit(f"drill {ref} did not pass: {json.dumps(result, indent=1)[:4000]}")
    detail = json.loads(
        run(
            [preuve, "--config", str(config), "drill", "show", str(result["drill_id"]), "--json", "--log"],
            env=env,
            what="drill show",
        )
    )
    commands: dict[str, float] = {}
    started = datetime.fromisoformat(detail["started_at"]) if detail.get("started_at") else None
    first_at = restore_at = restore_end = 0.0
    for command in detail.get("commands", []):
        name = _command_name(command["argv"])
        commands[name] = commands.get(name, 0.0) + float(command["duration_s"] or 0)
        if started is None or not command.get("started_at"):
            continue
        offset = (datetime.fromisoformat(command["started_at"]) - started).total_seconds()
        first_at = offset if not first_at else min(first_at, offset)
        if name == "restore" and not restore_at:
            restore_at = offset
            restore_end = offset + float(command["duration_s"] or 0)
    return DrillRun(
        wall_s=done.wall_s,
        cpu_s=done.cpu_s,
        drill_id=int(result["drill_id"]),
        duration_s=float(detail.get("duration_s") or result.get("duration_s") or 0),
        restore_s=float(detail.get("restore_s") or 0),
        commands=commands,
        first_command_at=first_at,
        restore_at=restore_at,
        restore_end=restore_end,
        status=result["status"],
    )


def overlap_probe(work: Path, env: dict[str, str]) -> tuple[float, float]:
    """`snapshots` then `ls`, as a drill runs them, against both at once (fresh caches): what overlapping saves."""
    caches = [work / "probe-cache-1", work / "probe-cache-2"]
    for cache in caches:
        shutil.rmtree(cache, ignore_errors=True)
    snapshots = [RESTIC, "--cache-dir", str(caches[0]), "snapshots", "--json"]
    listing = [RESTIC, "--cache-dir", str(caches[0]), "ls", "--json", "latest"]
    serial, _ = timed(lambda: (run(snapshots, env=env, what="snapshots"), run(listing, env=env, what="ls")))
    shutil.rmtree(caches[0], ignore_errors=True)
    start = time.perf_counter()
    children = [
        subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for argv in (snapshots, listing)
    ]
    for child in children:
        child.wait()
    both = time.perf_counter() - start
    for cache in caches:
        shutil.rmtree(cache, ignore_errors=True)
    return serial, both


def stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


# --------------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=float, default=304, help="dataset size in MiB (default 304)")
    parser.add_argument("--files", type=int, default=3094, help="regular files in the dataset (default 3094)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    parser.add_argument("--workdir", type=Path, help="where to build everything (default: a new temp folder)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the workdir (a later run with the same --workdir reuses it)"
    )
    parser.add_argument("--preuve", help="the preuve command (default: .venv/bin/preuve)")
    parser.add_argument(
        "--preuve-b",
        help="a second preuve command to compare (A/B), e.g. a wrapper running an older tree with PYTHONPATH; "
        "adds the variants source-b and nosource-b",
    )
    parser.add_argument("--variants", default="baseline,source,nosource", help="comma-separated subset to time")
    args = parser.parse_args()
    preuve = preuve_binary(args.preuve)
    size = int(args.size_mb * MIB)

    created = args.workdir is None or not args.workdir.exists()
    work = Path(tempfile.mkdtemp(prefix="preuve-bench-")) if args.workdir is None else args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, preuve, size, work)
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            _remove(work if created else None, work)


def _remove(whole: Path | None, work: Path) -> None:
    if whole is not None:
        shutil.rmtree(whole, ignore_errors=True)
        return
    for name in (
        "data",
        "repo",
        "config",
        "sandbox",
        "secrets",
        "baseline-restore",
        "baseline-cache",
        "probe-cache-1",
        "probe-cache-2",
        READY,
    ):
        path = work / name
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()


def _bench(args: argparse.Namespace, preuve: str, size: int, work: Path) -> int:
    data, repo, config, sandbox = work / "data", work / "repo", work / "config", work / "sandbox"
    password_file = work / "secrets" / "restic.pass"
    ready = work / READY
    key = f"{args.files}:{size}:v1"
    env = restic_env(repo, password_file)
    if ready.exists() and ready.read_text() == key:
        ds = Dataset(data, canary=str(data / ".preuve-canary"))
        ds.canary_sha256 = hashlib.sha256(Path(ds.canary).read_bytes()).hexdigest()
        print(f"reusing the dataset and repository in {work}")
    else:
        _remove(None, work)
        print(f"building {args.files} files, {size / MIB:.1f} MiB in {data} ...", flush=True)
        build_s, ds = timed(lambda: make_dataset(data, files=args.files, size=size))
        print(f"  {ds.files} files, {ds.bytes:,} bytes ({ds.bytes / MIB:.1f} MiB), kinds {ds.kinds}: {build_s:.1f} s")
        password_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        password_file.write_text("preuve-bench-password\n", encoding="utf-8")
        password_file.chmod(0o600)
        backup_s, _ = timed(
            lambda: (
                run([RESTIC, "--no-cache", "init"], env=env, what="restic init"),
                run([RESTIC, "--no-cache", "backup", "--host", "bench", str(data)], env=env, what="restic backup"),
            )
        )
        print(f"  restic init + backup: {backup_s:.1f} s")
        ready.write_text(key)
    write_config(config, repo=repo, password_file=password_file, sandbox=sandbox, ds=ds)
    stats_out = json.loads(run([RESTIC, "--no-cache", "stats", "--json", "latest"], env=env, what="restic stats"))
    repo_bytes = sum(f.stat().st_size for f in (repo / "data").rglob("*") if f.is_file())
    print(
        f"snapshot: {stats_out.get('total_file_count')} nodes, {stats_out.get('total_size', 0) / MIB:.1f} MiB; "
        f"repository packs {repo_bytes / MIB:.1f} MiB; restic {run([RESTIC, 'version'], what='restic version').split()[1]}; "
        f"{os.cpu_count()} CPUs"
    )

    drill_env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_", "PREUVE_"))}
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    commands = {"source": (preuve, config, "bench/data"), "nosource": (preuve, config, "bench/nosource")}
    if args.preuve_b:
        # its own configuration folder and database: two versions of Preuve may not share a schema
        config_b = work / "config-b"
        write_config(config_b, repo=repo, password_file=password_file, sandbox=sandbox, ds=ds)
        commands["source-b"] = (args.preuve_b, config_b, "bench/data")
        commands["nosource-b"] = (args.preuve_b, config_b, "bench/nosource")
        variants += [v + "-b" for v in variants if v in ("source", "nosource")]
    baselines: list[BaselineRun] = []
    drills: dict[str, list[DrillRun]] = {v: [] for v in variants if v in commands}

    def one(variant: str) -> str:
        if variant == "baseline":
            b = baseline_once(work, env)
            baselines.append(b)
            return f"baseline {b.total_s:.2f} s (restore {b.restore_s:.2f} + sha256sum {b.sha_s:.2f}; rm {b.rm_s:.2f})"
        command, folder, ref = commands[variant]
        d = drill_once(command, folder, ref, drill_env)
        drills[variant].append(d)
        return f"drill {variant} {d.wall_s:.2f} s (in-process {d.duration_s:.2f}, restore {d.restore_s:.2f})"

    print(f"load average before: {_load()}")
    for i in range(args.warmup):
        for variant in variants:
            print(f"warm-up {i + 1}: {one(variant)}", flush=True)
    baselines.clear()
    for runs in drills.values():
        runs.clear()
    for r in range(args.rounds):
        order = variants[r % len(variants) :] + variants[: r % len(variants)]  # rotate: nobody always goes first
        for variant in order:
            print(f"round {r + 1}: {one(variant)}", flush=True)
    probes = [overlap_probe(work, env) for _ in range(max(1, min(3, args.rounds)))]
    print(f"load average after: {_load()}")

    print()
    print(f"{'wall time, seconds':<30}{'median':>8}{'min':>8}{'max':>8}   ratio to the baseline (median / median)")
    base = base_rm = base_cpu = 0.0
    if baselines:
        base, lo, hi = stats([b.total_s for b in baselines])
        base_rm = statistics.median([b.total_s + b.rm_s for b in baselines])
        base_cpu = statistics.median([b.cpu_s for b in baselines])
        print(f"{'baseline restore + sha256sum':<30}{fmt(base)}  {fmt(lo)}  {fmt(hi)}")
        for label, values in (
            ("  restic restore", [b.restore_s for b in baselines]),
            ("  find | xargs sha256sum", [b.sha_s for b in baselines]),
            ("  rm -rf (not counted)", [b.rm_s for b in baselines]),
        ):
            med, lo, hi = stats(values)
            print(f"{label:<30}{fmt(med)}  {fmt(lo)}  {fmt(hi)}")
    for variant, runs in drills.items():
        med, lo, hi = stats([d.wall_s for d in runs])
        ratio = f"{med / base:5.2f}  (with the baseline's rm: {med / base_rm:4.2f})" if base else ""
        print(f"{'drill --full ' + variant:<30}{fmt(med)}  {fmt(lo)}  {fmt(hi)}   {ratio}")
    if baselines:
        print(f"\n{'CPU time (user+sys), seconds':<30}{'median':>8}   ratio")
        print(f"{'baseline':<30}{fmt(base_cpu)}")
        for variant, runs in drills.items():
            cpu = statistics.median([d.cpu_s for d in runs])
            print(f"{'drill --full ' + variant:<30}{fmt(cpu)}   {cpu / base_cpu:5.2f}")
    print()
    print("Where a drill's time goes (medians, seconds; from `drill show ID --json --log`):")
    print(
        f"{'variant':<12}{'wall':>7}{'startup+db':>11}{'pre-restic':>11}{'snapshots':>10}{'ls':>7}"
        f"{'restore':>8}{'restore at':>11}{'ends at':>8}{'after':>7}"
    )
    for variant, runs in drills.items():
        print(
            f"{variant:<12}{_med(runs, lambda d: d.wall_s):7.2f}{_med(runs, lambda d: d.wall_s - d.duration_s):11.2f}"
            f"{_med(runs, lambda d: d.first_command_at):11.2f}"
            f"{_med(runs, lambda d: d.commands.get('snapshots', 0)):10.2f}{_med(runs, lambda d: d.commands.get('ls', 0)):7.2f}"
            f"{_med(runs, lambda d: d.commands.get('restore', 0)):8.2f}"
            f"{_med(runs, lambda d: d.restore_at):11.2f}{_med(runs, lambda d: d.restore_end):8.2f}"
            f"{_med(runs, lambda d: d.duration_s - d.restore_end):7.2f}"
        )
    print(
        "  startup+db = wall - duration_s (Python start-up and imports, configuration, SQLite before and after);\n"
        "  pre-restic = from the drill's start to its first restic call (`version`); snapshots, ls, restore = each\n"
        "  restic call's own duration (they may overlap: a full drill starts its restore beside the listing, held\n"
        "  before it writes); restore at / ends at = when, after the drill's start, `restic restore` started and\n"
        "  exited; after = from its exit to the drill's end (the verification not overlapped with restic's own\n"
        "  --verify pass, releasing the checked files, sandbox removal)."
    )
    serial = statistics.median([p[0] for p in probes])
    both = statistics.median([p[1] for p in probes])
    print(
        f"\nrestic snapshots then ls (as the drill does): {serial:.2f} s; both at once: {both:.2f} s "
        f"(overlapping them would save about {serial - both:.2f} s)"
    )
    if base:
        worst = max(
            statistics.median([d.wall_s for d in runs]) / base for v, runs in drills.items() if not v.endswith("-b")
        )
        print(f"\ntarget: drill/baseline <= 1.15 -> {'met' if worst <= 1.15 else 'NOT met'} (worst ratio {worst:.2f})")
    return 0


def _med(runs: list[DrillRun], fn: Callable[[DrillRun], float]) -> float:
    return statistics.median([fn(d) for d in runs])


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
