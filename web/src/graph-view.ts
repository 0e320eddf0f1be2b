// The graph view: files and tags as nodes, file–tag edges, drawn with WebGL by sigma over a
// graphology graph, laid out by ForceAtlas2 in a web worker.
//
// Interaction lives in three small sets read by sigma's reducers: `hover` (a node and its
// neighbours), `focus` (a clicked tag's neighbourhood) and `matches` (the find box). Reducers only
// change how a node is drawn; the graph itself changes only on load and on live events.

import Graph from "graphology";
import Sigma from "sigma";
import { EdgeLineProgram, NodePointProgram } from "sigma/rendering";
import FA2Layout from "graphology-layout-forceatlas2/worker";
import { inferSettings } from "graphology-layout-forceatlas2";
import { api, ApiError } from "./api";
import { debounce, h, setChildren, toast } from "./dom";
import { live, openFile, query } from "./store";
import type { FileKind, FileRecord, GraphData, TagKind } from "./types";

/** Colours of file kinds and tag kinds; the legend shows the same table. */
export const FILE_COLORS: Record<FileKind, string> = {
  document: "#2563eb",
  image: "#16a34a",
  audio: "#9333ea",
  video: "#dc2626",
  archive: "#a16207",
  code: "#0891b2",
  data: "#ea580c",
  other: "#64748b",
};
export const TAG_COLORS: Record<TagKind, string> = { auto: "#f59e0b", user: "#db2777" };
const FADED = "#e5e7eb";
const GRAPH_LIMIT = 20000;

interface NodeAttrs {
  x: number;
  y: number;
  size: number;
  color: string;
  label: string;
  nodeType: "file" | "tag";
  kind: string;
  forceLabel?: boolean;
  highlighted?: boolean;
  zIndex?: number;
  hidden?: boolean;
}

/** Timings read by the benchmark (web/bench) and the tests. */
export const perf = { graphRequested: 0, graphReceived: 0, graphBuilt: 0, firstFrame: 0, frames: 0, renderMs: 0 };

/** A stable pseudo-random number in [0, 1) from a string, so a reload draws the same first layout. */
function hash01(s: string, salt = 0): number {
  let h = 2166136261 ^ salt;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return ((h >>> 0) % 100000) / 100000;
}

/** Size by degree, smaller as the graph grows so that ten thousand nodes do not cover each other. */
function nodeSize(degree: number, order: number): number {
  const scale = Math.max(0.3, Math.min(1, Math.sqrt(800 / Math.max(order, 1))));
  return Math.min(4 + 2.2 * Math.sqrt(degree), 30) * scale;
}

export class GraphView {
  private graph = new Graph<NodeAttrs>({ type: "undirected", multi: false });
  private sigma: Sigma<NodeAttrs> | null = null;
  private layout: FA2Layout | null = null;
  /** The graph ForceAtlas2 works on: a copy, whose positions are copied back at a pace the renderer can take. */
  private layoutGraph: Graph<NodeAttrs> | null = null;
  private layoutTimer: ReturnType<typeof setTimeout> | undefined;
  private syncTimer: ReturnType<typeof setTimeout> | undefined;
  /** Moving average of one render's duration (ms); software WebGL makes it 100× a GPU's. */
  private renderMs = 0;
  private renderStart = 0;
  private indexStale = false;
  private hovered: string | null = null;
  private hoverSet = new Set<string>();
  private focused: string | null = null;
  private focusSet = new Set<string>();
  private matches: string[] = [];
  private matchSet = new Set<string>();
  private matchIndex = -1;
  private loadSeq = 0;
  private readonly stage: HTMLElement;
  private readonly status: HTMLElement;
  private readonly findInput: HTMLInputElement;
  private readonly findCount: HTMLElement;
  private readonly layoutButton: HTMLButtonElement;
  private readonly reloadSoon = debounce(() => void this.load(), 800);

  constructor(root: HTMLElement) {
    this.stage = h("div", {
      class: "graph-stage",
      role: "img",
      "aria-label": "Graph of files and their tags. The list view shows the same files as a table.",
    });
    this.status = h("p", { class: "graph-status", role: "status", "aria-live": "polite" });
    this.findInput = h("input", {
      type: "search",
      id: "graph-find",
      class: "graph-find",
      placeholder: "Find in graph…",
      "aria-label": "Find files and tags in the graph",
      autocomplete: "off",
      oninput: debounce(() => this.find(this.findInput.value), 120),
      onkeydown: (e: KeyboardEvent) => this.onFindKey(e),
    });
    this.findCount = h("span", { class: "graph-find-count", "aria-live": "polite" });
    this.layoutButton = h("button", { class: "btn btn-ghost", type: "button", onclick: () => this.toggleLayout() }, "Pause layout");
    const toolbar = h(
      "div",
      { class: "graph-toolbar", role: "toolbar", "aria-label": "Graph tools" },
      h("div", { class: "graph-find-wrap" }, this.findInput, this.findCount),
      h("button", { class: "btn btn-ghost icon", type: "button", title: "Zoom in (+)", "aria-label": "Zoom in", onclick: () => this.zoom(1 / 1.5) }, "+"),
      h("button", { class: "btn btn-ghost icon", type: "button", title: "Zoom out (−)", "aria-label": "Zoom out", onclick: () => this.zoom(1.5) }, "−"),
      h("button", { class: "btn btn-ghost", type: "button", title: "Fit the whole graph (0)", onclick: () => this.fit() }, "Fit"),
      this.layoutButton,
    );
    root.append(this.stage, toolbar, this.legend(), this.status);
    query.subscribe(() => void this.load());
    live.subscribe((e) => {
      if (query.value || e.type === "resync") {
        // A query decides membership on the server; ask it again rather than guess.
        this.reloadSoon();
      } else if (e.type === "file.deleted") {
        this.removeFile(e.id);
      } else {
        this.upsertFile(e.file);
      }
    });
    openFile.subscribe(() => this.redraw());
    for (const event of ["nodeAdded", "nodeDropped", "edgeAdded", "edgeDropped", "cleared"] as const) {
      this.graph.on(event, () => (this.indexStale = true));
    }
  }

  private legend(): HTMLElement {
    const item = (color: string, label: string, shape = "dot") =>
      h("li", {}, h("span", { class: `legend-${shape}`, style: `background:${color}`, "aria-hidden": "true" }), label);
    return h(
      "details",
      { class: "graph-legend" },
      h("summary", {}, "Legend"),
      h(
        "ul",
        {},
        item(TAG_COLORS.auto, "tag (automatic)"),
        item(TAG_COLORS.user, "tag (yours)"),
        ...Object.entries(FILE_COLORS).map(([k, c]) => item(c, `${k} file`)),
      ),
    );
  }

  /** Fetches the graph for the current query and draws it. */
  async load() {
    const seq = ++this.loadSeq;
    this.status.textContent = "Loading graph…";
    perf.graphRequested = performance.now();
    let data: GraphData;
    try {
      data = await api.graph(query.value, GRAPH_LIMIT);
    } catch (e) {
      if (seq !== this.loadSeq) return;
      this.status.textContent = "";
      if (!(e instanceof ApiError && e.position !== undefined)) toast(`Graph: ${(e as Error).message}`, "error");
      return;
    }
    if (seq !== this.loadSeq) return;
    perf.graphReceived = performance.now();
    this.build(data);
  }

  private build(data: GraphData) {
    this.dropLayout();
    const g = this.graph;
    g.clear();
    this.focused = null;
    this.focusSet.clear();
    this.hovered = null;
    this.hoverSet.clear();
    for (const n of data.nodes) {
      const a = hash01(n.id) * Math.PI * 2;
      const r = Math.sqrt(hash01(n.id, 7)) * 100;
      g.addNode(n.id, {
        x: Math.cos(a) * r,
        y: Math.sin(a) * r,
        size: 4,
        color: n.type === "file" ? FILE_COLORS[n.kind] ?? FILE_COLORS.other : TAG_COLORS[n.kind] ?? TAG_COLORS.auto,
        label: n.name,
        nodeType: n.type,
        kind: n.kind,
      });
    }
    for (const e of data.edges) {
      if (g.hasNode(e.source) && g.hasNode(e.target) && !g.hasEdge(e.source, e.target)) {
        g.addEdge(e.source, e.target, { weight: e.weight || 1, color: e.kind === "user" ? "#f9a8d4" : "#cbd5e1", size: 0.6 });
      }
    }
    // No "size" hint: sigma would then repaint without indexing, and these nodes are not indexed yet.
    g.updateEachNodeAttributes((n, a) => ({ ...a, size: nodeSize(g.degree(n), g.order) }));
    perf.graphBuilt = performance.now();
    this.ensureSigma();
    this.sigma!.getCamera().setState({ x: 0.5, y: 0.5, ratio: 1, angle: 0 });
    this.refreshStatus(data.truncated);
    if (this.findInput.value) this.find(this.findInput.value);
    this.runLayout(Math.min(3000 + g.order / 2, 15000));
  }

  private refreshStatus(truncated = false) {
    const files = this.graph.filterNodes((_, a) => a.nodeType === "file").length;
    const tags = this.graph.order - files;
    if (this.graph.order === 0) {
      setChildren(
        this.status,
        h("span", { class: "empty" }, query.value ? "No file matches this query." : "No files yet — drop some anywhere on the page, or use Upload."),
      );
    } else {
      this.status.textContent = `${files} files · ${tags} tags · ${this.graph.size} links${truncated ? " (truncated: refine the query to see all)" : ""}`;
    }
    this.stage.setAttribute("aria-label", `Graph of ${files} files and ${tags} tags. The list view shows the same files as a table.`);
  }

  private ensureSigma() {
    if (this.sigma) return;
    const sigma = new Sigma<NodeAttrs>(this.graph, this.stage, {
      renderEdgeLabels: false,
      allowInvalidContainer: true,
      stagePadding: 40,
      labelDensity: 0.45,
      labelGridCellSize: 110,
      labelRenderedSizeThreshold: 7,
      labelFont: "system-ui, sans-serif",
      labelSize: 12,
      labelColor: { color: "#1f2937" },
      zIndex: true,
      minCameraRatio: 0.02,
      maxCameraRatio: 8,
      defaultEdgeColor: "#cbd5e1",
      // One vertex per node and two per edge, not instanced quads: several times cheaper where
      // WebGL runs on the CPU (SwiftShader), and the same picture for edges this thin.
      defaultNodeType: "point",
      defaultEdgeType: "line",
      nodeProgramClasses: { point: NodePointProgram },
      edgeProgramClasses: { line: EdgeLineProgram },
      nodeReducer: (node, data) => this.reduceNode(node, data),
      edgeReducer: (edge, data) => this.reduceEdge(edge, data),
    });
    sigma.on("beforeRender", () => (this.renderStart = performance.now()));
    sigma.on("afterRender", () => {
      perf.frames++;
      // A render's cost is its script time plus the GPU's (or SwiftShader's) work, which shows as
      // the delay of the next animation frame: measure up to that frame.
      const start = this.renderStart;
      requestAnimationFrame(() => {
        const ms = performance.now() - start;
        this.renderMs = this.renderMs ? this.renderMs * 0.7 + ms * 0.3 : ms;
        perf.renderMs = this.renderMs;
      });
      if (!perf.firstFrame && this.graph.order > 0) perf.firstFrame = performance.now();
      const heavy = this.heavy;
      if (sigma.getSetting("hideEdgesOnMove") !== heavy) {
        sigma.setSetting("hideEdgesOnMove", heavy);
        sigma.setSetting("hideLabelsOnMove", heavy);
      }
    });
    this.installTransformPan(sigma);
    sigma.on("enterNode", ({ node }) => this.setHover(node));
    sigma.on("leaveNode", () => this.setHover(null));
    sigma.on("clickNode", ({ node }) => this.activate(node));
    sigma.on("clickStage", () => this.setFocus(null));
    new ResizeObserver(() => {
      sigma.resize();
      this.redraw();
    }).observe(this.stage);
    this.sigma = sigma;
    (window as unknown as { __disgrafs: unknown }).__disgrafs = { perf, sigma, graph: this.graph };
  }

  /**
   * Re-applies the reducers (hover, focus, matches). Skips re-indexing the graph, which is the
   * costly part, unless nodes or edges came or went since sigma last indexed it.
   */
  private redraw() {
    if (!this.sigma) return;
    this.sigma.refresh(this.indexStale ? {} : { skipIndexation: true });
    this.indexStale = false;
  }

  private reduceNode(node: string, data: NodeAttrs): Partial<NodeAttrs> {
    const res: Partial<NodeAttrs> = { ...data };
    const ring = this.hovered ? this.hoverSet : this.focused ? this.focusSet : null;
    if (ring && !ring.has(node)) {
      res.color = FADED;
      res.label = "";
      res.zIndex = 0;
    } else if (ring) {
      res.zIndex = 1;
      if (node === this.hovered || node === this.focused || ring.size < 40) res.forceLabel = true;
    }
    if (this.matchSet.has(node) || node === `f:${openFile.value}`) {
      res.highlighted = true;
      res.forceLabel = true;
      res.zIndex = 2;
      res.color = data.color;
      res.label = data.label;
    }
    return res;
  }

  private reduceEdge(edge: string, data: Record<string, unknown>): Record<string, unknown> {
    const center = this.hovered ?? this.focused;
    if (center && !this.graph.hasExtremity(edge, center)) return { ...data, hidden: true };
    if (center) return { ...data, color: "#64748b", size: 1 };
    return data;
  }

  private neighbourhood(node: string): Set<string> {
    const set = new Set<string>([node]);
    this.graph.forEachNeighbor(node, (n) => set.add(n));
    return set;
  }

  private setHover(node: string | null) {
    this.hovered = node;
    this.hoverSet = node ? this.neighbourhood(node) : new Set();
    this.redraw();
  }

  /** Click or Enter on a node: a tag focuses its neighbourhood, a file opens its panel. */
  private activate(node: string) {
    if (!this.graph.hasNode(node)) return;
    if (this.graph.getNodeAttribute(node, "nodeType") === "tag") this.setFocus(node === this.focused ? null : node);
    else openFile.set(node.slice(2));
  }

  private setFocus(node: string | null) {
    this.focused = node;
    this.focusSet = node ? this.neighbourhood(node) : new Set();
    this.redraw();
    if (node) this.frame([...this.focusSet]);
  }

  /** Moves the camera so that the given nodes fill the view. */
  private frame(nodes: string[]) {
    const sigma = this.sigma;
    if (!sigma || nodes.length === 0) return;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const n of nodes) {
      const d = sigma.getNodeDisplayData(n);
      if (!d) continue;
      x0 = Math.min(x0, d.x); x1 = Math.max(x1, d.x);
      y0 = Math.min(y0, d.y); y1 = Math.max(y1, d.y);
    }
    if (!Number.isFinite(x0)) return;
    const ratio = Math.min(Math.max(Math.max(x1 - x0, y1 - y0) * 1.4, 0.25), 1.2);
    void sigma.getCamera().animate({ x: (x0 + x1) / 2, y: (y0 + y1) / 2, ratio }, { duration: 400 });
  }

  /** Search as you type: highlights the nodes whose label contains the text and centres on them. */
  find(text: string) {
    const t = text.trim().toLowerCase();
    this.matches = [];
    if (t) {
      this.graph.forEachNode((n, a) => {
        if (a.label.toLowerCase().includes(t)) this.matches.push(n);
      });
      // Exact and prefix matches first, then the best connected.
      this.matches.sort((a, b) => {
        const la = this.graph.getNodeAttribute(a, "label").toLowerCase();
        const lb = this.graph.getNodeAttribute(b, "label").toLowerCase();
        const rank = (l: string) => (l === t ? 0 : l.startsWith(t) ? 1 : 2);
        return rank(la) - rank(lb) || this.graph.degree(b) - this.graph.degree(a);
      });
    }
    this.matchSet = new Set(this.matches.slice(0, 200));
    this.matchIndex = -1;
    this.findCount.textContent = t ? (this.matches.length ? `${this.matches.length} found` : "none") : "";
    this.redraw();
    if (this.matchSet.size === 1) this.frame([...this.neighbourhood(this.matches[0])]);
    else if (this.matchSet.size) this.frame([...this.matchSet]);
  }

  private onFindKey(e: KeyboardEvent) {
    if (e.key === "Enter" && this.matches.length) {
      e.preventDefault();
      if (e.shiftKey || this.matchIndex < 0) {
        this.matchIndex = (this.matchIndex + (e.shiftKey ? -1 : 1) + this.matches.length) % this.matches.length;
      } else {
        this.activate(this.matches[this.matchIndex]);
        return;
      }
      const node = this.matches[this.matchIndex];
      this.findCount.textContent = `${this.matchIndex + 1} of ${this.matches.length}: ${this.graph.getNodeAttribute(node, "label")} — Enter opens, Shift+Enter next`;
      this.setHover(node);
      this.frame([...this.hoverSet]);
    } else if (e.key === "ArrowDown" && this.matches.length) {
      e.preventDefault();
      this.matchIndex = (this.matchIndex + 1) % this.matches.length;
      const node = this.matches[this.matchIndex];
      this.findCount.textContent = `${this.matchIndex + 1} of ${this.matches.length}: ${this.graph.getNodeAttribute(node, "label")}`;
      this.setHover(node);
      this.frame([...this.hoverSet]);
    } else if (e.key === "Escape") {
      this.findInput.value = "";
      this.find("");
      this.setHover(null);
    }
  }

  zoom(factor: number) {
    const camera = this.sigma?.getCamera();
    if (camera) void camera.animate({ ratio: camera.ratio * factor }, { duration: 200 });
  }

  fit() {
    void this.sigma?.getCamera().animatedReset({ duration: 300 });
  }

  focusFind() {
    this.findInput.focus();
    this.findInput.select();
  }

  /** Renders are slow (software WebGL, a big graph): pan by moving the last frame, render less. */
  private get heavy(): boolean {
    return this.renderMs > 40;
  }

  private runLayout(ms: number) {
    if (this.graph.order === 0) return;
    if (!this.layout) {
      this.layoutGraph = this.graph.copy();
      const settings = inferSettings(this.layoutGraph);
      this.layout = new FA2Layout(this.layoutGraph, {
        // Strong gravity keeps small graphs' separate islands on screen; big ones hold together anyway.
        settings: { ...settings, barnesHutOptimize: this.graph.order > 1500, strongGravityMode: this.graph.order < 2000, gravity: this.graph.order < 2000 ? 0.5 : 1 },
      });
    }
    this.layout.start();
    this.layoutButton.textContent = "Pause layout";
    clearTimeout(this.layoutTimer);
    this.layoutTimer = setTimeout(() => this.stopLayout(), ms);
    this.scheduleSync();
  }

  /** Copies the layout's positions to the drawn graph, then waits a few renders' time. */
  private scheduleSync() {
    clearTimeout(this.syncTimer);
    const wait = Math.max(16, this.renderMs * 3);
    this.syncTimer = setTimeout(() => {
      requestAnimationFrame(() => {
        this.syncPositions();
        if (this.layout?.isRunning()) this.scheduleSync();
      });
    }, wait);
  }

  private syncPositions() {
    const from = this.layoutGraph;
    if (!from) return;
    this.graph.updateEachNodeAttributes(
      (node, attrs) => {
        if (!from.hasNode(node)) return attrs;
        const p = from.getNodeAttributes(node);
        return { ...attrs, x: p.x, y: p.y };
      },
      { attributes: ["x", "y"] },
    );
  }

  private stopLayout() {
    clearTimeout(this.layoutTimer);
    this.layout?.stop();
    this.syncPositions();
    this.layoutButton.textContent = "Run layout";
  }

  /** Ends the layout and forgets its copy (the graph changed: the next run copies it anew). */
  private dropLayout() {
    this.stopLayout();
    clearTimeout(this.syncTimer);
    this.layout?.kill();
    this.layout = null;
    this.layoutGraph = null;
  }

  private toggleLayout() {
    if (this.layout?.isRunning()) this.stopLayout();
    else this.runLayout(8000);
  }

  /**
   * Panning when renders are slow: a drag on the empty stage moves the rendered layers with a CSS
   * transform (the compositor does it at the screen's rate) and sets the camera once, on release.
   * With fast renders sigma pans by itself, redrawing every frame.
   */
  private installTransformPan(sigma: Sigma<NodeAttrs>) {
    let start: { x: number; y: number; node: string | null } | null = null;
    let moved = false;
    const move = (e: MouseEvent) => {
      if (!start) return;
      e.stopPropagation();
      const dx = e.clientX - start.x;
      const dy = e.clientY - start.y;
      moved ||= Math.abs(dx) + Math.abs(dy) > 3;
      this.stage.style.transform = `translate(${dx}px, ${dy}px)`;
    };
    const up = (e: MouseEvent) => {
      if (!start) return;
      e.stopPropagation();
      window.removeEventListener("mousemove", move, true);
      window.removeEventListener("mouseup", up, true);
      const { width, height } = sigma.getDimensions();
      const dx = e.clientX - start.x;
      const dy = e.clientY - start.y;
      const node = start.node;
      start = null;
      this.stage.classList.remove("panning");
      if (!moved) {
        // A click, which sigma did not see: act as its clickNode / clickStage would.
        this.stage.style.transform = "";
        if (node) this.activate(node);
        else this.setFocus(null);
        return;
      }
      const target = sigma.viewportToFramedGraph({ x: width / 2 - dx, y: height / 2 - dy });
      // Drop the transform only when the frame at the new camera is drawn: no jump back.
      sigma.once("afterRender", () => (this.stage.style.transform = ""));
      sigma.getCamera().setState({ x: target.x, y: target.y });
    };
    this.stage.addEventListener(
      "mousedown",
      (e) => {
        if (!this.heavy || e.button !== 0) return;
        e.stopPropagation();
        start = { x: e.clientX, y: e.clientY, node: this.hovered };
        moved = false;
        this.stage.classList.add("panning");
        window.addEventListener("mousemove", move, true);
        window.addEventListener("mouseup", up, true);
      },
      true,
    );
  }

  /** Adds a file (or updates its tags) from a live event, without reloading the graph. */
  private upsertFile(file: FileRecord) {
    const g = this.graph;
    const id = `f:${file.id}`;
    const wanted = new Set(file.tags.map((t) => `t:${t.name}`));
    if (!g.hasNode(id)) {
      // Start near one of its tags, or near the middle: the layout pulls it into place.
      const anchor = [...wanted].find((t) => g.hasNode(t));
      const base = anchor ? g.getNodeAttributes(anchor) : { x: 0, y: 0 };
      g.addNode(id, {
        x: base.x + (hash01(id) - 0.5) * 10,
        y: base.y + (hash01(id, 3) - 0.5) * 10,
        size: 4,
        color: FILE_COLORS[file.kind] ?? FILE_COLORS.other,
        label: file.name,
        nodeType: "file",
        kind: file.kind,
      });
    } else {
      g.mergeNodeAttributes(id, { label: file.name, color: FILE_COLORS[file.kind] ?? FILE_COLORS.other, kind: file.kind });
    }
    const touched = new Set<string>([id]);
    for (const t of g.neighbors(id)) {
      if (!wanted.has(t)) {
        g.dropEdge(id, t);
        touched.add(t);
      }
    }
    for (const tag of file.tags) {
      const t = `t:${tag.name}`;
      if (!g.hasNode(t)) {
        const p = g.getNodeAttributes(id);
        g.addNode(t, {
          x: p.x + (hash01(t) - 0.5) * 10,
          y: p.y + (hash01(t, 5) - 0.5) * 10,
          size: 4,
          color: TAG_COLORS[tag.kind],
          label: tag.name,
          nodeType: "tag",
          kind: tag.kind,
        });
      }
      if (!g.hasEdge(id, t)) {
        g.addEdge(id, t, { weight: tag.weight || 1, color: tag.kind === "user" ? "#f9a8d4" : "#cbd5e1", size: 0.6 });
      }
      touched.add(t);
    }
    this.afterChange(touched);
  }

  private removeFile(fileId: string) {
    const id = `f:${fileId}`;
    if (!this.graph.hasNode(id)) return;
    const touched = new Set(this.graph.neighbors(id));
    this.graph.dropNode(id);
    this.afterChange(touched);
  }

  /** Resizes touched nodes, drops tags left without files, and lets the layout settle them. */
  private afterChange(touched: Set<string>) {
    const g = this.graph;
    for (const n of touched) {
      if (!g.hasNode(n)) continue;
      const degree = g.degree(n);
      if (degree === 0 && g.getNodeAttribute(n, "nodeType") === "tag") g.dropNode(n);
      else g.setNodeAttribute(n, "size", nodeSize(degree, g.order));
    }
    this.ensureSigma();
    this.refreshStatus();
    this.dropLayout();
    this.runLayout(g.order > 3000 ? 1500 : 2500);
  }

  /** Tells the renderer that its container changed size (the view became visible). */
  resize() {
    this.sigma?.resize();
    this.redraw();
  }
}
