// The event stream (`GET /api/v1/events`, Server-Sent Events) read with fetch, since
// EventSource cannot send the token; resumes after a break with `Last-Event-ID`.
import { stream } from "./api.js";

// Parses SSE text into events; keeps the unfinished tail between chunks.
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.lastId = null;
  }

  push(text) {
    this.buffer += text;
    let end;
    while ((end = this.buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      this.block(block);
    }
  }

  block(block) {
    let type = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(":")) {
        continue;
      }
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "id") this.lastId = value;
    }
    if (data.length === 0) {
      return;
    }
    try {
      this.onEvent(type, JSON.parse(data.join("\n")));
    } catch {
      // Not JSON: not one of ours.
    }
  }
}

// Follows the stream until `signal` aborts; `onState(true|false)` tells whether it is live.
export async function follow(onEvent, onState, signal) {
  const parser = new SseParser(onEvent);
  let wait = 500;
  while (!signal.aborted) {
    try {
      const resume = parser.lastId ? { "Last-Event-ID": parser.lastId } : {};
      onState(true);
      await stream("/api/v1/events", (text) => parser.push(text), signal, resume);
      wait = 500;
    } catch (error) {
      if (signal.aborted) {
        break;
      }
      // History compacted past our last id: start again from now.
      if (String(error.message).includes("older than")) {
        parser.lastId = null;
      }
    }
    onState(false);
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 10000);
  }
}
