"""Validate an event against the compiled OCSF 1.8.0 schema (``../shared/ocsf/1.8.0``).

What it checks, recursively through every object: required attributes present (those of a
profile only when the event declares the profile in ``metadata.profiles``), no attribute the
class or object does not define (the records use no extension), values of the attribute's
type (through the schema's ``types``: ``timestamp_t`` is a ``long_t``…, integers in range),
enum values defined, ``at_least_one``/``just_one`` constraints, enum captions in the sibling
``*_name`` attributes, and ``type_uid`` = ``class_uid`` * 100 + ``activity_id``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any, Final

from shared_files import SHARED, WHERE

SCHEMA: Final = SHARED / "ocsf/1.8.0/schema.json"
MISSING_REASON: Final = f"OCSF 1.8.0 schema not found at {SCHEMA} ({WHERE})"
_INT_RANGE: Final = {"integer_t": 2**31, "long_t": 2**63}


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA.read_text())
    return loaded


def class_by_uid(uid: int) -> dict[str, Any]:
    for cls in schema()["classes"].values():
        if cls["uid"] == uid:
            found: dict[str, Any] = cls
            return found
    raise KeyError(f"no OCSF class {uid}")


def validate(event: dict[str, Any]) -> list[str]:
    """Every problem of ``event`` (empty when it is valid)."""
    errors: list[str] = []
    try:
        cls = class_by_uid(event.get("class_uid", -1))
    except KeyError as exc:
        return [str(exc)]
    metadata = event.get("metadata")
    profiles = set(metadata.get("profiles", [])) if isinstance(metadata, dict) else set()
    _object(event, cls["attributes"], cls.get("constraints"), cls["name"], profiles, errors)
    if event.get("type_uid") != event.get("class_uid", 0) * 100 + event.get("activity_id", -1):
        errors.append(f"type_uid {event.get('type_uid')} is not class_uid*100 + activity_id")
    return errors


def _object(
    value: dict[str, Any],
    attributes: dict[str, Any],
    constraints: dict[str, list[str]] | None,
    where: str,
    profiles: set[str],
    errors: list[str],
) -> None:
    for name, attr in attributes.items():
        active = _native(name, attr) or attr["profile"] in profiles
        if attr.get("requirement") == "required" and active and name not in value:
            errors.append(f"{where}: required attribute {name!r} is missing")
    for name, item in value.items():
        attr = attributes.get(name)
        if attr is None:
            errors.append(f"{where}: attribute {name!r} is not defined in OCSF 1.8.0")
            continue
        if not _native(name, attr) and attr["profile"] not in profiles:
            errors.append(f"{where}.{name}: needs profile {attr['profile']!r} in metadata")
        _value(item, attr, f"{where}.{name}", profiles, errors)
        _sibling(value, name, attr, where, errors)
    for rule, names in (constraints or {}).items():
        present = [n for n in names if n in value]
        if rule == "at_least_one" and not present:
            errors.append(f"{where}: needs at least one of {names}")
        if rule == "just_one" and len(present) != 1:
            errors.append(f"{where}: needs exactly one of {names}")


def _native(name: str, attr: dict[str, Any]) -> bool:
    """True for an attribute of the class itself. The compiled schema marks every attribute a
    profile also defines with that profile; the class's own (API Activity's required ``api``
    and ``actor``) keep a requirement other than the profile's."""
    profile = attr.get("profile")
    if profile is None:
        return True
    defined = schema()["profiles"].get(profile, {}).get("attributes", {}).get(name, {})
    return bool(defined.get("requirement") != attr.get("requirement"))


def _value(
    item: Any, attr: dict[str, Any], where: str, profiles: set[str], errors: list[str]
) -> None:
    if attr.get("is_array"):
        if not isinstance(item, list):
            errors.append(f"{where}: an array is needed, got {type(item).__name__}")
            return
        for index, element in enumerate(item):
            _one(element, attr, f"{where}[{index}]", profiles, errors)
    else:
        _one(item, attr, where, profiles, errors)


def _one(
    item: Any, attr: dict[str, Any], where: str, profiles: set[str], errors: list[str]
) -> None:
    kind = attr.get("type")
    if kind == "object":  # the generic object (``unmapped``): any attributes
        if not isinstance(item, dict):
            errors.append(f"{where}: a JSON object is needed")
        return
    object_type = attr.get("object_type") or (kind if kind in schema()["objects"] else None)
    if object_type:
        if not isinstance(item, dict):
            errors.append(f"{where}: object {object_type} needed, got {type(item).__name__}")
            return
        obj = schema()["objects"][object_type]
        _object(item, obj["attributes"], obj.get("constraints"), where, profiles, errors)
        return
    _scalar(item, str(kind), where, errors)
    enum = attr.get("enum")
    if enum and str(item) not in enum:
        errors.append(f"{where}: {item!r} is not one of the enum values {sorted(enum)}")


def _scalar(item: Any, kind: str, where: str, errors: list[str]) -> None:
    base = kind
    types = schema()["types"]
    while types.get(base, {}).get("type"):
        base = types[base]["type"]
    if base == "json_t":
        return
    if base in _INT_RANGE:
        bound = _INT_RANGE[base]
        if not isinstance(item, int) or isinstance(item, bool) or not -bound <= item < bound:
            errors.append(f"{where}: {kind} needs an integer in range, got {item!r}")
    elif base == "float_t":
        if not isinstance(item, int | float) or isinstance(item, bool):
            errors.append(f"{where}: {kind} needs a number, got {item!r}")
    elif base == "boolean_t":
        if not isinstance(item, bool):
            errors.append(f"{where}: {kind} needs a boolean, got {item!r}")
    elif not isinstance(item, str):
        errors.append(f"{where}: {kind} needs a string, got {item!r}")


def _sibling(
    value: dict[str, Any], name: str, attr: dict[str, Any], where: str, errors: list[str]
) -> None:
    """``activity_name`` must be the caption of ``activity_id`` (unless it is 99, Other)."""
    sibling, enum = attr.get("sibling"), attr.get("enum")
    if not sibling or not enum or sibling not in value or not name.endswith("_id"):
        return
    key = str(value[name])
    if key in enum and key != "99" and value[sibling] != enum[key]["caption"]:
        errors.append(
            f"{where}.{sibling}: {value[sibling]!r} is not the caption of {name} {key} "
            f"({enum[key]['caption']!r})"
        )
