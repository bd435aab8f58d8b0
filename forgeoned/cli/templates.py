"""The files ``forgeonectl new`` writes: a plugin project per language, as text templates.

``{name}`` is the plugin's manifest name, ``{crate}`` its Cargo package name; the SDK itself
(``sdk/rust/forgeone-sdk``, ``sdk/c/forgeone.h``) is copied in beside them by ``cli.new``.
"""

from __future__ import annotations

from typing import Final

MANIFEST: Final = """\
# What `forgeonectl package` embeds (section forgeone.manifest); see docs/plugin-authoring.md.
name = "{name}"
version = "0.1.0"
abi = 1
description = "{name}: a forgeoned plugin"

[capabilities]          # what the plugin asks for; the operator's policy may narrow it
log = true

[limits]
memory_bytes = 16777216
fuel_per_call = 100000000
call_timeout_ms = 1000
instances = 1
"""

GITIGNORE: Final = "/target/\n/build/\n*.key\n"

RUST_CARGO: Final = """\
[package]
name = "{crate}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
name = "plugin"            # -> target/wasm32-unknown-unknown/release/plugin.wasm
crate-type = ["cdylib"]
path = "src/lib.rs"

[dependencies]
forgeone-sdk = {{ path = "forgeone-sdk" }}   # the SDK, copied in: builds offline

[profile.release]
opt-level = "s"
lto = true
panic = "abort"
codegen-units = 1
strip = true

[workspace]
"""

RUST_LIB: Final = """\
//! {name}: a forgeoned plugin. `handle` greets its input; the lifecycle logs.

use forgeone_sdk::{{self as fo, Plugin}};

struct {type_name};

impl Plugin for {type_name} {{
    fn start() -> fo::Result<()> {{
        fo::info("{name} started");
        Ok(())
    }}
}}

/// `forgeonectl invoke {name} --input TEXT` -> `hello, TEXT`. An `Err` is an application
/// error: its message is the output and its status the call's status.
fn respond(input: &[u8]) -> fo::Result<Vec<u8>> {{
    let who = std::str::from_utf8(input)?;
    if who.is_empty() {{
        return Err(fo::Error::new(2, "say who to greet"));
    }}
    Ok(format!("hello, {{}}", who).into_bytes())
}}

fo::export_plugin!({type_name});
fo::export_handle!(respond);
"""

RUST_MAKEFILE: Final = """\
# `make` builds and packages build/{name}.packaged.wasm; sign it with forgeonectl sign.
# Needs Debian's rustc, cargo and libstd-rust-dev-wasm32; no network.
FORGEONECTL ?= forgeonectl
CARGO ?= /usr/bin/cargo
export RUSTC ?= /usr/bin/rustc
WASM := target/wasm32-unknown-unknown/release/plugin.wasm

build/{name}.packaged.wasm: $(WASM) manifest.toml
\tmkdir -p build
\t$(FORGEONECTL) package $(WASM) --manifest manifest.toml -o $@

$(WASM): Cargo.toml $(wildcard src/*.rs forgeone-sdk/src/*.rs)
\t$(CARGO) build --offline --release --target wasm32-unknown-unknown

clean:
\trm -rf build target
.PHONY: clean
"""

C_SOURCE: Final = """\
/* {name}: a forgeoned plugin in C. `handle` greets its input; the lifecycle logs. */
#include "forgeone.h"

FORGEONE_DEFINE_ALLOC()

FORGEONE_EXPORT("init") int32_t init(void) {{ return 0; }}
FORGEONE_EXPORT("start") int32_t start(void) {{
    fo_log_str(FO_INFO, "{name} started");
    return 0;
}}
FORGEONE_EXPORT("stop") int32_t stop(void) {{ return 0; }}
FORGEONE_EXPORT("pause") int32_t pause(void) {{ return 0; }}
FORGEONE_EXPORT("resume") int32_t resume(void) {{ return 0; }}
FORGEONE_EXPORT("unload") int32_t unload(void) {{ return 0; }}

/* The input is valid during the call only; non-zero is an application error. */
FORGEONE_EXPORT("handle") int32_t handle(const uint8_t *input, int32_t len) {{
    if (len == 0) {{
        fo_output_str("say who to greet");
        return 2;
    }}
    fo_output_str("hello, ");
    fo_output(input, len);
    return 0;
}}
"""

C_MAKEFILE: Final = """\
# `make` builds and packages build/{name}.packaged.wasm; sign it with forgeonectl sign.
# Needs Debian's clang and lld (apt-get install clang lld); no libc.
FORGEONECTL ?= forgeonectl
CC := clang
CFLAGS := --target=wasm32-unknown-unknown -nostdlib -O2 -Wall -Werror -I.
LDFLAGS := -Wl,--no-entry -Wl,--strip-all

build/{name}.packaged.wasm: build/plugin.wasm manifest.toml
\t$(FORGEONECTL) package build/plugin.wasm --manifest manifest.toml -o $@

build/plugin.wasm: plugin.c forgeone.h
\tmkdir -p build
\t$(CC) $(CFLAGS) $(LDFLAGS) -o $@ plugin.c

clean:
\trm -rf build
.PHONY: clean
"""
