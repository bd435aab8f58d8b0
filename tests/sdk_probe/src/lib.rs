//! Drives the SDK's wrappers from `handle` inputs, one command per call (space-separated):
//!
//! | input | output |
//! | --- | --- |
//! | `config KEY` | `some:VALUE`, `none` or `err:STATUS` |
//! | `config-int KEY` | `int:N` or `err:STATUS` |
//! | `metric OP NAME LABELS VALUE` | `ok` or `err:STATUS` (OP add/set/observe; LABELS `a=b,c=d` or `-`) |
//! | `http METHOD URL [BODY]` | `STATUS|content-type|BODY` or `err:STATUS` (sends `x-token: {{secret:tok}}`) |
//! | `http-cap N URL` | the same with `max_response(N)` |
//! | `fail` | status 7, output `failed on purpose` |
//!
//! Named function `greet` answers `hi INPUT`; `tick` always succeeds.

use forgeone_sdk::{self as fo, config, http, metrics, Plugin};

struct Probe;
impl Plugin for Probe {}

fn err(e: fo::Error) -> String {
    format!("err:{}", e.status())
}

fn run(input: &[u8]) -> fo::Result<Vec<u8>> {
    let text = std::str::from_utf8(input)?;
    let words: Vec<&str> = text.splitn(4, ' ').collect();
    let out = match words.as_slice() {
        ["config", key] => match config::get(key) {
            Ok(Some(v)) => format!("some:{}", v),
            Ok(None) => "none".to_string(),
            Err(e) => err(e),
        },
        ["config-int", key] => match config::parse::<i64>(key) {
            Ok(Some(v)) => format!("int:{}", v),
            Ok(None) => "none".to_string(),
            Err(e) => err(e),
        },
        ["metric", op, name, rest] => {
            let (labels, value) = rest.split_once(' ').unwrap_or((rest, "1"));
            let pairs: Vec<(&str, &str)> = if labels == "-" {
                Vec::new()
            } else {
                labels.split(',').filter_map(|kv| kv.split_once('=')).collect()
            };
            let v: f64 = value.parse().unwrap_or(f64::NAN);
            let result = match *op {
                "add" => metrics::add(name, &pairs, v),
                "set" => metrics::set(name, &pairs, v),
                _ => metrics::observe(name, &pairs, v),
            };
            match result {
                Ok(()) => "ok".to_string(),
                Err(e) => err(e),
            }
        }
        ["http", method, url] | ["http", method, url, ""] => send(http::Request::new(method, url)),
        ["http", method, url, body] => send(http::Request::new(method, url).body(body.as_bytes())),
        ["http-cap", cap, url] => {
            send(http::Request::get(url).max_response(cap.parse().unwrap_or(0)))
        }
        ["fail"] => return Err(fo::Error::new(7, "failed on purpose")),
        _ => return Err(fo::Error::msg(format!("unknown command {:?}", text))),
    };
    Ok(out.into_bytes())
}

fn send(req: http::Request) -> String {
    match req.header("x-token", &http::secret_ref("tok")).send() {
        Ok(resp) => format!(
            "{}|{}|{}",
            resp.status,
            resp.header("Content-Type").unwrap_or("-"),
            String::from_utf8_lossy(&resp.body)
        ),
        Err(e) => err(e),
    }
}

fn greet(input: &[u8]) -> fo::Result<Vec<u8>> {
    Ok([b"hi ".as_slice(), input].concat())
}

fn tick() -> fo::Result<()> {
    Ok(())
}

fo::export_plugin!(Probe);
fo::export_handle!(run);
fo::export_function!(greet, greet);
fo::export_tick!(tick);
