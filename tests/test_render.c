/*
 * test_render.c - the renderer against the contract, section 3: exact bodies
 * of the documented templates, both spellings of the parties token, escaping
 * for each content type, and every way an event or a template can fail;
 * then the JSON records of the command line.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "render.h"

#define ERIC "{\"username\":\"eric\",\"device\":\"erics_iphone\"}"
#define MADELAINE \
	"{\"username\":\"madelaine\",\"device\":\"madelaines_android\"}"
#define PARTIES_JSON "[" ERIC "," MADELAINE "]"
#define PARTIES_XML \
	"<interested_party><username>eric</username>" \
	"<device>erics_iphone</device></interested_party>" \
	"<interested_party><username>madelaine</username>" \
	"<device>madelaines_android</device></interested_party>"

static const struct render_event example = {
	.new_smart_number = "+420111222333",
	.network_id = "network_1",
	.new_smart_uri = "sip_uri_1",
	.interested_parties = PARTIES_JSON,
};

/*
 * Compiles text for kind and renders ev through it. Returns the new body,
 * or NULL with the error in err (from whichever step failed).
 */
static char *render(enum content_kind kind, const char *text,
		    const struct render_event *ev, char *err, size_t errlen)
{
	struct render_template *tmpl = NULL;
	char *body = NULL;
	size_t len = 0;

	err[0] = '\0';
	if (render_template_new(text, kind, &tmpl, err, errlen) != 0) {
		ck_assert_ptr_null(tmpl);
		ck_assert_msg(err[0] != '\0', "template error without reason");
		return NULL;
	}
	ck_assert_ptr_nonnull(tmpl);
	if (render_body(tmpl, ev, &body, &len, err, errlen) != 0) {
		ck_assert_ptr_null(body);
		ck_assert_msg(err[0] != '\0', "render error without reason");
	} else {
		ck_assert_ptr_nonnull(body);
		ck_assert_uint_eq(len, strlen(body));
	}
	render_template_free(tmpl);
	return body;
}

/* Renders and expects exactly want. */
static void expect_body(enum content_kind kind, const char *text,
			const struct render_event *ev, const char *want)
{
	char err[256];
	char *body = render(kind, text, ev, err, sizeof(err));

	ck_assert_msg(body != NULL, "template %s: unexpected error: %s", text,
		      err);
	ck_assert_str_eq(body, want);
	free(body);
}

/* Renders and expects an error holding want. */
static void expect_error(enum content_kind kind, const char *text,
			 const struct render_event *ev, const char *want)
{
	char err[256];
	char *body = render(kind, text, ev, err, sizeof(err));

	ck_assert_msg(body == NULL, "template %s: expected error '%s', got "
		      "body '%.80s'", text, want, body);
	ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err,
		      want);
	ck_assert_msg(err[strlen(err) - 1] != '.' &&
		      err[strlen(err) - 1] != '\n', "error ends badly: '%s'",
		      err);
}

/* An event with one field replaced. */
static struct render_event event_with(int field, const char *value)
{
	struct render_event ev = example;

	switch (field) {
	case 0:
		ev.new_smart_number = value;
		break;
	case 1:
		ev.network_id = value;
		break;
	case 2:
		ev.new_smart_uri = value;
		break;
	default:
		ev.interested_parties = value;
		break;
	}
	return ev;
}

static const char *const field_names[] = {
	"new_smart_number", "network_id", "new_smart_uri",
};

/* Every scalar once, inside quotes for JSON. */
static const char json_scalars[] =
	"[\"%new_smart_number%\",\"%network_id%\",\"%new_smart_uri%\"]";
static const char xml_scalars[] =
	"<r><a>%new_smart_number%</a><b>%network_id%</b>"
	"<c x='%new_smart_uri%'/></r>";

/* ---- the documented examples ------------------------------------------- */

static const char want_json[] =
	"{\n"
	"    \"newSmartNumber\" : \"+420111222333\",\n"
	"    \"networkId\" : \"network_1\",\n"
	"    \"newSmartUri\" : \"sip_uri_1\",\n"
	"    \"interestedParties\" : " PARTIES_JSON "\n"
	"}";

static const char want_xml[] =
	"<root>\n"
	"    <new_smart_number>+420111222333</new_smart_number>\n"
	"    <network_id>network_1</network_id>\n"
	"    <new_smart_uri>sip_uri_1</new_smart_uri>\n"
	"    <interested_parties>" PARTIES_XML "</interested_parties>\n"
	"</root>";

START_TEST(default_json_exact)
{
	expect_body(CONTENT_JSON, NULL, &example, want_json);
	/* The same text given explicitly renders the same. */
	expect_body(CONTENT_JSON, render_default_template(CONTENT_JSON),
		    &example, want_json);
}
END_TEST

START_TEST(default_xml_exact)
{
	expect_body(CONTENT_XML, NULL, &example, want_xml);
	expect_body(CONTENT_XML, render_default_template(CONTENT_XML),
		    &example, want_xml);
}
END_TEST

START_TEST(default_templates_text)
{
	ck_assert_str_eq(render_default_template(CONTENT_JSON),
			 "{\n"
			 "    \"newSmartNumber\" : \"%new_smart_number%\",\n"
			 "    \"networkId\" : \"%network_id%\",\n"
			 "    \"newSmartUri\" : \"%new_smart_uri%\",\n"
			 "    \"interestedParties\" : %interestedParties%\n"
			 "}");
	ck_assert_str_eq(render_default_template(CONTENT_XML),
			 "<root>\n"
			 "    <new_smart_number>%new_smart_number%"
			 "</new_smart_number>\n"
			 "    <network_id>%network_id%</network_id>\n"
			 "    <new_smart_uri>%new_smart_uri%</new_smart_uri>\n"
			 "    <interested_parties>%interestedParties%"
			 "</interested_parties>\n"
			 "</root>");
}
END_TEST

/* ---- the parties token ------------------------------------------------- */

static const struct {
	enum content_kind kind;
	const char *text;
	const char *want;
} party_cases[] = {
	{ CONTENT_JSON, "{\"p\":%interestedParties%}",
	  "{\"p\":" PARTIES_JSON "}" },
	{ CONTENT_JSON, "{\"p\":\"%interestedParties%\"}",
	  "{\"p\":" PARTIES_JSON "}" },
	{ CONTENT_JSON, "{\"p\":%interested_parties%}",
	  "{\"p\":" PARTIES_JSON "}" },
	{ CONTENT_JSON, "{\"p\":\"%interested_parties%\"}",
	  "{\"p\":" PARTIES_JSON "}" },
	{ CONTENT_JSON, "{ \"p\" :\n\t\"%interestedParties%\" }",
	  "{ \"p\" :\n\t" PARTIES_JSON " }" },
	{ CONTENT_JSON, "[%interestedParties%,\"%interested_parties%\"]",
	  "[" PARTIES_JSON "," PARTIES_JSON "]" },
	{ CONTENT_JSON, "%interestedParties%", PARTIES_JSON },
	{ CONTENT_JSON, "\"%interestedParties%\"", PARTIES_JSON },
	{ CONTENT_XML, "<p>%interested_parties%</p>",
	  "<p>" PARTIES_XML "</p>" },
	/* Quotes around the token are text in XML: they stay. */
	{ CONTENT_XML, "<p>\"%interestedParties%\"</p>",
	  "<p>\"" PARTIES_XML "\"</p>" },
	{ CONTENT_XML, "<p>'%interestedParties%'</p>",
	  "<p>'" PARTIES_XML "'</p>" },
};

START_TEST(party_token)
{
	expect_body(party_cases[_i].kind, party_cases[_i].text, &example,
		    party_cases[_i].want);
}
END_TEST

START_TEST(party_token_in_xml_attribute)
{
	/* The quotes are not consumed in XML: the elements land in the
	 * attribute and the template is refused. */
	expect_error(CONTENT_XML, "<p a=\"%interestedParties%\"/>", &example,
		     "template does not render well-formed XML");
}
END_TEST

START_TEST(parties_empty)
{
	struct render_event ev = event_with(3, "[]");

	expect_body(CONTENT_JSON, "{\"p\":\"%interestedParties%\"}", &ev,
		    "{\"p\":[]}");
	expect_body(CONTENT_XML, "<p>%interestedParties%</p>", &ev,
		    "<p></p>");
	ev.interested_parties = " [ ] ";
	expect_body(CONTENT_JSON, "%interestedParties%", &ev, "[]");
}
END_TEST

START_TEST(parties_extra_keys_and_spacing)
{
	struct render_event ev = event_with(3,
		"[ {\"device\" : \"d1\", \"x\": [1, 2], \"username\": \"u1\"},"
		"\n{\"username\":\"u2\",\"device\":\"d2\",\"tag\":null} ]");

	expect_body(CONTENT_JSON, "%interestedParties%", &ev,
		    "[{\"username\":\"u1\",\"device\":\"d1\"},"
		    "{\"username\":\"u2\",\"device\":\"d2\"}]");
	expect_body(CONTENT_XML, "<p>%interestedParties%</p>", &ev,
		    "<p><interested_party><username>u1</username>"
		    "<device>d1</device></interested_party>"
		    "<interested_party><username>u2</username>"
		    "<device>d2</device></interested_party></p>");
}
END_TEST

START_TEST(parties_escaped)
{
	struct render_event ev = event_with(3,
		"[{\"username\":\"a\\\"<&>'\\\\\",\"device\":\"l\\u00e9\\n\"}]");

	expect_body(CONTENT_JSON, "%interestedParties%", &ev,
		    "[{\"username\":\"a\\\"<&>'\\\\\",\"device\":\"l\xc3\xa9"
		    "\\n\"}]");
	expect_body(CONTENT_XML, "<p>%interestedParties%</p>", &ev,
		    "<p><interested_party><username>a&quot;&lt;&amp;&gt;"
		    "&apos;\\</username><device>l\xc3\xa9\n</device>"
		    "</interested_party></p>");
}
END_TEST

static const struct {
	const char *parties;
	const char *want;
} party_errors[] = {
	{ "{}", "interested_parties is not a JSON array" },
	{ "\"eric\"", "interested_parties is not a JSON array" },
	{ "42", "interested_parties is not a JSON array" },
	{ "null", "interested_parties is not a JSON array" },
	{ "", "interested_parties is not valid JSON" },
	{ "[{\"username\":\"a\",\"device\":\"b\"}", "is not valid JSON" },
	{ "[] []", "interested_parties is not valid JSON" },
	{ "[1]", "interested_parties[0] is not an object" },
	{ "[" ERIC ",\"x\"]", "interested_parties[1] is not an object" },
	{ "[" ERIC ",[]]", "interested_parties[1] is not an object" },
	{ "[{\"device\":\"d\"}]", "interested_parties[0]: username is missing" },
	{ "[{\"username\":\"u\"}]", "interested_parties[0]: device is missing" },
	{ "[{\"username\":1,\"device\":\"d\"}]",
	  "interested_parties[0]: username is not a string" },
	{ "[" ERIC ",{\"username\":\"u\",\"device\":null}]",
	  "interested_parties[1]: device is not a string" },
	{ "[{\"username\":\"u\",\"device\":{}}]",
	  "interested_parties[0]: device is not a string" },
	{ "[{\"username\":\"a\\u0000b\",\"device\":\"d\"}]",
	  "interested_parties is not valid JSON" },
	{ "[{\"username\":\"\xff\",\"device\":\"d\"}]",
	  "interested_parties is not valid UTF-8" },
	{ "[{\"username\":\"\xed\xa0\x80\",\"device\":\"d\"}]",
	  "interested_parties is not valid UTF-8" },
};

START_TEST(parties_invalid)
{
	struct render_event ev = event_with(3, party_errors[_i].parties);

	expect_error(CONTENT_JSON, NULL, &ev, party_errors[_i].want);
	expect_error(CONTENT_XML, NULL, &ev, party_errors[_i].want);
}
END_TEST

static char *parties_of(size_t n, size_t name_len)
{
	size_t size = n * (name_len * 2 + 40) + 3, len = 0, i;
	char *text = malloc(size);
	int w;

	ck_assert_ptr_nonnull(text);
	text[len++] = '[';
	for (i = 0; i < n; i++) {
		w = snprintf(text + len, size - len,
			     "%s{\"username\":\"%0*zu\",\"device\":\"%0*zu\"}",
			     i > 0 ? "," : "", (int)name_len, i,
			     (int)name_len, i);
		ck_assert(w > 0 && (size_t)w < size - len);
		len += (size_t)w;
	}
	ck_assert(len + 2 <= size);
	text[len++] = ']';
	text[len] = '\0';
	return text;
}

static int count(const char *haystack, const char *needle)
{
	int n = 0;

	while ((haystack = strstr(haystack, needle)) != NULL) {
		n++;
		haystack += strlen(needle);
	}
	return n;
}

/*
 * Parties already in their rendered form are copied as they are; anything
 * else that merely starts like them is still parsed and re-encoded, and
 * the bodies come out the same either way.
 */
static const struct {
	const char *parties;
	const char *want; /* rendered alone: "%interestedParties%" */
} parties_given[] = {
	{ "[{\"username\":\"a\\\"b\\\\c\",\"device\":\"\\n\\u0001\"}]",
	  "[{\"username\":\"a\\\"b\\\\c\",\"device\":\"\\n\\u0001\"}]" },
	{ "[{\"username\":\"\\u0061\",\"device\":\"d\"}]",
	  "[{\"username\":\"a\",\"device\":\"d\"}]" },
	{ "[{\"username\":\"a\",\"username\":\"b\",\"device\":\"d\"}]",
	  "[{\"username\":\"b\",\"device\":\"d\"}]" },
	{ "[{\"username\":\"u\",\"device\":\"d\",\"x\":1}]",
	  "[{\"username\":\"u\",\"device\":\"d\"}]" },
	{ "[{\"username\":\"u\",\"device\":\"d\"} ]",
	  "[{\"username\":\"u\",\"device\":\"d\"}]" },
	{ "[{\"username\":\"u\",\"device\":\"a\\/b\"}]",
	  "[{\"username\":\"u\",\"device\":\"a/b\"}]" },
};

START_TEST(parties_given_or_encoded)
{
	struct render_event ev = event_with(3, parties_given[_i].parties);
	char want[256];

	expect_body(CONTENT_JSON, "%interestedParties%", &ev,
		    parties_given[_i].want);
	snprintf(want, sizeof(want), "{\"a\":[1,{\"p\":%s}],\"q\":2}",
		 parties_given[_i].want);
	expect_body(CONTENT_JSON, "{\"a\":[1,{\"p\":%interestedParties%}],"
		    "\"q\":2}", &ev, want);
	/* The sample's own parties as a literal, before the token. */
	snprintf(want, sizeof(want), "{\"x\":" PARTIES_JSON ",\"p\":%s}",
		 parties_given[_i].want);
	expect_body(CONTENT_JSON, "{\"x\":" PARTIES_JSON
		    ",\"p\":\"%interestedParties%\"}", &ev, want);
	/* Twice: always encoded. */
	snprintf(want, sizeof(want), "[%s,%s]", parties_given[_i].want,
		 parties_given[_i].want);
	expect_body(CONTENT_JSON, "[%interestedParties%,%interested_parties%]",
		    &ev, want);
}
END_TEST

/* Text that starts like given parties but reaches past them is refused as
 * the producer's, though the body around it might parse. */
START_TEST(parties_given_cannot_escape)
{
	static const char *const texts[] = {
		"[{\"username\":\"a\",\"device\":\"b\"}], \"x\": {\"y\": 1}",
		"[{\"username\":\"a\",\"device\":\"b\"}],\"newSmartUri\":\"z\"",
		"[{\"username\":\"a\",\"device\":\"b\"}]]",
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		struct render_event ev = event_with(3, texts[i]);

		expect_error(CONTENT_JSON, NULL, &ev,
			     "interested_parties is not valid JSON");
		expect_error(CONTENT_JSON, "{\"p\":%interestedParties%}", &ev,
			     "interested_parties is not valid JSON");
	}
}
END_TEST

START_TEST(parties_large)
{
	char *parties = parties_of(5000, 8);
	struct render_event ev = event_with(3, parties);
	char err[256];
	char *body;

	body = render(CONTENT_JSON, NULL, &ev, err, sizeof(err));
	ck_assert_msg(body != NULL, "%s", err);
	ck_assert_int_eq(count(body, "\"username\":"), 5000);
	ck_assert_ptr_nonnull(strstr(body, "{\"username\":\"00004999\","
					   "\"device\":\"00004999\"}]"));
	free(body);
	body = render(CONTENT_XML, NULL, &ev, err, sizeof(err));
	ck_assert_msg(body != NULL, "%s", err);
	ck_assert_int_eq(count(body, "<interested_party>"), 5000);
	free(body);
	free(parties);
}
END_TEST

/*
 * One template renders event after event: a body far larger than the
 * scratch block jansson borrows, a failure midway through the parties, and
 * plain events around them all come out whole.
 */
START_TEST(bodies_in_turn)
{
	char *large = parties_of(3000, 8);
	const char *bad = "[" ERIC ",{\"username\":\"x\",\"device\":7}]";
	struct render_template *tmpl = NULL;
	struct render_event ev = example;
	char err[256], number[32], want[512], *body;
	size_t len;

	ck_assert_int_eq(render_template_new(NULL, CONTENT_JSON, &tmpl, err,
					     sizeof(err)), 0);
	for (int i = 0; i < 300; i++) {
		snprintf(number, sizeof(number), "+420%09d", i);
		ev = event_with(0, number);
		if (i % 100 == 50)
			ev.interested_parties = large;
		else if (i % 100 == 70)
			ev.interested_parties = bad;
		body = NULL;
		if (i % 100 == 70) {
			ck_assert_int_ne(render_body(tmpl, &ev, &body, &len,
						     err, sizeof(err)), 0);
			ck_assert_ptr_null(body);
			ck_assert_str_eq(err, "interested_parties[1]: device "
					      "is not a string");
			continue;
		}
		ck_assert_msg(render_body(tmpl, &ev, &body, &len, err,
					  sizeof(err)) == 0, "%s", err);
		if (i % 100 == 50) {
			ck_assert_int_eq(count(body, "\"username\":"), 3000);
		} else {
			snprintf(want, sizeof(want), "{\n"
				 "    \"newSmartNumber\" : \"%s\",\n"
				 "    \"networkId\" : \"network_1\",\n"
				 "    \"newSmartUri\" : \"sip_uri_1\",\n"
				 "    \"interestedParties\" : " PARTIES_JSON "\n"
				 "}", number);
			ck_assert_str_eq(body, want);
		}
		free(body);
	}
	render_template_free(tmpl);
	free(large);
}
END_TEST

START_TEST(parties_over_bound)
{
	/* About 1.6 MB of parties, whichever the kind. */
	char *parties = parties_of(20000, 30);
	struct render_event ev = event_with(3, parties);

	expect_error(CONTENT_JSON, NULL, &ev, "body exceeds 1048576 bytes");
	expect_error(CONTENT_XML, NULL, &ev, "body exceeds 1048576 bytes");
	free(parties);
}
END_TEST

/* ---- scalars ------------------------------------------------------------ */

static const struct {
	const char *value;
	const char *json;
	const char *xml;
} escapes[] = {
	{ "plain", "plain", "plain" },
	{ "", "", "" },
	{ "a\"b", "a\\\"b", "a&quot;b" },
	{ "a\\b", "a\\\\b", "a\\b" },
	{ "a\nb", "a\\nb", "a\nb" },
	{ "a\tb", "a\\tb", "a\tb" },
	{ "a\rb", "a\\rb", "a\rb" },
	{ "\x01", "\\u0001", NULL },
	{ "\x1f", "\\u001F", NULL },
	{ "\x0b", "\\u000B", NULL },
	{ "\x7f", "\x7f", "\x7f" },
	{ "sip:u@example.com/x", "sip:u@example.com/x",
	  "sip:u@example.com/x" },
	{ "a&b", "a&b", "a&amp;b" },
	{ "a<b", "a<b", "a&lt;b" },
	{ "a>b", "a>b", "a&gt;b" },
	{ "it's", "it's", "it&apos;s" },
	{ "]]>", "]]>", "]]&gt;" },
	{ "&amp;", "&amp;", "&amp;amp;" },
	{ "%network_id%", "%network_id%", "%network_id%" },
	{ "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
	  "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
	  "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80" },
	{ "\xef\xbf\xbe", "\xef\xbf\xbe", NULL }, /* U+FFFE */
	{ "\xef\xbf\xbf", "\xef\xbf\xbf", NULL }, /* U+FFFF */
	{ "\xe2\x80\xa8", "\xe2\x80\xa8", "\xe2\x80\xa8" }, /* U+2028 */
	{ "\xf4\x8f\xbf\xbd", "\xf4\x8f\xbf\xbd", "\xf4\x8f\xbf\xbd" },
};

START_TEST(scalar_escaping)
{
	char want[256];
	int field;

	for (field = 0; field < 3; field++) {
		struct render_event ev = event_with(field, escapes[_i].value);
		const char *j[3] = { "+420111222333", "network_1",
				     "sip_uri_1" };
		const char *x[3] = { "+420111222333", "network_1",
				     "sip_uri_1" };

		j[field] = escapes[_i].json;
		snprintf(want, sizeof(want), "[\"%s\",\"%s\",\"%s\"]", j[0],
			 j[1], j[2]);
		expect_body(CONTENT_JSON, json_scalars, &ev, want);
		if (escapes[_i].xml == NULL) {
			expect_error(CONTENT_XML, xml_scalars, &ev,
				     field_names[field]);
			expect_error(CONTENT_XML, xml_scalars, &ev,
				     "which XML 1.0 cannot carry");
			continue;
		}
		x[field] = escapes[_i].xml;
		snprintf(want, sizeof(want),
			 "<r><a>%s</a><b>%s</b><c x='%s'/></r>", x[0], x[1],
			 x[2]);
		expect_body(CONTENT_XML, xml_scalars, &ev, want);
	}
}
END_TEST

START_TEST(xml_illegal_names_code_point)
{
	struct render_event ev = event_with(1, "ok\x0b");

	expect_error(CONTENT_XML, NULL, &ev,
		     "network_id holds U+000B, which XML 1.0 cannot carry");
	ev = event_with(2, "\xef\xbf\xbe");
	expect_error(CONTENT_XML, NULL, &ev, "new_smart_uri holds U+FFFE");
	ev = event_with(3, "[" ERIC ",{\"username\":\"u\",\"device\":"
			   "\"\\u0001\"}]");
	expect_error(CONTENT_XML, NULL, &ev,
		     "interested_parties[1]: device holds U+0001");
	ev = event_with(3, "[{\"username\":\"\\uffff\",\"device\":\"d\"}]");
	expect_error(CONTENT_XML, NULL, &ev,
		     "interested_parties[0]: username holds U+FFFF");
	/* The same parties are fine in JSON, escaped. */
	expect_body(CONTENT_JSON, "%interestedParties%", &ev,
		    "[{\"username\":\"\xef\xbf\xbf\",\"device\":\"d\"}]");
}
END_TEST

static const char *const bad_utf8[] = {
	"\xff",
	"abc\xc3",            /* truncated */
	"\xc3(",              /* bad continuation */
	"\xc0\x80",           /* overlong NUL */
	"\xc1\xbf",           /* overlong DEL */
	"\xe0\x80\xaf",       /* overlong '/' */
	"\xed\xa0\x80",       /* surrogate */
	"\xf4\x90\x80\x80",   /* above U+10FFFF */
	"\xf8\x88\x80\x80\x80",
	"\x80",
	"\x9a\x8c",           /* continuation bytes alone */
	"a\xbf\xbf\xbf",
};

START_TEST(scalar_invalid_utf8)
{
	char want[64];
	int field;

	for (field = 0; field < 3; field++) {
		struct render_event ev = event_with(field, bad_utf8[_i]);

		snprintf(want, sizeof(want), "%s is not valid UTF-8",
			 field_names[field]);
		expect_error(CONTENT_JSON, NULL, &ev, want);
		expect_error(CONTENT_XML, NULL, &ev, want);
	}
}
END_TEST

START_TEST(unused_fields_not_examined)
{
	struct render_event ev = event_with(1, "\xff\x01");

	ev.interested_parties = "not json";
	expect_body(CONTENT_JSON, "{\"n\":\"%new_smart_number%\"}", &ev,
		    "{\"n\":\"+420111222333\"}");
	expect_body(CONTENT_XML, "<n>%new_smart_number%</n>", &ev,
		    "<n>+420111222333</n>");
	ev.new_smart_number = NULL;
	expect_error(CONTENT_JSON, "{\"n\":\"%new_smart_number%\"}", &ev,
		     "new_smart_number is missing");
}
END_TEST

START_TEST(scalar_used_twice)
{
	struct render_event ev = event_with(0, "<1>");

	expect_body(CONTENT_XML, "<r a=\"%new_smart_number%\">"
		    "%new_smart_number%</r>", &ev,
		    "<r a=\"&lt;1&gt;\">&lt;1&gt;</r>");
	ev = event_with(0, "\"1\"");
	expect_body(CONTENT_JSON, "{\"%new_smart_number%\":"
		    "\"%new_smart_number%\"}", &ev,
		    "{\"\\\"1\\\"\":\"\\\"1\\\"\"}");
}
END_TEST

/* ---- other %...% text --------------------------------------------------- */

START_TEST(unknown_percent_text)
{
	expect_body(CONTENT_JSON,
		    "{\"a\":\"%foo% 100% %new_smart_number %NEW_SMART_NUMBER%"
		    " %%new_smart_number%% %network_id\",\"b\":\"%\"}",
		    &example,
		    "{\"a\":\"%foo% 100% %new_smart_number %NEW_SMART_NUMBER%"
		    " %+420111222333% %network_id\",\"b\":\"%\"}");
	expect_body(CONTENT_XML,
		    "<a b=\"%interestedparties%\">%new_smart_uri%%x%"
		    "%interested_Parties%%</a>", &example,
		    "<a b=\"%interestedparties%\">sip_uri_1%x%"
		    "%interested_Parties%%</a>");
	/* A quoted unknown token is not consumed like the parties one. */
	expect_body(CONTENT_JSON, "{\"p\":\"%interestedparties%\"}", &example,
		    "{\"p\":\"%interestedparties%\"}");
}
END_TEST

/* ---- size bound --------------------------------------------------------- */

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

START_TEST(body_bound)
{
	struct render_template *tmpl = NULL;
	struct render_event ev = example;
	char err[256];
	char *big, *body = NULL;
	size_t len = 0;

	ck_assert_int_eq(render_template_new("\"%new_smart_number%\"",
					     CONTENT_JSON, &tmpl, err,
					     sizeof(err)), 0);
	/* Exactly the bound, quotes included, passes. */
	big = repeat('a', RENDER_MAX_BODY - 2);
	ev.new_smart_number = big;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), 0);
	ck_assert_uint_eq(len, RENDER_MAX_BODY);
	ck_assert_uint_eq(strlen(body), RENDER_MAX_BODY);
	free(body);
	free(big);
	/* One byte more fails. */
	big = repeat('a', RENDER_MAX_BODY - 1);
	ev.new_smart_number = big;
	body = NULL;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), -1);
	ck_assert_ptr_null(body);
	ck_assert_str_eq(err, "body exceeds 1048576 bytes");
	free(big);
	/* Exactly at the edge once escaped: '"' becomes '\"'. */
	big = repeat('a', RENDER_MAX_BODY - 3);
	big[0] = '"';
	ev.new_smart_number = big;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), 0);
	ck_assert_uint_eq(len, RENDER_MAX_BODY);
	ck_assert_int_eq(strncmp(body, "\"\\\"aa", 5), 0);
	free(body);
	free(big);
	big = repeat('a', RENDER_MAX_BODY - 2);
	big[0] = '"';
	ev.new_smart_number = big;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), -1);
	ck_assert_str_eq(err, "body exceeds 1048576 bytes");
	free(big);
	/* Fits raw, not once escaped. */
	big = repeat('"', RENDER_MAX_BODY / 2);
	ev.new_smart_number = big;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), -1);
	ck_assert_str_eq(err, "body exceeds 1048576 bytes");
	free(big);
	render_template_free(tmpl);

	/* The same edge for XML: 7 bytes of tags around the value. */
	ck_assert_int_eq(render_template_new("<a>%new_smart_number%</a>",
					     CONTENT_XML, &tmpl, err,
					     sizeof(err)), 0);
	big = repeat('x', RENDER_MAX_BODY - 7);
	ev.new_smart_number = big;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), 0);
	ck_assert_uint_eq(len, RENDER_MAX_BODY);
	free(body);
	free(big);
	big = repeat('x', RENDER_MAX_BODY - 6);
	ev.new_smart_number = big;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), -1);
	ck_assert_str_eq(err, "body exceeds 1048576 bytes");
	free(big);
	/* At the edge only once escaped: "&" becomes "&amp;". */
	big = repeat('x', RENDER_MAX_BODY - 11);
	big[0] = '&';
	ev.new_smart_number = big;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), 0);
	ck_assert_uint_eq(len, RENDER_MAX_BODY);
	ck_assert_int_eq(strncmp(body, "<a>&amp;xx", 10), 0);
	free(body);
	free(big);
	big = repeat('x', RENDER_MAX_BODY - 10);
	big[0] = '&';
	ev.new_smart_number = big;
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), -1);
	ck_assert_str_eq(err, "body exceeds 1048576 bytes");
	free(big);
	render_template_free(tmpl);

	big = repeat('&', RENDER_MAX_BODY / 4);
	ev.new_smart_number = big;
	expect_error(CONTENT_XML, "<a>%new_smart_number%</a>", &ev,
		     "body exceeds 1048576 bytes");
	/* Too big before anything is parsed: the parties are not looked at. */
	free(big);
	big = repeat('x', RENDER_MAX_BODY + 1);
	ev.new_smart_number = big;
	ev.interested_parties = "not json";
	expect_error(CONTENT_JSON, NULL, &ev, "body exceeds 1048576 bytes");
	free(big);

	big = repeat(' ', RENDER_MAX_BODY + 1);
	expect_error(CONTENT_JSON, big, &example,
		     "template exceeds 1048576 bytes");
	free(big);
}
END_TEST

/* ---- templates that cannot render well ---------------------------------- */

static const struct {
	enum content_kind kind;
	const char *text;
	const char *want;
} bad_templates[] = {
	{ CONTENT_JSON, "{\"a\": %new_smart_number%}",
	  "template does not render well-formed JSON: " },
	{ CONTENT_JSON, "{\"a\": \"%network_id%\"} x",
	  "template does not render well-formed JSON: " },
	{ CONTENT_JSON, "", "template does not render well-formed JSON: " },
	{ CONTENT_JSON, "{\"a\": \"%interestedParties%}",
	  "template does not render well-formed JSON: " },
	{ CONTENT_JSON, "<root>%new_smart_number%</root>",
	  "template does not render well-formed JSON: " },
	{ CONTENT_XML, "<a>", "template does not render well-formed XML: " },
	{ CONTENT_XML, "<a>%new_smart_number%</b>",
	  "template does not render well-formed XML: " },
	{ CONTENT_XML, "<p a=\"%interestedParties%\"/>",
	  "template does not render well-formed XML: " },
	{ CONTENT_XML, "%interestedParties%",
	  "template does not render well-formed XML: " },
	{ CONTENT_XML, "", "template does not render well-formed XML: " },
	{ CONTENT_XML, "<n:a>%network_id%</n:a>",
	  "template does not render well-formed XML: " },
	{ CONTENT_XML, "<a>&undeclared;</a>",
	  "template does not render well-formed XML: " },
	{ CONTENT_XML, "{\"a\":\"%network_id%\"}",
	  "template does not render well-formed XML: " },
};

START_TEST(template_not_well_formed)
{
	/* Not NULL before the call: a failure must still clear it. */
	struct render_template *tmpl = (struct render_template *)&tmpl;
	char err[256];

	ck_assert_int_eq(render_template_new(bad_templates[_i].text,
					     bad_templates[_i].kind, &tmpl,
					     err, sizeof(err)), -1);
	ck_assert_ptr_null(tmpl);
	ck_assert_msg(strncmp(err, bad_templates[_i].want,
			      strlen(bad_templates[_i].want)) == 0 &&
		      strlen(err) > strlen(bad_templates[_i].want),
		      "error '%s' for template '%s'", err,
		      bad_templates[_i].text);
}
END_TEST

START_TEST(template_error_is_the_first)
{
	/* libxml2's last error would be "Extra content ..."; the first one
	 * says what is wrong. */
	expect_error(CONTENT_XML, "<p a=\"%interestedParties%\"/>", &example,
		     "Unescaped '<' not allowed in attributes values at line 1");
	expect_error(CONTENT_JSON, "{\"a\": %new_smart_number%}", &example,
		     "at line 1, column 7");
}
END_TEST

START_TEST(template_any_json_value)
{
	expect_body(CONTENT_JSON, "\"%new_smart_number%\"", &example,
		    "\"+420111222333\"");
	expect_body(CONTENT_JSON, " [\"%network_id%\"]\n", &example,
		    " [\"network_1\"]\n");
}
END_TEST

START_TEST(template_xml_dtd)
{
	/* Internal entities still resolve; nothing is substituted in the
	 * body, and no external subset is fetched. */
	expect_body(CONTENT_XML,
		    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		    "<!DOCTYPE r [<!ENTITY co \"Acme\">]>"
		    "<r>&co;:%network_id%</r>", &example,
		    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		    "<!DOCTYPE r [<!ENTITY co \"Acme\">]>"
		    "<r>&co;:network_1</r>");
	expect_body(CONTENT_XML,
		    "<!DOCTYPE r SYSTEM \"http://127.0.0.1:9/r.dtd\">"
		    "<r>%network_id%</r>", &example,
		    "<!DOCTYPE r SYSTEM \"http://127.0.0.1:9/r.dtd\">"
		    "<r>network_1</r>");
	expect_body(CONTENT_XML,
		    "<n:r xmlns:n=\"urn:x\"><!-- c --><?pi x?>"
		    "<![CDATA[<%network_id%>]]></n:r>", &example,
		    "<n:r xmlns:n=\"urn:x\"><!-- c --><?pi x?>"
		    "<![CDATA[<network_1>]]></n:r>");
}
END_TEST

START_TEST(event_not_well_formed)
{
	struct render_template *tmpl = NULL;
	struct render_event ev = example;
	char err[256], name[32];
	char *body = NULL;
	size_t len = 0;
	int i;

	/* The sample name is fine, so the template compiles ... */
	ck_assert_int_eq(render_template_new("<r><%network_id%/></r>",
					     CONTENT_XML, &tmpl, err,
					     sizeof(err)), 0);
	/* ... but this event's value is no name. */
	ev.network_id = "not a name";
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), -1);
	ck_assert_ptr_null(body);
	ck_assert_msg(strncmp(err, "body is not well-formed XML: ", 29) == 0,
		      "%s", err);
	ev.network_id = "n1";
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), 0);
	ck_assert_str_eq(body, "<r><n1/></r>");
	free(body);
	/* Many distinct names: the reused parser must keep working. */
	for (i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		ev.network_id = name;
		body = NULL;
		ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
					     sizeof(err)), 0);
		ck_assert_uint_eq(len, strlen(name) + 10);
		free(body);
	}
	ev.network_id = "1";
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "well-formed XML"));
	render_template_free(tmpl);

	ck_assert_int_eq(render_template_new("{\"%network_id%\":1}",
					     CONTENT_JSON, &tmpl, err,
					     sizeof(err)), 0);
	ev.network_id = "a";
	ck_assert_int_eq(render_body(tmpl, &ev, &body, &len, err,
				     sizeof(err)), 0);
	free(body);
	render_template_free(tmpl);
}
END_TEST

START_TEST(libxml2_stays_quiet)
{
	char path[] = "/tmp/test_render_stderr_XXXXXX";
	struct stat st;
	int fd, saved;
	char err[256];

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	ck_assert_ptr_null(render(CONTENT_XML, "<a><b></a>", &example, err,
				  sizeof(err)));
	ck_assert_ptr_null(render(CONTENT_XML, "<a>&nope;</a>", &example, err,
				  sizeof(err)));
	ck_assert_ptr_null(render(CONTENT_XML, "<r><%network_id%/></r>",
				  &(struct render_event){
					  .new_smart_number = "1",
					  .network_id = "x y",
					  .new_smart_uri = "u",
					  .interested_parties = "[]" },
				  err, sizeof(err)));
	fflush(stderr);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	ck_assert_int_eq(fstat(fd, &st), 0);
	close(fd);
	unlink(path);
	ck_assert_int_eq((int)st.st_size, 0);
}
END_TEST

START_TEST(template_kind_invalid)
{
	struct render_template *tmpl = NULL;
	char err[256];

	ck_assert_int_eq(render_template_new(NULL, (enum content_kind)7,
					     &tmpl, err, sizeof(err)), -1);
	ck_assert_ptr_null(tmpl);
	ck_assert_ptr_nonnull(strstr(err, "content kind"));
}
END_TEST

/* ---- content types ------------------------------------------------------ */

static const struct {
	const char *value;
	int rc;
	enum content_kind kind;
	const char *error;
} content_types[] = {
	{ "application/json", 0, CONTENT_JSON, NULL },
	{ "application/xml", 0, CONTENT_XML, NULL },
	{ "application/json; charset=utf-8", 0, CONTENT_JSON, NULL },
	{ "application/xml;charset=UTF-8", 0, CONTENT_XML, NULL },
	{ "Application/JSON", 0, CONTENT_JSON, NULL },
	{ "APPLICATION/XML", 0, CONTENT_XML, NULL },
	{ "  application/json  ", 0, CONTENT_JSON, NULL },
	{ "\tapplication/xml ; charset=utf-8", 0, CONTENT_XML, NULL },
	{ "application/json;", 0, CONTENT_JSON, NULL },
	{ "text/plain", -1, 0, "unsupported content type text/plain" },
	{ "text/xml", -1, 0, "unsupported content type" },
	{ "application/jsonx", -1, 0, "unsupported content type" },
	{ "application/vnd.api+json", -1, 0, "unsupported content type" },
	{ "application/ json", -1, 0, "unsupported content type" },
	{ "application", -1, 0, "unsupported content type" },
	{ "", -1, 0, "empty content type" },
	{ "  ; charset=utf-8", -1, 0, "empty content type" },
	{ "application/json\r\nX-Evil: 1", -1, 0, "content type holds a CR" },
	{ "application/json\nX-Evil: 1", -1, 0, "content type holds a LF" },
	{ "application/json; charset=utf-8\r", -1, 0, "holds a CR" },
	{ "application/json\x01", -1, 0, "control character 0x01" },
	{ "application/json\x7f", -1, 0, "control character 0x7f" },
	{ NULL, -1, 0, "no content type" },
};

START_TEST(content_kind)
{
	enum content_kind kind = (enum content_kind)-1;
	char err[256] = "";
	int rc;

	rc = render_content_kind(content_types[_i].value, &kind, err,
				 sizeof(err));
	ck_assert_int_eq(rc, content_types[_i].rc);
	if (rc == 0) {
		ck_assert_int_eq(kind, content_types[_i].kind);
		return;
	}
	ck_assert_msg(strstr(err, content_types[_i].error) != NULL,
		      "'%s' lacks '%s'", err, content_types[_i].error);
	ck_assert_int_ne(err[strlen(err) - 1], '.');
}
END_TEST

/* ---- JSON records -------------------------------------------------------- */

static const struct {
	struct render_field field;
	const char *want; /* the value, as it follows "k": */
} record_cases[] = {
	{ { "k", RENDER_VALUE_NULL, 5, "x" }, "null" },
	{ { "k", RENDER_VALUE_INT, 204, NULL }, "204" },
	{ { "k", RENDER_VALUE_INT, -1, NULL }, "-1" },
	{ { "k", RENDER_VALUE_INT, INT64_MAX, NULL }, "9223372036854775807" },
	{ { "k", RENDER_VALUE_INT, INT64_MIN, NULL },
	  "-9223372036854775808" },
	{ { "k", RENDER_VALUE_TEXT, 0, "plain" }, "\"plain\"" },
	{ { "k", RENDER_VALUE_TEXT, 0, "" }, "\"\"" },
	{ { "k", RENDER_VALUE_TEXT, 0, NULL }, "null" },
	{ { "k", RENDER_VALUE_TEXT, 0, "a\"b\\c\nd\x01/" },
	  "\"a\\\"b\\\\c\\nd\\u0001/\"" },
	{ { "k", RENDER_VALUE_TEXT, 0, "caf\xc3\xa9 \xf0\x9f\x98\x80" },
	  "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"" },
	{ { "k", RENDER_VALUE_TEXT, 0, "a\xff" "b\xc3" },
	  "\"a\xef\xbf\xbd" "b\xef\xbf\xbd\"" },
	{ { "k", RENDER_VALUE_TEXT, 0, "\x9a\x8c" },
	  "\"\xef\xbf\xbd\xef\xbf\xbd\"" },
	{ { "k", RENDER_VALUE_TEXT, 0, "\xed\xa0\x80" },
	  "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"" },
	{ { "k", RENDER_VALUE_JSON, 0,
	    "[ {\"username\" : \"eric\", \"device\": \"d\"} ]" },
	  "[{\"username\":\"eric\",\"device\":\"d\"}]" },
	{ { "k", RENDER_VALUE_JSON, 0, "{\"b\":1,\"a\":[true,null]}" },
	  "{\"b\":1,\"a\":[true,null]}" },
	{ { "k", RENDER_VALUE_JSON, 0, "7" }, "7" },
	{ { "k", RENDER_VALUE_JSON, 0, "[1," }, "\"[1,\"" },
	{ { "k", RENDER_VALUE_JSON, 0, "not \"json\"" },
	  "\"not \\\"json\\\"\"" },
	{ { "k", RENDER_VALUE_JSON, 0, "\xff" }, "\"\xef\xbf\xbd\"" },
	{ { "k", RENDER_VALUE_JSON, 0, NULL }, "null" },
	{ { "k", RENDER_VALUE_RAW, 0, "[{\"attempt\":1}]" },
	  "[{\"attempt\":1}]" },
	{ { "k", RENDER_VALUE_RAW, 0, NULL }, "null" },
};

START_TEST(json_record_value)
{
	char want[256];
	char *record;

	record = render_json_record(&record_cases[_i].field, 1);
	ck_assert_ptr_nonnull(record);
	snprintf(want, sizeof(want), "{\"k\":%s}", record_cases[_i].want);
	ck_assert_str_eq(record, want);
	free(record);
}
END_TEST

START_TEST(parties_json_built)
{
	const struct render_party parties[] = {
		{ "eric", "erics_iphone" },
		{ "ma\"d", "dev:ice\\" },
	};
	const struct render_party bad[] = { { "ok", "bad\xff" } };
	char err[256] = "";
	char *text = render_parties_json(parties, 2, err, sizeof(err));

	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "[{\"username\":\"eric\",\"device\":\"erics_iphone\"},"
			 "{\"username\":\"ma\\\"d\",\"device\":\"dev:ice\\\\\"}]");
	free(text);
	text = render_parties_json(parties, 0, err, sizeof(err));
	ck_assert_str_eq(text, "[]");
	free(text);
	ck_assert_ptr_null(render_parties_json(bad, 1, err, sizeof(err)));
	ck_assert_msg(strstr(err, "device") && strstr(err, "UTF-8"), "%s", err);
}
END_TEST

START_TEST(json_record_order)
{
	const struct render_field fields[] = {
		{ "id", RENDER_VALUE_INT, 3, NULL },
		{ "status", RENDER_VALUE_TEXT, 0, "failed" },
		{ "http_status", RENDER_VALUE_NULL, 0, NULL },
		{ "a\"b", RENDER_VALUE_INT, 0, NULL },
		{ "attempts", RENDER_VALUE_RAW, 0, "[]" },
	};
	char *record;

	record = render_json_record(fields, 5);
	ck_assert_ptr_nonnull(record);
	ck_assert_str_eq(record, "{\"id\":3,\"status\":\"failed\","
			 "\"http_status\":null,\"a\\\"b\":0,"
			 "\"attempts\":[]}");
	free(record);
	record = render_json_record(fields, 0);
	ck_assert_ptr_nonnull(record);
	ck_assert_str_eq(record, "{}");
	free(record);
}
END_TEST

START_TEST(json_record_large)
{
	/* Records are not bodies: they may exceed RENDER_MAX_BODY. */
	char *big = repeat('x', RENDER_MAX_BODY + 10);
	struct render_field field = { "k", RENDER_VALUE_TEXT, 0, big };
	char *record = render_json_record(&field, 1);

	ck_assert_ptr_nonnull(record);
	ck_assert_uint_eq(strlen(record), RENDER_MAX_BODY + 10 + 8);
	free(record);
	free(big);
}
END_TEST

/* ---- checking bodies from elsewhere -------------------------------------- */

static const struct check_case {
	enum content_kind kind;
	const char *body;
	int ok;
} check_cases[] = {
	{ CONTENT_JSON, "{\"a\":[1,\"x\"]}", 1 },
	{ CONTENT_JSON, "\"just a string\"", 1 },
	{ CONTENT_JSON, "{\"a\":1} trailing", 0 },
	{ CONTENT_JSON, "{\"a\":\"\xff\"}", 0 },
	{ CONTENT_JSON, "", 0 },
	{ CONTENT_XML, "<r a=\"&quot;\">x &amp; y</r>", 1 },
	{ CONTENT_XML, "<r>x & y</r>", 0 },
	{ CONTENT_XML, "<r><a></r>", 0 },
	{ CONTENT_XML, "<p:r>x</p:r>", 0 },
	{ CONTENT_XML, "<r>\x01</r>", 0 },
	{ CONTENT_XML, "", 0 },
};

START_TEST(check_body)
{
	const struct check_case *c = &check_cases[_i];
	char err[256] = "";
	int rc;

	rc = render_check_body(c->kind, c->body, strlen(c->body), err,
			       sizeof(err));
	ck_assert_msg(rc == (c->ok ? 0 : -1), "\"%s\": %d (%s)", c->body, rc,
		      err);
	if (!c->ok)
		ck_assert_msg(err[0] != '\0', "\"%s\": no reason", c->body);
}
END_TEST

START_TEST(check_body_invalid_kind)
{
	char err[256] = "";

	ck_assert_int_eq(render_check_body((enum content_kind)7, "{}", 2, err,
					   sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "kind"));
}
END_TEST

/* ---- the suite ---------------------------------------------------------- */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *render_suite(void)
{
	Suite *s = suite_create("render");
	TCase *tc = tcase_create("render");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, default_json_exact);
	tcase_add_test(tc, default_xml_exact);
	tcase_add_test(tc, default_templates_text);
	tcase_add_loop_test(tc, party_token, 0, N(party_cases));
	tcase_add_test(tc, party_token_in_xml_attribute);
	tcase_add_test(tc, parties_empty);
	tcase_add_test(tc, parties_extra_keys_and_spacing);
	tcase_add_loop_test(tc, parties_given_or_encoded, 0,
			    sizeof(parties_given) / sizeof(parties_given[0]));
	tcase_add_test(tc, parties_given_cannot_escape);
	tcase_add_test(tc, parties_escaped);
	tcase_add_loop_test(tc, parties_invalid, 0, N(party_errors));
	tcase_add_test(tc, parties_large);
	tcase_add_test(tc, parties_over_bound);
	tcase_add_test(tc, bodies_in_turn);
	tcase_add_loop_test(tc, scalar_escaping, 0, N(escapes));
	tcase_add_test(tc, xml_illegal_names_code_point);
	tcase_add_loop_test(tc, scalar_invalid_utf8, 0, N(bad_utf8));
	tcase_add_test(tc, unused_fields_not_examined);
	tcase_add_test(tc, scalar_used_twice);
	tcase_add_test(tc, unknown_percent_text);
	tcase_add_test(tc, body_bound);
	tcase_add_loop_test(tc, template_not_well_formed, 0,
			    N(bad_templates));
	tcase_add_test(tc, template_error_is_the_first);
	tcase_add_test(tc, template_any_json_value);
	tcase_add_test(tc, template_xml_dtd);
	tcase_add_test(tc, event_not_well_formed);
	tcase_add_test(tc, libxml2_stays_quiet);
	tcase_add_test(tc, template_kind_invalid);
	tcase_add_loop_test(tc, content_kind, 0, N(content_types));
	tcase_add_loop_test(tc, json_record_value, 0, N(record_cases));
	tcase_add_test(tc, parties_json_built);
	tcase_add_test(tc, json_record_order);
	tcase_add_test(tc, json_record_large);
	tcase_add_loop_test(tc, check_body, 0, N(check_cases));
	tcase_add_test(tc, check_body_invalid_kind);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(render_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
