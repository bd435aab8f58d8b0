//! forgeoned sample plugin: exports the whole ABI v1 and uses every host function.
//!
//! `handle(input)` counts its invocations and outputs `sample <VERSION> #<count> | <input>`.
//!
//! The counter follows the pattern a plugin should use for state it wants to keep: it lives
//! in memory, is loaded from kv (key `invocations`) in `start`/`resume` and written back in
//! `pause`/`stop` and every `PERSIST_EVERY` calls — not on every call, because `kv_set` is
//! durable (fsync'd) when it returns, which would make every call wait for the disk. A crash
//! loses at most `PERSIST_EVERY - 1` counts. Persisting adds this instance's unsaved calls to
//! the value found in kv, so several instances of the plugin add up to one total (each
//! instance's `#<count>` shows that total as it last saw it, plus its own calls since).
//!
//! A few inputs starting with `!` are commands that let tests drive each host function and
//! each kind of failure:
//!
//! | input      | output / effect                                          |
//! | ---------- | -------------------------------------------------------- |
//! | `!kv-set`  | counts like any input, then persists the counter at once |
//! |            | (one durable `kv_set` per call: the disk-bound path)     |
//! | `!env`     | `TZ=<value>` (or `TZ!<error>`)                           |
//! | `!secret`  | `secret-len=<n>` (never the secret itself)               |
//! | `!time`    | `time=<unix ms>`                                         |
//! | `!random`  | `random=<16 hex digits>`                                 |
//! | `!kv-reset`| deletes the counter (kv and memory), outputs `kv-reset`  |
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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

const VERSION: &str = match option_env!("FORGEONE_SAMPLE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};
const FAIL_INIT: bool = option_env!("FORGEONE_SAMPLE_FAIL_INIT").is_some();
const COUNTER_KEY: &[u8] = b"invocations";
const PERSIST_EVERY: u64 = 1000;

static TICKS: AtomicU32 = AtomicU32::new(0);
// The invocation counter: BASE as last loaded from or written to kv, plus UNSAVED calls.
// (Atomics only because statics must be Sync: a Store runs one call at a time.)
static BASE: AtomicU64 = AtomicU64::new(0);
static UNSAVED: AtomicU64 = AtomicU64::new(0);
static LOADED: AtomicBool = AtomicBool::new(false);

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
    load_counter();
    note("sample start")
}

#[no_mangle]
pub extern "C" fn stop() -> i32 {
    save_counter_or_log();
    note("sample stop")
}

#[no_mangle]
pub extern "C" fn pause() -> i32 {
    save_counter_or_log();
    note("sample pause")
}

#[no_mangle]
pub extern "C" fn resume() -> i32 {
    load_counter();
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

/// The counter as stored in kv (0 when absent, unreadable or kv is not granted).
fn stored_counter() -> u64 {
    host::kv_get(COUNTER_KEY)
        .ok()
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Take the stored counter as the base; unsaved calls (if any) stay counted on top of it.
fn load_counter() {
    BASE.store(stored_counter(), Ordering::Relaxed);
    LOADED.store(true, Ordering::Relaxed);
}

/// Add the unsaved calls to the value in kv and write the sum (durable when it returns).
fn save_counter() -> Result<(), host::HostError> {
    let unsaved = UNSAVED.load(Ordering::Relaxed);
    if unsaved == 0 {
        return Ok(());
    }
    let total = stored_counter() + unsaved;
    host::kv_set(COUNTER_KEY, total.to_string().as_bytes())?;
    BASE.store(total, Ordering::Relaxed);
    UNSAVED.store(0, Ordering::Relaxed);
    Ok(())
}

fn save_counter_or_log() {
    if let Err(e) = save_counter() {
        let _ = host::log(Level::Warning, &format!("sample: counter not saved ({})", e.as_str()));
    }
}

/// Count one invocation; `persist` writes the counter to kv now. The count, or `?<error>`
/// when persisting was asked for and failed (the call is still counted in memory).
fn count_invocation(persist: bool) -> String {
    if !LOADED.load(Ordering::Relaxed) {
        load_counter(); // `handle` before `start` (e.g. a test driving exports directly)
    }
    let unsaved = UNSAVED.fetch_add(1, Ordering::Relaxed) + 1;
    if persist || unsaved >= PERSIST_EVERY {
        if let Err(e) = save_counter() {
            if persist {
                return format!("?{}", e.as_str());
            }
        }
    }
    (BASE.load(Ordering::Relaxed) + UNSAVED.load(Ordering::Relaxed)).to_string()
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
            BASE.store(0, Ordering::Relaxed);
            UNSAVED.store(0, Ordering::Relaxed);
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
            let count = count_invocation(text == "!kv-set");
            let mut out = format!("sample {} #{} | ", VERSION, count).into_bytes();
            out.extend_from_slice(input);
            return Some(out);
        }
    };
    Some(reply.into_bytes())
}
