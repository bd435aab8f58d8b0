"""The provider-hook host functions: ``config_get`` and the three metric calls.

Kept beside :mod:`forgeoned.adapters.wasm.hostabi` (whose bookkeeping they use: counting,
throttled denial audits, bounded guest reads) so that the nine v1 functions stay on one page.
Semantics and result codes: docs/plugin-hooks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from forgeoned.core.abi import DENIED, INVALID, NOT_FOUND
from forgeoned.core.events import AuditEvent, EventName
from forgeoned.core.plugin_metrics import MetricOp, MetricResult

if TYPE_CHECKING:
    from forgeoned.adapters.wasm.hostabi import HostCalls

_U32: Final = 0xFFFFFFFF
MAX_METRIC_NAME: Final = 64
MAX_LABEL_BYTES: Final = 1024
METRIC_INVALID: Final = "metric_invalid"
_OK: Final = MetricResult.OK


def config_get(calls: HostCalls, key_ptr: int, key_len: int, buf_ptr: int, buf_len: int) -> int:
    key = calls._text(key_ptr, key_len)
    if key is None or len(key) > 64:
        return calls._invalid("config_get")
    value = calls.services.config.get(key)
    if value is None:  # not declared, or declared without a value
        return calls._done("config_get", "not_found", NOT_FOUND)
    return calls._reply("config_get", value.encode(), buf_ptr, buf_len)


def _refuse_invalid(calls: HostCalls, function: str, what: str) -> int:
    """A metric call with a bad label, value or operation: -3, counted, audited (throttled)."""
    svc = calls.services
    calls._counts[(function, "invalid")] += 1
    audit, due = svc.denials.deny(function, svc.clock.monotonic())
    for summary in due:
        calls._audit_summary(summary)
    if audit:
        svc.audit.record(
            AuditEvent(
                EventName.HOSTCALL_DENIED,
                plugin=svc.plugin,
                version=svc.version,
                reason=METRIC_INVALID,
                message=f"plugin {svc.plugin} was refused {function}({what}): not as declared",
                details={"function": function, "target": what},
            )
        )
    return INVALID


def metric(
    calls: HostCalls,
    op: MetricOp,
    name_ptr: int,
    name_len: int,
    labels_ptr: int,
    labels_len: int,
    value: float,
) -> int:
    function = op.value
    metrics = calls.services.metrics
    name_len &= _U32
    labels_len &= _U32
    if name_len > MAX_METRIC_NAME or labels_len > MAX_LABEL_BYTES:
        return calls._invalid(function)
    pair = calls.memory.read_pair(name_ptr & _U32, name_len, labels_ptr & _U32, labels_len)
    if pair is None:
        return calls._invalid(function)
    raw_name, labels = pair
    if metrics is not None and calls.services.capabilities.metrics:
        result = metrics.update(op, raw_name, labels, value)
        if result is _OK:
            return calls._done(function, "ok", 0)
    else:
        result = MetricResult.UNDECLARED  # the policy withholds metrics: denied as well
    name = raw_name.decode("utf-8", "replace")
    if result is MetricResult.UNDECLARED:
        calls._deny(function, name)
        return DENIED
    return _refuse_invalid(calls, function, name)
