//! Exports: the lifecycle (`Plugin` + [`export_plugin!`](crate::export_plugin)), `alloc` +
//! `handle` ([`export_handle!`](crate::export_handle)), named functions
//! ([`export_function!`](crate::export_function)) and `tick`
//! ([`export_tick!`](crate::export_tick)). The macros expand to `#[no_mangle] extern "C"`
//! functions that call into this module.

use crate::error::Result;
use crate::host;

/// The lifecycle exports, each `Ok(())` by default. A returned `Err` is logged (warning) and
/// its status returned: see "Status semantics" in docs/plugin-authoring.md for what a
/// non-zero status of each export does.
pub trait Plugin {
    fn init() -> Result<()> {
        Ok(())
    }
    fn start() -> Result<()> {
        Ok(())
    }
    fn stop() -> Result<()> {
        Ok(())
    }
    fn pause() -> Result<()> {
        Ok(())
    }
    fn resume() -> Result<()> {
        Ok(())
    }
    fn unload() -> Result<()> {
        Ok(())
    }
}

/// A handler of `handle` or a named function: the input bytes in, the output bytes out.
pub type Handler = fn(&[u8]) -> Result<Vec<u8>>;

/// The status an export returns for `result` (a failure is logged, never 0).
pub fn status(export: &str, result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            host::warn(&format!("{}: {}", export, e));
            e.export_status()
        }
    }
}

/// `alloc(len)`: a buffer of `len` bytes the host copies one input into; the call that
/// receives it (`handle` or a named function) takes it back.
pub fn alloc(len: i32) -> i32 {
    let buf = vec![0u8; len.max(0) as usize].into_boxed_slice();
    Box::into_raw(buf) as *mut u8 as i32
}

/// Serve one call: take back the input `alloc` made, run `handler`, write its output.
/// On `Err`, the error's message is the output and its status the result.
///
/// # Safety
/// `ptr`/`len` must be what `alloc(len)` returned (the host guarantees it).
pub unsafe fn serve(ptr: i32, len: i32, handler: Handler) -> i32 {
    let input: Box<[u8]> =
        Box::from_raw(core::ptr::slice_from_raw_parts_mut(ptr as *mut u8, len.max(0) as usize));
    match handler(&input) {
        Ok(out) => match host::output(&out) {
            Ok(()) => 0,
            Err(e) => e.export_status(),
        },
        Err(e) => {
            let _ = host::output(e.message().as_bytes());
            e.export_status()
        }
    }
}

// Each macro wraps its exports in `const _: () = { ... };` under private Rust names with
// `#[export_name]`, so a handler may have the export's own name (`fn tick()`, `fn greet()`).

/// Export `init`, `start`, `stop`, `pause`, `resume` and `unload` from a type implementing
/// [`Plugin`]: `forgeone_sdk::export_plugin!(MyPlugin);`
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        const _: () = {
            #[export_name = "init"]
            extern "C" fn __forgeone_init() -> i32 {
                $crate::export::status("init", <$plugin as $crate::Plugin>::init())
            }
            #[export_name = "start"]
            extern "C" fn __forgeone_start() -> i32 {
                $crate::export::status("start", <$plugin as $crate::Plugin>::start())
            }
            #[export_name = "stop"]
            extern "C" fn __forgeone_stop() -> i32 {
                $crate::export::status("stop", <$plugin as $crate::Plugin>::stop())
            }
            #[export_name = "pause"]
            extern "C" fn __forgeone_pause() -> i32 {
                $crate::export::status("pause", <$plugin as $crate::Plugin>::pause())
            }
            #[export_name = "resume"]
            extern "C" fn __forgeone_resume() -> i32 {
                $crate::export::status("resume", <$plugin as $crate::Plugin>::resume())
            }
            #[export_name = "unload"]
            extern "C" fn __forgeone_unload() -> i32 {
                $crate::export::status("unload", <$plugin as $crate::Plugin>::unload())
            }
        };
    };
}

/// Export `alloc` and `handle`, serving `handle` with `fn(&[u8]) -> Result<Vec<u8>>`:
/// `forgeone_sdk::export_handle!(respond);`
#[macro_export]
macro_rules! export_handle {
    ($handler:path) => {
        const _: () = {
            #[export_name = "alloc"]
            extern "C" fn __forgeone_alloc(len: i32) -> i32 {
                $crate::export::alloc(len)
            }
            #[export_name = "handle"]
            extern "C" fn __forgeone_handle(ptr: i32, len: i32) -> i32 {
                unsafe { $crate::export::serve(ptr, len, $handler) }
            }
        };
    };
}

/// Export a named function (listed in the manifest's `functions`), same conventions as
/// `handle`: `forgeone_sdk::export_function!(greet, greet_impl);` exports `greet`. It uses
/// the `alloc` that [`export_handle!`](crate::export_handle) exports.
#[macro_export]
macro_rules! export_function {
    ($name:ident, $handler:path) => {
        const _: () = {
            #[export_name = stringify!($name)]
            extern "C" fn __forgeone_function(ptr: i32, len: i32) -> i32 {
                unsafe { $crate::export::serve(ptr, len, $handler) }
            }
        };
    };
}

/// Export `tick` (called every `tick_interval_ms`): `forgeone_sdk::export_tick!(on_tick);`
/// with `fn() -> Result<()>`.
#[macro_export]
macro_rules! export_tick {
    ($handler:path) => {
        const _: () = {
            #[export_name = "tick"]
            extern "C" fn __forgeone_tick() -> i32 {
                $crate::export::status("tick", $handler())
            }
        };
    };
}
