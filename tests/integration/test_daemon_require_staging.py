"""A production daemon with ``[staging] require_staging = true``: an artifact without a valid
staging attestation beside it is refused — unattested, forged, mismatched (another sha256),
expired, signed by a key outside the attester role — each with its own reason code and a
``plugin.rejected`` audit event, while what runs keeps running; with a valid attestation the
very same artifact runs; ``forgeonectl check`` and ``verify`` give the same verdicts offline."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from daemon_kit import Env, drop, in_process, plugin

from forgeoned.adapters.crypto.attest import sign_attestation
from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli import main
from forgeoned.cli.devtools import test_key
from forgeoned.core.attestation import SUFFIX
from forgeoned.errors import StagingReason

STAGER = test_key(41)  # the attester role's key
AUTHOR = test_key(7)  # daemon_kit's signing key: trusted, but not an attester
EVIDENCE = {"calls": 12, "faults": 0, "duration_s": 7200}
DAY = 86400.0


def _env(tmp_path: Path) -> Env:
    env = Env(tmp_path)
    (env.root / "trusted.d/stager.pub").write_bytes(public_key_bytes(STAGER.public_key))
    env.write_config('[staging]\nrequire_staging = true\nattesters = ["stager"]')
    return env


def _attest(data: bytes, name: str, version: str, **over: object) -> bytes:
    import hashlib

    key = over.get("key", STAGER)
    sha = str(over.get("sha256", hashlib.sha256(data).hexdigest()))
    expires = float(str(over.get("expires", time.time() + 30 * DAY)))
    return sign_attestation(key, name, version, sha, EVIDENCE, expires)  # type: ignore[arg-type]


def _forged(envelope: bytes) -> bytes:
    env = json.loads(envelope)
    body = json.loads(base64.b64decode(env["payload"]))
    body["predicate"]["evidence"]["faults"] = 0
    body["predicate"]["evidence"]["calls"] = 10_000  # inflated after signing
    env["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    return json.dumps(env).encode()


CASES = {
    "unattested": StagingReason.UNATTESTED,
    "forged": StagingReason.FORGED,
    "mismatch": StagingReason.MISMATCH,
    "expired": StagingReason.EXPIRED,
    "wrongrole": StagingReason.WRONG_ROLE,
}

SAYS = {  # what verify's one line says, per case
    "unattested": "no staging attestation",
    "forged": "does not verify with any trusted key",
    "mismatch": "is for other bytes",
    "expired": "staging attestation expired",
    "wrongrole": "not by a staging attester",
}


def _case(name: str) -> tuple[bytes, bytes | None]:
    data = plugin(name, "1.0.0")
    if name == "unattested":
        return data, None
    if name == "forged":
        return data, _forged(_attest(data, name, "1.0.0"))
    if name == "mismatch":
        return data, _attest(plugin(name, "1.0.1"), name, "1.0.0")
    if name == "expired":
        return data, _attest(data, name, "1.0.0", expires=time.time() - 1)
    return data, _attest(data, name, "1.0.0", key=AUTHOR)


def test_production_requires_a_valid_staging_attestation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = _env(tmp_path)
    good = plugin("good", "1.0.0")
    staged = tmp_path / "staged"
    staged.mkdir()
    for name in [*CASES, "good"]:
        data, envelope = _case(name) if name != "good" else (good, _attest(good, "good", "1.0.0"))
        (staged / f"{name}.wasm").write_bytes(data)
        if envelope is not None:
            (staged / f"{name}.wasm{SUFFIX}").write_bytes(envelope)
            drop(env.plugins, f"{name}.wasm{SUFFIX}", envelope)  # the attestation first
        drop(env.plugins, f"{name}.wasm", data)
        # check, offline, reads the attestation beside the file as the daemon does
        assert main(["check", str(staged / f"{name}.wasm"), "--config", str(env.config),
                     "--json"]) == (0 if name == "good" else 3)  # fmt: skip
        verdict = json.loads(capsys.readouterr().out)
        assert verdict["reason"] == (None if name == "good" else CASES[name].value), verdict
        # and verify, with the same config, agrees (issue 14: it once said "trusted", rc 0)
        code = main(["verify", "--trust", str(env.root / "trusted.d"), "--config",
                     str(env.config), str(staged / f"{name}.wasm")])  # fmt: skip
        out, err = capsys.readouterr()
        if name == "good":
            assert code == 0 and out.startswith("trusted and loadable: good 1.0.0"), out
        else:
            assert code == 3 and out == "" and err.startswith("forgeonectl: "), (name, err)
            assert SAYS[name] in err and err.count("\n") == 1, (name, err)
    with in_process(env) as d:
        d.events.wait("plugin.installed", "good")
        assert d.invoke("good") == b"good@1.0.0:x"
        for name, why in CASES.items():
            [event] = d.events.wait("plugin.rejected", name)
            assert event.reason == why.value, (name, event)
            assert name not in d.parts.plugins
        stats = d.parts.stats.rejected
        assert {r: stats[r.value] for r in CASES.values()} == {r: 1 for r in CASES.values()}
        # the unattested artifact, attested now and installed through the API, runs
        data, _ = _case("unattested")
        from forgeoned.adapters.control.client import ControlClient

        with ControlClient(env.socket, timeout=60) as client:
            answer = client.install(data, "unattested.wasm",
                                    attestation=_attest(data, "unattested", "1.0.0"))  # fmt: skip
        assert answer["outcome"] == "running"
        assert (env.plugins / f"unattested.wasm{SUFFIX}").is_file()
        assert d.invoke("unattested") == b"unattested@1.0.0:x"
        assert d.invoke("good") == b"good@1.0.0:x"  # nothing else changed
    stored = [e for e in env.audit_events() if e["event"] == "plugin.rejected"]
    assert sorted(e["reason"] for e in stored) == sorted(r.value for r in CASES.values())


def test_an_attestation_dropped_after_its_module_brings_it_in(tmp_path: Path) -> None:
    env = _env(tmp_path)
    data = plugin("late", "1.0.0")
    drop(env.plugins, "late.wasm", data)
    with in_process(env) as d:
        [event] = d.events.wait("plugin.rejected", "late")
        assert event.reason == StagingReason.UNATTESTED.value
        # the watcher sees the attestation as a change of late.wasm: judged again, no rescan
        drop(env.plugins, f"late.wasm{SUFFIX}", _attest(data, "late", "1.0.0"))
        d.events.wait("plugin.installed", "late")
        assert d.invoke("late") == b"late@1.0.0:x"


def test_the_next_versions_attestation_first_unadmits_nothing(tmp_path: Path) -> None:
    """OCI delivery writes the new attestation before renaming the module in, and an operator
    may drop the files in that order too: for a moment the running version's file sits beside
    an attestation of other bytes. Admission is behind it: no rejection, nothing stops."""
    env = _env(tmp_path)
    v1, v2 = plugin("hello", "1.0.0"), plugin("hello", "2.0.0")
    drop(env.plugins, f"hello.wasm{SUFFIX}", _attest(v1, "hello", "1.0.0"))
    drop(env.plugins, "hello.wasm", v1)
    with in_process(env) as d:
        d.events.wait("plugin.installed", "hello")
        drop(env.plugins, f"hello.wasm{SUFFIX}", _attest(v2, "hello", "2.0.0"))
        d.sync()  # the attestation change is judged before the module arrives
        assert "plugin.rejected" not in d.events.labels("hello")
        assert d.invoke("hello") == b"hello@1.0.0:x"
        drop(env.plugins, "hello.wasm", v2)
        d.events.wait("plugin.upgraded", "hello")
        assert d.invoke("hello") == b"hello@2.0.0:x"
        assert "plugin.rejected" not in d.events.labels("hello")
        assert not any(d.parts.stats.rejected.values())
