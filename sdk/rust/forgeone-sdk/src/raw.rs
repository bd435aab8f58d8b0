//! The raw imports of module `forgeone`, exactly as the daemon links them.
//!
//! Declaring an import costs nothing: only the functions a plugin really calls end up in its
//! import section (wasm-ld drops the rest), and importing a function the daemon does not know
//! is a load error. Prefer the safe wrappers of the crate root.

#[link(wasm_import_module = "forgeone")]
extern "C" {
    // ABI v1 (DESIGN.md section 3).
    pub fn log(level: i32, ptr: *const u8, len: i32) -> i32;
    pub fn env_get(key_ptr: *const u8, key_len: i32, buf_ptr: *mut u8, buf_len: i32) -> i32;
    pub fn secret_get(key_ptr: *const u8, key_len: i32, buf_ptr: *mut u8, buf_len: i32) -> i32;
    pub fn time_now_ms() -> i64;
    pub fn random_fill(ptr: *mut u8, len: i32) -> i32;
    pub fn kv_get(key_ptr: *const u8, key_len: i32, buf_ptr: *mut u8, buf_len: i32) -> i32;
    pub fn kv_set(key_ptr: *const u8, key_len: i32, val_ptr: *const u8, val_len: i32) -> i32;
    pub fn kv_delete(key_ptr: *const u8, key_len: i32) -> i32;
    pub fn output(ptr: *const u8, len: i32) -> i32;

    // Provider hooks (issue 13): per-plugin configuration and plugin metrics.
    pub fn config_get(key_ptr: *const u8, key_len: i32, buf_ptr: *mut u8, buf_len: i32) -> i32;
    pub fn metric_add(
        name_ptr: *const u8,
        name_len: i32,
        labels_ptr: *const u8,
        labels_len: i32,
        value: f64,
    ) -> i32;
    pub fn metric_set(
        name_ptr: *const u8,
        name_len: i32,
        labels_ptr: *const u8,
        labels_len: i32,
        value: f64,
    ) -> i32;
    pub fn metric_observe(
        name_ptr: *const u8,
        name_len: i32,
        labels_ptr: *const u8,
        labels_len: i32,
        value: f64,
    ) -> i32;

    // Outbound HTTP (issue 13).
    pub fn http_request(req_ptr: *const u8, req_len: i32, resp_ptr: *mut u8, resp_cap: i32)
        -> i32;
}
