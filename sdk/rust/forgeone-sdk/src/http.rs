//! Outbound HTTP (`http_request`): requests to the origins the manifest asks for in
//! `capabilities.http` and the operator grants; the host resolves, checks the address at
//! connect time and enforces the caps (docs/plugin-authoring.md, "Outbound HTTP").
//!
//! ```ignore
//! let resp = fo::http::Request::get("https://api.example.com:443/v1/items")
//!     .header("authorization", &format!("Bearer {}", fo::http::secret_ref("api-token")))
//!     .send()?;
//! if resp.status == 200 { /* resp.body */ }
//! ```
//!
//! The request is encoded as one line of JSON (method, url, headers), `\n`, then the body;
//! the response arrives the same way. A response larger than [`Request::max_response`]
//! is an error (the host made the request once; the SDK never repeats it by itself).

use crate::error::{Error, Result, TOO_LARGE};
use crate::raw;
use crate::wire::{self, Json};

/// Room for a response's head (status and headers), beside the body.
pub const HEAD_ROOM: usize = 16 * 1024;
/// The default cap on a response body a request accepts.
pub const DEFAULT_MAX_RESPONSE: usize = 64 * 1024;

/// `{{secret:NAME}}`: in a header value, the host puts the credential `NAME` there, only for
/// hosts the operator bound that credential to; the plugin never sees the value.
pub fn secret_ref(name: &str) -> String {
    format!("{{{{secret:{}}}}}", name)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The largest response body accepted (the buffer is this plus [`HEAD_ROOM`]).
    pub max_response: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Lower-case names, in the order the server sent them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn new(method: &str, url: &str) -> Self {
        Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            max_response: DEFAULT_MAX_RESPONSE,
        }
    }

    pub fn get(url: &str) -> Self {
        Request::new("GET", url)
    }

    pub fn post(url: &str, body: impl Into<Vec<u8>>) -> Self {
        Request::new("POST", url).body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn max_response(mut self, bytes: usize) -> Self {
        self.max_response = bytes;
        self
    }

    /// The wire form: the head as one line of JSON, `\n`, the body.
    pub fn encode(&self) -> Vec<u8> {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("[{},{}]", wire::quote(n), wire::quote(v)))
            .collect();
        let head = format!(
            "{{\"method\":{},\"url\":{},\"headers\":[{}]}}\n",
            wire::quote(&self.method),
            wire::quote(&self.url),
            headers.join(",")
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }

    /// Make the request (once). Host refusals come back as `Err` with their status:
    /// `-2` denied, `-3` invalid, `-4` busy, `-5` destination refused, `-6` timeout,
    /// `-7` too large, `-8` connection error.
    pub fn send(&self) -> Result<Response> {
        let req = self.encode();
        let mut buf = vec![0u8; self.max_response + HEAD_ROOM];
        let code = unsafe {
            raw::http_request(req.as_ptr(), req.len() as i32, buf.as_mut_ptr(), buf.len() as i32)
        };
        if code < 0 {
            return Err(Error::host("http_request", code));
        }
        let n = code as usize;
        if n > buf.len() {
            return Err(Error::new(
                TOO_LARGE,
                format!("http_request: response of {} bytes over the {} accepted", n, buf.len()),
            ));
        }
        buf.truncate(n);
        Response::decode(&buf)
    }
}

impl Response {
    /// Parse the wire form the host wrote.
    pub fn decode(data: &[u8]) -> Result<Response> {
        let bad = || Error::new(crate::error::INVALID, "http_request: malformed response head");
        let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let head = std::str::from_utf8(&data[..split]).map_err(|_| bad())?;
        let fields = match wire::parse(head) {
            Some(Json::Object(map)) => map,
            _ => return Err(bad()),
        };
        let status = match fields.get("status") {
            Some(Json::Number(n)) if *n >= 0.0 && *n < 1000.0 => *n as u16,
            _ => return Err(bad()),
        };
        let mut headers = Vec::new();
        if let Some(Json::List(items)) = fields.get("headers") {
            for item in items {
                match item {
                    Json::List(pair) => match pair.as_slice() {
                        [Json::Text(n), Json::Text(v)] => headers.push((n.clone(), v.clone())),
                        _ => return Err(bad()),
                    },
                    _ => return Err(bad()),
                }
            }
        }
        let body = data.get(split + 1..).unwrap_or(&[]).to_vec();
        Ok(Response { status, headers, body })
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn text(&self) -> Result<&str> {
        Ok(std::str::from_utf8(&self.body)?)
    }
}

/// `GET url` with the defaults.
pub fn get(url: &str) -> Result<Response> {
    Request::get(url).send()
}
