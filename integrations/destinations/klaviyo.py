"""Klaviyo (JSON:API, `revision` header required): profiles created or updated through the bulk
profile import job (up to 10,000 a job; we send 1,000, the size of a list-relationship call) with
the list attached, so one call both upserts and subscribes to the list; the job is polled to
`complete` and its import errors read back, so a refused profile is a failed record; leavers are taken off with
DELETE /api/lists/{id}/relationships/profiles (up to 1,000 ids), the ids found by email through
GET /api/profiles with an `any(email, [...])` filter (100 a page). Auth: `Klaviyo-API-Key`.

Plain HTTP: the `klaviyo-api` SDK pins a revision and wraps these calls without batching or retries.
"""

from __future__ import annotations

import json
import time

from integrations.destinations.base import (
    BaseDestination,
    BatchRejected,
    Outcome,
    OutcomeBook,
    Record,
    Reported,
    TransientError,
)

REVISION = "2024-10-15"


class KlaviyoDestination(BaseDestination):
    kind = "klaviyo"
    batch_size = 1000
    max_batch_size = 1000
    default_api_base = "https://a.klaviyo.com"
    rate_limit = (10.0, 10)  # bulk import and list relationships: 10/s burst, 150/min steady
    required_settings = ("list_id",)
    required_credentials = ("api_key",)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Klaviyo-API-Key {self.credentials['api_key']}",
                "revision": self.settings.get("revision") or REVISION,
                "Accept": "application/vnd.api+json", "Content-Type": "application/vnd.api+json"}

    def test_connection(self) -> str:
        self.request("GET", f"/api/lists/{self.settings['list_id']}")
        return f"API key accepted; list {self.settings['list_id']} found"

    def upsert(self, records: list[Record]) -> list[Outcome]:
        book = OutcomeBook()
        sendable = [r for r in records if r.email]
        for r in records:
            if not r.email:
                book.fail(r, "no email: Klaviyo profiles are imported by email")
        if sendable:
            body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
                {"type": "profile", "attributes": {"email": r.email, "external_id": r.external_id, "properties": r.fields}}
                for r in sendable]}},
                "relationships": {"lists": {"data": [{"type": "list", "id": self.settings["list_id"]}]}}}}
            answer = self.request("POST", "/api/profile-bulk-import-jobs", data=json.dumps(body)).json()
            job = (answer.get("data") or {}).get("id", "")
            refused = self._job_errors(job)
            for r in sendable:
                if r.email.lower() in refused:
                    book.fail(r, refused[r.email.lower()])
                else:
                    book.ok(r, r.external_ref or "")
        return book.result(records)

    def _job_errors(self, job: str) -> dict[str, str]:
        """Wait for the import job to finish, then {email: error} of the profiles it refused."""
        deadline = time.monotonic() + float(self.settings.get("job_timeout_seconds") or 600)
        while True:
            status = self.request("GET", f"/api/profile-bulk-import-jobs/{job}").json()["data"]["attributes"]["status"]
            if status == "complete":
                break
            if status == "cancelled":
                raise BatchRejected(f"Klaviyo import job {job} was cancelled", 400)
            if time.monotonic() > deadline:
                raise TransientError(f"Klaviyo import job {job} still {status} after the timeout")
            time.sleep(float(self.settings.get("job_poll_seconds") or 2))
        refused: dict[str, str] = {}
        path = f"/api/profile-bulk-import-jobs/{job}/import-errors"
        while path:
            answer = self.request("GET", path).json()
            for item in answer.get("data", []):
                attrs = item.get("attributes") or {}
                email = str((attrs.get("original_payload") or {}).get("email", "")).lower()
                refused[email] = f"{attrs.get('code', 'error')}: {attrs.get('detail', '')}"[:500]
            path = (answer.get("links") or {}).get("next") or ""
        return refused

    def _profile_ids(self, emails: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(emails), 100):
            chunk = emails[start:start + 100]
            params = {"filter": "any(email,[" + ",".join(json.dumps(e) for e in chunk) + "])", "page[size]": 100}
            answer = self.request("GET", "/api/profiles", params=params).json()
            for item in answer.get("data", []):
                found[str(item["attributes"]["email"]).lower()] = item["id"]
        return found

    def remove(self, records: list[Record]) -> list[Outcome]:
        book = OutcomeBook()
        ids = self._profile_ids([r.email.lower() for r in records if r.email])
        to_remove = []
        for r in records:
            pid = r.external_ref or ids.get(r.email.lower())
            if pid:
                to_remove.append((r, pid))
            else:
                book.ok(r)  # no such profile: it is not on the list
        if to_remove:
            body = {"data": [{"type": "profile", "id": pid} for _, pid in to_remove]}
            self.request("DELETE", f"/api/lists/{self.settings['list_id']}/relationships/profiles",
                         data=json.dumps(body))
            for r, pid in to_remove:
                book.ok(r, pid)
        return book.result(records)

    reads_back = True

    def read_back(self, *, since) -> list[Reported]:
        """Suppressed profiles (unsubscribed, bounced, spam complaint, suppressed by hand) through
        GET /api/profiles with `additional-fields[profile]=subscriptions`, filtered on the suppression
        timestamp; then the profiles suppressed from this list only (`list_suppressions`)."""
        after = (since.isoformat(timespec="seconds") if since else "1970-01-01T00:00:00+00:00").replace("+00:00", "Z")
        reports: list[Reported] = []
        for kind in ("suppression", "list_suppressions"):
            params = {"filter": f"greater-than(subscriptions.email.marketing.{kind}.timestamp,{after})",
                      "additional-fields[profile]": "subscriptions", "fields[profile]": "email,subscriptions",
                      "page[size]": 100}
            path = "/api/profiles"
            while path:
                answer = self.request("GET", path, params=params).json()
                for item in answer.get("data", []):
                    attrs = item.get("attributes") or {}
                    marketing = (((attrs.get("subscriptions") or {}).get("email") or {}).get("marketing") or {})
                    entries = marketing.get(kind) or []
                    if kind == "list_suppressions":
                        entries = [e for e in entries if e.get("list_id") == self.settings["list_id"]]
                    if entries:
                        reason = entries[0].get("reason") or "suppressed"
                        reports.append(Reported(email=attrs.get("email") or "", external_ref=item["id"],
                                                reason=f"Klaviyo profile suppressed ({reason})"))
                path, params = (answer.get("links") or {}).get("next") or "", None
        return reports
