"""Staging evidence and reviews as the control API, the metrics and the compliance report
see them (the facade delegates here).

* ``evidence(name)``: a staging daemon's record of what it observed of ``name`` (what
  ``forgeonectl promote`` signs); any other mode answers a conflict;
* ``staging_report(views)``: per running plugin, its staging evidence — on a staging daemon
  the live record, elsewhere the attestation beside its artifact that admitted it (decoded;
  it was verified when the artifact was loaded);
* ``review(...)``: ``plugin.reviewed``; ``review_due()`` the metric's values;
  ``overdue()`` the compliance report's list, with the incidents since each last review.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from forgeoned.core.attestation import open_envelope
from forgeoned.core.ports import AuditSink
from forgeoned.core.stats import PluginView
from forgeoned.core.trust import Mode, utc_text
from forgeoned.errors import ConflictError, NotFoundError, StagingError
from forgeoned.service.evidence import StagingEvidence
from forgeoned.service.reviews import Reviews


class Stewardship:
    def __init__(
        self,
        mode: Callable[[], Mode],
        reviews: Reviews,
        evidence: StagingEvidence | None,
        attestations: Callable[[], Iterable[bytes]],
        audit: AuditSink,
    ) -> None:
        self._mode = mode
        self.reviews = reviews
        self._evidence = evidence
        self._attestations = attestations
        self._audit = audit

    def evidence(self, view: PluginView) -> dict[str, Any]:
        if self._evidence is None or self._mode() is not Mode.STAGING:
            raise ConflictError(
                f'{view.name}: this daemon is not in staging mode (mode = "staging" records '
                "the evidence promote signs)"
            )
        return self._evidence.of(view.name, view.sha256, view.memory_bytes)

    def staging_report(self, views: Sequence[PluginView]) -> list[dict[str, Any]]:
        attested: dict[str, dict[str, Any]] = {}
        for raw in self._attestations():
            try:
                opened = open_envelope(raw)
            except StagingError:
                continue
            pred = opened.statement.get("predicate")
            for sha in opened.digests():
                attested[sha] = pred if isinstance(pred, dict) else {}
        out = []
        for view in views:
            row: dict[str, Any] = {"plugin": view.name, "version": view.version,
                                   "sha256": view.sha256}  # fmt: skip
            if self._evidence is not None and self._mode() is Mode.STAGING:
                try:
                    row["evidence"] = self._evidence.of(view.name, view.sha256, view.memory_bytes)
                    row["source"] = "observed here (staging)"
                except NotFoundError:
                    pass  # not activated by this process: no record
            if "evidence" not in row and view.sha256 in attested:
                pred = attested[view.sha256]
                row["evidence"] = pred.get("evidence")
                row["source"] = f"attestation (expires {pred.get('expires')})"
            out.append(row)
        return out

    def review(self, view: PluginView, note: str, actor: str | None) -> dict[str, Any]:
        entry = self.reviews.review(self._audit, view.name, view.version, view.sha256, note, actor)
        due = entry.due_at(self.reviews.interval_s)
        return {"plugin": view.name, "version": view.version, "next_due": utc_text(due)}

    def review_due(self, names: Iterable[str]) -> dict[str, float]:
        due = self.reviews.due()
        return {n: due[n] for n in names if n in due}

    def overdue(self) -> list[dict[str, Any]]:
        interval = self.reviews.interval_s
        return [
            {
                "plugin": name, "due": utc_text(p.due_at(interval)),
                "last_review": None if p.last is None else utc_text(p.last.at),
                "incidents": [
                    {**i.to_json(), "at": utc_text(i.at)} for i in p.incidents
                ],
            }
            for name, p in self.reviews.overdue()
        ]  # fmt: skip
