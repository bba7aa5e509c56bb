#!/usr/bin/env python3
"""Verifies Standard Webhooks signatures, independently of the relay's C code.

    python3 tests/verify_webhook.py SECRETS RECORD

SECRETS is the value of smartContactNotificationSigningSecret (one or more
"whsec_<base64>" separated by spaces); RECORD is a file written by
tools/receiver.c --record. Every recorded request must carry webhook-id,
webhook-timestamp (within five minutes of now) and a webhook-signature whose
list holds a valid "v1,<signature>" for each secret. Prints one line per
request; exits 0 when all verify, 1 otherwise.

verify() is what a receiver needs, exactly as the README shows it; the rest
reads the test receiver's file.
"""
import base64
import hashlib
import hmac
import sys
import time

def verify(secret, headers, body):
    key = base64.b64decode(secret[len("whsec_"):], validate=True)
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > 300:
        return False                      # too old or from the future: replayed?
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(sig.partition(",")[2], expected)
               for sig in headers["webhook-signature"].split(" ")
               if sig.startswith("v1,"))


def read_requests(path):
    """(headers with lower-case names, body) of every recorded request."""
    data = open(path, "rb").read()
    requests = []
    while data:
        frame, _, data = data.partition(b"\n")
        length = int(frame.split()[3])
        raw, data = data[:length], data[length + 1:]
        head, _, body = raw.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        requests.append((headers, body))
    return requests


def main(argv):
    secrets = argv[1].split()
    requests = read_requests(argv[2])
    ok = bool(requests)
    for headers, body in requests:
        good = all(verify(secret, headers, body) for secret in secrets)
        signatures = headers.get("webhook-signature", "").split()
        good = good and len(signatures) == len(secrets)
        print("%s id=%s" % ("verified" if good else "BAD",
                            headers.get("webhook-id")))
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
