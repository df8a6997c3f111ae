"""The DuckDB reference and the engine give the same unique sequential counts."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from funnel_site.funnels.engine import EventColumns, funnel_compute, funnel_definition_from_strings
from funnel_site.funnels.engine.benchmark import NAMES
from funnel_site.funnels.engine.duckdb_reference import duckdb_sequential_counts


def test_duckdb_reference_matches_the_engine():
    rng = np.random.default_rng(5)
    contacts, per_contact = 2_000, 15
    contact = np.repeat(np.arange(contacts, dtype=np.int64), per_contact)
    ts = rng.integers(0, 3 * 86_400 // 600, size=contact.size) * 600 * 1_000_000  # 10-minute grid: ties
    name = rng.integers(0, 6, size=contact.size)
    order = np.lexsort((ts, contact))
    contact, ts, name = contact[order], ts[order], name[order]
    lookup = np.array([1, 2, 4, 8, 0, 0], dtype=np.uint32)
    columns = EventColumns(contact=contact, ts=ts, step_mask=lookup[name])
    connection = duckdb.connect()
    connection.register("events", pd.DataFrame({"contact": contact, "ts": ts, "name": np.array(NAMES)[name]}))
    for window in ("1h", "6h", "1d"):
        definition = funnel_definition_from_strings(steps=NAMES[:4], window=window)
        engine = [step.count for step in funnel_compute(definition=definition, columns=columns).steps]
        reference = duckdb_sequential_counts(
            connection, "events", [[n] for n in NAMES[:4]], definition.window_seconds
        )
        assert engine == reference
    assert engine[3] > 0  # the widest window converts some contacts
