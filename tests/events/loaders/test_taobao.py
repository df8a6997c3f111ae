import pytest

from funnel_site.events.loaders import LOADERS, MappingError, MissingColumnError
from funnel_site.events.loaders.taobao import WINDOW

from .canonical import assert_canonical
from .conftest import dataset

HEADER = "user_id,item_id,category_id,behavior_type,timestamp\n"


def rows(path, mapping=None):
    return list(LOADERS["taobao"](path, mapping=mapping))


def test_window_is_the_official_one_in_utc_plus_8():
    # 2017-11-25 00:00:00 UTC+8 = 2017-11-24 16:00:00 UTC; 2017-12-03 23:59:59 UTC+8
    assert WINDOW == (1511539200, 1512316799)


def test_rows_become_items(write):
    path = write("t.csv", HEADER + "1,2268318,2520377,pv,1511544070\n1,2333346,2520771,buy,1511561733\n")
    result = rows(path)
    assert result[0] == (
        2,
        {
            "contact_id": "1",
            "event": "pv",
            "timestamp": 1511544070,
            "message_id": "taobao:1:2268318:pv:1511544070",
            "properties": {"item_id": "2268318", "category_id": "2520377"},
        },
        None,
    )
    assert result[1][1]["event"] == "buy"
    for _, item, _ in result:
        assert_canonical(item)


def test_out_of_window_and_bad_rows_are_row_errors(write):
    path = write(
        "t.csv",
        HEADER + "1,2,3,pv,1511539199\n1,2,3,pv,1511539200\n1,2,3,pv,1512316800\n1,2,3,pv,soon\n1,2,3\n",
    )
    result = rows(path)
    assert [(line, error) for line, _, error in result] == [
        (2, "timestamp outside the dataset window (2017-11-25 .. 2017-12-03 UTC+8)"),
        (3, None),
        (4, "timestamp outside the dataset window (2017-11-25 .. 2017-12-03 UTC+8)"),
        (5, "timestamp: not unix seconds ('soon')"),
        (6, "expected 5 columns, got 3"),
    ]


def test_headerless_official_file(write):
    result = rows(write("UserBehavior.csv", "1,2,3,cart,1511600000\n"))
    assert result == [
        (
            1,
            {
                "contact_id": "1",
                "event": "cart",
                "timestamp": 1511600000,
                "message_id": "taobao:1:2:cart:1511600000",
                "properties": {"item_id": "2", "category_id": "3"},
            },
            None,
        )
    ]
    with pytest.raises(MappingError):
        LOADERS["taobao"](write("u.csv", "1,2,3,cart,1511600000\n"), mapping={"contact_id": "uid"})


def test_identical_rows_share_an_id_so_the_ingest_counts_a_duplicate(write):
    result = rows(write("t.csv", HEADER + "1,2,3,pv,1511600000\n1,2,3,pv,1511600000\n"))
    assert result[0][1]["message_id"] == result[1][1]["message_id"]


def test_mapping_by_canonical_or_taobao_name_and_missing_column(write):
    path = write("t.csv", "uid,item_id,category_id,kind,ts\n9,2,3,fav,1511600000\n")
    mapping = {"contact_id": "uid", "behavior_type": "kind", "timestamp": "ts"}
    assert rows(path, mapping)[0][1]["contact_id"] == "9"
    with pytest.raises(MissingColumnError) as info:
        LOADERS["taobao"](path, mapping=None)
    assert str(info.value) == "missing required column 'user_id'"


def test_real_file(datasets):
    path = dataset("taobao/UserBehavior_first814users_clean.csv")
    items, errors, ids, buyers = 0, [], set(), set()
    for _line, item, error in LOADERS["taobao"](path, mapping=None):
        if error:
            errors.append(error)
            continue
        items += 1
        ids.add(item["message_id"])
        if item["event"] == "buy":
            buyers.add(item["contact_id"])
    assert items + len(errors) == 84_287
    assert len(errors) == 35 and set(errors) == {
        "timestamp outside the dataset window (2017-11-25 .. 2017-12-03 UTC+8)"
    }
    assert len(ids) == items  # re-import dedupes and nothing in the file collides
    assert len(buyers) == 558  # 559 in the README counts one purchase outside the window
