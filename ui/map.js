// Clusters and nodes by location on the shipped world outline (equirectangular, no tiles),
// coloured by health and load; nodes without a location are listed under their cluster.
import { LAND } from "./world.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720, HEIGHT = 360;
// Chips shown per cluster before "and N more" (thousands of chips help nobody).
const CHIPS_PER_CLUSTER = 200;

const x = (lon) => ((lon + 180) / 360) * WIDTH;
const y = (lat) => ((90 - lat) / 180) * HEIGHT;

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// `down` (unreachable), `busy` (over 80 % of its CPU allocated or used) or `ready`.
export function health(member) {
  if (member.state !== "Ready") return "down";
  const capacity = member.capacity?.cpuMillis || 0;
  const load = Math.max(member.allocated?.cpuMillis || 0, member.usage?.cpuMillis || 0);
  return capacity > 0 && load / capacity > 0.8 ? "busy" : "ready";
}

export class WorldMap {
  constructor(container, unlocated) {
    this.unlocated = unlocated;
    this.root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-label": "clusters and nodes by location" });
    const land = svg("g");
    for (const ring of LAND) {
      const points = ring.map(([lon, lat]) => `${x(lon).toFixed(1)},${y(lat).toFixed(1)}`).join(" ");
      land.append(svg("polygon", { points, class: "land" }));
    }
    this.markers = svg("g");
    this.root.append(land, this.markers);
    container.replaceChildren(this.root);
  }

  draw(clusters, nodes) {
    const markers = [];
    const marker = (kind, name, member, location, radius) => {
      const circle = svg("circle", {
        cx: x(location.lon).toFixed(1), cy: y(location.lat).toFixed(1), r: radius,
        class: `marker ${health(member)}`,
      });
      circle.dataset[kind] = name;
      const title = svg("title");
      title.textContent = `${kind} ${name}: ${member.state}`;
      circle.append(title);
      markers.push(circle);
    };
    for (const node of nodes) {
      if (node.location) marker("node", `${node.cluster}/${node.name}`, node, node.location, 2.5);
    }
    for (const cluster of clusters) {
      if (cluster.location) marker("cluster", cluster.name, cluster, cluster.location, 6);
    }
    this.markers.replaceChildren(...markers);

    const byCluster = new Map();
    for (const node of nodes) {
      if (node.location) continue;
      if (!byCluster.has(node.cluster)) byCluster.set(node.cluster, []);
      byCluster.get(node.cluster).push(node);
    }
    const groups = [];
    for (const [cluster, members] of [...byCluster.entries()].sort()) {
      const group = document.createElement("div");
      group.className = "unlocated-cluster";
      group.dataset.cluster = cluster;
      const title = document.createElement("strong");
      title.textContent = `${cluster} (${members.length})`;
      group.append(title, " ");
      for (const node of members.slice(0, CHIPS_PER_CLUSTER)) {
        const chip = document.createElement("span");
        chip.className = `chip ${health(node)}`;
        chip.dataset.node = node.name;
        chip.textContent = node.name;
        chip.title = `${node.state}, ${node.instances} instances`;
        group.append(chip);
      }
      if (members.length > CHIPS_PER_CLUSTER) group.append(` and ${members.length - CHIPS_PER_CLUSTER} more`);
      groups.push(group);
    }
    this.unlocated.replaceChildren(...groups);
  }
}
