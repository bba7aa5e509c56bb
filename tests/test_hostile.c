/*
 * test_hostile.c - hostile and malformed input through the real binary.
 *
 * Events whose every text field, cloud_ids and config values hold quotes,
 * markup, control characters, invalid UTF-8, placeholders and very long
 * strings are produced through the store and delivered to the real
 * receiver. Every event must end delivered or failed with a reason (or, for
 * a config error, wait untouched), every request the receiver recorded must
 * carry a well-formed body, and no value may add a header line.
 * On PostgreSQL, whose text is valid UTF-8 only and which checks the
 * parties as jsonb, a value it cannot hold is refused when it is written
 * (as a producer's INSERT would be), and its case ends there.
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "render.h"
#include "store.h"
#include "testutil.h"

#define RUN_TIMEOUT_MS 60000
#define KB 1024

static const char two_parties[] =
	"[{\"username\":\"eric\",\"device\":\"erics_iphone\"},"
	"{\"username\":\"madelaine\",\"device\":\"madelaines_android\"}]";

struct env {
	char *dir;
	char *db;
	struct tu_receiver rx;
	struct store *store;
};

static void env_open(struct env *env, const char *name)
{
	char err[256];

	env->dir = tu_tmpdir(name);
	env->db = tu_db(env->dir);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "init",
				       env->db, NULL), 0);
	tu_receiver_start(&env->rx, env->dir);
	ck_assert_int_eq(store_open(env->db, STORE_OPEN_EXISTING, &env->store,
				    err, sizeof(err)), STORE_OK);
}

static void env_close(struct env *env)
{
	store_close(env->store);
	tu_receiver_stop(&env->rx);
	free(env->db);
	free(env->dir);
}

/* 1 when text is UTF-8 as RFC 3629 has it: no overlong forms, no
 * surrogates, nothing past U+10FFFF. */
static int utf8_valid(const char *text)
{
	const unsigned char *s = (const unsigned char *)text;

	while (*s != '\0') {
		unsigned long cp;
		int more;

		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s >= 0xc2 && *s <= 0xdf)
			more = 1;
		else if ((*s & 0xf0) == 0xe0)
			more = 2;
		else if (*s >= 0xf0 && *s <= 0xf4)
			more = 3;
		else
			return 0;
		cp = *s & (0x3f >> more);
		for (int i = 1; i <= more; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		s += more + 1;
	}
	return 1;
}

static int on_postgresql(const struct env *env)
{
	return strncmp(env->db, "postgresql://", 13) == 0;
}

/* 1 when the database cannot hold value (NULL: the default). */
static int engine_refuses(const struct env *env, const char *value)
{
	return on_postgresql(env) && value != NULL && !utf8_valid(value);
}

/*
 * Checks the result rc of writing what: STORE_OK, or a refusal with a
 * reason when refused. Returns 1 when it was written.
 */
static int written(struct env *env, int rc, int refused, const char *what)
{
	if (refused) {
		ck_assert_msg(rc != STORE_OK && *store_errmsg(env->store),
			      "%s: held a value the database cannot hold",
			      what);
		return 0;
	}
	ck_assert_msg(rc == STORE_OK, "%s: %s", what, store_errmsg(env->store));
	return 1;
}

/* Returns 1, or 0 when the database refused it (see engine_refuses). */
static int config_set(struct env *env, const char *cloud_id, const char *key,
		      const char *value)
{
	return written(env, store_config_set(env->store, cloud_id, key, value),
		       engine_refuses(env, cloud_id) ||
		       engine_refuses(env, value), key);
}

static int provision(struct env *env, const char *cloud_id,
		     const char *content_type)
{
	char *url = tu_receiver_url(&env->rx, "/notify");
	int ok = config_set(env, cloud_id, "smartContactNotificationUrl", url) &&
		 config_set(env, cloud_id, "smartContactNotificationContentType",
			    content_type);

	free(url);
	return ok;
}

/* The new event's id, or 0 when the database refused it: because a value
 * is not UTF-8, or because not_jsonb and the database is PostgreSQL. */
static int64_t produce_checked(struct env *env, int not_jsonb,
			       const char *cloud_id, const char *number,
			       const char *network, const char *uri,
			       const char *parties)
{
	struct new_event ev = { cloud_id, number, network, uri, parties };
	int64_t id = 0;
	int refused = engine_refuses(env, cloud_id) ||
		      engine_refuses(env, number) ||
		      engine_refuses(env, network) ||
		      engine_refuses(env, uri) ||
		      engine_refuses(env, parties) ||
		      (not_jsonb && on_postgresql(env));

	return written(env, store_enqueue(env->store, &ev, &id), refused,
		       "enqueue") ? id : 0;
}

static int64_t produce(struct env *env, const char *cloud_id,
		       const char *number, const char *network,
		       const char *uri, const char *parties)
{
	return produce_checked(env, 0, cloud_id, number, network, uri,
			       parties);
}

/* A new string of n bytes: unit repeated (cut at n). */
static char *repeat(const char *unit, size_t n)
{
	size_t len = strlen(unit);
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < n; i++)
		s[i] = unit[i % len];
	s[n] = '\0';
	return s;
}

/* `smartrelay run --once DB`; returns its stderr. */
static char *run_once(struct env *env)
{
	char *err = NULL;
	int status = tu_smartrelay(RUN_TIMEOUT_MS, NULL, &err, "run", "--once",
				   "--max-attempts", "1", env->db, NULL);

	ck_assert_msg(status == 0, "run --once exited %d: %s", status, err);
	return err;
}

/* ---- the event's row ---------------------------------------------------- */

struct row {
	char status[16];
	int64_t attempts;
	long http_status;
	char *error; /* new, or NULL */
};

static int take_row(const struct history_row *h, void *arg)
{
	struct row *row = arg;

	snprintf(row->status, sizeof(row->status), "%s",
		 h->status ? h->status : "");
	row->attempts = h->attempts;
	row->http_status = h->http_status;
	row->error = h->error ? strdup(h->error) : NULL;
	return 0;
}

static struct row fetch(struct env *env, int64_t id)
{
	struct history_filter filter = { .id = id };
	struct row row;

	memset(&row, 0, sizeof(row));
	ck_assert_int_eq(store_history(env->store, &filter, take_row, &row),
			 STORE_OK);
	ck_assert_msg(row.status[0], "event %lld not found", (long long)id);
	return row;
}

/* ---- what the receiver got ---------------------------------------------- */

/* RFC 9110 token characters. */
static int is_tchar(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/*
 * Checks every recorded request: a head of "Name: value" lines, no line
 * a value could have added, a Content-Type of JSON or XML, and a body that
 * parses as that. Returns the number of requests.
 */
static int check_requests(struct env *env)
{
	char *raw = tu_receiver_requests(&env->rx);
	const char *p = raw ? raw : "";
	int count = 0;

	while ((p = strstr(p, "=== REQUEST ")) != NULL) {
		unsigned long long seq;
		size_t len, head_len;
		const char *req, *end, *line, *eol, *body;
		enum content_kind kind = CONTENT_JSON;
		int has_type = 0;
		char err[256];

		ck_assert_int_eq(sscanf(p, "=== REQUEST %llu %zu", &seq, &len), 2);
		req = strchr(p, '\n') + 1;
		end = strstr(req, "\r\n\r\n");
		ck_assert_msg(end != NULL && (size_t)(end - req) < len,
			      "request %llu has no head", seq);
		head_len = (size_t)(end - req);
		body = end + 4;
		/* The request line, then the header lines. */
		line = strstr(req, "\r\n") + 2;
		ck_assert_msg(strncmp(req, "POST /notify", 12) == 0 &&
			      strncmp(line - 11, " HTTP/1.1\r\n", 11) == 0,
			      "request %llu: request line %.40s", seq, req);
		for (const char *c = req; c < line - 2; c++)
			ck_assert_msg((unsigned char)*c > 0x20 || *c == ' ',
				      "request %llu: control character in the "
				      "request line", seq);
		while (line < end) {
			const char *colon;

			eol = strstr(line, "\r\n");
			colon = memchr(line, ':', (size_t)(eol - line));
			ck_assert_msg(colon != NULL && colon > line,
				      "request %llu: header line without a "
				      "name: %.60s", seq, line);
			for (const char *c = line; c < colon; c++)
				ck_assert_msg(is_tchar((unsigned char)*c),
					      "request %llu: bad header name "
					      "%.60s", seq, line);
			for (const char *c = line; c < eol; c++)
				ck_assert_msg(*c != '\r' && *c != '\n',
					      "request %llu: bare CR", seq);
			ck_assert_msg(strncasecmp(line, "X-Injected", 10) != 0,
				      "request %llu: injected header", seq);
			if (strncasecmp(line, "Content-Type: application/xml",
					29) == 0) {
				kind = CONTENT_XML;
				has_type = 1;
			} else if (strncasecmp(line, "Content-Type: "
					       "application/json", 30) == 0) {
				has_type = 1;
			}
			line = eol + 2;
		}
		ck_assert_msg(has_type, "request %llu: no content type", seq);
		ck_assert_msg(render_check_body(kind, body,
						len - head_len - 4, err,
						sizeof(err)) == 0,
			      "request %llu: body not well-formed: %s", seq,
			      err);
		count++;
		p = body + (len - head_len - 4);
	}
	free(raw);
	return count;
}

/* ---- event fields ------------------------------------------------------- */

/* What must become of an event: NULL delivered, else failed with an error
 * holding this text. */
struct field_case {
	const char *what;
	const char *value;  /* NULL: built from big_unit and big_size */
	const char *big_unit;
	size_t big_size;
	const char *json;
	const char *xml;
};

static const struct field_case field_cases[] = {
	{ "quotes and markup", "\"'<>&]]><!-- -->{}[]\\", NULL, 0, NULL, NULL },
	{ "JSON break-out", "\",\"injected\":\"x", NULL, 0, NULL, NULL },
	{ "XML break-out", "</new_smart_number><injected/>", NULL, 0, NULL,
	  NULL },
	{ "header-like lines", "x\r\nX-Injected: 1\r\n\r\nbody", NULL, 0, NULL,
	  NULL },
	{ "control character", "a\x01z", NULL, 0, NULL, "U+0001" },
	{ "U+FFFE", "a\xef\xbf\xbez", NULL, 0, NULL, "U+FFFE" },
	{ "line separator, BOM, emoji", "\xe2\x80\xa8\xef\xbb\xbf\xf0\x9f\x98\x80",
	  NULL, 0, NULL, NULL },
	{ "invalid UTF-8", "\xff\xfe", NULL, 0, "UTF-8", "UTF-8" },
	{ "overlong UTF-8", "\xc0\xaf", NULL, 0, "UTF-8", "UTF-8" },
	{ "UTF-8 surrogate", "\xed\xa0\x80", NULL, 0, "UTF-8", "UTF-8" },
	{ "truncated UTF-8", "abc\xe2\x82", NULL, 0, "UTF-8", "UTF-8" },
	{ "continuation bytes alone", "\x9a\x8c", NULL, 0, "UTF-8", "UTF-8" },
	{ "placeholders", "%network_id%%interestedParties%%%", NULL, 0, NULL,
	  NULL },
	{ "format directives", "%s%n%x%%", NULL, 0, NULL, NULL },
	{ "empty", "", NULL, 0, NULL, NULL },
	{ "100 KB of markup", NULL, "<&\"'>", 100 * KB, NULL, NULL },
	/* Escaped five times over, it passes the bound in XML only. */
	{ "300 KB of markup", NULL, "<&\"'>", 300 * KB, NULL, "exceeds" },
	{ "over 1 MiB", NULL, "a", RENDER_MAX_BODY + 100 * KB, "exceeds",
	  "exceeds" },
};

#define N_FIELD_CASES (sizeof(field_cases) / sizeof(field_cases[0]))

static const struct field_case party_cases[] = {
	{ "markup in parties",
	  "[{\"username\":\"\\\"<x>&'\",\"device\":\"]]></device><evil/>\"}]",
	  NULL, 0, NULL, NULL },
	{ "NUL escape", "[{\"username\":\"a\\u0000b\",\"device\":\"x\"}]", NULL,
	  0, "interested_parties", "interested_parties" },
	{ "lone surrogate escape",
	  "[{\"username\":\"\\ud800\",\"device\":\"x\"}]", NULL, 0,
	  "interested_parties", "interested_parties" },
	{ "raw invalid UTF-8", "[{\"username\":\"\xff\",\"device\":\"x\"}]",
	  NULL, 0, "UTF-8", "UTF-8" },
	{ "control escape", "[{\"username\":\"\\u0001\",\"device\":\"x\"}]",
	  NULL, 0, NULL, "U+0001" },
	{ "not objects", "[1, \"two\", null]", NULL, 0, "not an object",
	  "not an object" },
	{ "username a number", "[{\"username\":1,\"device\":\"x\"}]", NULL, 0,
	  "not a string", "not a string" },
	{ "device missing", "[{\"username\":\"u\"}]", NULL, 0, "missing",
	  "missing" },
	{ "extra keys", "[{\"username\":\"u\",\"device\":\"d\",\"x\":\"<y>\"}]",
	  NULL, 0, NULL, NULL },
	{ "empty", "[]", NULL, 0, NULL, NULL },
	{ "about 100 KB of parties", NULL,
	  "{\"username\":\"<u&>\",\"device\":\"'d\\\"\"},", 100 * KB, NULL,
	  NULL },
	{ "over 1 MiB of parties", NULL,
	  "{\"username\":\"<u&>\",\"device\":\"'d\\\"\"},",
	  RENDER_MAX_BODY + 100 * KB, "exceeds", "exceeds" },
};

#define N_PARTY_CASES (sizeof(party_cases) / sizeof(party_cases[0]))

/* The party cases PostgreSQL refuses: jsonb holds no NUL and no lone
 * surrogate. */
static int not_jsonb(const struct field_case *c)
{
	return strcmp(c->what, "NUL escape") == 0 ||
	       strcmp(c->what, "lone surrogate escape") == 0;
}

/* The value of a case; a long one is new (*owned set to it). */
static const char *case_value(const struct field_case *c, int parties,
			      char **owned)
{
	size_t unit_len, n;
	char *s;

	*owned = NULL;
	if (c->value != NULL)
		return c->value;
	if (!parties)
		return *owned = repeat(c->big_unit, c->big_size);
	/* "[" + whole units, the last one's comma made "]". */
	unit_len = strlen(c->big_unit);
	n = c->big_size / unit_len;
	s = malloc(n * unit_len + 2);
	ck_assert_ptr_nonnull(s);
	s[0] = '[';
	for (size_t k = 0; k < n; k++)
		memcpy(s + 1 + k * unit_len, c->big_unit, unit_len);
	s[n * unit_len] = ']';
	s[n * unit_len + 1] = '\0';
	return *owned = s;
}

struct produced {
	int64_t id;
	const char *what;
	const char *field;
	const char *expect;
};

/* Where the database refused the event, that was its check. */
static void check_outcome(struct env *env, const struct produced *p)
{
	struct row row;

	if (p->id == 0)
		return;
	row = fetch(env, p->id);
	if (p->expect == NULL) {
		ck_assert_msg(strcmp(row.status, "delivered") == 0,
			      "%s in %s: %s (%s)", p->what, p->field,
			      row.status, row.error ? row.error : "");
		ck_assert_int_eq(row.http_status, 204);
	} else {
		ck_assert_msg(strcmp(row.status, "failed") == 0,
			      "%s in %s: %s, not failed", p->what, p->field,
			      row.status);
		ck_assert_msg(row.error != NULL &&
			      strstr(row.error, p->expect) != NULL,
			      "%s in %s: error \"%s\" lacks \"%s\"", p->what,
			      p->field, row.error ? row.error : "",
			      p->expect);
		/* Nothing was sent for it. */
		ck_assert_int_eq(row.attempts, 0);
	}
	free(row.error);
}

/*
 * Every case in every field of an app of kind; returns the deliveries,
 * and adds the events stored to *stored.
 */
static int produce_field_cases(struct env *env, const char *cloud_id,
			       int xml, struct produced *out, size_t *n,
			       int *stored)
{
	static const char *const fields[] = {
		"new_smart_number", "network_id", "new_smart_uri",
	};
	int delivered = 0;
	char *owned;

	for (size_t i = 0; i < N_FIELD_CASES; i++) {
		const struct field_case *c = &field_cases[i];
		const char *value = case_value(c, 0, &owned);

		for (size_t f = 0; f < 3; f++) {
			struct produced *p = &out[(*n)++];

			p->id = produce(env, cloud_id,
					f == 0 ? value : "+15551231234",
					f == 1 ? value : "network_1",
					f == 2 ? value : "sip_uri_1",
					two_parties);
			p->what = c->what;
			p->field = fields[f];
			p->expect = xml ? c->xml : c->json;
			delivered += p->id != 0 && p->expect == NULL;
			*stored += p->id != 0;
		}
		free(owned);
	}
	for (size_t i = 0; i < N_PARTY_CASES; i++) {
		const struct field_case *c = &party_cases[i];
		const char *value = case_value(c, 1, &owned);
		struct produced *p = &out[(*n)++];

		p->id = produce_checked(env, not_jsonb(c), cloud_id,
					"+15551231234", "network_1",
					"sip_uri_1", value);
		p->what = c->what;
		p->field = "interested_parties";
		p->expect = xml ? c->xml : c->json;
		delivered += p->id != 0 && p->expect == NULL;
		*stored += p->id != 0;
		free(owned);
	}
	return delivered;
}

START_TEST(hostile_event_fields)
{
	struct produced produced[2 * (3 * N_FIELD_CASES + N_PARTY_CASES)];
	size_t n = 0;
	int delivered = 0, stored = 0;
	struct env env;
	char *err, *out = NULL;

	env_open(&env, "hostile-fields");
	ck_assert(provision(&env, "default", "application/json"));
	ck_assert(provision(&env, "xmlapp", "application/xml; charset=utf-8"));
	delivered += produce_field_cases(&env, NULL, 0, produced, &n, &stored);
	delivered += produce_field_cases(&env, "xmlapp", 1, produced, &n,
					 &stored);

	err = run_once(&env);
	for (size_t i = 0; i < n; i++)
		check_outcome(&env, &produced[i]);
	/* One well-formed request per delivered event, and no other. */
	ck_assert_int_eq(check_requests(&env), delivered);
	free(err);
	/* The history shows every one of them as JSON. */
	err = NULL;
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, &err, "history",
				       env.db, "--limit", "0", "--attempts",
				       "--json", NULL), 0);
	ck_assert_msg(render_check_body(CONTENT_JSON, out, strlen(out), NULL,
					0) == 0, "history --json is not JSON");
	ck_assert_int_eq(tu_count(out, "\"new_smart_number\":"), stored);
	free(out);
	free(err);
	env_close(&env);
}
END_TEST

/* ---- cloud_ids ---------------------------------------------------------- */

/* Every stderr line is one log line: "<UTC time> <level> ...". */
static void check_log_lines(const char *text)
{
	const char *line = text;

	while (line != NULL && *line != '\0') {
		const char *eol = strchr(line, '\n');

		ck_assert_msg(strncmp(line, "20", 2) == 0 && line[10] == 'T',
			      "not a log line: %.80s", line);
		line = eol ? eol + 1 : NULL;
	}
}

START_TEST(hostile_cloud_ids)
{
	const char *ids[] = {
		"app\"'<>&",
		"app\r\nX-Injected: 1",
		"\xff\xfe",
		"%s%n%x",
		"'; DROP TABLE outbox; --",
		NULL, /* 100 KB */
	};
	const size_t n_ids = sizeof(ids) / sizeof(ids[0]);
	const char *ghost = "ghost\n2026-01-01T00:00:00.000Z error forged";
	char *big = repeat("c<\"", 100 * KB);
	int64_t event[sizeof(ids) / sizeof(ids[0])], ghost_id;
	struct env env;
	struct row row;
	char *err, *out = NULL;
	int stored = 0;

	ids[n_ids - 1] = big;
	env_open(&env, "hostile-ids");
	for (size_t i = 0; i < n_ids; i++) {
		int provisioned = provision(&env, ids[i], i % 2 ?
					    "application/xml" :
					    "application/json");

		event[i] = produce(&env, ids[i], "+15551231234", "network_1",
				   "sip_uri_1", two_parties);
		ck_assert_int_eq(provisioned, event[i] != 0);
		stored += event[i] != 0;
	}
	ghost_id = produce(&env, ghost, "+15551231234", "network_1",
			   "sip_uri_1", two_parties);

	err = run_once(&env);
	for (size_t i = 0; i < n_ids; i++) {
		if (event[i] == 0)
			continue;
		row = fetch(&env, event[i]);
		ck_assert_msg(strcmp(row.status, "delivered") == 0,
			      "cloud_id %zu: %s", i, row.status);
		free(row.error);
	}
	/* Not provisioned: a config error, and the event waits untouched. */
	row = fetch(&env, ghost_id);
	ck_assert_str_eq(row.status, "pending");
	ck_assert_int_eq(row.attempts, 0);
	free(row.error);
	ck_assert_ptr_nonnull(strstr(err, "config error: cloud_id=ghost "));
	check_log_lines(err);
	ck_assert_int_eq(check_requests(&env), stored);
	free(err);

	/* The history shows them all, one row each, and as JSON. */
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "history",
				       env.db, NULL), 0);
	ck_assert_int_eq(tu_count(out, "\n"), stored + 2);
	ck_assert_ptr_null(strstr(out, "\n2026-01-01T00:00:00.000Z error"));
	ck_assert_ptr_null(strstr(out, "\nX-Injected"));
	ck_assert_ptr_nonnull(strstr(out, "ghost?2026-01-01T"));
	free(out);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, NULL, NULL, "history",
				       env.db, "--attempts", NULL), 0);
	ck_assert_int_eq(tu_smartrelay(RUN_TIMEOUT_MS, &out, NULL, "history",
				       env.db, "--attempts", "--json", NULL), 0);
	ck_assert_msg(render_check_body(CONTENT_JSON, out, strlen(out), NULL,
					0) == 0, "history --json is not JSON");
	free(out);
	free(big);
	env_close(&env);
}
END_TEST

/* ---- config values ------------------------------------------------------ */

#define LONG_10 "aaaaaaaaaa"
#define LONG_100 LONG_10 LONG_10 LONG_10 LONG_10 LONG_10 LONG_10 LONG_10 \
	LONG_10 LONG_10 LONG_10
#define LONG_300 LONG_100 LONG_100 LONG_100

struct config_case {
	const char *cloud_id;
	const char *key;
	const char *value; /* "URL" in it stands for the receiver's URL */
};

static const struct config_case config_cases[] = {
	{ "ct-crlf", "smartContactNotificationContentType",
	  "application/json\r\nX-Injected: 1" },
	{ "ct-nul-free-binary", "smartContactNotificationContentType",
	  "application/json; \x01\x02" },
	{ "headers-bare-cr", "smartContactNotificationCustomHeaders",
	  "X-A: 1\rX-Injected: 2" },
	{ "headers-blank-line", "smartContactNotificationCustomHeaders",
	  "X-A: 1\r\n\r\nX-Injected: 2" },
	{ "headers-bare-lf-value", "smartContactNotificationCustomHeaders",
	  "X-A: 1\n X-Injected: 2" },
	{ "user-crlf", "smartContactNotificationAuthUsername",
	  "u\r\nX-Injected: 1" },
	{ "url-crlf", "smartContactNotificationUrl",
	  "URL\r\nX-Injected: 1" },
	{ "url-space", "smartContactNotificationUrl", "URL X-Injected: 1" },
	{ "template-open", "smartContactNotificationPostData",
	  "{\"a\":\"%new_smart_number%\"" },
	{ "template-invalid-utf8", "smartContactNotificationPostData",
	  "{\"a\":\"\xff%new_smart_number%\"}" },
	{ "template-xml-in-json", "smartContactNotificationPostData",
	  "<n>%new_smart_number%</n>" },
	{ "ct-too-long", "smartContactNotificationContentType",
	  "application/json; x=\"" LONG_300 "\"" },
	{ "timeout-huge", "smartContactNotificationTimeout", "1e400" },
	{ "timeout-nan", "smartContactNotificationTimeout", "nan" },
};

#define N_CONFIG_CASES (sizeof(config_cases) / sizeof(config_cases[0]))

/* Values that are odd but valid: each app's event is delivered. */
static const struct config_case good_config_cases[] = {
	{ "good-url-markup", "smartContactNotificationUrl",
	  "URL?q=\"<x>\"&y='\xff\xc3\xa9'{}|^`" },
	{ "good-ct-params", "smartContactNotificationContentType",
	  "application/json; q=\"<x>\xff\"" },
	{ "good-headers", "smartContactNotificationCustomHeaders",
	  "X-A: 1\r\nX-B: \"<2>\" \xc3\xbf\r\n" },
	{ "good-template", "smartContactNotificationPostData",
	  "{\"n\":\"%new_smart_number%\",\"m\":\"<x>&amp;\xe2\x80\xa8 \\\"\","
	  "\"p\":\"%interestedParties%\",\"%network_id%\":1}" },
	{ "good-user", "smartContactNotificationAuthUsername",
	  "\"<u>\" \xff" },
};

#define N_GOOD_CONFIG_CASES \
	(sizeof(good_config_cases) / sizeof(good_config_cases[0]))

/* The value with "URL" replaced by the receiver's URL (new). */
static char *config_value(struct env *env, const char *value)
{
	char *url = tu_receiver_url(&env->rx, "/notify");
	const char *at = strstr(value, "URL");
	char *text;

	if (at == NULL) {
		text = strdup(value);
	} else {
		text = malloc(strlen(value) + strlen(url) + 1);
		ck_assert_ptr_nonnull(text);
		snprintf(text, strlen(value) + strlen(url) + 1, "%.*s%s%s",
			 (int)(at - value), value, url, at + 3);
	}
	free(url);
	return text;
}

START_TEST(hostile_config_values)
{
	int64_t event[N_CONFIG_CASES], good[N_GOOD_CONFIG_CASES];
	int good_stored = 0;
	struct env env;
	struct row row;
	char *err, *out = NULL, *check_err = NULL, expected[256];

	env_open(&env, "hostile-config");
	for (size_t i = 0; i < N_CONFIG_CASES + N_GOOD_CONFIG_CASES; i++) {
		const struct config_case *c = i < N_CONFIG_CASES ?
			&config_cases[i] :
			&good_config_cases[i - N_CONFIG_CASES];
		char *value = config_value(&env, c->value);
		int64_t *id = i < N_CONFIG_CASES ? &event[i] :
			      &good[i - N_CONFIG_CASES];

		ck_assert(provision(&env, c->cloud_id, "application/json"));
		if (strstr(c->key, "Auth") != NULL) {
			ck_assert(config_set(&env, c->cloud_id,
					     "smartContactNotificationAuthPassword",
					     "pw"));
			ck_assert(config_set(&env, c->cloud_id,
					     "smartContactNotificationAllowInsecureAuth",
					     "true"));
		}
		/* A value the database refused has had its check. */
		*id = 0;
		if (config_set(&env, c->cloud_id, c->key, value)) {
			*id = produce(&env, c->cloud_id, "+15551231234",
				      "network_1", "sip_uri_1", two_parties);
			good_stored += i >= N_CONFIG_CASES;
		}
		free(value);
	}

	err = run_once(&env);
	for (size_t i = 0; i < N_CONFIG_CASES; i++) {
		const struct config_case *c = &config_cases[i];

		if (event[i] == 0)
			continue;
		row = fetch(&env, event[i]);
		ck_assert_msg(strcmp(row.status, "pending") == 0 &&
			      row.attempts == 0, "%s: %s after %lld attempts",
			      c->cloud_id, row.status,
			      (long long)row.attempts);
		free(row.error);
		snprintf(expected, sizeof(expected),
			 "config error: cloud_id=%s key=%s: ", c->cloud_id,
			 c->key);
		ck_assert_msg(strstr(err, expected) != NULL,
			      "%s: no \"%s\" in: %s", c->cloud_id, expected,
			      err);
		/* `config check` says the same, on one line. */
		ck_assert_int_ne(tu_smartrelay(RUN_TIMEOUT_MS, &out, &check_err,
					       "config", env.db, "check",
					       "--cloud-id", c->cloud_id, NULL),
				 0);
		ck_assert_msg(strstr(check_err, expected + 14) != NULL,
			      "%s: check said %s", c->cloud_id, check_err);
		ck_assert_int_eq(tu_count(check_err, "\n"), 1);
		free(out);
		free(check_err);
	}
	check_log_lines(err);
	for (size_t i = 0; i < N_GOOD_CONFIG_CASES; i++) {
		if (good[i] == 0)
			continue;
		row = fetch(&env, good[i]);
		ck_assert_msg(strcmp(row.status, "delivered") == 0,
			      "%s: %s (%s)", good_config_cases[i].cloud_id,
			      row.status, row.error ? row.error : "");
		free(row.error);
	}
	ck_assert_int_eq(check_requests(&env), good_stored);
	/* Good lines with CRLF ends are two headers, as written. */
	out = tu_receiver_requests(&env.rx);
	ck_assert_ptr_nonnull(strstr(out, "\r\nX-A: 1\r\nX-B: \"<2>\" \xc3\xbf\r\n"));
	free(out);
	free(err);
	env_close(&env);
}
END_TEST

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc = tcase_create("hostile");

	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, hostile_event_fields);
	tcase_add_test(tc, hostile_cloud_ids);
	tcase_add_test(tc, hostile_config_values);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(hostile_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
