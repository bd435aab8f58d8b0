//! Typed JSON for forgeoned plugins: parse a call's input, serialize its output.
//!
//! ```ignore
//! use forgeone_sdk::{self as fo};
//! use forgeone_sdk_json::{json_call, serde_json::{json, Value}};
//!
//! fn respond(input: &[u8]) -> fo::Result<Vec<u8>> {
//!     json_call(input, |req: Value| Ok(json!({"echo": req})))
//! }
//! fo::export_handle!(respond);
//! ```
//!
//! Bad JSON in is an application error with status [`BAD_JSON`] and a message saying where.

pub use serde_json;

use forgeone_sdk::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The status of a call whose input is not the JSON it expects.
pub const BAD_JSON: i32 = 22;

/// `input` parsed as `T`.
pub fn from_input<T: DeserializeOwned>(input: &[u8]) -> Result<T> {
    serde_json::from_slice(input).map_err(|e| Error::new(BAD_JSON, format!("bad JSON input: {}", e)))
}

/// `value` as JSON bytes.
pub fn to_output<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::msg(format!("cannot serialize output: {}", e)))
}

/// Parse the input as `I`, run `f`, serialize its `O`: the body of a JSON `handle` or
/// named function.
pub fn json_call<I, O, F>(input: &[u8], f: F) -> Result<Vec<u8>>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(I) -> Result<O>,
{
    to_output(&f(from_input(input)?)?)
}
