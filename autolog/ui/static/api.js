// Shared helpers: the read API, view state in the URL, and DOM building.
// User data only ever reaches the page as text: el() sets textContent and
// attributes, never innerHTML.

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(name, params = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") query.set(k, v);
  }
  const response = await fetch(`ui-api/${name}?${query}`, { credentials: "same-origin" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

export function artifactUrl(run, path, inline) {
  const query = new URLSearchParams({ run, path });
  if (inline) query.set("inline", "1");
  return `ui-api/artifact?${query}`;
}

// -- view state: "#/<page>/<arg>?k=v&..." ------------------------------------
export function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?");
  const [page = "", ...rest] = path.split("/");
  return { page, arg: rest.map(decodeURIComponent).join("/"), state: new URLSearchParams(search) };
}

export function href(page, arg = "", state = {}) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) {
    if (v !== undefined && v !== null && v !== "") query.set(k, v);
  }
  const q = query.toString();
  return `#/${page}${arg ? "/" + encodeURIComponent(arg) : ""}${q ? "?" + q : ""}`;
}

// replace the URL's state without a navigation (the view re-renders itself)
export function setState(changes) {
  const { page, arg, state } = route();
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === null || v === "") state.delete(k);
    else state.set(k, v);
  }
  const q = state.toString();
  history.replaceState(null, "", `#/${page}${arg ? "/" + encodeURIComponent(arg) : ""}${q ? "?" + q : ""}`);
}

// -- DOM ------------------------------------------------------------------------
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(start, end) {
  if (end === null || end === undefined) return "";
  const s = (end - start) / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  if (s < 3600) return `${(s / 60).toFixed(1)}min`;
  return `${(s / 3600).toFixed(1)}h`;
}

export function fmtValue(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+$/, "");
  return v === null || v === undefined ? "" : String(v);
}

export function table(headers, rows) {
  return el("table", { class: "kv" },
    headers ? el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))) : null,
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
}

// polling that stops when the view changes
let timers = [];
export function every(ms, fn) { timers.push(setInterval(fn, ms)); }
export function stopTimers() { timers.forEach(clearInterval); timers = []; }

// charts register here so tests and benchmarks can read what was drawn
window.autologUI = window.autologUI || { charts: {}, painted: 0 };
