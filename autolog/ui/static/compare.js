// Compare: overlaid curves per metric, the params that differ, parallel
// coordinates of params against a metric, a scatter of one param and one metric.
import { api, el, fmtValue, href, setState } from "./api.js";
import { MetricChart, chartControls, color } from "./chart.js";
import { chartOptions, saveChartOptions } from "./run.js";

const num = (v) => (v === undefined || v === null || v === "" || isNaN(Number(v)) ? null : Number(v));

// each axis maps a run to [0, 1]: numbers linearly, other values by their sorted rank
function axis(label, values) {
  const numeric = values.every((v) => v === undefined || num(v) !== null);
  if (numeric) {
    const xs = values.map(num).filter((v) => v !== null);
    const lo = Math.min(...xs), hi = Math.max(...xs);
    return { label, lo, hi, at: (v) => (num(v) === null ? null : hi === lo ? 0.5 : (num(v) - lo) / (hi - lo)) };
  }
  const cats = [...new Set(values.filter((v) => v !== undefined).map(String))].sort();
  return { label, cats, at: (v) => (v === undefined ? null : cats.length < 2 ? 0.5 : cats.indexOf(String(v)) / (cats.length - 1)) };
}

function canvas(width, height) {
  const c = el("canvas", { width: width * devicePixelRatio, height: height * devicePixelRatio, class: "pc" });
  c.style.width = `${width}px`; c.style.height = `${height}px`;
  const ctx = c.getContext("2d");
  ctx.scale(devicePixelRatio, devicePixelRatio);
  ctx.font = "11px system-ui"; ctx.fillStyle = "#1d2330";
  return [c, ctx];
}

function parallel(runs, keys, metric) {
  const width = Math.max(480, 140 * (keys.length + 1)), height = 300, pad = 30;
  const axes = [...keys.map((k) => axis(k, runs.map((r) => r.params[k]))), axis(metric, runs.map((r) => r.metrics[metric]))];
  const [c, ctx] = canvas(width, height);
  const xAt = (i) => pad + (i * (width - 2 * pad)) / Math.max(1, axes.length - 1);
  const yAt = (t) => height - pad - t * (height - 2 * pad);
  const m = axes[axes.length - 1];
  runs.forEach((r, ri) => {
    const t = m.at(r.metrics[metric]);
    ctx.strokeStyle = t === null ? "#9ca3af" : `hsl(${240 - 240 * t}, 70%, 45%)`;
    ctx.beginPath();
    let started = false;
    axes.forEach((a, i) => {
      const v = a.at(i === axes.length - 1 ? r.metrics[metric] : r.params[keys[i]]);
      if (v === null) { started = false; return; }
      started ? ctx.lineTo(xAt(i), yAt(v)) : ctx.moveTo(xAt(i), yAt(v));
      started = true;
    });
    ctx.stroke();
    void ri;
  });
  ctx.strokeStyle = "#1d2330";
  axes.forEach((a, i) => {
    ctx.beginPath(); ctx.moveTo(xAt(i), yAt(0)); ctx.lineTo(xAt(i), yAt(1)); ctx.stroke();
    ctx.textAlign = "center"; ctx.fillText(a.label, xAt(i), 14);
    const ends = a.cats ? [a.cats[0], a.cats[a.cats.length - 1]] : [fmtValue(a.lo), fmtValue(a.hi)];
    ctx.fillText(ends[0] ?? "", xAt(i), height - 8); ctx.fillText(ends[1] ?? "", xAt(i), pad - 4 + 10);
  });
  window.autologUI.parallel = { axes: axes.map((a) => a.label), runs: runs.length };
  return c;
}

function scatter(runs, param, metric) {
  const width = 480, height = 300, pad = 40;
  const xa = axis(param, runs.map((r) => r.params[param])), ya = axis(metric, runs.map((r) => r.metrics[metric]));
  const [c, ctx] = canvas(width, height);
  ctx.strokeStyle = "#1d2330";
  ctx.strokeRect(pad, 10, width - pad - 10, height - pad - 10);
  const points = [];
  runs.forEach((r, i) => {
    const x = xa.at(r.params[param]), y = ya.at(r.metrics[metric]);
    if (x === null || y === null) return;
    points.push([r.params[param], r.metrics[metric]]);
    ctx.fillStyle = color(i);
    ctx.beginPath(); ctx.arc(pad + x * (width - pad - 20) + 5, height - pad - y * (height - pad - 20), 4, 0, 7); ctx.fill();
  });
  ctx.fillStyle = "#1d2330"; ctx.textAlign = "center";
  ctx.fillText(param, width / 2, height - 6);
  ctx.save(); ctx.translate(12, height / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(metric, 0, 0); ctx.restore();
  window.autologUI.scatter = { param, metric, points };
  return c;
}

export async function comparePage(root, _arg, state, crumbs) {
  const ids = (state.get("runs") || "").split(",").filter(Boolean);
  const { runs } = await api("compare", { runs: ids.join(",") });
  crumbs.append(el("span", { class: "muted" }, `/ compare ${runs.length} runs`));
  const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const differing = paramKeys.filter((k) => new Set(runs.map((r) => r.params[k] ?? "\u0000missing")).size > 1);
  const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
  const metric = state.get("metric") && metricKeys.includes(state.get("metric")) ? state.get("metric") : metricKeys[0];
  const param = state.get("param") && differing.includes(state.get("param")) ? state.get("param") : differing[0];

  const shown = runs.slice(0, 50);
  const params = el("table", { id: "diff-params" },
    el("thead", {}, el("tr", {}, el("th", {}, "Param"), shown.map((r) => el("th", {}, el("a", { href: href("run", r.id) }, r.name || r.id.slice(0, 8)))))),
    el("tbody", {}, differing.map((k) => el("tr", { dataset: { param: k } }, el("td", {}, k), shown.map((r) => el("td", {}, r.params[k] ?? "—"))))));
  const pick = (id, keys, current, name) => el("select", { id, onchange: (ev) => { setState({ [name]: ev.target.value }); dispatchEvent(new HashChangeEvent("hashchange")); } },
    keys.map((k) => el("option", { value: k, selected: k === current }, k)));
  const options = chartOptions(state);
  const grid = el("div", { class: "grid", id: "charts" });
  const charts = metricKeys.map((key) => new MetricChart(grid, key, runs.map((r) => ({ id: r.id, name: r.name })), { ...options }));
  root.append(el("h1", {}, `Compare ${runs.length} runs`),
    el("h2", {}, "Params that differ"),
    differing.length ? el("div", { class: "table-wrap" }, params) : el("p", { class: "muted", id: "no-diff" }, "All params are equal."),
    el("h2", {}, "Metrics"),
    chartControls(options, () => { saveChartOptions(options); charts.forEach((c) => c.setOptions({ ...options })); }),
    grid);
  if (metric && differing.length) {
    root.append(el("h2", {}, "Params against a metric"),
      el("div", { class: "bar" }, "metric ", pick("pc-metric", metricKeys, metric, "metric"), " param ", pick("sc-param", differing, param, "param")),
      el("div", { class: "cols" }, el("div", { id: "parallel" }, parallel(runs, differing.slice(0, 12), metric)),
        el("div", { id: "scatter" }, scatter(runs, param, metric))));
  }
  await Promise.all(charts.map((c) => c.load()));
}
