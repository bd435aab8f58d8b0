//! Safe wrappers around the raw `forgeone` imports (ABI v1).
//!
//! Every raw call takes pointers into this module's own memory; the wrappers build them from
//! slices, so plugin code never handles a raw pointer. Negative results come back as `Err`.

mod raw {
    #[link(wasm_import_module = "forgeone")]
    extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: i32) -> i32;
        pub fn env_get(key_ptr: *const u8, key_len: i32, buf_ptr: *mut u8, buf_len: i32) -> i32;
        pub fn secret_get(key_ptr: *const u8, key_len: i32, buf_ptr: *mut u8, buf_len: i32)
            -> i32;
        pub fn time_now_ms() -> i64;
        pub fn random_fill(ptr: *mut u8, len: i32) -> i32;
        pub fn kv_get(key_ptr: *const u8, key_len: i32, buf_ptr: *mut u8, buf_len: i32) -> i32;
        pub fn kv_set(key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32) -> i32;
        pub fn kv_delete(key_ptr: *const u8, key_len: i32) -> i32;
        pub fn output(ptr: *const u8, len: i32) -> i32;
    }
}

/// A negative result of a host function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    NotFound,
    Denied,
    Invalid,
    Quota,
    Other(i32),
}

impl HostError {
    fn check(code: i32) -> Result<i32, HostError> {
        match code {
            c if c >= 0 => Ok(c),
            -1 => Err(HostError::NotFound),
            -2 => Err(HostError::Denied),
            -3 => Err(HostError::Invalid),
            -4 => Err(HostError::Quota),
            c => Err(HostError::Other(c)),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HostError::NotFound => "not-found",
            HostError::Denied => "denied",
            HostError::Invalid => "invalid",
            HostError::Quota => "quota",
            HostError::Other(_) => "error",
        }
    }
}

/// Log levels as the host numbers them (0 debug … 4 error).
#[allow(dead_code)]
#[derive(Clone, Copy)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Notice = 2,
    Warning = 3,
    Error = 4,
}

pub fn log(level: Level, message: &str) -> Result<(), HostError> {
    HostError::check(unsafe { raw::log(level as i32, message.as_ptr(), message.len() as i32) })
        .map(|_| ())
}

/// Calls a "key → value copied into a buffer" function, growing the buffer once if needed.
fn fetch(
    call: unsafe extern "C" fn(*const u8, i32, *mut u8, i32) -> i32,
    key: &[u8],
) -> Result<Vec<u8>, HostError> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = HostError::check(unsafe {
            call(key.as_ptr(), key.len() as i32, buf.as_mut_ptr(), buf.len() as i32)
        })? as usize;
        if n <= buf.len() {
            buf.truncate(n);
            return Ok(buf);
        }
        buf = vec![0u8; n];
    }
}

pub fn env(key: &str) -> Result<String, HostError> {
    let value = fetch(raw::env_get, key.as_bytes())?;
    String::from_utf8(value).map_err(|_| HostError::Invalid)
}

pub fn secret(name: &str) -> Result<Vec<u8>, HostError> {
    fetch(raw::secret_get, name.as_bytes())
}

pub fn now_ms() -> i64 {
    unsafe { raw::time_now_ms() }
}

pub fn random(buf: &mut [u8]) -> Result<(), HostError> {
    HostError::check(unsafe { raw::random_fill(buf.as_mut_ptr(), buf.len() as i32) }).map(|_| ())
}

pub fn kv_get(key: &[u8]) -> Result<Vec<u8>, HostError> {
    fetch(raw::kv_get, key)
}

pub fn kv_set(key: &[u8], value: &[u8]) -> Result<(), HostError> {
    HostError::check(unsafe {
        raw::kv_set(key.as_ptr(), key.len() as i32, value.as_ptr(), value.len() as i32)
    })
    .map(|_| ())
}

pub fn kv_delete(key: &[u8]) -> Result<(), HostError> {
    HostError::check(unsafe { raw::kv_delete(key.as_ptr(), key.len() as i32) }).map(|_| ())
}

pub fn output(data: &[u8]) -> Result<(), HostError> {
    HostError::check(unsafe { raw::output(data.as_ptr(), data.len() as i32) }).map(|_| ())
}
