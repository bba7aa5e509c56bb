/*
 * sign.h - Standard Webhooks signatures (https://www.standardwebhooks.com).
 *
 * A signing secret is "whsec_" followed by the base64 of 24 to 64 random
 * bytes; several secrets separated by spaces let a receiver rotate its
 * secret without losing a request. The signature of one request is
 * "v1,<base64 of HMAC-SHA256(key, id "." timestamp "." body)>" per secret,
 * in the order configured, separated by single spaces. The only module that
 * includes OpenSSL headers. Secret text never appears in an error message.
 */
#ifndef SMARTRELAY_SIGN_H
#define SMARTRELAY_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SIGN_SECRET_PREFIX "whsec_"
#define SIGN_MAX_SECRETS 8
#define SIGN_MIN_KEY 24
#define SIGN_MAX_KEY 64
/* "v1," + 44 base64 characters + a space or the terminator, per secret. */
#define SIGN_SIGNATURE_SIZE (SIGN_MAX_SECRETS * 48)

struct sign_keys;

/*
 * Parses value (secrets separated by spaces). Returns 0 and new keys in
 * *out (free with sign_keys_free), or -1 with the reason in err: which
 * secret (by position) and why, never its text.
 */
int sign_keys_new(const char *value, struct sign_keys **out, char *err,
		  size_t errlen);

/* Wipes and frees the keys. NULL is a no-op. */
void sign_keys_free(struct sign_keys *keys);

/*
 * Writes the webhook-signature value of the message "id.timestamp.body"
 * (body of len bytes, may be NULL when len is 0) into out, NUL-terminated.
 * outlen must be at least SIGN_SIGNATURE_SIZE. Returns 0, or -1 with the
 * reason in err (a libcrypto failure).
 */
int sign_signature(const struct sign_keys *keys, const char *id,
		   int64_t timestamp, const char *body, size_t len, char *out,
		   size_t outlen, char *err, size_t errlen);

#endif
