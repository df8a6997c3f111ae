import pytest

from funnel_site.events.loaders import LOADERS, MissingColumnError

from .canonical import assert_canonical
from .conftest import dataset

MASTER = (
    " customer_id  date number_of_cds  dollar_value\r\n"
    " 00001 19970101  1   11.77\r\n"
    " 00002 19970112  1   12.00\r\n"
    " 00002 19970112  5   77.00\r\n"
    " 00002 19970112  1   12.00\r\n"
    " 00003 19970102  2   20.76\r\n"
    " 00003 19970102  2   20.76\r\n"
)


def rows(path, mapping=None):
    return list(LOADERS["cdnow"](path, mapping=mapping))


def test_orders_with_header(write):
    result = rows(write("CDNOW_master.txt", MASTER))
    assert result[0] == (
        2,
        {
            "contact_id": "00001",
            "event": "Order Completed",
            "timestamp": "1997-01-01T12:00:00Z",
            "value": 11.77,
            "message_id": "cdnow:00001:19970101:1:11.77",
            "properties": {"cds": 1},
        },
        None,
    )
    ids = [item["message_id"] for _, item, _ in result]
    assert ids == [
        "cdnow:00001:19970101:1:11.77",
        "cdnow:00002:19970112:1:12.00",
        "cdnow:00002:19970112:5:77.00",
        "cdnow:00002:19970112:1:12.00#1",  # a real second order: an occurrence counter
        "cdnow:00003:19970102:2:20.76",
        "cdnow:00003:19970102:2:20.76#1",
    ]
    assert [line for line, _, _ in result] == [2, 3, 4, 5, 6, 7]
    for _, item, _ in result:
        assert_canonical(item)
    assert rows(write("again.txt", MASTER)) == result  # deterministic: a re-import dedupes


def test_headerless_and_sample_layout_give_the_same_ids(write):
    plain = rows(write("a.txt", " 00004 19970101  2   29.33\n"))
    sample = rows(write("CDNOW_sample.txt", " 00004 0001 19970101  2   29.33\n"))
    assert plain == sample


def test_row_errors(write):
    result = rows(
        write("c.txt", "1 19970101 1\n1 1997-01-01 1 2\n1 19971301 1 2\n1 19970101 x 2\n1 19970101 1 $2\n")
    )
    assert [error for _, _, error in result] == [
        "expected 4 whitespace-separated fields (customer_id date number_of_cds dollar_value), got 3",
        "date: not a YYYYMMDD date ('1997-01-01')",
        "date: not a YYYYMMDD date ('19971301')",
        "number_of_cds: not an integer ('x')",
        "dollar_value: not a number ('$2')",
    ]


def test_header_must_name_the_columns(write):
    with pytest.raises(MissingColumnError) as info:
        LOADERS["cdnow"](write("c.txt", "customer_id date cds dollar_value\n1 19970101 1 2\n"), mapping=None)
    assert str(info.value) == "missing required column 'number_of_cds'"
    path = write("d.txt", "customer date number_of_cds amount\n1 19970101 1 2\n")
    assert rows(path, {"contact_id": "customer", "value": "amount"})[0][1]["value"] == 2.0


def test_real_files(datasets):
    master = [
        item
        for _, item, error in LOADERS["cdnow"](dataset("cdnow/CDNOW_master.txt"), mapping=None)
        if not error
    ]
    assert len(master) == 69_659
    assert len({item["contact_id"] for item in master}) == 23_570
    assert len({item["message_id"] for item in master}) == 69_659
    sample = [
        item
        for _, item, error in LOADERS["cdnow"](dataset("cdnow/CDNOW_sample.txt"), mapping=None)
        if not error
    ]
    assert len({item["contact_id"] for item in sample}) == 2_357
    master_ids = {item["message_id"] for item in master}
    assert all(item["message_id"] in master_ids for item in sample)
