//! # forgeone-sdk: write forgeoned plugins in Rust
//!
//! Safe wrappers over every host import of module `forgeone`, one error type ([`Error`]: a
//! status and a message) and macros that export the ABI:
//!
//! ```ignore
//! use forgeone_sdk::{self as fo, Plugin};
//!
//! struct Hello;
//! impl Plugin for Hello {
//!     fn start() -> fo::Result<()> {
//!         fo::info("hello started");
//!         Ok(())
//!     }
//! }
//!
//! fn respond(input: &[u8]) -> fo::Result<Vec<u8>> {
//!     let name = std::str::from_utf8(input)?;
//!     Ok(format!("hello, {}", name).into_bytes())
//! }
//!
//! fo::export_plugin!(Hello);
//! fo::export_handle!(respond);
//! ```
//!
//! No dependencies: build offline with Debian's toolchain,
//! `RUSTC=/usr/bin/rustc /usr/bin/cargo build --offline --release --target wasm32-unknown-unknown`.
//!
//! Only the functions a plugin calls become imports of its module; a plugin must not call a
//! function the daemon it runs in does not provide (that is a load error).

pub mod config;
pub mod error;
pub mod export;
mod host;
pub mod http;
pub mod metrics;
pub mod raw;
mod wire;

pub use error::{
    Error, Result, CONNECTION, DENIED, INVALID, NOT_FOUND, QUOTA, REFUSED, TIMEOUT, TOO_LARGE,
};
pub use export::{Handler, Plugin};
pub use host::{env, info, kv, log, now_ms, output, random, secret, warn, Level};
