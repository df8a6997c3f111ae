"""Splitting a file into byte ranges for a parallel import: the pieces read exactly as the whole."""

from __future__ import annotations

import gzip
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnel_site.events.loaders import canonical_csv, jsonl, shards
from funnel_site.events.loaders.base import CsvSource, Span, open_binary, open_span


def csv_records(path, span: Span | None = None) -> list:
    fh = open_binary(path) if span is None else open_span(path, span)
    source = CsvSource(fh, has_header=False, first_line=1 if span is None else span.first_line)
    try:
        return list(source.records())
    finally:
        source.close()


def test_spans_of_a_canonical_csv_read_as_the_whole_file(tmp_path):
    path = tmp_path / "events.csv"
    lines = ["contact_id,event,timestamp,properties"]
    for i in range(400):
        props = '"{""note"":""two\nlines""}"' if i % 7 == 0 else ('""' if i % 5 == 0 else '"{""k"":1}"')
        lines.append(f"c{i % 13},Product Viewed,2026-01-01T00:{i % 60:02d}:00Z,{props}")
        if i % 50 == 0:
            lines.append("")  # blank lines are skipped, and still counted
        if i % 97 == 0:
            lines.append("c1,bad row")  # wrong width: an error with its line number
    path.write_bytes(("\ufeff" + "\r\n".join(lines) + "\r\n").encode())
    whole = list(canonical_csv.read_records(path))
    for parts in (2, 3, 5, 8, 17):
        spans = shards.split(path, parts)
        assert spans is not None and spans[0].start == 0 and spans[-1].end == path.stat().st_size
        assert all(a.end == b.start for a, b in zip(spans, spans[1:], strict=False))
        pieces = [row for span in spans for row in canonical_csv.read_records(path, span=span)]
        assert pieces == whole, parts


def test_a_quoted_newline_is_never_a_cut(tmp_path):
    path = tmp_path / "events.csv"
    body = "a,b\n" + "".join(f'x{i},"line one\nline two\nline three"\n' for i in range(200))
    path.write_text(body)
    for parts in range(2, 12):
        for span in (shards.split(path, parts) or [])[1:]:
            assert (span.first_line - 2) % 3 == 0  # every record starts on line 2 + 3k


def test_jsonl_spans_read_as_the_whole_file(tmp_path):
    path = tmp_path / "events.jsonl"
    rows = [f'{{"contact_id":"c{i}","event":"Signed Up","timestamp":{1700000000 + i}}}' for i in range(300)]
    rows[10] = "not json"
    path.write_text("\n".join(rows[:150]) + "\n\n" + "\n".join(rows[150:]) + "\n")
    whole = list(jsonl.read(path))
    spans = shards.split(path, 4, quoted=False)
    assert spans is not None and len(spans) == 4
    assert [row for span in spans for row in jsonl.read(path, span=span)] == whole


def test_files_not_worth_or_not_safe_to_split(tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("a,b\n1,2\n3,4\n")
    assert shards.split(small, 2, min_bytes=1024) is None  # too small for two parts
    assert shards.split(small, 1) is None
    packed = tmp_path / "packed.csv.gz"
    packed.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 1000))
    assert shards.split(packed, 2) is None  # gzip cannot be read from the middle
    bare_cr = tmp_path / "cr.csv"
    bare_cr.write_bytes(b"a,b\n" + b"1,2\r3,4\n" * 100)  # a csv.Error: the reader resets there
    assert shards.split(bare_cr, 2) is None
    one_record = tmp_path / "one.csv"
    one_record.write_text('a,b\n1,"' + "x\n" * 1000 + '"\n')
    assert shards.split(one_record, 4) is None  # no boundary inside the one long record


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(alphabet='ab ,"\n\r', max_size=300),
    parts=st.integers(min_value=2, max_value=9),
    block=st.sampled_from([1, 3, 7, 64, 1 << 22]),
)
def test_any_text_splits_into_pieces_that_read_as_the_whole(tmp_path, text, parts, block):
    """Property: whatever the quoting, and however the scan's reads cut the file into blocks, either
    the file is not split or the spans' records (fields, errors and line numbers) are exactly those
    of reading the whole file."""
    path = tmp_path / "any.csv"
    path.write_bytes(text.encode())
    with mock.patch.object(shards, "_BLOCK", block):
        spans = shards.split(path, parts)
    if spans is None:
        return
    assert [row for span in spans for row in csv_records(path, span)] == csv_records(path)


def test_taobao_spans_read_as_the_whole_file_with_or_without_a_header(tmp_path):
    from funnel_site.events.loaders import taobao

    rows = [f"{1 + i % 17},{100 + i},{7 + i % 3},{'pv' if i % 4 else 'buy'},{1511600000 + i}" for i in range(400)]
    rows[33] = "5,1,2,pv,not-a-time"
    for header in ("", "user_id,item_id,category_id,behavior_type,timestamp\n"):
        path = tmp_path / "UserBehavior.csv"
        path.write_text(header + "\n".join(rows) + "\n")
        whole = list(taobao.read(path))
        spans = shards.split(path, 3)
        assert spans is not None and len(spans) == 3
        assert [row for span in spans for row in taobao.read(path, span=span)] == whole
