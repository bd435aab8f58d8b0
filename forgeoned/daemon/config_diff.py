"""What a reload changes: the field marks of :class:`~forgeoned.daemon.config.Config` and the
key-by-key comparison and merge built on them.

A field that a reload applies live is marked once, with ``metadata=LIVE``; :func:`differences`
and :func:`merged` read only that mark, so a new live key is added in one place. A table kept
as one dataclass (``[compile]``, ``[control]``) is compared key by key (``metadata=TABLE``),
so a reload names ``control.socket``, not ``control``; inside it a field may be live on its
own (``[control]``'s authorisation policy is, its socket is not). A dict-valued field
(``[capabilities.NAME]``) names each entry that changed. ``key(...)`` names the TOML key when
it is not the field's name (what a reload reports, e.g. ``metrics.listen``).

The marks are plain field metadata (``{"live": True}``), so a record in ``core`` can carry one
without importing the daemon (``ControlConfig.policy`` does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import Field, dataclass, fields, is_dataclass, replace
from typing import Any, Final

# Field metadata: ``LIVE`` marks what a reload applies at once; ``table`` makes a dataclass
# value compared (and reported) field by field.
LIVE: Final = {"live": True}
TABLE: Final = {"table": True}


def key(name: str, live: bool = False) -> dict[str, Any]:
    """Field metadata naming the TOML key ``name`` (live or not) for a field named otherwise."""
    return {"key": name, "live": live}


@dataclass(frozen=True, slots=True)
class Change:
    """One configuration key whose value differs, and whether a reload applies it."""

    key: str  # as written in the file, e.g. "control.socket", "capabilities.billing"
    live: bool


def differences(old: Any, new: Any, skip: Iterable[str] = ()) -> list[Change]:
    """Every key whose value differs between two records of one dataclass, sorted by key;
    the fields named in ``skip`` are not compared."""
    found: dict[str, Change] = {}
    for f in fields(old):
        if f.name not in skip:
            for change in _diff(f, getattr(old, f.name), getattr(new, f.name)):
                found[change.key] = change
    return [found[k] for k in sorted(found)]


def merged(old: Any, new: Any) -> Any:
    """``old`` with its live fields (and the live fields of its tables) taken from ``new``."""
    taken: dict[str, Any] = {}
    for f in fields(old):
        if _live(f):
            taken[f.name] = getattr(new, f.name)
        elif f.metadata.get("table"):
            taken[f.name] = merged(getattr(old, f.name), getattr(new, f.name))
    return replace(old, **taken)


def _live(f: Field[Any]) -> bool:
    return bool(f.metadata.get("live", False))


def _diff(f: Field[Any], old: Any, new: Any, prefix: str = "") -> Iterator[Change]:
    if old == new:
        return
    name = f.metadata.get("key") or f"{prefix}{f.name}"
    live = _live(f)
    if f.metadata.get("table") and is_dataclass(old) and type(old) is type(new):
        for sub in fields(old):
            for change in _diff(sub, getattr(old, sub.name), getattr(new, sub.name), f"{name}."):
                yield Change(change.key, live or change.live)
    elif isinstance(old, dict) and isinstance(new, dict):
        for entry in sorted(set(old) | set(new)):
            if old.get(entry) != new.get(entry):
                yield Change(f"{name}.{entry}", live)
    else:
        yield Change(name, live)
