// The router: one page, the view named by the URL's hash.
import { el, route, stopTimers } from "./api.js";
import { experimentsPage } from "./experiments.js";
import { runsPage } from "./runs.js";
import { runPage } from "./run.js";
import { comparePage } from "./compare.js";

const pages = { "": experimentsPage, experiments: experimentsPage, runs: runsPage, run: runPage, compare: comparePage };

async function render() {
  stopTimers();
  window.autologUI.charts = {};
  const { page, arg, state } = route();
  const main = document.getElementById("main");
  const crumbs = document.getElementById("crumbs");
  crumbs.replaceChildren(el("a", { href: "#/" }, "Experiments"));
  const view = pages[page] || experimentsPage;
  const root = el("div");
  main.replaceChildren(root);
  try {
    await view(root, arg, state, crumbs);
  } catch (error) {
    root.replaceChildren(el("p", { class: "err" }, String(error.message || error)));
  }
  document.body.dataset.view = page || "experiments";
  // painted: the frame after the view's DOM is complete (ms since navigation)
  requestAnimationFrame(() => setTimeout(() => {
    window.autologUI.painted = performance.now();
    document.body.dataset.ready = String(Date.now());
  }, 0));
}

window.addEventListener("hashchange", render);
render();
