"""A scoring shard's staged rows as one binary COPY built by numpy (PostgreSQL).

Every row of a shard has the same shape: fixed-width numbers, the run's target and two timestamps
that are constant per shard, so the whole COPY stream is one numpy structured array (the
format's length-prefixed fields as big-endian columns) turned into bytes: no Python step per row,
and PostgreSQL parses no text (timestamps and floats in text cost it more than the insert).
Format: https://www.postgresql.org/docs/current/sql-copy.html ("Binary Format").
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")  # flags, extension
TRAILER = (-1).to_bytes(2, "big", signed=True)
PG_EPOCH_US = 946_684_800 * 1_000_000  # binary timestamps count microseconds from 2000-01-01 UTC
COLUMNS = ("workspace_id", "model_version_id", "contact_id", "target", "scoring_run_id", "is_current",
           "probability", "raw_score", "as_of", "scored_at", "factors")
_EMPTY_JSONB = b"\x01[]"  # jsonb's binary form: a version byte, then the text


def _pg_micros(moment: datetime) -> int:
    return round(moment.timestamp() * 1_000_000) - PG_EPOCH_US


def staged_rows_copy(*, workspace_id: int, model_version_id: int, scoring_run_id: int, target: str,
                     as_of: datetime, scored_at: datetime, contacts: np.ndarray, probabilities: np.ndarray,
                     raw_scores: np.ndarray) -> bytes:
    """The COPY ... FROM STDIN (FORMAT binary) stream of a shard's staged (not current) rows, in COLUMNS order."""
    target_bytes = target.encode()
    values = [  # (column, element type, value: a constant or one per row)
        ("workspace_id", ">i8", workspace_id), ("model_version_id", ">i8", model_version_id),
        ("contact_id", ">i8", contacts), ("target", f"S{len(target_bytes)}", target_bytes),
        ("scoring_run_id", ">i8", scoring_run_id), ("is_current", "u1", 0),
        ("probability", ">f8", probabilities), ("raw_score", ">f8", raw_scores),
        ("as_of", ">i8", _pg_micros(as_of)), ("scored_at", ">i8", _pg_micros(scored_at)),
        ("factors", f"S{len(_EMPTY_JSONB)}", _EMPTY_JSONB),
    ]
    fields = [("count", ">i2")]
    for name, kind, _ in values:
        fields += [(f"{name}_length", ">i4"), (name, kind)]
    rows = np.empty(len(contacts), dtype=np.dtype(fields))  # packed: no padding between fields
    rows["count"] = len(values)
    for name, kind, value in values:
        rows[f"{name}_length"] = np.dtype(kind).itemsize
        rows[name] = value
    return SIGNATURE + rows.tobytes() + TRAILER
