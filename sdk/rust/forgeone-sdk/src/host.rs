//! Safe wrappers over the ABI v1 imports: log, env, secrets, clock, random, kv, output.
//!
//! Each takes slices and builds the pointers itself; a negative result is an [`Error`].

use crate::error::{check, Result};
use crate::raw;

/// Log levels as the host numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Notice = 2,
    Warning = 3,
    Error = 4,
}

/// One line to the journal (`FORGEONE_PLUGIN=<name>`), needs `capabilities.log`.
pub fn log(level: Level, message: &str) -> Result<()> {
    let code = unsafe { raw::log(level as i32, message.as_ptr(), message.len() as i32) };
    check("log", code).map(|_| ())
}

/// Log at info level and ignore a refusal (for lines a plugin can live without).
pub fn info(message: &str) {
    let _ = log(Level::Info, message);
}

/// Log at warning level and ignore a refusal.
pub fn warn(message: &str) {
    let _ = log(Level::Warning, message);
}

type KeyBufFn = unsafe extern "C" fn(*const u8, i32, *mut u8, i32) -> i32;

/// Calls a "key -> value copied into a buffer" import, growing the buffer when the host says
/// the value needs more room (it copies only when the value fits).
pub(crate) fn fetch(call: &str, f: KeyBufFn, key: &[u8]) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let code = unsafe { f(key.as_ptr(), key.len() as i32, buf.as_mut_ptr(), buf.len() as i32) };
        let n = check(call, code)?;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf = vec![0u8; n];
    }
}

/// An environment variable the manifest lists in `capabilities.env` (and policy allows).
pub fn env(key: &str) -> Result<String> {
    Ok(String::from_utf8(fetch("env_get", raw::env_get, key.as_bytes())?)?)
}

/// A credential the manifest lists in `capabilities.secrets`.
pub fn secret(name: &str) -> Result<Vec<u8>> {
    fetch("secret_get", raw::secret_get, name.as_bytes())
}

/// Unix time in milliseconds (`capabilities.clock`; 0 if denied).
pub fn now_ms() -> i64 {
    unsafe { raw::time_now_ms() }
}

/// Fill `buf` with random bytes (`capabilities.random`).
pub fn random(buf: &mut [u8]) -> Result<()> {
    check("random_fill", unsafe { raw::random_fill(buf.as_mut_ptr(), buf.len() as i32) })
        .map(|_| ())
}

/// The plugin's private key-value store (`capabilities.kv`).
pub mod kv {
    use super::*;

    /// The value of `key`; `Ok(None)` when it is absent.
    pub fn get(key: &[u8]) -> Result<Option<Vec<u8>>> {
        match fetch("kv_get", raw::kv_get, key) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Store `value` under `key`; durable when it returns (so not on every call).
    pub fn set(key: &[u8], value: &[u8]) -> Result<()> {
        let code = unsafe {
            raw::kv_set(key.as_ptr(), key.len() as i32, value.as_ptr(), value.len() as i32)
        };
        check("kv_set", code).map(|_| ())
    }

    /// Remove `key` (absent is fine).
    pub fn delete(key: &[u8]) -> Result<()> {
        match check("kv_delete", unsafe { raw::kv_delete(key.as_ptr(), key.len() as i32) }) {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }
}

/// Append to the output of the current `handle` (or named function) call.
pub fn output(data: &[u8]) -> Result<()> {
    check("output", unsafe { raw::output(data.as_ptr(), data.len() as i32) }).map(|_| ())
}

