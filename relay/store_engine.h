/*
 * store_engine.h - the storage engines behind store.h (private to them).
 *
 * store_engine.c opens the engine that a DB string names and then forwards
 * every call of store.h through the store's engine table: one indirect call,
 * nothing more. Each engine (store_sqlite.c, store_pg.c) defines its own
 * struct store, whose first member is a struct store_head; only the engine
 * files know which one runs. Adding a store function: see store_engine.c.
 */
#ifndef SMARTRELAY_STORE_ENGINE_H
#define SMARTRELAY_STORE_ENGINE_H

#include "store.h"

struct store_engine {
	int (*open)(const char *path, enum store_mode mode, struct store **out,
		    char *err, size_t errlen);
	void (*close)(struct store *store);
	const char *(*errmsg)(const struct store *store);
	int (*schema_version)(void);
	int (*set_busy_timeout)(struct store *store, int timeout_ms);
	void (*set_tx_hook)(struct store *store, void (*hook)(void *arg),
			    void *arg);
	int (*data_changed)(struct store *store, int *changed);
	int (*wait_fd)(struct store *store);
	int (*config_list)(struct store *store, const char *cloud_id,
			   struct config_row **rows, size_t *count);
	int (*config_set)(struct store *store, const char *cloud_id,
			  const char *key, const char *value);
	int (*config_add)(struct store *store, const char *cloud_id,
			  const char *key, const char *value, int *added);
	int (*config_unset)(struct store *store, const char *cloud_id,
			    const char *key, int *removed);
	int (*pending_cloud_ids)(struct store *store, size_t max, char ***ids,
				 size_t *count);
	int (*enqueue)(struct store *store, const struct new_event *event,
		       int64_t *id);
	int (*enqueue_batch)(struct store *store,
			     const struct new_event *events, size_t count,
			     int64_t *ids);
	int (*claim)(struct store *store, const struct claim_request *request,
		     struct event **events, size_t *count);
	int (*max_event_id)(struct store *store, int64_t *id);
	int (*recover_leases)(struct store *store, int64_t now_ms,
			      int64_t *recovered);
	int (*next_due)(struct store *store, const char *cloud_id,
			int64_t *due_ms);
	int (*record)(struct store *store, const struct outcome *outcomes,
		      size_t count, unsigned char *refused);
	int (*release)(struct store *store, const int64_t *ids,
		       const int64_t *tokens, size_t count);
	int (*history)(struct store *store, const struct history_filter *filter,
		       int (*each)(const struct history_row *row, void *arg),
		       void *arg);
	int (*attempts)(struct store *store, int64_t outbox_id,
			int (*each)(const struct attempt_row *row, void *arg),
			void *arg);
	int (*requeue_count)(struct store *store,
			     const struct requeue_filter *filter,
			     int64_t *count);
	int (*requeue_batch)(struct store *store,
			     const struct requeue_filter *filter,
			     int64_t after_id, int64_t max_id, size_t limit,
			     int64_t *requeued, int64_t *last_id);
	int (*purge_count)(struct store *store, const char *cutoff,
			   int64_t *count);
	int (*purge_batch)(struct store *store, const char *cutoff,
			   size_t limit, int64_t *events, int64_t *attempts);
	int (*stats_clouds)(struct store *store,
			    int (*each)(const struct stats_cloud_row *row,
					void *arg),
			    void *arg);
	int (*stats)(struct store *store, int64_t now_ms,
		     struct store_stats *out);
	int (*queue_depth)(struct store *store, size_t max,
			   int (*each)(const struct queue_depth *depth,
				       void *arg),
			   void *arg);
	int (*copy_read)(struct store *store, const char *cloud_id,
			 int64_t after_id, size_t limit,
			 struct copy_event **events, size_t *count);
	int (*copy_write)(struct store *store, const struct copy_event *events,
			  size_t count, int dry_run,
			  struct copy_result *results);
};

/* The first member of every engine's struct store. */
struct store_head {
	const struct store_engine *engine;
};

/*
 * For store_copy_write: the first producer column in which the event
 * already stored under an id differs from the one being copied, or NULL
 * when they are the same event. stored holds that row's cloud_id,
 * new_smart_number, network_id, new_smart_uri, interested_parties and
 * created_at, in this order.
 */
#define COPY_PRODUCER_COLUMNS 6

const char *store_copy_differs(const struct copy_event *copied,
			       const char *const stored[COPY_PRODUCER_COLUMNS]);

/*
 * The loop of an engine's copy_write, inside the engine's transaction: for
 * each event, insert (unless dry_run) sets *added when it took the event;
 * when it did not, find judges the row stored under the event's id into
 * the result (left COPY_ADDED when there is none). Stops at the first
 * failure and returns it with *failed set to that event's id. *top is the
 * largest id added (0: none).
 */
struct copy_ops {
	int (*insert)(struct store *store, const struct copy_event *event,
		      int *added);
	int (*find)(struct store *store, const struct copy_event *event,
		    struct copy_result *result);
};

int store_copy_each(struct store *store, const struct copy_ops *ops,
		    const struct copy_event *events, size_t count, int dry_run,
		    struct copy_result *results, int64_t *failed,
		    int64_t *top);

extern const struct store_engine store_sqlite_engine;
extern const struct store_engine store_pg_engine;

#endif
