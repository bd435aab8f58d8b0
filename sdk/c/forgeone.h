/* forgeone.h: the forgeoned plugin ABI for C (host module "forgeone").
 *
 * Build a plugin with Debian's clang and lld (packages `clang lld`), no libc:
 *
 *   clang --target=wasm32-unknown-unknown -nostdlib -O2 -Wl,--no-entry -Wl,--strip-all \
 *         -I path/to/sdk/c -o plugin.wasm plugin.c
 *
 * wasm-ld exports the linear memory as "memory" by default (there is no --export-memory
 * flag in lld 14); every export is marked in the source with FORGEONE_EXPORT("name"), so no
 * -Wl,--export flags are needed. Then `forgeonectl package plugin.wasm --manifest ...`.
 *
 * Only the imports a plugin calls end up in its module; calling one the daemon does not
 * provide is a load error. Results: >= 0 success (a length where it says so), else one of
 * FO_NOT_FOUND, FO_DENIED, FO_INVALID, FO_QUOTA; fo_http_request also FO_REFUSED, FO_TIMEOUT,
 * FO_TOO_LARGE, FO_CONNECTION (docs/plugin-authoring.md, "Outbound HTTP").
 */
#ifndef FORGEONE_H
#define FORGEONE_H

#include <stdint.h>

#define FO_NOT_FOUND (-1)
#define FO_DENIED (-2)
#define FO_INVALID (-3)
#define FO_QUOTA (-4)
/* http_request only */
#define FO_REFUSED (-5)     /* destination refused: address rules, a redirect hop not allowed */
#define FO_TIMEOUT (-6)     /* timeout_ms or the call's own deadline came first */
#define FO_TOO_LARGE (-7)   /* request or response body over the operator's cap */
#define FO_CONNECTION (-8)  /* name not resolved, connection/TLS error, malformed response */

enum fo_level { FO_DEBUG = 0, FO_INFO = 1, FO_NOTICE = 2, FO_WARNING = 3, FO_ERROR = 4 };

#define FORGEONE_IMPORT(name) __attribute__((import_module("forgeone"), import_name(name)))
#define FORGEONE_EXPORT(name) __attribute__((export_name(name)))

/* ABI v1 */
FORGEONE_IMPORT("log") int32_t fo_log(int32_t level, const void *ptr, int32_t len);
FORGEONE_IMPORT("env_get")
int32_t fo_env_get(const void *key, int32_t key_len, void *buf, int32_t buf_len);
FORGEONE_IMPORT("secret_get")
int32_t fo_secret_get(const void *key, int32_t key_len, void *buf, int32_t buf_len);
FORGEONE_IMPORT("time_now_ms") int64_t fo_time_now_ms(void);
FORGEONE_IMPORT("random_fill") int32_t fo_random_fill(void *ptr, int32_t len);
FORGEONE_IMPORT("kv_get")
int32_t fo_kv_get(const void *key, int32_t key_len, void *buf, int32_t buf_len);
FORGEONE_IMPORT("kv_set")
int32_t fo_kv_set(const void *key, int32_t key_len, const void *val, int32_t val_len);
FORGEONE_IMPORT("kv_delete") int32_t fo_kv_delete(const void *key, int32_t key_len);
FORGEONE_IMPORT("output") int32_t fo_output(const void *ptr, int32_t len);

/* Provider hooks (issue 13): per-plugin configuration, plugin metrics (labels: UTF-8
 * "name=value" lines joined by '\n'), outbound HTTP. */
FORGEONE_IMPORT("config_get")
int32_t fo_config_get(const void *key, int32_t key_len, void *buf, int32_t buf_len);
FORGEONE_IMPORT("metric_add")
int32_t fo_metric_add(const void *name, int32_t name_len, const void *labels, int32_t labels_len,
                      double value);
FORGEONE_IMPORT("metric_set")
int32_t fo_metric_set(const void *name, int32_t name_len, const void *labels, int32_t labels_len,
                      double value);
FORGEONE_IMPORT("metric_observe")
int32_t fo_metric_observe(const void *name, int32_t name_len, const void *labels,
                          int32_t labels_len, double value);
/* Outbound HTTP: the request is a JSON head {"method","url","headers":[[n,v]...]}, "\n", the
 * body; the response (copied only if it fits resp_cap; the length is returned either way) is
 * {"status","headers"}, "\n", the body. "{{secret:NAME}}" in a header value is filled in by
 * the host where the operator bound that credential to the request's host. */
FORGEONE_IMPORT("http_request")
int32_t fo_http_request(const void *req, int32_t req_len, void *resp, int32_t resp_cap);

/* Helpers for NUL-terminated strings. */
static inline int32_t fo_strlen(const char *s) {
    int32_t n = 0;
    while (s[n]) n++;
    return n;
}
static inline int32_t fo_log_str(enum fo_level level, const char *s) {
    return fo_log((int32_t)level, s, fo_strlen(s));
}
static inline int32_t fo_output_str(const char *s) { return fo_output(s, fo_strlen(s)); }
static inline int32_t fo_config_get_str(const char *key, void *buf, int32_t buf_len) {
    return fo_config_get(key, fo_strlen(key), buf, buf_len);
}
/* labels: "" or "name=value" lines joined by '\n' */
static inline int32_t fo_metric_add_str(const char *name, const char *labels, double value) {
    return fo_metric_add(name, fo_strlen(name), labels, fo_strlen(labels), value);
}
static inline int32_t fo_metric_set_str(const char *name, const char *labels, double value) {
    return fo_metric_set(name, fo_strlen(name), labels, fo_strlen(labels), value);
}
static inline int32_t fo_metric_observe_str(const char *name, const char *labels, double value) {
    return fo_metric_observe(name, fo_strlen(name), labels, fo_strlen(labels), value);
}

/* Memory for inputs. The host calls alloc(len), copies the input there and then calls
 * handle (or a named function) with it. FORGEONE_DEFINE_ALLOC() defines an `alloc` that
 * reuses one buffer, growing the linear memory when an input is larger than any before
 * (an input is valid only during its call). Use it once, in one source file. */
#define FORGEONE_DEFINE_ALLOC()                                                              \
    static uint8_t *fo_input_buf;                                                            \
    static uint32_t fo_input_cap;                                                            \
    FORGEONE_EXPORT("alloc") int32_t alloc(int32_t len) {                                    \
        if (len < 0) return 0;                                                               \
        if ((uint32_t)len > fo_input_cap) {                                                  \
            uint32_t pages = ((uint32_t)len + 65535u) / 65536u;                              \
            int32_t old = __builtin_wasm_memory_grow(0, pages);                              \
            if (old < 0) return 0;                                                           \
            fo_input_buf = (uint8_t *)(uintptr_t)((uint32_t)old * 65536u);                   \
            fo_input_cap = pages * 65536u;                                                   \
        }                                                                                    \
        return (int32_t)(uintptr_t)fo_input_buf;                                             \
    }

#endif /* FORGEONE_H */
