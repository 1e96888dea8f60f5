// The dashboard: logs in, loads the lists, keeps them current from the event stream and
// wires the tables' actions to the API. Offers only what the caller's grants allow
// (`GET /api/v1/whoami`); the API decides every request all the same.
import * as api from "./api.js";
import { follow } from "./events.js";
import { Editor } from "./editor.js";
import { followLogs } from "./logs.js";
import { Terminal } from "./terminal.js";
import { WorldMap } from "./map.js";
import { drawGraphs } from "./graph.js";
import { mayAnywhere, clusterTable, nodeTable, applicationTable, serviceTable, instanceTable } from "./views.js";

const $ = (id) => document.getElementById(id);
const LISTS = {
  clusters: "/api/v1/clusters",
  nodes: "/api/v1/nodes",
  applications: "/api/v1/applications",
  services: "/api/v1/services",
  instances: "/api/v1/instances",
};
// Which lists an event of each kind changes.
const AFFECTS = {
  cluster: ["clusters"],
  node: ["nodes", "clusters"],
  application: ["applications", "services"],
  instance: ["instances", "services", "applications", "nodes"],
};
const TIMELINE_MAX = 500;
// The graph's call edges are asked again this often while the graph is shown; their rate is
// the change of the totals between two answers.
const TRAFFIC_PERIOD_MS = 5000;
// At most this many applications' traffic per round: the graph stays quick with thousands.
const TRAFFIC_APPLICATIONS_MAX = 50;

let session = null;
// One editor and one terminal for the page's life (their listeners are bound once).
let editor = null;
let terminal = null;

function notice(text, isError = false) {
  const element = $("notice");
  element.textContent = text;
  element.className = isError ? "notice error" : "notice";
}

function show(requested) {
  const view = document.getElementById(`view-${requested}`) ? requested : "overview";
  for (const element of document.querySelectorAll(".view")) element.hidden = element.id !== `view-${view}`;
  for (const button of document.querySelectorAll("#tabs button")) button.classList.toggle("active", button.dataset.view === view);
  session?.tables[view]?.draw();
  if (view === "graph") session?.refreshTraffic();
  location.hash = view;
}

class Session {
  constructor(who) {
    this.who = who;
    this.data = { clusters: [], nodes: [], applications: [], services: [], instances: [] };
    this.pending = new Set();
    this.timer = null;
    this.stop = new AbortController();
    this.drawer = null;
    // "namespace/name" → its call edges; "from->to" → the last totals seen and when.
    this.traffic = new Map();
    this.trafficSeen = new Map();
    this.trafficTimer = null;
    terminal ??= new Terminal();
    editor ??= new Editor(() => session?.refresh(["applications", "services", "instances"]));
    this.terminal = terminal;
    this.editor = editor;
    this.map = new WorldMap($("map"), $("unlocated"));
    const handlers = {
      edit: (a) => this.edit(a),
      remove: (a) => this.remove(a),
      scale: (s) => this.scale(s),
      logs: (i) => this.logs(i),
      exec: (i) => this.exec(i),
      replace: (i) => this.replace(i),
    };
    this.tables = {
      clusters: clusterTable($("view-clusters")),
      nodes: nodeTable($("view-nodes")),
      applications: applicationTable($("view-applications"), who, handlers),
      services: serviceTable($("view-services"), who, handlers),
      instances: instanceTable($("view-instances"), who, handlers),
    };
    for (const button of document.querySelectorAll("#tabs button[data-needs]")) {
      button.hidden = !mayAnywhere(who, button.dataset.needs);
    }
    $("whoami").textContent = `${who.user} (${who.grants.map((g) => `${g.role}${g.namespace ? ` in ${g.namespace}` : ""}`).join(", ")})`;
  }

  async start() {
    await this.refresh(Object.keys(LISTS));
    follow((type, event) => this.event(type, event), (live) => {
      $("live").textContent = live ? "live" : "reconnecting";
      $("live").classList.toggle("on", live);
    }, this.stop.signal);
    this.trafficTimer = setInterval(() => {
      if (!$("view-graph").hidden) this.refreshTraffic();
    }, TRAFFIC_PERIOD_MS);
  }

  // The call edges of the listed applications, each with its rate since the last answer.
  async refreshTraffic() {
    const now = performance.now();
    const applications = this.data.applications.slice(0, TRAFFIC_APPLICATIONS_MAX);
    await Promise.all(applications.map(async (application) => {
      const { namespace, name } = application.metadata;
      const answer = await api.call("GET", `/api/v1/applications/${api.encode(namespace)}/${api.encode(name)}/traffic`);
      if (!answer.ok) return;
      const edges = answer.body.edges.map((edge) => {
        const key = `${edge.from}->${edge.to}`;
        const total = edge.bytesToCallee + edge.bytesFromCallee;
        const seen = this.trafficSeen.get(key);
        this.trafficSeen.set(key, { total, at: now });
        // Totals that fell: a node restarted; the rate waits for the next answer.
        const rate = seen && now > seen.at && total >= seen.total ? (total - seen.total) / ((now - seen.at) / 1000) : null;
        return { ...edge, rate };
      });
      this.traffic.set(`${namespace}/${name}`, edges);
    }));
    drawGraphs($("graph"), this.data.applications, this.data.instances, this.traffic);
  }

  end() {
    this.stop.abort();
    clearInterval(this.trafficTimer);
    this.closeDrawer();
  }

  async refresh(kinds) {
    await Promise.all(kinds.map(async (kind) => {
      try {
        this.data[kind] = await api.get(LISTS[kind]);
        this.tables[kind].setRows(this.data[kind]);
      } catch (error) {
        notice(`${kind}: ${error.message}`, true);
      }
    }));
    if (kinds.includes("clusters") || kinds.includes("nodes")) this.map.draw(this.data.clusters, this.data.nodes);
    if (kinds.includes("applications") || kinds.includes("instances")) {
      drawGraphs($("graph"), this.data.applications, this.data.instances, this.traffic);
    }
  }

  // Coalesces the lists a burst of events touches into one refresh per quarter second.
  event(type, event) {
    const item = document.createElement("li");
    item.dataset.kind = event.kind;
    item.textContent = `${new Date().toLocaleTimeString()} #${event.revision} ${type} ${event.key}`;
    const timeline = $("timeline");
    timeline.prepend(item);
    while (timeline.children.length > TIMELINE_MAX) timeline.lastChild.remove();
    for (const kind of AFFECTS[event.kind] || []) this.pending.add(kind);
    this.schedule();
  }

  schedule() {
    if (this.timer || this.pending.size === 0) return;
    this.timer = setTimeout(async () => {
      const kinds = [...this.pending];
      this.pending.clear();
      await this.refresh(kinds);
      this.timer = null;
      this.schedule();
    }, 250);
  }

  async edit(application) {
    const { namespace, name } = application.metadata;
    const answer = await api.call("GET", `/api/v1/applications/${api.encode(namespace)}/${api.encode(name)}`);
    if (!answer.ok) return notice(answer.body?.message || "could not read the application", true);
    const { status: _status, ...descriptor } = answer.body;
    this.editor.load(JSON.stringify(descriptor, null, 2) + "\n");
    show("editor");
  }

  // Deletes on the second click of the same button (no modal dialog to dismiss).
  async remove(application) {
    const { namespace, name } = application.metadata;
    const key = `${namespace}/${name}`;
    if (this.confirming !== key) {
      this.confirming = key;
      notice(`Click Delete again to delete ${key}.`);
      return;
    }
    this.confirming = null;
    const answer = await api.call("DELETE", `/api/v1/applications/${api.encode(namespace)}/${api.encode(name)}`);
    notice(answer.ok ? `deleted ${key}` : answer.body?.message || `delete failed (${answer.status})`, !answer.ok);
    this.refresh(["applications", "services", "instances"]);
  }

  scale(service) {
    const form = $("scale-form");
    form.hidden = false;
    $("scale-target").textContent = `${service.namespace}/${service.application}/${service.name}`;
    $("scale-replicas").value = service.status.desired;
    $("scale-replicas").focus();
    form.onsubmit = async (event) => {
      event.preventDefault();
      const replicas = Number($("scale-replicas").value);
      const path = `/api/v1/services/${api.encode(service.namespace)}/${api.encode(service.application)}/${api.encode(service.name)}/scale`;
      const answer = await api.call("POST", path, { replicas });
      notice(answer.ok ? `scaled ${service.name} to ${replicas}` : answer.body?.message || `scale failed (${answer.status})`, !answer.ok);
      if (answer.ok) form.hidden = true;
      this.refresh(["services", "instances", "applications"]);
    };
  }

  async replace(instance) {
    const answer = await api.call("DELETE", `/api/v1/instances/${api.encode(instance.id)}`);
    notice(answer.ok ? `replacing ${instance.id}` : answer.body?.message || `failed (${answer.status})`, !answer.ok);
  }

  openDrawer(title) {
    this.closeDrawer();
    $("drawer").hidden = false;
    $("drawer-title").textContent = title;
    $("logs-output").hidden = true;
    $("terminal").hidden = true;
    this.drawer = new AbortController();
    return this.drawer.signal;
  }

  closeDrawer() {
    this.drawer?.abort();
    this.drawer = null;
    this.terminal.close();
    $("drawer").hidden = true;
  }

  logs(instance) {
    const signal = this.openDrawer(`logs of ${instance.id}`);
    followLogs(instance, $("logs-output"), signal);
  }

  exec(instance) {
    this.openDrawer(`exec in ${instance.id}`);
    $("terminal").hidden = false;
    this.terminal.open(instance);
  }
}

async function enter() {
  const who = await api.get("/api/v1/whoami");
  $("login").hidden = true;
  $("main").hidden = false;
  session = new Session(who);
  show(location.hash.slice(1) || "overview");
  await session.start();
}

function leave() {
  session?.end();
  session = null;
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-password").value = "";
  $("login-password").focus();
}

function boot() {
  api.whenLoggedOut(leave);
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("login-error").textContent = "";
    try {
      await api.login($("login-user").value, $("login-password").value);
      await enter();
    } catch (error) {
      $("login-error").textContent = error.message;
    }
  });
  $("logout").addEventListener("click", () => api.logout());
  $("drawer-close").addEventListener("click", () => session?.closeDrawer());
  $("scale-cancel").addEventListener("click", () => { $("scale-form").hidden = true; });
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }
  if (api.token()) {
    enter().catch(() => api.logout());
  } else {
    leave();
  }
}

boot();
