//! forgeoned sample plugin: exports the whole ABI v1 and uses every host function.
//!
//! `handle(input)` counts its invocations in kv (key `invocations`) and outputs
//! `sample <VERSION> #<count> | <input>`. A few inputs starting with `!` are commands that
//! let tests drive each host function and each kind of failure:
//!
//! | input      | output / effect                                          |
//! | ---------- | -------------------------------------------------------- |
//! | `!env`     | `TZ=<value>` (or `TZ!<error>`)                           |
//! | `!secret`  | `secret-len=<n>` (never the secret itself)               |
//! | `!time`    | `time=<unix ms>`                                         |
//! | `!random`  | `random=<16 hex digits>`                                 |
//! | `!kv-reset`| deletes the counter, outputs `kv-reset`                  |
//! | `!grow N`  | tries `memory.grow(N)`, outputs `grow=<old pages or -1>` |
//! | `!fail`    | returns status 1                                         |
//! | `!panic`   | panics (the call traps with `unreachable`)               |
//! | `!spin`    | loops forever (the call hits its deadline)               |
//!
//! The version string is `FORGEONE_SAMPLE_VERSION` at build time (default: the crate's
//! version), so tests can build distinguishable versions of the same plugin; building with
//! `FORGEONE_SAMPLE_FAIL_INIT=1` makes `init` return 1.

mod host;

use host::Level;
use std::sync::atomic::{AtomicU32, Ordering};

const VERSION: &str = match option_env!("FORGEONE_SAMPLE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
const FAIL_INIT: bool = option_env!("FORGEONE_SAMPLE_FAIL_INIT").is_some();
const COUNTER_KEY: &[u8] = b"invocations";

static TICKS: AtomicU32 = AtomicU32::new(0);

fn note(message: &str) -> i32 {
    let _ = host::log(Level::Info, message);
    0
}

#[no_mangle]
pub extern "C" fn init() -> i32 {
    let tz = host::env("TZ").unwrap_or_else(|e| format!("<{}>", e.as_str()));
    let _ = host::log(Level::Info, &format!("sample {} init (TZ={})", VERSION, tz));
    if FAIL_INIT {
        return 1;
    }
    0
}

#[no_mangle]
pub extern "C" fn start() -> i32 {
    note("sample start")
}

#[no_mangle]
pub extern "C" fn stop() -> i32 {
    note("sample stop")
}

#[no_mangle]
pub extern "C" fn pause() -> i32 {
    note("sample pause")
}

#[no_mangle]
pub extern "C" fn resume() -> i32 {
    note("sample resume")
}

#[no_mangle]
pub extern "C" fn unload() -> i32 {
    note("sample unload")
}

#[no_mangle]
pub extern "C" fn tick() -> i32 {
    TICKS.fetch_add(1, Ordering::Relaxed);
    0
}

/// Memory for one input of `len` bytes; `handle` takes ownership back.
#[no_mangle]
pub extern "C" fn alloc(len: i32) -> i32 {
    let buf = vec![0u8; len.max(0) as usize].into_boxed_slice();
    Box::into_raw(buf) as *mut u8 as i32
}

#[no_mangle]
pub extern "C" fn handle(ptr: i32, len: i32) -> i32 {
    let input: Box<[u8]> = unsafe {
        Box::from_raw(std::ptr::slice_from_raw_parts_mut(ptr as *mut u8, len.max(0) as usize))
    };
    match respond(&input) {
        Some(reply) => {
            let _ = host::output(&reply);
            0
        }
        None => 1,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{:02x}", b)).collect()
}

fn count_invocation() -> String {
    let current = host::kv_get(COUNTER_KEY)
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    let next = (current + 1).to_string();
    match host::kv_set(COUNTER_KEY, next.as_bytes()) {
        Ok(()) => next,
        Err(e) => format!("?{}", e.as_str()),
    }
}

fn respond(input: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(input).unwrap_or("");
    let reply = match text {
        "!fail" => return None,
        "!panic" => panic!("sample: panic requested"),
        "!spin" => loop {
            std::hint::spin_loop();
        },
        "!env" => match host::env("TZ") {
            Ok(v) => format!("TZ={}", v),
            Err(e) => format!("TZ!{}", e.as_str()),
        },
        "!secret" => match host::secret("api-token") {
            Ok(v) => format!("secret-len={}", v.len()),
            Err(e) => format!("secret!{}", e.as_str()),
        },
        "!time" => format!("time={}", host::now_ms()),
        "!random" => {
            let mut buf = [0u8; 8];
            match host::random(&mut buf) {
                Ok(()) => format!("random={}", hex(&buf)),
                Err(e) => format!("random!{}", e.as_str()),
            }
        }
        "!kv-reset" => {
            let _ = host::kv_delete(COUNTER_KEY);
            "kv-reset".to_string()
        }
        _ if text.starts_with("!grow ") => {
            let pages: usize = text[6..].trim().parse().unwrap_or(0);
            let old = core::arch::wasm32::memory_grow(0, pages);
            if old == usize::MAX {
                "grow=-1".to_string()
            } else {
                format!("grow={}", old)
            }
        }
        _ => {
            let count = count_invocation();
            let mut out = format!("sample {} #{} | ", VERSION, count).into_bytes();
            out.extend_from_slice(input);
            return Some(out);
        }
    };
    Some(reply.into_bytes())
}
