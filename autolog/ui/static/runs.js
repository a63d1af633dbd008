// The runs table: one window of rows from the server, sorted and filtered there.
import { api, el, every, fmtDuration, fmtTime, fmtValue, href, route, setState } from "./api.js";

const PAGE = 50;
const FIXED = [["name", "Name"], ["status", "Status"], ["start", "Start"], ["duration", "Duration"],
  ["user", "User"], ["source", "Source"], ["commit", "Git commit"]];

function list(state, key) { return (state.get(key) || "").split(",").filter(Boolean); }

export async function runsPage(root, _arg, state, crumbs) {
  const experiments = list(state, "e");
  crumbs.append(el("span", { class: "muted" }, `/ runs of ${experiments.length > 1 ? experiments.length + " experiments" : "experiment " + experiments[0]}`));
  const view = {
    filter: state.get("filter") || "",
    sort: state.get("sort") || "start",
    desc: state.get("desc") !== "0",
    cols: list(state, "cols"),
    sel: new Set(list(state, "sel")),
    open: new Set(list(state, "open")),
    page: Number(state.get("page") || 0),
    nest: state.get("nest") !== "0",
  };
  const filter = el("input", { type: "text", class: "filter", id: "filter", value: view.filter, spellcheck: false,
    placeholder: "metrics.acc > 0.9 AND (params.model = 'rf' OR tags.team ILIKE 'a%')" });
  const error = el("div", { class: "err", id: "filter-error" });
  const info = el("span", { class: "muted", id: "runs-total" });
  const prev = el("button", { id: "prev" }, "◂ Prev");
  const next = el("button", { id: "next" }, "Next ▸");
  const compare = el("button", { id: "compare" }, "Compare");
  const nest = el("label", {}, el("input", { type: "checkbox", checked: view.nest, id: "nest" }), " fold nested runs");
  const picker = el("div", { class: "picker", id: "column-picker", hidden: true });
  const pick = el("button", { id: "columns" }, "Columns…");
  const head = el("thead");
  const body = el("tbody", { id: "runs-body" });
  root.append(el("h1", {}, "Runs"),
    el("div", { class: "bar" }, filter, el("button", { id: "apply" }, "Search")), error,
    el("div", { class: "bar" }, prev, next, info, compare, pick, nest), picker,
    el("div", { class: "table-wrap" }, el("table", { id: "runs" }, head, body)));

  let last = null;
  const save = () => setState({
    filter: view.filter, sort: view.sort === "start" ? "" : view.sort, desc: view.desc ? "" : "0",
    cols: view.cols.join(","), sel: [...view.sel].join(","), open: [...view.open].join(","),
    page: view.page || "", nest: view.nest ? "" : "0",
  });
  const params = (extra = {}) => ({ e: experiments.join(","), filter: view.filter, sort: view.sort,
    desc: view.desc ? "1" : "0", cols: view.cols.join(","), nest: view.nest ? "1" : "0", ...extra });

  function headers() {
    const th = (key, label) => el("th", {
      class: view.sort === key ? `sorted${view.desc ? "" : " asc"}` : "", dataset: { col: key },
      onclick: () => {
        view.desc = view.sort === key ? !view.desc : true;
        view.sort = key; view.page = 0; save(); load();
      } }, label);
    head.replaceChildren(el("tr", {}, el("th", {}, ""), FIXED.map(([k, l]) => th(k, l)), view.cols.map((c) => th(c, c))));
  }

  function row(r, child) {
    const box = el("input", { type: "checkbox", checked: view.sel.has(r.id), onchange: () => {
      box.checked ? view.sel.add(r.id) : view.sel.delete(r.id); save(); counts();
    } });
    const toggle = r.children ? el("button", { class: "fold", dataset: { parent: r.id }, onclick: (ev) => {
      ev.preventDefault();
      view.open.has(r.id) ? view.open.delete(r.id) : view.open.add(r.id); save(); draw();
    } }, `${unfolded(r) ? "▾" : "▸"} ${r.children} `) : null;
    const cells = [
      el("td", {}, box),
      el("td", {}, toggle, el("a", { href: href("run", r.id), class: "run-name" }, r.name || r.id.slice(0, 8))),
      el("td", { class: `status-${r.status}` }, r.status),
      el("td", {}, fmtTime(r.start)),
      el("td", { class: "num" }, fmtDuration(r.start, r.end)),
      el("td", {}, r.user),
      el("td", {}, r.source || ""),
      el("td", {}, (r.commit || "").slice(0, 10)),
      ...r.values.map((v) => el("td", { class: typeof v === "number" ? "num" : "" }, fmtValue(v))),
    ];
    // a parent that does not match itself, shown for its matching children
    const kind = [child ? "child" : "", r.context ? "context" : ""].join(" ").trim();
    return el("tr", { class: kind, dataset: { id: r.id }, title: r.context ? "does not match the filter; shown for its matching child runs" : null }, cells);
  }

  // a context parent is unfolded unless the user folded it (its children are why it is shown)
  const unfolded = (r) => (r.context ? !view.open.has(r.id) : view.open.has(r.id));

  async function draw() {
    const shown = last.rows;
    // the open parents' children, fetched together
    const kids = await Promise.all(shown.map((r) => (r.children && unfolded(r)
      ? api("runs", params({ parent: r.id, limit: 500 })).then((k) => k.rows) : [])));
    const rows = [];
    shown.forEach((r, i) => { rows.push(row(r, false)); rows.push(...kids[i].map((k) => row(k, true))); });
    body.replaceChildren(...rows);
    if (!rows.length) body.append(el("tr", {}, el("td", { colspan: 8 + view.cols.length, class: "muted" }, "No run matches.")));
  }

  function counts() {
    compare.disabled = view.sel.size < 2;
    compare.textContent = `Compare (${view.sel.size})`;
  }

  async function load() {
    headers();
    try {
      last = await api("runs", params({ offset: view.page * PAGE, limit: PAGE }));
    } catch (e) {
      if (e.body && e.body.position !== undefined) { showError(e.body); return; }
      throw e;
    }
    const from = last.total ? view.page * PAGE + 1 : 0;
    info.textContent = `${from}–${view.page * PAGE + last.rows.length} of ${last.total}`;
    prev.disabled = view.page === 0;
    next.disabled = (view.page + 1) * PAGE >= last.total;
    counts();
    columnPicker(last.keys);
    await draw();
  }

  function columnPicker(keys) {
    const boxes = [];
    for (const kind of ["metrics", "params", "tags"]) {
      for (const k of keys[kind]) {
        const col = `${kind}.${k}`;
        boxes.push(el("label", { style: "display:block" }, el("input", { type: "checkbox", checked: view.cols.includes(col), dataset: { col },
          onchange: (ev) => {
            view.cols = ev.target.checked ? [...view.cols, col] : view.cols.filter((c) => c !== col);
            save(); load();
          } }), " ", col));
      }
    }
    picker.replaceChildren(...boxes);
  }

  function showError(body) {
    filter.classList.add("bad");
    const pos = Math.max(0, Math.min(body.position, view.filter.length));
    error.replaceChildren(el("div", {}, view.filter), el("div", { class: "caret" }, " ".repeat(pos) + "^"),
      el("div", { class: "msg" }, body.message));
    error.dataset.position = String(body.position);
    filter.focus();
    filter.setSelectionRange(pos, Math.min(pos + 1, view.filter.length));
  }

  async function apply() {
    view.filter = filter.value.trim();
    const check = await api("parse", { filter: view.filter });
    if (!check.ok) { showError(check); return; }
    filter.classList.remove("bad");
    error.replaceChildren();
    delete error.dataset.position;
    view.page = 0; save(); await load();
  }

  filter.addEventListener("keydown", (ev) => { if (ev.key === "Enter") apply(); });
  root.querySelector("#apply").addEventListener("click", apply);
  prev.addEventListener("click", () => { view.page -= 1; save(); load(); });
  next.addEventListener("click", () => { view.page += 1; save(); load(); });
  pick.addEventListener("click", () => { picker.hidden = !picker.hidden; });
  nest.querySelector("input").addEventListener("change", (ev) => { view.nest = ev.target.checked; view.page = 0; save(); load(); });
  compare.addEventListener("click", () => { location.hash = href("compare", "", { runs: [...view.sel].join(",") }); });

  if (view.cols.length === 0 && !state.has("cols")) {
    // a first look: the first few metrics of the newest runs
    const probe = await api("runs", params({ limit: 1 }));
    view.cols = probe.keys.metrics.slice(0, 6).map((k) => `metrics.${k}`);
  }
  await load();
  const mine = route().page;
  every(5000, () => { if (!document.hidden && route().page === mine && !filter.classList.contains("bad")) load(); });
}
