// What Swift cannot do with libcurl's own API (<curl/curl.h>, curl 7.88.1's headers in include/curl):
// call the variadic curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo, so each kind of
// value gets a typed wrapper (the pattern of swift-corelibs-foundation's CFURLSessionInterface),
// and the callbacks libcurl runs during a transfer, which fill an exchange's record. Everything
// else (handles, the multi loop, the options themselves) is in Transport/, in Swift.
#ifndef KEYASSIGN_CCURL_H
#define KEYASSIGN_CCURL_H

#include "curl/curl.h"
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

CURLcode ka_easy_setopt_long(CURL *handle, CURLoption option, long value);
/// Strings (libcurl copies them), data pointers handed to callbacks, and lists.
CURLcode ka_easy_setopt_ptr(CURL *handle, CURLoption option, const void *value);
/// CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION, which share a signature.
CURLcode ka_easy_setopt_write_func(CURL *handle, CURLoption option, curl_write_callback value);
CURLcode ka_easy_setopt_prereq_func(CURL *handle, CURLoption option, curl_prereq_callback value);
CURLcode ka_easy_setopt_xferinfo_func(CURL *handle, CURLoption option, curl_xferinfo_callback value);
CURLcode ka_easy_setopt_sockopt_func(CURL *handle, CURLoption option, curl_sockopt_callback value);
CURLcode ka_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLMcode ka_multi_setopt_long(CURLM *handle, CURLMoption option, long value);
/// curl_version_info(CURLVERSION_NOW): the macro names an enum constant, which Swift cannot import.
const curl_version_info_data *ka_curl_version_info(void);

/// What the callbacks of one exchange record about its current transfer. Used by one thread at
/// a time: the transport's loop, and libcurl's callbacks inside it.
typedef struct {
    /// Reply bytes kept, at most `max_reply`; the rest of a longer reply is read and dropped.
    uint8_t *reply;
    size_t reply_length;
    size_t reply_capacity;
    size_t max_reply;
    /// The last Retry-After header of the final response; empty when there was none.
    char retry_after[128];
    /// Laravel's throttle headers of the final response (X-RateLimit-Limit, -Remaining,
    /// -Reset), as sent; empty when there were none.
    char ratelimit_limit[32];
    char ratelimit_remaining[32];
    char ratelimit_reset[32];
    /// How many times libcurl has issued the request in this transfer (see ka_on_prerequest).
    int requests_issued;
    /// Set for the key listing: a reply longer than `max_reply` fails the transfer (and sets
    /// `overflowed`) instead of being cut, since half a listing is no listing.
    int fail_on_overflow;
    int overflowed;
    /// libcurl's own words for a failed transfer (CURLOPT_ERRORBUFFER): which certificate check
    /// failed, for a message that tells the operator what to fix. Never the request itself.
    char error[CURL_ERROR_SIZE];
    /// CLOCK_MONOTONIC milliseconds by which the response must have begun (its first header
    /// line), or 0 for no such bound: the key listing's waiting counts against --max-wait,
    /// its transfer does not (see ka_on_progress).
    int64_t first_byte_deadline_ms;
    /// A header line of the response has arrived.
    int response_started;
} ka_exchange_record;

/// CURLOPT_WRITEFUNCTION, with the exchange's record as CURLOPT_WRITEDATA.
size_t ka_on_reply(char *data, size_t size, size_t count, void *record);
/// CURLOPT_HEADERFUNCTION, with the exchange's record as CURLOPT_HEADERDATA.
size_t ka_on_header(char *data, size_t size, size_t count, void *record);
/// CURLOPT_PREREQFUNCTION, with the exchange's record as CURLOPT_PREREQDATA: refuses a second
/// issue of the request within one transfer.
int ka_on_prerequest(void *record, char *remote_ip, char *local_ip, int remote_port, int local_port);
/// CURLOPT_XFERINFOFUNCTION, with the exchange's record as CURLOPT_XFERINFODATA: aborts a
/// transfer whose response has not begun by `first_byte_deadline_ms`.
int ka_on_progress(void *record, curl_off_t download_total, curl_off_t download_now, curl_off_t upload_total,
                   curl_off_t upload_now);
/// CURLOPT_SOCKOPTFUNCTION: sets SO_LINGER to 0 on every transfer socket, so that closing it
/// (libcurl giving up, or the process dying) discards what the kernel has not yet delivered
/// instead of retransmitting it for minutes: a request keyassign gave up on cannot arrive later.
int ka_on_sockopt(void *unused, curl_socket_t socket, curlsocktype purpose);
/// CLOCK_MONOTONIC in milliseconds, the clock of `first_byte_deadline_ms`.
int64_t ka_monotonic_ms(void);

/// Not libcurl, but C that Swift cannot call either (prctl is variadic): makes the process
/// non-dumpable (PR_SET_DUMPABLE 0: no core file, no ptrace by other processes of the same
/// user, /proc/PID owned by root) and sets RLIMIT_CORE to 0. Returns 0, or the errno of the
/// call that failed. Linux only; elsewhere only the rlimit is set.
int ka_forbid_core_dumps(void);

#ifdef __cplusplus
}
#endif

#endif
