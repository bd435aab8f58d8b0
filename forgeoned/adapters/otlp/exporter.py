"""Audit entries to an OTLP/HTTP logs endpoint through OpenTelemetry's Python SDK.

:class:`OtlpShipper` turns entries into SDK log records (:mod:`forgeoned.core.otlp_map`) and
sends them in batches with the SDK's ``OTLPLogExporter`` (protobuf over HTTP, retries with
backoff on the codes the specification calls retryable). A batch counts as delivered only
when the exporter says so; the caller then moves its position. The SDK is imported here
only, so forgeonectl and the daemon run without it unless this is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from forgeoned.core.otlp_map import to_record
from forgeoned.errors import AuditError

try:
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExportResult
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise AuditError(
        "the OTLP exporter needs OpenTelemetry's SDK: pip install 'forgeoned[otlp]' "
        f"({exc.name} is missing)"
    ) from exc


class OtlpShipper:
    def __init__(
        self,
        endpoint: str,
        version: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._exporter = OTLPLogExporter(endpoint=endpoint, headers=dict(headers or {}),
                                         timeout=timeout_s)  # fmt: skip
        self._resource = Resource.create({"service.name": "forgeoned",
                                          "service.version": version})  # fmt: skip
        self._scope = InstrumentationScope("forgeoned.audit", version)

    def send(self, entries: Sequence[Mapping[str, Any]]) -> bool:
        """Export ``entries`` as one request; True once the endpoint accepted them."""
        if not entries:
            return True
        batch = [self._readable(entry) for entry in entries]
        return self._exporter.export(batch) is LogRecordExportResult.SUCCESS

    def close(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]

    def _readable(self, entry: Mapping[str, Any]) -> ReadableLogRecord:
        r = to_record(entry)
        record = LogRecord(
            timestamp=r.time_ns, observed_timestamp=r.time_ns,
            severity_number=SeverityNumber(r.severity_number), severity_text=r.severity_text,
            body=r.body, attributes=r.attributes, event_name=r.event_name,
        )  # fmt: skip
        return ReadableLogRecord(record, self._resource, self._scope)
