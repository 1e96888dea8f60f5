"""Shared helpers for Canopy's whole-system benchmarks: start real tiers on loopback."""

import http.client
import json
import os
import signal
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANOPY = os.environ.get("CANOPY_BIN", os.path.join(ROOT, "target", "release", "canopy"))


class Tier:
    """One `canopy` daemon; `url` is set for the ones that listen."""

    def __init__(self, args, listens=True, wrap=()):
        # `wrap` prefixes the command, e.g. `ip netns exec NS` (which execs, keeping the pid).
        self.args = args
        self.proc = subprocess.Popen(
            [*wrap, CANOPY, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        self.url = None
        if listens:
            for line in self.proc.stdout:
                if " listening on " in line:
                    self.url = line.split(" listening on ", 1)[1].strip()
                    break
            if self.url is None:
                raise RuntimeError(f"canopy {args[0]} exited before listening")

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Hierarchy:
    """A root, one cluster and one node as separate processes, linked over loopback."""

    def __init__(self, heartbeat_ms=1000, deadline_ms=3000):
        self.dir = tempfile.mkdtemp(prefix="canopy-bench-")
        timing = ["--heartbeat-ms", str(heartbeat_ms), "--deadline-ms", str(deadline_ms)]
        self.root = Tier(["root", "--listen", "127.0.0.1:0", "--data", f"{self.dir}/root", *timing])
        self.cluster = Tier(["cluster", "--root", self.root.url, "--listen", "127.0.0.1:0",
                             "--data", f"{self.dir}/cluster", "--name", "bench", *timing])
        self.node = Tier(["node", "--cluster", self.cluster.url, "--data", f"{self.dir}/node",
                          "--name", "bench-node"], listens=False)
        host, port = self.root.url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        deadline = time.monotonic() + 30
        while not any(n.get("state") == "Ready" for n in self.get("/api/v1/nodes")):
            if time.monotonic() > deadline:
                raise RuntimeError("the node never became ready")
            time.sleep(0.05)

    def tiers(self):
        return {"root": self.root, "cluster": self.cluster, "node": self.node}

    def request(self, method, path, body=None, content_type="application/json"):
        return api_request(self.host, self.port, method, path, body, content_type)

    def get(self, path):
        return self.request("GET", path)

    def stop(self):
        for tier in (self.node, self.cluster, self.root):
            tier.stop()
        # Stop the workloads the node started (they outlive their agent by design). Each leads
        # its own process group, so the whole group goes.
        found = subprocess.run(["pgrep", "-f", "canopy-bench-workload"], capture_output=True, text=True)
        for pid in (int(p) for p in found.stdout.split()):
            if pid > 1:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass


def api_request(host, port, method, path, body=None, content_type="application/json", timeout=30):
    """One call to the root's REST API; the decoded JSON answer (None when empty)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"content-type": content_type} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status >= 400:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data) if data else None


def watch_events(host, port, sink, attached):
    """Follows the root's event stream (`/api/v1/events`, SSE), putting `(perf_counter(),
    change)` on `sink` for every change; sets `attached` once the stream is open. The root
    registers its watch before it answers, so nothing after `attached` is missed. Run it in a
    daemon thread."""
    conn = http.client.HTTPConnection(host, port)
    conn.request("GET", "/api/v1/events")
    response = conn.getresponse()
    attached.set()
    for raw in response:
        line = raw.decode().strip()
        if line.startswith("data: "):
            sink.put((time.perf_counter(), json.loads(line[6:])))


def process_app(name, replicas=1, command="sleep 3600"):
    """A process application whose workloads are marked for cleanup."""
    return (
        "apiVersion: canopy.dev/v1\nkind: Application\n"
        f"metadata: {{name: {name}}}\nspec:\n  services:\n"
        f"  - name: work\n    runtime: process\n"
        f"    command: [/bin/sh, -c, '{command}', canopy-bench-workload]\n"
        f"    replicas: {replicas}\n    resources: {{cpu: 10m, memory: 8Mi}}\n"
    )


def percentile(samples, p):
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[rank]
