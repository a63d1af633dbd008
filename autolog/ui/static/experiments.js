// Experiments: name, run count, last activity; search by name; pick several.
import { api, el, fmtTime, href, setState } from "./api.js";

export async function experimentsPage(root, _arg, state) {
  const search = el("input", { type: "search", placeholder: "Search experiments by name", value: state.get("q") || "", id: "exp-search" });
  const body = el("tbody");
  const chosen = new Set();
  const open = el("button", { disabled: true, id: "open-selected" }, "Open selected");
  open.addEventListener("click", () => { location.hash = href("runs", "", { e: [...chosen].join(",") }); });
  root.append(el("h1", {}, "Experiments"), el("div", { class: "bar" }, search, open),
    el("table", { id: "experiments" },
      el("thead", {}, el("tr", {}, el("th", {}, ""), el("th", {}, "Name"), el("th", {}, "Runs"), el("th", {}, "Last activity"))),
      body));

  async function load() {
    const { experiments } = await api("experiments", { q: search.value });
    body.replaceChildren(...experiments.map((e) => {
      const box = el("input", { type: "checkbox", onchange: () => {
        box.checked ? chosen.add(e.id) : chosen.delete(e.id);
        open.disabled = chosen.size === 0;
      } });
      return el("tr", { dataset: { id: e.id } },
        el("td", {}, box),
        el("td", {}, el("a", { href: href("runs", "", { e: e.id }) }, e.name)),
        el("td", { class: "num" }, String(e.runs)),
        el("td", {}, fmtTime(e.last)));
    }));
    if (!experiments.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No experiment matches.")));
  }
  let pending;
  search.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(() => { setState({ q: search.value }); load(); }, 150);
  });
  await load();
}
