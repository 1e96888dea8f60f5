// The API client: the session's token (sessionStorage: gone with the tab), JSON calls and
// streamed bodies. Every call sends `Authorization: Bearer`; a 401 ends the session.

const TOKEN = "canopy.token";
let onLoggedOut = () => {};

export function token() {
  return sessionStorage.getItem(TOKEN);
}

export function whenLoggedOut(callback) {
  onLoggedOut = callback;
}

export async function login(user, password) {
  const response = await fetch("/api/v1/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user, password }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.message || `login failed (${response.status})`);
  }
  sessionStorage.setItem(TOKEN, body.access_token);
  return body;
}

export function logout() {
  sessionStorage.removeItem(TOKEN);
  onLoggedOut();
}

function headers(extra) {
  return { Authorization: `Bearer ${token()}`, ...extra };
}

// `{status, ok, body}`; the body is the parsed JSON (the API's errors are `{code, message, details}`).
export async function call(method, path, body, contentType = "application/json") {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType;
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    logout();
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { message: text };
  }
  return { status: response.status, ok: response.ok, body: parsed };
}

export async function get(path) {
  const answer = await call("GET", path);
  if (!answer.ok) {
    throw new Error(answer.body?.message || `${path}: ${answer.status}`);
  }
  return answer.body;
}

// Reads a streamed body chunk by chunk (`text` each) until it ends or `signal` aborts;
// resolves with the response's status. EventSource cannot send a token, fetch can.
export async function stream(path, onText, signal, extraHeaders = {}) {
  const response = await fetch(path, { headers: headers(extraHeaders), signal });
  if (response.status === 401) {
    logout();
  }
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.message || `${path}: ${response.status}`);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      break;
    }
    onText(decoder.decode(value, { stream: true }));
  }
  return response.status;
}

export function encode(part) {
  return encodeURIComponent(part);
}
