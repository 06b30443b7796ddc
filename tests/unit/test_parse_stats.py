"""`restic stats --json` and `restic diff --json` parsers, on restic 0.14 output and newer shapes."""

from __future__ import annotations

import json

import pytest

from preuve.restic.parse import DiffCounts, DiffStatistics, SnapshotSize, parse_diff_statistics, parse_stats

A = "2e63dd68c955a27deb38d2b4012cc47a90c3e0f9efbfa6d501eff9c7e2d98a0f"
B = "4ffe80967366a19633c24e17ddeb1131c53e6eaad9174820b7e6f1a8c961286c"

# restic 0.14.0, recorded: file a changed, b removed, d/c added, e/ (a directory) added
DIFF_014 = (
    '{"message_type":"change","path":"/s/a","modifier":"M"}\n'
    '{"message_type":"change","path":"/s/b","modifier":"-"}\n'
    '{"message_type":"change","path":"/s/d/c","modifier":"+"}\n'
    '{"message_type":"change","path":"/s/e/","modifier":"+"}\n'
    f'{{"message_type":"statistics","source_snapshot":"{A}","target_snapshot":"{B}","changed_files":1,'
    '"added":{"files":1,"dirs":1,"others":0,"data_blobs":2,"tree_blobs":3,"bytes":2029},'
    '"removed":{"files":1,"dirs":0,"others":0,"data_blobs":2,"tree_blobs":2,"bytes":1672}}\n'
)


# ----------------------------------------------------------------------------------------------------- stats


def test_stats_restic_014_restore_size() -> None:
    size = parse_stats('{"total_size":318491915,"total_file_count":3195,"snapshots_count":1}\n')
    assert size == SnapshotSize(total_size=318491915, file_count=3195, snapshots_count=1)
    assert size.extra == {}


def test_stats_newer_fields_are_kept_aside() -> None:
    text = json.dumps(
        {
            "total_size": 6,
            "total_file_count": 3,
            "snapshots_count": 1,
            "total_blob_count": 2,
            "total_uncompressed_size": 10,
            "compression_ratio": 1.6,
            "compression_progress": 100,
            "compression_space_saving": 40.0,
        }
    )
    size = parse_stats(text)
    assert (size.total_size, size.file_count) == (6, 3)
    assert size.extra["total_uncompressed_size"] == 10 and size.extra["compression_ratio"] == 1.6


def test_stats_skips_warnings_and_text_lines_and_takes_the_last_object() -> None:
    text = (
        "scanning...\n"
        "Warning: something restic said on stdout\n"
        '{"total_size":1,"total_file_count":1,"snapshots_count":1}\n'
        '{"message_type":"status","percent_done":1}\n'
        '{"total_size":2048,"total_file_count":7,"snapshots_count":1}\n'
        "\n"
    )
    size = parse_stats(text)
    assert (size.total_size, size.file_count) == (2048, 7)


def test_stats_missing_file_count_and_float_counts() -> None:
    assert parse_stats('{"total_size":5.0}').file_count == 0
    assert parse_stats('{"total_size":5.0, "total_file_count": 3.0}').total_size == 5


@pytest.mark.parametrize(
    "text",
    ["", "   \n", "scanning...\n", "[]", '{"snapshots_count":1}', "{not json", '"total_size"'],
)
def test_stats_without_statistics_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="no statistics"):
        parse_stats(text)


@pytest.mark.parametrize("value", ['"12"', "-1", "true", "1.5", "null", "1e400"])
def test_stats_refuses_values_that_are_not_counts(value: str) -> None:
    with pytest.raises(ValueError, match="not a count"):
        parse_stats(f'{{"total_size":{value},"total_file_count":1}}')


# ------------------------------------------------------------------------------------------------------ diff


def test_diff_statistics_restic_014() -> None:
    stats = parse_diff_statistics(DIFF_014)
    assert stats == DiffStatistics(
        source_snapshot=A,
        target_snapshot=B,
        changed_files=1,
        added=DiffCounts(files=1, dirs=1, others=0, data_blobs=2, tree_blobs=3, bytes=2029),
        removed=DiffCounts(files=1, dirs=0, others=0, data_blobs=2, tree_blobs=2, bytes=1672),
    )
    assert stats.files_touched == 3  # 1 changed + 1 added + 1 removed; the added directory does not count


def test_diff_statistics_from_the_single_line() -> None:
    line = DIFF_014.splitlines()[-1]
    stats = parse_diff_statistics(line)
    assert stats is not None and stats.files_touched == 3


def test_diff_of_a_snapshot_with_itself() -> None:
    line = (
        f'{{"message_type":"statistics","source_snapshot":"{A}","target_snapshot":"{A}","changed_files":0,'
        '"added":{"files":0,"dirs":0,"others":0,"data_blobs":0,"tree_blobs":0,"bytes":0},'
        '"removed":{"files":0,"dirs":0,"others":0,"data_blobs":0,"tree_blobs":0,"bytes":0}}'
    )
    stats = parse_diff_statistics(line)
    assert stats is not None and stats.files_touched == 0


def test_diff_newer_fields_and_missing_sides_are_tolerated() -> None:
    obj = {
        "message_type": "statistics",
        "source_snapshot": A,
        "target_snapshot": B,
        "changed_files": 4,
        "added": {"files": 2, "dirs": 0, "others": 1, "data_blobs": 3, "tree_blobs": 1, "bytes": 10, "future": 9},
        "removed": None,
        "moved_files": 7,
    }
    stats = parse_diff_statistics("Warning: x\n" + json.dumps(obj) + "\n")
    assert stats is not None
    assert stats.removed == DiffCounts()
    assert stats.added.others == 1
    assert stats.files_touched == 6
    assert stats.extra == {"moved_files": 7}


def test_diff_without_statistics() -> None:
    changes_only = "\n".join(DIFF_014.splitlines()[:-1])
    assert parse_diff_statistics(changes_only) is None
    assert parse_diff_statistics("") is None
    assert parse_diff_statistics("comparing snapshot a to b:\n") is None


def test_diff_statistics_with_a_bad_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="changed_files"):
        parse_diff_statistics('{"message_type":"statistics","changed_files":-3}')
