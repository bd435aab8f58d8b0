"""OpenTelemetry (OTLP/HTTP) export of the audit trail; needs the ``otlp`` extra."""
