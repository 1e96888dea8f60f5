// The descriptor editor: a textarea with line numbers that applies what it holds (native
// YAML/JSON or an Oakestra SLA) and shows the API's field errors at their lines.
import { call } from "./api.js";

export const EXAMPLE = `apiVersion: canopy.dev/v1
kind: Application
metadata:
  name: hello
  namespace: default
spec:
  services:
    - name: greeter
      runtime: process
      command: ["/bin/sh", "-c", "while true; do echo hello from $CANOPY_INSTANCE; sleep 5; done"]
      replicas: 2
      resources:
        cpu: 50m
        memory: 16Mi
      restartPolicy: always
`;

// `documents[1].spec.services[0].name` → [{key:"documents"},{index:1},{key:"spec"},...].
export function segments(path) {
  const out = [];
  const pattern = /\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|([^.[\]]+)/g;
  let match;
  while ((match = pattern.exec(path))) {
    if (match[1] !== undefined) out.push({ key: match[1] });
    else if (match[2] !== undefined) out.push({ index: Number(match[2]) });
    else out.push({ key: match[3] });
  }
  return out;
}

const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const blank = (line) => /^\s*(#.*)?$/.test(line);
const column = (line) => line.search(/\S/);

// The lines [from, to) of each YAML document (separated by `---` lines).
function documents(lines) {
  const docs = [];
  let start = 0;
  lines.forEach((line, i) => {
    if (/^---(\s|$)/.test(line)) {
      const before = lines.slice(start, i);
      if (docs.length > 0 || before.some((l) => !blank(l))) docs.push([start, i]);
      start = i + 1;
    }
  });
  docs.push([start, lines.length]);
  return docs;
}

// Where the node at `path` is written in YAML text: its 1-based line, or the nearest
// enclosing node found, or null.
export function yamlLine(text, path) {
  const lines = text.split("\n");
  let parts = segments(path);
  let [from, to] = [0, lines.length];
  if (parts[0]?.key === "documents" && parts[1]?.index !== undefined) {
    const docs = documents(lines);
    [from, to] = docs[parts[1].index] || [0, lines.length];
    parts = parts.slice(2);
  }
  let found = null;
  for (const part of parts) {
    if (part.key !== undefined) {
      const key = new RegExp(`^(\\s*(?:- )?)("|')?${escape(part.key)}\\2\\s*:(\\s|$)`);
      let best = null;
      for (let i = from; i < to; i++) {
        const match = lines[i].match(key);
        if (match && (best === null || match[1].length < best.col)) best = { line: i, col: match[1].length };
      }
      if (!best) return found;
      found = best.line + 1;
      let end = best.line + 1;
      while (end < to) {
        const line = lines[end];
        if (!blank(line)) {
          const col = column(line);
          if (col < best.col || (col === best.col && !line.slice(col).startsWith("- "))) break;
        }
        end++;
      }
      // The key's own line stays in range: a value may sit on it.
      [from, to] = [best.line, end];
    } else {
      let dashCol = null;
      const items = [];
      for (let i = from; i < to; i++) {
        const line = lines[i];
        const col = column(line);
        if (col < 0 || !line.slice(col).startsWith("- ")) continue;
        if (dashCol === null) dashCol = col;
        if (col === dashCol) items.push(i);
      }
      const at = items[part.index];
      if (at === undefined) return found;
      const next = items[part.index + 1] ?? to;
      found = at + 1;
      [from, to] = [at, next];
    }
  }
  return found;
}

// The same for pretty-printed JSON (an SLA): keys searched forward, array elements by
// their indentation.
export function jsonLine(text, path) {
  const lines = text.split("\n");
  let [from, to] = [0, lines.length];
  let found = null;
  for (const part of segments(path)) {
    if (part.key !== undefined) {
      const key = new RegExp(`"${escape(part.key)}"\\s*:`);
      let at = -1;
      let best = Infinity;
      for (let i = from; i < to; i++) {
        if (key.test(lines[i]) && column(lines[i]) < best) {
          at = i;
          best = column(lines[i]);
        }
      }
      if (at < 0) return found;
      found = at + 1;
      let end = at + 1;
      while (end < to && (blank(lines[end]) || column(lines[end]) > best)) end++;
      [from, to] = [at + 1, end];
    } else {
      const elements = [];
      let indent = null;
      for (let i = from; i < to; i++) {
        const col = column(lines[i]);
        if (col < 0) continue;
        if (indent === null) indent = col;
        if (col === indent && !/^[\]}]/.test(lines[i].trim())) elements.push(i);
      }
      const at = elements[part.index];
      if (at === undefined) return found;
      found = at + 1;
      [from, to] = [at, elements[part.index + 1] ?? to];
    }
  }
  return found;
}

export function lineOf(text, error) {
  const told = /line (\d+)/.exec(error.reason || "");
  if (told) return Number(told[1]);
  if (!error.path) return null;
  return /^\s*[[{]/.test(text) ? jsonLine(text, error.path) : yamlLine(text, error.path);
}

export class Editor {
  constructor(onApplied) {
    this.text = document.getElementById("editor-text");
    this.gutter = document.getElementById("editor-gutter");
    this.result = document.getElementById("editor-result");
    this.errors = document.getElementById("editor-errors");
    this.bad = new Map();
    this.onApplied = onApplied;
    this.text.addEventListener("input", () => this.numbers());
    this.text.addEventListener("scroll", () => { this.gutter.scrollTop = this.text.scrollTop; });
    document.getElementById("editor-apply").addEventListener("click", () => this.apply(false));
    document.getElementById("editor-dry-run").addEventListener("click", () => this.apply(true));
    document.getElementById("editor-example").addEventListener("click", () => this.load(EXAMPLE));
    this.numbers();
  }

  load(text) {
    this.text.value = text;
    this.bad.clear();
    this.errors.replaceChildren();
    this.result.textContent = "";
    this.numbers();
  }

  numbers() {
    const count = this.text.value.split("\n").length;
    const spans = [];
    for (let i = 1; i <= count; i++) {
      const span = document.createElement("span");
      span.textContent = String(i);
      span.dataset.line = String(i);
      if (this.bad.has(i)) {
        span.className = "bad";
        span.title = this.bad.get(i);
      }
      spans.push(span);
    }
    this.gutter.replaceChildren(...spans);
  }

  async apply(dryRun) {
    const body = this.text.value;
    const json = /^\s*[[{]/.test(body);
    const answer = await call("POST", `/api/v1/apply${dryRun ? "?dryRun=true" : ""}`, body,
      json ? "application/json" : "application/yaml");
    this.bad.clear();
    const items = [];
    if (answer.ok) {
      const done = answer.body.applications.map((a) => `${a.namespace}/${a.name} ${a.action}`).join(", ");
      this.result.textContent = `${dryRun ? "dry run: " : ""}${done}`;
      this.result.className = "ok";
      for (const warning of answer.body.warnings || []) {
        items.push(this.item(body, warning, "warning"));
      }
      if (!dryRun) this.onApplied(answer.body);
    } else {
      this.result.textContent = answer.body?.message || `failed (${answer.status})`;
      this.result.className = "error";
      for (const detail of answer.body?.details || []) {
        items.push(this.item(body, detail, "error"));
      }
    }
    this.errors.replaceChildren(...items);
    this.numbers();
  }

  item(body, detail, kind) {
    const line = lineOf(body, detail);
    const li = document.createElement("li");
    li.className = kind;
    li.dataset.path = detail.path;
    if (line) {
      li.dataset.line = String(line);
      if (kind === "error") this.bad.set(line, `${detail.path}: ${detail.reason}`);
    }
    li.textContent = `${line ? `line ${line}: ` : ""}${detail.path || "(document)"}: ${detail.reason}`;
    if (line) {
      const go = document.createElement("button");
      go.textContent = "show";
      go.addEventListener("click", () => this.select(line));
      li.append(go);
    }
    return li;
  }

  select(line) {
    const lines = this.text.value.split("\n");
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    this.text.focus();
    this.text.setSelectionRange(start, start + (lines[line - 1] || "").length);
  }
}
