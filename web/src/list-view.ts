// The list view: the same files as the graph, as a table sorted by the server (name, size, type,
// dates), with multi-select for delete and tag operations. Keyboard: ↑/↓ Home/End move between
// rows, Space selects, Enter opens, Delete deletes the selection, Ctrl+A selects all.

import { api } from "./api";
import { deleteFiles } from "./actions";
import { debounce, formatDate, formatSize, h, setChildren, toast } from "./dom";
import { live, openFile, query } from "./store";
import { tagInput } from "./tag-input";
import type { FileRecord, SortKey, SortOrder } from "./types";

const PAGE = 200;

const COLUMNS: { key: SortKey | null; label: string; class: string }[] = [
  { key: "name", label: "Name", class: "col-name" },
  { key: null, label: "Tags", class: "col-tags" },
  { key: "size", label: "Size", class: "col-size" },
  { key: "mime", label: "Type", class: "col-type" },
  { key: "modified", label: "Modified", class: "col-date" },
  { key: "created", label: "Added", class: "col-date col-created" },
];

export class ListView {
  private files: FileRecord[] = [];
  private total = 0;
  /** Unset until a column is clicked: the server's default, best match first for a query with
   * `text:` terms, newest first otherwise. */
  private sort: SortKey | undefined = undefined;
  private order: SortOrder | undefined = undefined;
  private selected = new Set<string>();
  private active: string | null = null;
  private seq = 0;
  private visible = false;
  private stale = true;
  private readonly table = h("table", { class: "files", "aria-label": "Files", "aria-multiselectable": "true" });
  private readonly tbody = h("tbody");
  private readonly thead = h("thead");
  private readonly bulk = h("div", { class: "bulk", role: "region", "aria-label": "Selection actions", hidden: true });
  private readonly bulkCount = h("strong", { "aria-live": "polite" });
  private readonly bulkDelete = h("button", { class: "btn btn-danger", type: "button" });
  private readonly footer = h("div", { class: "list-footer" });
  private readonly selectAll = h("input", { type: "checkbox", "aria-label": "Select all files shown" });
  private readonly reloadSoon = debounce(() => void this.load(true), 400);

  constructor(root: HTMLElement) {
    this.table.append(this.thead, this.tbody);
    root.append(this.bulk, h("div", { class: "table-wrap" }, this.table), this.footer);
    this.selectAll.addEventListener("change", () => {
      if (this.selectAll.checked) this.files.forEach((f) => this.selected.add(f.id));
      else this.selected.clear();
      this.renderRows();
    });
    this.tbody.addEventListener("keydown", (e) => this.onKey(e));
    this.table.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && e.key === "a") {
        e.preventDefault();
        this.files.forEach((f) => this.selected.add(f.id));
        this.renderRows();
      }
    });
    query.subscribe(() => this.invalidate());
    live.subscribe(() => (this.visible ? this.reloadSoon() : (this.stale = true)));
    openFile.subscribe(() => this.markOpen());
    this.renderHead();
    this.buildBulk();
  }

  /** Called when the view is shown or hidden: it loads lazily, on first show and when stale. */
  setVisible(visible: boolean) {
    this.visible = visible;
    if (visible && this.stale) void this.load(false);
  }

  private invalidate() {
    this.stale = true;
    this.selected.clear();
    if (this.visible) void this.load(false);
  }

  private async load(keep: boolean) {
    const seq = ++this.seq;
    this.stale = false;
    const limit = keep ? Math.max(PAGE, this.files.length) : PAGE;
    try {
      const res = await api.list({ q: query.value, sort: this.sort, order: this.order, limit, offset: 0 });
      if (seq !== this.seq) return;
      this.files = res.files;
      this.total = res.total;
      const present = new Set(this.files.map((f) => f.id));
      for (const id of this.selected) if (!present.has(id)) this.selected.delete(id);
      this.renderRows();
    } catch (e) {
      if (seq === this.seq) toast(`List: ${(e as Error).message}`, "error");
    }
  }

  private async more() {
    const res = await api.list({ q: query.value, sort: this.sort, order: this.order, limit: PAGE, offset: this.files.length });
    this.files.push(...res.files);
    this.total = res.total;
    this.renderRows();
  }

  private renderHead() {
    const cells = COLUMNS.map((c) => {
      if (!c.key) return h("th", { scope: "col", class: c.class }, c.label);
      const sorted = this.sort === c.key;
      return h(
        "th",
        { scope: "col", class: c.class, "aria-sort": sorted ? (this.order === "asc" ? "ascending" : "descending") : "none" },
        h(
          "button",
          { type: "button", class: "sort", onclick: () => this.setSort(c.key!) },
          c.label,
          h("span", { class: "sort-arrow", "aria-hidden": "true" }, sorted ? (this.order === "asc" ? "▲" : "▼") : ""),
        ),
      );
    });
    setChildren(this.thead, h("tr", {}, h("th", { class: "col-check" }, this.selectAll), cells));
  }

  private setSort(key: SortKey) {
    if (this.sort === key) this.order = this.order === "asc" ? "desc" : "asc";
    else {
      this.sort = key;
      this.order = key === "name" || key === "mime" ? "asc" : "desc";
    }
    this.renderHead();
    void this.load(false);
  }

  private renderRows() {
    if (this.files.length === 0) {
      setChildren(
        this.tbody,
        h("tr", {}, h("td", { colSpan: COLUMNS.length + 1, class: "empty" }, query.value ? "No file matches this query." : "No files yet — drop some anywhere on the page.")),
      );
    } else {
      if (!this.active || !this.files.some((f) => f.id === this.active)) this.active = this.files[0].id;
      setChildren(this.tbody, this.files.map((f) => this.row(f)));
    }
    this.selectAll.checked = this.files.length > 0 && this.files.every((f) => this.selected.has(f.id));
    this.selectAll.indeterminate = !this.selectAll.checked && this.selected.size > 0;
    setChildren(
      this.footer,
      h("span", { class: "muted" }, `${this.files.length} of ${this.total} file${this.total === 1 ? "" : "s"}`),
      this.files.length < this.total ? h("button", { class: "btn", type: "button", onclick: () => void this.more() }, "Show more") : null,
    );
    this.renderBulk();
    this.markOpen();
  }

  private row(f: FileRecord): HTMLTableRowElement {
    const checked = this.selected.has(f.id);
    const check = h("input", {
      type: "checkbox",
      checked,
      tabIndex: -1,
      "aria-label": `Select ${f.name}`,
      onchange: () => this.toggle(f.id),
    });
    const tags = f.tags.slice(0, 4).map((t) => h("span", { class: `chip small chip-${t.kind}` }, t.name));
    if (f.tags.length > 4) tags.push(h("span", { class: "muted" }, `+${f.tags.length - 4}`));
    return h(
      "tr",
      {
        dataset: { id: f.id },
        tabIndex: f.id === this.active ? 0 : -1,
        "aria-selected": String(checked),
        class: checked ? "selected" : "",
        onclick: (e: MouseEvent) => {
          if ((e.target as HTMLElement).closest("input")) return;
          this.active = f.id;
          if (e.ctrlKey || e.metaKey) this.toggle(f.id);
          else openFile.set(f.id);
        },
      },
      h("td", { class: "col-check" }, check),
      h(
        "td",
        { class: "col-name" },
        h(
          "div",
          { class: "name-cell" },
          h("span", { class: `kind-dot kind-${f.kind}`, "aria-hidden": "true" }),
          h(
            "span",
            { class: "file-name", title: f.folder ? `${f.folder}/${f.name}` : f.name },
            f.folder ? h("span", { class: "file-folder" }, `${f.folder}/`) : null,
            f.name,
          ),
          f.tagging === "pending" ? h("span", { class: "spinner", title: "Tagging…", "aria-label": "tagging" }) : null,
        ),
        f.snippet?.length
          ? h("div", { class: "snippet" }, f.snippet.map((p) => (p.hit ? h("mark", {}, p.text) : p.text)))
          : null,
      ),
      h("td", { class: "col-tags" }, tags),
      h("td", { class: "col-size" }, formatSize(f.size)),
      h("td", { class: "col-type", title: f.mime }, f.mime),
      h("td", { class: "col-date" }, h("time", { dateTime: f.modified, title: formatDate(f.modified) }, formatDate(f.modified, true))),
      h("td", { class: "col-date col-created" }, h("time", { dateTime: f.created, title: formatDate(f.created) }, formatDate(f.created, true))),
    );
  }

  private toggle(id: string) {
    if (this.selected.has(id)) this.selected.delete(id);
    else this.selected.add(id);
    const focused = document.activeElement;
    this.renderRows();
    if (focused instanceof HTMLTableRowElement) this.focusRow(id);
  }

  private markOpen() {
    for (const tr of this.tbody.querySelectorAll<HTMLTableRowElement>("tr[data-id]")) {
      tr.classList.toggle("open", tr.dataset.id === openFile.value);
    }
  }

  private focusRow(id: string) {
    this.active = id;
    for (const tr of this.tbody.querySelectorAll<HTMLTableRowElement>("tr[data-id]")) {
      tr.tabIndex = tr.dataset.id === id ? 0 : -1;
      if (tr.dataset.id === id) tr.focus();
    }
  }

  private onKey(e: KeyboardEvent) {
    const tr = (e.target as HTMLElement).closest<HTMLTableRowElement>("tr[data-id]");
    if (!tr || (e.target as HTMLElement).tagName === "INPUT") return;
    const i = this.files.findIndex((f) => f.id === tr.dataset.id);
    const go = (j: number) => {
      e.preventDefault();
      const k = Math.max(0, Math.min(this.files.length - 1, j));
      this.focusRow(this.files[k].id);
    };
    switch (e.key) {
      case "ArrowDown": return go(i + 1);
      case "ArrowUp": return go(i - 1);
      case "Home": return go(0);
      case "End": return go(this.files.length - 1);
      case "PageDown": return go(i + 15);
      case "PageUp": return go(i - 15);
      case " ":
        e.preventDefault();
        return this.toggle(this.files[i].id);
      case "Enter":
        e.preventDefault();
        return openFile.set(this.files[i].id);
      case "Delete":
      case "Backspace": {
        e.preventDefault();
        const targets = this.selected.size ? this.files.filter((f) => this.selected.has(f.id)) : [this.files[i]];
        void deleteFiles(targets).then((done) => done.forEach((id) => this.selected.delete(id)));
      }
    }
  }

  /** Builds the selection bar once; renderBulk only updates it, so typing there survives reloads. */
  private buildBulk() {
    const each = async (what: string, f: (id: string) => Promise<FileRecord>) => {
      const results = await Promise.allSettled([...this.selected].map(f));
      const failed = results.filter((r) => r.status === "rejected").length;
      for (const r of results) if (r.status === "fulfilled") live.emit({ type: "file.updated", file: r.value });
      toast(failed ? `${what}: ${failed} of ${results.length} failed` : `${what}: ${results.length} file${results.length === 1 ? "" : "s"}`, failed ? "error" : "info");
    };
    setChildren(
      this.bulk,
      this.bulkCount,
      tagInput({ label: "Add a tag to the selected files", placeholder: "Add tag to selected…", onSubmit: (t) => each(`Tagged “${t}”`, (id) => api.addTags(id, [t])) }),
      tagInput({ label: "Remove a tag from the selected files", placeholder: "Remove tag from selected…", onSubmit: (t) => each(`Removed “${t}”`, (id) => api.removeTags(id, [t])) }),
      this.bulkDelete,
      h("button", { class: "btn btn-ghost", type: "button", onclick: () => { this.selected.clear(); this.renderRows(); } }, "Clear selection"),
    );
    this.bulkDelete.addEventListener("click", async () => {
      const done = await deleteFiles(this.files.filter((f) => this.selected.has(f.id)));
      done.forEach((id) => this.selected.delete(id));
      this.renderRows();
    });
  }

  private renderBulk() {
    const n = this.selected.size;
    this.bulk.hidden = n === 0;
    this.bulkCount.textContent = `${n} selected`;
    this.bulkDelete.textContent = `Delete ${n}`;
  }

  focus() {
    const tr = this.tbody.querySelector<HTMLTableRowElement>("tr[tabindex='0']");
    tr?.focus();
  }
}
