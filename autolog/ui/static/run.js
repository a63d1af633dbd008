// The run page: params, latest metrics, tags, links, charts, artifacts.
import { api, el, every, fmtDuration, fmtTime, fmtValue, href, route, setState, table } from "./api.js";
import { MetricChart, chartControls } from "./chart.js";
import { artifactsView } from "./artifacts.js";

const SYSTEM = "mlflow.";

export function chartOptions(state) {
  return { x: state.get("x") || "step", log: state.get("log") === "1", smooth: Number(state.get("smooth") || 0) };
}

export function saveChartOptions(o) {
  setState({ x: o.x === "step" ? "" : o.x, log: o.log ? "1" : "", smooth: o.smooth || "" });
}

export async function runPage(root, runId, state, crumbs) {
  let run = await api("run", { id: runId });
  const { info } = run;
  crumbs.append(el("a", { href: href("runs", "", { e: info.experiment_id }) }, run.experiment.name), " / ",
    el("span", {}, info.run_name || info.run_id));
  const parent = run.tags["mlflow.parentRunId"];
  const summary = table(null, [
    ["Run id", info.run_id],
    ["Status", el("span", { class: `status-${info.status}`, id: "run-status" }, info.status)],
    ["Start", fmtTime(info.start_time)],
    ["Duration", fmtDuration(info.start_time, info.end_time)],
    ["User", info.user_id],
    ["Source", run.tags["mlflow.source.name"] || ""],
    ["Git commit", run.tags["mlflow.source.git.commit"] || ""],
    ["Logged by", run.tags["mlflow.autologging"] || "(not autologged)"],
    ["Parent", parent ? el("a", { href: href("run", parent), id: "parent-link" }, parent) : ""],
    ["Children", run.children.length ? el("span", { id: "children" }, run.children.map((c, i) => [i ? ", " : "", el("a", { href: href("run", c.id) }, c.name || c.id)])) : ""],
  ]);
  const sorted = (obj) => Object.entries(obj).sort(([a], [b]) => a.localeCompare(b));
  const metricsBox = el("div", { id: "metrics" });
  const drawMetrics = () => metricsBox.replaceChildren(table(["Metric", "Latest"], sorted(run.metrics).map(([k, v]) => [k, fmtValue(v)])));
  drawMetrics();
  const userTags = sorted(run.tags).filter(([k]) => !k.startsWith(SYSTEM));
  const systemTags = sorted(run.tags).filter(([k]) => k.startsWith(SYSTEM));
  const options = chartOptions(state);
  const grid = el("div", { class: "grid", id: "charts" });
  const charts = new Map();
  const controls = chartControls(options, () => { saveChartOptions(options); charts.forEach((c) => c.setOptions({ ...options })); });
  root.append(el("h1", { id: "run-name" }, info.run_name || info.run_id),
    el("div", { class: "cols" },
      el("div", {}, el("h2", {}, "Run"), summary),
      el("div", {}, el("h2", {}, "Params"), el("div", { id: "params" }, table(["Param", "Value"], sorted(run.params)))),
      el("div", {}, el("h2", {}, "Metrics"), metricsBox),
      el("div", {}, el("h2", {}, "Tags"), el("div", { id: "tags" }, table(["Tag", "Value"], userTags)),
        el("h2", {}, "System tags"), el("div", { id: "system-tags" }, table(["Tag", "Value"], systemTags)))),
    el("h2", {}, "Charts"), controls, grid,
    el("h2", {}, "Artifacts"));
  root.append(await artifactsView(info.run_id));

  const runs = [{ id: info.run_id, name: info.run_name }];
  const addCharts = () => Object.keys(run.metrics).sort().filter((k) => !charts.has(k)).map((key) => {
    const chart = new MetricChart(grid, key, runs, { ...options });
    charts.set(key, chart);
    return chart.load();
  });
  await Promise.all(addCharts());
  if (!Object.keys(run.metrics).length) grid.append(el("p", { class: "muted" }, "No metrics logged."));

  if (info.status === "RUNNING") {
    const mine = route().page;
    let busy = false;
    every(1500, async () => {
      if (busy || document.hidden || route().page !== mine) return;
      busy = true;
      try {
        run = await api("run", { id: runId });
        drawMetrics();
        root.querySelector("#run-status").textContent = run.info.status;
        await Promise.all([...addCharts(), ...[...charts.values()].map((c) => c.refresh())]);
      } finally { busy = false; }
    });
  }
}
