#ifndef KEYASSIGN_CZLIB_SHIM_H
#define KEYASSIGN_CZLIB_SHIM_H
#include <zlib.h>
#endif
