"""The error tree: every class in forgeoned/errors.py and its drawing, unique codes, and the
round trip daemon error -> API answer -> client error by ``code`` alone."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from forgeoned import errors
from forgeoned.adapters.control.client import _error_from
from forgeoned.adapters.control.http import error_response

ROOT = Path(__file__).resolve().parents[2] / "forgeoned"


def _class_bases(path: Path) -> dict[str, list[str]]:
    tree = ast.parse(path.read_text(), str(path))
    return {
        node.name: [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }


def test_no_error_class_is_defined_outside_errors_py() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "errors.py" and path.parent == ROOT:
            continue
        for name, bases in _class_bases(path).items():
            if name.startswith("_"):
                continue  # a private control-flow signal that never leaves its function
            if any(b.endswith(("Error", "Exception", "Fault", "Trap")) for b in bases):
                offenders.append(f"{path.relative_to(ROOT)}: {name}({', '.join(bases)})")
    assert offenders == []


def test_every_class_is_drawn_in_the_tree_under_its_parent() -> None:
    doc = errors.__doc__ or ""
    lines = [line for line in doc.splitlines() if line.strip().startswith(("│", "├", "└", "Forge"))]
    depth = {}
    for line in lines:
        name = line.replace("├──", "").replace("└──", "").replace("│", "").split()[0]
        depth[name] = (len(line) - len(line.lstrip(" │├└─")), line)
    for cls in errors.error_classes():
        assert cls.__name__ in depth, f"{cls.__name__} is missing from the drawn tree"
    order = [
        line.replace("├──", "").replace("└──", "").replace("│", "").split()[0] for line in lines
    ]
    for cls in errors.error_classes()[1:]:
        parent = cls.__mro__[1].__name__
        # the nearest line above with a smaller indent is the parent
        at = order.index(cls.__name__)
        indent = depth[cls.__name__][0]
        above = next(n for n in reversed(order[:at]) if depth[n][0] < indent)
        assert above == parent, f"{cls.__name__} is drawn under {above}, not {parent}"


def test_codes_are_unique_across_classes_and_refining_enums() -> None:
    seen: dict[str, str] = {}
    owners = {cls.reason: cls for cls in errors.error_classes() if "reason" in vars(cls)}
    assert len(owners) == len([c for c in errors.error_classes() if "reason" in vars(c)])
    for enum_cls, carrier in (
        (errors.TrapKind, errors.PluginTrap),
        (errors.SignatureReason, errors.SignatureError),
        (errors.RequestProblem, errors.HttpProtocolError),
        (errors.SyncReason, errors.SourceError),
    ):
        for member in enum_cls:
            owner = owners.get(member.value)
            # a refining enum may reuse only its own class's (or parent's) code
            assert owner is None or issubclass(carrier, owner), (member, owner)
            assert member.value not in seen, (member, seen.get(member.value))
            seen[member.value] = enum_cls.__name__


@pytest.mark.parametrize("code", sorted(errors.all_codes()))
def test_every_code_survives_the_api_round_trip(code: str) -> None:
    original = errors.error_from_code(code, "why it failed")
    raw = error_response(original)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    rebuilt = _error_from(status, body)
    assert type(rebuilt) is type(original)
    assert rebuilt.code == original.code and str(rebuilt) == "why it failed"
    assert json.loads(body)["error"]["code"] == original.code


def test_every_class_with_a_plain_constructor_is_rebuilt_as_itself() -> None:
    for cls in errors.error_classes():
        if "__init__" in vars(cls):
            continue
        exc = cls("m")
        assert type(errors.error_from_code(exc.code, "m")) is cls


def test_a_class_that_needs_more_than_a_message_comes_back_as_its_parent() -> None:
    exc = errors.PluginStatusError("handle", 3)
    rebuilt = errors.error_from_code(exc.code, str(exc))
    assert type(rebuilt) is errors.PluginFault and rebuilt.http_status == exc.http_status


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (503, "busy", errors.BusyError),
        (503, "unavailable", errors.UnavailableError),
        (422, "load_failed", errors.LoadError),
        (422, "over_ceiling", errors.LimitExceededError),
        (422, "tampered", errors.SignatureError),
        (400, "config_invalid", errors.ConfigError),
        (413, "body_too_large", errors.HttpProtocolError),
    ],
)
def test_the_client_maps_by_code_not_by_status(
    status: int, code: str, cls: type[errors.ForgeonedError]
) -> None:
    body = json.dumps({"error": {"code": code, "message": "m"}}).encode()
    assert type(_error_from(status, body)) is cls
    # the same code under any other status still means the same error
    assert type(_error_from(500, body)) is cls


def test_an_unknown_code_is_a_plain_error_with_its_message() -> None:
    body = json.dumps({"error": {"code": "from_the_future", "message": "m"}}).encode()
    exc = _error_from(418, body)
    assert type(exc) is errors.ForgeonedError and str(exc) == "m"
