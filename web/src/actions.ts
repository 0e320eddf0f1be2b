// Operations on files shared by the panel and the list view: tag, untag and delete, with the
// change announced on the live feed at once (the server's own event follows and is idempotent).

import { api } from "./api";
import { h, toast } from "./dom";
import { live } from "./store";
import type { FileRecord } from "./types";

export async function addTag(id: string, tag: string): Promise<FileRecord> {
  const file = await api.addTags(id, [tag]);
  live.emit({ type: "file.updated", file });
  return file;
}

export async function removeTag(id: string, tag: string): Promise<FileRecord> {
  const file = await api.removeTags(id, [tag]);
  live.emit({ type: "file.updated", file });
  return file;
}

/** Deletes files after the person confirms in a modal dialog; resolves to the ids deleted. */
export async function deleteFiles(files: { id: string; name: string }[]): Promise<string[]> {
  if (files.length === 0) return [];
  const what = files.length === 1 ? `“${files[0].name}”` : `${files.length} files`;
  if (!(await confirmDialog(`Delete ${what}?`, "This cannot be undone.", "Delete"))) return [];
  const done: string[] = [];
  for (const f of files) {
    try {
      await api.remove(f.id);
      done.push(f.id);
      live.emit({ type: "file.deleted", id: f.id });
    } catch (e) {
      toast(`Could not delete ${f.name}: ${(e as Error).message}`, "error");
    }
  }
  if (done.length) toast(done.length === 1 ? `Deleted ${files.find((f) => f.id === done[0])!.name}` : `Deleted ${done.length} files`);
  return done;
}

/** A modal confirmation using <dialog>: focus is trapped by the browser and returns afterwards. */
export function confirmDialog(title: string, body: string, confirm: string): Promise<boolean> {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { class: "dialog", "aria-labelledby": "dialog-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: "dialog-title" }, title),
        h("p", {}, body),
        h(
          "div",
          { class: "dialog-actions" },
          h("button", { class: "btn", value: "cancel", type: "submit", autofocus: true }, "Cancel"),
          h("button", { class: "btn btn-danger", value: "ok", type: "submit" }, confirm),
        ),
      ),
    );
    document.body.appendChild(dialog);
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    dialog.showModal();
  });
}
