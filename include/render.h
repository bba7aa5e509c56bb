/*
 * render.h - turns an event into the request body the provider asked for.
 *
 * A template is compiled once per provisioning change: the content type is
 * checked, the text split into literal runs and the placeholders of the
 * contract (section 3), and a sample event rendered and checked, so that a
 * template that cannot produce a well-formed body is a configuration error
 * found before any event is touched. Rendering an event escapes every value
 * for the content type and checks the result with jansson or libxml2; an
 * event whose data cannot be rendered gets an error, never a bad body.
 */
#ifndef SMARTRELAY_RENDER_H
#define SMARTRELAY_RENDER_H

#include <stddef.h>
#include <stdint.h>

/* No rendered body is larger: a larger one is an error of that event. */
#define RENDER_MAX_BODY (1024 * 1024)

enum content_kind {
	CONTENT_JSON = 0,
	CONTENT_XML,
};

/* The fields of one event, as stored (borrowed, NUL-terminated). */
struct render_event {
	const char *new_smart_number;
	const char *network_id;
	const char *new_smart_uri;
	const char *interested_parties; /* JSON text: [{"username","device"}] */
};

struct render_template;

/*
 * Decides the kind of a configured Content-Type: the media type before any
 * ';', compared case-insensitively, must be application/json or
 * application/xml; CR, LF or NUL anywhere is refused. Returns 0, or -1 with
 * the reason in err.
 */
int render_content_kind(const char *content_type, enum content_kind *kind,
			char *err, size_t errlen);

/*
 * The documented example template for a kind (static storage), exactly as
 * the document shows it: 4-space indents, no trailing newline.
 */
const char *render_default_template(enum content_kind kind);

/*
 * Compiles text (NULL: the documented example for kind) and renders a sample
 * event through it. Returns 0 and a new template in *out (free it with
 * render_template_free), or -1 with the reason in err.
 */
int render_template_new(const char *text, enum content_kind kind,
			struct render_template **out, char *err, size_t errlen);

void render_template_free(struct render_template *tmpl);

/*
 * Renders ev through tmpl. Returns 0 with a new NUL-terminated body in
 * *body (the caller frees it) and its length in *len, or -1 with the reason
 * in err (invalid UTF-8, a character XML 1.0 cannot carry, parties that are
 * not objects with string username and device, a body over
 * RENDER_MAX_BODY). Only the fields the template uses are examined.
 * tmpl is not const: an XML template keeps one parser context that every
 * check reuses (it halves the cost of a check). Rendering is for one thread
 * only: while a body renders, jansson's allocator is a static scratch block.
 */
int render_body(struct render_template *tmpl, const struct render_event *ev,
		char **body, size_t *len, char *err, size_t errlen);

/*
 * Checks that body (len bytes) is one well-formed document of kind, with the
 * same parser settings as every rendered body: JSON any value and nothing
 * after it; XML well-formed with its namespaces declared, no network, no
 * DTD loading. For tests and tools that must judge bodies they did not
 * render. Returns 0, or -1 with the parser's reason in err.
 */
int render_check_body(enum content_kind kind, const char *body, size_t len,
		      char *err, size_t errlen);

/* ---- JSON records, for the command line's --json output ---------------- */

enum render_value {
	RENDER_VALUE_NULL = 0,
	RENDER_VALUE_INT,
	RENDER_VALUE_TEXT,  /* a string; invalid UTF-8 becomes U+FFFD */
	RENDER_VALUE_JSON,  /* JSON text embedded as a value; a string if invalid */
	RENDER_VALUE_RAW,   /* an already rendered JSON value, copied as is */
};

struct render_field {
	const char *name;
	enum render_value type;
	int64_t integer;
	const char *text;   /* TEXT, JSON and RAW; NULL makes the value null */
};

/*
 * One compact JSON object of the fields, in order, as a new string (the
 * caller frees it); NULL when out of memory.
 */
char *render_json_record(const struct render_field *fields, size_t count);

/* ---- interested parties, for producing events --------------------------- */

struct render_party {
	const char *username;
	const char *device;
};

/*
 * The interested_parties text of count parties, as the contract stores it:
 * a compact JSON array [{"username":"..","device":".."},...]. Returns a new
 * string (the caller frees it), or NULL with the reason in err (a value that
 * is not valid UTF-8, out of memory).
 */
char *render_parties_json(const struct render_party *parties, size_t count,
			  char *err, size_t errlen);

#endif
