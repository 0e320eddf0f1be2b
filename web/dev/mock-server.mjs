// A stand-in for `disgrafs serve`, for developing the page and running its browser tests and
// benchmark where the real binary is not built. In memory, no dependencies; it follows the API
// contract closely enough for the page (files, tags, related, graph, query errors with position,
// Range downloads, SSE events, tus 1.0 core + creation + termination) but it is not the server.
//
//   node dev/mock-server.mjs [--port 7878] [--dist dist] [--synthetic N]
//
// --synthetic N fills it with N generated files (five tags each from a Zipf-like pool), the
// benchmark's 10,000-file graph. It prints `listening on http://127.0.0.1:PORT` when ready.

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const PORT = Number(args.port ?? 7878);
const DIST = path.resolve(args.dist ?? new URL("../dist", import.meta.url).pathname);

const files = new Map(); // id → { record, bytes }
const uploads = new Map(); // tus id → { length, metadata, chunks: Buffer[], offset }
const clients = new Set();
let seq = 0;

const KINDS = { image: /^image\//, audio: /^audio\//, video: /^video\//, archive: /zip|tar|gzip|7z/, document: /pdf|msword|officedocument|markdown|text\/plain/, code: /javascript|typescript|x-rust|x-python|x-c|json/ };
const MIME = { txt: "text/plain", md: "text/markdown", json: "application/json", png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif", svg: "image/svg+xml", pdf: "application/pdf", mp3: "audio/mpeg", wav: "audio/wav", mp4: "video/mp4", webm: "video/webm", zip: "application/zip", rs: "text/x-rust", py: "text/x-python", js: "text/javascript", ts: "text/typescript", csv: "text/csv", html: "text/html", bin: "application/octet-stream" };

function mimeOf(name, given) {
  const ext = name.includes(".") ? name.split(".").pop().toLowerCase() : "";
  return MIME[ext] ?? (given && given !== "application/octet-stream" ? given : "application/octet-stream");
}
function kindOf(mime, name) {
  if (/\.(rs|py|js|ts|c|go|java)$/i.test(name)) return "code";
  if (/\.(csv|tsv|json)$/i.test(name)) return "data";
  for (const [k, re] of Object.entries(KINDS)) if (re.test(mime)) return k;
  return mime.startsWith("text/") ? "document" : "other";
}

function createFile(name, bytes, given) {
  const id = `${Date.now().toString(36)}${(++seq).toString(36).padStart(4, "0")}`;
  const mime = mimeOf(name, given);
  const now = new Date().toISOString();
  const record = { id, name, folder: "", size: bytes.length, hash: crypto.createHash("sha256").update(bytes).digest("hex"), mime, kind: kindOf(mime, name), created: now, modified: now, tags: [], tagging: "pending" };
  files.set(id, { record, bytes, hidden: new Set() });
  emit("file.created", { id });
  setTimeout(() => autoTag(id), 300);
  return record;
}

function autoTag(id) {
  const f = files.get(id);
  if (!f) return;
  const r = f.record;
  const words = r.name.toLowerCase().replace(/\.[^.]+$/, "").split(/[^a-z0-9]+/).filter((w) => w.length > 2);
  const text = r.mime.startsWith("text/") ? f.bytes.subarray(0, 4096).toString("utf8").toLowerCase().match(/[a-z]{4,}/g) ?? [] : [];
  const counts = {};
  for (const w of text) counts[w] = (counts[w] ?? 0) + 1;
  const top = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 3).map(([w]) => w);
  const auto = [...new Set([r.kind, ...words, ...top])].filter((t) => !f.hidden.has(t));
  const user = r.tags.filter((t) => t.kind === "user");
  r.tags = [...auto.map((name) => ({ name, kind: "auto", extractor: "mock", weight: 1 })), ...user.filter((u) => !auto.includes(u.name))];
  r.tagging = "done";
  emit("file.tagged", { id: r.id });
}

// Like the server's: an event names a file by id; the page asks for the record.
function emit(event, data) {
  const msg = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  for (const c of clients) c.write(msg);
}

// ---- query language (a subset of the server's, with the same error shape) ----
class QueryError extends Error {
  constructor(message, position) { super(message); this.position = position; }
}
function tokenize(q) {
  const out = [];
  let i = 0;
  while (i < q.length) {
    if (/\s/.test(q[i])) { i++; continue; }
    if (q[i] === "(" || q[i] === ")") { out.push({ t: q[i], pos: i }); i++; continue; }
    if (q[i] === '"') {
      const end = q.indexOf('"', i + 1);
      if (end < 0) throw new QueryError("unterminated quoted phrase", i);
      out.push({ t: "word", v: q.slice(i + 1, end), pos: i }); i = end + 1; continue;
    }
    if ((q[i] === "-" || q[i] === "!") && i + 1 < q.length && !/\s/.test(q[i + 1])) { out.push({ t: "NOT", pos: i }); i++; continue; }
    let j = i;
    while (j < q.length && !/[\s()]/.test(q[j])) j++;
    const w = q.slice(i, j);
    out.push(["AND", "OR", "NOT"].includes(w) ? { t: w, pos: i } : { t: "word", v: w, pos: i });
    i = j;
  }
  return out;
}
function parse(q) {
  const toks = tokenize(q);
  let k = 0;
  const peek = () => toks[k];
  const or = () => {
    let l = and();
    while (peek()?.t === "OR") { k++; const r = and(); const a = l; l = (f) => a(f) || r(f); }
    return l;
  };
  const and = () => {
    let l = not();
    for (;;) {
      const p = peek();
      if (p?.t === "AND") { k++; const r = not(); const a = l; l = (f) => a(f) && r(f); }
      else if (p && (p.t === "word" || p.t === "NOT" || p.t === "(")) { const r = not(); const a = l; l = (f) => a(f) && r(f); }
      else return l;
    }
  };
  const not = () => {
    if (peek()?.t === "NOT") { k++; const e = not(); return (f) => !e(f); }
    return atom();
  };
  const atom = () => {
    const p = peek();
    if (!p) throw new QueryError("expected a tag, a field or '(' at the end of the query", q.length);
    if (p.t === "(") {
      k++;
      const e = or();
      if (peek()?.t !== ")") throw new QueryError("missing ')'", peek()?.pos ?? q.length);
      k++;
      return e;
    }
    if (p.t !== "word") throw new QueryError(`unexpected ${p.t}`, p.pos);
    k++;
    return term(p.v, p.pos);
  };
  const e = or();
  if (k < toks.length) throw new QueryError(`unexpected ${toks[k].t === "word" ? toks[k].v : toks[k].t}`, toks[k].pos);
  return e;
}
function term(w, pos) {
  const m = /^(size|created|modified)(>=|<=|>|<|=)(.+)$/.exec(w);
  if (m) {
    const [, field, op, raw] = m;
    let v;
    if (field === "size") {
      const s = /^(\d+(?:\.\d+)?)(B|KB|MB|GB)?$/i.exec(raw);
      if (!s) throw new QueryError(`bad size '${raw}'`, pos + field.length + op.length);
      v = Number(s[1]) * { B: 1, KB: 1024, MB: 1048576, GB: 1073741824 }[(s[2] ?? "B").toUpperCase()];
    } else {
      v = Date.parse(raw.length === 4 ? `${raw}-01-01` : raw);
      if (Number.isNaN(v)) throw new QueryError(`bad date '${raw}'`, pos + field.length + op.length);
    }
    const get = (f) => (field === "size" ? f.size : Date.parse(f[field]));
    return (f) => ({ ">": get(f) > v, ">=": get(f) >= v, "<": get(f) < v, "<=": get(f) <= v, "=": get(f) === v })[op];
  }
  const c = w.indexOf(":");
  if (c > 0) {
    const field = w.slice(0, c);
    const v = w.slice(c + 1).toLowerCase();
    switch (field) {
      case "name": return (f) => f.name.toLowerCase().includes(v);
      case "kind": return (f) => f.kind === v;
      case "mime": return (f) => (v.endsWith("/*") ? f.mime.startsWith(v.slice(0, -1)) : f.mime === v);
      case "ext": return (f) => f.name.toLowerCase().endsWith(`.${v}`);
      case "hash": return (f) => f.hash.startsWith(v);
      default: throw new QueryError(`unknown field '${field}'`, pos);
    }
  }
  const t = w.toLowerCase();
  return (f) => f.tags.some((x) => x.name === t);
}

// ---- HTTP ----
function json(res, status, body, headers = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(body === undefined ? "" : JSON.stringify(body));
}
function fail(res, status, code, error, position) {
  json(res, status, position === undefined ? { error, code } : { error, code, position });
}
async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks);
}
function selected(q) {
  const all = [...files.values()].map((f) => f.record);
  return q ? all.filter(parse(q)) : all;
}

const TUS = { "tus-resumable": "1.0.0", "access-control-expose-headers": "Upload-Offset, Upload-Length, Location, Disgrafs-File-Id, Tus-Resumable" };

// A stand-in for the server's ring of figures: one synthetic point a second since the mock started.
const metricsStart = Date.now();
const FIGURES = [
  ["cpu_peak", "Peak single-CPU use", "percent"], ["network", "Network throughput", "bytes_per_second"],
  ["requests", "Request rate", "per_second"], ["latency", "Latency quantiles", "milliseconds"],
  ["tagging", "Tagging queue", "count"], ["accel", "Accelerator counters", "per_second"],
];
function recentMetrics(since) {
  const points = [];
  for (let t = metricsStart + 1000; t <= Date.now(); t += 1000) {
    if (t <= since || Date.now() - t > 600_000) continue;
    const s = (t - metricsStart) / 1000;
    points.push({ t, values: {
      cpu_peak: { "busiest CPU": 40 + 30 * Math.sin(s / 10) }, network: { "lo rx": 5e4 * (1 + Math.sin(s / 7)), "lo tx": 5e4 },
      requests: { "2xx": 3 + (s % 5) }, latency: { p50: 1.2, p90: 3.4, p99: 9.8 }, tagging: { queued: s % 3, running: 1, failed: 0 },
    } });
  }
  const figures = FIGURES.map(([id, title, unit]) => ({ id, title, unit, ...(id === "accel" ? { unavailable: "No accelerator is attached (mock server)" } : {}) }));
  return { interval_ms: 1000, keep: 600, figures, points };
}

async function handle(req, res) {
  const url = new URL(req.url, "http://x");
  const p = url.pathname;
  try {
    if (p === "/api/health") return json(res, 200, { status: "ok", version: "mock" });
    if (p === "/api/events") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      res.write(": hello\n\n");
      clients.add(res);
      req.on("close", () => clients.delete(res));
      return;
    }
    if (p === "/api/metrics/recent") return json(res, 200, recentMetrics(Number(url.searchParams.get("since") ?? 0)));
    if (p === "/api/files" && req.method === "GET") {
      const list = selected(url.searchParams.get("q") ?? "");
      const sort = url.searchParams.get("sort") ?? "modified";
      const dir = url.searchParams.get("order") === "asc" ? 1 : -1;
      list.sort((a, b) => (a[sort] < b[sort] ? -dir : a[sort] > b[sort] ? dir : 0));
      const offset = Number(url.searchParams.get("offset") ?? 0);
      const limit = Number(url.searchParams.get("limit") ?? 100);
      return json(res, 200, { files: list.slice(offset, offset + limit), total: list.length });
    }
    if (p === "/api/files" && req.method === "PUT") {
      return json(res, 201, createFile(url.searchParams.get("name") ?? "file", await readBody(req), req.headers["content-type"]));
    }
    if (p === "/api/graph") {
      const list = selected(url.searchParams.get("q") ?? "");
      const nodes = [];
      const edges = [];
      const tagDeg = new Map();
      for (const f of list) for (const t of f.tags) tagDeg.set(t.name, { kind: t.kind, degree: (tagDeg.get(t.name)?.degree ?? 0) + 1 });
      for (const f of list) {
        nodes.push({ type: "file", id: `f:${f.id}`, name: f.name, kind: f.kind, mime: f.mime, size: f.size });
        for (const t of f.tags) edges.push({ source: `f:${f.id}`, target: `t:${t.name}`, kind: t.kind, weight: t.weight });
      }
      for (const [name, t] of tagDeg) nodes.push({ type: "tag", id: `t:${name}`, name, kind: t.kind, degree: t.degree });
      return json(res, 200, { nodes, edges, truncated: false });
    }
    if (p === "/api/tags") {
      const prefix = (url.searchParams.get("prefix") ?? "").toLowerCase();
      const counts = new Map();
      for (const { record } of files.values()) for (const t of record.tags) if (t.name.startsWith(prefix)) counts.set(t.name, { name: t.name, kind: t.kind, files: (counts.get(t.name)?.files ?? 0) + 1 });
      return json(res, 200, { tags: [...counts.values()].sort((a, b) => b.files - a.files).slice(0, Number(url.searchParams.get("limit") ?? 10)) });
    }
    let m = /^\/api\/files\/([^/]+)(\/content|\/tags|\/related)?$/.exec(p);
    if (m) {
      const f = files.get(decodeURIComponent(m[1]));
      if (!f) return fail(res, 404, "not_found", "no such file");
      const r = f.record;
      if (!m[2]) {
        if (req.method === "DELETE") {
          files.delete(r.id);
          emit("file.deleted", { id: r.id });
          res.writeHead(204);
          return res.end();
        }
        return json(res, 200, r);
      }
      if (m[2] === "/content") {
        const disp = url.searchParams.get("inline") ? "inline" : `attachment; filename*=UTF-8''${encodeURIComponent(r.name)}`;
        const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
        const head = { "content-type": r.mime, "content-disposition": disp, etag: `"${r.hash}"`, "accept-ranges": "bytes" };
        if (range) {
          const start = Number(range[1]);
          const end = Math.min(range[2] ? Number(range[2]) : r.size - 1, r.size - 1);
          if (start >= r.size) { res.writeHead(416, { "content-range": `bytes */${r.size}` }); return res.end(); }
          res.writeHead(206, { ...head, "content-range": `bytes ${start}-${end}/${r.size}`, "content-length": end - start + 1 });
          return res.end(req.method === "HEAD" ? undefined : f.bytes.subarray(start, end + 1));
        }
        res.writeHead(200, { ...head, "content-length": r.size });
        return res.end(req.method === "HEAD" ? undefined : f.bytes);
      }
      if (m[2] === "/tags") {
        const { tags } = JSON.parse((await readBody(req)).toString() || "{}");
        if (!Array.isArray(tags)) return fail(res, 422, "bad_tags", "tags must be a list");
        for (const raw of tags) {
          const name = String(raw).trim().toLowerCase();
          if (req.method === "POST") {
            f.hidden.delete(name);
            if (!r.tags.some((t) => t.name === name)) r.tags.push({ name, kind: "user", weight: 1 });
          } else {
            if (r.tags.some((t) => t.name === name && t.kind === "auto")) f.hidden.add(name);
            r.tags = r.tags.filter((t) => t.name !== name);
          }
        }
        r.modified = new Date().toISOString();
        emit("file.updated", { id: r.id });
        return json(res, 200, r);
      }
      const mine = new Set(r.tags.map((t) => t.name));
      const related = [...files.values()]
        .filter((o) => o.record.id !== r.id)
        .map((o) => ({ file: o.record, shared_tags: o.record.tags.map((t) => t.name).filter((t) => mine.has(t)) }))
        .filter((x) => x.shared_tags.length)
        .map((x) => ({ ...x, score: x.shared_tags.length }))
        .sort((a, b) => b.score - a.score)
        .slice(0, Number(url.searchParams.get("limit") ?? 10));
      return json(res, 200, { related });
    }
    if (p.startsWith("/api/uploads/")) return tus(req, res, p.slice("/api/uploads/".length));
    if (p.startsWith("/api/")) return fail(res, 404, "not_found", "no such endpoint");
    return serveStatic(res, p);
  } catch (e) {
    if (e instanceof QueryError) return fail(res, 400, "bad_query", e.message, e.position);
    console.error(e);
    return fail(res, 500, "internal", String(e));
  }
}

async function tus(req, res, id) {
  if (req.method === "OPTIONS") {
    res.writeHead(204, { ...TUS, "tus-version": "1.0.0", "tus-extension": "creation,termination", "tus-max-size": String(2 ** 40) });
    return res.end();
  }
  if (req.method === "POST" && !id) {
    const length = Number(req.headers["upload-length"]);
    const metadata = Object.fromEntries((req.headers["upload-metadata"] ?? "").split(",").filter(Boolean).map((kv) => {
      const [k, v] = kv.trim().split(" ");
      return [k, v ? Buffer.from(v, "base64").toString("utf8") : ""];
    }));
    if (!metadata.filename) return fail(res, 400, "missing_filename", "Upload-Metadata needs a filename");
    const uid = crypto.randomBytes(12).toString("hex");
    uploads.set(uid, { length, metadata, chunks: [], offset: 0, fileId: null });
    res.writeHead(201, { ...TUS, location: `/api/uploads/${uid}` });
    return res.end();
  }
  const u = uploads.get(id);
  if (!u) return fail(res, 404, "not_found", "no such upload");
  const done = u.fileId ? { "disgrafs-file-id": u.fileId } : {};
  if (req.method === "HEAD") {
    res.writeHead(200, { ...TUS, ...done, "upload-offset": String(u.offset), "upload-length": String(u.length), "cache-control": "no-store" });
    return res.end();
  }
  if (req.method === "DELETE") {
    uploads.delete(id);
    res.writeHead(204, TUS);
    return res.end();
  }
  if (req.method === "PATCH") {
    if (Number(req.headers["upload-offset"]) !== u.offset) return fail(res, 409, "offset_mismatch", `offset is ${u.offset}`);
    // Keep what arrives even if the request is cut: that is what makes a resume continue.
    for await (const c of req) {
      u.chunks.push(c);
      u.offset += c.length;
    }
    if (u.offset >= u.length && !u.fileId) {
      const rec = createFile(u.metadata.filename, Buffer.concat(u.chunks), u.metadata.filetype);
      u.fileId = rec.id;
      u.chunks = [];
    }
    res.writeHead(204, { ...TUS, "upload-offset": String(u.offset), ...(u.fileId ? { "disgrafs-file-id": u.fileId } : {}) });
    return res.end();
  }
  return fail(res, 405, "method_not_allowed", "method not allowed");
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };
function serveStatic(res, p) {
  const file = path.join(DIST, p === "/" ? "index.html" : path.normalize(p).replace(/^(\.\.[/\\])+/, ""));
  if (!file.startsWith(DIST) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return fail(res, 404, "not_found", "not found");
  res.writeHead(200, { "content-type": TYPES[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
}

function synthesize(n) {
  const pool = Math.max(50, Math.round(n * 0.15));
  const kinds = ["document", "image", "audio", "video", "archive", "code", "data", "other"];
  let s = 42;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  const now = Date.now();
  for (let i = 0; i < n; i++) {
    const id = `s${i.toString(36).padStart(5, "0")}`;
    const tags = new Set();
    while (tags.size < 5) tags.add(`tag${Math.floor(pool * rand() ** 2.2)}`);
    const kind = kinds[Math.floor(rand() * kinds.length)];
    const date = new Date(now - rand() * 3e10).toISOString();
    const record = { id, name: `file-${i}.${kind.slice(0, 3)}`, folder: "", size: Math.floor(rand() * 5e7), hash: crypto.createHash("sha256").update(id).digest("hex"), mime: "application/octet-stream", kind, created: date, modified: date, tags: [...tags].map((name) => ({ name, kind: "auto", extractor: "synthetic", weight: 1 })), tagging: "done" };
    files.set(id, { record, bytes: Buffer.alloc(0), hidden: new Set() });
  }
}
if (args.synthetic) synthesize(Number(args.synthetic));

const server = http.createServer((req, res) => void handle(req, res));
server.listen(PORT, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
