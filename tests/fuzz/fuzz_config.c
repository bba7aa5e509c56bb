/*
 * fuzz_config.c - libFuzzer target: any config rows through endpoint_build.
 *
 * The input splits on NUL into the cloud_id, then key and value in turns;
 * a one-byte key stands for one of the known keys (byte modulo their
 * number), so that the fuzzer reaches every option. The result must be an
 * endpoint whose header-bound values hold no line break, or an error line
 * that starts with "cloud_id=", holds no CR or LF, and does not show the
 * password. An error of the URL key is one the URL itself explains.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoint.h"
#include "store.h"
#include "transfer.h"

#define MAX_ROWS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const known_keys[] = {
	ENDPOINT_URL,
	ENDPOINT_POST_DATA,
	ENDPOINT_CONTENT_TYPE,
	ENDPOINT_CUSTOM_HEADERS,
	ENDPOINT_AUTH_USERNAME,
	ENDPOINT_AUTH_PASSWORD,
	ENDPOINT_ALLOW_INSECURE_AUTH,
	ENDPOINT_TIMEOUT,
	ENDPOINT_DISABLED,
	ENDPOINT_KEY_PREFIX,
	"otherSetting",
};

#define N_KEYS (sizeof(known_keys) / sizeof(known_keys[0]))

static void fuzz_assert(int ok, const char *what, const char *detail)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_config: %s: %s\n", what, detail ? detail : "");
	abort();
}

/* The value of key among the rows, NULL when absent. */
static const char *value_of(const struct config_row *rows, size_t count,
			    const char *key)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(rows[i].key, key) == 0)
			return rows[i].value;
	return NULL;
}

static int has_line_break(const char *text)
{
	return text != NULL && strpbrk(text, "\r\n") != NULL;
}

/* As endpoint_build flattens its error line. */
static void flatten(char *text)
{
	for (; *text != '\0'; text++)
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			*text = ' ';
}

/*
 * 1 when err is "cloud_id=C key=K: reason" for one of the candidate keys
 * and that reason does not hold the password. Only passwords with a
 * non-ASCII byte are judged, since the fixed reasons (all ASCII) may hold
 * a short password by chance; and not those with a star (the mask itself)
 * or a control character (flattened after masking).
 */
static int reason_hides(const char *err, const char *cloud_id,
			const struct config_row *rows, size_t count,
			const char *password)
{
	char prefix[ENDPOINT_ERROR_SIZE * 2];
	size_t i, n;

	/* endpoint.c leaves passwords shorter than six characters alone
	 * (REDACT_MIN_LEN): starring every such letter of a message would
	 * show more than it hides. */
	if (password == NULL || strlen(password) < 6 ||
	    strchr(password, '*') != NULL)
		return 1;
	for (i = 0, n = 0; password[i] != '\0'; i++) {
		if ((unsigned char)password[i] < 0x20 || password[i] == 0x7f)
			return 1;
		if ((unsigned char)password[i] >= 0x80)
			n++;
	}
	if (n == 0)
		return 1;
	for (i = 0; i < count + N_KEYS; i++) {
		const char *key = i < count ? rows[i].key : known_keys[i - count];

		snprintf(prefix, sizeof(prefix), "cloud_id=%s key=%s: ",
			 cloud_id, key);
		flatten(prefix);
		n = strlen(prefix);
		if (strncmp(err, prefix, n) == 0 &&
		    strstr(err + n, password) == NULL)
			return 1;
		/* A truncated error is all prefix. */
		if (strlen(err) < n && strncmp(err, prefix, strlen(err)) == 0)
			return 1;
	}
	return 0;
}

/*
 * 0 when err blames the URL although the URL is present, single and
 * valid: the failure belongs to another key.
 */
static int url_blame_fits(const char *err, const char *cloud_id,
			  const struct config_row *rows, size_t count,
			  const char *password)
{
	char prefix[ENDPOINT_ERROR_SIZE * 2], reason[ENDPOINT_ERROR_SIZE];
	const char *url = value_of(rows, count, ENDPOINT_URL);
	size_t n;

	snprintf(prefix, sizeof(prefix), "cloud_id=%s key=%s: ", cloud_id,
		 ENDPOINT_URL);
	flatten(prefix);
	n = strlen(prefix);
	/* A long cloud_id may have cut the reason short. */
	if (strlen(err) <= n || strncmp(err, prefix, n) != 0 ||
	    strlen(err) >= ENDPOINT_ERROR_SIZE - 1)
		return 1;
	/* The reason may have been masked where it holds the password (when
	 * the password's row came before the duplicate). */
	if (strcmp(err + n, "given twice") == 0)
		return 1;
	snprintf(reason, sizeof(reason), "given twice");
	if (password != NULL && password[0] != '\0')
		for (char *hit = reason;
		     (hit = strstr(hit, password)) != NULL;
		     hit += strlen(password))
			memset(hit, '*', strlen(password));
	if (url == NULL || strcmp(err + n, reason) == 0)
		return 1;
	/* A raw key such as "...Url: x" makes the same prefix. */
	for (size_t i = 0; i < count; i++) {
		if (strcmp(rows[i].key, ENDPOINT_URL) == 0)
			continue;
		snprintf(prefix, sizeof(prefix), "cloud_id=%s key=%s: ",
			 cloud_id, rows[i].key);
		flatten(prefix);
		if (strncmp(err, prefix, strlen(prefix)) == 0)
			return 1;
	}
	return transfer_check_url(url, reason, sizeof(reason)) != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config_row rows[MAX_ROWS];
	struct endpoint *ep = NULL;
	char err[ENDPOINT_ERROR_SIZE];
	char *copy, *parts[1 + 2 * MAX_ROWS];
	size_t i, n = 0, start = 0, count = 0;
	const char *password;
	char **lines = NULL;
	size_t nlines = 0;

	copy = malloc(size + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	for (i = 0; i <= size && n < 1 + 2 * MAX_ROWS; i++) {
		if (copy[i] != '\0')
			continue;
		parts[n++] = copy + start;
		start = i + 1;
	}
	for (i = 1; i + 1 < n; i += 2) {
		const char *key = parts[i];

		if (strlen(key) == 1)
			key = known_keys[(unsigned char)key[0] % N_KEYS];
		rows[count].cloud_id = parts[0];
		rows[count].key = (char *)key;
		rows[count].value = parts[i + 1];
		/* Parts are split at NULs: none is left inside a value. */
		rows[count].value_has_nul = 0;
		count++;
	}

	err[0] = '\0';
	password = value_of(rows, count, ENDPOINT_AUTH_PASSWORD);
	if (endpoint_build(parts[0], rows, count, 15000, &ep, err,
			   sizeof(err)) == 0) {
		fuzz_assert(ep != NULL && ep->tmpl != NULL &&
			    ep->transfer != NULL, "incomplete endpoint", NULL);
		fuzz_assert(strcmp(ep->cloud_id, parts[0]) == 0,
			    "endpoint of another cloud_id", ep->cloud_id);
		fuzz_assert(!has_line_break(value_of(rows, count, ENDPOINT_URL)),
			    "URL with a line break accepted", NULL);
		fuzz_assert(!has_line_break(value_of(rows, count,
						     ENDPOINT_CONTENT_TYPE)),
			    "content type with a line break accepted", NULL);
		fuzz_assert(!has_line_break(value_of(rows, count,
						     ENDPOINT_AUTH_USERNAME)),
			    "user name with a line break accepted", NULL);
		fuzz_assert(!has_line_break(password),
			    "password with a line break accepted", NULL);
		fuzz_assert(ep->timeout_ms >= 100 && ep->timeout_ms <= 600000,
			    "timeout out of range", NULL);
		if (value_of(rows, count, ENDPOINT_CUSTOM_HEADERS) != NULL) {
			fuzz_assert(endpoint_parse_headers(
					value_of(rows, count,
						 ENDPOINT_CUSTOM_HEADERS),
					&lines, &nlines, err, sizeof(err)) == 0,
				    "accepted headers do not parse", err);
			for (i = 0; i < nlines; i++)
				fuzz_assert(!has_line_break(lines[i]),
					    "header line with a line break",
					    NULL);
			endpoint_headers_free(lines, nlines);
		}
		endpoint_free(ep);
		free(copy);
		return 0;
	}
	fuzz_assert(ep == NULL, "failed build left an endpoint", NULL);
	fuzz_assert(strncmp(err, "cloud_id=", 9) == 0,
		    "error does not start with cloud_id=", err);
	fuzz_assert(!has_line_break(err), "error holds a line break", err);
	fuzz_assert(reason_hides(err, parts[0], rows, count, password),
		    "error shows the password", err);
	fuzz_assert(url_blame_fits(err, parts[0], rows, count, password),
		    "a valid URL blamed", err);
	free(copy);
	return 0;
}
