// Entry point: mounts the views on index.html's skeleton, connects the live feed, and installs the
// page-wide keyboard shortcuts.

import "./styles.css";
import { h } from "./dom";
import { FilePanel } from "./panel";
import { GraphView } from "./graph-view";
import { ListView } from "./list-view";
import { mountQueryBar } from "./query-bar";
import { connected, connectEvents, openFile, syncHash, view, VIEWS, type ViewName } from "./store";
import { Uploader } from "./upload";
import { $ } from "./dom";

const SHORTCUTS: [string, string][] = [
  ["/", "Focus the query bar"],
  ["f", "Find in the graph"],
  ["g", "Graph view"],
  ["l", "List view"],
  ["m", "Monitor: the server's figures, live"],
  ["u", "Upload files"],
  ["Shift+U", "Upload a folder"],
  ["Esc", "Close the panel or the dialog"],
  ["↑ ↓ Space Enter Delete", "Move, select, open, delete in the list"],
  ["?", "This help"],
];

function main() {
  const graphEl = $("#graph-view");
  const listEl = $("#list-view");
  const graph = new GraphView(graphEl);
  const list = new ListView(listEl);
  const monitorEl = $("#monitor-view");
  // uPlot and the Monitor view load the first time the view is opened: the graph comes first.
  let monitor: Promise<{ setVisible(v: boolean): void }> | null = null;
  new FilePanel($("#panel"));
  const uploader = new Uploader($("#uploads"));
  const queryBar = mountQueryBar($("#query-form") as HTMLFormElement);

  const tabs: Record<ViewName, HTMLElement> = { graph: $("#tab-graph"), list: $("#tab-list"), monitor: $("#tab-monitor") };
  const showView = (v: ViewName) => {
    graphEl.hidden = v !== "graph";
    listEl.hidden = v !== "list";
    monitorEl.hidden = v !== "monitor";
    for (const [name, tab] of Object.entries(tabs)) {
      tab.setAttribute("aria-selected", String(name === v));
      tab.tabIndex = name === v ? 0 : -1;
    }
    list.setVisible(v === "list");
    if (v === "monitor") monitor ??= import("./monitor-view").then((m) => new m.MonitorView(monitorEl));
    void monitor?.then((m) => m.setVisible(view.value === "monitor"));
    if (v === "graph") graph.resize();
  };
  for (const v of VIEWS) tabs[v].addEventListener("click", () => view.set(v));
  $(".view-switch").addEventListener("keydown", (e) => {
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      const step = e.key === "ArrowRight" ? 1 : VIEWS.length - 1;
      view.set(VIEWS[(VIEWS.indexOf(view.value) + step) % VIEWS.length]);
      tabs[view.value].focus();
    }
  });
  view.subscribe(showView);

  $("#upload-files-btn").addEventListener("click", () => uploader.pickFiles());
  $("#upload-folder-btn").addEventListener("click", () => uploader.pickFolder());
  $("#shortcuts-btn").addEventListener("click", showShortcuts);

  const liveStatus = $("#live-status");
  connected.subscribe((on) => {
    liveStatus.classList.toggle("on", on);
    liveStatus.title = on ? "Live updates on" : "Live updates reconnecting…";
    liveStatus.setAttribute("aria-label", liveStatus.title);
  });

  document.addEventListener("keydown", (e) => {
    const t = e.target as HTMLElement;
    if (e.ctrlKey || e.metaKey || e.altKey || t.closest("input, textarea, select, [contenteditable], dialog")) return;
    const act: Record<string, () => void> = {
      "/": () => queryBar.focus(),
      f: () => { view.set("graph"); graph.focusFind(); },
      g: () => view.set("graph"),
      l: () => { view.set("list"); list.focus(); },
      m: () => view.set("monitor"),
      u: () => uploader.pickFiles(),
      U: () => uploader.pickFolder(),
      "?": showShortcuts,
      "+": () => graph.zoom(1 / 1.5),
      "-": () => graph.zoom(1.5),
      "0": () => graph.fit(),
      Escape: () => openFile.set(null),
    };
    const f = act[e.key];
    if (f && !(view.value !== "graph" && "+-0".includes(e.key))) {
      e.preventDefault();
      f();
    }
  });

  syncHash();
  showView(view.value);
  connectEvents();
  void graph.load();
}

function showShortcuts() {
  const dialog = h(
    "dialog",
    { class: "dialog", "aria-labelledby": "shortcuts-title" },
    h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts"),
    h("dl", { class: "shortcuts" }, SHORTCUTS.flatMap(([k, v]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, v)])),
    h("form", { method: "dialog", class: "dialog-actions" }, h("button", { class: "btn", autofocus: true }, "Close")),
  );
  document.body.appendChild(dialog);
  dialog.addEventListener("close", () => dialog.remove());
  dialog.showModal();
}

main();
