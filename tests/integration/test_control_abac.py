"""ABAC through the real control socket, as an unprivileged caller: rules that name the
invoked function, the signer and the manifest labels; every refusal a 403 naming the rule, a
control.denied event carrying the function, and nothing run."""

from __future__ import annotations

from pathlib import Path

import pytest
from control_harness import FakeBackend, config, running
from test_control_rbac import ACTOR, as_nobody, shared_dir

from forgeoned.adapters.control.client import ControlClient
from forgeoned.core.events import EventName
from forgeoned.errors import ForbiddenError

__all__ = ["shared_dir"]  # the fixture, imported for pytest


def backend() -> FakeBackend:
    b = FakeBackend.with_plugins("edge", "other")
    b.plugins["edge"].labels = (("team", "edge"),)
    b.plugins["edge"].signers = ("release",)
    b.plugins["edge"].functions = ("check", "purge")
    b.plugins["other"].functions = ("check",)
    return b


def test_rules_on_function_signer_and_labels(shared_dir: Path) -> None:
    cfg = config(
        shared_dir / "c.sock",
        mode="0666",
        rules=[
            {"name": "no-purge", "anyone": True, "actions": ["invoke"], "plugins": ["*"],
             "functions": ["purge"], "effect": "deny"},
            {"name": "edge-checks", "group": "nogroup", "actions": ["invoke", "list"],
             "plugins": ["*"], "functions": ["check"], "signers": ["release"],
             "labels": {"team": "edge"}},
        ],
    )  # fmt: skip
    requests = [
        ("POST", "/v1/plugins/edge/invoke?fn=check", "abc"),  # allowed
        ("POST", "/v1/plugins/edge/invoke?fn=purge", "abc"),  # deny rule first
        ("POST", "/v1/plugins/edge/invoke", "abc"),  # handle: not in the rule's functions
        ("POST", "/v1/plugins/other/invoke?fn=check", "abc"),  # no label, no signer
        ("POST", "/v1/plugins/edge/invoke?fn=Bad-Name", "abc"),  # 400 before anything
    ]
    with running(cfg, backend()) as (server, fake, sink):
        results = as_nobody(server.socket_path, requests)
        actions = sink.named(EventName.CONTROL_ACTION)
        denied = sink.named(EventName.CONTROL_DENIED)
    assert [status for status, _ in results] == [200, 403, 403, 403, 400]
    assert results[1][1]["rule"] == "no-purge"
    assert "function 'purge'" in results[1][1]["message"]
    assert [r[1]["rule"] for r in results[2:4]] == ["default-deny", "default-deny"]
    assert fake.calls == [("invoke_fn", "edge", "check")]  # only the allowed call ran
    (action,) = actions  # a named function's call is audited with its name
    assert (action.actor, action.details["function"], action.details["rule"]) == (
        ACTOR,
        "check",
        "edge-checks",
    )
    assert [(e.plugin, e.details.get("function"), e.reason) for e in denied] == [
        ("edge", "purge", "no-purge"),
        ("edge", "handle", "default-deny"),
        ("other", "check", "default-deny"),
    ]


def test_one_connection_is_judged_per_function_and_per_active_signer(shared_dir: Path) -> None:
    """Verdicts kept for a connection's repeated heads must not outlive what they were about:
    ``fn`` is part of the request (same path), and a plugin's signers change with its active
    version (here as root, whom deny rules bind too)."""
    cfg = config(
        shared_dir / "c.sock",
        rules=[
            {"name": "no-purge", "anyone": True, "actions": ["invoke"], "plugins": ["*"],
             "functions": ["purge"], "effect": "deny"},
            {"name": "not-revoked", "anyone": True, "actions": ["invoke"], "plugins": ["*"],
             "signers": ["revoked"], "effect": "deny"},
        ],
    )  # fmt: skip
    with running(cfg, backend()) as (server, fake, _):
        with ControlClient(server.socket_path) as client:
            assert client.invoke("edge", b"a", function="check") == b"check:A"
            with pytest.raises(ForbiddenError, match="no-purge"):
                client.invoke("edge", b"a", function="purge")
        with ControlClient(server.socket_path) as client:
            assert client.invoke("edge", b"a") == b"A"
            fake.plugins["edge"].signers = ("revoked",)  # a new version became active
            with pytest.raises(ForbiddenError, match="not-revoked"):
                client.invoke("edge", b"a")
    assert ("invoke_fn", "edge", "purge") not in fake.calls  # refused, never run
