/*
 * endpoint.c - the provisioning options of one app, checked and compiled.
 *
 * Owns every rule about config keys: the contract's (sections 2 and 7.13 to
 * 7.15) and those of the optional keys beyond it. Values are checked here;
 * the URL and the template are checked by the modules that will use them
 * (transfer, render), so that a config that passes here is one those
 * modules accept.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "endpoint.h"
#include "render.h"
#include "sign.h"
#include "timeutil.h"
#include "transfer.h"

/* A media type with its parameters is far shorter; the bound keeps the
 * Content-Type line within what the transfer module builds. */
#define CONTENT_TYPE_MAX 256

/* Contract 7.15: Timeout is 0.1 to 600 seconds. */
#define TIMEOUT_MIN_MS 100
#define TIMEOUT_MAX_MS 600000
/* Bounds of the delivery policy options: wide enough for any real need,
 * narrow enough that arithmetic on them cannot overflow. */
#define MAX_CONCURRENCY 10000
#define MAX_RATE 100000.0
#define MAX_ATTEMPTS 1000
#define SCHEDULE_MAX_MS ((int64_t)30 * 24 * 3600 * 1000)

enum option {
	OPT_URL = 0,
	OPT_POST_DATA,
	OPT_CONTENT_TYPE,
	OPT_CUSTOM_HEADERS,
	OPT_AUTH_USERNAME,
	OPT_AUTH_PASSWORD,
	OPT_ALLOW_INSECURE_AUTH,
	OPT_TIMEOUT,
	OPT_METHOD,
	OPT_SIGNING_SECRET,
	OPT_MAX_CONCURRENCY,
	OPT_MAX_RATE,
	OPT_MAX_ATTEMPTS,
	OPT_RETRY_SCHEDULE,
	OPT_DISABLED,
	OPT__COUNT
};

static const char *const option_keys[OPT__COUNT] = {
	[OPT_URL] = ENDPOINT_URL,
	[OPT_POST_DATA] = ENDPOINT_POST_DATA,
	[OPT_CONTENT_TYPE] = ENDPOINT_CONTENT_TYPE,
	[OPT_CUSTOM_HEADERS] = ENDPOINT_CUSTOM_HEADERS,
	[OPT_AUTH_USERNAME] = ENDPOINT_AUTH_USERNAME,
	[OPT_AUTH_PASSWORD] = ENDPOINT_AUTH_PASSWORD,
	[OPT_ALLOW_INSECURE_AUTH] = ENDPOINT_ALLOW_INSECURE_AUTH,
	[OPT_TIMEOUT] = ENDPOINT_TIMEOUT,
	[OPT_METHOD] = ENDPOINT_METHOD,
	[OPT_SIGNING_SECRET] = ENDPOINT_SIGNING_SECRET,
	[OPT_MAX_CONCURRENCY] = ENDPOINT_MAX_CONCURRENCY,
	[OPT_MAX_RATE] = ENDPOINT_MAX_RATE,
	[OPT_MAX_ATTEMPTS] = ENDPOINT_MAX_ATTEMPTS,
	[OPT_RETRY_SCHEDULE] = ENDPOINT_RETRY_SCHEDULE,
	[OPT_DISABLED] = ENDPOINT_DISABLED,
};

/* Headers the relay alone sets (contract 7.13): the framing of the request
 * and the body's type belong to the relay and libcurl. */
/* The contract's four, plus the two whose meaning the relay guarantees:
 * webhook-id is what receivers drop duplicates by, and Expect would bring
 * back the 100-continue round trip. */
static const char *const forbidden_headers[] = {
	"Host",
	"Content-Type",
	"Content-Length",
	"Transfer-Encoding",
	"webhook-id",
	"Expect",
};

/* The values of the known options (borrowed from the rows), NULL when
 * absent, and where a failure is described before it is formatted. */
struct build {
	const char *cloud_id;
	const char *value[OPT__COUNT];
	const char *error_key;
	char reason[ENDPOINT_ERROR_SIZE];
};

static void set_text(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_text(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

static int fail(struct build *b, const char *key, const char *reason)
{
	b->error_key = key;
	set_text(b->reason, sizeof(b->reason), "%s", reason);
	return -1;
}

int endpoint_key_is_secret(const char *key)
{
	static const char *const suffixes[] = { "Password", "Secret" };
	size_t key_len;
	size_t i;

	if (key == NULL)
		return 0;
	key_len = strlen(key);
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		size_t n = strlen(suffixes[i]);

		if (key_len >= n &&
		    strcasecmp(key + key_len - n, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

/* RFC 9110 section 5.6.2: the characters of a token (a field name). */
static int is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Field values may hold HTAB, SP, visible ASCII and obs-text (>= 0x80). */
static int is_field_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/*
 * Checks one header line of len bytes (CR already dropped). Names in the
 * reason are only the relay's own forbidden names: a malformed line may hold
 * a token or a password, so its text is never echoed.
 */
static int check_header_line(const char *line, size_t len, size_t number,
			     char *err, size_t errlen)
{
	const char *colon = memchr(line, ':', len);
	size_t name_len;
	size_t i;

	if (len == 0) {
		set_text(err, errlen, "line %zu: empty", number);
		return -1;
	}
	if (colon == NULL) {
		set_text(err, errlen, "line %zu: no colon", number);
		return -1;
	}
	name_len = (size_t)(colon - line);
	if (name_len == 0) {
		set_text(err, errlen, "line %zu: empty header name", number);
		return -1;
	}
	for (i = 0; i < name_len; i++) {
		if (!is_tchar((unsigned char)line[i])) {
			set_text(err, errlen,
				 "line %zu: character 0x%02x not allowed in "
				 "a header name", number,
				 (unsigned char)line[i]);
			return -1;
		}
	}
	for (i = name_len + 1; i < len; i++) {
		if (!is_field_value_char((unsigned char)line[i])) {
			set_text(err, errlen,
				 "line %zu: control character 0x%02x in the "
				 "header value", number,
				 (unsigned char)line[i]);
			return -1;
		}
	}
	for (i = 0; i < sizeof(forbidden_headers) / sizeof(forbidden_headers[0]);
	     i++) {
		const char *name = forbidden_headers[i];

		if (strlen(name) == name_len &&
		    strncasecmp(line, name, name_len) == 0) {
			set_text(err, errlen,
				 "line %zu: header %s is set by the relay",
				 number, name);
			return -1;
		}
	}
	return 0;
}

/* 1 when text (may be NULL) holds nothing but LF and CRLF line ends. */
static int rest_is_blank(const char *text)
{
	while (text != NULL && *text != '\0') {
		if (text[0] == '\n')
			text++;
		else if (text[0] == '\r' && text[1] == '\n')
			text += 2;
		else
			return 0;
	}
	return 1;
}

void endpoint_headers_free(char **lines, size_t count)
{
	size_t i;

	if (lines == NULL)
		return;
	for (i = 0; i < count; i++)
		free(lines[i]);
	free(lines);
}

int endpoint_parse_headers(const char *value, char ***lines, size_t *count,
			   char *err, size_t errlen)
{
	char **parsed = NULL;
	size_t n = 0;
	size_t capacity = 0;
	const char *start = value;
	int rc = -1;

	*lines = NULL;
	*count = 0;
	while (start != NULL && *start != '\0') {
		const char *lf = strchr(start, '\n');
		const char *next = lf != NULL ? lf + 1 : NULL;
		size_t len = lf != NULL ? (size_t)(lf - start) : strlen(start);
		const char *cr;

		/* CRLF ends a line as LF does; any other CR could split one
		 * header into two on the wire, so it is refused. */
		if (lf != NULL && len > 0 && start[len - 1] == '\r')
			len--;
		cr = memchr(start, '\r', len);
		if (cr != NULL) {
			set_text(err, errlen, "line %zu: CR not followed by LF",
				 n + 1);
			goto out;
		}
		/* Blank lines at the end are what editors and shells leave
		 * behind; a blank line between headers is malformed. */
		if (len == 0 && rest_is_blank(next))
			break;
		if (check_header_line(start, len, n + 1, err, errlen) != 0)
			goto out;
		if (n == capacity) {
			size_t grown = capacity == 0 ? 4 : capacity * 2;
			char **bigger = realloc(parsed, grown * sizeof(*bigger));

			if (bigger == NULL) {
				set_text(err, errlen, "out of memory");
				goto out;
			}
			parsed = bigger;
			capacity = grown;
		}
		parsed[n] = strndup(start, len);
		if (parsed[n] == NULL) {
			set_text(err, errlen, "out of memory");
			goto out;
		}
		n++;
		start = next;
	}
	*lines = parsed;
	*count = n;
	parsed = NULL;
	n = 0;
	rc = 0;
out:
	endpoint_headers_free(parsed, n);
	return rc;
}

static int option_index(const char *key)
{
	int i;

	for (i = 0; i < OPT__COUNT; i++)
		if (strcmp(key, option_keys[i]) == 0)
			return i;
	return -1;
}

/*
 * Sorts the rows into the known options. A key that carries the prefix
 * (compared case-insensitively) but is not one of ours is an error: a typo
 * such as "...Url2" or "...URL" would otherwise be a silently ignored
 * setting. Keys without the prefix are not ours and are left alone, so
 * other applications may keep their settings in the same table.
 */
static int collect_options(struct build *b, const struct config_row *rows,
			   size_t count)
{
	size_t prefix_len = strlen(ENDPOINT_KEY_PREFIX);
	size_t i;

	for (i = 0; i < count; i++) {
		const char *key = rows[i].key;
		int opt;

		if (key == NULL || rows[i].value == NULL)
			continue;
		if (strncasecmp(key, ENDPOINT_KEY_PREFIX, prefix_len) != 0)
			continue;
		opt = option_index(key);
		if (opt < 0)
			return fail(b, key, "unknown option");
		if (rows[i].value_has_nul)
			return fail(b, key, "the value holds a NUL byte");
		if (b->value[opt] != NULL)
			return fail(b, key, "given twice");
		b->value[opt] = rows[i].value;
	}
	return 0;
}

static int check_url(struct build *b)
{
	const char *url = b->value[OPT_URL];
	char reason[ENDPOINT_ERROR_SIZE];

	if (url == NULL)
		return fail(b, ENDPOINT_URL, "missing");
	if (transfer_check_url(url, reason, sizeof(reason)) != 0)
		return fail(b, ENDPOINT_URL, reason);
	return 0;
}

static int check_content_type(struct build *b, enum content_kind *kind)
{
	const char *content_type = b->value[OPT_CONTENT_TYPE];
	char reason[ENDPOINT_ERROR_SIZE];

	if (content_type == NULL)
		return fail(b, ENDPOINT_CONTENT_TYPE, "missing");
	if (strlen(content_type) > CONTENT_TYPE_MAX)
		return fail(b, ENDPOINT_CONTENT_TYPE,
			    "longer than 256 bytes");
	if (render_content_kind(content_type, kind, reason, sizeof(reason)) != 0)
		return fail(b, ENDPOINT_CONTENT_TYPE, reason);
	return 0;
}

static int parse_bool(const char *text, int *flag)
{
	if (strcmp(text, "true") == 0)
		*flag = 1;
	else if (strcmp(text, "false") == 0)
		*flag = 0;
	else
		return -1;
	return 0;
}

/* 1 when text holds a C0 control character or DEL. */
static int has_control(const char *text)
{
	for (; *text != '\0'; text++)
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			return 1;
	return 0;
}

/*
 * Both credentials or neither (contract 7.14). libcurl may answer a Digest
 * challenge as well as send Basic, and which one it uses is the server's
 * choice, so credentials of any kind over anything but https are refused
 * unless the operator allowed it.
 */
static int check_auth(struct build *b)
{
	const char *username = b->value[OPT_AUTH_USERNAME];
	const char *password = b->value[OPT_AUTH_PASSWORD];
	const char *allow = b->value[OPT_ALLOW_INSECURE_AUTH];
	int insecure_ok = 0;

	if (allow != NULL && parse_bool(allow, &insecure_ok) != 0)
		return fail(b, ENDPOINT_ALLOW_INSECURE_AUTH,
			    "must be \"true\" or \"false\"");
	if (username == NULL && password == NULL)
		return 0;
	if (username == NULL)
		return fail(b, ENDPOINT_AUTH_USERNAME,
			    "missing while " ENDPOINT_AUTH_PASSWORD " is set");
	if (password == NULL)
		return fail(b, ENDPOINT_AUTH_PASSWORD,
			    "missing while " ENDPOINT_AUTH_USERNAME " is set");
	if (username[0] == '\0')
		return fail(b, ENDPOINT_AUTH_USERNAME, "empty");
	/* Digest quotes the user name into a header line, and Basic joins
	 * the two with a colon: a control character could break the line,
	 * a colon in the name would move the split. Neither is echoed. */
	if (has_control(username))
		return fail(b, ENDPOINT_AUTH_USERNAME,
			    "holds a control character");
	if (strchr(username, ':') != NULL)
		return fail(b, ENDPOINT_AUTH_USERNAME, "holds a colon");
	if (has_control(password))
		return fail(b, ENDPOINT_AUTH_PASSWORD,
			    "holds a control character");
	/* The URL passed transfer_check_url, so its scheme is http or https. */
	if (strncasecmp(b->value[OPT_URL], "https://", 8) != 0 && !insecure_ok)
		return fail(b, ENDPOINT_AUTH_USERNAME,
			    "credentials over plain http are refused unless "
			    ENDPOINT_ALLOW_INSECURE_AUTH " is \"true\"");
	return 0;
}

/* POST is the contract's method; PUT is the one alternative the web-service
 * definition allows. Methods are case-sensitive (RFC 9110), so "post" is a
 * typo rather than a spelling of POST. */
static int check_method(struct build *b)
{
	const char *method = b->value[OPT_METHOD];

	if (method == NULL || strcmp(method, "POST") == 0 ||
	    strcmp(method, "PUT") == 0)
		return 0;
	return fail(b, ENDPOINT_METHOD, "must be \"POST\" or \"PUT\"");
}

/* The headers a signature covers or consists of (Standard Webhooks). */
static const char *const signature_headers[] = {
	"webhook-id",
	"webhook-timestamp",
	"webhook-signature",
};

/*
 * A signed request's id, timestamp and signature belong together, so
 * CustomHeaders may not replace any of them while signing is on.
 */
static int check_signing(struct build *b, char *const *headers, size_t count)
{
	char reason[ENDPOINT_ERROR_SIZE];
	struct sign_keys *keys = NULL;

	if (b->value[OPT_SIGNING_SECRET] == NULL)
		return 0;
	if (sign_keys_new(b->value[OPT_SIGNING_SECRET], &keys, reason,
			  sizeof(reason)) != 0)
		return fail(b, ENDPOINT_SIGNING_SECRET, reason);
	sign_keys_free(keys);
	for (size_t i = 0; i < count; i++) {
		for (size_t j = 0; j < sizeof(signature_headers) /
				       sizeof(signature_headers[0]); j++) {
			const char *name = signature_headers[j];
			size_t len = strlen(name);

			if (strncasecmp(headers[i], name, len) != 0 ||
			    headers[i][len] != ':')
				continue;
			set_text(reason, sizeof(reason),
				 "line %zu: header %s is set by the relay while "
				 ENDPOINT_SIGNING_SECRET " is set", i + 1, name);
			return fail(b, ENDPOINT_CUSTOM_HEADERS, reason);
		}
	}
	return 0;
}

/* A whole number from min to max, digits only. */
static int parse_count(const char *text, long min, long max, long *out)
{
	size_t len = strlen(text);
	long n;

	if (len == 0 || len > 9 || strspn(text, "0123456789") != len)
		return -1;
	n = strtol(text, NULL, 10);
	if (n < min || n > max)
		return -1;
	*out = n;
	return 0;
}

/* A positive decimal number ("0.5", "20"), digits and one point only, so
 * that strtod's hex, exponents, "inf" and "nan" never get through. */
static int parse_positive(const char *text, double max, double *out)
{
	size_t len = strlen(text);
	const char *point = strchr(text, '.');
	char *end = NULL;
	double value;

	if (len == 0 || len > 32 || strspn(text, "0123456789.") != len ||
	    (point != NULL && strchr(point + 1, '.') != NULL) ||
	    text[0] == '.' || text[len - 1] == '.')
		return -1;
	value = strtod(text, &end);
	if (end != text + len || !(value > 0.0) || value > max)
		return -1;
	*out = value;
	return 0;
}

static int check_limits(struct build *b, struct endpoint *ep)
{
	long n;

	if (b->value[OPT_MAX_CONCURRENCY] != NULL) {
		if (parse_count(b->value[OPT_MAX_CONCURRENCY], 1,
				MAX_CONCURRENCY, &n) != 0)
			return fail(b, ENDPOINT_MAX_CONCURRENCY,
				    "must be a whole number from 1 to 10000");
		ep->max_concurrency = (int)n;
	}
	if (b->value[OPT_MAX_RATE] != NULL &&
	    parse_positive(b->value[OPT_MAX_RATE], MAX_RATE, &ep->max_rate) != 0)
		return fail(b, ENDPOINT_MAX_RATE,
			    "must be a number of requests per second above 0, "
			    "at most 100000");
	return 0;
}

/*
 * MaxAttempts, and RetrySchedule: comma-separated delays in seconds, one
 * per retry, the last repeating ("5,300,1800,7200,18000,36000").
 */
static int check_retry(struct build *b, struct endpoint *ep)
{
	const char *text = b->value[OPT_RETRY_SCHEDULE];
	long n;

	if (b->value[OPT_MAX_ATTEMPTS] != NULL) {
		if (parse_count(b->value[OPT_MAX_ATTEMPTS], 1, MAX_ATTEMPTS,
				&n) != 0)
			return fail(b, ENDPOINT_MAX_ATTEMPTS,
				    "must be a whole number from 1 to 1000");
		ep->max_attempts = n;
	}
	while (text != NULL) {
		const char *comma = strchr(text, ',');
		size_t len = comma != NULL ? (size_t)(comma - text)
					   : strlen(text);
		char item[32];
		char reason[128];
		int64_t ms;

		while (len > 0 && *text == ' ') {
			text++;
			len--;
		}
		while (len > 0 && text[len - 1] == ' ')
			len--;
		if (ep->retry_schedule_count == ENDPOINT_MAX_SCHEDULE) {
			set_text(reason, sizeof(reason), "more than %d delays",
				 ENDPOINT_MAX_SCHEDULE);
			return fail(b, ENDPOINT_RETRY_SCHEDULE, reason);
		}
		if (len == 0 || len >= sizeof(item)) {
			set_text(reason, sizeof(reason), "delay %zu is %s",
				 ep->retry_schedule_count + 1,
				 len == 0 ? "empty" : "too long");
			return fail(b, ENDPOINT_RETRY_SCHEDULE, reason);
		}
		memcpy(item, text, len);
		item[len] = '\0';
		if (time_parse_seconds(item, SCHEDULE_MAX_MS, &ms) != 0) {
			set_text(reason, sizeof(reason), "delay %zu is not a "
				 "number of seconds from 0 to 2592000",
				 ep->retry_schedule_count + 1);
			return fail(b, ENDPOINT_RETRY_SCHEDULE, reason);
		}
		ep->retry_schedule_ms[ep->retry_schedule_count++] = ms;
		text = comma != NULL ? comma + 1 : NULL;
	}
	return 0;
}

static int check_timeout(struct build *b, int64_t default_ms,
			 int64_t *timeout_ms)
{
	const char *text = b->value[OPT_TIMEOUT];
	int64_t ms;

	if (text == NULL) {
		*timeout_ms = default_ms;
		return 0;
	}
	if (time_parse_seconds(text, TIMEOUT_MAX_MS, &ms) != 0 ||
	    ms < TIMEOUT_MIN_MS)
		return fail(b, ENDPOINT_TIMEOUT,
			    "must be a number of seconds from 0.1 to 600");
	*timeout_ms = ms;
	return 0;
}

/*
 * Overwrites every occurrence of the password in text. No message here
 * prints a password, but the URL and template checks echo parts of other
 * values, and a password reused there must still not reach a log. A very
 * short password is left alone: starring each "p" of a message would both
 * mangle it and show where the password's letters stand.
 */
#define REDACT_MIN_LEN 6

static void redact(char *text, const char *password)
{
	size_t len;
	char *hit;

	if (text == NULL || password == NULL ||
	    strlen(password) < REDACT_MIN_LEN)
		return;
	len = strlen(password);
	/* The search resumes after each mask: a password of stars would
	 * otherwise be found again in its own mask forever. */
	while ((hit = strstr(text, password)) != NULL) {
		memset(hit, '*', len);
		text = hit + len;
	}
}

/* Overwrites every space-separated secret of value found in text. */
static void redact_secrets(char *text, const char *value)
{
	char secret[1024];

	while (value != NULL && *value != '\0') {
		size_t len = strcspn(value, " ");

		if (len > 0 && len < sizeof(secret)) {
			memcpy(secret, value, len);
			secret[len] = '\0';
			redact(text, secret);
		}
		value += len;
		value += strspn(value, " ");
	}
	explicit_bzero(secret, sizeof(secret));
}

/* Error text is one log line: control characters in library messages
 * (libxml2's end in a newline), keys or cloud_ids become spaces. */
static void flatten(char *text)
{
	for (; *text != '\0'; text++)
		if ((unsigned char)*text < 0x20 || *text == 0x7f)
			*text = ' ';
}

void endpoint_free(struct endpoint *ep)
{
	if (ep == NULL)
		return;
	transfer_endpoint_unref(ep->transfer);
	render_template_free(ep->tmpl);
	free(ep->disabled);
	free(ep->cloud_id);
	free(ep);
}

int endpoint_build(const char *cloud_id, const struct config_row *rows,
		   size_t count, int64_t default_timeout_ms,
		   struct endpoint **out, char *err, size_t errlen)
{
	struct build b = { 0 };
	struct endpoint *ep = NULL;
	char **headers = NULL;
	size_t header_count = 0;
	struct transfer_endpoint_spec spec = { 0 };
	char reason[ENDPOINT_ERROR_SIZE];
	int rc = -1;

	*out = NULL;
	b.cloud_id = cloud_id != NULL ? cloud_id : "";
	if (collect_options(&b, rows, count) != 0)
		goto out;

	ep = calloc(1, sizeof(*ep));
	if (ep == NULL) {
		fail(&b, ENDPOINT_URL, "out of memory");
		goto out;
	}
	ep->cloud_id = strdup(b.cloud_id);
	if (ep->cloud_id == NULL) {
		fail(&b, ENDPOINT_URL, "out of memory");
		goto out;
	}
	/* A disabled endpoint (410 Gone) is still checked: enabling it again
	 * should not reveal a config error that was there all along. */
	if (b.value[OPT_DISABLED] != NULL) {
		ep->disabled = strdup(b.value[OPT_DISABLED]);
		if (ep->disabled == NULL) {
			fail(&b, ENDPOINT_DISABLED, "out of memory");
			goto out;
		}
	}

	if (check_url(&b) != 0)
		goto out;
	if (check_content_type(&b, &ep->kind) != 0)
		goto out;
	/* NULL text compiles the documented example for the kind. */
	if (render_template_new(b.value[OPT_POST_DATA], ep->kind, &ep->tmpl,
				reason, sizeof(reason)) != 0) {
		fail(&b, ENDPOINT_POST_DATA, reason);
		goto out;
	}
	if (b.value[OPT_CUSTOM_HEADERS] != NULL &&
	    endpoint_parse_headers(b.value[OPT_CUSTOM_HEADERS], &headers,
				   &header_count, reason, sizeof(reason)) != 0) {
		fail(&b, ENDPOINT_CUSTOM_HEADERS, reason);
		goto out;
	}
	if (check_auth(&b) != 0)
		goto out;
	if (check_timeout(&b, default_timeout_ms, &ep->timeout_ms) != 0)
		goto out;
	if (check_method(&b) != 0)
		goto out;
	if (check_signing(&b, headers, header_count) != 0)
		goto out;
	if (check_limits(&b, ep) != 0 || check_retry(&b, ep) != 0)
		goto out;

	spec.url = b.value[OPT_URL];
	/* Sent exactly as configured, parameters and case included. */
	spec.content_type = b.value[OPT_CONTENT_TYPE];
	spec.method = b.value[OPT_METHOD]; /* NULL: POST */
	spec.headers = (const char *const *)headers;
	spec.header_count = header_count;
	spec.username = b.value[OPT_AUTH_USERNAME];
	spec.password = b.value[OPT_AUTH_PASSWORD];
	spec.timeout_ms = ep->timeout_ms;
	spec.signing_secret = b.value[OPT_SIGNING_SECRET];
	if (transfer_endpoint_new(&spec, &ep->transfer, reason,
				  sizeof(reason)) != 0) {
		fail(&b, ENDPOINT_URL, reason);
		goto out;
	}

	*out = ep;
	ep = NULL;
	rc = 0;
out:
	if (rc != 0) {
		redact(b.reason, b.value[OPT_AUTH_PASSWORD]);
		redact_secrets(b.reason, b.value[OPT_SIGNING_SECRET]);
		set_text(err, errlen, "cloud_id=%s key=%s: %s", b.cloud_id,
			 b.error_key != NULL ? b.error_key : ENDPOINT_KEY_PREFIX,
			 b.reason);
		if (err != NULL && errlen > 0)
			flatten(err);
	}
	endpoint_headers_free(headers, header_count);
	endpoint_free(ep);
	return rc;
}
