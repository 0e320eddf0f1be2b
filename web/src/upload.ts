// Uploads: drag and drop files or whole folders anywhere on the page, or pick them; each goes to
// the server's tus endpoint (/api/uploads/) in 8 MiB chunks, three files at a time, with per-file
// and total progress in a tray. tus-js-client remembers each upload's URL in localStorage, so an
// upload cut by a reload or a lost connection resumes where the server stopped: after a reload the
// tray lists the interrupted uploads, and picking the same file again continues it.

import type * as Tus from "tus-js-client";
import { api, csrfHeaders } from "./api";
import { formatSize, h, setChildren, toast } from "./dom";
import { live, openFile } from "./store";

const CHUNK = 8 * 1024 * 1024;
const PARALLEL = 3;
const ENDPOINT = new URL("/api/uploads/", location.href).href;

/** tus-js-client, loaded on first use: the graph's first frame does not wait for it. */
let tusModule: Promise<typeof Tus> | null = null;
const loadTus = () => (tusModule ??= import("tus-js-client"));

type State = "queued" | "uploading" | "done" | "error" | "cancelled";

interface Item {
  file: File;
  path: string;
  sent: number;
  state: State;
  resumedFrom: number;
  fileId?: string;
  error?: string;
  upload?: Tus.Upload;
  row: HTMLLIElement;
}

export class Uploader {
  private items: Item[] = [];
  private readonly tray: HTMLElement;
  private readonly list = h("ul", { class: "upload-list" });
  private readonly summary = h("p", { class: "upload-summary", "aria-live": "polite" });
  private readonly total = h("progress", { class: "upload-total", max: 1, value: 0, "aria-label": "Total upload progress" });
  private readonly interrupted = h("div", { class: "upload-interrupted" });
  readonly fileInput = h("input", { type: "file", multiple: true, hidden: true, id: "upload-files" });
  readonly folderInput = h("input", { type: "file", multiple: true, hidden: true, id: "upload-folder" });

  constructor(tray: HTMLElement) {
    this.tray = tray;
    this.folderInput.setAttribute("webkitdirectory", "");
    const clear = h("button", { class: "btn btn-ghost small", type: "button", onclick: () => this.clearFinished() }, "Clear finished");
    const hide = h("button", { class: "btn btn-ghost icon small", type: "button", "aria-label": "Hide uploads", onclick: () => (this.tray.hidden = true) }, "×");
    tray.append(
      h("header", { class: "upload-header" }, h("h2", {}, "Uploads"), clear, hide),
      this.summary,
      this.total,
      this.interrupted,
      this.list,
    );
    document.body.append(this.fileInput, this.folderInput);
    for (const input of [this.fileInput, this.folderInput]) {
      input.addEventListener("change", () => {
        this.add([...(input.files ?? [])].map((f) => ({ file: f, path: f.webkitRelativePath || f.name })));
        input.value = "";
      });
    }
    this.installDropZone();
    // After the first frame: this loads tus-js-client.
    setTimeout(() => void this.showInterrupted(), 1000);
  }

  pickFiles() {
    this.fileInput.click();
  }

  pickFolder() {
    this.folderInput.click();
  }

  /** Queues files for upload and starts as many as the parallelism allows. */
  add(files: { file: File; path: string }[]) {
    if (files.length === 0) return;
    for (const { file, path } of files) {
      const row = h("li", { class: "upload-item" });
      const item: Item = { file, path, sent: 0, state: "queued", resumedFrom: 0, row };
      this.items.push(item);
      this.list.appendChild(row);
      this.renderItem(item);
    }
    this.tray.hidden = false;
    this.pump();
    this.renderSummary();
  }

  private pump() {
    let running = this.items.filter((i) => i.state === "uploading").length;
    for (const item of this.items) {
      if (running >= PARALLEL) break;
      if (item.state === "queued") {
        running++;
        void this.start(item);
      }
    }
  }

  private async start(item: Item) {
    item.state = "uploading";
    item.error = undefined;
    this.renderItem(item);
    const tus = await loadTus();
    const upload = new tus.Upload(item.file, {
      endpoint: ENDPOINT,
      chunkSize: CHUNK,
      headers: csrfHeaders(),
      retryDelays: [0, 1000, 3000, 5000],
      removeFingerprintOnSuccess: true,
      metadata: { filename: item.file.name, filetype: item.file.type || "application/octet-stream", relativePath: item.path },
      onProgress: (sent) => {
        item.sent = sent;
        this.renderItem(item);
        this.renderSummary();
      },
      onSuccess: ({ lastResponse }) => {
        item.state = "done";
        item.sent = item.file.size;
        item.fileId = lastResponse.getHeader("Disgrafs-File-Id") ?? undefined;
        this.finished(item);
        if (item.fileId) {
          // The live feed will say so too; asking directly makes the page right even without it.
          api.file(item.fileId).then((file) => live.emit({ type: "file.created", file }), () => {});
        }
      },
      onError: (e) => {
        item.state = "error";
        item.error = e.message.split("\n")[0];
        this.finished(item);
      },
    });
    item.upload = upload;
    try {
      const previous = await upload.findPreviousUploads();
      if (previous.length) {
        upload.resumeFromPreviousUpload(previous[0]);
        item.resumedFrom = -1; // known once the server answers the HEAD; see renderItem
      }
    } catch {
      // No stored uploads (private mode): start afresh.
    }
    upload.start();
  }

  private finished(item: Item) {
    this.renderItem(item);
    this.renderSummary();
    this.pump();
    void this.showInterrupted();
    if (this.items.every((i) => i.state !== "uploading" && i.state !== "queued")) {
      const done = this.items.filter((i) => i.state === "done").length;
      const failed = this.items.filter((i) => i.state === "error").length;
      toast(failed ? `${done} uploaded, ${failed} failed` : `${done} file${done === 1 ? "" : "s"} uploaded`, failed ? "error" : "info");
    }
  }

  private renderItem(item: Item) {
    if (item.resumedFrom === -1 && item.sent > 0) item.resumedFrom = item.sent;
    const size = item.file.size;
    const pct = size ? Math.floor((item.sent / size) * 100) : item.state === "done" ? 100 : 0;
    const status =
      item.state === "queued" ? "Waiting"
      : item.state === "uploading" ? `${pct}% · ${formatSize(item.sent)} of ${formatSize(size)}${item.resumedFrom > 0 ? ` · resumed at ${formatSize(item.resumedFrom)}` : ""}`
      : item.state === "done" ? `Uploaded · ${formatSize(size)}${item.resumedFrom > 0 ? " · resumed" : ""}`
      : item.state === "cancelled" ? "Cancelled"
      : `Failed: ${item.error}`;
    const actions: HTMLElement[] = [];
    if (item.state === "uploading" || item.state === "queued") {
      actions.push(h("button", { class: "btn btn-ghost small", type: "button", "aria-label": `Cancel ${item.file.name}`, onclick: () => this.cancel(item) }, "Cancel"));
    }
    if (item.state === "error" || item.state === "cancelled") {
      actions.push(h("button", { class: "btn btn-ghost small", type: "button", "aria-label": `Retry ${item.file.name}`, onclick: () => { item.state = "queued"; this.pump(); } }, "Retry"));
    }
    if (item.state === "done" && item.fileId) {
      const id = item.fileId;
      actions.push(h("button", { class: "btn btn-ghost small", type: "button", "aria-label": `Open ${item.file.name}`, onclick: () => openFile.set(id) }, "Open"));
    }
    item.row.className = `upload-item upload-${item.state}`;
    setChildren(
      item.row,
      h("div", { class: "upload-line" }, h("span", { class: "upload-name", title: item.path }, item.path), ...actions),
      h("progress", { max: 100, value: pct, "aria-label": `${item.file.name} progress` }),
      h("span", { class: "upload-status muted" }, status),
    );
  }

  private renderSummary() {
    const total = this.items.reduce((s, i) => s + i.file.size, 0);
    const sent = this.items.reduce((s, i) => s + (i.state === "done" ? i.file.size : i.sent), 0);
    const active = this.items.filter((i) => i.state === "uploading" || i.state === "queued").length;
    const done = this.items.filter((i) => i.state === "done").length;
    this.total.value = total ? sent / total : 0;
    this.summary.textContent = active
      ? `Uploading ${active} of ${this.items.length} · ${formatSize(sent)} of ${formatSize(total)} (${total ? Math.floor((sent / total) * 100) : 0}%)`
      : `${done} of ${this.items.length} uploaded`;
  }

  private async cancel(item: Item) {
    item.state = "cancelled";
    await item.upload?.abort(true).catch(() => {});
    this.finished(item);
  }

  private clearFinished() {
    this.items = this.items.filter((i) => {
      const keep = i.state === "uploading" || i.state === "queued";
      if (!keep) i.row.remove();
      return keep;
    });
    this.renderSummary();
    if (this.items.length === 0 && this.interrupted.childElementCount === 0) this.tray.hidden = true;
  }

  /** Lists uploads a previous page left unfinished (from tus-js-client's URL storage). */
  private async showInterrupted() {
    let previous: Tus.PreviousUpload[] = [];
    const tus = await loadTus();
    try {
      previous = await tus.defaultOptions.urlStorage.findAllUploads();
    } catch {
      return;
    }
    const running = new Set(this.items.filter((i) => i.state === "uploading").map((i) => i.file.name));
    previous = previous.filter((p) => !running.has(p.metadata.filename));
    if (previous.length === 0) return this.interrupted.replaceChildren();
    this.tray.hidden = false;
    setChildren(
      this.interrupted,
      h("p", {}, h("strong", {}, "Interrupted uploads"), " — pick the same file again to resume it."),
      h(
        "ul",
        {},
        previous.map((p) =>
          h(
            "li",
            { class: "upload-resume" },
            h("span", { class: "upload-name" }, p.metadata.filename ?? "file"),
            h("span", { class: "muted" }, p.size ? ` ${formatSize(p.size)}` : ""),
            h("button", { class: "btn small", type: "button", onclick: () => this.pickFiles() }, "Resume…"),
            h(
              "button",
              {
                class: "btn btn-ghost small",
                type: "button",
                "aria-label": `Forget ${p.metadata.filename}`,
                onclick: async () => {
                  if (p.uploadUrl) await tus.Upload.terminate(p.uploadUrl, { headers: csrfHeaders() }).catch(() => {});
                  await tus.defaultOptions.urlStorage.removeUpload(p.urlStorageKey);
                  void this.showInterrupted();
                },
              },
              "Forget",
            ),
          ),
        ),
      ),
    );
  }

  /** The whole page is a drop target; the overlay shows while files are dragged over it. */
  private installDropZone() {
    const overlay = h("div", { class: "drop-overlay", hidden: true, "aria-hidden": "true" }, h("div", {}, "Drop files or folders to upload"));
    document.body.appendChild(overlay);
    let depth = 0;
    const hasFiles = (e: DragEvent) => [...(e.dataTransfer?.types ?? [])].includes("Files");
    window.addEventListener("dragenter", (e) => {
      if (!hasFiles(e)) return;
      depth++;
      overlay.hidden = false;
    });
    window.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) overlay.hidden = true;
    });
    window.addEventListener("dragover", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer!.dropEffect = "copy";
    });
    window.addEventListener("drop", async (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      overlay.hidden = true;
      const items = [...(e.dataTransfer?.items ?? [])];
      const entries = items.map((i) => i.webkitGetAsEntry?.()).filter((x): x is FileSystemEntry => !!x);
      try {
        if (entries.length) this.add(await collect(entries));
        else this.add([...(e.dataTransfer?.files ?? [])].map((f) => ({ file: f, path: f.name })));
      } catch (err) {
        toast(`Could not read the dropped items: ${(err as Error).message}`, "error");
      }
    });
  }
}

/** Walks dropped entries, descending into folders; paths keep the folder names. */
async function collect(entries: FileSystemEntry[]): Promise<{ file: File; path: string }[]> {
  const out: { file: File; path: string }[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string) => {
    if (entry.isFile) {
      const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
      out.push({ file, path: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      // readEntries returns at most about 100 entries per call: read until it returns none.
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const e of entries) await walk(e, "");
  return out;
}
