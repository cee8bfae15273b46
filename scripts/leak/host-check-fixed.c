// DIAGNOSTIC ONLY (LD_PRELOAD), never linked into keyassign: scripts/urlsession-leak.sh uses it
// to show where URLSession's per-request memory goes.
//
// A corrected copy of swift-corelibs-foundation's CFURLSessionCurlHostIsEqual (run by
// _EasyHandle.set(url:) for every HTTP(S) transfer): the shipped one releases its CURLU handle
// with curl_free(), which frees the handle but not the URL parts it parsed (scheme, host, port,
// path, query). This copy uses curl_url_cleanup(). FoundationNetworking calls the function
// through its PLT, so a definition loaded first replaces it. libcurl's functions are looked
// up at run time: only libcurl.so.4 is installed, not its headers.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>

typedef void CURLU;
enum { CURLUPART_URL = 0, CURLUPART_HOST = 5 };

bool CFURLSessionCurlHostIsEqual(const char *url, const char *expectedHost) {
    static CURLU *(*make)(void);
    static void (*cleanup)(CURLU *);
    static int (*set)(CURLU *, int, const char *, unsigned);
    static int (*get)(CURLU *, int, char **, unsigned);
    static void (*release)(void *);
    if (!make) {
        cleanup = dlsym(RTLD_DEFAULT, "curl_url_cleanup");
        set = dlsym(RTLD_DEFAULT, "curl_url_set");
        get = dlsym(RTLD_DEFAULT, "curl_url_get");
        release = dlsym(RTLD_DEFAULT, "curl_free");
        make = dlsym(RTLD_DEFAULT, "curl_url");
    }
    bool isEqual = false;
    CURLU *h = make();
    if (h && set(h, CURLUPART_URL, url, 0) == 0) {
        char *host = NULL;
        if (get(h, CURLUPART_HOST, &host, 0) == 0) {
            isEqual = strcmp(host, expectedHost) == 0;
            release(host);
        }
    }
    cleanup(h);
    return isEqual;
}
