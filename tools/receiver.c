/*
 * receiver.c - a loopback HTTP/1.1 server for tests, demos and benchmarks.
 *
 * One thread, one epoll loop, non-blocking keep-alive connections. It can
 * record every request's exact bytes and answers according to the request
 * path (/status/NNN, /seq/..., /hang, /reset, /resetmid, /slow/MS, /endless/NNN,
 * /random/P, /close, /basic/USER/PASS, /digest/USER/PASS), so tests can
 * inject every fault the relay must survive and check its credentials.
 * Every buffer is bounded; a peer that sends too much is stopped or cut off.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define MAX_HEAD (64 * 1024)          /* request line and headers */
#define MAX_BODY (16 * 1024 * 1024)   /* Content-Length accepted */
#define READ_CHUNK (16 * 1024)
/* Input kept per connection; past it reading pauses until it is used. */
#define MAX_CONN_INPUT (MAX_HEAD + MAX_BODY + READ_CHUNK)
/* Answers queued for a pipelining peer that does not read them; past it
 * no further request is parsed until they drain. */
#define OUT_HIGH (64 * 1024)
/* Bytes of an endless answer written per wake-up, so that one fast reader
 * cannot starve the other connections. */
#define ENDLESS_BURST (256 * 1024)
#define MAX_CONNS 10000
#define MAX_EVENTS 256
#define ID_MAX 64            /* bytes of a webhook-id kept for the ids file */
#define RETRY_AFTER_MAX 256  /* bytes of a decoded retry_after */
#define SEQ_MAX_CODES 32
#define SEQ_MAX_KEYS (1 << 20)
#define ENDLESS_CHUNK 4096
#define CREDENTIAL_MAX 128   /* bytes of a user or password in an auth path */
#define CHALLENGE_MAX 256    /* a WWW-Authenticate value */
#define AUTH_REALM "receiver"
/* A fixed nonce: the tests need a verifiable answer, not replay defence. */
#define AUTH_NONCE "5f2b0d6c9a7e41c3b8d4e6f1a2c3b4d5"

enum watch_kind { WATCH_LISTEN, WATCH_SIGNAL, WATCH_CONN };

/* First member of everything registered with epoll, to tell them apart. */
struct watch {
	enum watch_kind kind;
};

enum conn_state {
	CONN_READY,   /* parsing and answering requests */
	CONN_SLOW,    /* a 204 is due at deadline; later requests wait */
	CONN_HANG,    /* never answers again; input is discarded */
	CONN_ENDLESS, /* streams chunks until the peer goes away */
	CONN_CLOSING, /* closes once its output is flushed */
};

struct conn {
	struct watch watch;
	int fd;
	uint64_t serial;
	enum conn_state state;
	uint32_t events;     /* mask registered with epoll */
	int peer_closed;
	char *in;
	size_t in_start;     /* first byte not yet consumed */
	size_t in_len;
	size_t in_cap;
	size_t scanned;      /* bytes of the pending head already searched */
	int have_head;       /* head of the pending request is complete */
	size_t head_len;
	size_t body_len;
	char *out;
	size_t out_off;
	size_t out_len;
	size_t out_cap;
	size_t chunk_off;    /* endless: position in the chunk being sent */
	int64_t deadline;    /* slow: monotonic ms of the answer */
	int slow_status;     /* slow: the answer's status and Retry-After */
	char slow_retry_after[RETRY_AFTER_MAX + 1];
	struct conn *prev, *next;
};

struct seq_entry {
	struct seq_entry *next;
	uint64_t hash;
	unsigned count;
	size_t key_len;
	char key[];
};

struct options {
	struct in_addr address; /* listened on; 127.0.0.1 unless --address */
	int port;
	const char *port_file;
	const char *record_path;
	const char *ids_path;
	int status;
	uint64_t seed;
	long max_seconds;
	int quiet;
};

struct server {
	struct options opt;
	int epfd;
	struct watch listen_watch;
	int listen_fd;
	struct watch signal_watch;
	int signal_fd;
	int record_fd;
	int ids_fd;
	int write_failed;       /* warned once about the record or ids file */
	int accept_failed;      /* warned once about accept() */
	struct conn *conns;
	int conn_count;
	int slow_count;
	uint64_t requests;
	uint64_t connections;
	uint64_t rng;
	struct seq_entry **seq;
	size_t seq_buckets;
	size_t seq_keys;
	char chunk[ENDLESS_CHUNK + 16];
	size_t chunk_len;
	char scratch[READ_CHUNK];
};

/* What one parsed request head says. Pointers point into the input. */
struct request {
	const char *method;
	size_t method_len;
	const char *path;
	size_t path_len;
	const char *query;   /* after '?', or NULL */
	size_t query_len;
	int keep_alive;
	int has_te;
	int expect_continue;
	int has_length;
	uint64_t content_length;
	const char *authorization; /* the Authorization value, or NULL */
	size_t authorization_len;
	char id[ID_MAX + 1];
};

enum action_kind {
	ACT_ANSWER, ACT_HANG, ACT_RESET, ACT_RESET_MID, ACT_SLOW, ACT_ENDLESS
};

struct action {
	enum action_kind kind;
	int status;
	int close;
	int64_t delay_ms;
	char retry_after[RETRY_AFTER_MAX + 1]; /* empty: none */
	char challenge[CHALLENGE_MAX];         /* WWW-Authenticate, or empty */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: deterministic for a given --seed, which tests rely on. */
static uint64_t next_random(struct server *s)
{
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ULL;
}

/* Parses all of text[0..len) as a decimal number no larger than max. */
static int parse_decimal(const char *text, size_t len, uint64_t max,
			 uint64_t *out)
{
	uint64_t n = 0;

	if (len == 0 || len > 20)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned)(unsigned char)text[i] - '0';

		if (d > 9 || n > (max - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*out = n;
	return 0;
}

static int parse_option_number(const char *name, const char *text, uint64_t max,
			       uint64_t *out)
{
	if (parse_decimal(text, strlen(text), max, out) != 0) {
		fprintf(stderr, "receiver: --%s: not a number from 0 to %" PRIu64 ": %s\n",
			name, max, text);
		return -1;
	}
	return 0;
}

static int equals_nocase(const char *text, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(text, word, len) == 0;
}

static int has_prefix(const char *text, size_t len, const char *prefix,
		      size_t *rest)
{
	size_t n = strlen(prefix);

	if (len < n || memcmp(text, prefix, n) != 0)
		return 0;
	*rest = n;
	return 1;
}

static void trim(const char **text, size_t *len)
{
	while (*len > 0 && (**text == ' ' || **text == '\t')) {
		(*text)++;
		(*len)--;
	}
	while (*len > 0 && ((*text)[*len - 1] == ' ' || (*text)[*len - 1] == '\t'))
		(*len)--;
}

/* 1 when the comma-separated list value holds token, in any case. */
static int has_token(const char *value, size_t len, const char *token)
{
	size_t start = 0;

	while (start <= len) {
		size_t end = start;
		const char *item;
		size_t item_len;

		while (end < len && value[end] != ',')
			end++;
		item = value + start;
		item_len = end - start;
		trim(&item, &item_len);
		if (equals_nocase(item, item_len, token))
			return 1;
		start = end + 1;
	}
	return 0;
}

static const char *reason_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Status";
	}
}

/* ---- files ---- */

static void write_all(struct server *s, int fd, struct iovec *iov, int iovcnt)
{
	while (iovcnt > 0) {
		ssize_t n = writev(fd, iov, iovcnt);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (!s->write_failed)
				fprintf(stderr, "receiver: write: %s\n", strerror(errno));
			s->write_failed = 1;
			return;
		}
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
}

/* Written at once with write(2), so that a test reading the file sees every
 * request the moment it has been answered. */
static void record_request(struct server *s, const char *raw, size_t len)
{
	char frame[64];
	int n;
	struct iovec iov[3];

	if (s->record_fd < 0)
		return;
	n = snprintf(frame, sizeof(frame), "=== REQUEST %" PRIu64 " %zu\n",
		     s->requests, len);
	iov[0].iov_base = frame;
	iov[0].iov_len = (size_t)n;
	iov[1].iov_base = (void *)(uintptr_t)raw;
	iov[1].iov_len = len;
	iov[2].iov_base = (void *)(uintptr_t)"\n";
	iov[2].iov_len = 1;
	write_all(s, s->record_fd, iov, 3);
}

static void record_id(struct server *s, const struct conn *c, const char *id,
		      int status, int64_t arrival_ms)
{
	char line[ID_MAX + 96];
	int n;
	struct iovec iov;

	if (s->ids_fd < 0)
		return;
	n = snprintf(line, sizeof(line), "%s %d %" PRId64 " %" PRIu64 "\n",
		     id, status, arrival_ms, c->serial);
	iov.iov_base = line;
	iov.iov_len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	write_all(s, s->ids_fd, &iov, 1);
}

static int open_append(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0)
		fprintf(stderr, "receiver: %s: %s\n", path, strerror(errno));
	return fd;
}

/* Written to a temporary name and renamed, so that a reader never sees a
 * partial number. */
static int write_port_file(const char *path, int port)
{
	size_t len = strlen(path) + 32;
	char *tmp = malloc(len);
	char text[16];
	int fd = -1, n, rc = -1;

	if (!tmp) {
		fprintf(stderr, "receiver: out of memory\n");
		goto out;
	}
	snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
	n = snprintf(text, sizeof(text), "%d\n", port);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, (size_t)n) != n) {
		fprintf(stderr, "receiver: %s: %s\n", tmp, strerror(errno));
		goto out;
	}
	rc = close(fd);
	fd = -1;
	if (rc != 0 || rename(tmp, path) != 0) {
		rc = -1;
		fprintf(stderr, "receiver: rename %s: %s\n", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(tmp);
	return rc;
}

/* ---- /seq counters, per (path, webhook-id) ---- */

static uint64_t hash_bytes(const char *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static int seq_grow(struct server *s)
{
	size_t buckets = s->seq_buckets ? s->seq_buckets * 2 : 256;
	struct seq_entry **table = calloc(buckets, sizeof(*table));

	if (!table)
		return -1;
	for (size_t i = 0; i < s->seq_buckets; i++) {
		struct seq_entry *e = s->seq[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = table[e->hash & (buckets - 1)];
			table[e->hash & (buckets - 1)] = e;
		}
	}
	free(s->seq);
	s->seq = table;
	s->seq_buckets = buckets;
	return 0;
}

/* How many requests came before this one for the key. Past SEQ_MAX_KEYS
 * (or out of memory) new keys are not kept and always count as first. */
static unsigned seq_next(struct server *s, const char *key, size_t len)
{
	uint64_t h = hash_bytes(key, len);
	struct seq_entry *e;

	for (e = s->seq ? s->seq[h & (s->seq_buckets - 1)] : NULL; e; e = e->next)
		if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)
			return e->count < UINT32_MAX ? e->count++ : e->count;
	if (s->seq_keys >= SEQ_MAX_KEYS)
		return 0;
	if (s->seq_keys >= s->seq_buckets && seq_grow(s) != 0)
		return 0;
	e = malloc(sizeof(*e) + len);
	if (!e)
		return 0;
	e->hash = h;
	e->count = 1;
	e->key_len = len;
	memcpy(e->key, key, len);
	e->next = s->seq[h & (s->seq_buckets - 1)];
	s->seq[h & (s->seq_buckets - 1)] = e;
	s->seq_keys++;
	return 0;
}

static void seq_free(struct server *s)
{
	for (size_t i = 0; i < s->seq_buckets; i++) {
		struct seq_entry *e = s->seq[i], *next;

		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(s->seq);
	s->seq = NULL;
}

/* ---- parsing ---- */

/*
 * Parses a complete head (request line, headers, the blank line) of len
 * bytes. Returns 0, or the status to answer before closing.
 */
static int parse_head(const char *head, size_t len, struct request *req)
{
	const char *end = head + len - 2; /* the final CRLF */
	const char *line = head, *eol, *sp1, *sp2, *target;
	size_t target_len, version_len;
	const char *version;

	memset(req, 0, sizeof(*req));
	req->id[0] = '-';
	eol = memmem(line, (size_t)(end - line), "\r\n", 2);
	if (!eol)
		return 400;
	sp1 = memchr(line, ' ', (size_t)(eol - line));
	if (!sp1 || sp1 == line)
		return 400;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1)
		return 400;
	req->method = line;
	req->method_len = (size_t)(sp1 - line);
	target = sp1 + 1;
	target_len = (size_t)(sp2 - target);
	version = sp2 + 1;
	version_len = (size_t)(eol - version);
	if (version_len == 8 && memcmp(version, "HTTP/1.1", 8) == 0)
		req->keep_alive = 1;
	else if (!(version_len == 8 && memcmp(version, "HTTP/1.0", 8) == 0))
		return 400;
	if (target[0] != '/')
		return 400;
	req->path = target;
	req->path_len = target_len;
	{
		const char *q = memchr(target, '?', target_len);

		if (q) {
			req->path_len = (size_t)(q - target);
			req->query = q + 1;
			req->query_len = target_len - req->path_len - 1;
		}
	}
	for (line = eol + 2; line < end; line = eol + 2) {
		const char *colon, *value;
		size_t name_len, value_len;

		eol = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
		if (!eol)
			return 400;
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon || colon == line || line[0] == ' ' || line[0] == '\t' ||
		    colon[-1] == ' ' || colon[-1] == '\t')
			return 400;
		name_len = (size_t)(colon - line);
		value = colon + 1;
		value_len = (size_t)(eol - value);
		trim(&value, &value_len);
		if (equals_nocase(line, name_len, "Content-Length")) {
			uint64_t n;

			if (parse_decimal(value, value_len, UINT64_MAX / 2, &n) != 0 ||
			    (req->has_length && n != req->content_length))
				return 400;
			req->has_length = 1;
			req->content_length = n;
		} else if (equals_nocase(line, name_len, "Transfer-Encoding")) {
			req->has_te = 1;
		} else if (equals_nocase(line, name_len, "Connection")) {
			if (has_token(value, value_len, "close"))
				req->keep_alive = 0;
			else if (has_token(value, value_len, "keep-alive"))
				req->keep_alive = 1;
		} else if (equals_nocase(line, name_len, "Authorization")) {
			req->authorization = value;
			req->authorization_len = value_len;
		} else if (equals_nocase(line, name_len, "Expect")) {
			req->expect_continue = equals_nocase(value, value_len,
							     "100-continue");
		} else if (equals_nocase(line, name_len, "webhook-id") &&
			   value_len > 0) {
			size_t n = value_len < ID_MAX ? value_len : ID_MAX;

			/* One word per field in the ids file, whatever was sent. */
			for (size_t i = 0; i < n; i++) {
				unsigned char ch = (unsigned char)value[i];

				req->id[i] = ch > ' ' && ch < 0x7f ? (char)ch : '_';
			}
			req->id[n] = '\0';
		}
	}
	if (req->has_te)
		return 411;
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Finds name=value in a query string and URL-decodes the value into out
 * ('+' is a space). Control characters are dropped: the value becomes a
 * header line. Returns 1 when found.
 */
static int query_param(const char *query, size_t len, const char *name,
		       char *out, size_t outlen)
{
	size_t name_len = strlen(name), start = 0;

	while (query && start < len) {
		size_t end = start, o = 0;

		while (end < len && query[end] != '&')
			end++;
		if (end - start > name_len && query[start + name_len] == '=' &&
		    memcmp(query + start, name, name_len) == 0) {
			for (size_t i = start + name_len + 1; i < end && o + 1 < outlen; i++) {
				int c = (unsigned char)query[i];

				if (c == '+')
					c = ' ';
				else if (c == '%' && i + 2 < end &&
					 hexval(query[i + 1]) >= 0 &&
					 hexval(query[i + 2]) >= 0) {
					c = hexval(query[i + 1]) * 16 + hexval(query[i + 2]);
					i += 2;
				}
				if (c >= ' ' && c != 0x7f)
					out[o++] = (char)c;
			}
			out[o] = '\0';
			return 1;
		}
		start = end + 1;
	}
	return 0;
}

static int parse_status(const char *text, size_t len, int *status)
{
	uint64_t n;

	if (parse_decimal(text, len, 599, &n) != 0 || n < 200)
		return -1;
	*status = (int)n;
	return 0;
}

/* The k-th code of a /seq list: a status, "reset", "resetmid" or "hang". */
static void route_seq(struct server *s, const struct request *req,
		      const char *list, size_t len, struct action *act)
{
	const char *items[SEQ_MAX_CODES];
	size_t lens[SEQ_MAX_CODES];
	size_t count = 0, start = 0, key_len;
	unsigned k;
	char key[MAX_HEAD + ID_MAX + 2];

	while (start <= len && count < SEQ_MAX_CODES) {
		size_t end = start;

		while (end < len && list[end] != ',')
			end++;
		items[count] = list + start;
		lens[count++] = end - start;
		start = end + 1;
	}
	key_len = req->path_len;
	memcpy(key, req->path, key_len);
	key[key_len++] = '\n';
	memcpy(key + key_len, req->id, strlen(req->id));
	key_len += strlen(req->id);
	k = seq_next(s, key, key_len);
	if (k >= count)
		k = (unsigned)count - 1;
	if (equals_nocase(items[k], lens[k], "reset"))
		act->kind = ACT_RESET;
	else if (equals_nocase(items[k], lens[k], "resetmid"))
		act->kind = ACT_RESET_MID;
	else if (equals_nocase(items[k], lens[k], "hang"))
		act->kind = ACT_HANG;
	else if (parse_status(items[k], lens[k], &act->status) != 0)
		act->status = 400;
}

/* ---- /basic and /digest: HTTP authentication, verified ---- */

/* Splits "USER/PASS" into two NUL-terminated strings. Returns 0 or -1. */
static int split_credentials(const char *text, size_t len, char *user,
			     char *pass)
{
	const char *slash = memchr(text, '/', len);
	size_t user_len, pass_len;

	if (!slash)
		return -1;
	user_len = (size_t)(slash - text);
	pass_len = len - user_len - 1;
	if (user_len == 0 || user_len >= CREDENTIAL_MAX ||
	    pass_len >= CREDENTIAL_MAX)
		return -1;
	memcpy(user, text, user_len);
	user[user_len] = '\0';
	memcpy(pass, slash + 1, pass_len);
	pass[pass_len] = '\0';
	return 0;
}

/* 1 when the Authorization value is exactly "Basic base64(user:pass)". */
static int basic_verifies(const struct request *req, const char *user,
			  const char *pass)
{
	char plain[2 * CREDENTIAL_MAX + 1];
	unsigned char expected[sizeof("Basic ") + 4 * sizeof(plain) / 3 + 4];
	int n = snprintf(plain, sizeof(plain), "%s:%s", user, pass);
	size_t len;

	memcpy(expected, "Basic ", 6);
	len = 6 + (size_t)EVP_EncodeBlock(expected + 6, (unsigned char *)plain, n);
	return req->authorization && req->authorization_len == len &&
	       memcmp(req->authorization, expected, len) == 0;
}

/*
 * Finds name=value or name="value" in the parameters of a Digest
 * Authorization value and copies the value (unquoted) into out. Returns 1
 * when found and it fits.
 */
static int digest_param(const char *text, size_t len, const char *name,
			char *out, size_t outlen)
{
	size_t name_len = strlen(name), i = 0;

	while (i < len) {
		size_t start, o = 0;
		int match;

		while (i < len && (text[i] == ' ' || text[i] == ','))
			i++;
		start = i;
		while (i < len && text[i] != '=' && text[i] != ',')
			i++;
		if (i >= len || text[i] != '=')
			continue;
		match = i - start == name_len &&
			strncasecmp(text + start, name, name_len) == 0;
		i++;
		if (i < len && text[i] == '"') {
			for (i++; i < len && text[i] != '"'; i++) {
				if (text[i] == '\\' && i + 1 < len)
					i++;
				if (match && o + 1 < outlen)
					out[o++] = text[i];
				else if (match)
					return 0;
			}
			i++;
		} else {
			for (; i < len && text[i] != ',' && text[i] != ' '; i++) {
				if (match && o + 1 < outlen)
					out[o++] = text[i];
				else if (match)
					return 0;
			}
		}
		if (match) {
			out[o] = '\0';
			return 1;
		}
	}
	return 0;
}

/* Lower-case hex MD5 of text, into hex (33 bytes). */
static int md5_hex(const char *text, char hex[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (!EVP_Digest(text, strlen(text), md, &md_len, EVP_md5(), NULL) ||
	    md_len != 16)
		return -1;
	for (unsigned i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/*
 * 1 when the Authorization value is a Digest answer (RFC 7616, MD5, qop
 * auth) to our challenge, for this method and target, with user and pass:
 * response = MD5(MD5(user:realm:pass):nonce:nc:cnonce:auth:MD5(method:uri)).
 */
static int digest_verifies(const struct request *req, const char *user,
			   const char *pass)
{
	const char *auth = req->authorization;
	size_t len = req->authorization_len;
	char username[CREDENTIAL_MAX], realm[64], nonce[64], uri[1024];
	char response[64], qop[16], nc[16], cnonce[128];
	char text[2048], ha1[33], ha2[33], expected[33];

	if (!auth || len < 7 || strncasecmp(auth, "Digest ", 7) != 0)
		return 0;
	auth += 7;
	len -= 7;
	if (!digest_param(auth, len, "username", username, sizeof(username)) ||
	    !digest_param(auth, len, "realm", realm, sizeof(realm)) ||
	    !digest_param(auth, len, "nonce", nonce, sizeof(nonce)) ||
	    !digest_param(auth, len, "uri", uri, sizeof(uri)) ||
	    !digest_param(auth, len, "response", response, sizeof(response)) ||
	    !digest_param(auth, len, "qop", qop, sizeof(qop)) ||
	    !digest_param(auth, len, "nc", nc, sizeof(nc)) ||
	    !digest_param(auth, len, "cnonce", cnonce, sizeof(cnonce)))
		return 0;
	if (strcmp(username, user) != 0 || strcmp(realm, AUTH_REALM) != 0 ||
	    strcmp(nonce, AUTH_NONCE) != 0 || strcmp(qop, "auth") != 0 ||
	    strlen(uri) != req->path_len + (req->query ? req->query_len + 1 : 0) ||
	    memcmp(uri, req->path, strlen(uri)) != 0)
		return 0;
	snprintf(text, sizeof(text), "%s:%s:%s", user, AUTH_REALM, pass);
	if (md5_hex(text, ha1) != 0)
		return 0;
	snprintf(text, sizeof(text), "%.*s:%s", (int)req->method_len,
		 req->method, uri);
	if (md5_hex(text, ha2) != 0)
		return 0;
	snprintf(text, sizeof(text), "%s:%s:%s:%s:auth:%s", ha1, nonce, nc,
		 cnonce, ha2);
	if (md5_hex(text, expected) != 0)
		return 0;
	return strcmp(expected, response) == 0;
}

/* /basic/USER/PASS and /digest/USER/PASS: 204 with the right credentials,
 * else 401 and a challenge of that scheme. */
static void route_auth(const struct request *req, const char *rest,
		       size_t len, int digest, struct action *act)
{
	char user[CREDENTIAL_MAX], pass[CREDENTIAL_MAX];

	if (split_credentials(rest, len, user, pass) != 0) {
		act->status = 400;
		return;
	}
	if (digest ? digest_verifies(req, user, pass)
		   : basic_verifies(req, user, pass)) {
		act->status = 204;
		return;
	}
	act->status = 401;
	if (digest)
		snprintf(act->challenge, sizeof(act->challenge),
			 "Digest realm=\"" AUTH_REALM "\", qop=\"auth\", "
			 "algorithm=MD5, nonce=\"" AUTH_NONCE "\"");
	else
		snprintf(act->challenge, sizeof(act->challenge),
			 "Basic realm=\"" AUTH_REALM "\"");
}

/* Decides the answer from the path. */
static void route(struct server *s, const struct request *req,
		  struct action *act)
{
	const char *p = req->path;
	size_t len = req->path_len, rest;
	uint64_t n;

	memset(act, 0, sizeof(*act));
	act->kind = ACT_ANSWER;
	act->status = s->opt.status;
	if (has_prefix(p, len, "/status/", &rest)) {
		char delay[16];

		if (parse_status(p + rest, len - rest, &act->status) != 0) {
			act->status = 400;
			return;
		}
		query_param(req->query, req->query_len, "retry_after",
			    act->retry_after, sizeof(act->retry_after));
		if (query_param(req->query, req->query_len, "delay_ms", delay,
				sizeof(delay)) == 0)
			return;
		if (parse_decimal(delay, strlen(delay), 24 * 3600 * 1000,
				  &n) != 0) {
			act->status = 400;
			return;
		}
		act->kind = ACT_SLOW;
		act->delay_ms = (int64_t)n;
	} else if (has_prefix(p, len, "/seq/", &rest)) {
		route_seq(s, req, p + rest, len - rest, act);
	} else if (len == 5 && memcmp(p, "/hang", 5) == 0) {
		act->kind = ACT_HANG;
	} else if (len == 6 && memcmp(p, "/reset", 6) == 0) {
		act->kind = ACT_RESET;
	} else if (len == 9 && memcmp(p, "/resetmid", 9) == 0) {
		act->kind = ACT_RESET_MID;
	} else if (has_prefix(p, len, "/slow/", &rest)) {
		if (parse_decimal(p + rest, len - rest, 24 * 3600 * 1000, &n) != 0) {
			act->status = 400;
		} else {
			act->kind = ACT_SLOW;
			act->status = 204;
			act->delay_ms = (int64_t)n;
		}
	} else if (has_prefix(p, len, "/endless/", &rest)) {
		if (parse_status(p + rest, len - rest, &act->status) != 0)
			act->status = 400;
		else
			act->kind = ACT_ENDLESS;
	} else if (has_prefix(p, len, "/random/", &rest)) {
		if (parse_decimal(p + rest, len - rest, 100, &n) != 0)
			act->status = 400;
		else
			act->status = next_random(s) % 100 < n ? 503 : 204;
	} else if (len == 6 && memcmp(p, "/close", 6) == 0) {
		act->status = 204;
		act->close = 1;
	} else if (has_prefix(p, len, "/basic/", &rest)) {
		route_auth(req, p + rest, len - rest, 0, act);
	} else if (has_prefix(p, len, "/digest/", &rest)) {
		route_auth(req, p + rest, len - rest, 1, act);
	}
}

/* ---- connections ---- */

static void conn_close(struct server *s, struct conn *c)
{
	if (c->state == CONN_SLOW)
		s->slow_count--;
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->conn_count--;
	free(c->in);
	free(c->out);
	free(c);
}

static void conn_set_state(struct server *s, struct conn *c,
			   enum conn_state state)
{
	if (c->state == CONN_SLOW)
		s->slow_count--;
	if (state == CONN_SLOW)
		s->slow_count++;
	c->state = state;
}

static int out_append(struct conn *c, const char *text, size_t len)
{
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_cap - c->out_len < len) {
		size_t cap = c->out_cap ? c->out_cap : 1024;
		char *grown;

		while (cap - c->out_len < len)
			cap *= 2;
		grown = realloc(c->out, cap);
		if (!grown)
			return -1;
		c->out = grown;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, text, len);
	c->out_len += len;
	return 0;
}

static int answer(struct conn *c, int status, const char *retry_after,
		  const char *challenge, int close_after)
{
	char text[512 + RETRY_AFTER_MAX + CHALLENGE_MAX];
	size_t n;

	n = (size_t)snprintf(text, sizeof(text), "HTTP/1.1 %d %s\r\n", status,
			     reason_phrase(status));
	if (status != 204 && status != 304)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "Content-Length: 0\r\n");
	if (retry_after && *retry_after)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "Retry-After: %s\r\n", retry_after);
	if (challenge && *challenge)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "WWW-Authenticate: %s\r\n", challenge);
	if (status >= 300 && status < 400)
		n += (size_t)snprintf(text + n, sizeof(text) - n,
				      "Location: /elsewhere\r\n");
	n += (size_t)snprintf(text + n, sizeof(text) - n, "%s\r\n",
			      close_after ? "Connection: close\r\n" : "");
	return out_append(c, text, n);
}

/* Answers a request that cannot be framed, and closes after. */
static int answer_and_close(struct server *s, struct conn *c, int status)
{
	conn_set_state(s, c, CONN_CLOSING);
	return answer(c, status, NULL, NULL, 1);
}

static void reset_connection(struct conn *c)
{
	struct linger lg = { 1, 0 };

	/* Linger 0 turns close() into an RST: the peer sees a reset, not an
	 * orderly end. */
	(void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

/*
 * Acts on one complete request of total bytes at raw. Returns 0, or -1 when
 * the connection must be reset now.
 */
static int handle_request(struct server *s, struct conn *c, const char *raw,
			  size_t total, const struct request *req)
{
	struct action act;
	int recorded_status;

	s->requests++;
	route(s, req, &act);
	recorded_status = act.kind == ACT_HANG || act.kind == ACT_RESET ||
			  act.kind == ACT_RESET_MID ? 0 : act.status;
	record_request(s, raw, total);
	record_id(s, c, req->id, recorded_status, wall_ms());
	switch (act.kind) {
	case ACT_ANSWER:
		if (act.close || !req->keep_alive)
			conn_set_state(s, c, CONN_CLOSING);
		return answer(c, act.status, act.retry_after, act.challenge,
			      c->state == CONN_CLOSING);
	case ACT_HANG:
		conn_set_state(s, c, CONN_HANG);
		return 0;
	case ACT_RESET:
		reset_connection(c);
		return -1;
	case ACT_RESET_MID: {
		/* Half of a 204's head, then a reset: a client must not take
		 * the status line alone for a delivery. */
		static const char half[] = "HTTP/1.1 204 No Content\r\nContent-Le";

		(void)send(c->fd, half, sizeof(half) - 1, MSG_NOSIGNAL);
		reset_connection(c);
		return -1;
	}
	case ACT_SLOW:
		c->deadline = mono_ms() + act.delay_ms;
		c->slow_status = act.status;
		memcpy(c->slow_retry_after, act.retry_after,
		       sizeof(c->slow_retry_after));
		conn_set_state(s, c, CONN_SLOW);
		return 0;
	case ACT_ENDLESS: {
		char head[128];
		int n = snprintf(head, sizeof(head),
				 "HTTP/1.1 %d %s\r\nTransfer-Encoding: chunked\r\n\r\n",
				 act.status, reason_phrase(act.status));

		conn_set_state(s, c, CONN_ENDLESS);
		c->chunk_off = 0;
		return out_append(c, head, (size_t)n);
	}
	}
	return 0;
}

/*
 * Parses and answers the buffered requests, in order, until one must wait.
 * Returns 0, or -1 when the connection is to be dropped.
 */
static int conn_process(struct server *s, struct conn *c)
{
	while (c->state == CONN_READY && c->out_len - c->out_off < OUT_HIGH) {
		const char *p = c->in + c->in_start;
		size_t avail = c->in_len - c->in_start, total;
		struct request req;
		int status;

		if (!c->have_head) {
			/* Resume the search where the last one stopped, less
			 * the three bytes a split CRLFCRLF may have left. */
			size_t from = c->scanned > 3 ? c->scanned - 3 : 0;
			const char *end = avail > from ?
					  memmem(p + from, avail - from, "\r\n\r\n", 4) : NULL;

			if (!end) {
				c->scanned = avail;
				if (avail >= MAX_HEAD)
					return answer_and_close(s, c, 431);
				break;
			}
			c->head_len = (size_t)(end - p) + 4;
			if (c->head_len > MAX_HEAD)
				return answer_and_close(s, c, 431);
			status = parse_head(p, c->head_len, &req);
			if (status == 0 && req.content_length > MAX_BODY)
				status = 413;
			if (status == 411 || status == 400) {
				/* The head is all that can be framed. */
				s->requests++;
				record_request(s, p, c->head_len);
				record_id(s, c, req.id, status, wall_ms());
				return answer_and_close(s, c, status);
			}
			if (status != 0)
				return answer_and_close(s, c, status);
			c->have_head = 1;
			c->body_len = (size_t)req.content_length;
			if (req.expect_continue && avail < c->head_len + c->body_len &&
			    out_append(c, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0)
				return -1;
		}
		total = c->head_len + c->body_len;
		if (avail < total)
			break;
		/* The buffer may have moved since the head was first parsed. */
		if (parse_head(p, c->head_len, &req) != 0)
			return -1;
		c->have_head = 0;
		c->scanned = 0;
		c->in_start += total;
		if (handle_request(s, c, p, total, &req) != 0)
			return -1;
	}
	if (c->in_start == c->in_len)
		c->in_start = c->in_len = 0;
	return 0;
}

/* Makes room for a read. Returns the free bytes, 0 when the input is full. */
static size_t in_reserve(struct conn *c)
{
	size_t used = c->in_len - c->in_start;

	if (c->in_cap - c->in_len >= READ_CHUNK)
		return c->in_cap - c->in_len;
	if (c->in_start > 0) {
		memmove(c->in, c->in + c->in_start, used);
		c->in_len = used;
		c->in_start = 0;
		if (c->in_cap - c->in_len >= READ_CHUNK)
			return c->in_cap - c->in_len;
	}
	if (used + READ_CHUNK <= MAX_CONN_INPUT) {
		size_t cap = c->in_cap ? c->in_cap * 2 : 2 * READ_CHUNK;
		char *grown;

		if (cap > MAX_CONN_INPUT)
			cap = MAX_CONN_INPUT;
		grown = realloc(c->in, cap);
		if (!grown)
			return 0;
		c->in = grown;
		c->in_cap = cap;
	}
	return c->in_cap - c->in_len;
}

static int input_wanted(const struct conn *c)
{
	if (c->peer_closed)
		return 0;
	if (c->state == CONN_READY || c->state == CONN_SLOW)
		return c->in_len - c->in_start + READ_CHUNK <= MAX_CONN_INPUT;
	return 1;
}

/* Reads what is there. Returns 0, or -1 on a connection error. */
static int conn_read(struct server *s, struct conn *c)
{
	for (int round = 0; round < 4 && !c->peer_closed; round++) {
		ssize_t n;
		size_t room;
		int discard = !(c->state == CONN_READY || c->state == CONN_SLOW);

		if (discard) {
			n = read(c->fd, s->scratch, sizeof(s->scratch));
			room = sizeof(s->scratch);
		} else {
			room = in_reserve(c);
			if (room == 0)
				return 0;
			n = read(c->fd, c->in + c->in_len, room);
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -1;
		if (n == 0) {
			c->peer_closed = 1;
			return 0;
		}
		if (!discard)
			c->in_len += (size_t)n;
		if ((size_t)n < room)
			return 0;
	}
	return 0;
}

/* Sends queued output, then endless chunks. Returns 0, or -1 when the
 * peer is gone. */
static int conn_flush(struct server *s, struct conn *c)
{
	size_t burst = 0;

	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -1;
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	while (c->state == CONN_ENDLESS && burst < ENDLESS_BURST) {
		ssize_t n = send(c->fd, s->chunk + c->chunk_off,
				 s->chunk_len - c->chunk_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -1;
		burst += (size_t)n;
		c->chunk_off = (c->chunk_off + (size_t)n) % s->chunk_len;
	}
	return 0;
}

static int conn_update_events(struct server *s, struct conn *c)
{
	uint32_t want = 0;
	struct epoll_event ev;

	if (input_wanted(c))
		want |= EPOLLIN;
	if (c->out_off < c->out_len || c->state == CONN_ENDLESS)
		want |= EPOLLOUT;
	if (want == c->events)
		return 0;
	ev.events = want;
	ev.data.ptr = &c->watch;
	if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
		return -1;
	c->events = want;
	return 0;
}

/*
 * Moves a connection on after input, a writable socket or a timer: answers
 * what can be answered, sends, and closes when it is over.
 */
static void conn_advance(struct server *s, struct conn *c)
{
	if (conn_process(s, c) != 0 || conn_flush(s, c) != 0) {
		conn_close(s, c);
		return;
	}
	if (c->out_off == c->out_len &&
	    (c->state == CONN_CLOSING || c->peer_closed)) {
		conn_close(s, c);
		return;
	}
	if (conn_update_events(s, c) != 0)
		conn_close(s, c);
}

static void conn_event(struct server *s, struct conn *c, uint32_t events)
{
	if (events & EPOLLERR) {
		conn_close(s, c);
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP)) && conn_read(s, c) != 0) {
		conn_close(s, c);
		return;
	}
	conn_advance(s, c);
}

static void accept_all(struct server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		struct epoll_event ev;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/* Out of descriptors the listener stays readable and
			 * the loop spins until one is freed: say so once. */
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    !s->accept_failed && !s->opt.quiet)
				fprintf(stderr, "receiver: accept: %s\n", strerror(errno));
			s->accept_failed = errno != EAGAIN && errno != EWOULDBLOCK;
			return;
		}
		s->connections++;
		c = s->conn_count < MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			close(fd);
			continue;
		}
		c->watch.kind = WATCH_CONN;
		c->fd = fd;
		c->serial = s->connections;
		c->events = EPOLLIN;
		ev.events = c->events;
		ev.data.ptr = &c->watch;
		if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = s->conns;
		if (s->conns)
			s->conns->prev = c;
		s->conns = c;
		s->conn_count++;
	}
}

/* Answers the slow requests that are due; returns ms to the next one, or
 * -1 when none waits. */
static int64_t run_timers(struct server *s)
{
	int64_t now, next = -1;
	struct conn *c, *following;

	if (s->slow_count == 0)
		return -1;
	now = mono_ms();
	for (c = s->conns; c; c = following) {
		following = c->next;
		if (c->state != CONN_SLOW)
			continue;
		if (c->deadline <= now) {
			conn_set_state(s, c, CONN_READY);
			if (answer(c, c->slow_status, c->slow_retry_after,
				   NULL, 0) != 0) {
				conn_close(s, c);
				continue;
			}
			conn_advance(s, c);
		} else if (next < 0 || c->deadline - now < next) {
			next = c->deadline - now;
		}
	}
	return next;
}

/* ---- start-up ---- */

static int open_listener(struct server *s)
{
	struct sockaddr_in addr;
	socklen_t addr_len = sizeof(addr);
	struct epoll_event ev;
	int one = 1;

	s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0) {
		fprintf(stderr, "receiver: socket: %s\n", strerror(errno));
		return -1;
	}
	(void)setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)s->opt.port);
	addr.sin_addr = s->opt.address;
	if (bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(s->listen_fd, 4096) != 0 ||
	    getsockname(s->listen_fd, (struct sockaddr *)&addr, &addr_len) != 0) {
		fprintf(stderr, "receiver: listen on %s:%d: %s\n",
			inet_ntoa(s->opt.address), s->opt.port, strerror(errno));
		return -1;
	}
	s->opt.port = ntohs(addr.sin_port);
	s->listen_watch.kind = WATCH_LISTEN;
	ev.events = EPOLLIN;
	ev.data.ptr = &s->listen_watch;
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->listen_fd, &ev) != 0) {
		fprintf(stderr, "receiver: epoll_ctl: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* SIGTERM and SIGINT arrive as readable data, so the loop needs no flag. */
static int open_signals(struct server *s)
{
	sigset_t set;
	struct epoll_event ev;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	s->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s->signal_fd < 0)
		return -1;
	s->signal_watch.kind = WATCH_SIGNAL;
	ev.events = EPOLLIN;
	ev.data.ptr = &s->signal_watch;
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->signal_fd, &ev);
}

/* Room for MAX_CONNS connections, as far as the hard limit allows. */
static void raise_fd_limit(void)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
		return;
	if (lim.rlim_cur < MAX_CONNS + 64) {
		lim.rlim_cur = lim.rlim_max < MAX_CONNS + 64 ? lim.rlim_max :
			       MAX_CONNS + 64;
		(void)setrlimit(RLIMIT_NOFILE, &lim);
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: receiver [--address A] [--port N] [--port-file F] [--record F]\n"
		"                [--ids F] [--status N] [--seed N] [--max-seconds N]\n"
		"                [--quiet]\n"
		"An HTTP/1.1 server on 127.0.0.1 (or the IPv4 address A) for tests\n"
		"and benchmarks.\n"
		"Paths: /status/NNN[?retry_after=X][&delay_ms=MS] /seq/A,B,... /hang\n"
		"       /reset /resetmid\n"
		"       /slow/MS /endless/NNN /random/P /close /basic/USER/PASS\n"
		"       /digest/USER/PASS; others get --status.\n");
}

/* Returns 0, 1 after --help, or -1 on bad usage. */
static int parse_options(int argc, char **argv, struct options *opt)
{
	static const struct option longopts[] = {
		{ "address", required_argument, NULL, 'a' },
		{ "port", required_argument, NULL, 'p' },
		{ "port-file", required_argument, NULL, 'f' },
		{ "record", required_argument, NULL, 'r' },
		{ "ids", required_argument, NULL, 'i' },
		{ "status", required_argument, NULL, 's' },
		{ "seed", required_argument, NULL, 'S' },
		{ "max-seconds", required_argument, NULL, 'm' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t n;
	int ch;

	opt->address.s_addr = htonl(INADDR_LOOPBACK);
	opt->status = 204;
	opt->seed = 1;
	opt->max_seconds = 3600;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			if (inet_pton(AF_INET, optarg, &opt->address) != 1) {
				fprintf(stderr, "receiver: --address: not an IPv4 "
					"address: %s\n", optarg);
				return -1;
			}
			break;
		case 'p':
			if (parse_option_number("port", optarg, 65535, &n) != 0)
				return -1;
			opt->port = (int)n;
			break;
		case 'f':
			opt->port_file = optarg;
			break;
		case 'r':
			opt->record_path = optarg;
			break;
		case 'i':
			opt->ids_path = optarg;
			break;
		case 's':
			if (parse_option_number("status", optarg, 599, &n) != 0)
				return -1;
			if (n < 200) {
				fprintf(stderr, "receiver: --status: 200 to 599\n");
				return -1;
			}
			opt->status = (int)n;
			break;
		case 'S':
			if (parse_option_number("seed", optarg, UINT64_MAX, &n) != 0)
				return -1;
			opt->seed = n;
			break;
		case 'm':
			if (parse_option_number("max-seconds", optarg, 10 * 365 * 86400L,
						&n) != 0)
				return -1;
			opt->max_seconds = (long)n;
			break;
		case 'q':
			opt->quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "receiver: unexpected argument: %s\n", argv[optind]);
		return -1;
	}
	return 0;
}

static void server_release(struct server *s)
{
	while (s->conns)
		conn_close(s, s->conns);
	seq_free(s);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->signal_fd >= 0)
		close(s->signal_fd);
	if (s->record_fd >= 0)
		close(s->record_fd);
	if (s->ids_fd >= 0)
		close(s->ids_fd);
	if (s->epfd >= 0)
		close(s->epfd);
}

static void build_chunk(struct server *s)
{
	int n = snprintf(s->chunk, sizeof(s->chunk), "%x\r\n", ENDLESS_CHUNK);

	memset(s->chunk + n, 'x', ENDLESS_CHUNK);
	memcpy(s->chunk + n + ENDLESS_CHUNK, "\r\n", 2);
	s->chunk_len = (size_t)n + ENDLESS_CHUNK + 2;
}

static int serve(struct server *s)
{
	struct epoll_event events[MAX_EVENTS];
	int64_t end = mono_ms() + (int64_t)s->opt.max_seconds * 1000;

	for (;;) {
		int64_t now = mono_ms(), wait = end - now, next;
		int n;

		if (wait <= 0) {
			if (!s->opt.quiet)
				fprintf(stderr, "receiver: --max-seconds reached\n");
			return 0;
		}
		next = run_timers(s);
		if (next >= 0 && next < wait)
			wait = next;
		n = epoll_wait(s->epfd, events, MAX_EVENTS,
			       wait > 60000 ? 60000 : (int)wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "receiver: epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (int i = 0; i < n; i++) {
			struct watch *w = events[i].data.ptr;

			if (w->kind == WATCH_SIGNAL)
				return 0;
			if (w->kind == WATCH_LISTEN)
				accept_all(s);
			else
				conn_event(s, (struct conn *)(void *)w, events[i].events);
		}
	}
}

int main(int argc, char **argv)
{
	struct server *s = calloc(1, sizeof(*s));
	int rc = 1;

	if (!s) {
		fprintf(stderr, "receiver: out of memory\n");
		return 1;
	}
	s->epfd = s->listen_fd = s->signal_fd = s->record_fd = s->ids_fd = -1;
	rc = parse_options(argc, argv, &s->opt);
	if (rc != 0) {
		/* 1 is --help, which succeeded. */
		rc = rc > 0 ? 0 : 2;
		goto out;
	}
	rc = 1;
	/* xorshift must not start at zero. */
	s->rng = s->opt.seed ^ 0x9E3779B97F4A7C15ULL;
	if (s->rng == 0)
		s->rng = 1;
	build_chunk(s);
	raise_fd_limit();
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (s->epfd < 0 || open_signals(s) != 0) {
		fprintf(stderr, "receiver: epoll/signalfd: %s\n", strerror(errno));
		goto out;
	}
	if (s->opt.record_path && (s->record_fd = open_append(s->opt.record_path)) < 0)
		goto out;
	if (s->opt.ids_path && (s->ids_fd = open_append(s->opt.ids_path)) < 0)
		goto out;
	if (open_listener(s) != 0)
		goto out;
	if (s->opt.port_file && write_port_file(s->opt.port_file, s->opt.port) != 0)
		goto out;
	if (!s->opt.quiet)
		fprintf(stderr, "receiver: listening on %s:%d\n",
			inet_ntoa(s->opt.address), s->opt.port);
	rc = serve(s);
	fprintf(stderr, "requests=%" PRIu64 " connections=%" PRIu64 "\n",
		s->requests, s->connections);
out:
	server_release(s);
	free(s);
	return rc;
}
