// The query bar: runs the server's tag-query language (words are tags; AND, OR, NOT, -x, !x,
// parentheses; fields like kind:image, size>10MB) against /api/files, and shows a malformed query's
// error inline: the message under the field and a mark under the character the server points at.

import { api, ApiError } from "./api";
import { h } from "./dom";
import { query } from "./store";

export function mountQueryBar(form: HTMLFormElement) {
  const input = h("input", {
    id: "query",
    class: "query-input",
    type: "search",
    name: "q",
    placeholder: "Query: tags, AND / OR / NOT, kind:image, size>10MB …",
    "aria-label": "Query files by tags and fields",
    "aria-describedby": "query-error query-help-text",
    autocomplete: "off",
    spellcheck: false,
  });
  const mark = h("span", { class: "query-mark", "aria-hidden": "true", hidden: true });
  const error = h("p", { id: "query-error", class: "query-error", hidden: true });
  const help = h(
    "details",
    { class: "query-help" },
    h("summary", { "aria-label": "Query syntax help" }, "?"),
    h(
      "div",
      { id: "query-help-text", class: "query-help-body" },
      h("p", {}, "Words and \"quoted phrases\" are tags. Next to each other they mean AND."),
      h(
        "ul",
        {},
        h("li", {}, h("code", {}, "cat AND (dog OR bird)")),
        h("li", {}, h("code", {}, "invoice NOT draft"), " — also ", h("code", {}, "-draft"), ", ", h("code", {}, "!draft")),
        h("li", {}, h("code", {}, "kind:image"), " ", h("code", {}, "mime:image/*"), " ", h("code", {}, "ext:pdf"), " ", h("code", {}, "name:report")),
        h("li", {}, h("code", {}, "size>10MB"), " ", h("code", {}, "created>=2026-01-01"), " ", h("code", {}, "modified<2026")),
        h("li", {}, h("code", {}, "hash:3fa9")),
      ),
    ),
  );
  const field = h("div", { class: "query-field" }, input, mark);
  form.append(field, help, error);

  const clearError = () => {
    error.hidden = true;
    mark.hidden = true;
    input.removeAttribute("aria-invalid");
  };

  const placeMark = (position: number) => {
    // The field is monospace, so a character's offset is position × 1ch minus the scroll.
    mark.style.left = `calc(var(--query-pad) + ${position}ch - ${input.scrollLeft}px)`;
  };

  const run = async () => {
    const q = input.value.trim();
    clearError();
    try {
      // Validate (and warm) with the smallest request; the views then fetch what they show.
      await api.list({ q, limit: 1 });
      query.set(q);
    } catch (e) {
      if (e instanceof ApiError && e.status === 400) {
        error.hidden = false;
        error.textContent = e.position !== undefined ? `${e.message} (at character ${e.position + 1})` : e.message;
        input.setAttribute("aria-invalid", "true");
        if (e.position !== undefined) {
          const p = Math.min(e.position, input.value.length);
          input.focus();
          input.setSelectionRange(p, Math.min(p + 1, input.value.length));
          mark.hidden = false;
          placeMark(p);
          mark.dataset.position = String(p);
        }
      } else {
        error.hidden = false;
        error.textContent = (e as Error).message;
      }
    }
  };

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void run();
  });
  input.addEventListener("input", () => {
    if (input.value === "" && query.value !== "") void run();
    else if (!mark.hidden) clearError();
  });
  input.addEventListener("scroll", () => {
    if (!mark.hidden) placeMark(Number(mark.dataset.position));
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && input.value) {
      input.value = "";
      void run();
    }
  });
  return { focus: () => input.focus(), input };
}
