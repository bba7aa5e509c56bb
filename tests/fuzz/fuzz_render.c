/*
 * fuzz_render.c - libFuzzer target: any template and any event fields.
 *
 * The first byte picks the content kind; the rest splits on NUL into the
 * template (empty: the documented one), new_smart_number, network_id,
 * new_smart_uri and interested_parties. Whatever compiles and renders must
 * be a body under RENDER_MAX_BODY that a fresh parser finds well-formed,
 * with no NUL inside, and the same body again on a second render; no
 * small input may fail as "out of memory", and a field blamed for invalid
 * UTF-8 must be invalid by an independent decoder. Parties with a space
 * in front, which are always parsed and encoded again, must give the same
 * verdict and the same body as the parties themselves, which may be copied
 * as given. The same fields, as the history's JSON records show them, must
 * be valid JSON.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

#define PARTS 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with a line that says which property broke. */
static void fuzz_assert(int ok, const char *what, const char *detail)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_render: %s: %s\n", what, detail ? detail : "");
	abort();
}

/* 1 when s is UTF-8 as RFC 3629 has it, decoded here without libxml2. */
static int utf8_ok(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	uint32_t cp;
	int more;

	while (*u != 0) {
		if (*u < 0x80) {
			u++;
			continue;
		}
		if (*u >= 0xc2 && *u <= 0xdf) {
			cp = *u & 0x1f;
			more = 1;
		} else if (*u >= 0xe0 && *u <= 0xef) {
			cp = *u & 0x0f;
			more = 2;
		} else if (*u >= 0xf0 && *u <= 0xf4) {
			cp = *u & 0x07;
			more = 3;
		} else {
			return 0;
		}
		u++;
		for (int i = 0; i < more; i++, u++) {
			if ((*u & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*u & 0x3f);
		}
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	return 1;
}

/*
 * 1 when err says the memory ran out: alone or as the cause after a colon
 * (a parser's message may quote a template holding those words, but ends
 * in its line and column).
 */
static int is_out_of_memory(const char *err)
{
	static const char oom[] = "out of memory";
	size_t n = strlen(err), m = sizeof(oom) - 1;

	return strcmp(err, oom) == 0 ||
	       (n > m + 2 && strcmp(err + n - m - 2, ": out of memory") == 0);
}

/* An error that names a scalar field's UTF-8 must be about a bad value. */
static void check_blame(const char *err, const char *const parts[PARTS])
{
	static const char *const names[] = {
		"new_smart_number is not valid UTF-8",
		"network_id is not valid UTF-8",
		"new_smart_uri is not valid UTF-8",
	};

	fuzz_assert(!is_out_of_memory(err), "out of memory on a small input",
		    err);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strstr(err, names[i]) != NULL)
			fuzz_assert(!utf8_ok(parts[i + 1]),
				    "valid UTF-8 blamed", err);
}

/* The fields as one history record: text, and parties as stored JSON. */
static void check_record(const char *const parts[PARTS])
{
	const struct render_field fields[] = {
		{ parts[1], RENDER_VALUE_TEXT, 0, parts[2] },
		{ "uri", RENDER_VALUE_TEXT, 0, parts[3] },
		{ "parties", RENDER_VALUE_JSON, 0, parts[4] },
		{ "template", RENDER_VALUE_JSON, 0, parts[0] },
		{ "n", RENDER_VALUE_INT, (int64_t)strlen(parts[0]), NULL },
		{ "none", RENDER_VALUE_TEXT, 0, NULL },
	};
	char check[512];
	char *record;

	record = render_json_record(fields, sizeof(fields) / sizeof(fields[0]));
	fuzz_assert(record != NULL, "no record", NULL);
	check[0] = '\0';
	fuzz_assert(render_check_body(CONTENT_JSON, record, strlen(record),
				      check, sizeof(check)) == 0,
		    "record is not JSON", check);
	free(record);
}

/* body (NULL if the render failed) against the same event's parties with
 * a space in front. */
static void check_spaced(struct render_template *tmpl,
			 const struct render_event *ev, const char *body,
			 size_t len)
{
	struct render_event spaced = *ev;
	size_t n = strlen(ev->interested_parties);
	char *text, *other = NULL, err[512];
	size_t other_len = 0;
	int rc;

	text = malloc(n + 2);
	if (text == NULL)
		return;
	text[0] = ' ';
	memcpy(text + 1, ev->interested_parties, n + 1);
	spaced.interested_parties = text;
	rc = render_body(tmpl, &spaced, &other, &other_len, err, sizeof(err));
	fuzz_assert((rc == 0) == (body != NULL),
		    "spaced parties change the verdict", rc ? err : other);
	if (body != NULL)
		fuzz_assert(other_len == len && memcmp(other, body, len) == 0,
			    "spaced parties change the body", other);
	free(other);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Defaults for fields the input leaves out: the document's. */
	static const char *const defaults[PARTS] = {
		"", "+420111222333", "network_1", "sip_uri_1",
		"[{\"username\":\"eric\",\"device\":\"erics_iphone\"}]",
	};
	const char *parts[PARTS];
	struct render_template *tmpl = NULL;
	struct render_event ev;
	enum content_kind kind;
	char *copy = NULL, *body = NULL, *again = NULL;
	char err[512], check[512];
	size_t len = 0, again_len = 0, i, n = 0, start = 0;

	if (size == 0)
		return 0;
	kind = (data[0] & 1) ? CONTENT_XML : CONTENT_JSON;
	copy = malloc(size);
	if (copy == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	for (i = 0; i < PARTS; i++)
		parts[i] = defaults[i];
	/* The copy ends in NUL: every part is a string. */
	for (i = 0; i < size && n < PARTS; i++) {
		if (copy[i] != '\0')
			continue;
		parts[n++] = copy + start;
		start = i + 1;
	}

	check_record(parts);
	err[0] = '\0';
	if (render_template_new(parts[0][0] != '\0' ? parts[0] : NULL, kind,
				&tmpl, err, sizeof(err)) != 0) {
		fuzz_assert(tmpl == NULL, "failed compile left a template", err);
		fuzz_assert(err[0] != '\0', "compile failed without a reason",
			    NULL);
		fuzz_assert(!is_out_of_memory(err),
			    "out of memory on a small input", err);
		goto out;
	}
	ev.new_smart_number = parts[1];
	ev.network_id = parts[2];
	ev.new_smart_uri = parts[3];
	ev.interested_parties = parts[4];
	err[0] = '\0';
	if (render_body(tmpl, &ev, &body, &len, err, sizeof(err)) != 0) {
		fuzz_assert(body == NULL, "failed render left a body", err);
		fuzz_assert(err[0] != '\0', "render failed without a reason",
			    NULL);
		check_blame(err, parts);
		check_spaced(tmpl, &ev, NULL, 0);
		goto out;
	}
	check_spaced(tmpl, &ev, body, len);
	fuzz_assert(len <= RENDER_MAX_BODY, "body over the bound", NULL);
	fuzz_assert(body[len] == '\0', "body not terminated", NULL);
	fuzz_assert(memchr(body, '\0', len) == NULL, "NUL inside the body",
		    body);
	check[0] = '\0';
	fuzz_assert(render_check_body(kind, body, len, check,
				      sizeof(check)) == 0,
		    "rendered body is not well-formed", check);
	/* A template's reused parser context must not change the verdict. */
	fuzz_assert(render_body(tmpl, &ev, &again, &again_len, err,
				sizeof(err)) == 0, "second render failed", err);
	fuzz_assert(again_len == len && memcmp(again, body, len) == 0,
		    "second render differs", NULL);
out:
	free(again);
	free(body);
	render_template_free(tmpl);
	free(copy);
	return 0;
}
