// A tag entry field with autocomplete from /api/tags: an ARIA combobox (arrow keys move through the
// suggestions, Enter takes the highlighted one or the typed text, Escape closes). Used by the file
// panel and by the list view's bulk tag operations.

import { api } from "./api";
import { debounce, h } from "./dom";

let uid = 0;

export interface TagInputOptions {
  label: string;
  placeholder?: string;
  /** Called with the tag to add or remove; the field clears when it resolves. */
  onSubmit: (tag: string) => Promise<void> | void;
}

export function tagInput(opts: TagInputOptions): HTMLElement {
  const id = `tag-input-${++uid}`;
  const list = h("ul", { id: `${id}-list`, class: "suggestions", role: "listbox", hidden: true, "aria-label": "Suggested tags" });
  const input = h("input", {
    id,
    class: "tag-input",
    type: "text",
    role: "combobox",
    placeholder: opts.placeholder ?? "Add a tag…",
    "aria-label": opts.label,
    "aria-autocomplete": "list",
    "aria-expanded": "false",
    "aria-controls": list.id,
    autocomplete: "off",
    spellcheck: false,
  });
  let options: string[] = [];
  let active = -1;

  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  };
  const highlight = (i: number) => {
    active = i;
    list.querySelectorAll("li").forEach((li, j) => li.setAttribute("aria-selected", String(j === i)));
    if (i >= 0) input.setAttribute("aria-activedescendant", `${id}-opt-${i}`);
    else input.removeAttribute("aria-activedescendant");
  };
  const submit = async (tag: string) => {
    const t = tag.trim();
    if (!t) return;
    close();
    input.disabled = true;
    try {
      await opts.onSubmit(t);
      input.value = "";
    } finally {
      input.disabled = false;
      input.focus();
    }
  };
  const suggest = debounce(async () => {
    const prefix = input.value.trim();
    if (!prefix) return close();
    try {
      const { tags } = await api.tags(prefix, 8);
      if (input.value.trim() !== prefix) return;
      options = tags.map((t) => t.name).filter((n) => n !== prefix);
      list.replaceChildren(
        ...tags
          .filter((t) => t.name !== prefix)
          .map((t, i) =>
            h(
              "li",
              {
                id: `${id}-opt-${i}`,
                role: "option",
                "aria-selected": "false",
                onmousedown: (e: MouseEvent) => {
                  e.preventDefault();
                  void submit(t.name);
                },
              },
              h("span", { class: `tag-dot tag-${t.kind}`, "aria-hidden": "true" }),
              t.name,
              h("span", { class: "muted" }, ` ${t.files}`),
            ),
          ),
      );
      list.hidden = options.length === 0;
      input.setAttribute("aria-expanded", String(!list.hidden));
      highlight(-1);
    } catch {
      close();
    }
  }, 120);

  input.addEventListener("input", suggest);
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && options.length) {
      e.preventDefault();
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight((active + 1) % options.length);
    } else if (e.key === "ArrowUp" && options.length) {
      e.preventDefault();
      highlight((active - 1 + options.length) % options.length);
    } else if (e.key === "Enter") {
      e.preventDefault();
      void submit(active >= 0 ? options[active] : input.value);
    } else if (e.key === "Escape" && !list.hidden) {
      e.stopPropagation();
      close();
    }
  });
  return h("div", { class: "tag-input-wrap" }, input, list);
}
