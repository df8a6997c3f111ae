"""Mailchimp Marketing API 3.0: member upsert at /lists/{list_id}/members/{md5(lower(email))} (PUT,
`status_if_new`, so an unsubscribed member is never resubscribed), audience membership as a tag
(POST .../members/{hash}/tags, status active / inactive). Basic auth with the API key; the data
centre is the key's suffix (`...-us6` -> https://us6.api.mailchimp.com/3.0). Mailchimp allows about
10 simultaneous connections, so a batch is sent over at most 10 threads sharing the rate limiter.

Plain HTTP: `mailchimp-marketing` is a generated client that adds nothing to three endpoints.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from integrations.destinations.base import (
    BaseDestination,
    BatchRejected,
    ConfigurationError,
    Outcome,
    OutcomeBook,
    Record,
    Reported,
)

MAX_CONNECTIONS = 10
PAGE = 1000  # the documented maximum `count` of GET /lists/{id}/members
# statuses that mean "do not add again": unsubscribed, cleaned (bounced) and archived (deleted from
# the audience by the user; a PUT would bring the address back)
GONE = ("unsubscribed", "cleaned", "archived")


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: MD5 of the lower-cased address."""
    return hashlib.md5(email.strip().lower().encode()).hexdigest()  # noqa: S324 - Mailchimp's scheme


class MailchimpDestination(BaseDestination):
    kind = "mailchimp"
    batch_size = 50
    max_batch_size = 500
    rate_limit = (10.0, 10)
    required_settings = ("list_id",)
    required_credentials = ("api_key",)

    @property
    def api_base(self) -> str:
        if self.settings.get("api_base"):
            return self.settings["api_base"].rstrip("/")
        key = self.credentials["api_key"]
        if "-" not in key:
            raise ConfigurationError("credentials.api_key must end with its data centre, like -us6")
        return f"https://{key.rsplit('-', 1)[1]}.api.mailchimp.com/3.0"

    def auth_headers(self) -> dict[str, str]:
        import base64

        token = base64.b64encode(f"anystring:{self.credentials['api_key']}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def tag(self) -> str:
        return self.settings.get("tag") or self.context.get("segment_name") or "funnel segment"

    def test_connection(self) -> str:
        self.request("GET", "/ping")
        self.request("GET", f"/lists/{self.settings['list_id']}")
        return f"API key accepted; audience {self.settings['list_id']} found"

    def _one(self, record: Record, status: str, book: OutcomeBook) -> None:
        if not record.email:
            book.fail(record, "no email: Mailchimp members are keyed by email")
            return
        member = f"/lists/{self.settings['list_id']}/members/{subscriber_hash(record.email)}"
        try:
            if status == "active":
                answer = self.request("PUT", member, json={
                    "email_address": record.email, "status_if_new": "subscribed", "merge_fields": record.fields}).json()
                if answer.get("status") in ("unsubscribed", "cleaned"):
                    book.fail(record, f"member is {answer['status']} in Mailchimp", suppressed=True)
                    return
            self.request("POST", f"{member}/tags", json={"tags": [{"name": self.tag, "status": status}]})
        except BatchRejected as exc:  # one member per call: a 4xx belongs to this record
            if exc.status_code == 404 and status == "inactive":
                book.ok(record)  # not in the audience: nothing to untag
                return
            book.fail(record, str(exc))
            return
        book.ok(record, subscriber_hash(record.email))

    def _many(self, records: list[Record], status: str) -> list[Outcome]:
        book = OutcomeBook()
        with ThreadPoolExecutor(max_workers=min(MAX_CONNECTIONS, max(1, len(records)))) as pool:
            list(pool.map(lambda r: self._one(r, status, book), records))
        return book.result(records)

    def upsert(self, records: list[Record]) -> list[Outcome]:
        return self._many(records, "active")

    def remove(self, records: list[Record]) -> list[Outcome]:
        return self._many(records, "inactive")

    reads_back = True

    def read_back(self, *, since) -> list[Reported]:
        """GET /lists/{id}/members?status=…&since_last_changed=… for each status in GONE, 1,000 a page."""
        reports: list[Reported] = []
        path = f"/lists/{self.settings['list_id']}/members"
        for status in GONE:
            offset = 0
            while True:
                params = {"status": status, "count": PAGE, "offset": offset,
                          "fields": "members.id,members.email_address,members.status,total_items"}
                if since is not None:
                    params["since_last_changed"] = since.isoformat(timespec="seconds")
                answer = self.request("GET", path, params=params).json()
                page = answer.get("members") or []
                reports += [Reported(email=m.get("email_address", ""), external_ref=m.get("id", ""),
                                     reason=f"Mailchimp member {m.get('status', status)}") for m in page]
                offset += len(page)
                if not page or offset >= int(answer.get("total_items") or 0):
                    break
        return reports
