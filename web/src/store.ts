// The page's shared state and its live feed: the current query, the open file, and the server's
// events (SSE at /api/events) re-dispatched to the views. Views subscribe; nobody polls.

import { api } from "./api";
import type { FileRecord } from "./types";

export type LiveEvent =
  | { type: "file.created" | "file.updated" | "file.tagged"; file: FileRecord }
  | { type: "file.deleted"; id: string }
  /** The server dropped events for this page (it fell behind): views fetch afresh. */
  | { type: "resync" };

type Listener<T> = (value: T) => void;

class Signal<T> {
  private listeners = new Set<Listener<T>>();
  constructor(private current: T) {}
  get value(): T {
    return this.current;
  }
  set(value: T) {
    if (Object.is(value, this.current)) return;
    this.current = value;
    for (const l of this.listeners) l(value);
  }
  subscribe(l: Listener<T>): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

class Emitter<T> {
  private listeners = new Set<Listener<T>>();
  emit(value: T) {
    for (const l of this.listeners) l(value);
  }
  subscribe(l: Listener<T>): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** The active query (what the query bar last ran successfully). */
export const query = new Signal<string>("");
/** Which main view shows. */
export type ViewName = "graph" | "list" | "monitor";
export const VIEWS: ViewName[] = ["graph", "list", "monitor"];
export const view = new Signal<ViewName>("graph");
/** The file whose panel is open, or null. */
export const openFile = new Signal<string | null>(null);
/** Server events, and local changes made through this page (so views update before the echo). */
export const live = new Emitter<LiveEvent>();
/** Whether the live feed is connected. */
export const connected = new Signal<boolean>(false);

/** Connects to the server's event stream; EventSource reconnects by itself after a drop. */
export function connectEvents() {
  const source = new EventSource("/api/events");
  source.onopen = () => connected.set(true);
  source.onerror = () => connected.set(false);
  // An event names a file by id (the server never sends a whole record, which may carry
  // thousands of tags); the record is fetched here, once per event, and a file deleted since is
  // announced by its own event.
  for (const type of ["file.created", "file.updated", "file.tagged"] as const) {
    source.addEventListener(type, (e) => {
      let id: unknown;
      try {
        id = JSON.parse((e as MessageEvent).data).id;
      } catch {
        // A malformed event is dropped; the next list refresh shows the truth.
      }
      if (typeof id !== "string") return;
      api.file(id).then((file) => live.emit({ type, file }), () => {});
    });
  }
  source.addEventListener("resync", () => live.emit({ type: "resync" }));
  source.addEventListener("file.deleted", (e) => {
    try {
      live.emit({ type: "file.deleted", id: JSON.parse((e as MessageEvent).data).id });
    } catch {
      // as above
    }
  });
}

/** Keeps `#file=ID&view=list` (or `view=monitor`) in the address bar so a reload or a shared link opens the same thing. */
export function syncHash() {
  const read = () => {
    const p = new URLSearchParams(location.hash.slice(1));
    const v = p.get("view");
    view.set(VIEWS.find((x) => x === v) ?? "graph");
    openFile.set(p.get("file"));
  };
  read();
  window.addEventListener("hashchange", read);
  const write = () => {
    const p = new URLSearchParams();
    if (view.value !== "graph") p.set("view", view.value);
    if (openFile.value) p.set("file", openFile.value);
    const hash = p.toString();
    if (location.hash.slice(1) !== hash) history.replaceState(null, "", hash ? `#${hash}` : location.pathname + location.search);
  };
  view.subscribe(write);
  openFile.subscribe(write);
}
