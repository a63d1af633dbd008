// One metric chart (uPlot) drawn from server-side buckets: a min..max band and
// the last value per pixel column, so a million points cost one chart width.
// Drag to zoom (the zoomed range is fetched again, exact at that width),
// double-click or "reset" to zoom out; hover shows the values.
import { api, el } from "./api.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];
export const color = (i) => COLORS[i % COLORS.length];

// exponential moving average with TensorBoard's debiasing; gaps stay gaps
function smooth(values, weight) {
  if (!weight) return values;
  let acc = 0, n = 0;
  return values.map((v) => {
    if (v === null || v === undefined) return null;
    acc = acc * weight + (1 - weight) * v; n += 1;
    return acc / (1 - Math.pow(weight, n));
  });
}

// enc=f64, the compact answer: values come as base64 of little-endian float64
// (no decimal text to format or parse), NaN a gap (null); a series whose x is
// "same" has the previous series' x (overlaid runs share their bucket edges)
function f64(text) {
  if (typeof text !== "string") return text;
  const bin = atob(text);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  const values = new Float64Array(bytes.buffer);
  const out = new Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Number.isNaN(values[i]) ? null : values[i];
  return out;
}

const positive = (values) => values.map((v) => (v === null || v <= 0 ? null : v));

export class MetricChart {
  // runs: [{id, name}]; options: {x: "step"|"time", log, smooth}
  constructor(container, key, runs, options) {
    this.key = key; this.runs = runs; this.options = options; this.zoom = null;
    this.title = el("h3", {}, key, " ", el("span", { class: "muted n" }));
    this.reset = el("button", { hidden: true, onclick: () => this.setZoom(null) }, "reset zoom");
    this.plotBox = el("div", { ondblclick: () => this.setZoom(null) });
    this.root = el("div", { class: "chart", dataset: { key } }, el("div", { class: "bar" }, this.title, this.reset), this.plotBox);
    container.append(this.root);
    this.plot = null;
  }

  width() { return Math.max(200, Math.floor((this.root.clientWidth || 460) - 14)); }

  async load() {
    const time = this.options.x === "time";
    const zoom = this.zoom && (time ? this.zoom.map((v) => v * 1000) : this.zoom);
    const { series } = await api("metrics", {
      runs: this.runs.map((r) => r.id).join(","), keys: this.key, width: this.width(),
      x: this.options.x, lo: zoom ? zoom[0] : null, hi: zoom ? zoom[1] : null,
      band: this.runs.length > 1 ? "0" : "1",  // overlays draw lines only
      enc: "f64",
    });
    series.forEach((s, i) => {
      if (s.x === "same") s.x = series[i - 1].x;
      s.last = f64(s.last); s.min = f64(s.min); s.max = f64(s.max);
    });
    this.series = series;
    this.draw();
  }

  draw() {
    const time = this.options.x === "time";
    const tx = (xs) => (time ? xs.map((v) => v / 1000) : xs);
    const fix = (values) => (this.options.log ? positive(values) : values);
    const exact = this.series.every((s) => s.exact);
    // an overlay's bucketed lines are not counted (n null): say how many runs instead
    const counted = this.series.every((s) => s.n !== null);
    const n = this.series.reduce((a, s) => a + (s.n || 0), 0);
    this.title.querySelector(".n").textContent = counted
      ? `${n.toLocaleString()} ${n === 1 ? "point" : "points"}${exact ? "" : ", bucketed"}`
      : `${this.series.length} runs, bucketed`;
    let data, series, bands;
    if (this.series.length === 1) {
      const s = this.series[0];
      // an exact series comes without a band: its band is its line
      data = [tx(s.x), fix(s.min || s.last), fix(s.max || s.last), fix(smooth(s.last, this.options.smooth))];
      series = [{ label: time ? "time" : "step" },
        { label: "min", stroke: "rgba(37,99,235,0.25)", width: 1, points: { show: false }, show: !s.exact },
        { label: "max", stroke: "rgba(37,99,235,0.25)", width: 1, points: { show: false }, show: !s.exact },
        { label: this.runs[0].name || "value", stroke: color(0), width: 1.5, spanGaps: false, points: { show: s.exact && s.n < 60 } }];
      bands = s.exact ? [] : [{ series: [2, 1], fill: "rgba(37,99,235,0.15)" }];
    } else {
      data = window.uPlot.join(this.series.map((s) => [tx(s.x), fix(smooth(s.last, this.options.smooth))]));
      series = [{ label: time ? "time" : "step" }, ...this.series.map((s, i) => ({
        // 1 px lines: a canvas draws hairlines several times faster than wider lines
        label: this.runs[i].name || s.run.slice(0, 8), stroke: color(i), width: 1, spanGaps: true,
        points: { show: s.exact && s.n <= 60, fill: color(i) } }))];
      bands = [];
    }
    const opts = {
      width: this.width(), height: 220, series, bands,
      scales: { x: { time }, y: { distr: this.options.log ? 3 : 1 } },
      legend: { show: series.length <= 12, live: true },
      cursor: { drag: { x: true, y: false, setScale: false } },
      hooks: { setSelect: [(u) => {
        if (u.select.width < 3) return;
        const lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        this.setZoom([lo, hi]);
      }] },
    };
    if (this.plot) this.plot.destroy();
    this.plot = new window.uPlot(opts, data, this.plotBox);
    this.reset.hidden = !this.zoom;
    window.autologUI.charts[this.key + (this.runs.length > 1 ? ":compare" : "")] = {
      key: this.key, runs: this.runs.map((r) => r.id), series: this.series, data, drawnAt: performance.now(),
    };
  }

  setZoom(range) { this.zoom = range; return this.load(); }

  setOptions(options) {
    const refetch = options.x !== this.options.x;
    this.options = options;
    if (refetch) { this.zoom = null; return this.load(); }
    this.draw();
    return Promise.resolve();
  }

  // a running run: fetch again, unless the user is looking at a zoomed range
  refresh() { return this.zoom ? Promise.resolve() : this.load(); }
}

export function chartControls(options, onChange) {
  const x = el("select", { id: "x-axis", onchange: () => { options.x = x.value; onChange(); } },
    el("option", { value: "step", selected: options.x === "step" }, "x: step"),
    el("option", { value: "time", selected: options.x === "time" }, "x: time"));
  const log = el("input", { type: "checkbox", id: "log-scale", checked: options.log, onchange: () => { options.log = log.checked; onChange(); } });
  const sm = el("input", { type: "range", id: "smoothing", min: 0, max: 0.99, step: 0.01, value: options.smooth,
    onchange: () => { options.smooth = Number(sm.value); onChange(); } });
  return el("div", { class: "bar" }, x, el("label", {}, log, " log scale"), el("label", {}, "smoothing ", sm));
}
