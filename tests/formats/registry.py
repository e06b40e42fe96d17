"""A schema registry at the boundary: the Confluent Schema Registry REST endpoints confluent-kafka's client calls,
served from a small local HTTP server (no registry server can be installed here; ADR 0051). It keeps what it is
given and answers what the documentation says: register and look up under a subject, schemas by id (with
`?format=serialized` answered with what was registered, which for Python's Protobuf serializer is the serialized
descriptor already), the subject-versions of an id, and subject versions. It checks basic auth when given one."""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class Registry:
    def __init__(self, username: str | None = None, password: str | None = None, *, token: str | None = None, tls=None):
        self.schemas: dict[int, dict] = {}  # id → {"schema", "schemaType", "references"}
        self.subjects: dict[str, list[int]] = {}  # subject → ids by version
        self.requests: list[str] = []
        self.auth = None
        if username:
            self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        if token:
            self.auth = f"Bearer {token}"
        self._lock = threading.Lock()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> dict:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"{}")

            def _authorised(self) -> bool:
                if registry.auth and self.headers.get("Authorization") != registry.auth:
                    self._send(401, {"error_code": 40101, "message": "Unauthorized"})
                    return False
                return True

            def do_GET(self):  # noqa: N802 - http.server's name
                if not self._authorised():
                    return
                path = urlsplit(self.path).path
                registry.requests.append(f"GET {path}")
                status, body = registry.get(path)
                self._send(status, body)

            def do_POST(self):  # noqa: N802
                if not self._authorised():
                    return
                path = urlsplit(self.path).path
                registry.requests.append(f"POST {path}")
                status, body = registry.post(path, self._body())
                self._send(status, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:  # an ssl.SSLContext with the server's certificate
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def _view(self, schema_id: int, subject: str | None = None) -> dict:
        stored = self.schemas[schema_id]
        out = {"id": schema_id, "guid": self.guid(schema_id), "schema": stored["schema"]}
        if stored.get("schemaType") not in (None, "AVRO"):
            out["schemaType"] = stored["schemaType"]
        if stored.get("references"):
            out["references"] = stored["references"]
        if subject is not None:
            out["subject"] = subject
            out["version"] = self.subjects[subject].index(schema_id) + 1
        return out

    @staticmethod
    def guid(schema_id: int) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"schema/{schema_id}"))

    def _find(self, given: dict) -> int | None:
        for schema_id, stored in self.schemas.items():
            if stored["schema"] == given.get("schema") and stored.get("schemaType", "AVRO") == given.get(
                "schemaType", "AVRO"
            ):
                return schema_id
        return None

    def register(self, subject: str, given: dict) -> int:
        with self._lock:
            schema_id = self._find(given)
            if schema_id is None:
                schema_id = len(self.schemas) + 1
                self.schemas[schema_id] = {
                    "schema": given["schema"],
                    "schemaType": given.get("schemaType", "AVRO"),
                    "references": given.get("references") or [],
                }
            versions = self.subjects.setdefault(subject, [])
            if schema_id not in versions:
                versions.append(schema_id)
            return schema_id

    def get(self, path: str):
        if m := re.fullmatch(r"/schemas/ids/(\d+)", path):
            schema_id = int(m.group(1))
            if schema_id not in self.schemas:
                return 404, {"error_code": 40403, "message": "Schema not found"}
            return 200, self._view(schema_id)
        if m := re.fullmatch(r"/schemas/guids/([0-9a-f-]+)", path):
            found = [i for i in self.schemas if self.guid(i) == m.group(1)]
            if not found:
                return 404, {"error_code": 40403, "message": "Schema not found"}
            return 200, self._view(found[0])
        if m := re.fullmatch(r"/schemas/ids/(\d+)/versions", path):
            schema_id = int(m.group(1))
            return 200, [
                {"subject": s, "version": ids.index(schema_id) + 1}
                for s, ids in self.subjects.items()
                if schema_id in ids
            ]
        if path == "/subjects":
            return 200, sorted(self.subjects)
        if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
            return 200, list(range(1, len(self.subjects.get(m.group(1), [])) + 1))
        if m := re.fullmatch(r"/subjects/([^/]+)/versions/(latest|\d+)", path):
            ids = self.subjects.get(m.group(1))
            if not ids:
                return 404, {"error_code": 40401, "message": "Subject not found"}
            version = len(ids) if m.group(2) == "latest" else int(m.group(2))
            return 200, self._view(ids[version - 1], m.group(1))
        return 404, {"error_code": 404, "message": f"no route {path}"}

    def post(self, path: str, body: dict):
        if m := re.fullmatch(r"/subjects/([^/]+)/versions", path):
            schema_id = self.register(m.group(1), body)
            return 200, self._view(schema_id, m.group(1))
        if m := re.fullmatch(r"/subjects/([^/]+)", path):
            schema_id = self._find(body)
            if schema_id is None or schema_id not in self.subjects.get(m.group(1), []):
                return 404, {"error_code": 40403, "message": "Schema not found"}
            return 200, self._view(schema_id, m.group(1))
        return 404, {"error_code": 404, "message": f"no route {path}"}
