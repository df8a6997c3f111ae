"""HubSpot: contacts batch upsert by email (100 per call) and manual list membership (lists v3).

Plain HTTP: `hubspot-api-client` wraps the same two endpoints in generated models and would add no
batching, rate limiting or error mapping we do not already need here (ADDING_A_DESTINATION.md).
Docs: /crm/v3/objects/contacts/batch/upsert, /crm/v3/lists/{listId}/memberships/add|remove.
"""

from __future__ import annotations

from datetime import datetime

from integrations.destinations.base import BaseDestination, Outcome, OutcomeBook, Record, Reported

SEARCH_CAP = 10_000  # the search endpoints return at most 10,000 results for one query


class HubSpotDestination(BaseDestination):
    kind = "hubspot"
    batch_size = 100
    max_batch_size = 100  # documented limit of batch/upsert
    default_api_base = "https://api.hubapi.com"
    rate_limit = (10.0, 10)  # private apps: 100 requests / 10 s (190 on Pro+)
    required_credentials = ("token",)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials['token']}"}

    def test_connection(self) -> str:
        self.request("GET", "/crm/v3/objects/contacts", params={"limit": 1})
        if self.settings.get("list_id"):
            self.request("GET", f"/crm/v3/lists/{self.settings['list_id']}")
            return f"token accepted; list {self.settings['list_id']} found"
        return "token accepted"

    def upsert(self, records: list[Record]) -> list[Outcome]:
        book = OutcomeBook()
        sendable = []
        for r in records:
            if not r.email:
                book.fail(r, "no email: HubSpot contacts are upserted by email")
            else:
                sendable.append(r)
        if not sendable:
            return book.result(records)
        body = {"inputs": [
            {"idProperty": "email", "id": r.email.lower(), "properties": {"email": r.email.lower(), **r.fields}}
            for r in sendable
        ]}
        answer = self.request("POST", "/crm/v3/objects/contacts/batch/upsert", json=body).json()
        by_email = {r.email.lower(): r for r in sendable}
        ids: dict[str, Record] = {}
        for result in answer.get("results", []):
            email = str((result.get("properties") or {}).get("email", "")).lower()
            if email in by_email:
                ids[str(result["id"])] = by_email[email]
        for error in answer.get("errors", []):  # 207 multi-status: per-input errors
            context = error.get("context") or {}
            for key in list(context.get("ids", [])) + list(context.get("emails", [])):
                record = by_email.get(str(key).lower())
                if record:
                    book.fail(record, f"{error.get('category', 'error')}: {error.get('message', '')}"[:500])
        list_id = self.settings.get("list_id")
        if list_id and ids:
            added = self.request("PUT", f"/crm/v3/lists/{list_id}/memberships/add", json=list(ids)).json()
            missing = {str(x) for x in added.get("recordIdsMissing", [])}
            for hubspot_id, record in ids.items():
                if hubspot_id in missing:
                    book.fail(record, f"list {list_id}: contact {hubspot_id} missing (deleted?)", suppressed=True)
                else:
                    book.ok(record, hubspot_id)
        else:
            for hubspot_id, record in ids.items():
                book.ok(record, hubspot_id)
        return book.result(records)

    def remove(self, records: list[Record]) -> list[Outcome]:
        book = OutcomeBook()
        list_id = self.settings.get("list_id")
        if not list_id:
            for r in records:
                book.ok(r)  # nothing to leave: contacts are never deleted from the CRM
            return book.result(records)
        known = [r for r in records if r.external_ref]
        for r in records:
            if not r.external_ref:
                book.fail(r, "HubSpot id unknown: it was never delivered by this sync")
        if known:
            self.request("PUT", f"/crm/v3/lists/{list_id}/memberships/remove", json=[r.external_ref for r in known])
            for r in known:  # missing ids were not members any more: that is the wanted state
                book.ok(r)
        return book.result(records)

    reads_back = True

    def read_back(self, *, since) -> list[Reported]:
        """Opted out of email (search on `hs_email_optout`, by `lastmodifieddate`) and deleted
        (archived contacts, by `archivedAt`)."""
        return self._opted_out(since) + self._deleted(since)

    def _opted_out(self, since) -> list[Reported]:
        reports: list[Reported] = []
        floor = int(since.timestamp() * 1000) if since else 0
        while True:
            after, seen, last_modified = None, 0, floor
            while True:
                filters = [{"propertyName": "hs_email_optout", "operator": "EQ", "value": "true"},
                           {"propertyName": "lastmodifieddate", "operator": "GTE", "value": str(floor)}]
                body = {"filterGroups": [{"filters": filters}], "properties": ["email", "lastmodifieddate"],
                        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}], "limit": 100}
                if after:
                    body["after"] = after
                answer = self.request("POST", "/crm/v3/objects/contacts/search", json=body).json()
                for row in answer.get("results", []):
                    props = row.get("properties") or {}
                    reports.append(Reported(email=props.get("email") or "", external_ref=str(row["id"]),
                                            reason="opted out of email in HubSpot"))
                    last_modified = max(last_modified, _millis(props.get("lastmodifieddate")))
                    seen += 1
                after = ((answer.get("paging") or {}).get("next") or {}).get("after")
                if not after or seen >= SEARCH_CAP:
                    break
            if not after or last_modified <= floor:  # done, or one timestamp holds 10,000: stop there
                return reports
            floor = last_modified  # past the cap: the same query again from the newest date seen

    def _deleted(self, since) -> list[Reported]:
        reports: list[Reported] = []
        params = {"archived": "true", "limit": 100, "properties": "email"}
        while True:
            answer = self.request("GET", "/crm/v3/objects/contacts", params=params).json()
            for row in answer.get("results", []):
                when = row.get("archivedAt")
                if since and when and datetime.fromisoformat(when.replace("Z", "+00:00")) < since:
                    continue
                reports.append(Reported(email=(row.get("properties") or {}).get("email") or "",
                                        external_ref=str(row["id"]), reason="deleted in HubSpot"))
            after = ((answer.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return reports
            params = {**params, "after": after}


def _millis(value) -> int:
    """HubSpot dates come back as ISO strings in search results; epoch milliseconds in filters."""
    if not value:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1000)
