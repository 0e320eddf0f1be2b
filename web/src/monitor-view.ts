// The Monitor view: the Grafana dashboard's figures (docs/grafana/disgrafs.json) over the last
// minutes, for people without Grafana. The server samples them once a second into a bounded ring
// (GET /api/metrics/recent); while this view shows, it asks for the points newer than the last it
// has and draws one uPlot chart per figure.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api } from "./api";
import { formatSize, h, setChildren, toast } from "./dom";
import type { MetricsFigure, MetricsPoint, MetricsUnit } from "./types";

/** The windows the selector offers, in minutes (the server keeps ten). */
const WINDOWS = [1, 5, 10];
const DEFAULT_WINDOW = 5;
const CHART_HEIGHT = 170;
/** Colour-blind-safe palette (Okabe–Ito), then greys for the rest. */
const COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#000000", "#f0e442"];

function format(unit: MetricsUnit, v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const n = (x: number) => (x >= 100 || x === 0 ? Math.round(x).toString() : x.toPrecision(2));
  switch (unit) {
    case "percent":
      return `${n(v)} %`;
    case "bytes_per_second":
      return `${formatSize(Math.round(v))}/s`;
    case "per_second":
      return `${n(v)}/s`;
    case "milliseconds":
      return `${n(v)} ms`;
    case "count":
      return n(v);
  }
}

/** One figure's card: title, the latest values in words, the chart or why there is none. */
class Card {
  readonly el: HTMLElement;
  private latest: HTMLElement;
  private body: HTMLElement;
  private plot: uPlot | null = null;
  private series: string[] = [];

  constructor(readonly figure: MetricsFigure, private range: () => [number, number]) {
    const titleId = `monitor-title-${figure.id}`;
    this.latest = h("p", { class: "monitor-latest" });
    this.body = h("div", { class: "monitor-chart" });
    this.el = h(
      "section",
      { class: "monitor-card", "aria-labelledby": titleId, dataset: { figure: figure.id, points: "0" } },
      h("h3", { id: titleId }, figure.title),
      this.latest,
      this.body,
    );
  }

  /** Draws `points` (oldest first); `windowLabel` names the window for screen readers. */
  update(figure: MetricsFigure, points: MetricsPoint[], windowLabel: string) {
    if (figure.unavailable) return this.message(figure.unavailable);
    const names = new Set<string>();
    for (const p of points) for (const s of Object.keys(p.values[figure.id] ?? {})) names.add(s);
    const series = [...names].sort();
    if (series.length === 0 || points.length === 0) return this.message(points.length ? "No values in this window" : "Waiting for the first samples…");
    const xs = points.map((p) => p.t / 1000);
    const ys = series.map((s) => points.map((p) => p.values[figure.id]?.[s] ?? null));
    const data = [xs, ...ys] as uPlot.AlignedData;
    if (!this.plot || series.join("\n") !== this.series.join("\n")) this.build(series, data);
    else this.plot.setData(data);
    this.series = series;
    const last = points[points.length - 1].values[figure.id] ?? {};
    const summary = series.map((s) => `${s} ${format(figure.unit, last[s])}`).join(", ");
    this.latest.textContent = summary;
    this.plot?.root.setAttribute("aria-label", `${figure.title} over the last ${windowLabel}; now ${summary}`);
    this.el.dataset.points = String(points.length);
    this.el.dataset.last = String(points[points.length - 1].t);
  }

  resize(width: number) {
    this.plot?.setSize({ width, height: CHART_HEIGHT });
  }

  private message(text: string) {
    this.plot?.destroy();
    this.plot = null;
    this.series = [];
    this.latest.textContent = "";
    this.el.dataset.points = "0";
    setChildren(this.body, h("p", { class: "monitor-unavailable", role: "note" }, text));
  }

  private build(series: string[], data: uPlot.AlignedData) {
    this.plot?.destroy();
    this.body.replaceChildren();
    const unit = this.figure.unit;
    const opts: uPlot.Options = {
      width: Math.max(this.body.clientWidth, 120),
      height: CHART_HEIGHT,
      scales: { x: { time: true, range: () => this.range() }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
      axes: [
        { size: 30, font: "11px system-ui, sans-serif" },
        { size: 76, font: "11px system-ui, sans-serif", values: (_u, splits) => splits.map((v) => format(unit, v)) },
      ],
      series: [
        { label: "time" },
        ...series.map((label, i) => ({
          label,
          stroke: COLOURS[i] ?? "#94a3b8",
          width: 1.5,
          points: { show: false },
          spanGaps: false,
        })),
      ],
      // The card's line above says the latest values; the legend only names the colours.
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    };
    this.plot = new uPlot(opts, data, this.body);
    this.plot.root.setAttribute("role", "img");
  }
}

export class MonitorView {
  private cards = new Map<string, Card>();
  private points: MetricsPoint[] = [];
  private figures: MetricsFigure[] = [];
  private keep = 600;
  private intervalMs = 1000;
  private windowMin = DEFAULT_WINDOW;
  private visible = false;
  private failing = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private grid: HTMLElement;
  private status: HTMLElement;
  private select: HTMLSelectElement;

  constructor(root: HTMLElement) {
    this.select = h(
      "select",
      { id: "monitor-window", onchange: () => { this.windowMin = Number(this.select.value); this.render(); } },
      WINDOWS.map((m) => h("option", { value: String(m), selected: m === DEFAULT_WINDOW }, `Last ${m} min`)),
    );
    // Not a live region: it changes every second. A failure is announced once, as a toast.
    this.status = h("p", { class: "monitor-status muted" }, "Loading…");
    this.grid = h("div", { class: "monitor-grid" });
    setChildren(
      root,
      h(
        "div",
        { class: "monitor-head" },
        h("h2", {}, "Monitor"),
        h("label", { class: "monitor-window" }, h("span", {}, "Time window"), this.select),
        this.status,
      ),
      this.grid,
    );
    new ResizeObserver(() => this.resize()).observe(this.grid);
    document.addEventListener("visibilitychange", () => this.schedule(0));
  }

  setVisible(visible: boolean) {
    this.visible = visible;
    if (visible) {
      this.schedule(0);
      requestAnimationFrame(() => this.resize());
    } else clearTimeout(this.timer);
  }

  private schedule(ms: number) {
    clearTimeout(this.timer);
    if (this.visible && !document.hidden) this.timer = setTimeout(() => void this.poll(), ms);
  }

  private async poll() {
    const since = this.points.at(-1)?.t;
    try {
      const r = await api.recentMetrics(since);
      this.keep = r.keep;
      this.intervalMs = r.interval_ms;
      this.figures = r.figures;
      this.points.push(...r.points);
      if (this.points.length > this.keep) this.points.splice(0, this.points.length - this.keep);
      this.failing = false;
      this.render();
    } catch (e) {
      const message = `Could not read the server's figures: ${e instanceof Error ? e.message : String(e)}`;
      this.status.textContent = message;
      if (!this.failing) toast(message, "error");
      this.failing = true;
    }
    this.schedule(this.intervalMs);
  }

  private range(): [number, number] {
    const end = (this.points.at(-1)?.t ?? Date.now()) / 1000;
    return [end - this.windowMin * 60, end];
  }

  private render() {
    if (!this.visible) return;
    const from = this.range()[0] * 1000;
    const shown = this.points.filter((p) => p.t >= from);
    const label = `${this.windowMin} minute${this.windowMin === 1 ? "" : "s"}`;
    for (const f of this.figures) {
      let card = this.cards.get(f.id);
      if (!card) {
        card = new Card(f, () => this.range());
        this.cards.set(f.id, card);
        this.grid.appendChild(card.el);
      }
      card.update(f, shown, label);
    }
    const last = this.points.at(-1);
    this.status.textContent = last
      ? `Updated ${new Date(last.t).toLocaleTimeString()}, one point every ${this.intervalMs / 1000} s`
      : "Waiting for the first samples…";
  }

  private resize() {
    for (const card of this.cards.values()) {
      const body = card.el.querySelector<HTMLElement>(".monitor-chart");
      if (body && body.clientWidth > 0) card.resize(body.clientWidth);
    }
  }
}
