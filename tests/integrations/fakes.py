"""Local HTTP servers (real sockets, a thread each) that follow the vendors' documented contracts:
paths, auth headers, batch limits (400), 429 with Retry-After, and injected 5xx / slow answers."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from tests.integrations.fake_readback import (
    HubSpotReadBack,
    KlaviyoReadBack,
    MailchimpReadBack,
    SalesforceReadBack,
    now_iso,
)


class FakeServer(ThreadingHTTPServer):
    """Subclass and implement `handle_request_json(method, path, headers, body) -> (status, headers, obj)`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.inject: deque = deque()  # (status, headers, body) answered instead of the next requests
        self.inject_read_back: deque = deque()  # the same, for the next read-back requests only
        self.delay = 0.0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def changes(self) -> list[dict]:
        """The requests that can change the tool's state (not the reads, not the read-back)."""
        return [r for r in self.requests if r["method"] != "GET" and not r["read_back"]]

    def is_read_back(self, method: str, path: str) -> bool:
        """A call to the vendor's read-back endpoints (fake_readback.py mixins answer it)."""
        return False

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def handle_request_json(self, method, path, headers, body):  # pragma: no cover - abstract
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _serve(self):
        server: FakeServer = self.server
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        read_back = server.is_read_back(self.command, self.path)
        entry = {"method": self.command, "path": self.path, "headers": dict(self.headers), "raw": raw,
                 "at": time.monotonic(), "read_back": read_back}
        with server.lock:
            server.requests.append(entry)
            queue = server.inject_read_back if read_back else server.inject
            injected = queue.popleft() if queue else None
        if server.delay:
            time.sleep(server.delay)
        if injected is not None:
            status, headers, obj = injected
        else:
            body = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
            with server.lock:
                status, headers, obj = server.handle_request_json(self.command, self.path, self.headers, body, raw)
        data = b"" if obj is None else (obj if isinstance(obj, bytes) else json.dumps(obj).encode())
        try:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


class FakeHubSpot(HubSpotReadBack, FakeServer):
    """CRM v3: contacts batch upsert by email (max 100 inputs), lists v3 memberships, Bearer token."""

    def __init__(self, token: str = "pat-test", list_id: str = "42") -> None:
        self.token, self.list_id = token, list_id
        self.contacts: dict[str, dict] = {}  # email -> {"id", "properties"}
        self.members: set[str] = set()
        self.archived: dict[str, dict] = {}  # id -> deleted contact
        self.next_id = 1000
        super().__init__()

    def handle_request_json(self, method, path, headers, body, raw):
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"status": "error", "category": "INVALID_AUTHENTICATION", "message": "bad token"}
        base = path.split("?")[0]
        answer = self.route_read_back(method, urlsplit(path), body)
        if answer is not None:
            return answer
        if method == "GET" and base == f"/crm/v3/lists/{self.list_id}":
            return 200, {}, {"list": {"listId": self.list_id, "processingType": "MANUAL"}}
        if method == "POST" and base == "/crm/v3/objects/contacts/batch/upsert":
            inputs = body.get("inputs", [])
            if len(inputs) > 100:
                return 400, {}, {"status": "error", "category": "VALIDATION_ERROR", "message": "limit is 100 inputs"}
            bad = [i["id"] for i in inputs if "@" not in i.get("id", "")]
            if bad:  # HubSpot rejects the whole batch for one invalid email
                return 400, {}, {"status": "error", "category": "VALIDATION_ERROR",
                                 "message": f"Property values were not valid: email {bad[0]!r}", "context": {"ids": bad}}
            results = []
            for item in inputs:
                email = item["id"].lower()
                if email not in self.contacts:
                    self.next_id += 1
                    self.contacts[email] = {"id": str(self.next_id), "properties": {}}
                self.contacts[email]["properties"].update(item.get("properties", {}))
                self.contacts[email]["updated"] = now_iso()
                results.append({"id": self.contacts[email]["id"], "properties": {"email": email}})
            return 200, {}, {"status": "COMPLETE", "results": results}
        if method == "PUT" and base == f"/crm/v3/lists/{self.list_id}/memberships/add":
            known = {c["id"] for c in self.contacts.values()}
            self.members.update(i for i in body if i in known)
            return 200, {}, {"recordIdsAdded": [i for i in body if i in known],
                             "recordIdsMissing": [i for i in body if i not in known]}
        if method == "PUT" and base == f"/crm/v3/lists/{self.list_id}/memberships/remove":
            removed = [i for i in body if i in self.members]
            self.members.difference_update(body)
            return 200, {}, {"recordIdsRemoved": removed, "recordIdsMissing": [i for i in body if i not in removed]}
        return 404, {}, {"status": "error", "message": f"no route {method} {base}"}

    def member_emails(self) -> set[str]:
        by_id = {c["id"]: e for e, c in self.contacts.items()}
        return {by_id[i] for i in self.members}


class FakeWebhookReceiver(FakeServer):
    """Verifies Standard Webhooks signatures with the `standardwebhooks` package; dedupes on webhook-id."""

    def __init__(self, secret: str) -> None:
        from standardwebhooks.webhooks import Webhook

        self.webhook = Webhook(secret)
        self.by_id: dict[str, dict] = {}
        self.bad_signatures = 0
        super().__init__()

    def handle_request_json(self, method, path, headers, body, raw):
        try:
            payload = self.webhook.verify(raw, {k.lower(): v for k, v in headers.items()})
        except Exception:  # noqa: BLE001 - any verification failure
            self.bad_signatures += 1
            return 401, {}, {"error": "bad signature"}
        self.by_id.setdefault(headers["webhook-id"], payload)
        return 200, {}, {"ok": True}

    def events(self) -> list[dict]:
        return [e for p in self.by_id.values() for e in p["data"]["events"]]


class FakeMailchimp(MailchimpReadBack, FakeServer):
    """Marketing API 3.0: PUT members/{md5}, POST members/{md5}/tags, Basic auth with the API key."""

    def __init__(self, api_key: str = "abc123-us6", list_id: str = "L1") -> None:
        self.api_key, self.list_id = api_key, list_id
        self.members: dict[str, dict] = {}  # hash -> {"email_address", "status", "tags": set}
        super().__init__()

    def handle_request_json(self, method, path, headers, body, raw):
        import base64
        import hashlib

        auth = headers.get("Authorization", "")
        if not auth.startswith("Basic ") or base64.b64decode(auth[6:]).decode().split(":", 1)[1] != self.api_key:
            return 401, {}, {"title": "API Key Invalid", "status": 401}
        prefix = f"/lists/{self.list_id}/members/"
        answer = self.route_read_back(method, urlsplit(path), body)
        if answer is not None:
            return answer
        if method == "GET" and path in ("/ping", f"/lists/{self.list_id}"):
            return 200, {}, {"health_status": "Everything's Chimpy!"}
        if path.startswith(prefix):
            rest = path[len(prefix):]
            member_hash, _, tail = rest.partition("/")
            if method == "PUT" and not tail:
                email = body.get("email_address", "")
                if "@" not in email or hashlib.md5(email.lower().encode()).hexdigest() != member_hash:  # noqa: S324
                    return 400, {}, {"title": "Invalid Resource", "status": 400, "detail": "bad email or hash"}
                member = self.members.setdefault(member_hash, {"email_address": email, "status": body["status_if_new"],
                                                               "tags": set(), "merge_fields": {}})
                member["merge_fields"].update(body.get("merge_fields") or {})
                member["last_changed"] = now_iso()
                return 200, {}, {"id": member_hash, "email_address": email, "status": member["status"]}
            if method == "POST" and tail == "tags":
                member = self.members.get(member_hash)
                if member is None:
                    return 404, {}, {"title": "Resource Not Found", "status": 404}
                for tag in body["tags"]:
                    (member["tags"].add if tag["status"] == "active" else member["tags"].discard)(tag["name"])
                return 204, {}, None
        return 404, {}, {"title": "Resource Not Found", "status": 404}


class FakeKlaviyo(KlaviyoReadBack, FakeServer):
    """JSON:API with the `revision` header; bulk import jobs with a list; list relationships (max 1,000)."""

    def __init__(self, api_key: str = "pk_test", list_id: str = "Xy1") -> None:
        self.api_key, self.list_id = api_key, list_id
        self.profiles: dict[str, str] = {}  # email -> id
        self.list_members: set[str] = set()
        self.suppressions: dict[str, list] = {}  # profile id -> [{"reason", "timestamp"}]
        self.list_suppressions: dict[str, list] = {}  # profile id -> [{"list_id", "reason", "timestamp"}]
        self.jobs: dict[str, dict] = {}
        super().__init__()

    def handle_request_json(self, method, path, headers, body, raw):
        from urllib.parse import parse_qs, urlsplit

        if headers.get("Authorization") != f"Klaviyo-API-Key {self.api_key}":
            return 401, {}, {"errors": [{"status": 401, "code": "not_authenticated"}]}
        if not headers.get("revision"):
            return 400, {}, {"errors": [{"status": 400, "detail": "revision header is required"}]}
        parts = urlsplit(path)
        answer = self.route_read_back(method, parts, body)
        if answer is not None:
            return answer
        if method == "POST" and parts.path == "/api/profile-bulk-import-jobs":
            profiles = body["data"]["attributes"]["profiles"]["data"]
            if len(profiles) > 10_000:
                return 400, {}, {"errors": [{"detail": "at most 10,000 profiles"}]}
            job_id = f"job{len(self.jobs) + 1}"
            errors = []
            for p in profiles:
                email = p["attributes"]["email"].lower()
                if "@" not in email:
                    errors.append({"type": "import-error", "id": f"e{len(errors)}", "attributes": {
                        "code": "invalid", "title": "Invalid input.", "detail": "Invalid email address",
                        "original_payload": {"email": email}}})
                    continue
                pid = self.profiles.setdefault(email, f"P{len(self.profiles) + 1}")
                if body["data"]["relationships"]["lists"]["data"][0]["id"] == self.list_id:
                    self.list_members.add(pid)
            self.jobs[job_id] = {"polls": 0, "errors": errors}
            return 202, {}, {"data": {"type": "profile-bulk-import-job", "id": job_id,
                                      "attributes": {"status": "queued"}}}
        if method == "GET" and parts.path.startswith("/api/profile-bulk-import-jobs/"):
            job_id, _, tail = parts.path[len("/api/profile-bulk-import-jobs/"):].partition("/")
            job = self.jobs[job_id]
            if tail.strip("/") == "import-errors":
                return 200, {}, {"data": job["errors"], "links": {"next": None}}
            job["polls"] += 1  # processing on the first poll, complete on the second
            status = "processing" if job["polls"] < 2 else "complete"
            return 200, {}, {"data": {"type": "profile-bulk-import-job", "id": job_id, "attributes": {"status": status}}}
        if method == "GET" and parts.path == "/api/profiles":
            flt = parse_qs(parts.query)["filter"][0]
            emails = [e.strip('"').lower() for e in flt[len("any(email,["):-2].split(",")]
            return 200, {}, {"data": [{"type": "profile", "id": self.profiles[e], "attributes": {"email": e}}
                                      for e in emails if e in self.profiles]}
        if method == "DELETE" and parts.path == f"/api/lists/{self.list_id}/relationships/profiles":
            if len(body["data"]) > 1000:
                return 400, {}, {"errors": [{"detail": "at most 1,000 profiles"}]}
            self.list_members.difference_update(d["id"] for d in body["data"])
            return 204, {}, None
        return 404, {}, {"errors": [{"status": 404}]}


class FakeSalesforce(SalesforceReadBack, FakeServer):
    """sObject Collections (max 200 records): Contact upsert by external id, CampaignMember create/delete."""

    def __init__(self, token: str = "00Dtoken", campaign: str = "701C") -> None:
        self.token, self.campaign = token, campaign
        self.contacts: dict[str, str] = {}  # external id -> Contact id
        self.members: dict[str, str] = {}  # member id -> contact id
        self.rows: dict[str, dict] = {}  # Contact id -> Email, external id, IsDeleted, HasOptedOutOfEmail, SystemModstamp
        self.cursors: dict[str, list] = {}  # query locators of queryAll
        self.jobs: dict[str, dict] = {}
        super().__init__()

    def _bulk(self, method, path, headers, body, raw):
        """Bulk API 2.0 ingest jobs: create, PUT CSV, PATCH UploadComplete, GET state and results."""
        import csv
        import io

        api = "/services/data/v60.0/jobs/ingest"
        rest = path[len(api):].strip("/")
        if method == "POST" and not rest:
            job_id = f"750{len(self.jobs):012d}"
            self.jobs[job_id] = {"spec": body, "state": "Open", "csv": "", "ok": [], "bad": []}
            return 200, {}, {"id": job_id, "state": "Open", **body}
        job_id, _, tail = rest.partition("/")
        job = self.jobs.get(job_id)
        if job is None:
            return 404, {}, [{"errorCode": "NOT_FOUND"}]
        if method == "PUT" and tail == "batches":
            if job["state"] != "Open" or headers.get("Content-Type") != "text/csv":
                return 400, {}, [{"errorCode": "INVALIDJOBSTATE"}]
            job["csv"] += raw.decode()
            return 201, {}, None
        if method == "PATCH" and not tail and body.get("state") == "UploadComplete":
            rows = list(csv.DictReader(io.StringIO(job["csv"])))
            spec = job["spec"]
            for row in rows:
                if spec["object"] == "Contact":
                    if "@" not in row.get("Email", ""):
                        job["bad"].append({"sf__Id": "", "sf__Error": "INVALID_EMAIL_ADDRESS:bad email", **row})
                        continue
                    key = row[spec["externalIdFieldName"]]
                    cid = self.contacts.setdefault(key, f"003{len(self.rows):012d}")
                    self.note_upsert(cid, key, row["Email"])
                    job["ok"].append({"sf__Id": cid, "sf__Created": "true", **row})
                else:
                    if row["ContactId"] in self.members.values():
                        job["bad"].append({"sf__Id": "", "sf__Error": "DUPLICATE_VALUE:already a member", **row})
                        continue
                    mid = f"00v{len(self.members):012d}"
                    self.members[mid] = row["ContactId"]
                    job["ok"].append({"sf__Id": mid, "sf__Created": "true", **row})
            job["state"] = "JobComplete"
            return 200, {}, {"id": job_id, "state": "UploadComplete"}
        if method == "GET" and not tail:
            return 200, {}, {"id": job_id, "state": job["state"]}
        if method == "GET" and tail in ("successfulResults", "failedResults"):
            rows = job["ok" if tail == "successfulResults" else "bad"]
            out = io.StringIO()
            if rows:
                writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
            return 200, {}, out.getvalue().encode()
        return 400, {}, [{"errorCode": "INVALIDJOBSTATE"}]

    def handle_request_json(self, method, path, headers, body, raw):
        from urllib.parse import parse_qs, urlsplit

        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}]
        parts = urlsplit(path)
        api = "/services/data/v60.0"
        if parts.path.startswith(f"{api}/jobs/ingest"):
            return self._bulk(method, parts.path, headers, body, raw)
        answer = self.route_read_back(method, parts, body)
        if answer is not None:
            return answer
        if method == "GET" and parts.path == f"{api}/sobjects/Campaign/{self.campaign}":
            return 200, {}, {"Id": self.campaign}
        if method in ("PATCH", "POST") and len(body.get("records", [])) > 200:
            return 400, {}, [{"errorCode": "EXCEEDED_ID_LIMIT", "message": "record limit exceeded (200)"}]
        if method == "PATCH" and parts.path.startswith(f"{api}/composite/sobjects/Contact/"):
            field = parts.path.rsplit("/", 1)[1]
            out = []
            for rec in body["records"]:
                if "@" not in (rec.get("Email") or ""):
                    out.append({"success": False, "errors": [{"statusCode": "INVALID_EMAIL_ADDRESS", "message": "bad email"}]})
                    continue
                created = rec[field] not in self.contacts
                cid = self.contacts.setdefault(rec[field], f"003{len(self.rows):012d}")
                self.note_upsert(cid, rec[field], rec["Email"])
                out.append({"id": cid, "success": True, "errors": [], "created": created})
            return 200, {}, out
        if method == "POST" and parts.path == f"{api}/composite/sobjects":
            out = []
            for rec in body["records"]:
                if rec["ContactId"] in self.members.values():
                    out.append({"success": False, "errors": [{"statusCode": "DUPLICATE_VALUE", "message": "already"}]})
                    continue
                mid = f"00v{len(self.members):012d}"
                self.members[mid] = rec["ContactId"]
                out.append({"id": mid, "success": True, "errors": []})
            return 200, {}, out
        if method == "DELETE" and parts.path == f"{api}/composite/sobjects":
            ids = parse_qs(parts.query)["ids"][0].split(",")
            out = []
            for mid in ids:
                ok = self.members.pop(mid, None) is not None
                out.append({"id": mid, "success": ok, "errors": [] if ok else [{"statusCode": "ENTITY_IS_DELETED"}]})
            return 200, {}, out
        return 404, {}, [{"errorCode": "NOT_FOUND"}]
