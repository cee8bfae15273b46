#ifndef KEYASSIGN_CLIBCURL_SHIM_H
#define KEYASSIGN_CLIBCURL_SHIM_H
#include <curl/curl.h>
#endif
