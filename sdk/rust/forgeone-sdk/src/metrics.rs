//! Plugin metrics (`metric_add`, `metric_set`, `metric_observe`): the metrics the manifest
//! declares, exported on the daemon's `/metrics` with the `plugin` label added.
//!
//! Labels are `(name, value)` pairs; the host receives them as UTF-8 `name=value` lines
//! joined by `\n`. An undeclared metric is refused with `-2`, an undeclared label or label
//! value with `-3`.

use crate::error::{check, Result};
use crate::raw;

type MetricFn = unsafe extern "C" fn(*const u8, i32, *const u8, i32, f64) -> i32;

/// The wire form of `labels`: `name=value` lines joined by `\n`.
pub fn encode_labels(labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn call(what: &str, f: MetricFn, name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
    let labels = encode_labels(labels);
    let code = unsafe {
        f(name.as_ptr(), name.len() as i32, labels.as_ptr(), labels.len() as i32, value)
    };
    check(what, code).map(|_| ())
}

/// Add `value` (>= 0) to a counter.
pub fn add(name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
    call("metric_add", raw::metric_add, name, labels, value)
}

/// Add 1 to a counter.
pub fn inc(name: &str, labels: &[(&str, &str)]) -> Result<()> {
    add(name, labels, 1.0)
}

/// Set a gauge.
pub fn set(name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
    call("metric_set", raw::metric_set, name, labels, value)
}

/// Record one observation in a histogram.
pub fn observe(name: &str, labels: &[(&str, &str)], value: f64) -> Result<()> {
    call("metric_observe", raw::metric_observe, name, labels, value)
}
