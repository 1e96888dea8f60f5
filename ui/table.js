// A sortable, filterable table that renders only the rows in view (fixed row height), so
// that thousands of rows cost no more than a screenful.

const ROW_HEIGHT = 28;
const OVERSCAN = 8;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export class Table {
  // columns: [{label, value(row) -> sort key, text(row) -> shown text, cls(row), width}]
  // key(row) -> unique id; actions(row) -> [{label, name, run}]
  constructor(container, { name, columns, key, actions }) {
    this.name = name;
    this.columns = columns;
    this.key = key;
    this.actions = actions;
    this.rows = [];
    this.shown = [];
    this.sort = { index: 0, dir: 1 };
    this.filter = "";
    this.scheduled = false;

    const template = columns.map((c) => c.width || "1fr").join(" ") + (actions ? " auto" : "");
    const tools = el("div", "table-tools");
    this.search = el("input");
    this.search.type = "search";
    this.search.placeholder = "filter (all words must match)";
    this.search.dataset.filter = name;
    this.search.addEventListener("input", () => {
      this.filter = this.search.value.trim().toLowerCase();
      this.refresh();
    });
    this.count = el("span", "table-count");
    tools.append(this.search, this.count);

    const table = el("div", "vtable");
    table.dataset.table = name;
    this.head = el("div", "vhead");
    this.head.style.gridTemplateColumns = template;
    columns.forEach((column, index) => {
      const cell = el("div", "", column.label);
      cell.dataset.column = column.label;
      cell.addEventListener("click", () => {
        this.sort = { index, dir: this.sort.index === index ? -this.sort.dir : 1 };
        this.refresh();
      });
      this.head.append(cell);
    });
    if (actions) this.head.append(el("div", "", ""));
    this.body = el("div", "vbody");
    this.spacer = el("div");
    this.window = el("div", "vrows");
    this.body.append(this.spacer, this.window);
    this.body.addEventListener("scroll", () => this.schedule());
    this.template = template;
    table.append(this.head, this.body);
    container.replaceChildren(tools, table);
  }

  setRows(rows) {
    this.rows = rows;
    this.refresh();
  }

  // Filters and sorts again, then draws.
  refresh() {
    const terms = this.filter.split(/\s+/).filter(Boolean);
    const texts = (row) => this.columns.map((c) => String(c.text ? c.text(row) : c.value(row) ?? "")).join(" ").toLowerCase();
    const shown = terms.length ? this.rows.filter((row) => {
      const text = texts(row);
      return terms.every((term) => text.includes(term));
    }) : this.rows.slice();
    const { index, dir } = this.sort;
    const value = this.columns[index].value;
    shown.sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === y) return 0;
      if (x === undefined || x === null) return 1;
      if (y === undefined || y === null) return -1;
      return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * dir;
    });
    this.shown = shown;
    [...this.head.children].forEach((cell, i) => {
      if (i === index) cell.dataset.sort = dir > 0 ? "asc" : "desc";
      else delete cell.dataset.sort;
    });
    this.count.textContent = `${shown.length} of ${this.rows.length}`;
    this.spacer.style.height = `${shown.length * ROW_HEIGHT}px`;
    this.draw();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  // Builds only the rows in view.
  draw() {
    const height = this.body.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.body.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.shown.length, Math.ceil((this.body.scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
    this.window.style.top = `${first * ROW_HEIGHT}px`;
    const rows = [];
    for (let i = first; i < last; i++) {
      rows.push(this.row(this.shown[i]));
    }
    this.window.replaceChildren(...rows);
  }

  row(data) {
    const row = el("div", "vrow");
    row.style.gridTemplateColumns = this.template;
    row.dataset.key = this.key(data);
    for (const column of this.columns) {
      const text = String(column.text ? column.text(data) : column.value(data) ?? "");
      const cell = el("div", column.cls ? column.cls(data) : "", text);
      cell.title = text;
      cell.dataset.column = column.label;
      row.append(cell);
    }
    if (this.actions) {
      const cell = el("div");
      for (const action of this.actions(data)) {
        const button = el("button", "", action.label);
        button.dataset.action = action.name;
        button.addEventListener("click", () => action.run(data));
        cell.append(button);
      }
      row.append(cell);
    }
    return row;
  }
}
