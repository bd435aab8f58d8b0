"""docs/plugin-authoring.md as written: its marked blocks run (shell) or build (Rust, C),
and the ten-minute path ends with a signed plugin answering in a production daemon."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest
import wasmtime
from abi_wat import lifecycle_exports
from authoring_kit import (
    BUILD_CACHE,
    REPO,
    SDK,
    SECRET,
    AuthorShell,
    hooks_operator,
    need_clang,
    need_rust,
    scrape,
)
from daemon_kit import KEY, Env, drop, in_process
from doc_steps import Block, marked_blocks
from http_kit import CountingServer
from runtime_wat import make_host

from forgeoned.adapters.wasm.runtime import WasmtimeRuntime
from forgeoned.cli.devtools import make_signed_plugin
from forgeoned.cli.exitcodes import APPLICATION_ERROR
from forgeoned.core import wasm_sections
from forgeoned.core.abi import LifecycleExport
from forgeoned.core.manifest import Capabilities, Limits
from forgeoned.core.manifest_section import read_manifest

GUIDE = marked_blocks()
TEN_MINUTES = ("new", "sign", "daemon-config", "daemon", "deploy")


def sh(name: str) -> str:
    block: Block = GUIDE[name]
    assert block.lang == "sh", name
    return block.text


def test_the_guide_marks_every_step() -> None:
    expected = {*TEN_MINUTES, "rust-build", "rust-counter", "json-config", "json-example"}
    expected |= {"c-build", "wat", "package-sign", "rust-hooks", "hooks-manifest"}
    assert set(GUIDE) == expected
    assert GUIDE["rust-counter"].lang == GUIDE["json-example"].lang == "rust"


@pytest.mark.parametrize("lang", ["rust", "c"])
def test_ten_minutes_to_a_signed_plugin_in_a_production_daemon(tmp_path: Path, lang: str) -> None:
    need_rust() if lang == "rust" else need_clang()
    shell = AuthorShell(tmp_path)
    new = sh("new")
    if lang == "c":  # the guide's "or --lang c"
        assert "--lang rust" in new
        new = new.replace("--lang rust", "--lang c")
    shell.run(new)
    assert (shell.home / "hello/build/hello.packaged.wasm").is_file()
    signed = shell.run(sh("sign"))
    assert "trusted and loadable: hello 0.1.0" in signed.stdout
    shell.run(sh("daemon-config"))
    config = (shell.home / "forgeone-try/forgeoned.toml").read_text()
    assert 'mode = "production"' in config
    socket = shell.home / "forgeone-try/control.sock"
    with shell.background(sh("daemon").strip(), socket):
        deployed = shell.run(sh("deploy"), check=False)
        assert deployed.returncode == 0, deployed.stderr + shell.daemon_log()
        assert "installed hello 0.1.0" in deployed.stdout
        assert deployed.stdout.rstrip().endswith("hello, world")
        # An empty input: the plugin's own error, status 2, printed, exit 11; still running.
        ctl = f"forgeonectl --socket {socket}"
        empty = shell.run(f"{ctl} invoke hello --input ''", check=False)
        assert empty.returncode == APPLICATION_ERROR
        assert "say who to greet" in empty.stdout + empty.stderr
        assert "running" in shell.run(f"{ctl} status").stdout
    # Production refuses what is not signed by a trusted key.
    shell.run("cp ~/hello/build/hello.packaged.wasm ~/unsigned.wasm")
    with shell.background(sh("daemon").strip(), socket):
        refused = shell.run(f"forgeonectl --socket {socket} install ~/unsigned.wasm", check=False)
        assert refused.returncode != 0
        assert refused.stderr.startswith("forgeonectl: ")


def _cargo_project(path: Path, source: str, json: bool = False) -> None:
    """A plugin project at ``path`` around ``source`` (src/lib.rs), using the repo's SDK."""
    (path / "src").mkdir(parents=True, exist_ok=True)
    deps = f'forgeone-sdk = {{ path = "{SDK}/rust/forgeone-sdk" }}\n'
    if json:
        deps += f'forgeone-sdk-json = {{ path = "{SDK}/rust/forgeone-sdk-json" }}\n'
    (path / "Cargo.toml").write_text(
        '[package]\nname = "guide-example"\nversion = "0.1.0"\nedition = "2021"\n'
        '[lib]\nname = "plugin"\ncrate-type = ["cdylib"]\n'
        f'[dependencies]\n{deps}[profile.release]\npanic = "abort"\n[workspace]\n'
    )
    (path / "src/lib.rs").write_text(source)


def _build_rust(project: Path, tmp_path: Path) -> bytes:
    shell = AuthorShell(tmp_path)
    shell.cwd = project
    shell.run(sh("rust-build"))
    return (project / "target/wasm32-unknown-unknown/release/plugin.wasm").read_bytes()


def _call(wasm: bytes, tmp_path: Path, inputs: list[bytes], caps: Capabilities) -> list[bytes]:
    with WasmtimeRuntime() as runtime:
        host = make_host(tmp_path / "host", caps=caps)
        with runtime.instantiate(runtime.compile(wasm), Limits(), host.services) as inst:
            inst.call(LifecycleExport.INIT)
            inst.call(LifecycleExport.START)
            return [inst.handle(data) for data in inputs]


def test_the_rust_example_builds_with_the_guide_command_and_counts(tmp_path: Path) -> None:
    need_rust()
    project = BUILD_CACHE / "guide-counter"  # a fixed path: cargo reuses its last build
    _cargo_project(project, GUIDE["rust-counter"].text)
    wasm = _build_rust(project, tmp_path)
    caps = Capabilities(log=True, kv_quota_bytes=4096)
    assert _call(wasm, tmp_path, [b"a", b"b"], caps) == [b"a #1", b"b #2"]


def test_the_hooks_example_builds_and_runs_in_a_daemon(tmp_path: Path) -> None:
    """The guide's ``checker`` and its manifest, the origin pointed at a local server: the
    endpoint comes from plugins.conf.d, the host fills in the credential, the verdict is
    counted in the declared metric."""
    need_rust()
    project = BUILD_CACHE / "guide-hooks"
    _cargo_project(project, GUIDE["rust-hooks"].text)
    wasm = _build_rust(project, tmp_path)
    imports = {imp.name for imp in wasmtime.Module(wasmtime.Engine(), wasm).imports}
    assert imports == {"config_get", "http_request", "metric_add", "log", "output"}
    exports = {exp.name for exp in wasmtime.Module(wasmtime.Engine(), wasm).exports}
    assert {"check", "handle", "alloc"} <= exports
    manifest = tomllib.loads(GUIDE["hooks-manifest"].text)
    with CountingServer() as server:
        origin = f"http://127.0.0.1:{server.port}"
        manifest["capabilities"]["http"] = [origin]
        (tmp_path / "d").mkdir()
        env = Env(tmp_path / "d")
        hooks_operator(env, "checker", origin, f'endpoint = "{origin}"\n', "api-token")
        drop(env.plugins, "checker.wasm", make_signed_plugin(wasm, manifest, KEY))
        with in_process(env) as d:
            out = d.daemon.backend.invoke("checker", b"42", None, "check")
            assert out == b"deny"  # the local server answers 404
            lines = scrape(d)
        [(method, path, headers, _)] = server.requests
        assert (method, path, headers["authorization"]) == ("GET", "/items/42", f"Bearer {SECRET}")
    assert 'forgeone_plugin_requests_total{plugin="checker",verdict="deny"} 1.0' in lines


def test_the_json_example_builds_offline_from_debian_crates(tmp_path: Path) -> None:
    need_rust()
    if not any(Path("/usr/share/cargo/registry").glob("serde_json-*")):
        pytest.skip("librust-serde-json-dev not installed")
    project = BUILD_CACHE / "guide-json"
    _cargo_project(project, GUIDE["json-example"].text, json=True)
    (project / ".cargo").mkdir(exist_ok=True)
    (project / ".cargo/config.toml").write_text(GUIDE["json-config"].text)
    wasm = _build_rust(project, tmp_path)
    out = _call(wasm, tmp_path, [b'{"a": [1, 2]}'], Capabilities())
    assert out == [b'{"echo":{"a":[1,2]}}']


def test_the_c_build_command_makes_a_plugin(tmp_path: Path) -> None:
    need_clang()
    shell = AuthorShell(tmp_path)
    work = shell.home / "c"
    (work / "sdk").mkdir(parents=True)
    (work / "sdk/c").symlink_to(SDK / "c")
    shutil.copyfile(REPO / "examples/c-plugin/hello.c", work / "plugin.c")
    shell.cwd = work
    shell.run(sh("c-build"))
    out = _call((work / "plugin.wasm").read_bytes(), tmp_path, [b"there"], Capabilities())
    assert out == [b"hello from C, there"]


def test_package_takes_wat_and_the_package_sign_block_runs(tmp_path: Path) -> None:
    shell = AuthorShell(tmp_path)
    wat = f'(module (memory (export "memory") 1)\n{lifecycle_exports()})\n'
    (shell.home / "ping.wat").write_text(wat)
    (shell.home / "manifest.toml").write_text('name = "ping"\nversion = "1.0.0"\nabi = 1\n')
    shell.run(sh("wat"))
    packaged = (shell.home / "ping.packaged.wasm").read_bytes()
    manifest = read_manifest(packaged, wasm_sections.parse_sections(packaged))
    assert manifest.name == "ping"
    # package-sign, from a binary this time, with the key of the ten-minute path.
    (shell.home / "plugin.wasm").write_bytes(wasmtime.wat2wasm(wat))
    shell.run("forgeonectl keys generate --out ~/keys --name ops")
    result = shell.run(sh("package-sign"))
    assert "trusted and loadable: ping 1.0.0" in result.stdout
