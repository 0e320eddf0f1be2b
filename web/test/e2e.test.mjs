// Browser tests of the page in headless Chromium (playwright-core driving Debian's /usr/bin/chromium),
// run with node's own test runner:
//
//   DISGRAFS_URL=http://127.0.0.1:7878 node --test test/e2e.test.mjs   # against a running `disgrafs serve`
//   node --test test/e2e.test.mjs                                      # against dev/mock-server.mjs
//
// Each test acts as a person would: through the page's controls, checking what the page shows and
// what the server then holds.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { launch } from "./browser.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
let base = process.env.DISGRAFS_URL;
let mock;
let browser;
let page;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "disgrafs-e2e-"));

before(async () => {
  if (!base) {
    mock = spawn(process.execPath, [path.join(here, "../dev/mock-server.mjs"), "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
    base = await new Promise((resolve, reject) => {
      mock.stdout.on("data", (d) => {
        const m = /listening on (\S+)/.exec(String(d));
        if (m) resolve(m[1]);
      });
      mock.on("exit", (code) => reject(new Error(`mock server exited ${code}`)));
    });
    console.log(`# no DISGRAFS_URL: testing against the mock server at ${base}`);
  }
  browser = await launch();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.on("pageerror", (e) => console.log(`# page error: ${e.message}`));
  await page.goto(base);
  // A real server asks for a login: through the page's form, as a person would.
  if (process.env.DISGRAFS_PASSWORD) {
    await page.waitForSelector("#login-form");
    await page.fill("#login-form input[name=user]", process.env.DISGRAFS_USER);
    await page.fill("#login-form input[name=password]", process.env.DISGRAFS_PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click("#login-form button[type=submit]")]);
    await page.waitForSelector("#logout-btn");
  }
  await page.waitForFunction(() => window.__disgrafs !== undefined || document.querySelector(".graph-status")?.textContent);
});

after(async () => {
  await browser?.close();
  mock?.kill();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Calls the API from the test (not through the page). */
async function api(method, p, body, headers = {}) {
  const auth = process.env.DISGRAFS_TOKEN ? { authorization: `Bearer ${process.env.DISGRAFS_TOKEN}` } : {};
  const res = await fetch(new URL(p, base), { method, body, headers: { ...auth, ...headers } });
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${await res.text()}`);
  return res.status === 204 ? null : res.headers.get("content-type")?.includes("json") ? res.json() : Buffer.from(await res.arrayBuffer());
}

async function fileByName(name) {
  const { files } = await api("GET", "/api/files?limit=10000");
  return files.find((f) => f.name === name);
}

const nodeExists = (id) => page.waitForFunction((n) => window.__disgrafs?.graph.hasNode(n), `f:${id}`, { timeout: 15000 });

/** Stops the layout, then clicks the node's position on the canvas. */
async function clickNode(nodeId) {
  await page.evaluate(() => document.querySelector(".graph-toolbar button:last-child").textContent.startsWith("Pause") && document.querySelector(".graph-toolbar button:last-child").click());
  await page.fill("#graph-find", "");
  await page.waitForTimeout(300);
  const box = await page.locator(".graph-stage").boundingBox();
  const p = await page.evaluate((n) => {
    const { sigma, graph } = window.__disgrafs;
    const a = graph.getNodeAttributes(n);
    sigma.getCamera().setState({ x: 0.5, y: 0.5, ratio: 1, angle: 0 });
    sigma.refresh();
    return sigma.graphToViewport({ x: a.x, y: a.y });
  }, nodeId);
  await page.mouse.move(box.x + p.x, box.y + p.y);
  await page.mouse.click(box.x + p.x, box.y + p.y);
}

let uploaded; // { id, name, bytes } of the file uploaded through the page

test("upload a file through the page: its node appears, clicking it opens its panel", async () => {
  const name = `e2e-${crypto.randomBytes(3).toString("hex")}.txt`;
  const bytes = Buffer.from(`quokka wombat platypus ${name}\n`.repeat(50));
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  await page.setInputFiles("#upload-files", file);
  await page.locator(".upload-item.upload-done", { hasText: name }).waitFor({ timeout: 20000 });
  const record = await fileByName(name);
  assert.ok(record, "the server holds the uploaded file");
  assert.equal(record.size, bytes.length);
  await nodeExists(record.id);
  await clickNode(`f:${record.id}`);
  await page.locator("#panel-title", { hasText: name }).waitFor({ timeout: 5000 });
  assert.match(page.url(), new RegExp(`file=${record.id}`));
  uploaded = { id: record.id, name, bytes };
});

test("add a tag in the panel (with autocomplete), the server keeping it", async () => {
  assert.ok(uploaded, "needs the uploaded file");
  const input = page.locator("#panel .tag-input");
  // Autocomplete offers the tags the server knows (the file's kind, "document", is one).
  await input.pressSequentially("docu");
  await page.locator("#panel [role=option]", { hasText: "document" }).waitFor({ timeout: 5000 });
  assert.equal(await input.getAttribute("aria-expanded"), "true");
  await input.press("Escape");
  assert.equal(await input.getAttribute("aria-expanded"), "false");
  await input.fill("e2e-tag");
  await input.press("Enter");
  await page.locator("#panel .chip-user", { hasText: "e2e-tag" }).waitFor({ timeout: 5000 });
  const record = await api("GET", `/api/files/${uploaded.id}`);
  assert.ok(record.tags.some((t) => t.name === "e2e-tag" && t.kind === "user"), JSON.stringify(record.tags));
  // The graph gains the tag node and its edge.
  await page.waitForFunction((id) => window.__disgrafs.graph.hasEdge(`f:${id}`, "t:e2e-tag"), uploaded.id, { timeout: 5000 });
});

test("download from the panel gives back the same bytes", async () => {
  assert.ok(uploaded, "needs the uploaded file");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#panel-download")]);
  assert.equal(download.suggestedFilename(), uploaded.name);
  const saved = path.join(tmp, "downloaded");
  await download.saveAs(saved);
  assert.deepEqual(fs.readFileSync(saved), uploaded.bytes);
});

test("run a query: the graph and the list show the matches; a bad query is marked where the server says", async () => {
  assert.ok(uploaded, "needs the uploaded file");
  await page.keyboard.press("Escape");
  await page.fill("#query", "e2e-tag");
  await page.press("#query", "Enter");
  await page.waitForFunction(() => /^1 files/.test(document.querySelector(".graph-status")?.textContent ?? ""), null, { timeout: 10000 });
  await page.click("#tab-list");
  await page.locator("#list-view tbody tr[data-id]").first().waitFor();
  assert.deepEqual(await page.locator("#list-view tbody tr[data-id]").evaluateAll((rows) => rows.map((r) => r.dataset.id)), [uploaded.id]);

  await page.fill("#query", "e2e-tag AND (");
  await page.press("#query", "Enter");
  const error = page.locator("#query-error");
  await error.waitFor({ state: "visible" });
  assert.equal(await page.getAttribute("#query", "aria-invalid"), "true");
  assert.ok(await page.locator(".query-mark").isVisible(), "the error position is marked");
  const selection = await page.evaluate(() => document.getElementById("query").selectionStart);
  assert.ok(selection >= 10 && selection <= 13, `caret at the error, got ${selection}`);
  // The last good query still applies.
  assert.equal(await page.locator("#list-view tbody tr[data-id]").count(), 1);
  await page.fill("#query", "");
  await page.press("#query", "Enter");
  await page.click("#tab-graph");
});

test("files added elsewhere appear live, and their tags when tagging finishes", async () => {
  const name = `live-${crypto.randomBytes(3).toString("hex")}.md`;
  const record = await api("PUT", `/api/files?name=${encodeURIComponent(name)}`, "# Live\n\nPenguins and puffins live by the sea.\n");
  await nodeExists(record.id);
  await page.waitForFunction((id) => window.__disgrafs.graph.degree(`f:${id}`) > 0, record.id, { timeout: 30000 });
});

test("list view: sort, select several with the keyboard, tag them, delete them", async () => {
  const stamp = crypto.randomBytes(3).toString("hex");
  const names = [`b-${stamp}.txt`, `a-${stamp}.txt`, `c-${stamp}.txt`];
  for (const [i, n] of names.entries()) await api("PUT", `/api/files?name=${n}`, "x".repeat(100 * (i + 1)));
  await page.keyboard.press("l");
  await page.fill("#query", `name:${stamp}`);
  await page.press("#query", "Enter");
  await page.waitForFunction(() => document.querySelectorAll("#list-view tbody tr[data-id]").length === 3, null, { timeout: 10000 });
  const order = () => page.locator("#list-view tbody .file-name").allTextContents();
  await page.click("#list-view th.col-name button");
  await page.waitForFunction(() => document.querySelector("#list-view th.col-name").getAttribute("aria-sort") === "ascending");
  await page.waitForFunction((first) => document.querySelector("#list-view tbody .file-name")?.textContent === first, names[1]);
  assert.deepEqual(await order(), [names[1], names[0], names[2]]);
  await page.click("#list-view th.col-size button");
  await page.waitForFunction((first) => document.querySelector("#list-view tbody .file-name")?.textContent === first, names[2]);
  assert.equal(await page.getAttribute("#list-view th.col-size", "aria-sort"), "descending");

  // Keyboard: focus the first row, select it and the next with Space.
  await page.locator("#list-view tbody tr[data-id]").first().focus();
  await page.keyboard.press("Space");
  await page.keyboard.press("ArrowDown");
  await page.keyboard.press("Space");
  await page.locator(".bulk strong", { hasText: "2 selected" }).waitFor();
  const bulkAdd = page.locator(".bulk .tag-input").first();
  await bulkAdd.fill(`bulk-${stamp}`);
  await bulkAdd.press("Enter");
  await page.waitForFunction(async (tag) => {
    const r = await fetch(`/api/files?q=${encodeURIComponent(tag)}`);
    return (await r.json()).total === 2;
  }, `bulk-${stamp}`, { timeout: 10000 });

  await page.locator(".bulk .btn-danger").click();
  await page.locator("dialog .btn-danger").click();
  await page.waitForFunction(() => document.querySelectorAll("#list-view tbody tr[data-id]").length === 1, null, { timeout: 10000 });
  const { total } = await api("GET", `/api/files?q=${encodeURIComponent(`name:${stamp}`)}`);
  assert.equal(total, 1);
  await page.fill("#query", "");
  await page.press("#query", "Enter");
  await page.keyboard.press("g");
});

test("an upload interrupted by reloading the page resumes where it stopped", async () => {
  const name = `big-${crypto.randomBytes(3).toString("hex")}.bin`;
  const bytes = crypto.randomBytes(20 * 1024 * 1024 + 12345);
  const file = path.join(tmp, name);
  fs.writeFileSync(file, bytes);
  const patches = [];
  const posts = [];
  // Slow the chunks down so that the reload lands mid-upload.
  await page.route("**/api/uploads/**", async (route) => {
    const req = route.request();
    if (req.method() === "PATCH") {
      patches.push(Number(req.headers()["upload-offset"]));
      await new Promise((r) => setTimeout(r, 700));
    }
    if (req.method() === "POST") posts.push(req.url());
    await route.continue();
  });
  await page.setInputFiles("#upload-files", file);
  await page.waitForResponse((r) => r.request().method() === "PATCH" && r.status() === 204, { timeout: 20000 });
  await page.reload();
  await page.locator(".upload-interrupted", { hasText: name }).waitFor({ timeout: 10000 });
  const postsBefore = posts.length;
  const patchesBefore = patches.length;
  await page.setInputFiles("#upload-files", file);
  await page.locator(".upload-item.upload-done", { hasText: name }).waitFor({ timeout: 60000 });
  await page.unroute("**/api/uploads/**");
  assert.equal(posts.length, postsBefore, "no new upload was created after the reload");
  assert.ok(patches[patchesBefore] > 0, `the first chunk after the reload starts past 0 (offsets ${patches})`);
  assert.match(await page.locator(".upload-item", { hasText: name }).textContent(), /resumed/);
  const record = await fileByName(name);
  assert.ok(record);
  assert.deepEqual(await api("GET", `/api/files/${record.id}/content`), bytes);
});

test("keyboard: shortcuts reach the query bar and the views; the panel closes with Escape", async () => {
  await page.locator("body").press("/");
  assert.equal(await page.evaluate(() => document.activeElement.id), "query");
  await page.locator("#query").press("Tab");
  await page.evaluate(() => document.activeElement.blur());
  await page.keyboard.press("l");
  assert.equal(await page.getAttribute("#tab-list", "aria-selected"), "true");
  await page.keyboard.press("g");
  assert.equal(await page.getAttribute("#tab-graph", "aria-selected"), "true");
  if (uploaded) {
    await page.goto(`${base}/#file=${uploaded.id}`);
    await page.locator("#panel-title", { hasText: uploaded.name }).waitFor();
    await page.keyboard.press("Escape");
    await page.locator("#panel").waitFor({ state: "hidden" });
  }
});

test("monitor: the server's figures chart live as traffic runs, and fit a 360 px window", async () => {
  await page.goto(`${base}/#view=monitor`);
  const card = (id) => `.monitor-card[data-figure="${id}"]`;
  const points = (id) => page.$eval(card(id), (el) => Number(el.dataset.points));
  const last = () => page.$eval(card("requests"), (el) => Number(el.dataset.last));
  /** Waits until the request chart has drawn `n` more points than at `t` (its last point then). */
  const moved = (t, n) => page.waitForFunction(([t, n]) => Number(document.querySelector('.monitor-card[data-figure="requests"]').dataset.last) >= t + n * 1000, [t, n], { timeout: 20000 });
  await page.locator(`${card("requests")} canvas`).first().waitFor({ timeout: 20000 });
  const before = await last();
  for (let i = 0; i < 20; i++) await api("GET", "/api/files?limit=1");
  // The charts move: points keep arriving, and the request rate shows the traffic.
  await moved(before, 2);
  assert.match(await page.textContent(`${card("requests")} .monitor-latest`), /2xx [\d.]+\/s/);
  assert.ok((await points("cpu_peak")) > 0, "the peak CPU chart has points");
  assert.match(await page.getAttribute(`${card("cpu_peak")} .uplot`, "aria-label"), /Peak single-CPU use over the last 5 minutes; now busiest CPU \d/);
  // A figure without values says why (no accelerator attached) instead of drawing an empty chart.
  const accel = page.locator(card("accel"));
  if (await accel.locator(".monitor-unavailable").count()) assert.match(await accel.textContent(), /accelerator/i);
  else await accel.locator("canvas").first().waitFor();

  await page.selectOption("#monitor-window", "1");
  assert.match(await page.getAttribute(`${card("cpu_peak")} .uplot`, "aria-label"), /over the last 1 minute;/);

  await page.setViewportSize({ width: 360, height: 740 });
  try {
    // The cards stack in one column and every chart shrinks to fit: nothing scrolls sideways.
    await page.waitForFunction(() => [...document.querySelectorAll(".monitor-card canvas")].every((c) => c.getBoundingClientRect().right <= 360));
    const boxes = await page.$$eval(".monitor-card", (els) => els.map((e) => e.getBoundingClientRect().toJSON()));
    assert.ok(boxes.length >= 6, `${boxes.length} cards`);
    assert.ok(boxes.every((b) => b.left === boxes[0].left && b.right <= 360), JSON.stringify(boxes));
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= 360), "no horizontal scroll");
    await moved(await last(), 1);
  } finally {
    await page.setViewportSize({ width: 1360, height: 860 });
  }
});
