// `exec` in the page: a WebSocket to `GET /api/v1/instances/{id}/exec` carrying the API's
// framed protocol (kind u8, length u32 BE, payload). The token goes as a subprotocol, since
// a browser's WebSocket cannot send `Authorization`. Line mode: each line typed is sent,
// with its newline, to the command's stdin; stdout and stderr are shown as they come.
import { token, encode } from "./api.js";

const DATA = 2, CLOSE_INPUT = 3, END = 5;

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

export class Terminal {
  constructor() {
    this.output = document.getElementById("terminal-output");
    this.input = document.getElementById("terminal-input");
    this.status = document.getElementById("terminal-status");
    this.socket = null;
    document.getElementById("terminal-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(this.input.value);
      this.input.value = "";
    });
  }

  open(instance, command = ["/bin/sh"]) {
    this.close();
    this.output.textContent = "";
    this.status.textContent = `connecting to ${instance.id}…`;
    const query = command.map((part) => `command=${encode(part)}`).join("&");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/api/v1/instances/${encode(instance.id)}/exec?${query}`,
      ["canopy.exec", `canopy.bearer.${token()}`]);
    socket.binaryType = "arraybuffer";
    let buffer = new Uint8Array();
    let ended = false;
    const text = new TextDecoder();
    socket.onopen = () => {
      this.status.textContent = `running ${command.join(" ")} in ${instance.id}`;
      this.input.focus();
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
          this.write(text.decode(payload.slice(1), { stream: true }));
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

  write(text) {
    this.output.textContent += text;
    this.output.scrollTop = this.output.scrollHeight;
  }

  send(line) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return;
    this.write(`$ ${line}\n`);
    this.socket.send(dataFrame(0, new TextEncoder().encode(`${line}\n`)));
  }

  close() {
    if (this.socket) {
      if (this.socket.readyState === WebSocket.OPEN) this.socket.send(frame(CLOSE_INPUT));
      this.socket.close();
      this.socket = null;
    }
  }
}
