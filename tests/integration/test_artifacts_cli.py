"""forgeonectl keys/package/sign/verify end to end: real processes, real files, real wasmtime.

Failures must exit non-zero with one ``forgeonectl: reason`` line and leave no output behind.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from abi_wat import lifecycle_exports
from shared_files import WASMSIGN2_VECTORS, WHERE

from forgeoned.adapters.crypto.keys import public_key_pem
from forgeoned.cli.devtools import main as devtools_main
from forgeoned.cli.devtools import test_key, trust_policy_for
from forgeoned.cli.exitcodes import FAILURE, OK, REJECTED
from forgeoned.core.artifact import verify_artifact
from forgeoned.core.trust import Mode

VECTORS = WASMSIGN2_VECTORS
REPO = Path(__file__).resolve().parents[2]
needs_vectors = pytest.mark.skipif(
    not (VECTORS / "expected.json").is_file(),
    reason=f"wasmsign2 vectors not found at {VECTORS} ({WHERE})",
)

WAT = f"""(module
  (memory (export "memory") 1)
  {lifecycle_exports()})"""
TOML = """name = "hello"
version = "1.2.0"
abi = 1
not_after = 2099-01-01T00:00:00Z
[capabilities]
log = true
env = ["TZ"]
[limits]
memory_bytes = 1048576
"""


def ctl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from forgeoned.cli import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def refused(result: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forgeonectl: "), result.stderr
    assert text in lines[0]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "module.wasm").write_bytes(wasmtime.wat2wasm(WAT))
    (tmp_path / "hello.toml").write_text(TOML)
    return tmp_path


def make_signed(work: Path) -> Path:
    assert ctl("keys", "generate", "--out", work / "keys", "--name", "ops").returncode == OK
    assert (
        ctl(
            "package",
            work / "module.wasm",
            "--manifest",
            work / "hello.toml",
            "-o",
            work / "hello.unsigned.wasm",
        ).returncode
        == OK
    )
    result = ctl(
        "sign",
        "--key",
        work / "keys/ops.key",
        work / "hello.unsigned.wasm",
        "-o",
        work / "hello.wasm",
    )
    assert result.returncode == OK, result.stderr
    (work / "trusted").mkdir()
    (work / "trusted/ops.pub").write_bytes((work / "keys/ops.pub").read_bytes())
    return work / "hello.wasm"


def test_generate_package_sign_verify_and_compile(work: Path) -> None:
    signed = make_signed(work)
    secret = work / "keys/ops.key"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert len(secret.read_bytes()) == 65 and secret.read_bytes()[0] == 0x81
    assert (work / "keys/ops.pub").read_bytes()[0] == 0x01
    result = ctl("verify", "--trust", work / "trusted", signed)
    assert result.returncode == OK, result.stderr
    assert (
        result.stdout.startswith("trusted and loadable: hello 1.2.0 sha256=")
        and "ops" in result.stdout
    )
    # what was verified is what compiles
    from forgeoned.adapters.crypto.keys import load_trust_dir

    verified = verify_artifact(
        signed.read_bytes(),
        detached=None,
        trust=load_trust_dir(work / "trusted"),
        mode=Mode.PRODUCTION,
        now=0.0,
    )
    assert verified.manifest.not_after == "2099-01-01T00:00:00Z"
    module = wasmtime.Module(wasmtime.Engine(), verified.module)
    assert {e.name for e in module.exports} >= {"memory", "init", "unload"}


def test_json_manifest(work: Path) -> None:
    manifest = {"name": "hello-json", "version": "0.1.0", "abi": 1}
    (work / "m.json").write_text(json.dumps(manifest))
    assert (
        ctl(
            "package", work / "module.wasm", "--manifest", work / "m.json", "-o", work / "out.wasm"
        ).returncode
        == OK
    )
    assert b"hello-json" in (work / "out.wasm").read_bytes()


@pytest.mark.parametrize(
    ("manifest", "text"),
    [
        ('name = "Bad"\nversion = "1.0.0"\nabi = 1\n', "manifest field 'name'"),
        ('name = "ok"\nversion = "one"\nabi = 1\n', "manifest field 'version'"),
        (
            'name = "ok"\nversion = "1.0.0"\nabi = 1\n[capabilities]\nnet = true\n',
            "'capabilities.net': unknown field",
        ),
        (
            'name = "ok"\nversion = "1.0.0"\nabi = 1\n[limits]\nmemory_bytes = 99999999999999\n',
            "'limits.memory_bytes'",
        ),
        ("name = [", "hello.toml"),
    ],
)
def test_package_refuses_bad_manifests_and_writes_nothing(
    work: Path, manifest: str, text: str
) -> None:
    (work / "hello.toml").write_text(manifest)
    result = ctl(
        "package", work / "module.wasm", "--manifest", work / "hello.toml", "-o", work / "out.wasm"
    )
    refused(result, REJECTED, text)
    assert not (work / "out.wasm").exists()


def test_package_refuses_invalid_wasm(work: Path) -> None:
    (work / "bad.wasm").write_bytes(
        b"\x00asm\x01\x00\x00\x00\x0a\x04\x01\x02\x00\x0b"
    )  # body without a func
    result = ctl(
        "package", work / "bad.wasm", "--manifest", work / "hello.toml", "-o", work / "out.wasm"
    )
    refused(result, REJECTED, "not a valid WebAssembly module")
    assert not (work / "out.wasm").exists()


def test_keys_are_never_overwritten(work: Path) -> None:
    assert ctl("keys", "generate", "--out", work / "k", "--name", "a").returncode == OK
    before = (work / "k/a.key").read_bytes()
    refused(ctl("keys", "generate", "--out", work / "k", "--name", "a"), FAILURE, "refusing")
    assert (work / "k/a.key").read_bytes() == before


def test_verify_rejections(work: Path) -> None:
    signed = make_signed(work)
    trusted = work / "trusted"
    refused(ctl("verify", "--trust", trusted, work / "hello.unsigned.wasm"), REJECTED, "not signed")
    tampered = bytearray(signed.read_bytes())
    tampered[-40] ^= 1
    (work / "tampered.wasm").write_bytes(bytes(tampered))
    refused(ctl("verify", "--trust", trusted, work / "tampered.wasm"), REJECTED, "tampered")
    other = work / "other"
    other.mkdir()
    (other / "x.pem").write_bytes(public_key_pem(test_key(9).public_key))
    refused(ctl("verify", "--trust", other, signed), REJECTED, "not signed by any trusted key")
    ops_pk = (work / "keys/ops.pub").read_bytes()[1:].hex()
    (work / "revoke.toml").write_text(f'[trust]\nrevoked = ["{ops_pk}"]\n')
    refused(
        ctl("verify", "--trust", trusted, "--config", work / "revoke.toml", signed),
        REJECTED,
        "revoked",
    )
    (work / "scope.toml").write_text('[trust.scopes]\n"ops.pub" = ["billing-*"]\n')
    refused(
        ctl("verify", "--trust", trusted, "--config", work / "scope.toml", signed),
        REJECTED,
        "out of scope",
    )
    refused(ctl("verify", "--trust", trusted, work / "absent.wasm"), FAILURE, "cannot read")


def test_detached_signature_beside_the_file(work: Path) -> None:
    make_signed(work)
    result = ctl(
        "sign",
        "--detached",
        "--key",
        work / "keys/ops.key",
        work / "hello.unsigned.wasm",
        "-o",
        work / "d.wasm",
    )
    assert result.returncode == OK, result.stderr
    assert (work / "d.wasm").read_bytes() == (work / "hello.unsigned.wasm").read_bytes()
    assert ctl("verify", "--trust", work / "trusted", work / "d.wasm").returncode == OK
    # a detached signature made for other bytes
    (work / "d.wasm.sig").replace(work / "other.wasm.sig")
    (work / "other.wasm").write_bytes((work / "hello.unsigned.wasm").read_bytes() + b"\x00\x01\x00")
    refused(ctl("verify", "--trust", work / "trusted", work / "other.wasm"), REJECTED, "tampered")


@needs_vectors
def test_cli_sign_reproduces_the_reference_layout(tmp_path: Path) -> None:
    """``forgeonectl sign`` output equals the reference library's bytes (annotated vector)."""
    out = tmp_path / "a.wasm"
    assert (
        ctl("sign", "--key", VECTORS / "keyA.sk", VECTORS / "module.wasm", "-o", out).returncode
        == OK
    )
    data = out.read_bytes()
    assert data == (VECTORS / "signed-keyid-A.wasm").read_bytes()
    assert data[8:24] == b"\x00\x81\x01\x09signature\x01\x01\x01"
    assert data[24:27] == b"\x01\x72\x01" and data[59:62] == b"\x01\x4f\x0c"
    assert (
        ctl("sign", "--key", VECTORS / "keyB.sk", out, "-o", tmp_path / "ab.wasm").returncode == OK
    )
    assert (tmp_path / "ab.wasm").read_bytes() == (VECTORS / "signed-multi-AB.wasm").read_bytes()
    assert (
        ctl(
            "sign",
            "--detached",
            "--key",
            VECTORS / "keyA.sk",
            VECTORS / "module.wasm",
            "-o",
            tmp_path / "m.wasm",
        ).returncode
        == OK
    )
    assert (tmp_path / "m.wasm.sig").read_bytes() == (VECTORS / "detached-A.sig").read_bytes()


def test_devtools_sample_is_idempotent(work: Path) -> None:
    keys, out = work / "dev-keys", work / "plugins.d"
    args = ["sample", "--wasm", str(work / "module.wasm"), "--keys", str(keys), "--out", str(out)]
    assert devtools_main(args) == 0
    first = (out / "sample.wasm").stat()
    assert stat.S_IMODE((keys / "dev.key").stat().st_mode) == 0o600
    assert devtools_main(args) == 0
    second = (out / "sample.wasm").stat()
    assert (first.st_ino, first.st_mtime_ns) == (second.st_ino, second.st_mtime_ns)
    from forgeoned.adapters.crypto.keys import load_secret_key

    trust = trust_policy_for(load_secret_key(keys / "dev.key"))
    verified = verify_artifact(
        (out / "sample.wasm").read_bytes(),
        detached=None,
        trust=trust,
        mode=Mode.PRODUCTION,
        now=0.0,
    )
    assert (verified.manifest.name, verified.manifest.version) == ("sample", "1.0.0")
    assert (REPO / "examples/sample-plugin/manifest.toml").is_file()


def test_second_signer_on_a_detached_signature(work: Path) -> None:
    make_signed(work)
    assert ctl("keys", "generate", "--out", work / "keys", "--name", "sec").returncode == OK
    (work / "trusted/sec.pub").write_bytes((work / "keys/sec.pub").read_bytes())
    (work / "two.toml").write_text('[trust.thresholds]\n"hello" = 2\n')
    unsigned, out = work / "hello.unsigned.wasm", work / "d.wasm"
    assert (
        ctl("sign", "--detached", "--key", work / "keys/ops.key", unsigned, "-o", out).returncode
        == OK
    )
    verify = ("verify", "--trust", work / "trusted", "--config", work / "two.toml", out)
    refused(ctl(*verify), REJECTED, "needs 2 distinct trusted signers, has 1")
    result = ctl("sign", "--detached", "--key", work / "keys/sec.key", out, "-o", out)
    assert result.returncode == OK, result.stderr
    assert out.read_bytes() == unsigned.read_bytes()
    result = ctl(*verify)
    assert result.returncode == OK, result.stderr
    assert "signed by ops, sec" in result.stdout
