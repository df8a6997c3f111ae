"""The file import's fast validation of canonical CSV records agrees with `validate_item` exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from funnel_site.events.loaders.canonical_csv import record_to_item
from funnel_site.events.validation import ItemError, validate_item, validate_record

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)


def texts(limit: int, required: bool):
    values = st.one_of(
        st.sampled_from(["a", "Order Completed", "x" * limit, "x" * (limit + 1), "é" * 3]),
        st.text(alphabet="ab -_.", min_size=1, max_size=8).map(str.strip).filter(bool),
    )
    return st.one_of(st.none(), values) if required else st.one_of(st.just(""), values)


timestamps = st.one_of(
    st.none(),
    st.sampled_from([
        "2026-05-31T10:00:00Z", "2026-05-31T10:00:00", "2026-05-31T10:00:00.123+02:00", "2026-05-31",
        "2026-06-03T00:00:00Z",  # more than a day ahead
        "1969-12-31T23:59:59Z", "1780000000", "1780000000000", "1700000000", "1700000000.5", "0", "-5",
        "99999999999", "1e9", "nonsense", "2026-13-01T00:00:00Z", "NaN", "inf",
    ]),
    st.integers(min_value=0, max_value=2_000_000_000).map(str),
)
values = st.one_of(st.just(""), st.sampled_from(["12.5", "0", "-3", "1_000", "nan", "inf", "abc", "1e400", "7"]))
objects = st.one_of(st.none(), st.just({}), st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-(2**63), 2**63 - 1), max_size=2))


@settings(max_examples=2000, deadline=None)
@given(
    contact_id=texts(255, required=True),
    event=texts(200, required=True),
    timestamp=timestamps,
    campaign=texts(200, required=False),
    channel=texts(100, required=False),
    value=values,
    message_id=texts(255, required=False),
    properties=objects,
    email=texts(254, required=False),
    traits=objects,
)
def test_validate_record_matches_validate_item(contact_id, event, timestamp, campaign, channel, value,
                                               message_id, properties, email, traits):
    record = (contact_id, event, timestamp, campaign, channel, value, message_id, properties, email, traits)
    outcomes = []
    for validate, raw in ((validate_record, record), (validate_item, record_to_item(record))):
        try:
            outcomes.append(validate(raw, now=NOW, max_future=MAX_FUTURE))
        except ItemError as exc:
            outcomes.append(("error", exc.field, str(exc)))
    assert outcomes[0] == outcomes[1]
