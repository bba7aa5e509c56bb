/*
 * transfer.c - HTTP requests in flight on one libcurl multi handle.
 *
 * The only file that includes curl/curl.h. A pool keeps a fixed array of
 * slots, each with an easy handle created on first use and reused for every
 * later transfer; connections are cached by the multi handle. An endpoint
 * keeps its constant header list, so that starting a transfer allocates
 * nothing of ours.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "addrpolicy.h"
#include "log.h"
#include "sign.h"
#include "timeutil.h"
#include "transfer.h"
#include "version.h"

/* A pool larger than this is a configuration mistake, not a need. */
#define TRANSFER_MAX_SLOTS 10000
_Static_assert(TRANSFER_MAX_WAKE_FDS <= sizeof(unsigned) * 8,
	       "one bit of the readiness mask per wake-up descriptor");
#define TRANSFER_DEFAULT_CONNECT_MS 10000
/* Longer than any backoff the policy allows (ten years). */
#define TRANSFER_MAX_RETRY_AFTER_S ((curl_off_t)10 * 366 * 24 * 3600)

struct transfer_endpoint {
	int refs;
	char *url;
	/* The URL parsed once: given as CURLOPT_CURLU, libcurl copies it for
	 * each transfer instead of parsing and printing the text again. */
	CURLU *parsed_url;
	int is_put;
	int is_https;
	/* Every header but webhook-id, which changes per event: curl neither
	 * copies nor modifies the list, so transfers share it. */
	struct curl_slist *headers;
	int custom_webhook_id; /* a configured webhook-id replaces ours */
	char *username;        /* NULL: no HTTP authentication */
	char *password;
	int64_t timeout_ms;
	struct sign_keys *signing; /* NULL: requests are not signed */
};

struct transfer {
	CURL *easy; /* NULL until the slot is first used */
	int busy;
	/* The endpoint whose options are set on easy (one reference). It
	 * outlives the transfer so that the next transfer to the same endpoint
	 * on this slot can skip setting them again. */
	struct transfer_endpoint *configured;
	char *body;
	void *owner;
	int64_t event_id;
	int64_t started_ms;
	int64_t started_mono;
	size_t received;
	int capped;           /* the write callback refused the rest */
	int has_retry_after;  /* the final response carried Retry-After */
	int head_complete;    /* the final response's blank line arrived */
	/* The head of this transfer's header list, chained onto the
	 * endpoint's constant list: no allocation per transfer. */
	struct curl_slist id_header;
	char id_line[48]; /* "webhook-id: " and up to 20 digits and a sign */
	/* Signed endpoints only: id -> timestamp -> signature -> constant. */
	struct curl_slist timestamp_header;
	char timestamp_line[48];
	struct curl_slist signature_header;
	char signature_line[sizeof("webhook-signature: ") + SIGN_SIGNATURE_SIZE];
	char errbuf[CURL_ERROR_SIZE];
	const struct addrpolicy *addresses; /* the pool's, or NULL */
	char refused[ADDRPOLICY_REASON_SIZE]; /* why a connect was refused */
};

struct transfer_pool {
	CURLM *multi;
	int max_transfers;
	int active;
	int64_t connect_timeout_ms;
	char *ca_file;
	const struct addrpolicy *addresses;
	struct transfer *slots;
	int *free_slots; /* stack of indexes of idle slots */
	int free_count;
	int global_init;
};

/* Keeps the first failure of a run of curl_easy_setopt calls, so that a
 * block of options is checked once, at its end. */
static CURLcode first_error(CURLcode first, CURLcode next)
{
	return first != CURLE_OK ? first : next;
}

static CURLMcode first_merror(CURLMcode first, CURLMcode next)
{
	return first != CURLM_OK ? first : next;
}

static char *dup_string(const char *s)
{
	return s ? strdup(s) : NULL;
}

static size_t header_name_len(const char *line)
{
	const char *colon = strchr(line, ':');

	return colon ? (size_t)(colon - line) : strlen(line);
}

/* 1 when one of the configured lines names the header name. */
static int has_header(const char *const *lines, size_t count, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < count; i++)
		if (header_name_len(lines[i]) == len &&
		    strncasecmp(lines[i], name, len) == 0)
			return 1;
	return 0;
}

static int append_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *grown = curl_slist_append(*list, line);

	if (!grown)
		return -1;
	*list = grown;
	return 0;
}

/*
 * Appends one configured "Name: value" line. libcurl reads "Name:" with an
 * empty value as "remove this header"; "Name;" is its spelling for a header
 * sent empty, which is what the configuration meant.
 */
static int append_custom_header(struct curl_slist **list, const char *line,
				char *err, size_t errlen)
{
	size_t name_len = header_name_len(line);
	const char *value;
	char *empty;
	int rc;

	if (name_len == 0 || line[name_len] != ':' ||
	    strpbrk(line, "\r\n") != NULL) {
		snprintf(err, errlen, "malformed header line \"%.64s\"", line);
		return -1;
	}
	value = line + name_len + 1;
	value += strspn(value, " \t");
	if (*value != '\0') {
		rc = append_header(list, line);
		goto out;
	}
	rc = -1;
	empty = malloc(name_len + 2);
	if (!empty)
		goto out;
	memcpy(empty, line, name_len);
	empty[name_len] = ';';
	empty[name_len + 1] = '\0';
	rc = append_header(list, empty);
	free(empty);
out:
	if (rc != 0)
		snprintf(err, errlen, "out of memory");
	return rc;
}

int transfer_check_url(const char *url, char *err, size_t errlen)
{
	CURLU *parsed = NULL;
	CURLUcode uc;
	char *scheme = NULL, *host = NULL;
	int rc = -1;

	if (!url || !*url) {
		snprintf(err, errlen, "URL is empty");
		goto out;
	}
	parsed = curl_url();
	if (!parsed) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* Accept any scheme here, so that the error below can name it.
	 * Without CURLU_URLENCODE, which would turn a space into %20: a
	 * space or a control character is a typo to report, not to mend. */
	uc = curl_url_set(parsed, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
	if (uc != CURLUE_OK) {
		snprintf(err, errlen, "not a valid URL: %s", curl_url_strerror(uc));
		goto out;
	}
	uc = curl_url_get(parsed, CURLUPART_SCHEME, &scheme, 0);
	if (uc != CURLUE_OK) {
		snprintf(err, errlen, "not a valid URL: %s", curl_url_strerror(uc));
		goto out;
	}
	if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
		snprintf(err, errlen, "URL scheme \"%.32s\" is not http or https",
			 scheme);
		goto out;
	}
	uc = curl_url_get(parsed, CURLUPART_HOST, &host, 0);
	if (uc != CURLUE_OK || !host || !*host) {
		snprintf(err, errlen, "not a valid URL: %s",
			 uc != CURLUE_OK ? curl_url_strerror(uc) : "no host");
		goto out;
	}
	rc = 0;
out:
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(parsed);
	return rc;
}

void transfer_endpoint_unref(struct transfer_endpoint *ep)
{
	if (!ep || --ep->refs > 0)
		return;
	curl_slist_free_all(ep->headers);
	sign_keys_free(ep->signing);
	curl_url_cleanup(ep->parsed_url);
	free(ep->url);
	free(ep->username);
	if (ep->password) {
		/* The secret should not linger in freed memory. */
		memset(ep->password, 0, strlen(ep->password));
		free(ep->password);
	}
	free(ep);
}

static int build_headers(struct transfer_endpoint *ep,
			 const struct transfer_endpoint_spec *spec, char *err,
			 size_t errlen)
{
	/* Expect and Accept are sent empty to suppress curl's own values: a
	 * 100-continue round trip per request, and a meaningless Accept. */
	const char *const defaults[][2] = {
		{ "Content-Type", NULL },
		{ "User-Agent", "User-Agent: smartrelay/" SMARTRELAY_VERSION },
		{ "Expect", "Expect:" },
		{ "Accept", "Accept:" },
	};
	char content_type[512];

	if (snprintf(content_type, sizeof(content_type), "Content-Type: %s",
		     spec->content_type) >= (int)sizeof(content_type)) {
		snprintf(err, errlen, "content type is too long");
		return -1;
	}
	for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
		const char *line = defaults[i][1] ? defaults[i][1] : content_type;

		if (has_header(spec->headers, spec->header_count, defaults[i][0]))
			continue;
		if (append_header(&ep->headers, line) != 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	for (size_t i = 0; i < spec->header_count; i++)
		if (append_custom_header(&ep->headers, spec->headers[i], err,
					 errlen) != 0)
			return -1;
	ep->custom_webhook_id = has_header(spec->headers, spec->header_count,
					   "webhook-id");
	return 0;
}

int transfer_endpoint_new(const struct transfer_endpoint_spec *spec,
			  struct transfer_endpoint **out, char *err,
			  size_t errlen)
{
	struct transfer_endpoint *ep = NULL;
	CURLUcode uc;
	int rc = -1;

	*out = NULL;
	if (transfer_check_url(spec->url, err, errlen) != 0)
		goto out;
	if (!spec->content_type || strpbrk(spec->content_type, "\r\n")) {
		snprintf(err, errlen, "content type is missing or holds a line break");
		goto out;
	}
	if (spec->method && strcasecmp(spec->method, "POST") != 0 &&
	    strcasecmp(spec->method, "PUT") != 0) {
		snprintf(err, errlen, "method \"%.16s\" is not POST or PUT",
			 spec->method);
		goto out;
	}
	if (spec->timeout_ms <= 0) {
		snprintf(err, errlen, "timeout must be positive");
		goto out;
	}
	if (spec->header_count > 0 && !spec->headers) {
		snprintf(err, errlen, "header lines missing");
		goto out;
	}
	ep = calloc(1, sizeof(*ep));
	if (!ep) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ep->refs = 1;
	ep->is_put = spec->method && strcasecmp(spec->method, "PUT") == 0;
	ep->is_https = strncasecmp(spec->url, "https:", 6) == 0;
	ep->timeout_ms = spec->timeout_ms;
	ep->url = dup_string(spec->url);
	if (spec->username) {
		ep->username = dup_string(spec->username);
		ep->password = dup_string(spec->password ? spec->password : "");
	}
	if (!ep->url || (spec->username && (!ep->username || !ep->password))) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	ep->parsed_url = curl_url();
	if (!ep->parsed_url) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* The flags libcurl itself parses CURLOPT_URL with, but for guessing
	 * a scheme (transfer_check_url has required one, and refused spaces),
	 * and bytes outside ASCII in the path and query go percent-encoded,
	 * as RFC 3986 wants them on the wire; a URL already encoded stays. */
	uc = curl_url_set(ep->parsed_url, CURLUPART_URL, spec->url,
			  CURLU_NON_SUPPORT_SCHEME | CURLU_URLENCODE);
	if (uc != CURLUE_OK) {
		snprintf(err, errlen, "not a valid URL: %s", curl_url_strerror(uc));
		goto out;
	}
	if (build_headers(ep, spec, err, errlen) != 0)
		goto out;
	if (spec->signing_secret) {
		if (ep->custom_webhook_id) {
			snprintf(err, errlen, "a signed request's webhook-id is "
				 "the relay's");
			goto out;
		}
		if (sign_keys_new(spec->signing_secret, &ep->signing, err,
				  errlen) != 0)
			goto out;
	}
	*out = ep;
	ep = NULL;
	rc = 0;
out:
	transfer_endpoint_unref(ep);
	return rc;
}

int transfer_pool_new(const struct transfer_pool_options *options,
		      struct transfer_pool **out, char *err, size_t errlen)
{
	struct transfer_pool *pool = NULL;
	CURLcode cc;
	CURLMcode mc = CURLM_OK;
	int rc = -1;

	*out = NULL;
	if (options->max_transfers < 1 ||
	    options->max_transfers > TRANSFER_MAX_SLOTS) {
		snprintf(err, errlen, "transfers in flight must be 1 to %d",
			 TRANSFER_MAX_SLOTS);
		goto out;
	}
	if (options->connect_timeout_ms < 0) {
		snprintf(err, errlen, "connect timeout must not be negative");
		goto out;
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* Reference counted inside libcurl; thread-safe since 7.84. */
	cc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cc != CURLE_OK) {
		snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(cc));
		goto out;
	}
	pool->global_init = 1;
	pool->max_transfers = options->max_transfers;
	pool->connect_timeout_ms = options->connect_timeout_ms;
	pool->addresses = options->addresses;
	if (options->ca_file) {
		pool->ca_file = strdup(options->ca_file);
		if (!pool->ca_file) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	pool->slots = calloc((size_t)pool->max_transfers, sizeof(*pool->slots));
	pool->free_slots = calloc((size_t)pool->max_transfers,
				  sizeof(*pool->free_slots));
	if (!pool->slots || !pool->free_slots) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* Pushed in reverse so that slot 0 is used first: a light load keeps
	 * reusing the same few handles. */
	for (int i = pool->max_transfers - 1; i >= 0; i--)
		pool->free_slots[pool->free_count++] = i;
	pool->multi = curl_multi_init();
	if (!pool->multi) {
		snprintf(err, errlen, "curl_multi_init failed");
		goto out;
	}
	/* The connection cache keeps one idle connection per possible
	 * transfer, so a steady load never reconnects. */
	mc = first_merror(mc, curl_multi_setopt(pool->multi, CURLMOPT_MAXCONNECTS,
						(long)pool->max_transfers));
	mc = first_merror(mc, curl_multi_setopt(pool->multi, CURLMOPT_PIPELINING,
						(long)CURLPIPE_MULTIPLEX));
	if (mc != CURLM_OK) {
		snprintf(err, errlen, "curl_multi_setopt: %s", curl_multi_strerror(mc));
		goto out;
	}
	*out = pool;
	pool = NULL;
	rc = 0;
out:
	transfer_pool_free(pool);
	return rc;
}

static void slot_release(struct transfer_pool *pool, struct transfer *t)
{
	free(t->body);
	t->body = NULL;
	t->owner = NULL;
	t->busy = 0;
	pool->active--;
	pool->free_slots[pool->free_count++] = (int)(t - pool->slots);
}

/* Takes a busy slot off the multi handle; curl requires that before the
 * easy handle is reused or cleaned up. */
static void slot_detach(struct transfer_pool *pool, struct transfer *t)
{
	CURLMcode mc = curl_multi_remove_handle(pool->multi, t->easy);

	/* Only a handle that is not in the stack fails, which leaves nothing
	 * to undo; worth a line, since it means a broken bookkeeping. */
	if (mc != CURLM_OK)
		log_warn("transfer: event=%" PRId64 " curl_multi_remove_handle: %s",
			 t->event_id, curl_multi_strerror(mc));
}

void transfer_pool_free(struct transfer_pool *pool)
{
	if (!pool)
		return;
	for (int i = 0; pool->slots && i < pool->max_transfers; i++) {
		struct transfer *t = &pool->slots[i];

		if (t->busy) {
			slot_detach(pool, t);
			slot_release(pool, t);
		}
		if (t->easy)
			curl_easy_cleanup(t->easy);
		transfer_endpoint_unref(t->configured);
	}
	if (pool->multi) {
		CURLMcode mc = curl_multi_cleanup(pool->multi);

		if (mc != CURLM_OK)
			log_warn("transfer: curl_multi_cleanup: %s",
				 curl_multi_strerror(mc));
	}
	free(pool->slots);
	free(pool->free_slots);
	free(pool->ca_file);
	if (pool->global_init)
		curl_global_cleanup();
	free(pool);
}

int transfer_pool_active(const struct transfer_pool *pool)
{
	return pool->active;
}

static size_t write_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;

	(void)ptr;
	/* The verdict needs only the status: keep reading a bounded amount so
	 * the connection can be reused, and give up past it. */
	if (n > TRANSFER_MAX_RESPONSE - t->received) {
		t->capped = 1;
		return 0; /* n > 0 here: curl ends with CURLE_WRITE_ERROR */
	}
	t->received += n;
	return n;
}

/*
 * libcurl reports an absent Retry-After and "Retry-After: 0" alike, as 0;
 * watching the header lines tells them apart. A status line starts a new
 * response (after a 401 or a 1xx), whose headers alone count.
 */
static size_t read_header(char *line, size_t size, size_t nmemb,
			  void *userdata)
{
	struct transfer *t = userdata;
	size_t n = size * nmemb;
	static const char retry_after[] = "Retry-After:";

	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
		t->has_retry_after = 0;
		t->head_complete = 0;
	} else if ((n == 2 && line[0] == '\r' && line[1] == '\n') ||
		   (n == 1 && line[0] == '\n')) {
		t->head_complete = 1;
	} else if (n >= sizeof(retry_after) - 1 &&
		 strncasecmp(line, retry_after, sizeof(retry_after) - 1) == 0)
		t->has_retry_after = 1;
	return n;
}

/*
 * Opens the socket of a connection after checking the address it is for:
 * DNS has been resolved by now, so a name pointing into a refused range is
 * caught as well as a literal address.
 */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose,
				 struct curl_sockaddr *address)
{
	struct transfer *t = clientp;
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	memcpy(&ss, &address->addr, address->addrlen < sizeof(ss) ?
	       address->addrlen : sizeof(ss));
	if (purpose == CURLSOCKTYPE_IPCXN &&
	    !addrpolicy_allows(t->addresses, (struct sockaddr *)&ss,
			       t->refused, sizeof(t->refused)))
		return CURL_SOCKET_BAD;
	return socket(address->family, address->socktype, address->protocol);
}

/* Options that never change for the life of the handle. */
static CURLcode easy_setup(struct transfer_pool *pool, struct transfer *t)
{
	CURL *e = t->easy;
	CURLcode c = CURLE_OK;

	c = first_error(c, curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https"));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR,
					    "http,https"));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L));
	if (pool->ca_file)
		c = first_error(c, curl_easy_setopt(e, CURLOPT_CAINFO, pool->ca_file));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_body));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)t));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, read_header));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)t));
	t->addresses = pool->addresses;
	if (pool->addresses) {
		c = first_error(c, curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION,
						    open_socket));
		c = first_error(c, curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA,
						    (void *)t));
	}
	/* HTTP_VERSION stays at libcurl's default, HTTP/2 over TLS when it was
	 * built with it: setting it would fail on a build without. */
	return c;
}

/* Options that depend on the endpoint; set only when the slot changes
 * endpoint. */
static CURLcode easy_configure(struct transfer_pool *pool, struct transfer *t,
			       struct transfer_endpoint *ep)
{
	CURL *e = t->easy;
	CURLcode c = CURLE_OK;
	int64_t connect_ms = pool->connect_timeout_ms;

	if (connect_ms == 0)
		connect_ms = ep->timeout_ms < TRANSFER_DEFAULT_CONNECT_MS ?
			     ep->timeout_ms : TRANSFER_DEFAULT_CONNECT_MS;
	if (connect_ms > ep->timeout_ms)
		connect_ms = ep->timeout_ms;
	c = first_error(c, curl_easy_setopt(e, CURLOPT_CURLU, ep->parsed_url));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
					    ep->is_put ? "PUT" : NULL));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_HTTPHEADER,
					    ep->custom_webhook_id ? ep->headers
								  : &t->id_header));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
					    (long)ep->timeout_ms));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
					    (long)connect_ms));
	/* Over https the first transfers wait to learn whether the server
	 * multiplexes (HTTP/2) rather than each opening a connection. */
	c = first_error(c, curl_easy_setopt(e, CURLOPT_PIPEWAIT,
					    ep->is_https ? 1L : 0L));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_USERNAME, ep->username));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_PASSWORD, ep->password));
	c = first_error(c, curl_easy_setopt(e, CURLOPT_HTTPAUTH,
					    ep->username ?
					    (unsigned long)(CURLAUTH_BASIC | CURLAUTH_DIGEST) :
					    (unsigned long)CURLAUTH_BASIC));
	return c;
}

/*
 * Chains the headers of this request ahead of the endpoint's constant list:
 * webhook-id, and on a signed endpoint the timestamp of this attempt (unix
 * seconds) and the signature of "id.timestamp.body".
 */
static int set_id_headers(struct transfer *t, struct transfer_endpoint *ep,
			  int64_t event_id, int64_t now_ms, const char *body,
			  size_t len, char *err, size_t errlen)
{
	static const char signature_name[] = "webhook-signature: ";
	static const char id_name[] = "webhook-id: ";
	const size_t name_len = sizeof(signature_name) - 1;
	char digits[24], *id = digits + sizeof(digits) - 1;
	uint64_t n = event_id < 0 ? 0 - (uint64_t)event_id : (uint64_t)event_id;

	/* The id in decimal, written backwards: once per request, where
	 * snprintf would cost more than the rest of this function. */
	*id = '\0';
	do {
		*--id = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0);
	if (event_id < 0)
		*--id = '-';
	memcpy(t->id_line, id_name, sizeof(id_name) - 1);
	memcpy(t->id_line + sizeof(id_name) - 1, id,
	       (size_t)(digits + sizeof(digits) - id));
	t->id_header.data = t->id_line;
	t->id_header.next = ep->headers;
	if (!ep->signing)
		return 0;
	memcpy(t->signature_line, signature_name, name_len);
	if (sign_signature(ep->signing, id, now_ms / 1000, body, len,
			   t->signature_line + name_len,
			   sizeof(t->signature_line) - name_len, err,
			   errlen) != 0)
		return -1;
	snprintf(t->timestamp_line, sizeof(t->timestamp_line),
		 "webhook-timestamp: %" PRId64, now_ms / 1000);
	t->signature_header.data = t->signature_line;
	t->signature_header.next = ep->headers;
	t->timestamp_header.data = t->timestamp_line;
	t->timestamp_header.next = &t->signature_header;
	t->id_header.next = &t->timestamp_header;
	return 0;
}

int transfer_start(struct transfer_pool *pool, struct transfer_endpoint *ep,
		   int64_t event_id, char *body, size_t len, void *owner,
		   char *err, size_t errlen)
{
	/* POSTFIELDS NULL would make curl read the body from a callback. */
	static char empty_body[1] = "";
	struct transfer *t = NULL;
	CURLcode c = CURLE_OK;
	CURLMcode mc;
	int64_t now_ms;
	int rc = -1;

	if (pool->free_count == 0) {
		snprintf(err, errlen, "%d transfers already in flight",
			 pool->max_transfers);
		goto out;
	}
	t = &pool->slots[pool->free_slots[pool->free_count - 1]];
	if (!t->easy) {
		t->easy = curl_easy_init();
		if (!t->easy) {
			snprintf(err, errlen, "curl_easy_init failed");
			goto out;
		}
		c = easy_setup(pool, t);
		if (c != CURLE_OK) {
			curl_easy_cleanup(t->easy);
			t->easy = NULL;
			snprintf(err, errlen, "curl_easy_setopt: %s",
				 curl_easy_strerror(c));
			goto out;
		}
	}
	now_ms = time_now_ms();
	if (set_id_headers(t, ep, event_id, now_ms, body, len, err, errlen) != 0)
		goto out;
	if (t->configured != ep) {
		transfer_endpoint_unref(t->configured);
		t->configured = NULL;
		c = easy_configure(pool, t, ep);
		if (c != CURLE_OK) {
			snprintf(err, errlen, "curl_easy_setopt: %s",
				 curl_easy_strerror(c));
			goto out;
		}
		ep->refs++;
		t->configured = ep;
	}
	/* The size first: with POSTFIELDS alone curl would use strlen(). */
	c = first_error(c, curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE,
					    (curl_off_t)len));
	c = first_error(c, curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS,
					    body ? body : empty_body));
	if (c != CURLE_OK) {
		snprintf(err, errlen, "curl_easy_setopt: %s", curl_easy_strerror(c));
		goto out;
	}
	t->errbuf[0] = '\0';
	t->refused[0] = '\0';
	t->received = 0;
	t->capped = 0;
	t->has_retry_after = 0;
	t->head_complete = 0;
	t->event_id = event_id;
	t->owner = owner;
	t->started_ms = now_ms;
	t->started_mono = time_mono_ms();
	mc = curl_multi_add_handle(pool->multi, t->easy);
	if (mc != CURLM_OK) {
		snprintf(err, errlen, "curl_multi_add_handle: %s",
			 curl_multi_strerror(mc));
		goto out;
	}
	/* From here the slot owns the body. */
	t->body = body;
	body = NULL;
	t->busy = 1;
	pool->free_count--;
	pool->active++;
	rc = 0;
out:
	free(body);
	return rc;
}

int transfer_pool_poll(struct transfer_pool *pool, int timeout_ms,
		       const int *fds, int nfds, unsigned *ready)
{
	struct curl_waitfd extra[TRANSFER_MAX_WAKE_FDS];
	CURLMcode mc;
	int running;

	if (ready)
		*ready = 0;
	if (nfds < 0 || nfds > TRANSFER_MAX_WAKE_FDS)
		return -1;
	for (int i = 0; i < nfds; i++) {
		extra[i].fd = fds[i];
		extra[i].events = CURL_WAIT_POLLIN;
		extra[i].revents = 0;
	}
	/* Unlike curl_multi_wait, this sleeps even with nothing in flight,
	 * which is what an idle daemon wants. */
	mc = curl_multi_poll(pool->multi, nfds ? extra : NULL, (unsigned)nfds,
			     timeout_ms < 0 ? 0 : timeout_ms, NULL);
	if (mc != CURLM_OK)
		return -1;
	for (int i = 0; ready && i < nfds; i++)
		if (extra[i].revents & CURL_WAIT_POLLIN)
			*ready |= 1u << i;
	mc = curl_multi_perform(pool->multi, &running);
	return mc == CURLM_OK ? 0 : -1;
}

enum transport transfer_transport_of(int curl_code)
{
	switch ((CURLcode)curl_code) {
	case CURLE_OK:
		return TRANSPORT_OK;
	case CURLE_COULDNT_CONNECT:
		return TRANSPORT_CONNECT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return TRANSPORT_DNS;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
		return TRANSPORT_TLS;
	case CURLE_OPERATION_TIMEDOUT:
		return TRANSPORT_TIMEOUT;
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return TRANSPORT_RESET;
	default:
		return TRANSPORT_OTHER;
	}
}

static void fill_result(struct transfer *t, CURLcode code,
			struct transfer_result *result)
{
	long status = 0;
	curl_off_t retry_after = 0;

	memset(result, 0, sizeof(*result));
	result->owner = t->owner;
	result->event_id = t->event_id;
	result->started_ms = t->started_ms;
	result->duration_ms = time_mono_ms() - t->started_mono;
	if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;
	result->http_status = status;
	result->transport = transfer_transport_of(code);
	/* A response cut short by the size cap still told its status. */
	if (code == CURLE_WRITE_ERROR && t->capped && status > 0)
		result->transport = TRANSPORT_OK;
	/* libcurl takes a connection that ends inside the response head of a
	 * 204 for a complete response; a delivery needs the whole head. */
	if (result->transport == TRANSPORT_OK && !t->head_complete) {
		result->transport = TRANSPORT_RESET;
		snprintf(t->errbuf, sizeof(t->errbuf), "the connection ended "
			 "inside the response head (status %ld)", status);
	}
	result->retry_after_ms = -1;
	if (t->has_retry_after &&
	    curl_easy_getinfo(t->easy, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK) {
		/* A date in the past means "now"; the cap keeps the product
		 * in range whatever the server sent. */
		if (retry_after < 0)
			retry_after = 0;
		if (retry_after > TRANSFER_MAX_RETRY_AFTER_S)
			retry_after = TRANSFER_MAX_RETRY_AFTER_S;
		result->retry_after_ms = (int64_t)retry_after * 1000;
	}
	if (result->transport != TRANSPORT_OK && t->refused[0])
		snprintf(result->error, sizeof(result->error),
			 "refused to connect: %s (run --deny-private)", t->refused);
	else if (result->transport != TRANSPORT_OK)
		snprintf(result->error, sizeof(result->error), "%s",
			 t->errbuf[0] ? t->errbuf : curl_easy_strerror(code));
}

int transfer_pool_reap(struct transfer_pool *pool,
		       struct transfer_result *result)
{
	CURLMsg *msg;
	int queued;

	while ((msg = curl_multi_info_read(pool->multi, &queued)) != NULL) {
		char *private = NULL;
		struct transfer *t;
		CURLcode code = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		if (curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				      &private) != CURLE_OK || !private)
			continue;
		t = (struct transfer *)(void *)private;
		/* msg belongs to curl and dies with the removal. */
		slot_detach(pool, t);
		fill_result(t, code, result);
		slot_release(pool, t);
		return 1;
	}
	return 0;
}

void transfer_pool_cancel_all(struct transfer_pool *pool,
			      void (*cancelled)(void *owner, void *arg),
			      void *arg)
{
	for (int i = 0; i < pool->max_transfers; i++) {
		struct transfer *t = &pool->slots[i];
		void *owner;

		if (!t->busy)
			continue;
		/* Removal also drops a finished transfer's pending message, so
		 * nothing cancelled is reaped afterwards. */
		slot_detach(pool, t);
		owner = t->owner;
		slot_release(pool, t);
		if (cancelled)
			cancelled(owner, arg);
	}
}

/* 1 when a header of this name carries a credential worth masking. */
static int header_is_secret(const char *line, size_t name_len)
{
	static const char *const exact[] = {
		"Authorization", "Proxy-Authorization", "Cookie",
	};
	static const char *const parts[] = {
		"token", "secret", "key", "password", "auth",
	};
	char name[128];

	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strlen(exact[i]) == name_len &&
		    strncasecmp(line, exact[i], name_len) == 0)
			return 1;
	/* A name too long to copy is masked rather than guessed at. */
	if (name_len >= sizeof(name))
		return 1;
	memcpy(name, line, name_len);
	name[name_len] = '\0';
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (strcasestr(name, parts[i]) != NULL)
			return 1;
	return 0;
}

/* One line of the endpoint's list as it goes on the wire, or nothing. */
static void describe_header(FILE *out, const char *line)
{
	size_t name_len = header_name_len(line);
	const char *value = line + name_len;

	/* "Name:" removes a header libcurl would add; "Name;" sends it empty. */
	if (*value == ':' && value[1 + strspn(value + 1, " \t")] == '\0')
		return;
	if (*value == '\0' && name_len > 0 && line[name_len - 1] == ';') {
		fprintf(out, "%.*s:\n", (int)name_len - 1, line);
		return;
	}
	if (header_is_secret(line, name_len))
		fprintf(out, "%.*s: ********\n", (int)name_len, line);
	else
		fprintf(out, "%s\n", line);
}

char *transfer_endpoint_describe(const struct transfer_endpoint *ep,
				 int64_t event_id, size_t body_len)
{
	CURLU *parsed = curl_url();
	char *host = NULL, *port = NULL, *path = NULL, *query = NULL;
	char *text = NULL;
	size_t text_len = 0;
	FILE *out = NULL;
	int ok = 0;

	if (!parsed ||
	    curl_url_set(parsed, CURLUPART_URL, ep->url, 0) != CURLUE_OK ||
	    curl_url_get(parsed, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(parsed, CURLUPART_PATH, &path, 0) != CURLUE_OK)
		goto out;
	/* Absent parts are not errors: no port given, no query. */
	if (curl_url_get(parsed, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	if (curl_url_get(parsed, CURLUPART_QUERY, &query, 0) != CURLUE_OK)
		query = NULL;
	out = open_memstream(&text, &text_len);
	if (!out)
		goto out;
	fprintf(out, "%s %s%s%s HTTP/1.1\n", ep->is_put ? "PUT" : "POST", path,
		query ? "?" : "", query ? query : "");
	fprintf(out, "Host: %s%s%s\n", host, port ? ":" : "", port ? port : "");
	if (ep->username)
		/* Basic and Digest both allowed: libcurl asks first. */
		fprintf(out, "Authorization: ******** (user %s; sent after a "
			"401 challenge, Basic or Digest)\n", ep->username);
	/* A transfer's list is webhook-id chained before the endpoint's. */
	if (!ep->custom_webhook_id)
		fprintf(out, "webhook-id: %" PRId64 "\n", event_id);
	for (const struct curl_slist *h = ep->headers; h; h = h->next)
		describe_header(out, h->data);
	fprintf(out, "Content-Length: %zu\n", body_len);
	ok = !ferror(out);
out:
	if (out && fclose(out) != 0)
		ok = 0;
	if (!ok) {
		free(text);
		text = NULL;
	}
	curl_free(query);
	curl_free(path);
	curl_free(port);
	curl_free(host);
	curl_url_cleanup(parsed);
	return text;
}
