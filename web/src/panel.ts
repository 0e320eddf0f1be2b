// The file panel: name, size, type, dates, tags (add and remove inline, with autocomplete),
// related files, a preview and the download link. Opens beside the views (over them in a narrow
// window); focus moves into it when it opens and back where it was when it closes.

import { api, contentUrl } from "./api";
import { addTag, deleteFiles, removeTag } from "./actions";
import { formatDate, formatSize, h, setChildren, toast } from "./dom";
import { previewFor } from "./preview";
import { live, openFile } from "./store";
import { tagInput } from "./tag-input";
import type { FileRecord } from "./types";

export class FilePanel {
  private file: FileRecord | null = null;
  private returnFocus: HTMLElement | null = null;
  private tagsBox = h("div", { class: "panel-tags" });
  private relatedBox = h("div", { class: "panel-related" });
  private seq = 0;

  constructor(private readonly root: HTMLElement) {
    root.setAttribute("aria-labelledby", "panel-title");
    openFile.subscribe((id) => void this.show(id));
    live.subscribe((e) => {
      if (!this.file) return;
      if (e.type === "resync") {
        void api.file(this.file.id).then((f) => live.emit({ type: "file.updated", file: f }), () => openFile.set(null));
      } else if (e.type === "file.deleted" && e.id === this.file.id) {
        openFile.set(null);
      } else if (e.type !== "file.deleted" && e.file.id === this.file.id) {
        this.file = e.file;
        this.renderTags();
        if (e.type === "file.tagged") void this.loadRelated();
      }
    });
    root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !(e.target as HTMLElement).closest("[role=combobox][aria-expanded=true]")) {
        e.preventDefault();
        openFile.set(null);
      }
    });
  }

  private async show(id: string | null) {
    const seq = ++this.seq;
    if (!id) {
      this.file = null;
      this.root.hidden = true;
      document.body.classList.remove("panel-open");
      this.root.replaceChildren();
      this.returnFocus?.focus();
      this.returnFocus = null;
      return;
    }
    if (this.root.hidden) this.returnFocus = document.activeElement as HTMLElement | null;
    this.root.hidden = false;
    document.body.classList.add("panel-open");
    setChildren(this.root, h("p", { class: "muted panel-loading" }, "Loading…"));
    try {
      const file = await api.file(id);
      if (seq !== this.seq) return;
      this.file = file;
      this.render();
    } catch (e) {
      if (seq !== this.seq) return;
      setChildren(
        this.root,
        this.header("File not found"),
        h("p", { class: "muted" }, (e as Error).message),
      );
    }
  }

  private header(title: string): HTMLElement {
    return h(
      "header",
      { class: "panel-header" },
      h("h2", { id: "panel-title", tabindex: -1 }, title),
      h("button", { class: "btn btn-ghost icon", type: "button", "aria-label": "Close panel (Escape)", title: "Close (Esc)", onclick: () => openFile.set(null) }, "×"),
    );
  }

  private render() {
    const f = this.file!;
    const download = h("a", { class: "btn btn-primary", href: contentUrl(f.id), download: f.name, id: "panel-download" }, "Download");
    const del = h(
      "button",
      {
        class: "btn btn-danger-ghost",
        type: "button",
        onclick: async () => {
          const done = await deleteFiles([f]);
          if (done.length) openFile.set(null);
        },
      },
      "Delete",
    );
    const hashCopy = h(
      "button",
      {
        class: "btn btn-ghost small",
        type: "button",
        "aria-label": "Copy the full hash",
        onclick: () => navigator.clipboard?.writeText(f.hash).then(() => toast("Hash copied")),
      },
      "Copy",
    );
    setChildren(
      this.root,
      this.header(f.name),
      h("div", { class: "panel-actions" }, download, del),
      previewFor(f),
      h("section", { "aria-labelledby": "panel-tags-title" }, h("h3", { id: "panel-tags-title" }, "Tags"), this.tagsBox),
      h(
        "section",
        { "aria-labelledby": "panel-details-title" },
        h("h3", { id: "panel-details-title" }, "Details"),
        h(
          "dl",
          { class: "details" },
          ...(f.folder ? [h("dt", {}, "Folder"), h("dd", { class: "folder", title: f.folder }, f.folder)] : []),
          h("dt", {}, "Size"), h("dd", {}, `${formatSize(f.size)} (${f.size.toLocaleString()} bytes)`),
          h("dt", {}, "Type"), h("dd", {}, f.mime || "unknown", h("span", { class: "muted" }, ` · ${f.kind}`)),
          h("dt", {}, "Created"), h("dd", {}, h("time", { dateTime: f.created }, formatDate(f.created))),
          h("dt", {}, "Modified"), h("dd", {}, h("time", { dateTime: f.modified }, formatDate(f.modified))),
          h("dt", {}, "Hash"), h("dd", { class: "hash" }, h("code", { title: f.hash }, `${f.hash.slice(0, 16)}…`), hashCopy),
        ),
      ),
      h("section", { "aria-labelledby": "panel-related-title" }, h("h3", { id: "panel-related-title" }, "Related files"), this.relatedBox),
    );
    this.renderTags();
    void this.loadRelated();
    (this.root.querySelector("#panel-title") as HTMLElement).focus();
  }

  private renderTags() {
    const f = this.file!;
    const chips = f.tags.map((t) =>
      h(
        "li",
        { class: `chip chip-${t.kind}`, title: t.extractor ? `from ${t.extractor}` : t.kind === "user" ? "added by a person" : "automatic" },
        h("span", { class: "chip-label" }, t.name),
        h(
          "button",
          {
            type: "button",
            class: "chip-remove",
            "aria-label": `Remove tag ${t.name}`,
            onclick: async () => {
              try {
                this.file = await removeTag(f.id, t.name);
                this.renderTags();
                (this.tagsBox.querySelector(".tag-input") as HTMLElement | null)?.focus();
              } catch (e) {
                toast(`Could not remove ${t.name}: ${(e as Error).message}`, "error");
              }
            },
          },
          "×",
        ),
      ),
    );
    const status =
      f.tagging === "pending"
        ? h("p", { class: "muted tagging", role: "status" }, h("span", { class: "spinner", "aria-hidden": "true" }), "Tagging from content…")
        : f.tagging === "failed"
          ? h("p", { class: "muted", role: "status" }, "Automatic tagging failed for this file.")
          : null;
    setChildren(
      this.tagsBox,
      chips.length ? h("ul", { class: "chips", "aria-label": "Tags" }, chips) : h("p", { class: "muted" }, "No tags yet."),
      status,
      tagInput({
        label: `Add a tag to ${f.name}`,
        onSubmit: async (tag) => {
          try {
            this.file = await addTag(f.id, tag);
            this.renderTags();
          } catch (e) {
            toast(`Could not add ${tag}: ${(e as Error).message}`, "error");
          }
        },
      }),
    );
  }

  private async loadRelated() {
    const f = this.file!;
    try {
      const { related } = await api.related(f.id, 10);
      if (this.file?.id !== f.id) return;
      setChildren(
        this.relatedBox,
        related.length === 0
          ? h("p", { class: "muted" }, "No related files yet.")
          : h(
              "ul",
              { class: "related" },
              related.map((r) =>
                h(
                  "li",
                  {},
                  h(
                    "button",
                    { type: "button", class: "related-item", onclick: () => openFile.set(r.file.id) },
                    h("span", { class: `kind-dot kind-${r.file.kind}`, "aria-hidden": "true" }),
                    h("span", { class: "related-name" }, r.file.name),
                    h("span", { class: "muted related-tags" }, r.shared_tags.slice(0, 4).join(", ")),
                  ),
                ),
              ),
            ),
      );
    } catch (e) {
      setChildren(this.relatedBox, h("p", { class: "muted" }, `Related files unavailable (${(e as Error).message}).`));
    }
  }
}
