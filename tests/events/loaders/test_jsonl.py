import pytest

from funnel_site.events.loaders import LOADERS, MappingError

from .canonical import assert_canonical


def rows(path, mapping=None):
    return list(LOADERS["jsonl"](path, mapping=mapping))


def test_reads_canonical_objects(write):
    path = write(
        "e.jsonl",
        '{"contact_id": "c1", "event": "A", "timestamp": 1700000000000, "value": 3.5, "properties": {"k": 1}}\n'
        "\n"
        '{"contact_id": 42, "event": "B", "timestamp": "2024-01-01T00:00:00Z", "properties": "{\\"x\\": 2}",'
        ' "unknown": 1}\n',
    )
    result = rows(path)
    assert result == [
        (
            1,
            {
                "contact_id": "c1",
                "event": "A",
                "timestamp": 1700000000000,
                "value": 3.5,
                "properties": {"k": 1},
            },
            None,
        ),
        (
            3,
            {"contact_id": "42", "event": "B", "timestamp": "2024-01-01T00:00:00Z", "properties": {"x": 2}},
            None,
        ),
    ]
    for _, item, _ in result:
        assert_canonical(item)


def test_row_errors(write):
    path = write(
        "e.jsonl",
        '{"contact_id": "c1", "event": "A", "timestamp": 1\n'
        "[1, 2]\n"
        '{"contact_id": "c1", "event": "A", "timestamp": 1, "properties": "{oops"}\n'
        '{"contact_id": "c1", "event": "A", "timestamp": 1, "properties": 7}\n'
        '{"contact_id": "c1", "event": "A", "timestamp": 1}\n',
    )
    result = rows(path)
    assert [line for line, _, _ in result] == [1, 2, 3, 4, 5]
    assert result[0][1] is None and result[0][2].startswith("invalid JSON (")
    assert result[1][2] == "the line is a JSON list, not an object"
    assert result[2][2].startswith("properties: invalid JSON (")
    assert result[3][2] == "properties: must be an object, not int"
    assert result[4][2] is None


def test_missing_required_keys_go_on_as_none(write):
    assert rows(write("e.jsonl", '{"event": "A"}\n')) == [
        (1, {"contact_id": None, "event": "A", "timestamp": None}, None)
    ]


def test_mapping(write):
    path = write("e.jsonl", '{"user": "u", "action": "A", "ts": 5}\n')
    assert rows(path, {"contact_id": "user", "event": "action", "timestamp": "ts"}) == [
        (1, {"contact_id": "u", "event": "A", "timestamp": 5}, None)
    ]
    with pytest.raises(MappingError):
        LOADERS["jsonl"](path, mapping={"nope": "x"})


def test_gzip_and_bom(write):
    path = write("e.jsonl.gz", '\ufeff{"contact_id": "c", "event": "A", "timestamp": 1}\n', gz=True)
    assert rows(path) == [(1, {"contact_id": "c", "event": "A", "timestamp": 1}, None)]
