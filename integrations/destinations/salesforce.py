"""Salesforce: Contacts upserted by an external-id field and added to a Campaign as CampaignMembers,
through sObject Collections (up to 200 records a call, allOrNone false so one bad record fails
alone); leavers' CampaignMembers deleted through the same collections endpoint. OAuth bearer token
(credentials.access_token; `api_base` is the instance URL).

A run upserting more than 2,000 records uses Bulk API 2.0 instead (Salesforce's advice): per batch
of up to `bulk_batch_size` (10,000) an ingest job for the Contacts and one for the CampaignMembers
(create job, PUT the CSV, PATCH UploadComplete, poll, read successfulResults / failedResults).
Plain HTTP: simple-salesforce would save little over these endpoints and adds its own session.
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC

from integrations.destinations.base import (
    BaseDestination,
    BatchRejected,
    Outcome,
    OutcomeBook,
    Record,
    Reported,
    TransientError,
)

API = "/services/data/v60.0"
BULK_ABOVE = 2000
COLLECTION_LIMIT = 200


class SalesforceDestination(BaseDestination):
    kind = "salesforce"
    batch_size = 200
    max_batch_size = 10_000  # a bulk job's batch; collections are split to 200 below
    rate_limit = (5.0, 5)
    required_settings = ("api_base", "campaign_id")
    required_credentials = ("access_token",)

    @property
    def external_id_field(self) -> str:
        return self.settings.get("external_id_field") or "Funnel_Contact_Id__c"

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials['access_token']}"}

    def test_connection(self) -> str:
        self.request("GET", f"{API}/sobjects/Campaign/{self.settings['campaign_id']}")
        return f"token accepted; campaign {self.settings['campaign_id']} found"

    @staticmethod
    def _errors(result: dict) -> str:
        return "; ".join(f"{e.get('statusCode')}: {e.get('message')}" for e in result.get("errors") or [])[:500]

    def batch_size_for(self, *, operation: str, pending: int, default: int) -> int:
        if operation != "remove" and pending > BULK_ABOVE:
            return int(self.settings.get("bulk_batch_size") or 10_000)
        return min(default, COLLECTION_LIMIT)

    def upsert(self, records: list[Record]) -> list[Outcome]:
        if len(records) > COLLECTION_LIMIT:
            return self._bulk_upsert(records)
        book = OutcomeBook()
        body = {"allOrNone": False, "records": [
            {"attributes": {"type": "Contact"}, self.external_id_field: r.external_id, "Email": r.email,
             "LastName": r.fields.get("LastName") or r.external_id, **r.fields} for r in records]}
        results = self.request("PATCH", f"{API}/composite/sobjects/Contact/{self.external_id_field}", json=body).json()
        contacts = []
        for record, result in zip(records, results, strict=False):
            if result.get("success"):
                contacts.append((record, result["id"]))
            else:
                book.fail(record, self._errors(result))
        new = [(r, cid) for r, cid in contacts if "/" not in r.external_ref]
        for r, _cid in contacts:
            if "/" in r.external_ref:
                book.ok(r, r.external_ref)  # already a campaign member
        if new:
            body = {"allOrNone": False, "records": [
                {"attributes": {"type": "CampaignMember"}, "CampaignId": self.settings["campaign_id"],
                 "ContactId": cid, "Status": self.settings.get("member_status") or "Sent"} for _, cid in new]}
            members = self.request("POST", f"{API}/composite/sobjects", json=body).json()
            for (record, cid), result in zip(new, members, strict=False):
                if result.get("success"):
                    book.ok(record, f"{cid}/{result['id']}")
                elif any(e.get("statusCode") == "DUPLICATE_VALUE" for e in result.get("errors") or []):
                    book.ok(record, cid)  # a member already; its member id is learnt on removal
                else:
                    book.fail(record, self._errors(result))
        return book.result(records)

    def remove(self, records: list[Record]) -> list[Outcome]:
        book = OutcomeBook()
        known = [(r, r.external_ref.split("/", 1)[1]) for r in records if "/" in r.external_ref]
        for r in records:
            if "/" not in r.external_ref:
                book.fail(r, "CampaignMember id unknown: it was not added by this sync")
        if known:
            ids = ",".join(mid for _, mid in known)
            results = self.request("DELETE", f"{API}/composite/sobjects", params={"ids": ids, "allOrNone": "false"}).json()
            for (record, _), result in zip(known, results, strict=False):
                gone = any(e.get("statusCode") == "ENTITY_IS_DELETED" for e in result.get("errors") or [])
                if result.get("success") or gone:
                    book.ok(record, "")
                else:
                    book.fail(record, self._errors(result))
        return book.result(records)

    reads_back = True

    def read_back(self, *, since) -> list[Reported]:
        """Contacts opted out of email (`HasOptedOutOfEmail`) or deleted (`IsDeleted`, still in the
        recycle bin), by `SystemModstamp`, through queryAll (which, unlike query, returns deleted
        records), following `nextRecordsUrl` until `done`."""
        field = self.external_id_field
        soql = (f"SELECT Id, Email, {field}, IsDeleted, HasOptedOutOfEmail FROM Contact "
                "WHERE (IsDeleted = true OR HasOptedOutOfEmail = true)")
        if since is not None:
            soql += f" AND SystemModstamp >= {since.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
        reports: list[Reported] = []
        answer = self.request("GET", f"{API}/queryAll", params={"q": soql}).json()
        while True:
            for row in answer.get("records", []):
                reason = "deleted in Salesforce" if row.get("IsDeleted") else "opted out of email in Salesforce"
                reports.append(Reported(email=row.get("Email") or "", external_ref=row.get("Id") or "", reason=reason))
            if answer.get("done", True) or not answer.get("nextRecordsUrl"):
                return reports
            answer = self.request("GET", answer["nextRecordsUrl"]).json()

    # Bulk API 2.0 ---------------------------------------------------------------------------------
    def _bulk_job(self, *, obj: str, operation: str, rows: list[dict], external_id: str = "") -> tuple[list, list]:
        """Run one ingest job to its end; (successful rows, failed rows) as dicts of its result CSVs."""
        spec = {"object": obj, "operation": operation, "contentType": "CSV", "lineEnding": "LF"}
        if external_id:
            spec["externalIdFieldName"] = external_id
        job = self.request("POST", f"{API}/jobs/ingest", json=spec).json()["id"]
        columns = sorted({k for row in rows for k in row})
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        self.request("PUT", f"{API}/jobs/ingest/{job}/batches", data=out.getvalue().encode(),
                     headers={"Content-Type": "text/csv"})
        self.request("PATCH", f"{API}/jobs/ingest/{job}", json={"state": "UploadComplete"})
        deadline = time.monotonic() + float(self.settings.get("bulk_timeout_seconds") or 600)
        while True:
            info = self.request("GET", f"{API}/jobs/ingest/{job}").json()
            if info.get("state") == "JobComplete":
                break
            if info.get("state") in ("Failed", "Aborted"):
                raise BatchRejected(f"bulk job {job} {info['state']}: {info.get('errorMessage', '')}", 400)
            if time.monotonic() > deadline:
                raise TransientError(f"bulk job {job} still {info.get('state')} after the timeout")
            time.sleep(float(self.settings.get("bulk_poll_seconds") or 2))
        ok = list(csv.DictReader(io.StringIO(self.request("GET", f"{API}/jobs/ingest/{job}/successfulResults/").text)))
        bad = list(csv.DictReader(io.StringIO(self.request("GET", f"{API}/jobs/ingest/{job}/failedResults/").text)))
        return ok, bad

    def _bulk_upsert(self, records: list[Record]) -> list[Outcome]:
        book = OutcomeBook()
        field = self.external_id_field
        by_key = {r.external_id: r for r in records}
        rows = [{field: r.external_id, "Email": r.email, "LastName": r.fields.get("LastName") or r.external_id,
                 **r.fields} for r in records]
        ok, bad = self._bulk_job(obj="Contact", operation="upsert", rows=rows, external_id=field)
        for row in bad:
            if row.get(field) in by_key:
                book.fail(by_key[row[field]], row.get("sf__Error", "rejected")[:500])
        contacts = {row["sf__Id"]: by_key[row[field]] for row in ok if row.get(field) in by_key}
        new = {cid: r for cid, r in contacts.items() if "/" not in r.external_ref}
        for r in contacts.values():
            if "/" in r.external_ref:
                book.ok(r, r.external_ref)
        if new:
            campaign = self.settings["campaign_id"]
            status = self.settings.get("member_status") or "Sent"
            ok, bad = self._bulk_job(obj="CampaignMember", operation="insert", rows=[
                {"CampaignId": campaign, "ContactId": cid, "Status": status} for cid in new])
            for row in ok:
                if row.get("ContactId") in new:
                    book.ok(new[row["ContactId"]], f"{row['ContactId']}/{row['sf__Id']}")
            for row in bad:
                record = new.get(row.get("ContactId", ""))
                if record is None:
                    continue
                if "DUPLICATE_VALUE" in row.get("sf__Error", ""):
                    book.ok(record, row["ContactId"])
                else:
                    book.fail(record, row.get("sf__Error", "rejected")[:500])
        return book.result(records)
