#!/usr/bin/env python3
"""The relay a user might write in an afternoon, as the benchmark's yardstick.

    python3 tools/naive_relay.py DB URL

Python's standard library only: sqlite3, and http.client on one keep-alive
connection. It walks the pending events in id order, renders the documented
JSON template, POSTs each one, waits for the answer, and records it (the
row's outcome and one delivery_attempts row) in its own commit, with the
same PRAGMA synchronous = NORMAL as the relay, so both pay the same
durability. One pass, like `smartrelay run --once`; prints the count sent.
"""
import http.client
import json
import sqlite3
import sys
import time
import urllib.parse


def now_text():
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % (int(t * 1000) % 1000)


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("usage: naive_relay.py DB URL\n")
        return 2
    db = sqlite3.connect(sys.argv[1])
    db.execute("PRAGMA synchronous = NORMAL")
    url = urllib.parse.urlsplit(sys.argv[2])
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=15)
    path = url.path or "/"
    last_id = 0
    sent = 0
    while True:
        rows = db.execute(
            "SELECT id, new_smart_number, network_id, new_smart_uri,"
            " interested_parties FROM outbox"
            " WHERE status = 'pending' AND id > ? ORDER BY id LIMIT 1000",
            (last_id,)).fetchall()
        if not rows:
            break
        for event_id, number, network, uri, parties in rows:
            last_id = event_id
            body = json.dumps({
                "newSmartNumber": number,
                "networkId": network,
                "newSmartUri": uri,
                "interestedParties": json.loads(parties),
            }).encode()
            # The schema allows pending -> sending -> delivered only; the
            # transaction that marks the row stays open over the request.
            db.execute("UPDATE outbox SET status = 'sending' WHERE id = ?",
                       (event_id,))
            started = now_text()
            t0 = time.monotonic()
            conn.request("POST", path, body, {
                "Content-Type": "application/json",
                "webhook-id": str(event_id),
            })
            response = conn.getresponse()
            response.read()
            status = response.status
            duration = int((time.monotonic() - t0) * 1000)
            finished = now_text()
            if status == 204:
                db.execute(
                    "UPDATE outbox SET status = 'delivered',"
                    " attempts = attempts + 1, last_attempt_at = ?,"
                    " http_status = ?, error = NULL, delivered_at = ?"
                    " WHERE id = ?", (finished, status, finished, event_id))
                error = None
            else:
                error = "HTTP %d" % status
                db.execute(
                    "UPDATE outbox SET status = 'failed',"
                    " attempts = attempts + 1, last_attempt_at = ?,"
                    " http_status = ?, error = ? WHERE id = ?",
                    (finished, status, error, event_id))
            db.execute(
                "INSERT INTO delivery_attempts (outbox_id, attempt, started_at,"
                " duration_ms, http_status, error)"
                " SELECT id, attempts, ?, ?, ?, ? FROM outbox WHERE id = ?",
                (started, duration, status, error, event_id))
            db.commit()
            sent += 1
    conn.close()
    db.close()
    print("sent %d" % sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
