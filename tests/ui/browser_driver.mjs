// A headless Chromium the Python tests drive: one JSON command per stdin line,
// one JSON answer per stdout line. playwright-core from tests/js/node_modules,
// Debian's /usr/bin/chromium, a fresh profile, no network but the test server.
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import readline from "node:readline";

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.AUTOLOG_PLAYWRIGHT || "../js/node_modules/playwright-core");

const profile = mkdtempSync(join(tmpdir(), "autolog-ui-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.AUTOLOG_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let page = context.pages()[0] || (await context.newPage());
let dialogs = [];
let errors = [];
const watch = (p) => {
  p.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  p.on("pageerror", (e) => errors.push(String(e)));
  p.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
};
watch(page);

const commands = {
  async goto({ url, waitUntil = "load", timeout = 60000 }) { await page.goto(url, { waitUntil, timeout }); return null; },
  async newPage() { await page.close(); page = await context.newPage(); watch(page); dialogs = []; errors = []; return null; },
  async wait({ selector, state = "visible", timeout = 15000 }) { await page.waitForSelector(selector, { state, timeout }); return null; },
  // polled from here: waitForFunction would need 'unsafe-eval', which the page's CSP forbids
  async waitFn({ js, timeout = 15000 }) {
    const end = Date.now() + timeout;
    for (;;) {
      const value = await page.evaluate(js).catch(() => null);
      if (value) return value;
      if (Date.now() > end) throw new Error(`timed out waiting for ${js}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  },
  async eval({ js }) { return await page.evaluate(js); },
  async click({ selector }) { await page.click(selector); return null; },
  async fill({ selector, text }) { await page.fill(selector, text); return null; },
  async press({ selector, key }) { await page.press(selector, key); return null; },
  async text({ selector }) { return await page.textContent(selector); },
  async texts({ selector }) { return await page.$$eval(selector, (els) => els.map((e) => e.textContent)); },
  async screenshot({ path }) { await page.screenshot({ path, fullPage: true }); return path; },
  async events({ clear = false }) {
    const seen = { dialogs, errors };
    if (clear) { dialogs = []; errors = []; }
    return seen;
  },
  async close() { await context.close(); rmSync(profile, { recursive: true, force: true }); process.exit(0); },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const { op, ...args } = JSON.parse(line);
  try {
    const value = await commands[op](args);
    process.stdout.write(JSON.stringify({ ok: true, value: value === undefined ? null : value }) + "\n");
  } catch (error) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(error && error.message || error) }) + "\n");
  }
}
await context.close();
rmSync(profile, { recursive: true, force: true });
