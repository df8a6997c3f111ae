"""Local HTTP servers (real sockets, a thread each) that follow the vendors' documented contracts:
paths, auth headers, batch limits (400), 429 with Retry-After, and injected 5xx / slow answers."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeServer(ThreadingHTTPServer):
    """Subclass and implement `handle_request_json(method, path, headers, body) -> (status, headers, obj)`."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.inject: deque = deque()  # (status, headers, body) answered instead of the next requests
        self.delay = 0.0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

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
        entry = {"method": self.command, "path": self.path, "headers": dict(self.headers), "raw": raw,
                 "at": time.monotonic()}
        with server.lock:
            server.requests.append(entry)
            injected = server.inject.popleft() if server.inject else None
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


class FakeHubSpot(FakeServer):
    """CRM v3: contacts batch upsert by email (max 100 inputs), lists v3 memberships, Bearer token."""

    def __init__(self, token: str = "pat-test", list_id: str = "42") -> None:
        self.token, self.list_id = token, list_id
        self.contacts: dict[str, dict] = {}  # email -> {"id", "properties"}
        self.members: set[str] = set()
        self.next_id = 1000
        super().__init__()

    def handle_request_json(self, method, path, headers, body, raw):
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {}, {"status": "error", "category": "INVALID_AUTHENTICATION", "message": "bad token"}
        base = path.split("?")[0]
        if method == "GET" and base == "/crm/v3/objects/contacts":
            return 200, {}, {"results": []}
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
