"""Every fault of a followed OCI source: its documented outcome (docs/operations.md,
"Delivering plugins to a fleet"), a one-line error from ``forgeonectl pull``, a
``source.failed`` event with its reason, a counted metric, and the running version
untouched (same version, same sha256, the file in plugins.d unchanged)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from daemon_kit import plugin, plugin_wat
from fleet_kit import REPO, Fleet, big_plugin, black_hole, fleet, source_toml
from registry_kit import LAYER, REGISTRY
from trickle_kit import trickle_proxy

from forgeoned.adapters.metrics.model import MetricsModel
from forgeoned.adapters.metrics.server import render_text
from forgeoned.cli.devtools import make_signed_plugin, package_plugin, test_key

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")


def _unchanged_after(
    f: Fleet, capsys: pytest.CaptureFixture[str], reason: str, source: str = "hello"
) -> str:
    """``pull`` fails with ``reason`` in one line, audited and counted; hello 1.0.0 runs on."""
    before = (f.env.plugins / "oci-hello.wasm").read_bytes()
    sha = f.d.view("hello").sha256
    capsys.readouterr()
    assert f.ctl("pull", source) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("forgeonectl: source ")
    failed = f.d.events.wait("source.failed", reason=reason)[-1]
    assert failed.details["source"] == source
    assert f.running() == "1.0.0" and f.d.view("hello").sha256 == sha
    assert (f.env.plugins / "oci-hello.wasm").read_bytes() == before
    assert f.d.invoke("hello") == b"hello@1.0.0:x"
    assert not [p for p in f.env.plugins.iterdir() if p.name.startswith(".")]  # no leftovers
    capsys.readouterr()
    assert f.ctl("sources", "--json") == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["sources"]}
    assert rows[source]["failures"][reason] >= 1 and rows[source]["outcome"] == "failed"
    metrics, label = _metrics(f), f'source="{source}"'
    assert metrics[f'forgeone_source_sync_failures_total{{{label},reason="{reason}"}}'] >= 1
    assert metrics[f"forgeone_source_up{{{label}}}"] == 0
    assert metrics[f"forgeone_source_failing_since_timestamp_seconds{{{label}}}"] > 0
    stored = [e for e in f.env.audit_events() if e["event"] == "source.failed"
              and e.get("reason") == reason]  # fmt: skip
    assert stored, f"no durable source.failed ({reason}) in the audit log"
    return err[0]


def _metrics(f: Fleet) -> dict[str, float]:
    """The daemon's exposition, series -> value."""
    text = render_text(MetricsModel(f.d.daemon.backend).families()).decode()
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {series: float(value) for series, value in pairs}


def _unsigned(version: str) -> bytes:
    return package_plugin(plugin_wat(f"hello@{version}"), {"name": "hello", "version": version,
                                                           "abi": 1})  # fmt: skip


def _untrusted(version: str) -> bytes:
    m = {"name": "hello", "version": version, "abi": 1}
    return make_signed_plugin(plugin_wat(f"hello@{version}"), m, test_key(99))


def _two_layers(f: Fleet) -> None:
    data = plugin("hello", "2.0.0")
    f.reg.publish_raw(REPO, "stable", [(data, LAYER), (b"extra", LAYER)])


def _wrong_layer_type(f: Fleet) -> None:
    f.reg.publish_raw(REPO, "stable", [(plugin("hello", "2.0.0"), "application/octet-stream")])


def _wrong_config_type(f: Fleet) -> None:
    f.reg.publish_raw(REPO, "stable", [(plugin("hello", "2.0.0"), LAYER)],
                      config_type="application/vnd.oci.image.config.v1+json")  # fmt: skip


def _unsigned_push(f: Fleet) -> None:
    f.reg.publish_raw(REPO, "stable", [(_unsigned("2.0.0"), LAYER)])


def _untrusted_push(f: Fleet) -> None:
    f.reg.publish_raw(REPO, "stable", [(_untrusted("2.0.0"), LAYER)])


def _over_cap(f: Fleet) -> None:
    f.push(big_plugin("hello", "2.0.0", 70_000))  # the source's max_bytes is 65536


def _corrupt_blob(f: Fleet) -> None:
    """The registry's stored bytes of the layer are altered (a tampering mirror, bit rot)."""
    data = plugin("hello", "2.0.0")
    f.push(data)
    hexdigest = hashlib.sha256(data).hexdigest()
    blobs = f.tmp / "registry" / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    stored = blobs / hexdigest[:2] / hexdigest / "data"
    stored.write_bytes(data.replace(b"hello@2.0.0", b"HELLO@6.6.6"))


def _declared_size_lies(f: Fleet) -> None:
    data = plugin("hello", "2.0.0")
    f.reg.publish_raw(REPO, "stable", [(data, LAYER)], sizes=[len(data) - 10])


def _deleted(f: Fleet) -> None:
    f.reg.delete(REPO, "stable")


FAULTS: dict[str, tuple[Callable[[Fleet], None], str]] = {
    "two layers": (_two_layers, "layer_count"),
    "wrong layer media type": (_wrong_layer_type, "wrong_media_type"),
    "wrong config media type": (_wrong_config_type, "wrong_media_type"),
    "unsigned artifact": (_unsigned_push, "artifact_untrusted"),
    "untrusted artifact": (_untrusted_push, "artifact_untrusted"),
    "blob over the size cap": (_over_cap, "blob_too_large"),
    "blob digest mismatch": (_corrupt_blob, "digest_mismatch"),
    "declared size shorter than the blob": (_declared_size_lies, "digest_mismatch"),
    "manifest deleted from the registry": (_deleted, "reference_not_found"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_bad_artifact_under_the_tag_is_refused_and_nothing_changes(
    fault: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish, reason = FAULTS[fault]
    with fleet(tmp_path) as f:
        publish(f)
        _unchanged_after(f, capsys, reason)


def test_registry_down_is_unreachable_and_the_running_version_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fleet(tmp_path) as f:
        f.reg.stop()
        line = _unchanged_after(f, capsys, "registry_unreachable")
        assert "127.0.0.1" in line


def test_a_hanging_registry_times_out_and_other_sources_are_not_held_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with black_hole() as hole:
        slow = source_toml("slow", f"oci://{hole}/plugins/slow:1", timeout_s=0.5)
        with fleet(tmp_path, sources=slow) as f:
            f.d.events.wait("source.failed", reason="registry_timeout")  # its first poll
            line = _unchanged_after(f, capsys, "registry_timeout", source="slow")
            assert "timed out" in line
            f.push(plugin("hello", "2.0.0"))
            assert f.ctl("pull", "hello") == 0  # the other source syncs meanwhile
            f.d.events.wait("plugin.upgraded", "hello", version="2.0.0")


def test_a_trickling_registry_times_out_within_the_bound_not_at_the_end_of_the_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every read gets bytes in time, so only the whole-download deadline (``timeout_s``) can
    stop it: the sync must give up after about that long, far from the layer's end."""
    layer = big_plugin("slow", "1.0.0", 60_000)
    with trickle_proxy() as proxy:
        slow = source_toml("slow", f"oci://{proxy.host}/{REPO}:slow", timeout_s=1)
        with fleet(tmp_path, sources=slow) as f:
            proxy.upstream = f.reg.host  # at start the proxy refused: slow failed, unreachable
            f.push(layer, tag="slow")
            line = _unchanged_after(f, capsys, "registry_timeout", source="slow")
            assert "took longer than 1 s" in line
            # at 32 bytes per 20 ms the layer needs ~40 s; the sync stopped after ~1 s
            assert proxy.sent < len(layer) // 2, (proxy.sent, len(layer))


def test_refused_credentials_fail_the_sync_and_the_running_version_stays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fleet(tmp_path, auth=("ops", "s3cret")) as f:
        (f.env.root / "creds" / "registry").write_text("ops:rotated-wrongly\n")
        line = _unchanged_after(f, capsys, "auth_refused")
        assert "refused access with the credentials" in line and "rotated" not in line
        (f.env.root / "creds" / "registry").write_text("ops:s3cret\n")  # fixed: no restart
        f.push(plugin("hello", "2.0.0"), creds=f.env.root / "creds" / "registry")
        assert f.ctl("pull", "hello") == 0
        f.d.events.wait("plugin.upgraded", "hello", version="2.0.0")


@pytest.mark.parametrize("damage", ["missing", "not USER:PASSWORD"])
def test_an_unreadable_credential_fails_the_sync_and_the_running_version_stays(
    damage: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fleet(tmp_path, auth=("ops", "s3cret")) as f:
        cred = f.env.root / "creds" / "registry"
        if damage == "missing":
            cred.unlink()
        else:
            cred.write_text("just-a-password\n")
        line = _unchanged_after(f, capsys, "credentials_unreadable")
        assert "s3cret" not in line and "just-a-password" not in line


def test_a_tag_moved_to_an_older_version_is_refused_by_the_floor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with fleet(tmp_path) as f:
        f.push(plugin("hello", "1.0.0"), tag="1.0.0")
        f.push(plugin("hello", "2.0.0"))
        assert f.ctl("pull", "hello") == 0
        f.d.events.wait("plugin.upgraded", "hello", version="2.0.0")
        f.reg.retag(REPO, "1.0.0", "stable")  # someone moves the tag back
        assert f.ctl("pull", "hello") == 0  # delivered into plugins.d …
        refused = f.d.events.wait("plugin.rejected", "hello", version="1.0.0")[-1]
        assert refused.reason == "downgrade"  # … and refused there by the rollback floor
        assert f.running() == "2.0.0" and f.d.invoke("hello") == b"hello@2.0.0:x"
        # the documented way back after such a refusal: allowing it tries it again at once
        assert f.ctl("allow-downgrade", "hello", "1.0.0") == 0
        f.d.events.wait("plugin.upgraded", "hello", version="1.0.0")
        assert f.d.invoke("hello") == b"hello@1.0.0:x"
