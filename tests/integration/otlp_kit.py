"""A local OTLP/HTTP logs receiver for tests: decodes each ``ExportLogsServiceRequest`` (the
protobuf the OpenTelemetry exporter sends) and keeps every log record."""

from __future__ import annotations

import http.server
import threading
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)


class Receiver:
    """An OTLP/HTTP logs endpoint on 127.0.0.1: keeps every decoded record."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.refuse = False
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests += 1
                if outer.refuse:
                    self.send_response(400)  # not retryable: the exporter gives up at once
                    self.end_headers()
                    return
                request = ExportLogsServiceRequest()
                request.ParseFromString(body)
                for resource_logs in request.resource_logs:
                    service = {a.key: a.value.string_value
                               for a in resource_logs.resource.attributes}  # fmt: skip
                    for scope_logs in resource_logs.scope_logs:
                        for r in scope_logs.log_records:
                            attrs = {a.key: a.value for a in r.attributes}
                            outer.records.append({
                                "seq": attrs["forgeone.seq"].int_value,
                                "hash": attrs["forgeone.hash"].string_value,
                                "prev_hash": attrs["forgeone.prev_hash"].string_value,
                                "event": r.event_name,
                                "message_id": attrs["forgeone.message_id"].string_value,
                                "severity": r.severity_number, "body": r.body.string_value,
                                "time": r.time_unix_nano, "scope": scope_logs.scope.name,
                                "service": service.get("service.name"),
                            })  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()
                self.wfile.write(ExportLogsServiceResponse().SerializeToString())

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/logs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
