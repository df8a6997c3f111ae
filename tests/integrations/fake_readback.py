"""The read-back side of the fake vendors (mixed into the servers of fakes.py): how each tool lets a
caller list who unsubscribed or was deleted, as its documentation describes, and the actions a
person or an admin takes in the tool (unsubscribe, clean, archive, suppress, delete) that change it.

Each `route_read_back(method, parts, body)` answers its documented endpoint or returns None."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class MailchimpReadBack:
    """GET /lists/{id}/members?status=&since_last_changed=&count=&offset= (count at most 1,000)."""

    def member_status(self, email: str, status: str) -> None:
        """The member unsubscribes, bounces (cleaned) or is archived in Mailchimp."""
        from integrations.destinations.mailchimp import subscriber_hash

        member = self.members[subscriber_hash(email)]
        member["status"], member["last_changed"] = status, now_iso()

    def is_read_back(self, method, path):
        return method == "GET" and urlsplit(path).path == f"/lists/{self.list_id}/members"

    def route_read_back(self, method, parts, body):
        if not self.is_read_back(method, parts.geturl()):
            return None
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        count, offset = int(q.get("count", 10)), int(q.get("offset", 0))
        if count > 1000:
            return 400, {}, {"title": "Invalid Resource", "status": 400, "detail": "count must be at most 1000"}
        rows = [{"id": h, **m} for h, m in sorted(self.members.items())
                if not q.get("status") or m["status"] == q["status"]]
        if q.get("since_last_changed"):
            rows = [m for m in rows if _when(m["last_changed"]) >= _when(q["since_last_changed"])]
        page = [{"id": m["id"], "email_address": m["email_address"], "status": m["status"]}
                for m in rows[offset:offset + count]]
        return 200, {}, {"members": page, "total_items": len(rows)}


class HubSpotReadBack:
    """POST /crm/v3/objects/contacts/search (filters EQ / GTE, limit <= 100, 10,000 results at most)
    and GET /crm/v3/objects/contacts?archived=true (deleted contacts with `archivedAt`)."""

    def opt_out(self, email: str) -> None:
        contact = self.contacts[email]
        contact["properties"]["hs_email_optout"] = "true"
        contact["updated"] = now_iso()

    def delete(self, email: str) -> None:
        """Deleted in HubSpot: archived, out of its lists; an upsert by the same email makes a new contact."""
        contact = self.contacts.pop(email)
        self.members.discard(contact["id"])
        self.archived[contact["id"]] = {"id": contact["id"], "properties": {"email": email},
                                        "archivedAt": now_iso(), "archived": True}

    def is_read_back(self, method, path):
        parts = urlsplit(path)
        return parts.path == "/crm/v3/objects/contacts/search" or (
            parts.path == "/crm/v3/objects/contacts" and "archived=true" in parts.query)

    def route_read_back(self, method, parts, body):
        if method == "POST" and parts.path == "/crm/v3/objects/contacts/search":
            return self._search(body)
        if method == "GET" and parts.path == "/crm/v3/objects/contacts":
            q = {k: v[0] for k, v in parse_qs(parts.query).items()}
            rows = list(self.archived.values()) if q.get("archived") == "true" else []
            start, limit = int(q.get("after", 0)), int(q.get("limit", 10))
            answer = {"results": rows[start:start + limit]}
            if start + limit < len(rows):
                answer["paging"] = {"next": {"after": str(start + limit)}}
            return 200, {}, answer
        return None

    def _search(self, body):
        if int(body.get("limit", 10)) > 100:
            return 400, {}, {"status": "error", "category": "VALIDATION_ERROR", "message": "limit is at most 100"}
        start = int(body.get("after") or 0)
        if start >= 10_000:
            return 400, {}, {"status": "error", "category": "VALIDATION_ERROR", "message": "at most 10,000 results"}
        rows = []
        for email, c in self.contacts.items():
            values = {**c["properties"], "email": email, "lastmodifieddate": c.get("updated", "")}
            if any(all(self._matches(values, f) for f in group["filters"]) for group in body["filterGroups"]):
                rows.append({"id": c["id"], "properties": {"email": email, "lastmodifieddate": values["lastmodifieddate"]}})
        rows.sort(key=lambda r: r["properties"]["lastmodifieddate"])
        limit = int(body.get("limit", 10))
        answer = {"total": len(rows), "results": rows[start:start + limit]}
        if start + limit < len(rows):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return 200, {}, answer

    @staticmethod
    def _matches(values: dict, f: dict) -> bool:
        value = values.get(f["propertyName"])
        if f["operator"] == "EQ":
            return str(value) == f["value"]
        if f["operator"] == "GTE" and f["propertyName"] == "lastmodifieddate":  # dates filter in epoch ms
            return bool(value) and _when(value).timestamp() * 1000 >= int(f["value"])
        raise ValueError(f"operator {f['operator']} not in this fake")


class KlaviyoReadBack:
    """GET /api/profiles?filter=greater-than(subscriptions.email.marketing.<suppression|list_suppressions>.timestamp,T)
    with additional-fields[profile]=subscriptions (without it the subscriptions are not returned);
    page[size] at most 100, cursor pages through links.next."""

    def suppress(self, email: str, reason: str = "UNSUBSCRIBE", list_id: str | None = None) -> None:
        """The profile unsubscribes (or bounces...): suppressed for the account, or for one list only."""
        pid = self.profiles[email]
        entry = {"reason": reason, "timestamp": now_iso()}
        if list_id:
            self.list_suppressions.setdefault(pid, []).append({"list_id": list_id, **entry})
        else:
            self.suppressions[pid] = [entry]

    def is_read_back(self, method, path):
        parts = urlsplit(path)
        return method == "GET" and parts.path == "/api/profiles" and "subscriptions.email" in parse_qs(parts.query).get(
            "filter", [""])[0]

    def route_read_back(self, method, parts, body):
        q = {k: v[0] for k, v in parse_qs(parts.query).items()}
        flt = q.get("filter", "")
        found = re.fullmatch(r"greater-than\(subscriptions\.email\.marketing\.(suppression|list_suppressions)\.timestamp,(.+)\)", flt)
        if method != "GET" or parts.path != "/api/profiles" or not found:
            return None
        if int(q.get("page[size]", 20)) > 100:
            return 400, {}, {"errors": [{"status": 400, "detail": "page[size] must be at most 100"}]}
        kind, after = found.group(1), _when(found.group(2))
        source = self.suppressions if kind == "suppression" else self.list_suppressions
        by_id = {pid: email for email, pid in self.profiles.items()}
        rows = sorted(pid for pid, entries in source.items() if any(_when(e["timestamp"]) > after for e in entries))
        start, size = int(q.get("page[cursor]", 0)), int(q.get("page[size]", 20))
        data = []
        for pid in rows[start:start + size]:
            attrs = {"email": by_id[pid]}
            if q.get("additional-fields[profile]") == "subscriptions":
                attrs["subscriptions"] = {"email": {"marketing": {
                    "can_receive_email_marketing": False, "suppression": self.suppressions.get(pid, []),
                    "list_suppressions": self.list_suppressions.get(pid, [])}}}
            data.append({"type": "profile", "id": pid, "attributes": attrs})
        nxt = None
        if start + size < len(rows):
            nxt = f"{self.url}/api/profiles?filter={flt}&additional-fields[profile]={q.get('additional-fields[profile]', '')}" \
                  f"&page[size]={size}&page[cursor]={start + size}"
        return 200, {}, {"data": data, "links": {"next": nxt}}


class SalesforceReadBack:
    """GET /services/data/v60.0/queryAll?q=<SOQL> (and /query, which leaves deleted records out):
    the one SOQL shape the adapter sends, 2,000 records a page, then nextRecordsUrl."""

    QUERY = re.compile(r"SELECT Id, Email, (\w+), IsDeleted, HasOptedOutOfEmail FROM Contact "
                       r"WHERE \(IsDeleted = true OR HasOptedOutOfEmail = true\)(?: AND SystemModstamp >= (\S+))?")
    PAGE = 2000

    def opt_out(self, external_id: str) -> None:
        row = self.rows[self.contacts[external_id]]
        row["HasOptedOutOfEmail"], row["SystemModstamp"] = True, now_iso()

    def delete(self, external_id: str) -> None:
        """To the recycle bin; its CampaignMembers go with it; an upsert of the key makes a new Contact."""
        cid = self.contacts.pop(external_id)
        self.rows[cid].update(IsDeleted=True, SystemModstamp=now_iso())
        for mid in [m for m, c in self.members.items() if c == cid]:
            del self.members[mid]

    def note_upsert(self, cid: str, external_id: str, email: str) -> None:
        """An upsert changes the fields it sends; the opt-out stays as the person left it."""
        row = self.rows.setdefault(cid, {"Id": cid, "IsDeleted": False, "HasOptedOutOfEmail": False})
        row.update(Email=email, ext=external_id, SystemModstamp=now_iso())

    def is_read_back(self, method, path):
        api = "/services/data/v60.0"
        return method == "GET" and urlsplit(path).path.startswith((f"{api}/queryAll", f"{api}/query"))

    def route_read_back(self, method, parts, body):
        if not self.is_read_back(method, parts.geturl()):
            return None
        rest = parts.path.rstrip("/").rsplit("/", 1)[1]
        if rest not in ("queryAll", "query"):  # a query locator: "<id>-<offset>"
            key, _, offset = rest.rpartition("-")
            rows = self.cursors.get(key)
            return self._page(key, rows, int(offset)) if rows is not None else (400, {}, [{"errorCode": "INVALID_QUERY_LOCATOR"}])
        q = parse_qs(parts.query).get("q", [""])[0]
        found = self.QUERY.fullmatch(q)
        if not found:
            return 400, {}, [{"errorCode": "MALFORMED_QUERY", "message": "not a query this fake knows"}]
        field, since = found.group(1), found.group(2)
        rows = [r for r in self.rows.values() if (r["IsDeleted"] or r["HasOptedOutOfEmail"])
                and (rest == "queryAll" or not r["IsDeleted"])
                and (since is None or _when(r["SystemModstamp"]) >= _when(since))]
        records = [{"attributes": {"type": "Contact"}, "Id": r["Id"], "Email": r["Email"], field: r["ext"],
                    "IsDeleted": r["IsDeleted"], "HasOptedOutOfEmail": r["HasOptedOutOfEmail"]} for r in rows]
        key = f"01g{len(self.cursors):08d}"
        self.cursors[key] = records
        return self._page(key, records, 0)

    def _page(self, key, records, offset):
        page = records[offset:offset + self.PAGE]
        done = offset + self.PAGE >= len(records)
        answer = {"totalSize": len(records), "done": done, "records": page}
        if not done:
            answer["nextRecordsUrl"] = f"/services/data/v60.0/query/{key}-{offset + self.PAGE}"
        return 200, {}, answer
