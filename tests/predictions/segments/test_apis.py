"""The segments API: CRUD, members, preview, refresh, history; errors naming the field; roles;
and another workspace's key never reaching acme's segments."""

from __future__ import annotations

import math

import pytest

from predictions.models import Segment, SegmentMembership

pytestmark = pytest.mark.django_db
TOP10 = {"score": {"target": "purchase", "top_percent": 10}}


def top(g, percent):
    scores = g.scores["purchase"]
    ranked = sorted(scores, key=lambda c: (-scores[c], g.contact_ids[c]))
    return ranked[: math.ceil(percent * len(ranked) / 100)]


def create(api, name="best", definition=None):
    return api.post("/api/v1/segments", {"name": name, "definition": definition or TOP10}, format="json")


def test_list_has_the_defaults_with_sizes(api, generated):
    body = api.get("/api/v1/segments").json()
    assert {"results", "next"} <= set(body)
    rows = {r["name"]: r for r in body["results"]}
    assert set(rows) == {"Likely purchasers", "Churn risk"}
    assert {"id", "name", "definition", "size"} <= set(rows["Churn risk"])
    api.post(f"/api/v1/segments/{rows['Likely purchasers']['id']}/refresh")
    sizes = {r["name"]: r["size"] for r in api.get("/api/v1/segments").json()["results"]}
    assert sizes["Likely purchasers"] == len(top(generated, 10))


def test_create_read_update_delete(api, generated):
    resp = create(api)
    assert resp.status_code == 201, resp.content
    segment = resp.json()
    assert segment["size"] == len(top(generated, 10)) and segment["definition"] == TOP10
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["name"] == "best"

    resp = api.patch(f"/api/v1/segments/{segment['id']}",
                     {"definition": {"score": {"target": "purchase", "top_percent": 50}}}, format="json")
    assert resp.status_code == 200 and resp.json()["size"] == len(top(generated, 50))
    assert resp.json()["name"] == "best"
    resp = api.put(f"/api/v1/segments/{segment['id']}",
                   {"name": "renamed", "definition": {"email": {"op": "ends_with", "value": "@example.com"}}},
                   format="json")
    assert resp.status_code == 200
    assert resp.json()["size"] == sum(e.endswith("@example.com") for e in generated.emails.values())
    assert api.put(f"/api/v1/segments/{segment['id']}", {"name": "x"}, format="json").json()["field"] == "definition"
    half = api.patch(f"/api/v1/segments/{segment['id']}", {"definition": {"score": {"top_percent": 5}}}, format="json")
    assert half.status_code == 400 and half.json()["field"] == "definition.score.target"
    assert api.delete(f"/api/v1/segments/{segment['id']}").status_code == 204
    assert api.get(f"/api/v1/segments/{segment['id']}").status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "a", "definition": {"score": {"target": "purchase", "min_probability": 1.2}}},
     "definition.score.min_probability"),
    ({"name": "a", "definition": {"score": {"target": "purchase", "top_percent": 0}}}, "definition.score.top_percent"),
    ({"name": "a", "definition": {"score": {"target": "purchase", "top_percent": 101}}},
     "definition.score.top_percent"),
    ({"name": "a", "definition": {}}, "definition"),
    ({"name": "a"}, "definition"),
    ({"name": "a", "definition": {"funnel": {"id": 987654, "step": 1}}}, "definition.funnel.id"),
    ({"name": "a", "definition": {"score": {"target": "ltv", "top_percent": 5}}}, "definition.score.target"),
    ({"name": "", "definition": TOP10}, "name"),
    ({"name": "Churn risk", "definition": TOP10}, "name"),
])
def test_bad_input_is_a_400_naming_the_field(api, body, field):
    resp = api.post("/api/v1/segments", body, format="json")
    assert resp.status_code == 400, resp.content
    assert resp.json()["field"] == field, resp.json()
    assert resp.json()["error"].startswith(field)
    preview = api.post("/api/v1/segments/preview", {"definition": body.get("definition")}, format="json")
    if field.startswith("definition"):
        assert preview.status_code == 400 and preview.json()["field"] == field


def test_members_with_scores_paginated_and_bounded(api, generated):
    segment = create(api, definition={"score": {"target": "purchase", "top_percent": 50}}).json()
    expected = top(generated, 50)
    page = api.get(f"/api/v1/segments/{segment['id']}/members?limit=5").json()
    assert len(page["results"]) == 5 and page["next"]
    row = page["results"][0]
    assert {"contact_id", "email", "entered_at", "scores"} <= set(row)
    purchase = row["scores"]["purchase"]
    assert purchase["probability"] == generated.scores["purchase"][row["contact_id"]]
    assert 0 <= purchase["percentile"] <= 100 and purchase["top_factor"]["text"].startswith("Viewed a product")
    # the best contact is at the top percentile
    seen = []
    url = f"/api/v1/segments/{segment['id']}/members?limit=7"
    while url:
        body = api.get(url).json()
        seen += [r["contact_id"] for r in body["results"]]
        url = body["next"]
    assert sorted(seen) == sorted(expected)
    best = [r for r in api.get(f"/api/v1/segments/{segment['id']}/members?limit=500").json()["results"]
            if r["contact_id"] == expected[0]][0]
    n = len(generated.scores["purchase"])
    assert best["scores"]["purchase"]["percentile"] == round(100 * (n - 1) / n, 2)
    too_many = api.get(f"/api/v1/segments/{segment['id']}/members?limit=100000")  # past the 500 a page
    assert too_many.status_code == 400 and too_many.json()["field"] == "limit", too_many.content


def test_preview_saves_nothing(api, generated):
    before = (Segment.objects.count(), SegmentMembership.objects.count())
    resp = api.post("/api/v1/segments/preview", {"definition": TOP10, "sample": 3}, format="json")
    assert resp.status_code == 200
    assert resp.json()["size"] == len(top(generated, 10)) and len(resp.json()["sample"]) == 3
    assert {s["contact_id"] for s in resp.json()["sample"]} <= set(top(generated, 10))
    assert (Segment.objects.count(), SegmentMembership.objects.count()) == before
    assert api.post("/api/v1/segments/preview", {"definition": TOP10, "sample": 1000},
                    format="json").json()["field"] == "sample"


def test_refresh_and_history(api, generated):
    segment = create(api).json()
    again = api.post(f"/api/v1/segments/{segment['id']}/refresh").json()
    assert again["entered"] == 0 and again["exited"] == 0 and again["size"] == segment["size"]
    history = api.get(f"/api/v1/segments/{segment['id']}/history").json()["results"]
    assert [h["size"] for h in history] == [segment["size"]] * 2
    assert history[0]["entered"] == segment["size"] and history[1]["entered"] == 0


def test_viewer_reads_and_previews_but_cannot_write(api, viewer_api, generated):
    segment = create(api).json()
    sid = segment["id"]
    for path in ("/api/v1/segments", f"/api/v1/segments/{sid}", f"/api/v1/segments/{sid}/members",
                 f"/api/v1/segments/{sid}/history"):
        assert viewer_api.get(path).status_code == 200, path
    assert viewer_api.post("/api/v1/segments/preview", {"definition": TOP10}, format="json").status_code == 200
    writes = [
        ("post", "/api/v1/segments", {"name": "v", "definition": TOP10}),
        ("put", f"/api/v1/segments/{sid}", {"name": "v", "definition": TOP10}),
        ("patch", f"/api/v1/segments/{sid}", {"name": "v"}),
        ("delete", f"/api/v1/segments/{sid}", None),
        ("post", f"/api/v1/segments/{sid}/refresh", None),
    ]
    for method, path, body in writes:
        resp = getattr(viewer_api, method)(path, body, format="json")
        assert resp.status_code == 403, (method, path, resp.content)
        assert "editor" in resp.json()["error"]
    assert Segment.objects.get(pk=sid).name == "best"


def test_another_workspace_never_reaches_acmes_segments(api, other_api, generated):
    segment = create(api).json()
    sid = segment["id"]
    secret = top(generated, 10)[0]
    assert secret.encode() in api.get(f"/api/v1/segments/{sid}/members").content
    for path in (f"/api/v1/segments/{sid}", f"/api/v1/segments/{sid}/members", f"/api/v1/segments/{sid}/history"):
        resp = other_api.get(path)
        assert resp.status_code == 404 and secret.encode() not in resp.content
    for method in ("put", "patch", "delete"):
        assert getattr(other_api, method)(f"/api/v1/segments/{sid}", {"name": "x", "definition": TOP10},
                                          format="json").status_code == 404
    assert other_api.post(f"/api/v1/segments/{sid}/refresh").status_code == 404
    listed = other_api.get("/api/v1/segments").json()["results"]
    assert sid not in [r["id"] for r in listed] and all(r["size"] == 0 for r in listed)
    # globex's preview of the same definition sees none of acme's scores
    assert other_api.post("/api/v1/segments/preview", {"definition": TOP10}, format="json").json()["size"] == 0
    assert Segment.objects.get(pk=sid).name == "best"


def test_the_grammar_is_the_openapi_schema(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    components = schema["components"]["schemas"]
    condition = components["Condition"]["properties"]
    assert set(condition) == {"and", "or", "not", "score", "stage", "funnel", "trait", "email"}
    assert condition["and"]["items"]["$ref"].endswith("/Condition")  # recursive, as accepted
    assert components["ScoreCondition"]["properties"]["min_probability"]["maximum"] == 1
    assert "definition" in components["SegmentInput"]["required"]
    paths = schema["paths"]
    assert {"/api/v1/segments", "/api/v1/segments/preview", "/api/v1/segments/{segment_id}",
            "/api/v1/segments/{segment_id}/members", "/api/v1/segments/{segment_id}/refresh",
            "/api/v1/segments/{segment_id}/history"} <= set(paths)
