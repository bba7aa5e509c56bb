/*
 * store_engine.c - store.h's functions, forwarded to the store's engine.
 *
 * A DB string that starts with postgresql:// or postgres:// opens
 * PostgreSQL; anything else is an SQLite path. To add a store function:
 * declare it in store.h, add its pointer to struct store_engine, write it
 * as a static function in store_sqlite.c and store_pg.c and name it in both
 * engine tables, and add its one-line forwarder here. What both engines
 * share (no SQL) is at the end.
 */
#include "store_engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct store_engine *engine_of(const struct store *store)
{
	return ((const struct store_head *)(const void *)store)->engine;
}

static int store_is_pg(const char *path)
{
	return strncmp(path, "postgresql://", 13) == 0 ||
	       strncmp(path, "postgres://", 11) == 0;
}

int store_open(const char *path, enum store_mode mode, struct store **out,
	       char *err, size_t errlen)
{
	const struct store_engine *engine =
		store_is_pg(path) ? &store_pg_engine : &store_sqlite_engine;

	return engine->open(path, mode, out, err, errlen);
}

void store_display_name(const char *path, char *out, size_t outlen)
{
	const char *start, *at, *colon, *query;
	size_t hostpart, len;

	if (outlen == 0)
		return;
	if (!store_is_pg(path)) {
		snprintf(out, outlen, "%s", path);
		return;
	}
	start = strstr(path, "://") + 3;
	hostpart = strcspn(start, "/?");
	at = memchr(start, '@', hostpart);
	colon = at ? memchr(start, ':', (size_t)(at - start)) : NULL;
	if (colon != NULL)
		snprintf(out, outlen, "%.*s%s", (int)(colon - path), path, at);
	else
		snprintf(out, outlen, "%s", path);
	/* A password among the parameters: everything from it on goes. */
	query = strchr(out, '?');
	if (query != NULL) {
		char *secret = strstr(query, "password=");

		if (secret != NULL) {
			len = (size_t)(secret - out) + strlen("password=");
			if (len + 4 <= outlen)
				memcpy(secret + strlen("password="), "***", 4);
		}
	}
}

void store_close(struct store *store)
{
	if (store != NULL)
		engine_of(store)->close(store);
}

const char *store_errmsg(const struct store *store)
{
	return engine_of(store)->errmsg(store);
}

int store_schema_version(const struct store *store)
{
	return engine_of(store)->schema_version();
}

int store_set_busy_timeout(struct store *store, int timeout_ms)
{
	return engine_of(store)->set_busy_timeout(store, timeout_ms);
}

void store_set_tx_hook(struct store *store, void (*hook)(void *arg),
		       void *arg)
{
	engine_of(store)->set_tx_hook(store, hook, arg);
}

int store_data_changed(struct store *store, int *changed)
{
	return engine_of(store)->data_changed(store, changed);
}

int store_wait_fd(struct store *store)
{
	return engine_of(store)->wait_fd(store);
}

int store_config_list(struct store *store, const char *cloud_id,
		      struct config_row **rows, size_t *count)
{
	return engine_of(store)->config_list(store, cloud_id, rows, count);
}

int store_config_set(struct store *store, const char *cloud_id,
		     const char *key, const char *value)
{
	return engine_of(store)->config_set(store, cloud_id, key, value);
}

int store_config_add(struct store *store, const char *cloud_id,
		     const char *key, const char *value, int *added)
{
	return engine_of(store)->config_add(store, cloud_id, key, value,
					    added);
}

int store_config_unset(struct store *store, const char *cloud_id,
		       const char *key, int *removed)
{
	return engine_of(store)->config_unset(store, cloud_id, key, removed);
}

int store_pending_cloud_ids(struct store *store, size_t max, char ***ids,
			    size_t *count)
{
	return engine_of(store)->pending_cloud_ids(store, max, ids, count);
}

int store_enqueue(struct store *store, const struct new_event *event,
		  int64_t *id)
{
	return engine_of(store)->enqueue(store, event, id);
}

int store_enqueue_batch(struct store *store, const struct new_event *events,
			size_t count, int64_t *ids)
{
	return engine_of(store)->enqueue_batch(store, events, count, ids);
}

int store_claim(struct store *store, const struct claim_request *request,
		struct event **events, size_t *count)
{
	return engine_of(store)->claim(store, request, events, count);
}

int store_max_event_id(struct store *store, int64_t *id)
{
	return engine_of(store)->max_event_id(store, id);
}

int store_recover_leases(struct store *store, int64_t now_ms,
			 int64_t *recovered)
{
	return engine_of(store)->recover_leases(store, now_ms, recovered);
}

int store_next_due(struct store *store, const char *cloud_id, int64_t *due_ms)
{
	return engine_of(store)->next_due(store, cloud_id, due_ms);
}

int store_record(struct store *store, const struct outcome *outcomes,
		 size_t count, unsigned char *refused)
{
	return engine_of(store)->record(store, outcomes, count, refused);
}

int store_release(struct store *store, const int64_t *ids,
		  const int64_t *tokens, size_t count)
{
	return engine_of(store)->release(store, ids, tokens, count);
}

int store_history(struct store *store, const struct history_filter *filter,
		  int (*each)(const struct history_row *row, void *arg),
		  void *arg)
{
	return engine_of(store)->history(store, filter, each, arg);
}

int store_attempts(struct store *store, int64_t outbox_id,
		   int (*each)(const struct attempt_row *row, void *arg),
		   void *arg)
{
	return engine_of(store)->attempts(store, outbox_id, each, arg);
}

int store_requeue_count(struct store *store,
			const struct requeue_filter *filter, int64_t *count)
{
	return engine_of(store)->requeue_count(store, filter, count);
}

int store_requeue_batch(struct store *store,
			const struct requeue_filter *filter, int64_t after_id,
			int64_t max_id, size_t limit, int64_t *requeued,
			int64_t *last_id)
{
	return engine_of(store)->requeue_batch(store, filter, after_id, max_id,
					       limit, requeued, last_id);
}

int store_purge_count(struct store *store, const char *cutoff, int64_t *count)
{
	return engine_of(store)->purge_count(store, cutoff, count);
}

int store_purge_batch(struct store *store, const char *cutoff, size_t limit,
		      int64_t *events, int64_t *attempts)
{
	return engine_of(store)->purge_batch(store, cutoff, limit, events,
					     attempts);
}

int store_stats_clouds(struct store *store,
		       int (*each)(const struct stats_cloud_row *row, void *arg),
		       void *arg)
{
	return engine_of(store)->stats_clouds(store, each, arg);
}

int store_stats(struct store *store, int64_t now_ms, struct store_stats *out)
{
	return engine_of(store)->stats(store, now_ms, out);
}

int store_queue_depth(struct store *store, size_t max,
		      int (*each)(const struct queue_depth *depth, void *arg),
		      void *arg)
{
	return engine_of(store)->queue_depth(store, max, each, arg);
}

int store_copy_read(struct store *store, const char *cloud_id,
		    int64_t after_id, size_t limit, struct copy_event **events,
		    size_t *count)
{
	return engine_of(store)->copy_read(store, cloud_id, after_id, limit,
					   events, count);
}

int store_copy_write(struct store *store, const struct copy_event *events,
		     size_t count, int dry_run, struct copy_result *results)
{
	return engine_of(store)->copy_write(store, events, count, dry_run,
					    results);
}

/* ---- shared by the engines --------------------------------------------- */

void store_config_rows_free(struct config_row *rows, size_t count)
{
	if (rows == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free(rows[i].cloud_id);
		free(rows[i].key);
		free(rows[i].value);
	}
	free(rows);
}

void store_events_free(struct event *events, size_t count)
{
	if (events == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free(events[i].cloud_id);
		free(events[i].new_smart_number);
		free(events[i].network_id);
		free(events[i].new_smart_uri);
		free(events[i].interested_parties);
	}
	free(events);
}

void store_copy_events_free(struct copy_event *events, size_t count)
{
	if (events == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		free(events[i].cloud_id);
		free(events[i].new_smart_number);
		free(events[i].network_id);
		free(events[i].new_smart_uri);
		free(events[i].interested_parties);
		free(events[i].created_at);
		free(events[i].next_attempt_at);
		free(events[i].last_attempt_at);
		free(events[i].error);
	}
	free(events);
}

const char *store_copy_differs(const struct copy_event *copied,
			       const char *const stored[COPY_PRODUCER_COLUMNS])
{
	const struct {
		const char *name;
		const char *value;
	} columns[COPY_PRODUCER_COLUMNS] = {
		{ "cloud_id", copied->cloud_id },
		{ "new_smart_number", copied->new_smart_number },
		{ "network_id", copied->network_id },
		{ "new_smart_uri", copied->new_smart_uri },
		{ "interested_parties", copied->interested_parties },
		{ "created_at", copied->created_at },
	};

	for (size_t i = 0; i < COPY_PRODUCER_COLUMNS; i++) {
		const char *a = columns[i].value, *b = stored[i];

		if (a == NULL || b == NULL ? a != b : strcmp(a, b) != 0)
			return columns[i].name;
	}
	return NULL;
}

int store_copy_each(struct store *store, const struct copy_ops *ops,
		    const struct copy_event *events, size_t count, int dry_run,
		    struct copy_result *results, int64_t *failed,
		    int64_t *top)
{
	int rc = STORE_OK;

	*failed = 0;
	*top = 0;
	for (size_t i = 0; i < count && rc == STORE_OK; i++) {
		int added = 0;

		results[i].outcome = COPY_ADDED;
		results[i].differs = NULL;
		if (!dry_run)
			rc = ops->insert(store, &events[i], &added);
		if (rc == STORE_OK && !added)
			rc = ops->find(store, &events[i], &results[i]);
		if (rc != STORE_OK)
			*failed = events[i].id;
		else if (added && events[i].id > *top)
			*top = events[i].id;
	}
	return rc;
}
