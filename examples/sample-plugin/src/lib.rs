//! forgeoned sample plugin: exports the whole ABI v1 and uses every host function, through
//! the Rust SDK (`sdk/rust/forgeone-sdk`).
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
//! | `!fetch URL` | one outbound GET (`http_request`), `fetch=<status> bytes=<n>`  |
//! |            | or `fetch!<error>`; its duration in histogram `fetch_seconds` |
//! | `!fail`    | returns status 1                                         |
//! | `!panic`   | panics (the call traps with `unreachable`)               |
//! | `!spin`    | loops forever (the call hits its deadline)               |
//!
//! The provider hooks, each declared in `manifest.toml`: the first word of every echo is the
//! config value `greeting` (read at `start`/`resume`; default `sample`); the named function
//! `stats` outputs `invocations=<n> ticks=<n> greeting=<g>`; metrics: counter `commands`
//! (label `command`, one per `!` command above), gauge `invocations` (set when the counter is
//! saved) and histogram `fetch_seconds`.
//!
//! The version string is `FORGEONE_SAMPLE_VERSION` at build time (default: the crate's
//! version), so tests can build distinguishable versions of the same plugin; building with
//! `FORGEONE_SAMPLE_FAIL_INIT=1` makes `init` return 1.

#[cfg(feature = "outbound")]
use forgeone_sdk::http;
use forgeone_sdk::{self as fo, config, kv, metrics, Level, Plugin};
use std::cell::RefCell;
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

thread_local! {
    // The `greeting` config value, read at start/resume (a reload restarts the plugin).
    static GREETING: RefCell<String> = RefCell::new(DEFAULT_GREETING.to_string());
}
const DEFAULT_GREETING: &str = "sample";
// The label values the manifest declares for metric `commands`.
const COMMANDS: [&str; 8] = ["env", "secret", "time", "random", "kv-set", "kv-reset", "grow", "fetch"];

/// Read the configuration (`greeting`; the manifest's default when the operator sets none).
fn load_config() {
    let greeting = match config::get_or("greeting", DEFAULT_GREETING) {
        Ok(g) => g,
        Err(e) => {
            fo::warn(&format!("sample: config greeting unreadable ({})", e));
            DEFAULT_GREETING.to_string()
        }
    };
    GREETING.with(|g| *g.borrow_mut() = greeting);
}

fn greeting() -> String {
    GREETING.with(|g| g.borrow().clone())
}

struct Sample;

impl Plugin for Sample {
    fn init() -> fo::Result<()> {
        let tz = fo::env("TZ").unwrap_or_else(|e| format!("<{}>", e.kind()));
        fo::info(&format!("sample {} init (TZ={})", VERSION, tz));
        if FAIL_INIT {
            return Err(fo::Error::msg("init failure requested at build time"));
        }
        Ok(())
    }

    fn start() -> fo::Result<()> {
        load_config();
        load_counter();
        fo::info("sample start");
        Ok(())
    }

    fn stop() -> fo::Result<()> {
        save_counter_or_log();
        fo::info("sample stop");
        Ok(())
    }

    fn pause() -> fo::Result<()> {
        save_counter_or_log();
        fo::info("sample pause");
        Ok(())
    }

    fn resume() -> fo::Result<()> {
        load_config();
        load_counter();
        fo::info("sample resume");
        Ok(())
    }

    fn unload() -> fo::Result<()> {
        fo::info("sample unload");
        Ok(())
    }
}

fn tick() -> fo::Result<()> {
    TICKS.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fo::export_plugin!(Sample);
fo::export_handle!(respond);
fo::export_tick!(tick);
fo::export_function!(stats, stats);

/// Named function `stats` (`forgeonectl invoke sample --fn stats`): the counters, as text.
fn stats(_input: &[u8]) -> fo::Result<Vec<u8>> {
    let count = BASE.load(Ordering::Relaxed) + UNSAVED.load(Ordering::Relaxed);
    let ticks = TICKS.load(Ordering::Relaxed);
    Ok(format!("invocations={} ticks={} greeting={}", count, ticks, greeting()).into_bytes())
}

/// `!fetch URL`: one outbound GET; its duration observed in histogram `fetch_seconds`.
#[cfg(feature = "outbound")]
fn fetch(url: &str) -> String {
    let started = fo::now_ms();
    let result = http::Request::get(url).max_response(4096).send();
    let seconds = (fo::now_ms() - started).max(0) as f64 / 1000.0;
    let _ = metrics::observe("fetch_seconds", &[], seconds);
    match result {
        Ok(resp) => format!("fetch={} bytes={}", resp.status, resp.body.len()),
        Err(e) => format!("fetch!{}", e.kind()),
    }
}

/// Built without the `outbound` feature (the default: the manifest requests no origin, so
/// this build does not import `http_request`): `!fetch` answers `fetch!unsupported`.
#[cfg(not(feature = "outbound"))]
fn fetch(_url: &str) -> String {
    "fetch!unsupported".to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{:02x}", b)).collect()
}

/// The counter as stored in kv (0 when absent, unreadable or kv is not granted).
fn stored_counter() -> u64 {
    kv::get(COUNTER_KEY)
        .ok()
        .flatten()
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
fn save_counter() -> fo::Result<()> {
    let unsaved = UNSAVED.load(Ordering::Relaxed);
    if unsaved == 0 {
        return Ok(());
    }
    let total = stored_counter() + unsaved;
    kv::set(COUNTER_KEY, total.to_string().as_bytes())?;
    let _ = metrics::set("invocations", &[], total as f64);
    BASE.store(total, Ordering::Relaxed);
    UNSAVED.store(0, Ordering::Relaxed);
    Ok(())
}

fn save_counter_or_log() {
    if let Err(e) = save_counter() {
        let _ = fo::log(Level::Warning, &format!("sample: counter not saved ({})", e.kind()));
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
                return format!("?{}", e.kind());
            }
        }
    }
    (BASE.load(Ordering::Relaxed) + UNSAVED.load(Ordering::Relaxed)).to_string()
}

fn respond(input: &[u8]) -> fo::Result<Vec<u8>> {
    let text = std::str::from_utf8(input).unwrap_or("");
    if let Some(command) = text.strip_prefix('!') {
        let name = command.split(' ').next().unwrap_or("");
        if COMMANDS.contains(&name) {
            let _ = metrics::inc("commands", &[("command", name)]);
        }
    }
    let reply = match text {
        "!fail" => return Err(fo::Error::new(1, "failure requested")),
        "!panic" => panic!("sample: panic requested"),
        "!spin" => loop {
            std::hint::spin_loop();
        },
        "!env" => match fo::env("TZ") {
            Ok(v) => format!("TZ={}", v),
            Err(e) => format!("TZ!{}", e.kind()),
        },
        "!secret" => match fo::secret("api-token") {
            Ok(v) => format!("secret-len={}", v.len()),
            Err(e) => format!("secret!{}", e.kind()),
        },
        "!time" => format!("time={}", fo::now_ms()),
        "!random" => {
            let mut buf = [0u8; 8];
            match fo::random(&mut buf) {
                Ok(()) => format!("random={}", hex(&buf)),
                Err(e) => format!("random!{}", e.kind()),
            }
        }
        "!kv-reset" => {
            let _ = kv::delete(COUNTER_KEY);
            BASE.store(0, Ordering::Relaxed);
            UNSAVED.store(0, Ordering::Relaxed);
            "kv-reset".to_string()
        }
        _ if text.starts_with("!fetch ") => fetch(text[7..].trim()),
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
            let mut out = format!("{} {} #{} | ", greeting(), VERSION, count).into_bytes();
            out.extend_from_slice(input);
            return Ok(out);
        }
    };
    Ok(reply.into_bytes())
}
