//! One error type for everything a plugin does: a status and a message.
//!
//! A host function's negative result becomes an `Error` with that status (`-1` not found,
//! `-2` denied, `-3` invalid argument, `-4` quota exceeded) and a message naming the call.
//! A plugin's own failure is an `Error` with a positive status: returned from `handle` or a
//! named function, the caller gets the message as output and the status as the call's
//! result (an application error, not a fault).

use std::fmt;

/// Negative results of host functions (DESIGN.md section 3).
pub const NOT_FOUND: i32 = -1;
pub const DENIED: i32 = -2;
pub const INVALID: i32 = -3;
pub const QUOTA: i32 = -4;
// `http_request` also answers these (and `-4` when too many requests are in flight).
/// The destination was refused: an internal address, or a redirect hop not allowed.
pub const REFUSED: i32 = -5;
/// No complete response in time (or the call's own deadline came first).
pub const TIMEOUT: i32 = -6;
/// The request or the response is over its cap.
pub const TOO_LARGE: i32 = -7;
/// Not resolved, refused, reset, TLS failure or a malformed response.
pub const CONNECTION: i32 = -8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    status: i32,
    message: String,
}

/// `Result<T, forgeone_sdk::Error>`.
pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// An application error: `status` should be positive (0 is turned into 1 when returned).
    pub fn new(status: i32, message: impl Into<String>) -> Self {
        Error { status, message: message.into() }
    }

    /// An application error with status 1.
    pub fn msg(message: impl Into<String>) -> Self {
        Error::new(1, message)
    }

    /// The error of host function `call` that returned `code` (< 0).
    pub fn host(call: &str, code: i32) -> Self {
        let what = match code {
            NOT_FOUND => "not found",
            DENIED => "denied by capability",
            INVALID => "invalid argument",
            QUOTA => "quota exceeded (or busy)",
            REFUSED => "destination refused",
            TIMEOUT => "timed out",
            TOO_LARGE => "too large",
            CONNECTION => "connection error",
            _ => "failed",
        };
        Error { status: code, message: format!("{}: {} ({})", call, what, code) }
    }

    pub fn status(&self) -> i32 {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn is_not_found(&self) -> bool {
        self.status == NOT_FOUND
    }

    pub fn is_denied(&self) -> bool {
        self.status == DENIED
    }

    /// A short stable word for the status: `not-found`, `denied`, `invalid`, `quota`,
    /// `error` (another negative code) or `application` (a plugin's own status).
    pub fn kind(&self) -> &'static str {
        match self.status {
            NOT_FOUND => "not-found",
            DENIED => "denied",
            INVALID => "invalid",
            QUOTA => "quota",
            REFUSED => "refused",
            TIMEOUT => "timeout",
            TOO_LARGE => "too-large",
            CONNECTION => "connection",
            s if s < 0 => "error",
            _ => "application",
        }
    }

    /// The status an export returns for this error: never 0.
    pub fn export_status(&self) -> i32 {
        if self.status == 0 {
            1
        } else {
            self.status
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::str::Utf8Error> for Error {
    fn from(e: std::str::Utf8Error) -> Self {
        Error::new(INVALID, format!("not UTF-8: {}", e))
    }
}

impl From<std::string::FromUtf8Error> for Error {
    fn from(e: std::string::FromUtf8Error) -> Self {
        Error::new(INVALID, format!("not UTF-8: {}", e))
    }
}

/// `code` as a length when it is >= 0, else the host error of `call`.
pub(crate) fn check(call: &str, code: i32) -> Result<usize> {
    if code < 0 {
        Err(Error::host(call, code))
    } else {
        Ok(code as usize)
    }
}
