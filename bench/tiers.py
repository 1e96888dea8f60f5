"""Shared helpers for Canopy's whole-system benchmarks: start real tiers on loopback, follow the
root's event stream, read /proc, clean up what container runtimes leave, and write figures as
JSON for `bench/report`."""

import collections
import datetime
import http.client
import json
import os
import platform
import queue
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANOPY = os.environ.get("CANOPY_BIN", os.path.join(ROOT, "target", "release", "canopy"))
TICKS = os.sysconf("SC_CLK_TCK")


def _exit_on_sigterm(signum, _frame):
    raise SystemExit(128 + signum)


# A benchmark stopped with SIGTERM (or its terminal closed) still runs its `finally` blocks,
# which stop the tiers and remove what their workloads left.
signal.signal(signal.SIGTERM, _exit_on_sigterm)
signal.signal(signal.SIGHUP, _exit_on_sigterm)


# Bearer tokens of the roots started here, by "host:port": every API call needs one.
TOKENS = {}


def auth_headers(host, port):
    """The Authorization header for the root at host:port, once it was logged in."""
    token = TOKENS.get(f"{host}:{port}")
    return {"authorization": f"Bearer {token}"} if token else {}


def log_in(url, data):
    """Logs in to the root at `url` as the admin its first start made (`<data>/admin-password`)."""
    with open(os.path.join(data, "admin-password")) as f:
        password = f.read().strip()
    address = url.removeprefix("http://")
    host, port = address.rsplit(":", 1)
    body = json.dumps({"user": "admin", "password": password})
    tokens = api_request(host, int(port), "POST", "/api/v1/login", body)
    TOKENS[address] = tokens["access_token"]


class Tier:
    """One `canopy` daemon; `url` is set for the ones that listen (a root's is logged in)."""

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
        # A root also prints its tier listener (https://, where clusters join and link).
        self.tier_url = None
        if listens:
            for line in self.proc.stdout:
                if line.startswith("canopy tier listening on "):
                    self.tier_url = line.split(" listening on ", 1)[1].strip()
                elif " listening on " in line:
                    self.url = line.split(" listening on ", 1)[1].strip()
                if self.url and (args[0] != "root" or self.tier_url):
                    break
            if self.url is None:
                raise RuntimeError(f"canopy {args[0]} exited before listening")
            # A root in another network namespace is logged in by its caller, at its address.
            if args[0] == "root" and not wrap:
                log_in(self.url, args[args.index("--data") + 1])

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def joined_cluster(root, name, data, extra=()):
    """`canopy cluster NAME` joined to `root` as a user's would be: with a one-time token from
    the root's API, linking to its tier listener."""
    admin = TOKENS.get(root.url.removeprefix("http://"), "")
    token = json.loads(subprocess.run(
        [CANOPY, "token", "create", "--join", "cluster", "--name", name, "-o", "json",
         "--server", root.url], capture_output=True, text=True, check=True,
        env={**os.environ, "CANOPY_TOKEN": admin}).stdout)
    return Tier(["cluster", "--root", root.tier_url, "--listen", "127.0.0.1:0", "--data", data,
                 "--name", name, "--token", token["token"], "--ca-hash", token["ca_hash"], *extra])


def node_token(root_url, cluster, name=None, uses=None, within=30):
    """`(token, ca_hash)` of a node token for `cluster`, from the root's API as a user would
    make it. The root hands it to the cluster over its link, so this retries until the
    cluster is linked."""
    args = [CANOPY, "token", "create", "--join", "node", "--cluster", cluster, "-o", "json",
            "--server", root_url]
    if name:
        args += ["--name", name]
    if uses:
        args += ["--uses", str(uses)]
    env = dict(os.environ)
    token = TOKENS.get(root_url.removeprefix("http://"))
    if token:
        env["CANOPY_TOKEN"] = token
    deadline = time.monotonic() + within
    while True:
        done = subprocess.run(args, capture_output=True, text=True, env=env)
        if done.returncode == 0:
            token = json.loads(done.stdout)
            return token["token"], token["ca_hash"]
        if time.monotonic() > deadline:
            raise RuntimeError(f"no node token for {cluster}: {done.stderr.strip()}")
        time.sleep(0.1)


class HollowContinuum:
    """A root and one cluster orchestrator (release processes on loopback, 1 s heartbeats) with
    `nodes` hollow node agents in one `canopy sim` process, all joined; `joined_s` is how long
    the nodes took to be Ready, `enrolled_s` how much of it their joins took (token checked,
    certificate issued), before the agents start. The cluster serves its metrics on
    `metrics_port`."""

    TIMING = ["--heartbeat-ms", "1000", "--deadline-ms", "5000"]

    def __init__(self, work, nodes):
        self.tiers = []
        try:
            self.root = self._add(Tier(["root", "--listen", "127.0.0.1:0", "--tier-listen", "127.0.0.1:0",
                                        "--data", f"{work}/root", *self.TIMING]))
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.metrics_port = s.getsockname()[1]
            self.cluster = self._add(joined_cluster(
                self.root, "scale", f"{work}/cluster",
                [*self.TIMING, "--metrics-listen", f"127.0.0.1:{self.metrics_port}"]))
            host, port = self.root.url.removeprefix("http://").split(":")
            self.host, self.port = host, int(port)
            began = time.monotonic()
            token, ca_hash = node_token(self.root.url, "scale", uses=nodes)
            self.sim = self._add(Tier(["sim", "--cluster", self.cluster.url, "--nodes", str(nodes),
                                       "--data", f"{work}/hollow", "--token", token, "--ca-hash", ca_hash],
                                      listens=False))
            # The sim says when every node has joined (token, certificate) and the agents start.
            enrolled = threading.Event()

            def follow(stdout):
                for line in stdout:
                    if line.startswith("canopy sim:") and not enrolled.is_set():
                        self.enrolled_s = time.monotonic() - began
                        enrolled.set()

            self.enrolled_s = None
            threading.Thread(target=follow, args=(self.sim.proc.stdout,), daemon=True).start()
            deadline = time.monotonic() + 300
            while sum(1 for n in api_request(self.host, self.port, "GET", "/api/v1/nodes")
                      if n.get("state") == "Ready") < nodes:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{nodes} hollow nodes were not all Ready within 300 s")
                time.sleep(0.5)
            self.joined_s = time.monotonic() - began
        except BaseException:
            self.stop()
            raise

    def _add(self, tier):
        self.tiers.append(tier)
        return tier

    def apply(self, body, content_type="application/yaml"):
        """POSTs a descriptor; returns when the root answered (2xx, or raises)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        conn.request("POST", "/api/v1/apply", body=body,
                     headers={"content-type": content_type, **auth_headers(self.host, self.port)})
        status = conn.getresponse().status
        conn.close()
        if status >= 300:
            raise RuntimeError(f"apply answered {status}")

    def stop(self):
        for tier in reversed(self.tiers):
            tier.stop()
        self.tiers = []


def scrape(host, port, headers, times):
    """Median seconds to the last byte of `GET /metrics` over `times` scrapes, and its size."""
    took, size = [], 0
    for _ in range(times):
        conn = http.client.HTTPConnection(host, port, timeout=60)
        start = time.perf_counter()
        conn.request("GET", "/metrics", headers=headers)
        response = conn.getresponse()
        body = response.read()
        took.append(time.perf_counter() - start)
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"/metrics on {host}:{port} answered {response.status}")
        size = len(body)
    series = sum(1 for line in body.decode().splitlines() if line and not line.startswith("#"))
    return statistics.median(took), size, series


def hollow_app(replicas, name="scale"):
    """An application of `replicas` containers for hollow nodes (they run nothing), in services
    of at most 1,000 replicas each (the descriptor limit)."""
    services = ""
    for index, start in enumerate(range(0, replicas, 1000)):
        services += (f"  - name: work{index or ''}\n    runtime: container\n    image: registry.invalid/hollow:1\n"
                     f"    replicas: {min(1000, replicas - start)}\n    objective: spread\n"
                     "    resources: {cpu: 100m, memory: 64Mi}\n")
    return f"apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  services:\n" + services


class SkipBench(Exception):
    """This benchmark cannot run on this machine (the message says why)."""


class Hierarchy:
    """A root, one cluster and `nodes` node agents as separate processes, linked over loopback.

    With `runtime="container"` a local docker-registry (`tests/registry/start.sh`) serves a
    busybox image (`self.image`) and the nodes pull from it; `stop()` then also removes what
    the containers leave on the host (runc state, cgroups, mounts, the CNI bridge)."""

    def __init__(self, runtime="process", nodes=1, heartbeat_ms=1000, deadline_ms=3000, node_args=()):
        self.dir = tempfile.mkdtemp(prefix="canopy-bench-")
        self.runtime = runtime
        self.node_tiers = []
        self.registry_pid = None
        self.links_before = host_links()
        self.node_names = [f"bench{os.getpid()}-{i}" for i in range(nodes)]
        self.root = self.cluster = None
        try:
            self._start(nodes, heartbeat_ms, deadline_ms, list(node_args))
        except BaseException:
            self.stop()
            raise

    def _start(self, nodes, heartbeat_ms, deadline_ms, node_args):
        timing = ["--heartbeat-ms", str(heartbeat_ms), "--deadline-ms", str(deadline_ms)]
        if self.runtime == "container":
            node_help = subprocess.run([CANOPY, "node", "--help"], capture_output=True, text=True).stdout
            if "--insecure-registry" not in node_help:
                raise SkipBench("this canopy build has no container runtime")
            registry, self.registry_pid = start_registry(f"{self.dir}/registry")
            self.image = f"{registry}/busybox:latest"
            node_args += ["--insecure-registry", registry]
        # `default` trusted: the process runtime (no isolation) runs only in trusted namespaces.
        # The API's per-client rate limits (20 writes/s) are lifted: the samples come faster.
        self.root = Tier(["root", "--listen", "127.0.0.1:0", "--tier-listen", "127.0.0.1:0",
                          "--data", f"{self.dir}/root", "--trusted-namespace", "default",
                          "--rate-limit", "1000000", "--write-rate-limit", "1000000", *timing])
        self.cluster = joined_cluster(self.root, "bench", f"{self.dir}/cluster", timing)
        for i, name in enumerate(self.node_names):
            extra = list(node_args)
            if self.runtime == "container":
                extra += ["--container-subnet", free_subnet(i)]
            token, ca_hash = node_token(self.root.url, "bench", name)
            self.node_tiers.append(Tier(["node", "--cluster", self.cluster.url, "--data", f"{self.dir}/{name}",
                                         "--name", name, "--token", token, "--ca-hash", ca_hash,
                                         *extra], listens=False))
        host, port = self.root.url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        deadline = time.monotonic() + 60
        while sum(1 for n in self.get("/api/v1/nodes") if n.get("state") == "Ready"
                  and self.runtime in n.get("runtimes", [])) < nodes:
            if time.monotonic() > deadline:
                raise SkipBench(f"not every node became ready with the {self.runtime} runtime "
                                "(runc or the CNI plugins missing?)")
            time.sleep(0.05)

    @property
    def node(self):
        return self.node_tiers[0]

    def tiers(self):
        named = {"root": self.root, "cluster": self.cluster}
        named.update({"node" if i == 0 else f"node{i}": t for i, t in enumerate(self.node_tiers)})
        return named

    def request(self, method, path, body=None, content_type="application/json"):
        return api_request(self.host, self.port, method, path, body, content_type)

    def get(self, path):
        return self.request("GET", path)

    def apply(self, body):
        return self.request("POST", "/api/v1/apply", body, "application/yaml")

    def app(self, name, replicas=1):
        """A one-service application of this hierarchy's runtime, sleeping."""
        if self.runtime == "container":
            return container_app(name, self.image, replicas)
        if self.runtime == "wasm":
            return wasm_app(name, replicas)
        return process_app(name, replicas)

    def stop(self):
        for tier in [*self.node_tiers, self.cluster, self.root]:
            if tier is not None:
                tier.stop()
        # Workloads outlive their agent by design. Processes: each leads its own process group.
        found = subprocess.run(["pgrep", "-f", "canopy-bench-workload"], capture_output=True, text=True)
        for pid in (int(p) for p in found.stdout.split()):
            if pid > 1:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for name in self.node_names:
            remove_node_leftovers(f"{self.dir}/{name}", name, self.links_before)
        kill_pid(self.registry_pid)
        unmount_under(self.dir)
        subprocess.run(["rm", "-rf", self.dir], capture_output=True)


class Instances:
    """The latest view of every instance, from the root's event stream; `wait` blocks until a
    predicate holds and returns the time of the change that made it hold. Counts per
    (application, state) are kept as changes arrive, so waiting for 1,000 instances costs
    O(1) per change, not a scan."""

    def __init__(self, host, port):
        self.views = {}  # id -> (perf_counter time of its last change, instance object)
        self.counts = collections.Counter()  # (application, state) -> instances
        self.placed_at = {}  # id -> time it was first seen on a node
        self.last_change = time.perf_counter()
        self.cond = threading.Condition()
        changes = queue.Queue()
        attached = threading.Event()
        threading.Thread(target=watch_events, args=(host, port, changes, attached), daemon=True).start()
        if not attached.wait(timeout=10):
            raise RuntimeError("the event stream did not attach")
        threading.Thread(target=self._follow, args=(changes,), daemon=True).start()

    def _follow(self, changes):
        while True:
            at, change = changes.get()
            if change.get("kind") != "instance":
                continue
            with self.cond:
                if change.get("action") == "delete":
                    gone = self.views.pop(change["key"].rsplit("/", 1)[-1], None)
                    if gone:
                        self.counts[(gone[1]["application"], gone[1]["state"])] -= 1
                else:
                    obj = change.get("object") or {}
                    old = self.views.get(obj["id"])
                    if old:
                        self.counts[(old[1]["application"], old[1]["state"])] -= 1
                    self.counts[(obj["application"], obj["state"])] += 1
                    self.views[obj["id"]] = (at, obj)
                    if obj.get("node") and obj["id"] not in self.placed_at:
                        self.placed_at[obj["id"]] = at
                self.last_change = at
                self.cond.notify_all()

    def of(self, application):
        return [(at, x) for at, x in self.views.values() if x["application"] == application]

    def snapshot(self):
        """{id: instance object}, as the stream has it now."""
        with self.cond:
            return {i: x for i, (_, x) in self.views.items()}

    def wait_until(self, predicate, within, what):
        """`wait` with a predicate over `snapshot()`."""
        return self.wait(lambda me: predicate({i: x for i, (_, x) in me.views.items()}), within, what)

    def wait(self, predicate, within, what):
        """Waits until `predicate(self)` holds (checked under the lock after every change)."""
        deadline = time.monotonic() + within
        with self.cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {within} s waiting for {what}")
                self.cond.wait(left)
            return self.last_change

    def wait_running(self, application, replicas, within=120):
        """Time at which the last of `replicas` instances of `application` turned Running;
        an instance that failed ends the wait with its reason."""
        def done(me):
            if me.counts[(application, "Failed")]:
                failed = [x for _, x in me.of(application) if x["state"] == "Failed"]
                raise RuntimeError(f"{application}: an instance failed: {failed[0].get('reason')}")
            return me.counts[(application, "Running")] >= replicas
        self.wait(done, within, f"{replicas} instances of {application} Running")
        with self.cond:
            return max(at for at, x in self.of(application) if x["state"] == "Running")

    def placed_by(self, application):
        """Time at which the last instance of `application` was first seen on a node."""
        with self.cond:
            return max(self.placed_at[x["id"]] for _, x in self.of(application))

    def wait_deleted(self, application, within=120):
        self.wait(lambda me: not any(n for (a, _), n in me.counts.items() if a == application),
                  within, f"{application} deleted")


def api_request(host, port, method, path, body=None, content_type="application/json", timeout=30):
    """One call to the root's REST API; the decoded JSON answer (None when empty)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"content-type": content_type} if body is not None else {}
    headers.update(auth_headers(host, port))
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
    conn.request("GET", "/api/v1/events", headers=auth_headers(host, port))
    response = conn.getresponse()
    attached.set()
    for raw in response:
        line = raw.decode().strip()
        if line.startswith("data: "):
            sink.put((time.perf_counter(), json.loads(line[6:])))


def process_app(name, replicas=1, command="sleep 3600", resources="{cpu: 10m, memory: 8Mi}"):
    """A process application whose workloads are marked for cleanup."""
    return (
        "apiVersion: canopy.dev/v1\nkind: Application\n"
        f"metadata: {{name: {name}}}\nspec:\n  services:\n"
        f"  - name: work\n    runtime: process\n"
        f"    command: [/bin/sh, -c, '{command}', canopy-bench-workload]\n"
        f"    replicas: {replicas}\n    resources: {resources}\n"
    )


def wasm_app(name, replicas=1, resources="{cpu: 10m, memory: 8Mi}"):
    """A wasm application whose module (bench/wasm/idle.wat, assembled by the node) sleeps."""
    module = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm", "idle.wat")
    return ("apiVersion: canopy.dev/v1\nkind: Application\n"
            f"metadata: {{name: {name}}}\nspec:\n  services:\n"
            f"  - name: work\n    runtime: wasm\n    module: {module}\n"
            f"    replicas: {replicas}\n    resources: {resources}\n")


def container_app(name, image, replicas):
    """A container application that sleeps. Its shell (PID 1 of the container, which ignores
    signals it has no handler for) exits on SIGTERM, so a delete does not wait out the grace
    period."""
    return ("apiVersion: canopy.dev/v1\nkind: Application\n"
            f"metadata: {{name: {name}}}\nspec:\n  services:\n"
            f"  - name: work\n    runtime: container\n    image: {image}\n"
            "    command: [sh, -c, 'trap \"exit 0\" TERM; sleep 3600 & wait']\n"
            f"    replicas: {replicas}\n    resources: {{cpu: 10m, memory: 16Mi}}\n")


# --- statistics ------------------------------------------------------------------------------
def percentile(samples, p):
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary(samples, unit="ms", scale=1000.0, digits=0):
    """`median X ms (min, max, n)` of samples in seconds."""
    if not samples:
        return "no samples"
    values = [s * scale for s in samples]
    f = f"{{:.{digits}f}}"
    return (f"median {f.format(statistics.median(values))} {unit} "
            f"(min {f.format(min(values))}, max {f.format(max(values))}, n={len(values)})")


# --- /proc -----------------------------------------------------------------------------------
def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pss_mib(pid):
    """Proportional set size: shared pages (a shim binary) counted once across processes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def kill_pid(pid, sig=signal.SIGKILL):
    if pid and pid > 1:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# --- what containers leave on the host ---------------------------------------------------------
def start_registry(directory):
    """Starts tests/registry/start.sh in `directory`; returns ("127.0.0.1:PORT", pid)."""
    script = os.path.join(ROOT, "tests", "registry", "start.sh")
    out = subprocess.run(["bash", script, directory], capture_output=True, text=True,
                         env={**os.environ, "REGISTRY_OWNER": str(os.getpid())})
    if out.returncode != 0:
        raise SkipBench(f"the registry did not start: {out.stderr.strip()[-300:]}")
    port, pid = out.stdout.split()
    return f"127.0.0.1:{port}", int(pid)


def free_subnet(index):
    """A /24 under 10.91.0.0/16 that no route uses (a bridge left by a crashed run must not
    shadow the new one)."""
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    free = [f"10.91.{i}.0/24" for i in range(250) if f"10.91.{i}." not in routes]
    if not free:
        raise RuntimeError("no free 10.91.x.0/24 subnet")
    return free[(os.getpid() + index) % len(free)]


def host_links():
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def unmount_under(directory):
    """Unmounts everything below `directory`, deepest first."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split(" ")[4] for line in f]
    for point in sorted((p for p in points if p.startswith(directory + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def cgroup_procs(name):
    pids = set()
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", hierarchy, name)
        for base, _, files in os.walk(top):
            if "cgroup.procs" in files:
                with open(os.path.join(base, "cgroup.procs")) as f:
                    pids.update(int(p) for p in f.read().split())
    return pids


def remove_cgroups(name):
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        top = os.path.join("/sys/fs/cgroup", hierarchy, name)
        for base, _, _ in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            try:
                os.rmdir(base)
            except OSError:
                pass


def cni_bridge(network):
    """The bridge a node's CNI network uses (crates/runtime/src/oci/cni.rs: FNV-1a of the name)."""
    h = 0xCBF29CE484222325
    for b in network.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"cnp-{h & 0xFFFFFFFF:08x}"


def delete_bridge(bridge):
    """Deletes `bridge` and the veths still attached to it (nothing else)."""
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True).stdout
    for line in out.splitlines():
        subprocess.run(["ip", "link", "del", line.split(":")[1].strip().split("@")[0]], capture_output=True)
    subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def end_holders_under(node_data):
    """Kills the holders (a runc container's supervisor, `sleep` with CANOPY_HOLDER=<its
    instance dir> in its environment) of containers under node_data."""
    marker = f"CANOPY_HOLDER={node_data}/".encode()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if any(var.startswith(marker) for var in f.read().split(b"\0")):
                    kill_pid(pid)
        except OSError:
            pass


def remove_node_leftovers(node_data, node_name, links_before):
    """Whatever a (stopped) node agent's workloads left: runc state, processes in its cgroups,
    the cgroups (left ones slow every later CPU-quota write: the kernel walks them all),
    mounts, and its CNI bridge if this run created it."""
    state = f"{node_data}/containers"
    if os.path.isdir(state):
        for entry in os.listdir(state):
            if entry.startswith("@"):
                root = os.path.join(state, entry)
                listed = subprocess.run(["runc", "--root", root, "list", "-q"], capture_output=True, text=True)
                for cid in listed.stdout.split():
                    subprocess.run(["runc", "--root", root, "delete", "-f", cid], capture_output=True)
    end_holders_under(node_data)
    for pid in cgroup_procs(f"canopy/{node_name}"):
        kill_pid(pid)
    deadline = time.monotonic() + 5
    while cgroup_procs(f"canopy/{node_name}") and time.monotonic() < deadline:
        time.sleep(0.05)
    remove_cgroups(f"canopy/{node_name}")
    unmount_under(node_data)
    bridge = cni_bridge(f"canopy-{node_name}")
    if bridge in host_links() - links_before:
        delete_bridge(bridge)


# --- results ---------------------------------------------------------------------------------
def machine():
    """What the figures were measured on."""
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory_kib = int(f.readline().split()[1])
    system = ""
    if os.path.exists("/etc/os-release"):
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    system = line.split("=", 1)[1].strip().strip('"')
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory_kib / 1024 / 1024),
            "kernel": platform.release(), "system": system}


def commit():
    """The commit measured (`-dirty` when tracked files other than the results differ from it)."""
    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":!bench/RESULTS.md", ":!bench/results")
    return head + ("-dirty" if changed else "")


def write_results(path, bench, figures):
    """Writes `figures` with what `bench/report` needs to say where they come from: the command
    (without --json), date, commit and machine. Nothing when `path` is None."""
    if not path:
        return
    argv, command = sys.argv[1:], [f"bench/{os.path.basename(sys.argv[0])}"]
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            command.append(arg)
    doc = {"bench": bench, "command": shlex.join(command),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "commit": commit(), "machine": machine(), "figures": figures}
    # What the figures' reader must know about the conditions (a busy machine), shown with them.
    if os.environ.get("BENCH_NOTE"):
        doc["note"] = os.environ["BENCH_NOTE"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
