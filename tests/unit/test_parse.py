"""restic JSON parsers on the samples recorded in RESTIC.md section 4 and newer formats, and the version table."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from preuve.restic.parse import (
    CheckSummary,
    Message,
    Node,
    RestoreSummary,
    Snapshot,
    Unknown,
    check_summary,
    iter_ls,
    parse_ls_line,
    parse_message,
    parse_repo_config,
    parse_snapshots,
    parse_time,
    restore_summary,
)
from preuve.restic.versions import FEATURES, MINIMUM_SUPPORTED, Version, has, parse_version

DIR = "/tmp/restic-lab"

# restic 0.14 `snapshots --json`, but newest first to prove the sort; the first one has no parent
SNAPSHOTS_JSON = (
    '[{"time":"2026-11-27T13:25:43.129233305Z","parent":"22e245e1f6985c1e","tree":"eb4c77ce","paths":["'
    + DIR
    + '/src"],"hostname":"restic-lab","username":"root","tags":["lab"],"id":"ea460a7a4a51f00d","short_id":"ea460a7a"},'
    '{"time":"2026-11-27T13:25:21.457623138Z","tree":"a6c617ec","paths":["'
    + DIR
    + '/src"],"hostname":"restic-lab","username":"root","id":"22e245e1f6985c1e","short_id":"22e245e1"}]'
)


def test_parse_snapshots_sample() -> None:
    snapshots = parse_snapshots(SNAPSHOTS_JSON)
    assert [s.short_id for s in snapshots] == ["22e245e1", "ea460a7a"]  # oldest first
    first, second = snapshots
    assert first.time == datetime(2026, 11, 27, 13, 25, 21, 457623, tzinfo=UTC)
    assert first.time.utcoffset() == timedelta(0)
    assert first.parent is None
    assert first.tags == ()
    assert first.paths == (f"{DIR}/src",)
    assert first.hostname == "restic-lab" and first.username == "root"
    assert first.tree == "a6c617ec"
    assert second.parent == "22e245e1f6985c1e"
    assert second.tags == ("lab",)
    assert second.id == "ea460a7a4a51f00d"


def test_parse_snapshots_pretty_printed_and_short_id_missing() -> None:
    text = json.dumps([{"time": "2026-11-27T13:25:21Z", "id": "0123456789abcdef", "paths": ["/x"]}], indent=2)
    (snapshot,) = parse_snapshots(text)
    assert snapshot.short_id == "01234567"
    assert snapshot.time == datetime(2026, 11, 27, 13, 25, 21, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "  \n", "[]", "[]\n"])
def test_parse_snapshots_empty(text: str) -> None:
    assert parse_snapshots(text) == []


def test_parse_snapshots_not_an_array() -> None:
    with pytest.raises(ValueError, match="JSON array"):
        parse_snapshots('{"time": "2026-11-27T13:25:21Z"}')
    with pytest.raises(ValueError):
        parse_snapshots("Fatal: wrong password or no key found")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T13:25:43.129233305Z", datetime(2026, 11, 27, 13, 25, 43, 129233, tzinfo=UTC)),
        ("2026-11-27T14:25:43.129233305+01:00", datetime(2026, 11, 27, 13, 25, 43, 129233, tzinfo=UTC)),
        ("2026-11-27T08:25:43.5-05:00", datetime(2026, 11, 27, 13, 25, 43, 500000, tzinfo=UTC)),
        ("2023-11-14T23:04:13Z", datetime(2023, 11, 14, 23, 4, 13, tzinfo=UTC)),
        ("2026-11-27 13:25:20", datetime(2026, 11, 27, 13, 25, 20, tzinfo=UTC)),  # key list: no offset
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    value = parse_time(text)
    assert value == expected
    assert value.tzinfo is UTC


LS_014 = [
    '{"time":"2026-11-27T13:25:43.129233305Z","parent":"22e245e1","tree":"eb4c77ce","paths":["' + DIR + '/src"],'
    '"hostname":"restic-lab","username":"root","tags":["lab"],"id":"ea460a7a4a51","short_id":"ea460a7a",'
    '"struct_type":"snapshot"}',
    '{"name":"tmp","type":"dir","path":"/tmp","uid":0,"gid":0,"mode":2148532735,"permissions":"dtrwxrwxrwx",'
    '"mtime":"2026-11-27T13:20:00.1Z","atime":"2026-11-27T13:20:00.1Z","ctime":"2026-11-27T13:20:00.1Z",'
    '"struct_type":"node"}',
    '{"name":"empty.txt","type":"file","path":"' + DIR + '/src/docs/empty.txt","uid":0,"gid":0,"size":0,'
    '"mode":420,"permissions":"-rw-r--r--","mtime":"2023-11-14T23:04:13Z","atime":"2023-11-14T23:04:13Z",'
    '"ctime":"2023-11-14T23:04:13Z","struct_type":"node"}',
    '{"name":"日本語ファイル.bin","type":"file","path":"' + DIR + '/src/docs/日本語ファイル.bin","uid":0,"gid":0,'
    '"size":5000,"mode":420,"permissions":"-rw-r--r--","mtime":"2023-11-14T23:04:13Z","atime":"2023-11-14T23:04:13Z",'
    '"ctime":"2023-11-14T23:04:13Z","struct_type":"node"}',
    '{"name":"dangling_link","type":"symlink","path":"' + DIR + '/src/dangling_link","uid":0,"gid":0,'
    '"mode":134218239,"permissions":"Lrwxrwxrwx","mtime":"2023-11-14T23:04:13Z","atime":"2023-11-14T23:04:13Z",'
    '"ctime":"2023-11-14T23:04:13Z","struct_type":"node"}',
]


def test_ls_014_struct_type() -> None:
    items = list(iter_ls(line + "\n" for line in LS_014))
    assert len(items) == 5
    snapshot = items[0]
    assert isinstance(snapshot, Snapshot)
    assert snapshot.short_id == "ea460a7a"
    nodes = items[1:]
    assert all(isinstance(n, Node) for n in nodes)
    tmp, empty, japanese, link = nodes
    assert isinstance(tmp, Node) and isinstance(empty, Node) and isinstance(japanese, Node) and isinstance(link, Node)
    assert (tmp.path, tmp.type, tmp.size, tmp.mode) == ("/tmp", "dir", 0, 2148532735)
    assert tmp.mtime == datetime(2026, 11, 27, 13, 20, 0, 100000, tzinfo=UTC)
    assert (empty.type, empty.size) == ("file", 0)
    assert empty.mtime == datetime(2023, 11, 14, 23, 4, 13, tzinfo=UTC)
    assert japanese.path.endswith("/日本語ファイル.bin") and japanese.size == 5000
    assert (link.type, link.size) == ("symlink", 0)
    assert link.extra["permissions"] == "Lrwxrwxrwx"
    assert link.extra["uid"] == 0 and "atime" in link.extra
    assert "struct_type" not in link.extra and "path" not in link.extra


def test_ls_017_message_type_and_unknown_fields() -> None:
    snapshot_line = json.dumps(
        {
            "time": "2026-11-27T13:25:43.129233305Z",
            "tree": "eb4c77ce",
            "paths": ["/srv/data"],
            "hostname": "nas",
            "username": "root",
            "id": "ea460a7a4a51",
            "short_id": "ea460a7a",
            "message_type": "snapshot",
            "struct_type": "snapshot",
        }
    )
    node_line = json.dumps(
        {
            "name": "report.pdf",
            "type": "file",
            "path": "/srv/data/report.pdf",
            "uid": 1000,
            "gid": 1000,
            "size": 123456,
            "mode": 384,
            "permissions": "-rw-------",
            "mtime": "2026-11-20T10:00:00.123456789+01:00",
            "atime": "2026-11-20T10:00:00+01:00",
            "ctime": "2026-11-20T10:00:00+01:00",
            "inode": 4242,
            "device_id": 2049,
            "links": 1,
            "message_type": "node",
            "struct_type": "node",
        }
    )
    snapshot = parse_ls_line(snapshot_line)
    node = parse_ls_line(node_line)
    assert isinstance(snapshot, Snapshot) and snapshot.hostname == "nas"
    assert isinstance(node, Node)
    assert node.path == "/srv/data/report.pdf" and node.size == 123456 and node.mode == 384
    assert node.mtime == datetime(2026, 11, 20, 9, 0, 0, 123456, tzinfo=UTC)
    assert node.extra["inode"] == 4242 and node.extra["device_id"] == 2049 and node.extra["links"] == 1
    assert "message_type" not in node.extra


def test_ls_message_type_without_struct_type() -> None:
    node = parse_ls_line('{"message_type":"node","type":"dir","path":"/srv","name":"srv"}')
    assert isinstance(node, Node)
    assert (node.path, node.type, node.size, node.mtime) == ("/srv", "dir", 0, None)


def test_ls_unknown_message_types() -> None:
    item = parse_ls_line('{"message_type":"verbose_status","action":"x","item":"/a"}')
    assert isinstance(item, Unknown)
    assert item.kind == "verbose_status" and item.data["item"] == "/a"
    untagged = parse_ls_line('{"foo": 1}')
    assert isinstance(untagged, Unknown) and untagged.kind == ""
    not_object = parse_ls_line("[1, 2]")
    assert isinstance(not_object, Unknown) and not_object.kind == "non-object"


def test_ls_blank_lines_are_skipped() -> None:
    assert parse_ls_line("") is None
    assert parse_ls_line("   \n") is None
    assert list(iter_ls(["\n", LS_014[1], ""])) == [parse_ls_line(LS_014[1])]


@pytest.mark.parametrize("line", ["restoring <Snapshot ea460a7a>", "{not json", '{"path": "/a"'])
def test_ls_non_json_line_raises_value_error(line: str) -> None:
    with pytest.raises(ValueError):
        parse_ls_line(line)


RESTORE_LINES = [
    '{"message_type":"status","seconds_elapsed":1,"percent_done":0.5,"total_files":10,"files_restored":5,'
    '"total_bytes":100,"bytes_restored":50}',
    '{"message_type":"error","error":{"message":"ciphertext verification failed"},"during":"restore","item":"/data/x"}',
    '{"message_type":"summary","seconds_elapsed":2,"total_files":10,"files_restored":10,"files_skipped":0,'
    '"total_bytes":100,"bytes_restored":100}',
]


def test_parse_message() -> None:
    message = parse_message(RESTORE_LINES[0] + "\n")
    assert message == Message("status", json.loads(RESTORE_LINES[0]))
    assert parse_message("restoring <Snapshot ea460a7a of [/src]> to /tmp/sr") is None
    assert parse_message("{broken") is None
    assert parse_message("") is None
    struct = parse_message('{"struct_type":"node","path":"/a"}')
    assert struct is not None and struct.type == "node"


def test_restore_summary_016() -> None:
    messages = [m for m in (parse_message(line) for line in RESTORE_LINES) if m is not None]
    summary = restore_summary(messages)
    assert summary == RestoreSummary(
        files_restored=10,
        total_files=10,
        bytes_restored=100,
        total_bytes=100,
        files_skipped=0,
        errors=("/data/x: ciphertext verification failed",),
    )


def test_restore_summary_error_as_plain_string_and_missing_summary() -> None:
    error = Message("error", {"message_type": "error", "error": "boom", "item": "/a"})
    assert restore_summary([error]) is None  # 0.14: no JSON at all, Preuve counts files itself
    assert restore_summary([]) is None
    summary = restore_summary([error, Message("summary", {"files_restored": 1, "total_files": 2})])
    assert summary is not None
    assert summary.errors == ("/a: boom",)
    assert (summary.files_restored, summary.total_files, summary.bytes_restored) == (1, 2, 0)


def test_check_summary_018() -> None:
    line = (
        '{"message_type":"summary","num_errors":1,"broken_packs":["abc"],'
        '"suggest_repair_index":false,"suggest_prune":true}'
    )
    message = parse_message(line)
    assert message is not None
    other = Message("error", {"message_type": "error", "message": "pack abc: does not exist"})
    assert check_summary([other, message]) == CheckSummary(
        num_errors=1, broken_packs=("abc",), suggest_repair_index=False, suggest_prune=True
    )
    assert check_summary([other]) is None
    clean = check_summary([Message("summary", {"message_type": "summary", "num_errors": 0})])
    assert clean == CheckSummary(num_errors=0, broken_packs=(), suggest_repair_index=False, suggest_prune=False)


def test_parse_repo_config() -> None:
    text = (
        '{\n  "version": 2,\n  "id": "7f3794a1b2c3d4e5f60718293a4b5c6d7e8f9012",\n'
        '  "chunker_polynomial": "20a9e9911a3127"\n}\n'
    )
    config = parse_repo_config(text)
    assert config.version == 2
    assert config.id == "7f3794a1b2c3d4e5f60718293a4b5c6d7e8f9012"
    with pytest.raises(KeyError):
        parse_repo_config('{"version": 2}')
    with pytest.raises(ValueError):
        parse_repo_config("Fatal: wrong password or no key found")


@pytest.mark.parametrize(
    ("text", "expected", "shown"),
    [
        ("restic 0.14.0 compiled with go1.19.8 on linux/amd64\n", Version(0, 14, 0), "0.14.0"),
        ("restic 0.17.1 compiled with go1.23.1 on linux/amd64", Version(0, 17, 1), "0.17.1"),
        (
            "restic 0.18.0-dev (compiled manually) compiled with go1.24.1 on linux/amd64",
            Version(0, 18, 0, "-dev"),
            "0.18.0-dev",
        ),
    ],
)
def test_parse_version(text: str, expected: Version, shown: str) -> None:
    version = parse_version(text)
    assert version == expected
    assert str(version) == shown


@pytest.mark.parametrize("text", ["", "garbage", "restic", "restic version unknown", "rustic 0.7.0", "0.14"])
def test_parse_version_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="cannot read a restic version"):
        parse_version(text)


def test_version_order_and_minimum() -> None:
    assert Version(0, 14, 0) < Version(0, 17, 1) < Version(0, 18, 0)
    assert Version(0, 9, 6) < MINIMUM_SUPPORTED
    assert not Version(0, 14, 0) < MINIMUM_SUPPORTED


@pytest.mark.parametrize(
    ("feature", "before", "first"),
    [
        ("restore_json", Version(0, 15, 2), Version(0, 16, 0)),
        ("ls_message_type", Version(0, 16, 5), Version(0, 17, 0)),
        ("restore_include_file", Version(0, 16, 5), Version(0, 17, 0)),
        ("exit_code_no_repo", Version(0, 16, 5), Version(0, 17, 0)),
        ("exit_code_locked", Version(0, 16, 5), Version(0, 17, 0)),
        ("exit_code_wrong_password", Version(0, 17, 0), Version(0, 17, 1)),
        ("check_json", Version(0, 17, 3), Version(0, 18, 0)),
        ("exit_error_json", Version(0, 17, 3), Version(0, 18, 0)),
    ],
)
def test_feature_boundaries(feature: str, before: Version, first: Version) -> None:
    assert not has(before, feature)
    assert has(first, feature)
    assert has(Version(first.major, first.minor, first.patch + 1), feature)
    assert has(Version(0, 19, 0), feature)
    assert not has(Version(0, 14, 0), feature)


def test_feature_table_is_covered() -> None:
    assert set(FEATURES) == {
        "restore_json",
        "restore_async_output",
        "ls_message_type",
        "restore_include_file",
        "exit_code_no_repo",
        "exit_code_locked",
        "exit_code_wrong_password",
        "check_json",
        "exit_error_json",
    }
    with pytest.raises(KeyError):
        has(Version(0, 18, 0), "no_such_feature")


def test_dev_build_has_the_features_of_its_number() -> None:
    dev = parse_version("restic 0.18.0-dev (compiled manually)")
    assert has(dev, "check_json")
    assert has(dev, "exit_code_wrong_password")
