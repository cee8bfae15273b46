#include "CCurl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/resource.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/socket.h>
#include <time.h>

// The oldest libcurl keyassign builds against. CURLOPT_PROTOCOLS_STR (the only protocols a
// transfer may use: no redirect or URL can switch it to another) arrived in 7.85.0, and an older
// libcurl ignores an option it does not know only at run time; the pre-request callback that
// refuses hidden resends needs 7.80.0. Debian 12 ships 7.88.1. Transport/LibCurl.swift checks
// the library loaded at run time against the same number.
#if LIBCURL_VERSION_NUM < 0x075500
#error "keyassign needs libcurl 7.85.0 or later (include/curl): CURLOPT_PROTOCOLS_STR"
#endif

CURLcode ka_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode ka_easy_setopt_ptr(CURL *handle, CURLoption option, const void *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode ka_easy_setopt_write_func(CURL *handle, CURLoption option, curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode ka_easy_setopt_prereq_func(CURL *handle, CURLoption option, curl_prereq_callback value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode ka_easy_setopt_xferinfo_func(CURL *handle, CURLoption option, curl_xferinfo_callback value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode ka_easy_setopt_sockopt_func(CURL *handle, CURLoption option, curl_sockopt_callback value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode ka_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

CURLMcode ka_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

const curl_version_info_data *ka_curl_version_info(void) { return curl_version_info(CURLVERSION_NOW); }

size_t ka_on_reply(char *data, size_t size, size_t count, void *user) {
    ka_exchange_record *record = user;
    size_t length = size * count;
    size_t room = record->max_reply - record->reply_length;
    if (record->fail_on_overflow && length > room) {
        record->overflowed = 1;
        return 0;  // libcurl fails the transfer with CURLE_WRITE_ERROR
    }
    size_t take = length < room ? length : room;
    if (take > 0) {
        size_t needed = record->reply_length + take;
        if (needed > record->reply_capacity) {
            size_t capacity = record->reply_capacity ? record->reply_capacity : 1024;
            while (capacity < needed) capacity *= 2;
            if (capacity > record->max_reply) capacity = record->max_reply;
            uint8_t *grown = realloc(record->reply, capacity);
            if (grown == NULL) return 0;  // libcurl fails the transfer with CURLE_WRITE_ERROR
            record->reply = grown;
            record->reply_capacity = capacity;
        }
        memcpy(record->reply + record->reply_length, data, take);
        record->reply_length += take;
    }
    return length;
}

// When a reused keep-alive connection dies before any reply, libcurl sends the request again
// on a new connection by itself. A POST here is not idempotent: the server may have processed
// the first copy (it assigns, then the connection drops), and a hidden resend would turn its
// 800 into an 801 that the runner could not tell from a real rejection. libcurl calls this
// before every issue of the request, so the second issue within one transfer is refused and the
// transfer fails (CURLE_ABORTED_BY_CALLBACK, which the transport reports as
// CURLE_SEND_FAIL_REWIND, "maybe sent").
int ka_on_prerequest(void *user, char *remote_ip, char *local_ip, int remote_port, int local_port) {
    (void)remote_ip, (void)local_ip, (void)remote_port, (void)local_port;
    ka_exchange_record *record = user;
    record->requests_issued += 1;
    return record->requests_issued > 1 ? CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK;
}

// Copies the value of the header line `data` if its name (with the colon) is `name`: trimmed,
// cut to what `value` holds, NUL-terminated. Returns whether the name matched.
static int ka_header_value(const char *data, size_t length, const char *name, char *value, size_t capacity) {
    size_t name_length = strlen(name);
    if (length <= name_length || strncasecmp(data, name, name_length) != 0) return 0;
    size_t start = name_length, end = length;
    while (start < end && (data[start] == ' ' || data[start] == '\t')) start++;
    while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' ' || data[end - 1] == '\t')) end--;
    size_t n = end - start;
    if (n >= capacity) n = capacity - 1;
    memcpy(value, data + start, n);
    value[n] = 0;
    return 1;
}

size_t ka_on_header(char *data, size_t size, size_t count, void *user) {
    ka_exchange_record *record = user;
    size_t length = size * count;
    record->response_started = 1;
    // A new status line starts a new header block (after a 1xx): forget the earlier one's.
    if (length >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        record->retry_after[0] = 0;
        record->ratelimit_limit[0] = 0;
        record->ratelimit_remaining[0] = 0;
        record->ratelimit_reset[0] = 0;
    } else {
        // The first name that matches takes the line.
        (void)(ka_header_value(data, length, "retry-after:", record->retry_after, sizeof record->retry_after)
               || ka_header_value(data, length, "x-ratelimit-limit:", record->ratelimit_limit, sizeof record->ratelimit_limit)
               || ka_header_value(data, length, "x-ratelimit-remaining:", record->ratelimit_remaining, sizeof record->ratelimit_remaining)
               || ka_header_value(data, length, "x-ratelimit-reset:", record->ratelimit_reset, sizeof record->ratelimit_reset));
    }
    return length;
}

int ka_forbid_core_dumps(void) {
    struct rlimit none = {0, 0};
    if (setrlimit(RLIMIT_CORE, &none) != 0) return errno;
#ifdef __linux__
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return errno;
#endif
    return 0;
}

int64_t ka_monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

// libcurl calls this at least once a second while a transfer runs, answered or idle, so a
// server that accepts the connection and never answers is cut at the deadline (the transfer
// fails with CURLE_ABORTED_BY_CALLBACK), however long the whole transfer may take.
int ka_on_progress(void *user, curl_off_t download_total, curl_off_t download_now, curl_off_t upload_total,
                   curl_off_t upload_now) {
    (void)download_total, (void)download_now, (void)upload_total, (void)upload_now;
    ka_exchange_record *record = user;
    if (record->first_byte_deadline_ms == 0 || record->response_started) return 0;
    return ka_monotonic_ms() >= record->first_byte_deadline_ms ? 1 : 0;
}

// An abortive close: with SO_LINGER {on, 0 s}, close(2) (by libcurl, or by the kernel when the
// process is killed) drops the socket's unsent and unacknowledged data and sends a RST, instead
// of a FIN after the kernel has kept retransmitting the request for up to ~15 minutes
// (tcp_retries2). Without it, a request written during a partition reached the server after the
// partition healed, long after its run had timed it out or died. A completed reply has been read
// whole before libcurl closes the connection, so nothing keyassign waits for is lost.
int ka_on_sockopt(void *unused, curl_socket_t socket, curlsocktype purpose) {
    (void)unused;
    if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKOPT_OK;
    struct linger abortive = {.l_onoff = 1, .l_linger = 0};
    // A socket that refuses the option is used as it is: the request is still bounded by the
    // race rule's margin (docs/states.md), only not by this.
    (void)setsockopt(socket, SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
    return CURL_SOCKOPT_OK;
}
