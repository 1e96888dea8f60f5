"""Drives Canopy's NGSI-LD view with ngsildclient (a client nobody here wrote), for
crates/canopy/tests/ngsild.rs. One JSON object per line on stdout, one per step.

    client.py URL TOKEN subscribe
        lists the Domain, InfrastructureElement and ServiceComponent entities, gets one by
        id, subscribes to ServiceComponents' serviceComponentStatus with an HTTP endpoint
        served here, prints {"step": "subscribed", ...}, then waits for a notification of a
        component that was not listed before and is Running: {"step": "notified", ...}.
    client.py URL TOKEN resume SUBSCRIPTION_ID PORT
        after a restart of the root: gets the subscription back, listens on the same port
        again, prints {"step": "listening", ...} and waits as above.
"""

import json
import queue
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests
from ngsildclient import Client, SubscriptionBuilder

WAIT_SECONDS = 90


class Bearer(requests.auth.AuthBase):
    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def say(**fields):
    print(json.dumps(fields), flush=True)


def serve(port, notifications):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            notifications.put((self.headers.get("Content-Type"), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def wait_for_new_running(notifications, known):
    while True:
        try:
            content_type, body = notifications.get(timeout=WAIT_SECONDS)
        except queue.Empty:
            say(step="timeout", known=sorted(known))
            sys.exit(1)
        for entity in body.get("data", []):
            status = entity.get("serviceComponentStatus", {}).get("value")
            if entity["id"] not in known and status == "Running":
                say(step="notified", content_type=content_type, notification=body)
                return


def connect(url, token):
    parsed = urllib.parse.urlparse(url)
    return Client(hostname=parsed.hostname, port=parsed.port, custom_auth=Bearer(token), verbose=False)


def component_ids(client):
    return {e.id for e in client.query(type="ServiceComponent")}


def subscribe(client):
    domains = [e.to_dict() for e in client.query(type="Domain")]
    nodes = [e.to_dict() for e in client.query(type="InfrastructureElement")]
    components = [e.to_dict() for e in client.query(type="ServiceComponent")]
    one = client.get(components[0]["id"], asdict=True)
    notifications = queue.Queue()
    port = serve(0, notifications)
    subscription = (
        SubscriptionBuilder(f"http://127.0.0.1:{port}/notify")
        .select_type("ServiceComponent")
        .watch(["serviceComponentStatus"])
        .build()
    )
    subscription_id = client.subscriptions.create(subscription)
    say(
        step="subscribed",
        domains=domains,
        nodes=nodes,
        components=components,
        one=one,
        subscription=subscription_id,
        port=port,
    )
    wait_for_new_running(notifications, {c["id"] for c in components})


def resume(client, subscription_id, port):
    kept = client.subscriptions.get(subscription_id)
    notifications = queue.Queue()
    serve(port, notifications)
    known = component_ids(client)
    say(step="listening", subscription=kept)
    wait_for_new_running(notifications, known)


def main():
    url, token, mode = sys.argv[1:4]
    client = connect(url, token)
    if mode == "subscribe":
        subscribe(client)
    elif mode == "resume":
        resume(client, sys.argv[4], int(sys.argv[5]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
