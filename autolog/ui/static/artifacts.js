// A run's artifacts: a folder tree with download links and previews.
// Text is shown as text; HTML (a plotly chart) only in a sandboxed iframe,
// served under its own sandbox CSP.
import { api, artifactUrl, el } from "./api.js";

const PREVIEW_BYTES = 2_000_000;
const ext = (path) => (path.split(".").pop() || "").toLowerCase();
const IMAGE = ["png", "jpg", "jpeg", "gif", "svg", "webp", "bmp"];
const TEXT = ["txt", "log", "md", "py", "yaml", "yml", "toml", "cfg", "ini", "xml", "sh", "requirements", "mlmodel"];

// RFC 4180-ish: quoted fields, doubled quotes, newlines inside quotes
export function parseCsv(text, maxRows = 500) {
  const rows = []; let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length && rows.length <= maxRows; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}

async function fetchText(run, path) {
  const response = await fetch(artifactUrl(run, path, false));
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const blob = await response.blob();
  const text = await blob.slice(0, PREVIEW_BYTES).text();
  return { text, truncated: blob.size > PREVIEW_BYTES };
}

async function preview(box, run, file) {
  const name = file.path.split("/").pop();
  const kind = ext(file.path);
  const head = el("div", { class: "bar" }, el("strong", {}, file.path), " ",
    el("a", { href: artifactUrl(run, file.path, false), download: name, id: "download" }, "download"));
  box.replaceChildren(head);
  let body;
  if (IMAGE.includes(kind)) {
    body = el("img", { src: artifactUrl(run, file.path, true), alt: file.path, class: "artifact-image" });
  } else if (kind === "html" || kind === "htm") {
    body = el("iframe", { sandbox: "allow-scripts", src: artifactUrl(run, file.path, true), referrerpolicy: "no-referrer", class: "artifact-html" });
  } else if (kind === "csv" || kind === "tsv") {
    const { text, truncated } = await fetchText(run, file.path);
    const rows = kind === "tsv" ? text.split(/\r?\n/).filter(Boolean).map((l) => l.split("\t")) : parseCsv(text);
    const [header = [], ...rest] = rows;
    body = el("div", { class: "table-wrap" }, el("table", { class: "csv" },
      el("thead", {}, el("tr", {}, header.map((h) => el("th", {}, h)))),
      el("tbody", {}, rest.slice(0, 500).map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))))),
    rest.length > 500 || truncated ? el("p", { class: "muted" }, "(first rows only)") : null);
  } else if (kind === "json" || name === "MLmodel") {
    const { text, truncated } = await fetchText(run, file.path);
    let shown = text;
    try { if (!truncated && kind === "json") shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as is */ }
    body = el("pre", { class: name === "model.json" ? "model-json" : "json" }, shown);
  } else if (TEXT.includes(kind) || (file.size !== null && file.size < 200_000 && !kind.match(/^(pkl|pt|pth|bin|ubj|npy|npz|h5|keras|joblib|skops|onnx|zip|gz)$/))) {
    const { text, truncated } = await fetchText(run, file.path);
    body = el("pre", { class: "text" }, text + (truncated ? "\n…" : ""));
  } else {
    body = el("p", { class: "muted" }, `${file.size === null ? "" : file.size.toLocaleString() + " bytes, "}no preview`);
  }
  box.append(body);
}

export async function artifactsView(run) {
  const tree = el("div", { class: "tree", id: "artifact-tree" });
  const box = el("div", { class: "preview", id: "artifact-preview" });
  async function folder(path, into, depth) {
    const { files } = await api("artifacts", { run, path });
    for (const f of files) {
      const label = f.path.split("/").pop();
      const item = el("div", { class: f.dir ? "dir" : "file", dataset: { path: f.path }, style: `padding-left:${depth * 14}px` }, label);
      const kids = el("div");
      item.addEventListener("click", async () => {
        if (!f.dir) { await preview(box, run, f); return; }
        if (item.classList.toggle("open")) await folder(f.path, kids, depth + 1);
        else kids.replaceChildren();
      });
      into.append(item, kids);
    }
    if (!files.length && depth === 0) into.append(el("p", { class: "muted" }, "No artifacts."));
  }
  await folder("", tree, 0);
  return el("div", { class: "cols" }, tree, box);
}
