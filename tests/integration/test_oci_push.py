"""``forgeonectl push`` against a real registry: the Wasm OCI layout, refusals, credentials."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from abi_wat import ALLOC, lifecycle_exports
from daemon_kit import KEY, manifest, plugin
from registry_kit import REGISTRY, Registry, registry

from forgeoned.adapters.crypto.keys import public_key_bytes
from forgeoned.cli import main as forgeonectl
from forgeoned.cli.devtools import make_signed_plugin, test_key
from forgeoned.core.oci import (
    ANNOTATION_NAME,
    ANNOTATION_SIGNERS,
    ANNOTATION_VERSION,
    ATTESTATION_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    LAYER_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
)
from forgeoned.core.signature import default_key_id

pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry not installed")


@pytest.fixture
def reg(tmp_path: Path) -> object:
    with registry(tmp_path / "registry") as r:
        yield r


@pytest.fixture
def trust(tmp_path: Path) -> Path:
    d = tmp_path / "trusted.d"
    d.mkdir()
    (d / "ops.pub").write_bytes(public_key_bytes(KEY.public_key))
    return d


def _manifest(reg: Registry, repo: str, tag: str) -> tuple[dict[str, object], str]:
    with reg.client() as c:
        r = c.get(f"{repo}/manifests/{tag}", headers={"Accept": MANIFEST_MEDIA_TYPE})
        assert r.status_code == 200
        return json.loads(r.content), "sha256:" + hashlib.sha256(r.content).hexdigest()


def test_push_publishes_the_wasm_oci_layout_and_prints_the_digest(
    reg: Registry, trust: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "hello.wasm"
    f.write_bytes(plugin("hello", "1.2.0"))
    ref = reg.ref("plugins/hello", "1.2")
    code = forgeonectl(["push", str(f), ref, "--trust", str(trust), "--plain-http"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    manifest, digest = _manifest(reg, "plugins/hello", "1.2")
    assert out[-1] == digest
    assert manifest["config"]["mediaType"] == CONFIG_MEDIA_TYPE  # type: ignore[index]
    layers = manifest["layers"]
    assert isinstance(layers, list) and len(layers) == 1
    assert layers[0]["mediaType"] == LAYER_MEDIA_TYPE
    assert layers[0]["digest"] == "sha256:" + hashlib.sha256(f.read_bytes()).hexdigest()
    notes = manifest["annotations"]
    assert notes[ANNOTATION_NAME] == "hello" and notes[ANNOTATION_VERSION] == "1.2.0"  # type: ignore[index]
    assert notes[ANNOTATION_SIGNERS] == default_key_id(KEY.public_key).hex()  # type: ignore[index]


@pytest.mark.parametrize("kind", ["unsigned", "untrusted"])
def test_push_refuses_an_unsigned_or_untrusted_file_and_uploads_nothing(
    kind: str, reg: Registry, trust: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.wasm"
    if kind == "unsigned":
        f.write_bytes(plugin("bad", "1.0.0", signed=False))
    else:
        from daemon_kit import plugin_wat

        text = plugin_wat("bad")
        m = {"name": "bad", "version": "1.0.0", "abi": 1}
        f.write_bytes(make_signed_plugin(text, m, test_key(99)))
    code = forgeonectl(["push", str(f), reg.ref("plugins/bad", "1"), "--trust", str(trust),
                        "--plain-http"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1
    assert ("not signed" in err[0]) if kind == "unsigned" else ("trusted" in err[0])
    with reg.client() as c:
        assert c.get("plugins/bad/tags/list").status_code == 404  # nothing was uploaded


def test_push_with_refused_credentials_fails_in_one_line(
    tmp_path: Path, trust: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "hello.wasm"
    f.write_bytes(plugin("hello", "1.0.0"))
    creds = tmp_path / "creds"
    with registry(tmp_path / "reg", auth=("ops", "s3cret")) as reg:
        creds.write_text("ops:wrong\n")
        args = ["push", str(f), reg.ref("plugins/hello", "1"), "--trust", str(trust),
                "--plain-http", "--credentials", str(creds)]  # fmt: skip
        assert forgeonectl(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "refused access" in err[0]
        creds.write_text("ops:s3cret\n")
        assert forgeonectl(args) == 0


def test_push_refuses_a_module_the_daemon_cannot_load_and_uploads_nothing(
    reg: Registry, trust: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signed and trusted, but no ``unload`` export: ``verify``'s check (compiled in the
    limited worker, ABI validated) refuses it before anything is uploaded."""
    text = f"""(module (memory (export "memory") 1) {lifecycle_exports(omit=("unload",))}
      {ALLOC} (func (export "handle") (param i32 i32) (result i32) i32.const 0))"""
    f = tmp_path / "nounload.wasm"
    f.write_bytes(make_signed_plugin(text, manifest("nounload", "1.0.0"), KEY))
    code = forgeonectl(["push", str(f), reg.ref("plugins/nounload", "1"), "--trust",
                        str(trust), "--plain-http"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1
    assert "not pushed" in err[0] and "unload" in err[0]
    with reg.client() as c:
        assert c.get("plugins/nounload/tags/list").status_code == 404  # nothing was uploaded


def test_push_publishes_the_attestation_beside_the_file_as_a_second_layer(
    reg: Registry, trust: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "hello.wasm"
    f.write_bytes(plugin("hello", "1.2.0"))
    envelope = b'{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": []}'
    (tmp_path / "hello.wasm.intoto.json").write_bytes(envelope)
    ref = reg.ref("plugins/hello", "1.2")
    assert forgeonectl(["push", str(f), ref, "--trust", str(trust), "--plain-http"]) == 0
    assert "with its staging attestation" in capsys.readouterr().out
    manifest, _ = _manifest(reg, "plugins/hello", "1.2")
    layers = manifest["layers"]
    assert isinstance(layers, list)
    assert [layer["mediaType"] for layer in layers] == [LAYER_MEDIA_TYPE, ATTESTATION_MEDIA_TYPE]
    assert layers[1]["digest"] == "sha256:" + hashlib.sha256(envelope).hexdigest()
    with reg.client() as c:
        assert c.get(f"plugins/hello/blobs/{layers[1]['digest']}").content == envelope
    other = tmp_path / "elsewhere.json"  # --attestation wins over the file beside it
    other.write_bytes(envelope + b" ")
    args = ["push", str(f), ref, "--trust", str(trust), "--plain-http", "--attestation", str(other)]
    assert forgeonectl(args) == 0
    manifest, _ = _manifest(reg, "plugins/hello", "1.2")
    assert manifest["layers"][1]["size"] == len(envelope) + 1  # type: ignore[index]
