import tracemalloc

import pytest

from funnel_site.events.loaders import LOADERS, MappingError, MissingColumnError
from funnel_site.events.loaders.base import LoaderError

from .canonical import assert_canonical


def rows(path, mapping=None):
    return list(LOADERS["csv"](path, mapping=mapping))


def test_reads_required_and_optional_columns(write):
    path = write(
        "e.csv",
        "contact_id,event,timestamp,campaign,channel,value,message_id,properties,email\n"
        'c1,Order Completed,2024-01-02T10:00:00Z,spring,email,12.50,m1,"{""sku"": ""a""}",a@example.com\n'
        "c2,Page Viewed,1704189600,,,,,,\n",
    )
    result = rows(path)
    assert result == [
        (
            2,
            {
                "contact_id": "c1",
                "event": "Order Completed",
                "timestamp": "2024-01-02T10:00:00Z",
                "campaign": "spring",
                "channel": "email",
                "value": "12.50",
                "message_id": "m1",
                "properties": {"sku": "a"},
                "email": "a@example.com",
            },
            None,
        ),
        (3, {"contact_id": "c2", "event": "Page Viewed", "timestamp": "1704189600"}, None),
    ]
    for _, item, _ in result:
        assert_canonical(item)


def test_missing_event_column_fails_before_anything(write):
    path = write("e.csv", "contact_id,timestamp\nc1,2024-01-01T00:00:00Z\n")
    with pytest.raises(MissingColumnError) as info:
        LOADERS["csv"](path, mapping=None)  # raised by the call itself, not on iteration
    assert str(info.value) == "missing required column 'event'"
    assert info.value.column == "event"


def test_empty_file_fails(write):
    with pytest.raises(LoaderError):
        LOADERS["csv"](write("e.csv", ""), mapping=None)


def test_mapping_renames_columns(write):
    path = write("e.csv", "user,action,at,extra\nu1,Signed Up,2024-01-01T00:00:00Z,zzz\n")
    assert rows(path, {"contact_id": "user", "event": "action", "timestamp": "at"}) == [
        (2, {"contact_id": "u1", "event": "Signed Up", "timestamp": "2024-01-01T00:00:00Z"}, None)
    ]


def test_mapping_to_an_absent_column_names_it(write):
    path = write("e.csv", "contact_id,event,timestamp\n")
    with pytest.raises(MissingColumnError) as info:
        LOADERS["csv"](path, mapping={"event": "action"})
    assert "missing required column 'action'" in str(info.value)
    with pytest.raises(MissingColumnError):  # an optional field mapped explicitly is required
        LOADERS["csv"](path, mapping={"campaign": "utm_campaign"})


def test_mapping_of_an_unknown_field_is_refused(write):
    path = write("e.csv", "contact_id,event,timestamp\n")
    with pytest.raises(MappingError):
        LOADERS["csv"](path, mapping={"colour": "x"})


def test_quoted_fields_bom_blank_lines_crlf_and_line_numbers(write):
    content = (
        "\ufeffcontact_id,event,timestamp,campaign,properties\r\n"
        "\r\n"
        '"c,1","Product ""Added""",2024-01-01T00:00:00Z,"two\r\nlines","{""note"": ""x""}"\r\n'
        "   \r\n"
        "c2,Page Viewed,2024-01-01T00:00:01Z,,\r\n"
    )
    result = rows(write("e.csv", content))
    assert [(line, item["contact_id"], item["event"]) for line, item, _ in result] == [
        (3, "c,1", 'Product "Added"'),
        (6, "c2", "Page Viewed"),
    ]
    assert result[0][1]["campaign"] == "two\r\nlines"
    assert result[0][1]["properties"] == {"note": "x"}


def test_row_errors_name_the_field_and_keep_going(write):
    content = (
        "contact_id,event,timestamp,properties\n"
        "c1,A,2024-01-01T00:00:00Z,{not json}\n"
        "c2,B,2024-01-01T00:00:00Z,[1]\n"
        "c3,C,2024-01-01T00:00:00Z\n"
        "c4,D,2024-01-01T00:00:00Z,\n"
    )
    result = rows(write("e.csv", content))
    assert [line for line, _, _ in result] == [2, 3, 4, 5]
    assert result[0][1] is None and result[0][2].startswith("properties: invalid JSON (")
    assert result[1][2] == "properties: must be a JSON object, not list"
    assert result[2][2] == "expected 4 columns as in the header, got 3"
    assert result[3] == (5, {"contact_id": "c4", "event": "D", "timestamp": "2024-01-01T00:00:00Z"}, None)


def test_empty_required_value_goes_on_as_none(write):
    result = rows(write("e.csv", "contact_id,event,timestamp\n,A,1\n"))
    assert result == [(2, {"contact_id": None, "event": "A", "timestamp": "1"}, None)]


def test_invalid_utf8_spoils_only_its_row(write):
    content = b"contact_id,event,timestamp\nc1,caf\xe9,1\nc2,ok,2\n"
    result = rows(write("e.csv", content))
    assert result[0] == (2, None, "line 2 is not valid UTF-8")
    assert result[1] == (3, {"contact_id": "c2", "event": "ok", "timestamp": "2"}, None)


def test_gzip_is_read_transparently(write):
    path = write("e.csv.gz", "contact_id,event,timestamp\nc1,A,1\n", gz=True)
    assert rows(path) == [(2, {"contact_id": "c1", "event": "A", "timestamp": "1"}, None)]


def test_streams_with_constant_memory(tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write("contact_id,event,timestamp,properties\n")
        for n in range(100_000):
            fh.write(f'c{n % 977},Page Viewed,{1_700_000_000 + n},"{{""n"": {n}}}"\n')
    tracemalloc.start()
    try:
        count = 0
        line = 0
        for row in LOADERS["csv"](path, mapping=None):
            assert row[2] is None
            line = row[0]
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000 and line == 100_001
    assert peak < 2_000_000, peak  # the file is ~5 MB; a streaming reader holds a few rows
