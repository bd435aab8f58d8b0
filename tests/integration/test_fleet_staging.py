"""``require_staging`` through OCI delivery: ``push`` publishes the attestation beside the
file as a second layer; the follower checks it with the module (the daemon's verifier),
writes it into plugins.d *before* renaming the module in, so the daemon never sees the
module without it. A version pushed without (or with a forged) attestation is refused with
the daemon's own staging reason, and the running version stays."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from daemon_kit import plugin
from fleet_kit import Fleet, fleet, source_toml
from registry_kit import LAYER, REGISTRY
from test_daemon_require_staging import STAGER, _attest, _forged

from forgeoned.adapters.crypto.keys import public_key_bytes

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")

STAGING = '[staging]\nrequire_staging = true\nattesters = ["stager"]\n'


def _beside(f: Fleet, envelope: bytes | None, tag: str = "stable") -> None:
    """What ``push`` finds beside the file it publishes (fleet_kit's push-TAG.wasm)."""
    path = f.tmp / f"push-{tag}.wasm.intoto.json"
    if envelope is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(envelope)


def _refused(f: Fleet, capsys: pytest.CaptureFixture[str], reason: str) -> None:
    before = sorted((p.name, p.read_bytes()) for p in f.env.plugins.iterdir())
    capsys.readouterr()
    assert f.ctl("pull", "hello") == 3  # the artifact is refused, as install would be
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "source hello" in err[0]
    [failed] = f.d.events.wait("source.failed", "hello", reason=reason)
    assert failed.version == "2.0.0" and failed.details["source"] == "hello"
    assert sorted((p.name, p.read_bytes()) for p in f.env.plugins.iterdir()) == before
    assert f.running() == "1.0.0" and f.d.invoke("hello") == b"hello@1.0.0:x"
    assert f.ctl("sources", "--json") == 0
    [row] = json.loads(capsys.readouterr().out)["sources"]
    assert row["outcome"] == "failed" and row["reason"] == reason


def test_a_first_delivery_without_an_attestation_is_unattested(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No attestation anywhere: ``staging_unattested`` (not ``artifact_untrusted``)."""
    (tmp_path / "daemon" / "trusted.d").mkdir(parents=True)
    (tmp_path / "daemon/trusted.d/stager.pub").write_bytes(public_key_bytes(STAGER.public_key))
    v1 = plugin("hello", "1.0.0")
    (tmp_path / "push-stable.wasm.intoto.json").write_bytes(_attest(v1, "hello", "1.0.0"))
    other = source_toml("other", "oci://{registry}/plugins/other:stable")
    with fleet(tmp_path, sources=other, first=v1, extra=STAGING) as f:
        f.reg.publish_raw("plugins/other", "stable", [(plugin("other", "1.0.0"), LAYER)])
        capsys.readouterr()
        assert f.ctl("pull", "other") == 3
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "staging attestation" in err[0]
        [failed] = f.d.events.wait("source.failed", "other", reason="staging_unattested")
        assert failed.version == "1.0.0" and failed.details["source"] == "other"
        assert not (f.env.plugins / "oci-other.wasm").exists()
        assert "other" not in f.d.parts.plugins


def test_a_require_staging_daemon_follows_attested_artifacts_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "daemon" / "trusted.d").mkdir(parents=True)
    (tmp_path / "daemon/trusted.d/stager.pub").write_bytes(public_key_bytes(STAGER.public_key))
    v1, v2 = plugin("hello", "1.0.0"), plugin("hello", "2.0.0")
    (tmp_path / "push-stable.wasm.intoto.json").write_bytes(_attest(v1, "hello", "1.0.0"))
    with fleet(tmp_path, first=v1, extra=STAGING) as f:
        assert f.running() == "1.0.0"  # delivered with its attestation, admitted by it
        pushed = (tmp_path / "push-stable.wasm.intoto.json").read_bytes()
        assert (f.env.plugins / "oci-hello.wasm.intoto.json").read_bytes() == pushed

        _beside(f, None)
        f.push(v2)  # someone pushes 2.0.0 without staging it: the only attestation the
        _refused(f, capsys, "staging_mismatch")  # daemon holds is 1.0.0's, other bytes
        _beside(f, _forged(_attest(v2, "hello", "2.0.0")))
        f.push(v2)
        _refused(f, capsys, "staging_forged")

        envelope = _attest(v2, "hello", "2.0.0")
        _beside(f, envelope)
        f.push(v2)
        assert f.ctl("pull", "hello") == 0
        f.d.events.wait("plugin.upgraded", "hello", version="2.0.0")
        assert f.running() == "2.0.0" and f.d.invoke("hello") == b"hello@2.0.0:x"
        assert (f.env.plugins / "oci-hello.wasm.intoto.json").read_bytes() == envelope
        sha = hashlib.sha256(v2).hexdigest()
        assert f.d.view("hello").sha256 == sha
        # never a moment without it: the daemon refused nothing of hello on the way
        assert "plugin.rejected" not in f.d.events.labels("hello")
        assert not [p for p in f.env.plugins.iterdir() if p.name.startswith(".")]
