"""One restore drill, start to verdict: decides what to restore and what counts as broken.

It calls restic only through :class:`preuve.restic.runner.Restic`, writes only inside its sandbox, and always
returns a :class:`DrillResult` (never raises for a broken backup or an unreachable target): storing it is the
caller's job, which keeps this function usable from the CLI, the daemon and, later, remote workers.
"""

from __future__ import annotations

import logging
import socket
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from preuve import __version__, redact
from preuve.config.loader import Config, TargetRef
from preuve.config.units import format_bytes, parse_duration, parse_size
from preuve.drills.checking import Verification
from preuve.drills.integrity import Subset, check_findings
from preuve.drills.opening import Consumer, Opened, is_snapshot_id, open_and_list
from preuve.drills.prestart import PrestartedRestore, can_prestart
from preuve.drills.result import DrillKind, DrillResult, DrillStatus, Finding
from preuve.drills.sampling import Sampler, include_pattern, sample_size
from preuve.drills.sandbox import Sandbox, remove_tree
from preuve.drills.sources import SourceMap, SourceReader, open_source
from preuve.drills.verify import Expected, Report, Verifier, cpu_workers
from preuve.errors import FailureClass, PreuveError
from preuve.restic import commands
from preuve.restic.execute import Cancelled
from preuve.restic.parse import LsItem, Node, Snapshot
from preuve.restic.runner import Restic
from preuve.restic.versions import has
from preuve.restic.watch import CommandWatcher
from preuve.targets.access import repo_access
from preuve.targets.ssh import explain_sftp_failure

log = logging.getLogger(__name__)

Progress = Callable[[str, int | None, int | None], None]

# Order of gravity when several kinds of finding are present: what the technician must look at first.
_FINDING_ORDER = (
    FailureClass.CORRUPT_DATA,
    FailureClass.SUSPICIOUS_CONTENT,
    FailureClass.CONTENT_MISMATCH,
    FailureClass.INTERNAL,
)
_IGNORING = "ignoring error for "


@dataclass(frozen=True)
class DrillOptions:
    kind: DrillKind = DrillKind.SAMPLE
    snapshot: str | None = None  # id or unique prefix; newest when None
    subset: str | None = None  # integrity runs: the part "n/t" to read


def _noop(phase: str, done: int | None, total: int | None) -> None:
    return None


def choose_snapshot(snapshots: list[Snapshot], wanted: str | None, label: str) -> Snapshot:
    if not snapshots:
        raise PreuveError(FailureClass.MISSING_SNAPSHOT, f"The repository of {label} holds no snapshot at all.")
    if wanted is None:
        return snapshots[-1]
    matches = [s for s in snapshots if s.id.startswith(wanted.lower())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        newest = snapshots[-1]
        raise PreuveError(
            FailureClass.MISSING_SNAPSHOT,
            f"Snapshot {wanted} is not in the repository of {label} (it has {len(snapshots)} snapshots, the newest "
            f"{newest.short_id} of {newest.time:%Y-%m-%d %H:%M} UTC); it was deleted or never existed.",
        )
    raise PreuveError(
        FailureClass.MISSING_SNAPSHOT, f"Snapshot prefix {wanted} is ambiguous in {label}: give more characters."
    )


class _Drill:
    def __init__(
        self,
        config: Config,
        target: TargetRef,
        drill_id: int,
        options: DrillOptions,
        progress: Progress,
        watcher: CommandWatcher | None = None,
    ):
        self.config = config
        self.watcher = watcher
        self.target = target
        self.drill_id = drill_id
        self.options = options
        self.progress = progress
        settings = config.settings.drill
        self.open_timeout_s = parse_duration(target.spec.timeout or settings.open_timeout).total_seconds()
        self.min_throughput = parse_size(settings.min_throughput)
        self.integrity_timeout_s = parse_duration(settings.integrity_timeout).total_seconds()
        self.result = DrillResult(
            status=DrillStatus.RUNNING,
            kind=options.kind,
            started_at=datetime.now(UTC),
            host=socket.gethostname(),
            preuve_version=__version__,
        )
        self.restic: Restic | None = None
        self.source: SourceReader | None = None
        self.restore_error: PreuveError | None = None
        self.restic_errors: dict[str, str] = {}  # file -> restic's reason for leaving it out

    # --- the drill -------------------------------------------------------------------------------------------
    def run(self) -> DrillResult:
        start = time.monotonic()
        spec = self.target.spec
        try:
            access = repo_access(spec, self.config.directory)
            local_sources = (spec.source,) if spec.source and not spec.source.startswith("sftp://") else ()
            with Sandbox(self.config.sandbox_root, self.drill_id, sources=local_sources) as sandbox:
                self.restic = Restic(
                    self.config.settings.restic,
                    access,
                    label=self.target.ref,
                    home=sandbox.home,
                    tmpdir=sandbox.tmp,
                    cache_dir=sandbox.cache_dir,
                    open_timeout_s=self.open_timeout_s,
                    watcher=self.watcher,
                )
                self.result.restic_version = str(self.restic.version)
                self.progress("opening the repository", None, None)
                if self.options.kind is DrillKind.INTEGRITY:
                    self.result.snapshots = self.restic.snapshots()
                    self._integrity(self.result.snapshots)
                    return self.result
                try:
                    if self.options.kind is DrillKind.FULL:
                        report, open_s = self._full(sandbox)
                    else:
                        report, open_s = self._sample(sandbox)
                finally:
                    if self.source is not None:
                        self.source.close()
                self._conclude(report)
                self._estimate(open_s)
        except PreuveError as exc:
            self._fail(explain_sftp_failure(spec, self.config.directory, exc, timeout_s=self.open_timeout_s))
        except KeyboardInterrupt:
            self.result.status = DrillStatus.INTERRUPTED
            self.result.message = "The drill was interrupted before it finished; its sandbox was removed."
        except Cancelled as exc:
            # Stopped on purpose (daemon shutdown, lost repository lock): neither the backup's fault nor Preuve's.
            self.result.status = DrillStatus.INTERRUPTED
            self.result.message = f"The drill was stopped before it finished ({exc.reason}); its sandbox was removed."
        except Exception as exc:
            log.error("drill %s crashed:\n%s", self.drill_id, redact.mask(traceback.format_exc()))
            self._fail(PreuveError(FailureClass.INTERNAL, redact.mask(f"Preuve failed: {type(exc).__name__}: {exc}.")))
        finally:
            if self.restic is not None:
                self.result.log = list(self.restic.log)
            self.result.duration_s = round(time.monotonic() - start, 3)
            self.result.finished_at = datetime.now(UTC)
        return self.result

    def _integrity(self, snapshots: list[Snapshot]) -> None:
        """`check --read-data-subset=n/t`: structure of the whole repository, and the data of one part."""
        assert self.restic is not None
        subset = Subset.parse(self.options.subset or "1/1")
        self.result.subset = str(subset)
        if snapshots:
            self.result.snapshot_id = snapshots[-1].id
            self.result.snapshot_time = snapshots[-1].time
        self.progress(f"reading part {subset} of the repository", None, None)
        started = time.monotonic()
        completed, error = self.restic.run(
            commands.check(read_data_subset=str(subset)),
            what=f"checking part {subset} of the repository",
            deadline_s=self.open_timeout_s + self.integrity_timeout_s,
            check=False,
        )
        self.result.restore_s = round(time.monotonic() - started, 3)
        if error is None:
            self.result.status = DrillStatus.PASSED
            self.result.message = (
                f"restic check read part {subset} of the repository's data and its whole structure "
                f"({len(snapshots)} snapshots): no errors."
            )
            return
        self.result.findings = check_findings(completed.stderr)
        if error.failure_class is FailureClass.CORRUPT_DATA or self.result.findings:
            first = self.result.findings[0].detail if self.result.findings else error.message
            self._fail(
                PreuveError(
                    FailureClass.CORRUPT_DATA,
                    f"restic check found damage while reading part {subset} of {self.target.ref}: {first}",
                )
            )
            return
        self._fail(error)

    def _fail(self, exc: PreuveError) -> None:
        self.result.failure_class = exc.failure_class
        self.result.status = DrillStatus.FAILED if exc.failure_class.is_backup_problem else DrillStatus.ERROR
        self.result.message = redact.mask(exc.full_message)

    def _open_source(self, snapshot: Snapshot) -> tuple[SourceReader | None, SourceMap | None]:
        source = self.target.spec.source
        if not source:
            return None, None
        reader, root = open_source(source, self.target.spec, self.config.directory, timeout_s=self.open_timeout_s)
        self.source = reader
        return reader, SourceMap(root, snapshot.paths)

    def _verifier(self, sandbox: Sandbox, snapshot: Snapshot) -> Verifier:
        reader, source_map = self._open_source(snapshot)
        return Verifier(
            sandbox.restore_dir,
            canaries={c.path: c.sha256 for c in self.target.spec.canaries},
            source=reader,
            source_map=source_map,
            entropy_threshold=self.config.settings.drill.entropy_threshold,
            workers=cpu_workers(),
            discard=True,  # the sandbox goes after the drill: each file goes as soon as it is checked
        )

    def _ls_deadline(self) -> float:
        # a listing streams steadily once the repository is open; 10x the open deadline bounds a stalled server
        return self.open_timeout_s * 10

    def _restore_deadline(self, size: int) -> float:
        return self.open_timeout_s + 60 + size / self.min_throughput

    def _open_and_list(self, consumer: Consumer, *, restore_running: bool = False) -> Opened:
        """The snapshot list and the listing of the snapshot to drill, both at once (see :mod:`.opening`)."""
        assert self.restic is not None
        wanted = self.options.snapshot
        self.progress("listing the snapshot", 0, None)
        opened = open_and_list(
            self.restic,
            wanted,
            lambda snapshots: choose_snapshot(snapshots, wanted, self.target.ref),
            consumer,
            label=self.target.ref,
            ls_deadline_s=self._ls_deadline(),
            snapshots_without_lock=restore_running,
        )
        self.result.snapshots = opened.snapshots
        self.result.snapshot_id = opened.snapshot.id
        self.result.snapshot_time = opened.snapshot.time
        return opened

    def _sample(self, sandbox: Sandbox) -> tuple[Report, float]:
        settings = self.config.settings.drill
        canaries = {c.path for c in self.target.spec.canaries}
        samplers: list[Sampler] = []

        def new_sampler(listed_id: str) -> Sampler:
            # seeded with drill id + snapshot id: a re-run of the drill restores the same files
            return Sampler(
                n=sample_size(settings.confidence, settings.defect_rate),
                max_bytes=parse_size(settings.max_sample_bytes),
                large_file_share=settings.large_file_share,
                seed=f"{self.drill_id}:{listed_id}",
                must_include=canaries,
            )

        def consumer(snapshot_id: str | None) -> Callable[[LsItem], None]:
            samplers.clear()
            counted = 0

            def sampler(listed_id: str) -> Sampler:
                if not samplers:
                    samplers.append(new_sampler(listed_id))
                return samplers[0]

            def on_item(item: LsItem) -> None:
                nonlocal counted
                if isinstance(item, Snapshot):
                    sampler(snapshot_id or item.id)  # ls names the snapshot before its first file
                elif isinstance(item, Node) and item.type == "file":
                    sampler(snapshot_id or "").offer(item)
                    counted += 1
                    if counted % 5000 == 0:
                        self.progress("listing the snapshot", counted, None)

            return on_item

        opened = self._open_and_list(consumer)
        snapshot = opened.snapshot
        sample = (samplers[0] if samplers else new_sampler(snapshot.id)).result()
        self.result.files_in_snapshot = sample.files_total
        self.result.bytes_in_snapshot = sample.bytes_total
        self.result.sample_budget_limited = sample.budget_limited
        if sample.files_total == 0:
            raise PreuveError(
                FailureClass.MISSING_SNAPSHOT,
                f"Snapshot {snapshot.short_id} of {self.target.ref} holds no file at all: the backup job saved "
                f"nothing (a missing source path is only a warning for restic).",
            )
        chosen = {node.path for node in sample.nodes}
        missing_canaries = [
            Finding(path, FailureClass.CONTENT_MISMATCH, "canary file is not in the snapshot")
            for path in sorted(canaries - chosen)
        ]
        sandbox.require_space(sample.sample_bytes)
        patterns = [include_pattern(node.path) for node in sample.nodes]
        expected = [Expected(n.path, n.size, n.mtime) for n in sample.nodes]
        report = self._restore_and_verify(
            sandbox, snapshot, patterns, sample.sample_bytes, chosen, lambda: iter(expected), len(expected)
        )
        report.findings[:0] = missing_canaries
        return report, opened.open_s

    def _full(self, sandbox: Sandbox) -> tuple[Report, float]:
        """Restore everything. The listing goes to a file in the sandbox, so memory stays flat for any size."""
        prestarted = self._prestart(sandbox)
        try:
            listing, files, size, opened = self._list_to_file(sandbox, restore_running=prestarted is not None)
            snapshot = opened.snapshot
            self.result.files_in_snapshot = files
            self.result.bytes_in_snapshot = size
            if files == 0:
                raise PreuveError(FailureClass.MISSING_SNAPSHOT, f"Snapshot {snapshot.short_id} holds no file at all.")
            sandbox.require_space(size)

            def expected() -> Iterator[Expected]:
                with listing.open(encoding="utf-8", newline="\n") as handle:
                    for line in handle:
                        path, size_text, mtime = line.rstrip("\n").split("\t")
                        yield Expected(
                            path.replace(chr(0), chr(10)),
                            int(size_text),
                            datetime.fromisoformat(mtime) if mtime else None,
                        )

            report = self._restore_and_verify(sandbox, snapshot, [], size, None, expected, files, prestarted=prestarted)
            return report, opened.open_s
        finally:
            if prestarted is not None:
                prestarted.stop("the drill ended before its restore started")

    def _list_to_file(self, sandbox: Sandbox, *, restore_running: bool) -> tuple[Path, int, int, Opened]:
        """The snapshot's files as ``path TAB size TAB mtime`` lines (newlines in names as NUL): path, count, bytes."""
        listing = sandbox.path / "listing.tsv"
        files = 0
        size = 0
        outs: list[TextIO] = []

        def consumer(snapshot_id: str | None) -> Callable[[LsItem], None]:
            nonlocal files, size
            for old in outs:
                old.close()
            files = size = 0
            out = listing.open("w", encoding="utf-8", newline="\n")
            outs[:] = [out]

            def on_item(item: LsItem) -> None:
                nonlocal files, size
                if isinstance(item, Node) and item.type == "file":
                    files += 1
                    size += item.size
                    mtime = item.mtime.isoformat() if item.mtime else ""
                    out.write(f"{item.path.replace(chr(10), chr(0))}\t{item.size}\t{mtime}\n")

            return on_item

        try:
            opened = self._open_and_list(consumer, restore_running=restore_running)
        finally:
            for out in outs:
                out.close()
        return listing, files, size, opened

    def _prestart(self, sandbox: Sandbox) -> PrestartedRestore | None:
        """The full restore, started now and held before it writes (see :mod:`.prestart`), when restic allows."""
        assert self.restic is not None
        wanted = self.options.snapshot
        if not can_prestart(self.restic.version) or (wanted is not None and not is_snapshot_id(wanted)):
            return None
        return PrestartedRestore(
            self.restic,
            commands.restore(wanted.lower() if wanted else "latest", sandbox.restore_dir, verify=True),
            what=f"restoring snapshot {wanted}" if wanted else "restoring the newest snapshot",
            deadline_s=self._ls_deadline() + 2 * self.open_timeout_s,  # held at most while opening and listing
            label=self.target.ref,
        ).start()

    def _restore_and_verify(
        self,
        sandbox: Sandbox,
        snapshot: Snapshot,
        patterns: list[str],
        size: int,
        chosen: set[str] | None,
        expected: Callable[[], Iterator[Expected]],
        total: int,
        *,
        prestarted: PrestartedRestore | None = None,
    ) -> Report:
        """Restore, and check what came back: from the moment restic starts its own --verify pass (see
        :mod:`.checking`), else once restic exited."""
        verification = Verification(
            lambda: self._verifier(sandbox, snapshot),
            expected,
            progress=lambda done: self.progress("verifying", done, total),
        )
        try:
            self._restore(
                sandbox,
                snapshot,
                patterns,
                size,
                chosen,
                on_stdout=verification.on_restic_line,
                prestarted=prestarted,
            )
            if not verification.started_early:
                self.progress("verifying", 0, total)
            report = verification.result()
        finally:
            verification.stop()
        return self._with_restic_errors(report)

    def _restore(
        self,
        sandbox: Sandbox,
        snapshot: Snapshot,
        patterns: list[str],
        size: int,
        chosen: set[str] | None,
        *,
        on_stdout: Callable[[str], None] | None = None,
        prestarted: PrestartedRestore | None = None,
    ) -> None:
        assert self.restic is not None
        count = len(chosen) if chosen is not None else self.result.files_in_snapshot
        self.progress(f"restoring {count} files ({format_bytes(size)})", None, None)
        deadline_s = self._restore_deadline(size)
        if prestarted is not None and prestarted.release(snapshot, deadline_s, on_stdout):
            completed, error = prestarted.result()
            # from the release: its start (key, lock, index) ran beside the listing, as `open_s` measures it
            self.result.restore_s = round(time.monotonic() - prestarted.released_at, 3)
        else:
            if prestarted is not None:
                # restic, started on `latest`, was about to restore a newer snapshot than the one chosen
                remove_tree(sandbox.restore_dir)
                sandbox.restore_dir.mkdir(mode=0o700)
            started = time.monotonic()
            completed, error = self.restic.run(
                self._restore_args(sandbox, snapshot, patterns),
                what=f"restoring snapshot {snapshot.short_id}",
                deadline_s=deadline_s,
                check=False,
                on_stdout=on_stdout,
            )
            self.result.restore_s = round(time.monotonic() - started, 3)
        self._restore_findings(completed.stderr, chosen)
        if error is not None and error.failure_class is not FailureClass.CORRUPT_DATA:
            raise error
        self.restore_error = error

    def _restore_args(self, sandbox: Sandbox, snapshot: Snapshot, patterns: list[str]) -> tuple[str, ...]:
        assert self.restic is not None
        if patterns and has(self.restic.version, "restore_include_file"):
            include_file = sandbox.tmp / "include.txt"
            include_file.write_text("".join(p + "\n" for p in patterns), encoding="utf-8")
            return (
                *commands.restore(snapshot.id, sandbox.restore_dir, verify=True),
                "--include-file",
                str(include_file),
            )
        return commands.restore(snapshot.id, sandbox.restore_dir, patterns, verify=True)

    def _restore_findings(self, stderr: str, chosen: set[str] | None) -> None:
        """restic names each file it could not restore on a line ``ignoring error for PATH: ERROR``."""
        for line in stderr.splitlines():
            if not line.startswith(_IGNORING):
                continue
            rest = line[len(_IGNORING) :]
            path, detail = rest, ""
            for index in range(len(rest)):
                if rest.startswith(": ", index):
                    candidate = rest[:index]
                    if chosen is None or candidate in chosen:
                        path, detail = candidate, rest[index + 2 :]
                        break
            if "UtimesNano" in detail:
                continue  # a consequence of the file being left out, not a second error
            self.restic_errors.setdefault(path, detail.strip())

    def _with_restic_errors(self, report: Report) -> Report:
        if self.restic_errors:
            # A file restic could not restore is damaged data, whatever else we saw: restic leaves small files out
            # but writes large ones with holes where a blob failed (same size, wrong bytes).
            ours = {f.path: f for f in report.findings}
            report.findings = [f for f in report.findings if f.path not in self.restic_errors]
            for path, reason in sorted(self.restic_errors.items()):
                seen = ours.get(path)
                detail = f"restic could not restore it: {reason or 'no reason given'}"
                if seen is not None and seen.failure_class is not FailureClass.CORRUPT_DATA:
                    detail += f"; what came back: {seen.detail}"
                elif seen is not None:
                    detail = f"{seen.detail} (restic: {reason})"
                report.findings.append(Finding(path, FailureClass.CORRUPT_DATA, detail))
        return report

    def _estimate(self, open_s: float) -> None:
        result = self.result
        if result.kind is DrillKind.FULL:
            result.estimated_full_restore_s = round(result.restore_s + open_s, 1)
            return
        if result.bytes_restored <= 0 or result.restore_s <= 0:
            return
        # restore time = fixed cost (key derivation, index) + bytes / throughput; the open call measures the former
        variable_s = max(result.restore_s - open_s, result.restore_s * 0.2)
        per_byte = variable_s / result.bytes_restored
        result.estimated_full_restore_s = round(open_s + result.bytes_in_snapshot * per_byte, 1)

    def _conclude(self, report: Report) -> None:
        result = self.result
        result.files_checked = report.files_checked
        result.files_changed_since_snapshot = report.files_changed_since_snapshot
        result.bytes_restored = report.bytes_verified
        result.canaries_checked = report.canaries_checked
        result.manifest_sha256 = report.manifest_sha256
        result.findings = report.findings
        max_suspicious = self.config.settings.drill.max_suspicious_files
        blocking = [
            f
            for f in report.findings
            if f.failure_class is not FailureClass.SUSPICIOUS_CONTENT or report.suspicious > max_suspicious
        ]
        short = self.result.snapshot_id[:8] if self.result.snapshot_id else "?"
        when = f"{result.snapshot_time:%Y-%m-%d %H:%M} UTC" if result.snapshot_time else "?"
        scope = (
            f"{report.files_checked} of {result.files_in_snapshot} files "
            f"({format_bytes(report.bytes_verified)} of {format_bytes(result.bytes_in_snapshot)})"
        )
        if not blocking and self.restore_error is not None:
            # restic reported damage, yet every checked file came back: still a damaged repository
            self._fail(self.restore_error)
            return
        if not blocking:
            result.status = DrillStatus.PASSED
            extra = []
            if report.files_changed_since_snapshot:
                extra.append(f"{report.files_changed_since_snapshot} changed on the source since")
            if report.canaries_checked:
                extra.append(f"{report.canaries_checked} canaries intact")
            if report.suspicious:
                extra.append(f"{report.suspicious} suspicious files under the threshold")
            tail = f" ({'; '.join(extra)})" if extra else ""
            result.message = f"Restored and verified {scope} from snapshot {short} of {when}{tail}."
            return
        failure_class = next(c for c in _FINDING_ORDER if any(f.failure_class is c for f in blocking))
        first = next(f for f in blocking if f.failure_class is failure_class)
        result.failure_class = failure_class
        result.status = DrillStatus.ERROR if failure_class is FailureClass.INTERNAL else DrillStatus.FAILED
        result.message = redact.mask(
            f"{len(blocking)} of {report.files_checked} checked files from snapshot {short} of {when} did not "
            f"verify; first: {first.path}: {first.detail}. {failure_class.advice}"
        )


def execute_drill(
    config: Config,
    target: TargetRef,
    drill_id: int,
    options: DrillOptions,
    progress: Progress | None = None,
    watcher: CommandWatcher | None = None,
) -> DrillResult:
    """Run one drill and return its result; the sandbox is gone when this returns. ``watcher`` sees each restic
    command start, print and end (the live restore log, :mod:`preuve.drills.live`)."""
    return _Drill(config, target, drill_id, options, progress or _noop, watcher).run()
