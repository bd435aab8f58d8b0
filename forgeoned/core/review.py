"""Periodic plugin review ("review and update plugins quarterly or after every major
incident"): when each plugin's next review is due, and what happened since the last one.

A plugin's review is due ``interval`` after its last review (``forgeonectl review NAME
--note TEXT``, audited as ``plugin.reviewed``), or after its first activation when it was
never reviewed. A major incident — a quarantine or a rollback — makes it due at the time of
the incident, and the incident is listed until the next review. Pure: times come in as
arguments (the daemon's clock), and the book round-trips through JSON for the state dir.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

MAX_INCIDENTS: Final = 50  # per plugin, since its last review (the oldest are dropped)


@dataclass(frozen=True, slots=True)
class Incident:
    at: float
    event: str  # plugin.quarantined, plugin.rolled_back
    version: str | None
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "event": self.event, "version": self.version, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Review:
    at: float
    actor: str | None
    version: str | None
    note: str


@dataclass(frozen=True, slots=True)
class PluginReviews:
    first_active: float
    last: Review | None = None
    incidents: tuple[Incident, ...] = ()  # since the last review

    def due_at(self, interval_s: float) -> float:
        base = self.last.at if self.last is not None else self.first_active
        due = base + interval_s
        if self.incidents:
            due = min(due, self.incidents[0].at)
        return due


@dataclass(slots=True)
class ReviewBook:
    plugins: dict[str, PluginReviews] = field(default_factory=dict)

    def activated(self, name: str, at: float) -> bool:
        """A version of ``name`` went live; True when this starts its review clock."""
        if name in self.plugins:
            return False
        self.plugins[name] = PluginReviews(first_active=at)
        return True

    def incident(self, name: str, incident: Incident) -> None:
        entry = self.plugins.get(name) or PluginReviews(first_active=incident.at)
        kept = (*entry.incidents, incident)[-MAX_INCIDENTS:]
        self.plugins[name] = replace(entry, incidents=kept)

    def reviewed(self, name: str, review: Review) -> None:
        entry = self.plugins.get(name) or PluginReviews(first_active=review.at)
        self.plugins[name] = replace(entry, last=review, incidents=())

    def due(self, interval_s: float) -> dict[str, float]:
        return {name: p.due_at(interval_s) for name, p in sorted(self.plugins.items())}

    def overdue(self, interval_s: float, now: float) -> list[tuple[str, PluginReviews]]:
        return [(n, p) for n, p in sorted(self.plugins.items()) if p.due_at(interval_s) <= now]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, p in self.plugins.items():
            last = p.last
            out[name] = {
                "first_active": p.first_active,
                "last": None if last is None else {
                    "at": last.at, "actor": last.actor, "version": last.version,
                    "note": last.note,
                },
                "incidents": [i.to_json() for i in p.incidents],
            }  # fmt: skip
        return {"version": 1, "plugins": out}

    @classmethod
    def from_json(cls, raw: Any) -> ReviewBook:
        """The inverse of :meth:`to_json`; ValueError on anything else."""
        book = cls()
        try:
            for name, p in raw["plugins"].items():
                last = p["last"]
                book.plugins[str(name)] = PluginReviews(
                    first_active=float(p["first_active"]),
                    last=None if last is None else Review(
                        float(last["at"]), last["actor"], last["version"], str(last["note"])
                    ),
                    incidents=tuple(
                        Incident(float(i["at"]), str(i["event"]), i["version"], i["reason"])
                        for i in p["incidents"]
                    ),
                )  # fmt: skip
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a review book: {exc!r}") from None
        return book
