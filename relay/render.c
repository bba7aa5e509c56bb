/*
 * render.c - the request body: compiles a provisioning template into literal
 * runs and placeholder slots once, then renders events by concatenation,
 * escaping every value for the content type. The only user of jansson and
 * libxml2: no body leaves here unless one of them has found it well-formed,
 * and the command line's JSON records are written here too.
 */
#include "render.h"

#include <inttypes.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <libxml/chvalid.h>
#include <libxml/dict.h>
#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlstring.h>
#include <libxml/xmlversion.h>

#include "log.h"

enum slot {
	SLOT_LITERAL = 0,
	SLOT_NUMBER,
	SLOT_NETWORK,
	SLOT_URI,
	SLOT_PARTIES,
	SLOT_COUNT,
};

/* Event field names as the contract spells them, for error messages. */
static const char *const slot_names[SLOT_COUNT] = {
	[SLOT_LITERAL] = "template",
	[SLOT_NUMBER] = "new_smart_number",
	[SLOT_NETWORK] = "network_id",
	[SLOT_URI] = "new_smart_uri",
	[SLOT_PARTIES] = "interested_parties",
};

#define TOKEN(text, slot) { text, sizeof(text) - 1, slot }

static const struct placeholder {
	const char *token;
	size_t len;
	enum slot slot;
} placeholders[] = {
	TOKEN("%new_smart_number%", SLOT_NUMBER),
	TOKEN("%network_id%", SLOT_NETWORK),
	TOKEN("%new_smart_uri%", SLOT_URI),
	TOKEN("%interestedParties%", SLOT_PARTIES),
	TOKEN("%interested_parties%", SLOT_PARTIES),
};

/* One step down a JSON tree: an object's member (key of len bytes), or
 * an array's element when key is NULL. */
struct tree_step {
	char *key;
	size_t len;
	size_t index;
};

#define GIVEN_DEPTH_MAX 16

struct segment {
	enum slot slot;
	size_t off; /* literal runs only: the run is text[off, off + len) */
	size_t len;
};

/*
 * The first error of an XML check. libxml2 keeps only the last one, which
 * is mostly an echo ("Extra content at the end of the document") of the
 * first, which says what is wrong.
 */
struct xml_first_error {
	bool seen;
	int line;
	int column;
	char message[160];
};

struct render_template {
	enum content_kind kind;
	char *text;                /* owned copy; literal runs point into it */
	struct segment *segs;
	size_t nsegs;
	size_t literal_len;        /* bytes of all literal runs together */
	bool uses[SLOT_COUNT];
	/* JSON, parties token once: where the parties sit in the body's
	 * tree, for parties that arrive already in their rendered form. */
	struct tree_step *given_path;
	size_t given_depth;
	bool given;
	xmlParserCtxtPtr xml;      /* XML only: reused by every check */
	struct xml_first_error xml_error; /* of the last check */
};

/* As the document shows them: 4-space indents, no trailing newline. */
static const char default_json[] =
	"{\n"
	"    \"newSmartNumber\" : \"%new_smart_number%\",\n"
	"    \"networkId\" : \"%network_id%\",\n"
	"    \"newSmartUri\" : \"%new_smart_uri%\",\n"
	"    \"interestedParties\" : %interestedParties%\n"
	"}";

static const char default_xml[] =
	"<root>\n"
	"    <new_smart_number>%new_smart_number%</new_smart_number>\n"
	"    <network_id>%network_id%</network_id>\n"
	"    <new_smart_uri>%new_smart_uri%</new_smart_uri>\n"
	"    <interested_parties>%interestedParties%</interested_parties>\n"
	"</root>";

/* The document's example event: every template must render it well. */
static const struct render_event sample_event = {
	.new_smart_number = "+420111222333",
	.network_id = "network_1",
	.new_smart_uri = "sip_uri_1",
	.interested_parties =
		"[{\"username\":\"eric\",\"device\":\"erics_iphone\"},"
		"{\"username\":\"madelaine\",\"device\":\"madelaines_android\"}]",
};

/*
 * No entity substitution, no DTD loading, no network, and nothing printed:
 * errors are read back from the context instead.
 */
#define XML_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

/*
 * Why a body under construction stopped growing. The writer only knows the
 * fault; the caller knows which field it was writing and names it.
 */
enum fault {
	FAULT_NONE = 0,
	FAULT_SIZE,     /* over the limit of the buffer */
	FAULT_NOMEM,
	FAULT_UTF8,     /* not valid UTF-8 */
	FAULT_XML_CHAR, /* a code point XML 1.0 has no place for */
	FAULT_ENCODE,   /* jansson refused to encode a string */
};

/*
 * A body (or a record) being built: len never exceeds limit, and cap never
 * exceeds limit by more than three bytes: the NUL, and the two quotes
 * jansson writes around a string before they are dropped.
 */
#define OUT_SLACK 3

/*
 * Records are as large as the row they show; this ceiling only keeps the
 * size arithmetic far from overflow.
 */
#define RECORD_MAX ((size_t)256 * 1024 * 1024)

struct out {
	char *buf;
	size_t len;
	size_t cap;
	size_t limit;
	enum fault fault;
	uint32_t code_point; /* FAULT_XML_CHAR: the offending character */
};

static SR_PRINTF(3, 4) void err_set(char *err, size_t errlen,
				    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- content type ------------------------------------------------------ */

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

int render_content_kind(const char *content_type, enum content_kind *kind,
			char *err, size_t errlen)
{
	static const char json[] = "application/json";
	static const char xml[] = "application/xml";
	const char *start, *end, *p;
	size_t n;
	int rc = -1;

	if (content_type == NULL) {
		err_set(err, errlen, "no content type");
		goto out;
	}
	/* It goes out verbatim as a header: nothing may break the line. */
	for (p = content_type; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\r' || c == '\n') {
			err_set(err, errlen, "content type holds a %s",
				c == '\r' ? "CR" : "LF");
			goto out;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			err_set(err, errlen,
				"content type holds control character 0x%02x",
				c);
			goto out;
		}
	}
	start = content_type;
	end = strchr(start, ';');
	if (end == NULL)
		end = start + strlen(start);
	while (start < end && is_ows(*start))
		start++;
	while (end > start && is_ows(end[-1]))
		end--;
	n = (size_t)(end - start);
	if (n == 0) {
		err_set(err, errlen, "empty content type");
		goto out;
	}
	if (n == sizeof(json) - 1 && strncasecmp(start, json, n) == 0) {
		*kind = CONTENT_JSON;
	} else if (n == sizeof(xml) - 1 && strncasecmp(start, xml, n) == 0) {
		*kind = CONTENT_XML;
	} else {
		err_set(err, errlen,
			"unsupported content type %.*s (want application/json "
			"or application/xml)", n > 64 ? 64 : (int)n, start);
		goto out;
	}
	rc = 0;
out:
	return rc;
}

const char *render_default_template(enum content_kind kind)
{
	return kind == CONTENT_XML ? default_xml : default_json;
}

/* ---- the body buffer --------------------------------------------------- */

/* Makes room for need bytes in all, never beyond limit + OUT_SLACK. */
static int out_grow(struct out *o, size_t need)
{
	size_t cap, max;
	char *grown;

	if (need <= o->cap)
		return 0;
	max = o->limit + OUT_SLACK;
	if (need > max) {
		o->fault = FAULT_SIZE;
		return -1;
	}
	cap = o->cap != 0 ? o->cap : 256;
	while (cap < need)
		cap = cap > max / 2 ? max : cap * 2;
	grown = realloc(o->buf, cap);
	if (grown == NULL) {
		o->fault = FAULT_NOMEM;
		return -1;
	}
	o->buf = grown;
	o->cap = cap;
	return 0;
}

static int out_append(struct out *o, const char *s, size_t n)
{
	if (n > o->limit - o->len) {
		o->fault = FAULT_SIZE;
		return -1;
	}
	if (out_grow(o, o->len + n + 1) != 0)
		return -1;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	return 0;
}

#define out_literal(o, s) out_append(o, s, sizeof(s) - 1)

/*
 * Decodes one UTF-8 sequence of s (n > 0 bytes). Returns the code point and
 * its length in *step, or -1 for anything RFC 3629 forbids. libxml2 decodes
 * but accepts overlong forms and surrogates, hence the checks after it, and
 * takes a continuation byte for a lead byte, hence the length the lead byte
 * itself announces.
 */
static long utf8_next(const unsigned char *s, size_t n, size_t *step)
{
	int len = n > 4 ? 4 : (int)n;
	int want, cp;

	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		want = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		want = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		want = 4;
	else
		return -1;
	cp = xmlGetUTF8Char(s, &len);
	if (cp < 0 || len != want)
		return -1;
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
	    (len == 4 && cp < 0x10000))
		return -1;
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return -1;
	*step = (size_t)len;
	return cp;
}

static bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, step;

	while (i < n) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		if (utf8_next(u + i, n - i, &step) < 0)
			return false;
		i += step;
	}
	return true;
}

/*
 * Appends s as XML character data or attribute value: the five special
 * characters become references; invalid UTF-8 and characters outside the
 * XML 1.0 Char production are faults, since no escaping can carry them.
 */
static int out_xml_text(struct out *o, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0, step;
	const char *ref;
	long cp;

	while (i < n) {
		if (u[i] >= 0x80) {
			cp = utf8_next(u + i, n - i, &step);
			if (cp < 0) {
				o->fault = FAULT_UTF8;
				return -1;
			}
			if (!xmlIsCharQ(cp)) {
				o->fault = FAULT_XML_CHAR;
				o->code_point = (uint32_t)cp;
				return -1;
			}
			i += step;
			continue;
		}
		switch (u[i]) {
		case '&':
			ref = "&amp;";
			break;
		case '<':
			ref = "&lt;";
			break;
		case '>':
			ref = "&gt;";
			break;
		case '"':
			ref = "&quot;";
			break;
		case '\'':
			ref = "&apos;";
			break;
		default:
			if (!xmlIsChar_ch(u[i])) {
				o->fault = FAULT_XML_CHAR;
				o->code_point = u[i];
				return -1;
			}
			i++;
			continue;
		}
		if (out_append(o, s + run, i - run) != 0 ||
		    out_append(o, ref, strlen(ref)) != 0)
			return -1;
		run = ++i;
	}
	return out_append(o, s + run, n - run);
}

#define JSON_OUT_FLAGS (JSON_ENCODE_ANY | JSON_COMPACT)

/*
 * Appends value JSON-encoded by jansson; a string may lose its quotes (a
 * scalar placeholder sits inside the template's own quotes). jansson writes
 * straight into the buffer; a second pass only when the room was too small.
 */
static int out_json(struct out *o, const json_t *value, bool unquoted)
{
	size_t room, n, again, drop = unquoted ? 2 : 0;

	room = o->cap - o->len;
	n = json_dumpb(value, o->buf + o->len, room, JSON_OUT_FLAGS);
	if (n == 0 || n < drop) {
		o->fault = FAULT_ENCODE;
		return -1;
	}
	if (n - drop > o->limit - o->len) {
		o->fault = FAULT_SIZE;
		return -1;
	}
	if (n >= room) { /* one byte stays free for the NUL */
		if (out_grow(o, o->len + n + 1) != 0)
			return -1;
		again = json_dumpb(value, o->buf + o->len, o->cap - o->len,
				   JSON_OUT_FLAGS);
		if (again != n) {
			o->fault = FAULT_ENCODE;
			return -1;
		}
	}
	if (unquoted)
		memmove(o->buf + o->len, o->buf + o->len + 1, n - 2);
	o->len += n - drop;
	return 0;
}

static int out_json_scalar(struct out *o, const char *s, size_t n)
{
	json_t *str;
	int rc;

	str = json_stringn(s, n);
	if (str == NULL) {
		/* jansson says NULL for both; tell them apart for the row. */
		o->fault = utf8_valid(s, n) ? FAULT_NOMEM : FAULT_UTF8;
		return -1;
	}
	rc = out_json(o, str, true);
	json_decref(str);
	return rc;
}

/* ---- scratch memory for jansson ---------------------------------------- */

/*
 * Rendering one body builds short-lived jansson trees (the parties, the
 * body's check), dozens of allocations an event, all freed before
 * render_checked returns. While it runs, jansson takes its memory from this
 * block in order, and the block is taken back whole once all of it has been
 * freed; what does not fit comes from malloc, as before. Under
 * AddressSanitizer the block is poisoned but for the pieces handed out, so
 * a read of freed memory is still caught.
 */
#define SCRATCH_SIZE (64 * 1024)

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define SCRATCH_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define SCRATCH_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define SCRATCH_POISON(p, n) ((void)(p), (void)(n))
#define SCRATCH_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static struct {
	alignas(max_align_t) unsigned char block[SCRATCH_SIZE];
	size_t used;
	size_t live; /* allocations from block not yet freed */
} scratch;

static void *scratch_malloc(size_t n)
{
	const size_t align = alignof(max_align_t);
	size_t need = (n + align - 1) & ~(align - 1);
	void *p;

	if (n == 0 || need < n || need > SCRATCH_SIZE - scratch.used)
		return malloc(n);
	if (scratch.used == 0)
		SCRATCH_POISON(scratch.block, SCRATCH_SIZE);
	p = scratch.block + scratch.used;
	SCRATCH_UNPOISON(p, n);
	scratch.used += need;
	scratch.live++;
	return p;
}

static void scratch_free(void *p)
{
	if ((uintptr_t)p - (uintptr_t)scratch.block >= SCRATCH_SIZE) {
		free(p);
		return;
	}
	if (--scratch.live == 0) {
		scratch.used = 0;
		SCRATCH_POISON(scratch.block, SCRATCH_SIZE);
	}
}

/* ---- interested parties ------------------------------------------------ */

/*
 * Parses the event's parties into a new reference in *out after checking
 * every element is an object with string username and device.
 */
static int parties_parse(const char *text, json_t **out, char *err,
			 size_t errlen)
{
	json_error_t jerr;
	json_t *parties, *party, *value;
	const char *keys[] = { "username", "device" };
	size_t i, k;
	int rc = -1;

	*out = NULL;
	/* Any value, so that a string or number gets the clearer message. */
	parties = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (parties == NULL) {
		if (json_error_code(&jerr) == json_error_invalid_utf8)
			err_set(err, errlen,
				"interested_parties is not valid UTF-8");
		else if (json_error_code(&jerr) == json_error_out_of_memory)
			err_set(err, errlen, "out of memory");
		else
			err_set(err, errlen,
				"interested_parties is not valid JSON: %s",
				jerr.text);
		goto out;
	}
	if (!json_is_array(parties)) {
		err_set(err, errlen, "interested_parties is not a JSON array");
		goto out;
	}
	json_array_foreach(parties, i, party) {
		if (!json_is_object(party)) {
			err_set(err, errlen,
				"interested_parties[%zu] is not an object", i);
			goto out;
		}
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			value = json_object_get(party, keys[k]);
			if (value == NULL) {
				err_set(err, errlen,
					"interested_parties[%zu]: %s is missing",
					i, keys[k]);
				goto out;
			}
			if (!json_is_string(value)) {
				err_set(err, errlen,
					"interested_parties[%zu]: %s is not a "
					"string", i, keys[k]);
				goto out;
			}
		}
	}
	*out = parties;
	parties = NULL;
	rc = 0;
out:
	json_decref(parties);
	return rc;
}

/* What a JSON party is made of, around its two encoded strings. */
#define PARTY_USERNAME "{\"username\":"
#define PARTY_DEVICE ",\"device\":"

/*
 * Appends the checked parties for kind. On a fault, *bad_index and
 * *bad_key say which value was being written.
 */
static int out_parties(struct out *o, enum content_kind kind,
		       const json_t *parties, size_t *bad_index,
		       const char **bad_key)
{
	const json_t *party, *user, *device;
	size_t i;

	if (kind == CONTENT_JSON && out_literal(o, "[") != 0)
		return -1;
	json_array_foreach(parties, i, party) {
		*bad_index = i;
		*bad_key = NULL;
		user = json_object_get(party, "username");
		device = json_object_get(party, "device");
		if (kind == CONTENT_JSON) {
			if ((i > 0 && out_literal(o, ",") != 0) ||
			    out_literal(o, PARTY_USERNAME) != 0 ||
			    out_json(o, user, false) != 0 ||
			    out_literal(o, PARTY_DEVICE) != 0 ||
			    out_json(o, device, false) != 0 ||
			    out_literal(o, "}") != 0)
				return -1;
			continue;
		}
		if (out_literal(o, "<interested_party><username>") != 0)
			return -1;
		*bad_key = "username";
		if (out_xml_text(o, json_string_value(user),
				 json_string_length(user)) != 0)
			return -1;
		*bad_key = NULL;
		if (out_literal(o, "</username><device>") != 0)
			return -1;
		*bad_key = "device";
		if (out_xml_text(o, json_string_value(device),
				 json_string_length(device)) != 0)
			return -1;
		*bad_key = NULL;
		if (out_literal(o, "</device></interested_party>") != 0)
			return -1;
	}
	if (kind == CONTENT_JSON && out_literal(o, "]") != 0)
		return -1;
	return 0;
}

/* ---- well-formedness --------------------------------------------------- */

/*
 * Names seen by a reused context stay in its dictionary; a template that
 * puts a value in a name position would grow it with every event, so past
 * this many names the context is replaced.
 */
#define XML_DICT_MAX 4096

static void message_trim(char *msg)
{
	size_t n = strlen(msg);

	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		msg[--n] = '\0';
}

/*
 * Structured handler of the check contexts: keeps the first error, prints
 * nothing, and keeps the errors from any process-wide handler. Its data is
 * the context (libxml2 passes ctxt->userData, which is the context). The
 * error became const in libxml2 2.12.
 */
#if LIBXML_VERSION >= 21200
static void xml_error_keep(void *data, const xmlError *error)
#else
static void xml_error_keep(void *data, xmlErrorPtr error)
#endif
{
	xmlParserCtxtPtr ctxt = data;
	struct xml_first_error *first;

	if (ctxt == NULL || ctxt->_private == NULL || error == NULL ||
	    error->level < XML_ERR_ERROR)
		return;
	first = ctxt->_private;
	if (first->seen)
		return;
	first->seen = true;
	first->line = error->line;
	first->column = error->int2;
	snprintf(first->message, sizeof(first->message), "%s",
		 error->message != NULL ? error->message : "not well-formed");
	message_trim(first->message);
}

/*
 * A parser context that checks and builds nothing: with the content
 * callbacks gone no tree is made (half the cost of a check), while the
 * document and DTD callbacks stay so that internal entities still resolve.
 */
static xmlParserCtxtPtr xml_context_new(struct xml_first_error *first)
{
	xmlParserCtxtPtr ctxt;
	xmlSAXHandlerPtr sax;

	ctxt = xmlNewParserCtxt();
	if (ctxt == NULL)
		goto out;
	if (ctxt->sax == NULL) {
		xmlFreeParserCtxt(ctxt);
		ctxt = NULL;
		goto out;
	}
	sax = ctxt->sax;
	sax->startElementNs = NULL;
	sax->endElementNs = NULL;
	sax->startElement = NULL;
	sax->endElement = NULL;
	sax->characters = NULL;
	sax->ignorableWhitespace = NULL;
	sax->cdataBlock = NULL;
	sax->comment = NULL;
	sax->processingInstruction = NULL;
	sax->reference = NULL;
	sax->serror = xml_error_keep;
	ctxt->_private = first;
out:
	return ctxt;
}

/* A JSON body's tree, or NULL with the parser's reason in msg. */
static json_t *json_body_load(const char *body, size_t len, char *msg,
			      size_t msglen)
{
	json_error_t jerr;
	json_t *value;

	/* Any value is a body; trailing garbage is not. */
	value = json_loadb(body, len, JSON_DECODE_ANY, &jerr);
	if (value == NULL)
		err_set(msg, msglen, "%s at line %d, column %d", jerr.text,
			jerr.line, jerr.column);
	return value;
}

/* Checks body; on failure the parser's own words land in msg. */
static int body_check(struct render_template *tmpl, const char *body,
		      size_t len, char *msg, size_t msglen)
{
	json_t *value;
	xmlParserCtxtPtr fresh;
	xmlDocPtr doc;
	const xmlError *xerr;
	int rc = -1;

	if (tmpl->kind == CONTENT_JSON) {
		value = json_body_load(body, len, msg, msglen);
		if (value == NULL)
			goto out;
		json_decref(value);
		rc = 0;
		goto out;
	}
	tmpl->xml_error.seen = false;
	doc = xmlCtxtReadMemory(tmpl->xml, body, (int)len, NULL, NULL,
				XML_OPTIONS);
	/*
	 * A namespace error (an undeclared prefix) still yields a document,
	 * but receivers that use namespaces would refuse it.
	 */
	if (doc != NULL && tmpl->xml->wellFormed && tmpl->xml->nsWellFormed)
		rc = 0;
	xmlFreeDoc(doc);
	if (rc != 0 && tmpl->xml_error.seen) {
		err_set(msg, msglen, "%s at line %d, column %d",
			tmpl->xml_error.message, tmpl->xml_error.line,
			tmpl->xml_error.column);
	} else if (rc != 0) {
		/* Only if the handler was bypassed: the parser's own copy. */
		xerr = xmlCtxtGetLastError(tmpl->xml);
		if (xerr != NULL && xerr->message != NULL)
			err_set(msg, msglen, "%s", xerr->message);
		else
			err_set(msg, msglen, "not well-formed");
		message_trim(msg);
	}
	if (xmlDictSize(tmpl->xml->dict) > XML_DICT_MAX) {
		fresh = xml_context_new(&tmpl->xml_error);
		/* Without a new one the old one still works: keep it. */
		if (fresh != NULL) {
			xmlFreeParserCtxt(tmpl->xml);
			tmpl->xml = fresh;
		}
	}
out:
	return rc;
}

/* ---- templates --------------------------------------------------------- */

static int template_add(struct render_template *tmpl, size_t *alloc,
			enum slot slot, size_t off, size_t len)
{
	struct segment *grown;
	size_t n;

	if (tmpl->nsegs == *alloc) {
		n = *alloc != 0 ? *alloc * 2 : 16;
		grown = realloc(tmpl->segs, n * sizeof(*grown));
		if (grown == NULL)
			return -1;
		tmpl->segs = grown;
		*alloc = n;
	}
	tmpl->segs[tmpl->nsegs].slot = slot;
	tmpl->segs[tmpl->nsegs].off = off;
	tmpl->segs[tmpl->nsegs].len = len;
	tmpl->nsegs++;
	tmpl->uses[slot] = true;
	if (slot == SLOT_LITERAL)
		tmpl->literal_len += len;
	return 0;
}

static const struct placeholder *placeholder_at(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(placeholders) / sizeof(placeholders[0]); i++)
		if (placeholders[i].len <= n &&
		    memcmp(s, placeholders[i].token, placeholders[i].len) == 0)
			return &placeholders[i];
	return NULL;
}

/*
 * Splits the text into literal runs and slots. A '%' that does not open a
 * placeholder is literal text and scanning resumes right after it, so a
 * placeholder is found wherever it occurs, as a plain search and replace
 * would: "%foo%network_id%" is "%foo" and the network id. Values are never
 * scanned, so a value holding "%network_id%" stays as it is.
 */
static int template_compile(struct render_template *tmpl)
{
	const char *s = tmpl->text;
	const struct placeholder *ph;
	const char *pct;
	size_t n = strlen(s), alloc = 0, lit = 0, pos = 0, start, end;

	while ((pct = memchr(s + pos, '%', n - pos)) != NULL) {
		start = (size_t)(pct - s);
		ph = placeholder_at(pct, n - start);
		if (ph == NULL) {
			pos = start + 1;
			continue;
		}
		end = start + ph->len;
		/*
		 * Some versions of the document quote the parties token in
		 * JSON; the quotes go with it so the value stays an array.
		 * XML quotes are attribute delimiters and stay.
		 */
		if (ph->slot == SLOT_PARTIES && tmpl->kind == CONTENT_JSON &&
		    start > lit && s[start - 1] == '"' && s[end] == '"') {
			start--;
			end++;
		}
		if (start > lit &&
		    template_add(tmpl, &alloc, SLOT_LITERAL, lit,
				 start - lit) != 0)
			return -1;
		if (template_add(tmpl, &alloc, ph->slot, 0, 0) != 0)
			return -1;
		lit = pos = end;
	}
	if (n > lit && template_add(tmpl, &alloc, SLOT_LITERAL, lit,
				    n - lit) != 0)
		return -1;
	return 0;
}

void render_template_free(struct render_template *tmpl)
{
	if (tmpl == NULL)
		return;
	if (tmpl->xml != NULL)
		xmlFreeParserCtxt(tmpl->xml);
	for (size_t i = 0; i < tmpl->given_depth; i++)
		free(tmpl->given_path[i].key);
	free(tmpl->given_path);
	free(tmpl->segs);
	free(tmpl->text);
	free(tmpl);
}

/*
 * Renders the slots of tmpl for ev into o; bodies are checked by the
 * caller. With given, the parties are copied as they are (see "parties as
 * given"); otherwise they are parsed, checked and encoded.
 */
static int template_render(const struct render_template *tmpl,
			   const struct render_event *ev, bool given,
			   struct out *o, char *err, size_t errlen)
{
	const char *values[SLOT_COUNT] = { NULL };
	size_t lens[SLOT_COUNT] = { 0 };
	size_t i, least, guess, bad_index = 0;
	const char *bad_key = NULL;
	enum slot field = SLOT_LITERAL;
	json_t *parties = NULL;
	const struct segment *seg;
	int rc = -1;

	values[SLOT_NUMBER] = ev->new_smart_number;
	values[SLOT_NETWORK] = ev->network_id;
	values[SLOT_URI] = ev->new_smart_uri;
	values[SLOT_PARTIES] = ev->interested_parties;
	for (i = SLOT_NUMBER; i < SLOT_COUNT; i++) {
		if (!tmpl->uses[i])
			continue;
		if (values[i] == NULL) {
			err_set(err, errlen, "%s is missing", slot_names[i]);
			goto out;
		}
		lens[i] = strlen(values[i]);
	}

	/*
	 * Escaping only ever lengthens a scalar, so the literals plus the raw
	 * scalars are the least the body can be: an event over the bound is
	 * refused before any parsing or copying.
	 */
	least = tmpl->literal_len;
	for (i = 0; i < tmpl->nsegs; i++)
		if (tmpl->segs[i].slot != SLOT_LITERAL &&
		    tmpl->segs[i].slot != SLOT_PARTIES)
			least += lens[tmpl->segs[i].slot];
	if (least > RENDER_MAX_BODY) {
		err_set(err, errlen, "body exceeds %d bytes", RENDER_MAX_BODY);
		goto out;
	}

	if (tmpl->uses[SLOT_PARTIES] && !given &&
	    parties_parse(values[SLOT_PARTIES], &parties, err, errlen) != 0)
		goto out;

	/* XML parties roughly double in size; one allocation usually does. */
	guess = least + least / 8 + 64 + lens[SLOT_PARTIES] * 2;
	if (out_grow(o, guess < RENDER_MAX_BODY ? guess : RENDER_MAX_BODY) != 0)
		goto fault;

	for (i = 0; i < tmpl->nsegs; i++) {
		seg = &tmpl->segs[i];
		field = seg->slot;
		switch (seg->slot) {
		case SLOT_LITERAL:
			if (out_append(o, tmpl->text + seg->off,
				       seg->len) != 0)
				goto fault;
			break;
		case SLOT_PARTIES:
			if ((given ? out_append(o, values[field], lens[field])
				   : out_parties(o, tmpl->kind, parties,
						 &bad_index, &bad_key)) != 0)
				goto fault;
			break;
		default:
			if ((tmpl->kind == CONTENT_JSON ?
			     out_json_scalar(o, values[field], lens[field]) :
			     out_xml_text(o, values[field], lens[field])) != 0)
				goto fault;
			break;
		}
	}
	rc = 0;
	goto out;

fault:
	switch (o->fault) {
	case FAULT_SIZE:
		err_set(err, errlen, "body exceeds %d bytes", RENDER_MAX_BODY);
		break;
	case FAULT_NOMEM:
		err_set(err, errlen, "out of memory");
		break;
	case FAULT_UTF8:
	case FAULT_XML_CHAR:
	case FAULT_ENCODE: {
		char label[64];

		if (field == SLOT_PARTIES && bad_key != NULL)
			snprintf(label, sizeof(label),
				 "interested_parties[%zu]: %s", bad_index,
				 bad_key);
		else
			snprintf(label, sizeof(label), "%s",
				 slot_names[field]);
		if (o->fault == FAULT_UTF8)
			err_set(err, errlen, "%s is not valid UTF-8", label);
		else if (o->fault == FAULT_XML_CHAR)
			err_set(err, errlen,
				"%s holds U+%04X, which XML 1.0 cannot carry",
				label, (unsigned)o->code_point);
		else
			err_set(err, errlen, "%s cannot be encoded as JSON",
				label);
		break;
	}
	case FAULT_NONE:
		err_set(err, errlen, "cannot render the body");
		break;
	}
out:
	json_decref(parties);
	return rc;
}

/* ---- parties as given -------------------------------------------------- */

/*
 * Parties written compactly (SQLite's json_array() and json_object() write
 * them so, unless a string holds a control character) are often stored
 * already in the form the body carries: then the body is rendered with
 * them copied as they are, and its check proves that form. In the checked tree, the node where the template puts the
 * parties must be an array of objects holding username then device, both
 * strings, and nothing else, and it must encode back to exactly the bytes
 * given. Those bytes are then what parsing and encoding them would have
 * written, so the body is the one the general way renders, checked as
 * every body is. Parties in any other form, and any event this way cannot
 * render, take the general way, with its messages.
 */

static bool parties_look_given(const char *text)
{
	return strncmp(text, "[{\"username\":\"", 14) == 0 ||
	       strcmp(text, "[]") == 0;
}

static bool string_member_is(void *iter, const char *key, size_t len)
{
	return json_object_iter_key_len(iter) == len &&
	       memcmp(json_object_iter_key(iter), key, len) == 0 &&
	       json_is_string(json_object_iter_value(iter));
}

struct given_text {
	const char *text;
	size_t len;
	size_t pos; /* bytes matched so far */
};

static int given_compare(const char *buf, size_t size, void *data)
{
	struct given_text *g = data;

	if (size > g->len - g->pos || memcmp(g->text + g->pos, buf, size) != 0)
		return -1;
	g->pos += size;
	return 0;
}

static bool given_literal(struct given_text *g, const char *literal)
{
	return given_compare(literal, strlen(literal), g) == 0;
}

static bool given_value(struct given_text *g, void *iter)
{
	return json_dump_callback(json_object_iter_value(iter), given_compare,
				  g, JSON_OUT_FLAGS) == 0;
}

/* Whether text is, byte for byte, what out_parties writes for node. */
static bool parties_node_given(json_t *node, const char *text, size_t len)
{
	struct given_text g = { .text = text, .len = len };
	json_t *party;
	size_t i;
	void *user, *device;

	if (!json_is_array(node) || !given_literal(&g, "["))
		return false;
	json_array_foreach(node, i, party) {
		if (!json_is_object(party) || json_object_size(party) != 2)
			return false;
		user = json_object_iter(party);
		device = json_object_iter_next(party, user);
		if (!string_member_is(user, "username", 8) ||
		    !string_member_is(device, "device", 6))
			return false;
		if ((i > 0 && !given_literal(&g, ",")) ||
		    !given_literal(&g, PARTY_USERNAME) ||
		    !given_value(&g, user) ||
		    !given_literal(&g, PARTY_DEVICE) ||
		    !given_value(&g, device) || !given_literal(&g, "}"))
			return false;
	}
	return given_literal(&g, "]") && g.pos == len;
}

/* Renders ev the given way into o: true if that body stands. */
static bool render_given(const struct render_template *tmpl,
			 const struct render_event *ev, struct out *o)
{
	char unused[64];
	json_t *value, *node;
	bool given;

	if (template_render(tmpl, ev, true, o, unused, sizeof(unused)) != 0)
		return false;
	value = json_body_load(o->buf, o->len, unused, sizeof(unused));
	if (value == NULL)
		return false;
	node = value;
	for (size_t i = 0; i < tmpl->given_depth && node != NULL; i++)
		node = tmpl->given_path[i].key == NULL
			? json_array_get(node, tmpl->given_path[i].index)
			: json_object_getn(node, tmpl->given_path[i].key,
					   tmpl->given_path[i].len);
	given = node != NULL &&
		parties_node_given(node, ev->interested_parties,
				   strlen(ev->interested_parties));
	json_decref(value);
	return given;
}

struct path_search {
	const json_t *want;
	struct tree_step steps[GIVEN_DEPTH_MAX];
	size_t depth;
	bool found;
};

/* Depth first, for the first node equal to ps->want; ps->steps lead
 * there when ps->found. */
static void path_search(struct path_search *ps, const json_t *node)
{
	const char *key;
	size_t len, i;
	json_t *child;

	if (json_equal(node, ps->want)) {
		ps->found = true;
		return;
	}
	if (ps->depth == GIVEN_DEPTH_MAX)
		return;
	json_object_keylen_foreach((json_t *)node, key, len, child) {
		ps->steps[ps->depth] = (struct tree_step){ .key = (char *)key,
							   .len = len };
		ps->depth++;
		path_search(ps, child);
		if (ps->found)
			return;
		ps->depth--;
	}
	json_array_foreach(node, i, child) {
		ps->steps[ps->depth] = (struct tree_step){ .index = i };
		ps->depth++;
		path_search(ps, child);
		if (ps->found)
			return;
		ps->depth--;
	}
}

/*
 * Renders and checks one body. *malformed tells a body the parser refused
 * (err then holds the parser's message) from an event that could not be
 * rendered at all: the callers word the two differently.
 */
static int render_checked(struct render_template *tmpl,
			  const struct render_event *ev, char **body,
			  size_t *len, bool *malformed, char *err,
			  size_t errlen)
{
	struct out o = { .limit = RENDER_MAX_BODY };
	json_malloc_t saved_malloc;
	json_free_t saved_free;
	int rc = -1;

	*body = NULL;
	*len = 0;
	*malformed = false;
	json_get_alloc_funcs(&saved_malloc, &saved_free);
	json_set_alloc_funcs(scratch_malloc, scratch_free);
	if (tmpl->given && ev->interested_parties != NULL &&
	    parties_look_given(ev->interested_parties)) {
		if (render_given(tmpl, ev, &o))
			goto done;
		o.len = 0;
		o.fault = FAULT_NONE;
	}
	if (template_render(tmpl, ev, false, &o, err, errlen) != 0)
		goto out;
	if (body_check(tmpl, o.buf, o.len, err, errlen) != 0) {
		*malformed = true;
		goto out;
	}
done:
	o.buf[o.len] = '\0';
	*body = o.buf;
	*len = o.len;
	o.buf = NULL;
	rc = 0;
out:
	json_set_alloc_funcs(saved_malloc, saved_free);
	free(o.buf);
	return rc;
}

/*
 * Finds where the parties sit in a checked body, so that later events can
 * go the given way: renders the probe event's and looks for them. Without
 * a place (XML, the parties token twice or not at all, no memory) every
 * event takes the general way. A template literal equal to the probe's
 * parties would be found instead and make every event take it too.
 */
static void given_path_find(struct render_template *tmpl)
{
	static const char probe_parties[] =
		"[{\"username\":\"\\u0001\",\"device\":\"\\u0002\"}]";
	struct render_event probe = sample_event;
	struct path_search ps = { .want = NULL };
	json_t *tree = NULL, *parties = NULL;
	size_t tokens = 0, len;
	char *body = NULL, unused[64];
	bool malformed;

	for (size_t i = 0; i < tmpl->nsegs; i++)
		tokens += tmpl->segs[i].slot == SLOT_PARTIES;
	if (tmpl->kind != CONTENT_JSON || tokens != 1)
		return;
	probe.interested_parties = probe_parties;
	if (render_checked(tmpl, &probe, &body, &len, &malformed, unused,
			   sizeof(unused)) != 0)
		return;
	tree = json_loadb(body, len, JSON_DECODE_ANY, NULL);
	parties = json_loads(probe_parties, 0, NULL);
	if (tree == NULL || parties == NULL)
		goto out;
	ps.want = parties;
	path_search(&ps, tree);
	if (!ps.found)
		goto out;
	/* + 1: a template that is the token alone has a path of none. */
	tmpl->given_path = calloc(ps.depth + 1, sizeof(*tmpl->given_path));
	if (tmpl->given_path == NULL)
		goto out;
	tmpl->given_depth = ps.depth;
	for (size_t i = 0; i < ps.depth; i++) {
		struct tree_step *step = &tmpl->given_path[i];

		step->index = ps.steps[i].index;
		step->len = ps.steps[i].len;
		if (ps.steps[i].key == NULL)
			continue;
		/* jansson's keys end in a NUL past their length. */
		step->key = malloc(step->len + 1);
		if (step->key == NULL)
			goto out;
		memcpy(step->key, ps.steps[i].key, step->len + 1);
	}
	tmpl->given = true;
out:
	json_decref(tree);
	json_decref(parties);
	free(body);
}

static const char *kind_name(enum content_kind kind)
{
	return kind == CONTENT_JSON ? "JSON" : "XML";
}

int render_template_new(const char *text, enum content_kind kind,
			struct render_template **out, char *err, size_t errlen)
{
	struct render_template *tmpl = NULL;
	char reason[256];
	char *body = NULL;
	size_t len;
	bool malformed;
	int rc = -1;

	*out = NULL;
	if (kind != CONTENT_JSON && kind != CONTENT_XML) {
		err_set(err, errlen, "unknown content kind %d", (int)kind);
		goto out;
	}
	if (text == NULL)
		text = render_default_template(kind);
	if (strlen(text) > RENDER_MAX_BODY) {
		err_set(err, errlen, "template exceeds %d bytes",
			RENDER_MAX_BODY);
		goto out;
	}
	/* Idempotent; done here so that no caller has to remember it. */
	xmlInitParser();

	tmpl = calloc(1, sizeof(*tmpl));
	if (tmpl == NULL)
		goto nomem;
	tmpl->kind = kind;
	tmpl->text = strdup(text);
	if (tmpl->text == NULL || template_compile(tmpl) != 0)
		goto nomem;
	if (kind == CONTENT_XML) {
		tmpl->xml = xml_context_new(&tmpl->xml_error);
		if (tmpl->xml == NULL)
			goto nomem;
	}

	if (render_checked(tmpl, &sample_event, &body, &len, &malformed,
			   reason, sizeof(reason)) != 0) {
		if (malformed)
			err_set(err, errlen,
				"template does not render well-formed %s: %s",
				kind_name(kind), reason);
		else
			err_set(err, errlen, "template cannot render the "
				"sample event: %s", reason);
		goto out;
	}
	given_path_find(tmpl);
	*out = tmpl;
	tmpl = NULL;
	rc = 0;
	goto out;

nomem:
	err_set(err, errlen, "out of memory");
out:
	free(body);
	render_template_free(tmpl);
	return rc;
}

int render_body(struct render_template *tmpl, const struct render_event *ev,
		char **body, size_t *len, char *err, size_t errlen)
{
	char reason[256];
	bool malformed;
	int rc;

	rc = render_checked(tmpl, ev, body, len, &malformed, reason,
			    sizeof(reason));
	if (rc != 0 && malformed)
		err_set(err, errlen, "body is not well-formed %s: %s",
			kind_name(tmpl->kind), reason);
	else if (rc != 0)
		err_set(err, errlen, "%s", reason);
	return rc;
}

int render_check_body(enum content_kind kind, const char *body, size_t len,
		      char *err, size_t errlen)
{
	struct render_template check = { .kind = kind };
	int rc = -1;

	if (kind != CONTENT_JSON && kind != CONTENT_XML) {
		err_set(err, errlen, "unknown content kind %d", (int)kind);
		goto out;
	}
	/* libxml2 takes an int length. */
	if (body == NULL || len > INT32_MAX) {
		err_set(err, errlen, "no body, or one too large to check");
		goto out;
	}
	if (kind == CONTENT_XML) {
		xmlInitParser();
		check.xml = xml_context_new(&check.xml_error);
		if (check.xml == NULL) {
			err_set(err, errlen, "out of memory");
			goto out;
		}
	}
	rc = body_check(&check, body, len, err, errlen);
out:
	if (check.xml != NULL)
		xmlFreeParserCtxt(check.xml);
	return rc;
}

/* ---- JSON records ------------------------------------------------------ */

/*
 * A new copy of s (n bytes) in which every byte that does not belong to a
 * valid UTF-8 sequence is U+FFFD, so that text from the database can always
 * be shown. Its length in *clean_len; NULL when out of memory.
 */
static char *utf8_replace_invalid(const char *s, size_t n, size_t *clean_len)
{
	static const char replacement[] = "\xef\xbf\xbd";
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, len = 0, step;
	char *clean;

	if (n > RECORD_MAX)
		return NULL;
	clean = malloc(n * 3 + 1);
	if (clean == NULL)
		return NULL;
	while (i < n) {
		step = 1;
		if (u[i] >= 0x80 && utf8_next(u + i, n - i, &step) < 0) {
			memcpy(clean + len, replacement, 3);
			len += 3;
			i++;
			continue;
		}
		memcpy(clean + len, s + i, step);
		len += step;
		i += step;
	}
	clean[len] = '\0';
	*clean_len = len;
	return clean;
}

static int out_json_text(struct out *o, const char *s)
{
	size_t n = strlen(s), clean_len;
	json_t *str;
	char *clean;
	int rc;

	str = json_stringn(s, n);
	if (str == NULL && !utf8_valid(s, n)) {
		clean = utf8_replace_invalid(s, n, &clean_len);
		if (clean != NULL)
			str = json_stringn(clean, clean_len);
		free(clean);
	}
	if (str == NULL) {
		o->fault = FAULT_NOMEM;
		return -1;
	}
	rc = out_json(o, str, false);
	json_decref(str);
	return rc;
}

static int out_record_value(struct out *o, const struct render_field *field)
{
	char number[32];
	json_t *value;
	int rc;

	if (field->type == RENDER_VALUE_INT) {
		snprintf(number, sizeof(number), "%" PRId64, field->integer);
		return out_append(o, number, strlen(number));
	}
	if (field->type == RENDER_VALUE_NULL || field->text == NULL)
		return out_literal(o, "null");
	switch (field->type) {
	case RENDER_VALUE_TEXT:
		return out_json_text(o, field->text);
	case RENDER_VALUE_JSON:
		/* Stored JSON is shown as JSON, re-encoded compact; what does
		 * not parse is shown as the text it is. */
		value = json_loads(field->text, JSON_DECODE_ANY, NULL);
		if (value == NULL)
			return out_json_text(o, field->text);
		rc = out_json(o, value, false);
		json_decref(value);
		return rc;
	case RENDER_VALUE_RAW:
		return out_append(o, field->text, strlen(field->text));
	default:
		break;
	}
	o->fault = FAULT_ENCODE;
	return -1;
}

char *render_json_record(const struct render_field *fields, size_t count)
{
	struct out o = { .limit = RECORD_MAX };
	char *record = NULL;
	size_t i;

	if (out_literal(&o, "{") != 0)
		goto out;
	for (i = 0; i < count; i++) {
		if ((i > 0 && out_literal(&o, ",") != 0) ||
		    out_json_text(&o, fields[i].name) != 0 ||
		    out_literal(&o, ":") != 0 ||
		    out_record_value(&o, &fields[i]) != 0)
			goto out;
	}
	if (out_literal(&o, "}") != 0)
		goto out;
	o.buf[o.len] = '\0';
	record = o.buf;
	o.buf = NULL;
out:
	free(o.buf);
	return record;
}

/* One party as {"username":..,"device":..}, or NULL with the reason. */
static json_t *party_object(const struct render_party *party, char *err,
			    size_t errlen)
{
	const char *const names[] = { "username", "device" };
	const char *const values[] = { party->username, party->device };
	json_t *object = json_object();

	if (object == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < 2; i++) {
		json_t *value = json_string(values[i]);

		/* jansson refuses invalid UTF-8 here: the only bad input. */
		if (value == NULL) {
			snprintf(err, errlen, "%s '%.64s' is not valid UTF-8",
				 names[i], values[i]);
			json_decref(object);
			return NULL;
		}
		if (json_object_set_new(object, names[i], value) != 0) {
			snprintf(err, errlen, "out of memory");
			json_decref(object);
			return NULL;
		}
	}
	return object;
}

char *render_parties_json(const struct render_party *parties, size_t count,
			  char *err, size_t errlen)
{
	json_t *array = json_array();
	char *text = NULL;

	if (array == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	for (size_t i = 0; i < count; i++) {
		json_t *object = party_object(&parties[i], err, errlen);

		if (object == NULL)
			goto out;
		/* _new steals the reference, also when it fails. */
		if (json_array_append_new(array, object) != 0) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	text = json_dumps(array, JSON_COMPACT);
	if (text == NULL)
		snprintf(err, errlen, "out of memory");
out:
	json_decref(array);
	return text;
}
