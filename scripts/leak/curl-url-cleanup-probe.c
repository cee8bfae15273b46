// DIAGNOSTIC ONLY (LD_PRELOAD), never linked into keyassign: scripts/urlsession-leak.sh uses it
// to show where URLSession's per-request memory goes.
//
// swift-corelibs-foundation's CFURLSessionCurlHostIsEqual (called by _EasyHandle.set(url:) for
// every HTTP(S) transfer since the "URLSession and curl agree on the host" check, Swift 5.10)
// parses the URL with curl_url()/curl_url_set() and then releases the CURLU handle with
// curl_free() instead of curl_url_cleanup(): the handle's parsed parts (scheme, host, port,
// path, query) are never freed. This probe remembers the handles curl_url() returns and turns
// curl_free() on one of them into curl_url_cleanup(). If RSS then stops growing per request,
// that call is the leak.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>

#define SLOTS 4096
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *live[SLOTS];
static void *(*real_url)(void);
static void (*real_cleanup)(void *);
static void (*real_free)(void *);

static void resolve(void) {
    if (real_url) return;
    real_cleanup = dlsym(RTLD_NEXT, "curl_url_cleanup");
    real_free = dlsym(RTLD_NEXT, "curl_free");
    real_url = dlsym(RTLD_NEXT, "curl_url");
}

static void remember(void *handle) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SLOTS; i++) if (!live[i]) { live[i] = handle; break; }
    pthread_mutex_unlock(&lock);
}

static int forget(void *handle) {
    int found = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < SLOTS; i++) if (live[i] == handle) { live[i] = NULL; found = 1; break; }
    pthread_mutex_unlock(&lock);
    return found;
}

void *curl_url(void) { resolve(); void *h = real_url(); if (h) remember(h); return h; }
void curl_url_cleanup(void *h) { resolve(); if (h) forget(h); real_cleanup(h); }
void curl_free(void *p) { resolve(); if (p && forget(p)) real_cleanup(p); else real_free(p); }
