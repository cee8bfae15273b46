#include "CCurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

// ---- the libcurl ABI used here (values from curl 7.88's curl.h and multi.h) ----

typedef void CURL;
typedef void CURLM;
struct curl_slist {
    char *data;
    struct curl_slist *next;
};
struct CURLMsg {
    int msg;
    CURL *easy_handle;
    union {
        void *whatever;
        int result;
    } data;
};

enum {
    CURLMSG_DONE = 1,
    CURL_GLOBAL_DEFAULT = 3,
    CURL_HTTP_VERSION_1_1 = 2,
    CURLMOPT_MAXCONNECTS = 6,
    CURLMOPT_MAX_HOST_CONNECTIONS = 7,
};
enum {
    CURLOPT_READDATA = 10009,
    CURLOPT_WRITEDATA = 10001,
    CURLOPT_URL = 10002,
    CURLOPT_WRITEFUNCTION = 20011,
    CURLOPT_READFUNCTION = 20012,
    CURLOPT_HTTPHEADER = 10023,
    CURLOPT_HEADERDATA = 10029,
    CURLOPT_POST = 47,
    CURLOPT_FOLLOWLOCATION = 52,
    CURLOPT_POSTFIELDSIZE = 60,
    CURLOPT_CAINFO = 10065,
    CURLOPT_CAPATH = 10097,
    CURLOPT_HEADERFUNCTION = 20079,
    CURLOPT_HTTPGET = 80,
    CURLOPT_HTTP_VERSION = 84,
    CURLOPT_NOSIGNAL = 99,
    CURLOPT_PRIVATE = 10103,
    CURLOPT_TCP_NODELAY = 121,
    CURLOPT_TIMEOUT_MS = 155,
    CURLOPT_CONNECTTIMEOUT_MS = 156,
    CURLOPT_COPYPOSTFIELDS = 10165,
    CURLOPT_PREREQFUNCTION = 20312,
    CURLOPT_PREREQDATA = 10313,
    CURLOPT_PROTOCOLS_STR = 10318,
};
enum {
    CURLE_ABORTED_BY_CALLBACK = 42,
    CURLE_SEND_FAIL_REWIND = 65,
};
enum {
    CURLINFO_PRIVATE = 0x100000 + 21,
    CURLINFO_RESPONSE_CODE = 0x200000 + 2,
    CURLINFO_REQUEST_SIZE = 0x200000 + 12,
};

typedef size_t (*curl_data_callback)(char *, size_t, size_t, void *);

static struct {
    int (*global_init)(long);
    const char *(*easy_strerror)(int);
    const char *(*multi_strerror)(int);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    int (*easy_setopt)(CURL *, int, ...);
    int (*easy_getinfo)(CURL *, int, ...);
    CURLM *(*multi_init)(void);
    int (*multi_cleanup)(CURLM *);
    int (*multi_setopt)(CURLM *, int, ...);
    int (*multi_add_handle)(CURLM *, CURL *);
    int (*multi_remove_handle)(CURLM *, CURL *);
    int (*multi_perform)(CURLM *, int *);
    int (*multi_poll)(CURLM *, void *, unsigned int, int, int *);
    int (*multi_wakeup)(CURLM *);
    struct CURLMsg *(*multi_info_read)(CURLM *, int *);
} curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512];

static void *resolve(void *library, const char *name) {
    void *symbol = dlsym(library, name);
    if (symbol == NULL && load_error[0] == 0) {
        snprintf(load_error, sizeof load_error, "libcurl has no %s (curl 7.68 or later is needed)", name);
    }
    return symbol;
}

static void load(void) {
#if defined(__APPLE__)
    static const char *const names[] = {"libcurl.4.dylib", "/usr/lib/libcurl.4.dylib", NULL};
#else
    static const char *const names[] = {"libcurl.so.4", "libcurl.so", NULL};
#endif
    void *library = NULL;
    for (int i = 0; names[i] != NULL && library == NULL; i++) {
        library = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    }
    if (library == NULL) {
        const char *why = dlerror();
        snprintf(load_error, sizeof load_error, "cannot load libcurl (%s): %s", names[0],
                 why ? why : "not found");
        return;
    }
    curl.global_init = (int (*)(long))resolve(library, "curl_global_init");
    curl.easy_strerror = (const char *(*)(int))resolve(library, "curl_easy_strerror");
    curl.multi_strerror = (const char *(*)(int))resolve(library, "curl_multi_strerror");
    curl.easy_init = (CURL * (*)(void)) resolve(library, "curl_easy_init");
    curl.easy_cleanup = (void (*)(CURL *))resolve(library, "curl_easy_cleanup");
    curl.easy_setopt = (int (*)(CURL *, int, ...))resolve(library, "curl_easy_setopt");
    curl.easy_getinfo = (int (*)(CURL *, int, ...))resolve(library, "curl_easy_getinfo");
    curl.multi_init = (CURLM * (*)(void)) resolve(library, "curl_multi_init");
    curl.multi_cleanup = (int (*)(CURLM *))resolve(library, "curl_multi_cleanup");
    curl.multi_setopt = (int (*)(CURLM *, int, ...))resolve(library, "curl_multi_setopt");
    curl.multi_add_handle = (int (*)(CURLM *, CURL *))resolve(library, "curl_multi_add_handle");
    curl.multi_remove_handle = (int (*)(CURLM *, CURL *))resolve(library, "curl_multi_remove_handle");
    curl.multi_perform = (int (*)(CURLM *, int *))resolve(library, "curl_multi_perform");
    curl.multi_poll = (int (*)(CURLM *, void *, unsigned int, int, int *))resolve(library, "curl_multi_poll");
    curl.multi_wakeup = (int (*)(CURLM *))resolve(library, "curl_multi_wakeup");
    curl.multi_info_read = (struct CURLMsg * (*)(CURLM *, int *)) resolve(library, "curl_multi_info_read");
    if (load_error[0] != 0) return;
    int code = curl.global_init(CURL_GLOBAL_DEFAULT);
    if (code != 0) {
        snprintf(load_error, sizeof load_error, "curl_global_init failed: %s", curl.easy_strerror(code));
    }
}

int ka_curl_load(char *message, size_t size) {
    pthread_once(&load_once, load);
    if (load_error[0] == 0) return 0;
    if (message != NULL && size > 0) snprintf(message, size, "%s", load_error);
    return -1;
}

// Called by code that only describes a result (tests, reports) and may run before any transport
// has loaded libcurl, so it loads it itself; NULL when libcurl cannot be loaded.
const char *ka_curl_strerror(int code) {
    if (ka_curl_load(NULL, 0) != 0) return NULL;
    return curl.easy_strerror(code);
}

// ---- the transport ----

struct ka_multi {
    CURLM *handle;
    char *url;
    char *ca_file;
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_reply;
    int unrewindable_body;
    // Built here rather than with curl_slist_append: libcurl only reads the list, and each
    // exchange chains its one per-request header in front of it without copying.
    struct curl_slist *fixed_headers;
};

struct ka_exchange {
    CURL *handle;
    struct curl_slist extra_header;
    // How a hidden resend is refused (see on_prerequest and on_body_read).
    int guard_by_prerequest;
    int requests_issued;
    uint8_t *body;
    size_t body_length;
    size_t body_capacity;
    size_t body_offset;
    uint8_t *reply;
    size_t reply_length;
    size_t reply_capacity;
    size_t max_reply;
    // A GET (the key listing): no body, and a reply longer than max_reply fails the transfer
    // instead of being cut, since half a listing is no listing.
    int is_get;
    int overflowed;
    char retry_after[128];  // empty: no Retry-After header
};

static void free_headers(struct curl_slist *list) {
    while (list != NULL) {
        struct curl_slist *next = list->next;
        free(list->data);
        free(list);
        list = next;
    }
}

ka_multi *ka_multi_new(const ka_transport_settings *settings, long max_connections) {
    if (ka_curl_load(NULL, 0) != 0) return NULL;
    ka_multi *multi = calloc(1, sizeof *multi);
    if (multi == NULL) return NULL;
    multi->handle = curl.multi_init();
    multi->url = strdup(settings->url);
    multi->ca_file = settings->ca_file ? strdup(settings->ca_file) : NULL;
    multi->timeout_ms = settings->timeout_ms;
    multi->connect_timeout_ms = settings->connect_timeout_ms;
    multi->max_reply = settings->max_reply;
    multi->unrewindable_body = settings->unrewindable_body;
    struct curl_slist **tail = &multi->fixed_headers;
    int ok = multi->handle != NULL && multi->url != NULL && (settings->ca_file == NULL || multi->ca_file != NULL);
    for (int i = 0; ok && i < settings->header_count; i++) {
        struct curl_slist *node = calloc(1, sizeof *node);
        if (node == NULL || (node->data = strdup(settings->headers[i])) == NULL) {
            free(node);
            ok = 0;
            break;
        }
        *tail = node;
        tail = &node->next;
    }
    if (!ok) {
        ka_multi_free(multi);
        return NULL;
    }
    curl.multi_setopt(multi->handle, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections);
    curl.multi_setopt(multi->handle, CURLMOPT_MAXCONNECTS, max_connections);
    return multi;
}

void ka_multi_free(ka_multi *multi) {
    if (multi == NULL) return;
    if (multi->handle != NULL) curl.multi_cleanup(multi->handle);
    free_headers(multi->fixed_headers);
    free(multi->url);
    free(multi->ca_file);
    free(multi);
}

void ka_multi_wakeup(ka_multi *multi) { curl.multi_wakeup(multi->handle); }

int ka_multi_run(ka_multi *multi, int timeout_ms, char *message, size_t size) {
    int code = curl.multi_poll(multi->handle, NULL, 0, timeout_ms, NULL);
    int running = 0;
    if (code == 0) code = curl.multi_perform(multi->handle, &running);
    if (code != 0) {
        if (message != NULL && size > 0) snprintf(message, size, "%s", curl.multi_strerror(code));
        return -1;
    }
    return running;
}

ka_exchange *ka_multi_next_done(ka_multi *multi, int *result) {
    int waiting = 0;
    struct CURLMsg *message;
    while ((message = curl.multi_info_read(multi->handle, &waiting)) != NULL) {
        if (message->msg != CURLMSG_DONE) continue;
        CURL *handle = message->easy_handle;
        *result = message->data.result;
        char *pointer = NULL;
        curl.easy_getinfo(handle, CURLINFO_PRIVATE, &pointer);
        curl.multi_remove_handle(multi->handle, handle);
        ka_exchange *exchange = (ka_exchange *)pointer;
        // Both guards end a refused resend with the same code.
        if (exchange->requests_issued > 1 && *result == CURLE_ABORTED_BY_CALLBACK) *result = CURLE_SEND_FAIL_REWIND;
        return exchange;
    }
    return NULL;
}

static size_t on_reply(char *data, size_t size, size_t count, void *user) {
    ka_exchange *exchange = user;
    size_t length = size * count;
    size_t room = exchange->max_reply - exchange->reply_length;
    if (exchange->is_get && length > room) {
        exchange->overflowed = 1;
        return 0;  // libcurl fails the transfer with CURLE_WRITE_ERROR
    }
    size_t take = length < room ? length : room;
    if (take > 0) {
        size_t needed = exchange->reply_length + take;
        if (needed > exchange->reply_capacity) {
            size_t capacity = exchange->reply_capacity ? exchange->reply_capacity : 1024;
            while (capacity < needed) capacity *= 2;
            if (capacity > exchange->max_reply) capacity = exchange->max_reply;
            uint8_t *grown = realloc(exchange->reply, capacity);
            if (grown == NULL) return 0;  // libcurl fails the transfer with CURLE_WRITE_ERROR
            exchange->reply = grown;
            exchange->reply_capacity = capacity;
        }
        memcpy(exchange->reply + exchange->reply_length, data, take);
        exchange->reply_length += take;
    }
    return length;
}

// When a reused keep-alive connection dies before any reply, libcurl sends the request again
// on a new connection by itself. A POST here is not idempotent: the server may have processed
// the first copy (it assigns, then the connection drops), and a hidden resend would turn its
// 800 into an 801 that the runner could not tell from a real rejection. So the second issue of
// a request within one transfer is refused and the transfer fails (reported as
// CURLE_SEND_FAIL_REWIND, "maybe sent"). libcurl 7.80+ calls the pre-request callback before
// every issue of the request; with an older libcurl the body goes through a read callback with
// no seek callback instead, which libcurl cannot rewind for a resend (measured: ~15 % slower,
// since headers and body then leave in separate writes).
static int on_prerequest(void *user, char *remote_ip, char *local_ip, int remote_port, int local_port) {
    (void)remote_ip, (void)local_ip, (void)remote_port, (void)local_port;
    ka_exchange *exchange = user;
    exchange->requests_issued += 1;
    return exchange->requests_issued > 1 ? 1 : 0;  // CURL_PREREQFUNC_ABORT : CURL_PREREQFUNC_OK
}

static size_t on_body_read(char *buffer, size_t size, size_t count, void *user) {
    ka_exchange *exchange = user;
    size_t room = size * count;
    size_t left = exchange->body_length - exchange->body_offset;
    size_t take = left < room ? left : room;
    memcpy(buffer, exchange->body + exchange->body_offset, take);
    exchange->body_offset += take;
    return take;
}

static size_t on_header(char *data, size_t size, size_t count, void *user) {
    ka_exchange *exchange = user;
    size_t length = size * count;
    // A new status line starts a new header block (after a 1xx): forget the earlier one's.
    if (length >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        exchange->retry_after[0] = 0;
    } else if (length > 12 && strncasecmp(data, "retry-after:", 12) == 0) {
        size_t start = 12, end = length;
        while (start < end && (data[start] == ' ' || data[start] == '\t')) start++;
        while (end > start && (data[end - 1] == '\r' || data[end - 1] == '\n' || data[end - 1] == ' ' || data[end - 1] == '\t')) end--;
        size_t n = end - start;
        if (n >= sizeof exchange->retry_after) n = sizeof exchange->retry_after - 1;
        memcpy(exchange->retry_after, data + start, n);
        exchange->retry_after[n] = 0;
    }
    return length;
}

ka_exchange *ka_exchange_new(ka_multi *multi) {
    ka_exchange *exchange = calloc(1, sizeof *exchange);
    if (exchange == NULL) return NULL;
    exchange->handle = curl.easy_init();
    if (exchange->handle == NULL) {
        free(exchange);
        return NULL;
    }
    exchange->max_reply = multi->max_reply;
    CURL *h = exchange->handle;
    curl.easy_setopt(h, CURLOPT_URL, multi->url);
    curl.easy_setopt(h, CURLOPT_PRIVATE, (void *)exchange);
    curl.easy_setopt(h, CURLOPT_WRITEFUNCTION, (curl_data_callback)on_reply);
    curl.easy_setopt(h, CURLOPT_WRITEDATA, (void *)exchange);
    typedef int (*prerequest_callback)(void *, char *, char *, int, int);
    exchange->guard_by_prerequest =
        !multi->unrewindable_body &&
        curl.easy_setopt(h, CURLOPT_PREREQFUNCTION, (prerequest_callback)on_prerequest) == 0 &&
        curl.easy_setopt(h, CURLOPT_PREREQDATA, (void *)exchange) == 0;
    if (!exchange->guard_by_prerequest) {
        curl.easy_setopt(h, CURLOPT_READFUNCTION, (curl_data_callback)on_body_read);
        curl.easy_setopt(h, CURLOPT_READDATA, (void *)exchange);
    }
    curl.easy_setopt(h, CURLOPT_HEADERFUNCTION, (curl_data_callback)on_header);
    curl.easy_setopt(h, CURLOPT_HEADERDATA, (void *)exchange);
    // Signals are the runner's (SIGTERM drains the run); libcurl must not use SIGALRM for DNS timeouts.
    curl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl.easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl.easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl.easy_setopt(h, CURLOPT_POST, 1L);
    // A redirected POST is not the call we meant to make: the 3xx comes back as it is.
    curl.easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl.easy_setopt(h, CURLOPT_TIMEOUT_MS, multi->timeout_ms);
    if (multi->connect_timeout_ms > 0) curl.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, multi->connect_timeout_ms);
    if (multi->ca_file != NULL) {
        // Only that file: Debian's libcurl would otherwise also trust /etc/ssl/certs (CAPATH).
        curl.easy_setopt(h, CURLOPT_CAINFO, multi->ca_file);
        curl.easy_setopt(h, CURLOPT_CAPATH, (char *)NULL);
    }
    return exchange;
}

void ka_exchange_free(ka_exchange *exchange) {
    if (exchange == NULL) return;
    curl.easy_cleanup(exchange->handle);
    free(exchange->extra_header.data);
    free(exchange->body);
    free(exchange->reply);
    free(exchange);
}

int ka_exchange_start(ka_multi *multi, ka_exchange *exchange, const char *extra_header, const void *body,
                      size_t body_length) {
    char *header = strdup(extra_header);
    if (header == NULL) return 27;  // CURLE_OUT_OF_MEMORY
    if (!exchange->guard_by_prerequest && body_length > exchange->body_capacity) {
        uint8_t *grown = realloc(exchange->body, body_length);
        if (grown == NULL) {
            free(header);
            return 27;
        }
        exchange->body = grown;
        exchange->body_capacity = body_length;
    }
    if (!exchange->guard_by_prerequest && body_length > 0) memcpy(exchange->body, body, body_length);
    exchange->body_length = body_length;
    exchange->body_offset = 0;
    exchange->requests_issued = 0;
    exchange->overflowed = 0;
    free(exchange->extra_header.data);
    exchange->extra_header.data = header;
    exchange->extra_header.next = multi->fixed_headers;
    exchange->reply_length = 0;
    exchange->retry_after[0] = 0;
    CURL *h = exchange->handle;
    int code = curl.easy_setopt(h, CURLOPT_HTTPHEADER, &exchange->extra_header);
    // The Content-Length, also for the read callback (without it libcurl would send chunked).
    if (code == 0 && !exchange->is_get) code = curl.easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body_length);
    if (code == 0 && !exchange->is_get && exchange->guard_by_prerequest) code = curl.easy_setopt(h, CURLOPT_COPYPOSTFIELDS, body);
    if (code == 0 && curl.multi_add_handle(multi->handle, h) != 0) code = 2;  // CURLE_FAILED_INIT
    return code;
}

void ka_exchange_abort(ka_multi *multi, ka_exchange *exchange) {
    curl.multi_remove_handle(multi->handle, exchange->handle);
}

long ka_exchange_status(ka_exchange *exchange) {
    long status = 0;
    curl.easy_getinfo(exchange->handle, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

long ka_exchange_request_size(ka_exchange *exchange) {
    long size = 0;
    curl.easy_getinfo(exchange->handle, CURLINFO_REQUEST_SIZE, &size);
    // Headers written count there; a body handed over counts too, whatever libcurl reports.
    if (size == 0 && (exchange->body_offset > 0 || exchange->requests_issued > 1)) size = (long)exchange->body_offset + 1;
    return size;
}

const uint8_t *ka_exchange_reply(ka_exchange *exchange, size_t *length) {
    *length = exchange->reply_length;
    return exchange->reply;
}

const char *ka_exchange_retry_after(ka_exchange *exchange) {
    return exchange->retry_after[0] != 0 ? exchange->retry_after : NULL;
}

int ka_exchange_use_get(ka_exchange *exchange) {
    exchange->is_get = 1;
    return curl.easy_setopt(exchange->handle, CURLOPT_HTTPGET, 1L);
}

int ka_exchange_reply_overflowed(ka_exchange *exchange) { return exchange->overflowed; }

uint8_t *ka_exchange_take_reply(ka_exchange *exchange, size_t *length) {
    uint8_t *reply = exchange->reply;
    *length = exchange->reply_length;
    exchange->reply = NULL;
    exchange->reply_length = 0;
    exchange->reply_capacity = 0;
    return reply;
}
