from pathlib import Path

import pytest

from funnel_site.events import loaders
from funnel_site.events.loaders import FORMATS, LOADERS, LoaderError, guess_format, open_text

from .conftest import dataset


def test_registry():
    assert set(LOADERS) == {"csv", "jsonl", "segment", "taobao", "cdnow", "completejourney", "olist"}
    assert tuple(LOADERS) == FORMATS
    with pytest.raises(LoaderError):
        loaders.get_loader("xml")


def test_open_text_reads_gzip_and_drops_the_bom(write):
    assert open_text(write("a.txt.gz", "\ufeffhello\n", gz=True)).read() == "hello\n"
    assert open_text(write("b.txt", "\ufeffhello\r\n")).read() == "hello\r\n"


def test_read_helper(write):
    path = write("e.csv", "contact_id,event,timestamp\nc,A,1\n")
    assert list(loaders.read(str(path), "csv")) == [
        (2, {"contact_id": "c", "event": "A", "timestamp": "1"}, None)
    ]


def test_guess_format(tmp_path):
    assert guess_format(tmp_path / "events.csv") == "csv"
    assert guess_format(tmp_path / "events.jsonl.gz") == "jsonl"
    assert guess_format(Path("CDNOW_master.txt")) == "cdnow"
    assert guess_format(Path("UserBehavior.csv")) == "taobao"


def test_guess_format_of_the_real_folders(datasets):
    assert guess_format(dataset("completejourney")) == "completejourney"
    assert guess_format(dataset("olist_marketing_funnel")) == "olist"


def test_every_loader_yields_rows_lazily(write):
    gen = LOADERS["csv"](write("e.csv", "contact_id,event,timestamp\nc,A,1\n"), mapping=None)
    assert iter(gen) is gen  # a generator: nothing is read until asked
