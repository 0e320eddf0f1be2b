// Makes the README's screenshots (docs/graph-view.png, docs/file-panel.png, docs/list-view.png):
// fills a server with dev/samples.mjs's made-up library and photographs the page in headless
// Chromium. With no --url it starts a fresh dev/mock-server.mjs (the page must be built).
//
//   npm run screenshots [-- --url http://127.0.0.1:7878] [--out ../docs]

import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { launch } from "../test/browser.mjs";
import { seedSamples } from "./samples.mjs";

const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(`--${name}`) ? argv[argv.indexOf(`--${name}`) + 1] : dflt);
const here = path.dirname(new URL(import.meta.url).pathname);
const out = path.resolve(opt("out", path.join(here, "../../docs")));
let base = opt("url", null);
let mock;
if (!base) {
  mock = spawn(process.execPath, [path.join(here, "mock-server.mjs"), "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
  base = await new Promise((resolve) => mock.stdout.on("data", (d) => resolve(/listening on (\S+)/.exec(String(d))?.[1])));
}

async function api(method, p, body) {
  const res = await fetch(new URL(p, base), { method, body });
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status}`);
  return res.json();
}

fs.mkdirSync(out, { recursive: true });
const ids = await seedSamples(api);
const browser = await launch({ viewport: { width: 1360, height: 860 } });
const page = browser.context.pages()[0] ?? (await browser.context.newPage());
await page.goto(base);
await page.waitForFunction(() => window.__disgrafs?.graph.order > 40);
await page.waitForFunction(() => document.querySelector(".graph-toolbar button:last-child").textContent === "Run layout", null, { timeout: 30000 });
await page.evaluate(() => window.__disgrafs.sigma.getCamera().animatedReset({ duration: 0 }));
await page.waitForTimeout(500);
await page.screenshot({ path: path.join(out, "graph-view.png") });

await page.goto(`${base}/#file=${ids.markdown}`);
await page.locator("#panel .markdown").waitFor();
await page.fill("#graph-find", "rust");
await page.waitForTimeout(1200);
await page.screenshot({ path: path.join(out, "file-panel.png") });

await page.goto(`${base}/#view=list`);
await page.locator("#list-view tbody tr[data-id]").nth(5).waitFor();
await page.locator("#list-view tbody tr[data-id]").nth(1).click({ modifiers: ["Control"] });
await page.locator("#list-view tbody tr[data-id]").nth(2).click({ modifiers: ["Control"] });
await page.screenshot({ path: path.join(out, "list-view.png") });

await browser.close();
mock?.kill();
console.log(`screenshots written to ${out}`);
