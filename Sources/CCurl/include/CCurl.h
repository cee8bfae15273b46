// The part of libcurl's API that keyassign's transport uses, loaded at run time.
//
// libcurl itself is on every machine that runs Swift on Linux (FoundationNetworking links
// libcurl.so.4), but its headers (libcurl4-openssl-dev) are not, and keyassign depends only on
// the system's libcurl, libssl and libsqlite3. So this target declares what it uses itself, with
// the values of curl 7.88's <curl/curl.h> (a stable ABI: soname 4 since 2006), opens libcurl with
// dlopen and hands Swift a small non-variadic API. Every function here is safe to call from any
// thread unless it says otherwise.
#ifndef KEYASSIGN_CCURL_H
#define KEYASSIGN_CCURL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Loads libcurl once per process and runs curl_global_init. 0 when ready; otherwise -1 with a
/// message (which library was missing, or which symbol) in `message`.
int ka_curl_load(char *message, size_t size);

/// curl_easy_strerror for a transfer's result code, loading libcurl first if no transport has;
/// NULL when libcurl cannot be loaded.
const char *ka_curl_strerror(int code);

/// One HTTP exchange slot: an easy handle, reused for request after request so that its
/// connection, DNS and TLS session caches (held by the multi handle) are reused too, plus the
/// buffers its callbacks fill. Used by one thread at a time (the transport's loop).
typedef struct ka_exchange ka_exchange;

/// A multi handle: the event loop that drives every exchange over at most `max_connections`
/// keep-alive connections. Only ka_multi_wakeup may be called from other threads.
typedef struct ka_multi ka_multi;

/// Fixed settings of a transport: every exchange gets them once.
typedef struct {
    const char *url;
    /// "Name: value" lines sent with every request (Content-Type, Authorization, ...).
    const char *const *headers;
    int header_count;
    long timeout_ms;
    long connect_timeout_ms;
    /// A PEM file of trust anchors for the server's certificate, or NULL for the system store.
    const char *ca_file;
    /// Reply bytes kept; the rest of a longer reply is read and dropped.
    size_t max_reply;
    /// Refuse libcurl's own resends with an unrewindable body even where the pre-request
    /// callback (libcurl 7.80+) would do (tests use it to cover older libcurls' path).
    int unrewindable_body;
} ka_transport_settings;

ka_multi *ka_multi_new(const ka_transport_settings *settings, long max_connections);
void ka_multi_free(ka_multi *multi);

/// Breaks a ka_multi_run wait from another thread (curl_multi_wakeup).
void ka_multi_wakeup(ka_multi *multi);

/// Does what can be done without blocking, then waits up to `timeout_ms` for sockets, a
/// timer or a wakeup. Returns the number of transfers still running, or -1 with `message`.
int ka_multi_run(ka_multi *multi, int timeout_ms, char *message, size_t size);

/// The next finished exchange (removed from the multi handle, ready to be reused), with its
/// curl result code, or NULL when none is waiting.
ka_exchange *ka_multi_next_done(ka_multi *multi, int *result);

/// A new idle exchange configured with the multi's settings; NULL when out of memory.
ka_exchange *ka_exchange_new(ka_multi *multi);
void ka_exchange_free(ka_exchange *exchange);

/// Starts one POST on an idle exchange: `extra_header` ("Idempotency-Key: ...") is sent on top
/// of the fixed headers. 0 when the transfer is running; otherwise a curl error code.
int ka_exchange_start(ka_multi *multi, ka_exchange *exchange, const char *extra_header,
                      const void *body, size_t body_length);

/// Stops a running exchange without completing it (curl_multi_remove_handle).
void ka_exchange_abort(ka_multi *multi, ka_exchange *exchange);

/// What came back. Valid after the exchange finished, until it is started again.
long ka_exchange_status(ka_exchange *exchange);
/// Bytes of request written to a connection (headers, or any of the body handed to libcurl):
/// 0 means the server cannot have seen it.
long ka_exchange_request_size(ka_exchange *exchange);
const uint8_t *ka_exchange_reply(ka_exchange *exchange, size_t *length);
/// The last Retry-After header of the final response, or NULL.
const char *ka_exchange_retry_after(ka_exchange *exchange);

/// Turns an idle exchange into a GET with no body (the key listing), for good: a reply longer
/// than the settings' max_reply then fails the transfer (see ka_exchange_reply_overflowed)
/// instead of being cut. 0 on success; otherwise a curl error code.
int ka_exchange_use_get(ka_exchange *exchange);
/// 1 when the last transfer was stopped because its reply exceeded max_reply.
int ka_exchange_reply_overflowed(ka_exchange *exchange);
/// Hands the reply buffer over to the caller, who frees it with free(); the exchange starts
/// its next reply from scratch. Spares a copy of a reply that may be hundreds of megabytes.
uint8_t *ka_exchange_take_reply(ka_exchange *exchange, size_t *length);

#ifdef __cplusplus
}
#endif

#endif
