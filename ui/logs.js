// An instance's output, followed (`GET /api/v1/instances/{id}/logs?follow=true`, chunked)
// into the drawer until it is closed.
import { stream, encode } from "./api.js";

const MAX_CHARS = 200000;

export function followLogs(instance, output, signal) {
  output.textContent = "";
  output.hidden = false;
  const append = (text) => {
    const stick = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    output.textContent = (output.textContent + text).slice(-MAX_CHARS);
    if (stick) output.scrollTop = output.scrollHeight;
  };
  stream(`/api/v1/instances/${encode(instance.id)}/logs?follow=true&tail=200`, append, signal)
    .then(() => append("\n[the log stream ended]\n"))
    .catch((error) => {
      if (!signal.aborted) append(`\n[${error.message}]\n`);
    });
}
