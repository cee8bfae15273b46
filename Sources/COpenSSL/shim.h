#ifndef KEYASSIGN_COPENSSL_SHIM_H
#define KEYASSIGN_COPENSSL_SHIM_H
// Only OpenSSL 3 APIs are used; hiding the deprecated 1.x ones keeps them out of reach.
#define OPENSSL_API_COMPAT 30000
#define OPENSSL_NO_DEPRECATED
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/rand.h>

// Macros Swift cannot import, as functions.
static inline int keyassign_EVP_PKEY_CTX_set_rsa_keygen_bits(EVP_PKEY_CTX *ctx, int bits) {
    return EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits);
}
static inline long keyassign_BIO_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}
// EVP_PKEY_PUBLIC_KEY is an OR of other macros, which Swift does not import.
static inline int keyassign_EVP_PKEY_PUBLIC_KEY(void) {
    return EVP_PKEY_PUBLIC_KEY;
}
#endif
