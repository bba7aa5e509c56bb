/*
 * sign.c - Standard Webhooks signatures with OpenSSL's libcrypto.
 *
 * The only file that includes OpenSSL headers. Keys are decoded once, when
 * an app's config is built; signing an attempt then costs one HMAC per
 * secret and allocates only libcrypto's MAC context.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "sign.h"

#define SHA256_SIZE 32

struct sign_keys {
	EVP_MAC *mac;
	size_t count;
	size_t len[SIGN_MAX_SECRETS];
	unsigned char key[SIGN_MAX_SECRETS][SIGN_MAX_KEY];
};

static int is_base64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Room for the decoded text of the longest key, and a little more, so that
 * a key one byte too long is measured rather than refused as garbage. */
#define DECODED_SIZE (SIGN_MAX_KEY + 6)

/*
 * Decodes standard padded base64 of len characters into decoded. Returns
 * the number of bytes, or -1. EVP_DecodeBlock accepts more than it should
 * (inner whitespace) and counts padding as output, so the text is checked
 * strictly first and the padding subtracted.
 */
static int decode_key(const char *text, size_t len,
		      unsigned char decoded[DECODED_SIZE])
{
	size_t padding = 0;
	int n;

	if (len == 0 || len % 4 != 0 || len / 4 * 3 > DECODED_SIZE)
		return -1;
	if (text[len - 1] == '=')
		padding = text[len - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < len - padding; i++)
		if (!is_base64_char(text[i]))
			return -1;
	n = EVP_DecodeBlock(decoded, (const unsigned char *)text, (int)len);
	if (n < 0 || (size_t)n < padding)
		return -1;
	return n - (int)padding;
}

void sign_keys_free(struct sign_keys *keys)
{
	if (!keys)
		return;
	EVP_MAC_free(keys->mac);
	OPENSSL_cleanse(keys, sizeof(*keys));
	free(keys);
}

int sign_keys_new(const char *value, struct sign_keys **out, char *err,
		  size_t errlen)
{
	static const size_t prefix_len = sizeof(SIGN_SECRET_PREFIX) - 1;
	struct sign_keys *keys = NULL;
	unsigned char decoded[DECODED_SIZE];
	const char *p = value;
	int rc = -1;

	*out = NULL;
	keys = calloc(1, sizeof(*keys));
	if (!keys) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (p && *p) {
		size_t len, n = keys->count + 1;
		size_t key_len;
		int n_key;

		if (*p == ' ') {
			p++;
			continue;
		}
		len = strcspn(p, " ");
		if (keys->count == SIGN_MAX_SECRETS) {
			snprintf(err, errlen, "more than %d secrets",
				 SIGN_MAX_SECRETS);
			goto out;
		}
		if (len < prefix_len || memcmp(p, SIGN_SECRET_PREFIX, prefix_len)) {
			snprintf(err, errlen, "secret %zu does not start with "
				 "\"" SIGN_SECRET_PREFIX "\"", n);
			goto out;
		}
		n_key = decode_key(p + prefix_len, len - prefix_len, decoded);
		if (n_key < 0) {
			snprintf(err, errlen, "secret %zu: not base64 after \""
				 SIGN_SECRET_PREFIX "\"", n);
			goto out;
		}
		if (n_key < SIGN_MIN_KEY || n_key > SIGN_MAX_KEY) {
			snprintf(err, errlen, "secret %zu: %d bytes, not %d to %d",
				 n, n_key, SIGN_MIN_KEY, SIGN_MAX_KEY);
			goto out;
		}
		key_len = (size_t)n_key;
		memcpy(keys->key[keys->count], decoded, key_len);
		keys->len[keys->count++] = key_len;
		p += len;
	}
	if (keys->count == 0) {
		snprintf(err, errlen, "no secret (\"" SIGN_SECRET_PREFIX
			 "<base64>\", several separated by spaces)");
		goto out;
	}
	keys->mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	if (!keys->mac) {
		snprintf(err, errlen, "libcrypto has no HMAC");
		goto out;
	}
	*out = keys;
	keys = NULL;
	rc = 0;
out:
	OPENSSL_cleanse(decoded, sizeof(decoded));
	sign_keys_free(keys);
	return rc;
}

/* HMAC-SHA256 of "id.timestamp.body" with one key, into digest. */
static int hmac_message(EVP_MAC_CTX *ctx, const unsigned char *key,
			size_t key_len, const char *id, const char *timestamp,
			const char *body, size_t len,
			unsigned char digest[SHA256_SIZE])
{
	char digest_name[] = "SHA256";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						 digest_name, 0),
		OSSL_PARAM_construct_end(),
	};
	size_t out_len = 0;

	if (!EVP_MAC_init(ctx, key, key_len, params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)id, strlen(id)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)timestamp,
			    strlen(timestamp)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
	    (len > 0 && !EVP_MAC_update(ctx, (const unsigned char *)body, len)) ||
	    !EVP_MAC_final(ctx, digest, &out_len, SHA256_SIZE) ||
	    out_len != SHA256_SIZE)
		return -1;
	return 0;
}

int sign_signature(const struct sign_keys *keys, const char *id,
		   int64_t timestamp, const char *body, size_t len, char *out,
		   size_t outlen, char *err, size_t errlen)
{
	EVP_MAC_CTX *ctx = NULL;
	unsigned char digest[SHA256_SIZE];
	char stamp[24];
	size_t used = 0;
	int rc = -1;

	if (outlen < SIGN_SIGNATURE_SIZE) {
		snprintf(err, errlen, "signature buffer too small");
		goto out;
	}
	snprintf(stamp, sizeof(stamp), "%" PRId64, timestamp);
	ctx = EVP_MAC_CTX_new(keys->mac);
	if (!ctx) {
		snprintf(err, errlen, "EVP_MAC_CTX_new failed");
		goto out;
	}
	for (size_t i = 0; i < keys->count; i++) {
		if (hmac_message(ctx, keys->key[i], keys->len[i], id, stamp,
				 body, len, digest) != 0) {
			snprintf(err, errlen, "HMAC-SHA256 failed");
			goto out;
		}
		if (i > 0)
			out[used++] = ' ';
		memcpy(out + used, "v1,", 3);
		used += 3;
		/* 32 bytes become 44 characters and a terminator. */
		used += (size_t)EVP_EncodeBlock((unsigned char *)out + used,
						digest, SHA256_SIZE);
	}
	out[used] = '\0';
	rc = 0;
out:
	OPENSSL_cleanse(digest, sizeof(digest));
	EVP_MAC_CTX_free(ctx);
	return rc;
}
