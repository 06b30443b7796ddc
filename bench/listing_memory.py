"""Peak memory of a sample drill over a snapshot of a million files, next to plain ``restic ls``.

Writes ``--files`` tiny files (default 1,000,000: 1,000 folders of 1,000 files of a few bytes, each different so
that restic stores one blob per file), backs them up to a local restic repository, writes a Preuve configuration
folder with one local target ``bench/data``, then measures:

* ``restic ls --json latest > /dev/null``: wall time and peak RSS (``os.wait4`` on the restic process);
* ``preuve --config DIR drill run bench/data --json`` (a sample drill: the listing streams through the sampler,
  about 500 files are restored): wall time, the *Python process's own* peak RSS (``getrusage(RUSAGE_SELF)`` and
  ``VmHWM`` read at exit by a small wrapper), and separately the largest restic child's peak RSS
  (``getrusage(RUSAGE_CHILDREN)`` in the same process; ``wait4`` on the drill would mix the two).

Not a test: run it as ``.venv/bin/python bench/listing_memory.py [--files 100000] [--keep]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESTIC = shutil.which("restic") or "/usr/bin/restic"
READY = ".bench-ready"
TARGET_MB = 200  # the drill's Python process must stay under this

# Runs preuve's CLI in this interpreter and, at exit, writes its own peak RSS (and its children's) to a file.
WRAPPER = r"""
import atexit, json, os, resource, runpy, sys
def _report():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    hwm = 0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    with open(os.environ["BENCH_RSS_FILE"], "w") as out:
        json.dump({"self_maxrss_kb": own, "children_maxrss_kb": kids, "vmhwm_kb": hwm}, out)
atexit.register(_report)
sys.argv = ["preuve", *sys.argv[1:]]
runpy.run_module("preuve", run_name="__main__", alter_sys=True)
"""


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, what: str, timeout: float = 7200) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        sys.exit(
            f"{what} failed (exit {done.returncode}):\n$ {' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


def make_files(root: Path, files: int, per_dir: int) -> int:
    """``files`` files of a few bytes, ``per_dir`` to a folder; each file's bytes differ. Returns bytes written."""
    total = 0
    dirs = (files + per_dir - 1) // per_dir
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    written = 0
    for d in range(dirs):
        folder = root / f"dossier-{d:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        dirfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for f in range(min(per_dir, files - written)):
                data = f"{d}/{f}\n".encode()
                fd = os.open(f"note-{f:04d}.txt", flags, 0o644, dir_fd=dirfd)
                os.write(fd, data)
                os.close(fd)
                total += len(data)
                written += 1
        finally:
            os.close(dirfd)
    return total


@dataclass
class Measure:
    wall_s: float
    maxrss_kb: int
    extra: dict[str, object]


def wait_measured(argv: Sequence[str], *, env: dict[str, str], keep_stdout: bool = False) -> tuple[Measure, int, bytes]:
    """Run argv; its wall time and ``wait4`` rusage (the process and any children it waited for)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=out if keep_stdout else subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if code not in (0, 1):
        sys.exit(f"$ {' '.join(argv)} exited {code}:\n{stderr.decode(errors='replace')[-4000:]}")
    return Measure(wall, usage.ru_maxrss, {"user_s": usage.ru_utime, "sys_s": usage.ru_stime}), code, stdout


def mb(kb: float) -> str:
    return f"{kb / 1024:8.1f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000, help="files in the snapshot (default 1,000,000)")
    parser.add_argument("--per-dir", type=int, default=1000, help="files per folder (default 1000)")
    parser.add_argument("--rounds", type=int, default=1, help="measurements of each command (default 1)")
    parser.add_argument("--workdir", type=Path, help="where to build everything (default: a new temp folder)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the workdir (a later run with the same --workdir reuses it)"
    )
    parser.add_argument("--timeout", help="the target's `timeout:` (open deadline; restore deadline = it + 60 s + ...)")
    parser.add_argument("--python", default=None, help="the venv's python (default: the one running this script)")
    args = parser.parse_args()
    python = args.python or sys.executable

    created = args.workdir is None or not args.workdir.exists()
    work = Path(tempfile.mkdtemp(prefix="preuve-bench-ls-")) if args.workdir is None else args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _bench(args, python, work)
    finally:
        if args.keep:
            print(f"\nkept {work}")
        else:
            start = time.perf_counter()
            names = ("data", "repo", "config", "sandbox", "secrets", "cache", READY, "rss.json")
            # rm -rf: a million files go several times faster than with shutil.rmtree
            targets = [work] if created else [work / name for name in names]
            subprocess.run(["rm", "-rf", "--", *map(str, targets)], check=False)
            print(
                f"removed {work if created else 'the bench files in ' + str(work)} ({time.perf_counter() - start:.1f} s)"
            )


def _bench(args: argparse.Namespace, python: str, work: Path) -> int:
    data, repo, config, sandbox = work / "data", work / "repo", work / "config", work / "sandbox"
    password_file = work / "secrets" / "restic.pass"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_", "PREUVE_"))}
    restic_env = {**env, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD_FILE": str(password_file)}
    key = f"{args.files}:{args.per_dir}:v1"
    ready = work / READY
    if ready.exists() and ready.read_text() == key:
        print(f"reusing the snapshot in {work}")
    else:
        for path in (data, repo, config, sandbox):
            shutil.rmtree(path, ignore_errors=True)
        print(f"writing {args.files:,} files in {data} ...", flush=True)
        start = time.perf_counter()
        size = make_files(data, args.files, args.per_dir)
        files_s = time.perf_counter() - start
        print(f"  {size:,} bytes in {files_s:.1f} s ({args.files / files_s:,.0f} files/s)", flush=True)
        password_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        password_file.write_text("preuve-bench-password\n", encoding="utf-8")
        password_file.chmod(0o600)
        start = time.perf_counter()
        run([RESTIC, "--no-cache", "init"], env=restic_env, what="restic init")
        run([RESTIC, "--no-cache", "backup", "--host", "bench", str(data)], env=restic_env, what="restic backup")
        backup_s = time.perf_counter() - start
        print(f"  restic init + backup: {backup_s:.1f} s; set-up took {files_s + backup_s:.1f} s in all", flush=True)
        ready.write_text(key)

    (config / "jobs").mkdir(parents=True, exist_ok=True)
    (config / "preuve.toml").write_text(f'database = "sqlite:///preuve.db"\nsandbox = "{sandbox}"\n', encoding="utf-8")
    (config / "jobs" / "bench.yaml").write_text(
        "client: Bench\nlanguage: en\ncontacts: [bench@example.org]\npolicy: standard\ntargets:\n"
        f"  data:\n    kind: local\n    path: {repo}\n    password_file: {password_file}\n"
        "    location: onsite\n    media: disk\n" + (f"    timeout: {args.timeout}\n" if args.timeout else ""),
        encoding="utf-8",
    )
    print(f"restic {run([RESTIC, 'version'], what='restic version').split()[1]}, {os.cpu_count()} CPUs, load {_load()}")

    rows: list[tuple[str, Measure]] = []
    for r in range(args.rounds):
        cache = work / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        measure, _, _ = wait_measured([RESTIC, "--cache-dir", str(cache), "ls", "--json", "latest"], env=restic_env)
        rows.append(("restic ls --json latest", measure))
        print(f"round {r + 1}: restic ls: {measure.wall_s:.2f} s, peak RSS {mb(measure.maxrss_kb)}", flush=True)
        shutil.rmtree(cache, ignore_errors=True)

        rss_file = work / "rss.json"
        rss_file.unlink(missing_ok=True)
        drill_env = {**env, "BENCH_RSS_FILE": str(rss_file)}
        argv = [python, "-c", WRAPPER, "--config", str(config), "drill", "run", "bench/data", "--json"]
        measure, _, out = wait_measured(argv, env=drill_env, keep_stdout=True)
        result = json.loads(out)
        if result.get("status") != "passed":
            print(f"WARNING: the drill did not pass: {result.get('failure_class')}: {result.get('message')}")
        rss = json.loads(rss_file.read_text())
        detail = json.loads(
            run(
                [
                    python,
                    "-m",
                    "preuve",
                    "--config",
                    str(config),
                    "drill",
                    "show",
                    str(result["drill_id"]),
                    "--json",
                    "--log",
                ],
                env=env,
                what="drill show",
            )
        )
        phases = {}
        for command in detail.get("commands", []):
            words = [w for w in command["argv"] if w in ("version", "snapshots", "ls", "restore")]
            if words:
                phases[words[0]] = phases.get(words[0], 0.0) + float(command["duration_s"] or 0)
        measure.extra.update(
            rss,
            phases=phases,
            duration_s=result.get("duration_s"),
            files=result.get("files_in_snapshot"),
            checked=result.get("files_checked"),
            wait4_maxrss_kb=measure.maxrss_kb,
        )
        rows.append(("preuve drill run (sample)", measure))
        print(
            f"round {r + 1}: drill: {measure.wall_s:.2f} s, Python process peak RSS {mb(rss['self_maxrss_kb'])} "
            f"(VmHWM {mb(rss['vmhwm_kb'])}), largest restic child {mb(rss['children_maxrss_kb'])}; "
            f"{result.get('files_checked')} of {result.get('files_in_snapshot') or 0:,} files checked, {result.get('status')}",
            flush=True,
        )

    print(f"\nload after: {_load()}")
    print(f"\n{'command':<44}{'wall':>9}{'peak RSS':>13}")
    drills = [m for label, m in rows if label.startswith("preuve")]
    lss = [m for label, m in rows if label.startswith("restic")]
    for m in lss:
        print(f"{'restic ls --json latest > /dev/null':<44}{m.wall_s:8.2f}s{mb(m.maxrss_kb):>13}")
    for m in drills:
        phases = m.extra["phases"]
        assert isinstance(phases, dict)
        print(f"{'preuve drill run bench/data --json':<44}{m.wall_s:8.2f}s")
        print(f"{'  Python process (RUSAGE_SELF at exit)':<44}{'':9}{mb(float(m.extra['self_maxrss_kb'])):>13}")  # type: ignore[arg-type]
        print(f"{'  Python process (VmHWM at exit)':<44}{'':9}{mb(float(m.extra['vmhwm_kb'])):>13}")  # type: ignore[arg-type]
        print(f"{'  largest restic child (RUSAGE_CHILDREN)':<44}{'':9}{mb(float(m.extra['children_maxrss_kb'])):>13}")  # type: ignore[arg-type]
        print(f"{'  wait4 on the drill (mixes both: max)':<44}{'':9}{mb(float(m.extra['wait4_maxrss_kb'])):>13}")  # type: ignore[arg-type]
        for name in ("snapshots", "ls", "restore"):
            if name in phases:
                print(f"{'  restic ' + name + ' inside the drill':<44}{phases[name]:8.2f}s")
        print(f"{'  drill duration_s (engine, start to verdict)':<44}{float(m.extra['duration_s'] or 0):8.2f}s")  # type: ignore[arg-type]
    worst = max(float(m.extra["self_maxrss_kb"]) for m in drills) / 1024  # type: ignore[arg-type]
    if lss and drills:
        ls_wall = min(m.wall_s for m in lss)
        ls_in_drill = min(float(m.extra["phases"].get("ls", 0)) for m in drills)  # type: ignore[union-attr]
        print(
            f"\nls inside the drill / plain restic ls: {ls_in_drill / ls_wall:.2f}x ({ls_in_drill:.2f} s vs {ls_wall:.2f} s)"
        )
    print(
        f"target: drill's Python process under {TARGET_MB} MB -> {'met' if worst < TARGET_MB else 'NOT met'} ({worst:.1f} MB)"
    )
    return 0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
