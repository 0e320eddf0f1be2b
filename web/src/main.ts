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
import { api, ApiError } from "./api";
import type { Whoami } from "./types";

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

/** The login form, in place of the page, for a visitor without a session. */
function showLogin(error?: string) {
  const message = h("p", { class: "login-error", role: "alert" }, error ?? "");
  const user = h("input", { name: "user", autocomplete: "username", required: true, "aria-label": "User" });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, "aria-label": "Password" });
  const form = h(
    "form",
    { class: "login", id: "login-form" },
    h("h2", {}, "Log in to disgrafs"),
    h("label", {}, "User ", user),
    h("label", {}, "Password ", password),
    h("button", { class: "btn btn-primary", type: "submit" }, "Log in"),
    message,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    api.login(user.value, password.value).then(
      () => location.reload(),
      (err: Error) => (message.textContent = err.message),
    );
  });
  $("#main").replaceChildren(form);
  user.focus();
}

/** Who is logged in, and the button that logs out. */
function showUser(who: Whoami) {
  const out = h("button", { class: "btn btn-ghost", id: "logout-btn", type: "button", title: `Logged in as ${who.user} (${who.scope})` }, "Log out");
  out.addEventListener("click", () => void api.logout().finally(() => location.reload()));
  $(".topbar").appendChild(out);
}

/** A one-time login link (`/login#CODE`; the code never reaches a server log) becomes a session;
 * then the page starts if the visitor may see it, or shows the login form. */
async function start() {
  let error: string | undefined;
  if (location.pathname === "/login") {
    const code = location.hash.slice(1);
    history.replaceState(null, "", "/");
    if (code) await api.loginLink(code).catch((e: Error) => (error = e.message));
  }
  try {
    showUser(await api.me());
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return showLogin(error);
    // A server without accounts (the dev mock) lets everyone in.
  }
  main();
}

void start();
