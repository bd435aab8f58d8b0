/* A forgeoned plugin in C: greets its input and counts the calls in kv at stop. */
#include "forgeone.h"

static int64_t calls;

FORGEONE_DEFINE_ALLOC()

FORGEONE_EXPORT("init") int32_t init(void) { return 0; }

FORGEONE_EXPORT("start") int32_t start(void) {
    fo_log_str(FO_INFO, "hello-c started");
    return 0;
}

FORGEONE_EXPORT("stop") int32_t stop(void) {
    char digits[24];
    int32_t n = 0;
    int64_t v = calls;
    char tmp[24];
    int32_t t = 0;
    do {
        tmp[t++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (t > 0) digits[n++] = tmp[--t];
    fo_kv_set("calls", 5, digits, n); /* denied without capabilities.kv: fine */
    return 0;
}

FORGEONE_EXPORT("pause") int32_t pause(void) { return 0; }
FORGEONE_EXPORT("resume") int32_t resume(void) { return 0; }
FORGEONE_EXPORT("unload") int32_t unload(void) { return 0; }

FORGEONE_EXPORT("handle") int32_t handle(const uint8_t *input, int32_t len) {
    calls++;
    if (len == 5 && input[0] == '!' && input[1] == 'f' && input[2] == 'a' && input[3] == 'i' &&
        input[4] == 'l') {
        fo_output_str("failure requested");
        return 2; /* an application error: the caller gets the output and status 2 */
    }
    fo_output_str("hello from C, ");
    fo_output(input, len);
    return 0;
}
