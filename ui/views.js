// The tables of the dashboard: which columns each list shows and what a row offers.
import { Table } from "./table.js";

export function age(since, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(since)) / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round(seconds / 86400)}d`;
}

const cpu = (millis) => `${(millis / 1000).toFixed(millis % 1000 ? 2 : 0)}`;
const amounts = (a) => (a ? `${cpu(a.cpuMillis)} CPU, ${a.memoryMib} MiB` : "");
const labels = (l) => Object.entries(l || {}).map(([k, v]) => `${k}=${v}`).join(",");
const where = (l) => (l ? `${l.lat.toFixed(2)},${l.lon.toFixed(2)}` : "");
const usage = (u) => (u ? `${cpu(u.cpuMillis)} CPU, ${Math.round(u.memoryBytes / 1048576)} MiB` : "");
const stateClass = (s) => `state-${s}`;

// Whether the caller may do `action` (`deploy`, `exec`, ...) in `namespace`.
export function may(who, action, namespace) {
  const namespaces = who?.namespaced?.[action] || [];
  return namespaces.includes("*") || (namespace !== undefined && namespaces.includes(namespace));
}

export function mayAnywhere(who, action) {
  return (who?.namespaced?.[action] || []).length > 0;
}

export function clusterTable(container) {
  return new Table(container, {
    name: "clusters",
    key: (c) => c.name,
    columns: [
      { label: "Name", value: (c) => c.name, width: "1.2fr" },
      { label: "State", value: (c) => c.state, cls: (c) => stateClass(c.state), width: "0.8fr" },
      { label: "Nodes", value: (c) => c.nodes, width: "0.5fr" },
      { label: "Capacity", value: (c) => c.capacity.cpuMillis, text: (c) => amounts(c.capacity), width: "1.4fr" },
      { label: "Allocated", value: (c) => c.allocated.cpuMillis, text: (c) => amounts(c.allocated), width: "1.4fr" },
      { label: "Location", value: (c) => where(c.location) },
      { label: "Labels", value: (c) => labels(c.labels), width: "1.5fr" },
    ],
  });
}

export function nodeTable(container) {
  return new Table(container, {
    name: "nodes",
    key: (n) => `${n.cluster}/${n.name}`,
    columns: [
      { label: "Name", value: (n) => n.name, width: "1.4fr" },
      { label: "Cluster", value: (n) => n.cluster },
      { label: "State", value: (n) => (n.unschedulable ? `${n.state},Cordoned` : n.state), cls: (n) => stateClass(n.state), width: "0.9fr" },
      { label: "Arch", value: (n) => n.arch, width: "0.7fr" },
      { label: "Runtimes", value: (n) => n.runtimes.join(","), width: "1.2fr" },
      { label: "Capacity", value: (n) => n.capacity.cpuMillis, text: (n) => amounts(n.capacity), width: "1.4fr" },
      { label: "Allocated", value: (n) => n.allocated.cpuMillis, text: (n) => amounts(n.allocated), width: "1.4fr" },
      { label: "Usage", value: (n) => n.usage?.cpuMillis, text: (n) => usage(n.usage), width: "1.3fr" },
      { label: "Instances", value: (n) => n.instances, width: "0.6fr" },
      { label: "Location", value: (n) => where(n.location) },
      { label: "Labels", value: (n) => labels(n.labels), width: "1.5fr" },
    ],
  });
}

export function applicationTable(container, who, handlers) {
  return new Table(container, {
    name: "applications",
    key: (a) => `${a.metadata.namespace}/${a.metadata.name}`,
    columns: [
      { label: "Namespace", value: (a) => a.metadata.namespace },
      { label: "Name", value: (a) => a.metadata.name, width: "1.4fr" },
      { label: "Services", value: (a) => a.spec.services.length, width: "0.6fr" },
      { label: "Running", value: (a) => a.status.services.reduce((n, s) => n + s.running, 0), text: (a) => a.status.services.map((s) => `${s.name} ${s.running}/${s.desired}`).join(", "), width: "1.6fr" },
      { label: "Generation", value: (a) => a.status.generation, width: "0.6fr" },
      { label: "Age", value: (a) => -Date.parse(a.status.createdAt), text: (a) => age(a.status.createdAt), width: "0.5fr" },
    ],
    actions: (a) => (may(who, "deploy", a.metadata.namespace)
      ? [
        { label: "Edit", name: "edit", run: handlers.edit },
        { label: "Delete", name: "delete", run: handlers.remove },
      ]
      : []),
  });
}

export function serviceTable(container, who, handlers) {
  return new Table(container, {
    name: "services",
    key: (s) => `${s.namespace}/${s.application}/${s.name}`,
    columns: [
      { label: "Namespace", value: (s) => s.namespace },
      { label: "Application", value: (s) => s.application },
      { label: "Name", value: (s) => s.name },
      { label: "Runtime", value: (s) => s.runtime, width: "0.7fr" },
      { label: "Artifact", value: (s) => s.artifact, width: "1.6fr" },
      { label: "Replicas", value: (s) => s.status.desired, text: (s) => `${s.status.running}/${s.status.desired}`, width: "0.6fr" },
      { label: "Pending", value: (s) => s.status.pending, width: "0.6fr" },
    ],
    actions: (s) => (may(who, "deploy", s.namespace) ? [{ label: "Scale", name: "scale", run: handlers.scale }] : []),
  });
}

export function instanceTable(container, who, handlers) {
  return new Table(container, {
    name: "instances",
    key: (i) => i.id,
    columns: [
      { label: "Id", value: (i) => i.id, width: "1.6fr" },
      { label: "Namespace", value: (i) => i.namespace, width: "0.8fr" },
      { label: "Application", value: (i) => i.application, width: "0.9fr" },
      { label: "Service", value: (i) => i.service, width: "0.8fr" },
      { label: "State", value: (i) => i.state, cls: (i) => stateClass(i.state), width: "0.8fr" },
      { label: "Reason", value: (i) => i.reason || "", width: "1.4fr" },
      { label: "Node", value: (i) => (i.node ? `${i.cluster}/${i.node}` : ""), width: "1.1fr" },
      { label: "Restarts", value: (i) => i.restarts, width: "0.5fr" },
      { label: "Age", value: (i) => -Date.parse(i.createdAt), text: (i) => age(i.createdAt), width: "0.5fr" },
    ],
    actions: (i) => {
      const offered = [];
      if (i.node) offered.push({ label: "Logs", name: "logs", run: handlers.logs });
      if (i.state === "Running" && may(who, "exec", i.namespace)) {
        offered.push({ label: "Exec", name: "exec", run: handlers.exec });
      }
      if (may(who, "replaceInstance", i.namespace)) {
        offered.push({ label: "Replace", name: "replace", run: handlers.replace });
      }
      return offered;
    },
  });
}
