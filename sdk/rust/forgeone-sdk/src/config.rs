//! Per-plugin configuration (`config_get`): the keys the manifest declares, with the values
//! the operator set in the plugin's config file (or the declared defaults).
//!
//! Values arrive as text; read them again in `start` to see the values of the latest reload.

use crate::error::{Error, Result};
use crate::host::fetch;
use crate::raw;
use std::str::FromStr;

/// The value of `key`; `Ok(None)` when it has no value (not set, no default).
pub fn get(key: &str) -> Result<Option<String>> {
    match fetch("config_get", raw::config_get, key.as_bytes()) {
        Ok(v) => Ok(Some(String::from_utf8(v)?)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The value of `key`, or `default` when it has none.
pub fn get_or(key: &str, default: &str) -> Result<String> {
    Ok(get(key)?.unwrap_or_else(|| default.to_string()))
}

/// The value of `key`; an error naming the key when it has none.
pub fn require(key: &str) -> Result<String> {
    get(key)?.ok_or_else(|| Error::new(crate::error::NOT_FOUND, format!("config {}: not set", key)))
}

/// The value of `key` parsed as `T` (`u64`, `f64`, `bool`, …); `Ok(None)` when unset.
pub fn parse<T: FromStr>(key: &str) -> Result<Option<T>> {
    match get(key)? {
        None => Ok(None),
        Some(text) => text.trim().parse::<T>().map(Some).map_err(|_| {
            Error::new(crate::error::INVALID, format!("config {}: cannot parse {:?}", key, text))
        }),
    }
}
