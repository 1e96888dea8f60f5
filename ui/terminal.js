// `exec` in the page: a terminal (xterm.js) on a WebSocket to
// `GET /api/v1/instances/{id}/exec?tty=true`, carrying the API's framed protocol (kind u8,
// length u32 BE, payload). The token goes as a subprotocol, since a browser's WebSocket
// cannot send `Authorization`. The command runs on a pseudo-terminal sized to the screen:
// keys go to it as typed, its output comes on channel 1, and a resize of the drawer
// resizes it.
import { token, encode } from "./api.js";
import { Terminal as Screen } from "./vendor/xterm.mjs";
import { FitAddon } from "./vendor/xterm-addon-fit.mjs";

const DATA = 2, CLOSE_INPUT = 3, RESIZE = 4, END = 5;

export function frame(kind, payload = new Uint8Array()) {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(1, payload.length);
  out[0] = kind;
  out.set(payload, 5);
  return out;
}

export function dataFrame(channel, bytes) {
  const payload = new Uint8Array(bytes.length + 1);
  payload[0] = channel;
  payload.set(bytes, 1);
  return frame(DATA, payload);
}

export function resizeFrame(cols, rows) {
  const payload = new Uint8Array(4);
  const view = new DataView(payload.buffer);
  view.setUint16(0, cols);
  view.setUint16(2, rows);
  return frame(RESIZE, payload);
}

// Takes whole frames off the front of `buffer`: [{kind, payload}] and what is left.
export function decode(buffer) {
  const frames = [];
  let at = 0;
  while (buffer.length - at >= 5) {
    const length = new DataView(buffer.buffer, buffer.byteOffset + at + 1, 4).getUint32(0);
    if (buffer.length - at - 5 < length) break;
    frames.push({ kind: buffer[at], payload: buffer.slice(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return { frames, rest: buffer.slice(at) };
}

// The exit code and error of an end frame.
export function endOf(payload) {
  const exit = payload[0] === 1 ? new DataView(payload.buffer, payload.byteOffset + 1, 4).getInt32(0) : null;
  const codeLength = payload[5] || 0;
  const text = new TextDecoder();
  const code = text.decode(payload.slice(6, 6 + codeLength));
  const message = text.decode(payload.slice(6 + codeLength));
  return { exit, code, message };
}

// xterm.js writes its colours and cell sizes into <style> elements, which this page's
// policy (`style-src 'self'`) does not apply. The same rules go into constructed style
// sheets, which are not inline markup and which the policy lets the page's own script make.
function adoptStyles(root) {
  const sheets = new Map();
  const mirror = (element) => {
    let sheet = sheets.get(element);
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheets.set(element, sheet);
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }
    sheet.replaceSync(element.textContent);
  };
  new MutationObserver((records) => {
    for (const record of records) {
      const target = record.target.nodeType === Node.TEXT_NODE ? record.target.parentNode : record.target;
      if (target instanceof HTMLStyleElement) mirror(target);
      for (const added of record.addedNodes) {
        if (added instanceof HTMLStyleElement) mirror(added);
      }
    }
  }).observe(root, { childList: true, subtree: true, characterData: true });
}

export class Terminal {
  constructor() {
    this.container = document.getElementById("terminal-screen");
    this.status = document.getElementById("terminal-status");
    this.socket = null;
    adoptStyles(this.container);
    this.screen = new Screen({
      cursorBlink: true,
      fontFamily: "monospace",
      fontSize: 13,
      scrollback: 5000,
      theme: { background: "#0d1117", foreground: "#e6edf3" },
    });
    this.fit = new FitAddon();
    this.screen.loadAddon(this.fit);
    this.shown = false;
    const bytes = new TextEncoder();
    this.screen.onData((text) => this.send(bytes.encode(text)));
    this.screen.onBinary((text) => this.send(Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff)));
    this.screen.onResize(({ cols, rows }) => {
      if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(resizeFrame(cols, rows));
    });
    new ResizeObserver(() => this.refit()).observe(this.container);
  }

  // The screen to the container's size (only while it is shown: hidden, it has none).
  refit() {
    if (this.shown && this.container.offsetParent) this.fit.fit();
  }

  open(instance, command = ["/bin/sh"]) {
    this.close();
    if (!this.shown) {
      this.screen.open(this.container);
      this.shown = true;
    }
    this.screen.reset();
    this.refit();
    this.status.textContent = `connecting to ${instance.id}…`;
    delete this.status.dataset.exit;
    const size = `tty=true&cols=${this.screen.cols}&rows=${this.screen.rows}`;
    const query = command.map((part) => `command=${encode(part)}`).join("&");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(
      `${scheme}://${location.host}/api/v1/instances/${encode(instance.id)}/exec?${query}&${size}`,
      ["canopy.exec", `canopy.bearer.${token()}`]);
    socket.binaryType = "arraybuffer";
    let buffer = new Uint8Array();
    let ended = false;
    socket.onopen = () => {
      this.status.textContent = `running ${command.join(" ")} in ${instance.id}`;
      this.screen.focus();
    };
    socket.onmessage = (message) => {
      const incoming = new Uint8Array(message.data);
      const joined = new Uint8Array(buffer.length + incoming.length);
      joined.set(buffer);
      joined.set(incoming, buffer.length);
      const { frames, rest } = decode(joined);
      buffer = rest;
      for (const { kind, payload } of frames) {
        if (kind === DATA) {
          this.screen.write(payload.slice(1));
        } else if (kind === END) {
          const end = endOf(payload);
          ended = true;
          this.status.textContent = end.code ? `ended: ${end.code}: ${end.message}` : `exited with code ${end.exit}`;
          this.status.dataset.exit = end.exit ?? "";
        }
      }
    };
    socket.onclose = () => {
      if (!ended) this.status.textContent = "the connection closed";
      if (this.socket === socket) this.socket = null;
    };
    this.socket = socket;
  }

  send(bytes) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(dataFrame(0, bytes));
  }

  close() {
    if (this.socket) {
      if (this.socket.readyState === WebSocket.OPEN) this.socket.send(frame(CLOSE_INPUT));
      this.socket.close();
      this.socket = null;
    }
  }
}
