"""Salesforce: Contacts upserted by an external-id field and added to a Campaign as CampaignMembers,
through sObject Collections (up to 200 records a call, allOrNone false so one bad record fails
alone); leavers' CampaignMembers deleted through the same collections endpoint. OAuth bearer token
(credentials.access_token; `api_base` is the instance URL).

Not yet: Bulk API 2.0 for runs above 2,000 records (ADDING_A_DESTINATION.md says why and how);
today such a run is sent as collections of 200, within the same API limits, only slower.
Plain HTTP: simple-salesforce would save little over two endpoints and adds its own session.
"""

from __future__ import annotations

from integrations.destinations.base import BaseDestination, Outcome, OutcomeBook, Record

API = "/services/data/v60.0"


class SalesforceDestination(BaseDestination):
    kind = "salesforce"
    batch_size = 200
    max_batch_size = 200
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

    def upsert(self, records: list[Record]) -> list[Outcome]:
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
