"""`manage.py funnel`: the contract of DESIGN section 4 (flags, --json keys, exit codes)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from .helpers import DAY, ingest

pytestmark = pytest.mark.django_db

CONTRACT_KEYS = {"event", "count", "conversion_from_previous", "conversion_from_start", "median_seconds_from_previous"}


@pytest.fixture
def shop(workspace_with_key):
    workspace = workspace_with_key[0]
    ingest(workspace, [
        ("a", 0, "pv", {"campaign": "spring"}), ("a", 100, "cart"), ("a", 400, "buy"),
        ("b", 0, "pv"), ("b", 200, "cart"), ("b", 3 * DAY, "buy"),
        ("c", 0, "pv"), ("c", 10, "Refund"), ("c", 50, "cart"),
        ("d", 0, "cart"),
    ])
    return workspace


def funnel(*args: str) -> dict:
    out = StringIO()
    call_command("funnel", "--workspace", "acme", *args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_json_has_the_contract_keys_and_numbers(shop):
    data = funnel("--steps", "pv,cart,buy", "--window", "1d", "--order", "sequential")
    assert [s["event"] for s in data["steps"]] == ["pv", "cart", "buy"]
    assert all(set(s) >= CONTRACT_KEYS for s in data["steps"])
    assert [s["count"] for s in data["steps"]] == [3, 3, 1]
    assert data["steps"][1]["conversion_from_previous"] == 1.0
    assert data["steps"][2]["conversion_from_start"] == round(1 / 3, 4)
    assert data["steps"][1]["median_seconds_from_previous"] == 100.0  # 50, 100, 200
    assert data["steps"][2]["median_seconds_from_previous"] == 300.0


def test_every_option_of_the_contract(shop):
    assert [s["count"] for s in funnel("--steps", "pv,cart,buy", "--window", "2w")["steps"]] == [3, 3, 2]
    assert [s["count"] for s in funnel("--steps", "pv,cart", "--exclude", "Refund:1-2")["steps"]] == [2, 2]
    assert [s["count"] for s in funnel("--steps", "cart,pv", "--order", "any")["steps"]] == [4, 3]
    assert [s["count"] for s in funnel("--steps", "pv,cart", "--order", "strict")["steps"]] == [3, 2]
    assert [s["count"] for s in funnel("--steps", "pv,cart", "--count", "totals")["steps"]] == [3, 3]
    data = funnel("--steps", "pv,cart", "--since", "2026-01-01T00:00:30Z", "--until", "2026-02-01")
    assert [s["count"] for s in data["steps"]] == [0, 0]
    data = funnel("--steps", "pv,cart", "--breakdown", "campaign")
    assert {b["value"]: b["steps"][1]["count"] for b in data["breakdown"]} == {"spring": 1, None: 2}
    data = funnel("--steps", "stage:interest,stage:consideration")
    assert data["steps"][0]["event"] == "stage:interest"


def test_optional_steps_and_property_filters(workspace_with_key):
    workspace = workspace_with_key[0]
    ingest(workspace, [
        ("a", 0, "pv"), ("a", 10, "cart", {"properties": {"plan": "pro", "price": 30}}), ("a", 20, "buy"),
        ("b", 0, "pv"), ("b", 20, "buy"),  # skips the cart: counted only when the cart is optional
        ("c", 0, "pv"), ("c", 10, "cart", {"properties": {"plan": "free", "price": 5}}), ("c", 20, "buy"),
        ("d", 0, "pv"), ("d", 10, "cart", {"properties": {"plan": "team", "price": 50, "tags": "sale,new"}}),
    ])
    assert [s["count"] for s in funnel("--steps", "pv,cart,buy")["steps"]] == [4, 3, 2]
    assert [s["count"] for s in funnel("--steps", "pv,cart,buy", "--optional", "2")["steps"]][2] == 3
    assert [s["count"] for s in funnel("--steps", "pv,cart,buy", "--where", "2:plan=pro")["steps"]] == [4, 1, 1]
    assert [s["count"] for s in funnel("--steps", "pv,cart", "--where", "2:plan=pro|team")["steps"]] == [4, 2]
    assert [s["count"] for s in funnel("--steps", "pv,cart", "--where", "2:price>20")["steps"]] == [4, 2]
    assert [s["count"] for s in funnel("--steps", "pv,cart", "--where", "2:price<20")["steps"]] == [4, 1]
    assert [s["count"] for s in funnel("--steps", "pv,cart", "--where", "2:tags~sale")["steps"]] == [4, 1]
    both = funnel("--steps", "pv,cart,buy", "--where", "2:price>20", "--where", "2:plan=pro")
    assert [s["count"] for s in both["steps"]] == [4, 1, 1]
    either = funnel("--steps", "pv|view,cart,buy", "--optional", "2", "--where", "2:plan=pro")
    assert [s["count"] for s in either["steps"]][0] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--optional", "1"], "--optional (step 1)"),
        (["--optional", "7"], "--optional: step 7 does not exist"),
        (["--optional", "two"], "--optional: 'two' is not a step number"),
        (["--where", "plan=pro"], "--where 'plan=pro' must be STEP:KEY=VALUE"),
        (["--where", "5:plan=pro"], "--where: step 5 does not exist"),
        (["--where", "2:price>cheap"], "--where (step 2)"),
    ],
)
def test_bad_optional_or_where_names_the_flag(shop, args, message):
    with pytest.raises(CommandError) as caught:
        call_command("funnel", "--workspace", "acme", "--steps", "pv,cart,buy", *args, "--json", stdout=StringIO())
    assert str(caught.value).startswith(message), str(caught.value)


def test_unknown_event_is_a_warning_not_an_error(shop):
    err = StringIO()
    out = StringIO()
    call_command("funnel", "--workspace", "acme", "--steps", "pv,Nope", "--json", stdout=out, stderr=err)
    assert [s["count"] for s in json.loads(out.getvalue())["steps"]] == [3, 0]
    assert "Nope" in err.getvalue()


def test_human_output_is_a_table(shop):
    out = StringIO()
    call_command("funnel", "--workspace", "acme", "--steps", "pv,cart", stdout=out)
    assert "pv" in out.getvalue() and "100.0%" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--steps", "pv"], "--steps"),
        (["--steps", ",".join(f"e{i}" for i in range(21))], "--steps"),
        (["--steps", "pv,cart", "--window", "fortnight"], "--window"),
        (["--steps", "pv,cart", "--window", "91d"], "--window"),
        (["--steps", "pv,cart", "--window", "0s"], "--window"),
        (["--steps", "pv,cart", "--order", "random"], "--order"),
        (["--steps", "pv,cart", "--exclude", "Refund:2-1"], "--exclude"),
        (["--steps", "pv,cart", "--exclude", "Refund"], "--exclude"),
        (["--steps", "pv,cart", "--count", "some"], "--count"),
        (["--steps", "pv,cart", "--since", "yesterday"], "--since"),
        (["--steps", "pv,cart", "--breakdown", "colour"], "--breakdown"),
        (["--steps", "pv,stage:nirvana"], "--steps"),
    ],
)
def test_invalid_input_fails_naming_the_flag(shop, args, flag):
    with pytest.raises(CommandError) as caught:
        call_command("funnel", "--workspace", "acme", *args, "--json", stdout=StringIO())
    assert str(caught.value).startswith(flag), str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_workspace_fails(db):
    with pytest.raises(CommandError, match="nosuch"):
        call_command("funnel", "--workspace", "nosuch", "--steps", "a,b", stdout=StringIO())


def test_time_limit_stops_the_query_with_an_error(shop):
    with pytest.raises(CommandError, match="time limit"):
        call_command("funnel", "--workspace", "acme", "--steps", "pv,cart", "--timeout", "0", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_exit_code_is_non_zero_in_a_real_process(shop):
    import subprocess
    import sys

    from tests.conftest import ROOT, subprocess_env

    proc = subprocess.run([sys.executable, "manage.py", "funnel", "--workspace", "acme", "--steps", "pv", "--json"],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--steps" in proc.stderr and proc.stdout == ""
