// Each application as a graph: its services as boxes (with their instances by node), edges
// from the latency constraints that name another service (`toService`, the links a
// descriptor declares) above them, and below them the calls the overlay's proxies carried
// (`GET /api/v1/applications/{namespace}/{name}/traffic`) with their rate. Calls from or to
// outside the application (another application, `unknown`) are listed under the graph.

const SVG = "http://www.w3.org/2000/svg";
const BOX_W = 180, GAP = 60, LINE = 14, BELOW = 50;

function svg(tag, attributes = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// [from, to] service names of an application's declared links.
export function links(application) {
  const edges = [];
  for (const service of application.spec.services) {
    for (const constraint of service.constraints || []) {
      const to = constraint.latency?.toService;
      if (to) edges.push([service.name, to]);
    }
  }
  return edges;
}

// "12.3 kB/s" from bytes per second; totals ("45 kB") until a rate is known.
export function bytes(amount) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = amount, unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

function trafficText(edge) {
  const total = edge.bytesToCallee + edge.bytesFromCallee;
  return edge.rate == null ? `${bytes(total)} total` : `${bytes(edge.rate)}/s`;
}

// `traffic`: "namespace/name" → its edges (`from`, `to` as "namespace/application/service",
// totals, and `rate` in bytes/s once two samples were seen).
export function drawGraphs(container, applications, instances, traffic = new Map()) {
  const sections = [];
  for (const application of applications) {
    const { namespace, name } = application.metadata;
    const services = application.spec.services;
    const lines = services.map((service) => {
      const byNode = new Map();
      for (const i of instances) {
        if (i.namespace !== namespace || i.application !== name || i.service !== service.name) continue;
        const node = i.node || "(unplaced)";
        byNode.set(node, [...(byNode.get(node) || []), i.state]);
      }
      return [...byNode.entries()].map(([node, states]) => `${node}: ${states.join(", ")}`);
    });
    const height = 40 + LINE * Math.max(1, ...lines.map((l) => l.length)) + 20;
    const width = services.length * (BOX_W + GAP);
    const root = svg("svg", { viewBox: `0 0 ${Math.max(width, 200)} ${height + 20 + BELOW}` });
    const defs = svg("defs");
    const arrow = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "10", refY: "5", markerWidth: "6", markerHeight: "6", orient: "auto" });
    arrow.append(svg("path", { d: "M0,0 L10,5 L0,10 z" }));
    defs.append(arrow);
    root.append(defs);
    const position = new Map(services.map((s, i) => [s.name, 10 + i * (BOX_W + GAP)]));
    for (const [from, to] of links(application)) {
      if (!position.has(from) || !position.has(to)) continue;
      const a = position.get(from), b = position.get(to);
      const [x1, x2] = a < b ? [a + BOX_W, b] : [a, b + BOX_W];
      const path = svg("path", { d: `M${x1},30 C${(x1 + x2) / 2},5 ${(x1 + x2) / 2},5 ${x2},30`, class: "edge" });
      path.dataset.edge = `${from}->${to}`;
      root.append(path);
    }
    const prefix = `${namespace}/${name}/`;
    const inside = (service) => service.startsWith(prefix) && position.has(service.slice(prefix.length));
    const outside = [];
    for (const edge of traffic.get(`${namespace}/${name}`) || []) {
      const from = edge.from.slice(prefix.length), to = edge.to.slice(prefix.length);
      if (!inside(edge.from) || !inside(edge.to) || from === to) {
        outside.push(edge);
        continue;
      }
      const a = position.get(from) + BOX_W / 2, b = position.get(to) + BOX_W / 2;
      const bottom = 20 + height, dip = bottom + BELOW - 12;
      const path = svg("path", { d: `M${a},${bottom} C${a},${dip} ${b},${dip} ${b},${bottom}`, class: "edge traffic" });
      path.dataset.traffic = `${from}->${to}`;
      root.append(path);
      const label = svg("text", { x: (a + b) / 2, y: dip + 8, "text-anchor": "middle", class: "traffic-rate" });
      label.dataset.traffic = `${from}->${to}`;
      label.textContent = trafficText(edge);
      root.append(label);
    }
    services.forEach((service, i) => {
      const left = position.get(service.name);
      const group = svg("g");
      group.dataset.service = service.name;
      group.append(svg("rect", { x: left, y: 20, width: BOX_W, height, rx: 6, class: "box" }));
      const title = svg("text", { x: left + 8, y: 38, "font-weight": "600" });
      title.textContent = `${service.name} (${service.runtime || "container"})`;
      group.append(title);
      lines[i].forEach((text, row) => {
        const line = svg("text", { x: left + 8, y: 56 + row * LINE });
        line.textContent = text;
        group.append(line);
      });
      root.append(group);
    });
    const section = document.createElement("section");
    section.className = "graph-app";
    section.dataset.application = `${namespace}/${name}`;
    const heading = document.createElement("h4");
    heading.textContent = `${namespace}/${name}`;
    section.append(heading, root);
    if (outside.length) {
      const list = document.createElement("ul");
      list.className = "traffic-outside";
      for (const edge of outside) {
        const item = document.createElement("li");
        item.dataset.traffic = `${edge.from}->${edge.to}`;
        item.textContent = `${edge.from} → ${edge.to}: ${trafficText(edge)}, ${edge.connections} connections`;
        list.append(item);
      }
      section.append(list);
    }
    sections.push(section);
  }
  container.replaceChildren(...sections);
}
