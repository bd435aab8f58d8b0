"""The SDKs' plugins through the real daemon, and ``forgeonectl new`` / ``package`` of WAT on
bad input: a one-line error, exit non-zero, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from authoring_kit import REPO, SDK, AuthorShell, import_sigs, need_clang
from daemon_kit import KEY, Daemon, Env, drop

from forgeoned.adapters.control.client import ControlClient
from forgeoned.adapters.crypto.keys import secret_key_bytes
from forgeoned.core.abi import HOST_FUNCTIONS
from forgeoned.errors import ApplicationError

C_EXAMPLE = REPO / "examples/c-plugin"


def _signed_with_test_key(shell: AuthorShell, packaged: Path, out: Path) -> bytes:
    key = shell.root / "test.key"
    key.write_bytes(secret_key_bytes(KEY))
    shell.run(f"forgeonectl sign --key {key} {packaged} -o {out}")
    return out.read_bytes()


def test_the_c_example_builds_with_make_and_answers_in_a_daemon(tmp_path: Path) -> None:
    need_clang()
    shell = AuthorShell(tmp_path)
    build = tmp_path / "c-build"
    shell.run(f"make -s -C {C_EXAMPLE} BUILD={build}")
    shell.run(f"forgeonectl package {build}/hello.wasm --manifest {C_EXAMPLE}/manifest.toml -o x.w")
    signed = _signed_with_test_key(shell, shell.cwd / "x.w", tmp_path / "hello-c.wasm")
    (tmp_path / "daemon").mkdir()
    env = Env(tmp_path / "daemon")
    drop(env.plugins, "hello-c.wasm", signed)
    daemon = Daemon(env)
    try:
        daemon.ready()
        daemon.wait_until(lambda s: s.get("hello-c", {}).get("state") == "running")
        assert daemon.invoke("hello-c", b"world") == b"hello from C, world"
        with ControlClient(env.socket, timeout=60) as client, pytest.raises(ApplicationError) as e:
            client.invoke("hello-c", b"!fail")
        assert (e.value.status, e.value.output) == (2, b"failure requested")
        assert daemon.invoke("hello-c", b"again") == b"hello from C, again"  # still running
    finally:
        assert daemon.stop() == 0


def test_new_refuses_a_bad_name_an_existing_directory_and_a_missing_sdk(tmp_path: Path) -> None:
    shell = AuthorShell(tmp_path)
    cases = [
        ("forgeonectl new Hello --lang c", "invalid plugin name 'Hello'"),
        ("mkdir taken && forgeonectl new taken --lang rust", "taken already exists"),
        ("FORGEONE_SDK_DIR=/nonexistent forgeonectl new x --lang c", "SDK not found"),
        ("forgeonectl new y --lang go", "invalid choice: 'go'"),
    ]
    for command, reason in cases:
        result = shell.run(command, check=False)
        assert result.returncode != 0, command
        assert reason in result.stderr, (command, result.stderr)
        assert not (shell.cwd / "Hello").exists() and not (shell.cwd / "x").exists()
    assert sorted(p.name for p in shell.home.iterdir()) == ["taken"]
    assert list((shell.home / "taken").iterdir()) == []  # untouched


@pytest.mark.parametrize("lang", ["rust", "c"])
def test_new_writes_a_self_contained_project(tmp_path: Path, lang: str) -> None:
    shell = AuthorShell(tmp_path)
    out = shell.run(f"forgeonectl new rate.limiter-2 --lang {lang} --dir proj")
    assert out.stdout.startswith(f"created {lang} plugin rate.limiter-2 in proj/")
    project = shell.home / "proj"
    assert 'name = "rate.limiter-2"' in (project / "manifest.toml").read_text()
    if lang == "rust":
        assert 'name = "rate-limiter-2"' in (project / "Cargo.toml").read_text()
        assert "struct RateLimiter2;" in (project / "src/lib.rs").read_text()
        sdk = SDK / "rust/forgeone-sdk/src/lib.rs"
        assert (project / "forgeone-sdk/src/lib.rs").read_text() == sdk.read_text()
        assert not (project / "forgeone-sdk/target").exists()
    else:
        assert (project / "forgeone.h").read_text() == (SDK / "c/forgeone.h").read_text()
        assert "FORGEONE_DEFINE_ALLOC()" in (project / "plugin.c").read_text()


def test_package_refuses_bad_wat_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    shell = AuthorShell(tmp_path)
    (shell.home / "m.toml").write_text('name = "ping"\nversion = "1.0.0"\nabi = 1\n')
    (shell.home / "bad.wat").write_text("(module (func (i32.bogus)))\n")
    (shell.home / "binary.wat").write_bytes(b"\x00\x01\xff\xfe")
    for source, reason in (("bad.wat", "not valid WAT"), ("binary.wat", "neither a wasm")):
        result = shell.run(f"forgeonectl package {source} --manifest m.toml -o out.wasm", False)
        assert result.returncode == 3, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"forgeonectl: {source}: {reason}")
        assert not (shell.home / "out.wasm").exists()


def test_the_c_header_declares_every_import_with_its_signature(tmp_path: Path) -> None:
    need_clang()
    calls = """
    int32_t k = 0; char b[8];
    k += fo_log(1, b, 1) + fo_env_get(b, 1, b, 8) + fo_secret_get(b, 1, b, 8);
    k += (int32_t)fo_time_now_ms() + fo_random_fill(b, 8) + fo_kv_get(b, 1, b, 8);
    k += fo_kv_set(b, 1, b, 1) + fo_kv_delete(b, 1) + fo_output(b, 1);
    k += fo_config_get(b, 1, b, 8) + fo_metric_add(b, 1, b, 0, 1.0);
    k += fo_metric_set(b, 1, b, 0, 1.0) + fo_metric_observe(b, 1, b, 0, 0.5);
    k += fo_http_request(b, 1, b, 8);
    return k;"""
    source = f'#include "forgeone.h"\nFORGEONE_EXPORT("all") int32_t all(void) {{{calls}}}\n'
    (tmp_path / "all.c").write_text(source)
    shell = AuthorShell(tmp_path)
    shell.cwd = tmp_path
    flags = "--target=wasm32-unknown-unknown -nostdlib -O2 -Wall -Werror"
    shell.run(f"clang {flags} -I{SDK}/c -Wl,--no-entry -o all.wasm all.c")
    sigs = import_sigs((tmp_path / "all.wasm").read_bytes())
    expected = {n: (s.sig.params, s.sig.results) for n, s in HOST_FUNCTIONS.items()}
    assert sigs == expected  # every host function of the daemon, none it lacks


def test_the_sample_serves_its_named_function_config_and_metrics_in_a_daemon(
    tmp_path: Path,
) -> None:
    """The Rust sample (on the SDK) in a real daemon: `greeting` from its config file, the
    named function `stats`, and its metrics withheld or granted by the operator's policy."""
    from conftest_sample import SAMPLE_DIR, build_sample

    from forgeoned.cli.artifacts import load_manifest_file
    from forgeoned.cli.devtools import make_signed_plugin

    manifest = load_manifest_file(SAMPLE_DIR / "manifest.toml")
    signed = make_signed_plugin(build_sample(), manifest, KEY)
    (tmp_path / "daemon").mkdir()
    env = Env(tmp_path / "daemon")
    (env.root / "plugins.conf.d").mkdir()
    (env.root / "plugins.conf.d/sample.toml").write_text('greeting = "hola"\n')
    env.write_config('plugin_config_dir = "plugins.conf.d"\n')
    drop(env.plugins, "sample.wasm", signed)
    daemon = Daemon(env)
    try:
        daemon.ready()
        daemon.wait_until(lambda s: s.get("sample", {}).get("state") == "running")
        assert daemon.invoke("sample", b"x") == b"hola 1.0.0 #1 | x"
        assert daemon.invoke("sample", b"!time").startswith(b"time=")
        with ControlClient(env.socket, timeout=60) as client:
            stats = client.invoke("sample", b"", function="stats")
        assert stats == b"invocations=1 ticks=0 greeting=hola"
    finally:
        assert daemon.stop() == 0
