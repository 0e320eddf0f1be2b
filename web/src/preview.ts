// Previews in the file panel, chosen by MIME type and extension: images, audio and video players,
// PDF in the browser's own viewer, Markdown rendered, text and code highlighted (first 256 KiB).

import { contentUrl } from "./api";
import { extension, formatSize, h } from "./dom";
import type { FileRecord } from "./types";

const TEXT_LIMIT = 256 * 1024;
const TEXT_EXTENSIONS = new Set(
  "txt md markdown rst log csv tsv json yaml yml toml ini cfg conf xml html htm css js mjs cjs jsx ts tsx py rs go c h cc cpp cxx hpp java sh bash zsh sql svg".split(" "),
);

export function previewFor(file: FileRecord): HTMLElement {
  const url = contentUrl(file.id, true);
  const ext = extension(file.name);
  const mime = file.mime.toLowerCase();
  if (mime.startsWith("image/")) {
    const img = h("img", { src: url, alt: `Preview of ${file.name}`, loading: "lazy", decoding: "async" });
    img.addEventListener("error", () => img.replaceWith(none(file)), { once: true });
    return h("div", { class: "preview preview-image" }, img);
  }
  if (mime.startsWith("audio/")) return h("div", { class: "preview" }, h("audio", { src: url, controls: true, preload: "metadata", "aria-label": `Play ${file.name}` }));
  if (mime.startsWith("video/")) return h("div", { class: "preview" }, h("video", { src: url, controls: true, preload: "metadata", "aria-label": `Play ${file.name}` }));
  if (mime === "application/pdf") {
    return h("div", { class: "preview preview-pdf" }, h("iframe", { src: url, title: `PDF preview of ${file.name}`, loading: "lazy" }));
  }
  if (mime.startsWith("text/") || file.kind === "code" || TEXT_EXTENSIONS.has(ext) || /json|xml|yaml|javascript|toml/.test(mime)) {
    const box = h("div", { class: "preview preview-text", "aria-busy": "true" }, h("p", { class: "muted" }, "Loading preview…"));
    void loadText(box, file, ext);
    return box;
  }
  return none(file);
}

function none(file: FileRecord): HTMLElement {
  return h("div", { class: "preview preview-none" }, h("p", { class: "muted" }, `No preview for ${file.mime || "this type"}.`));
}

async function loadText(box: HTMLElement, file: FileRecord, ext: string) {
  try {
    const res = await fetch(contentUrl(file.id, true), { headers: { range: `bytes=0-${TEXT_LIMIT - 1}` } });
    if (!res.ok) throw new Error(`${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.subarray(0, 8000).includes(0)) {
      box.replaceWith(none(file));
      return;
    }
    const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
    const more = file.size > TEXT_LIMIT ? h("p", { class: "muted" }, `Showing the first ${formatSize(TEXT_LIMIT)} of ${formatSize(file.size)}.`) : null;
    const { highlight, renderMarkdown } = await import("./highlight");
    if (ext === "md" || ext === "markdown" || file.mime === "text/markdown") {
      const article = h("article", { class: "markdown" });
      article.innerHTML = renderMarkdown(text); // sanitised by DOMPurify
      box.replaceChildren(article, more ?? "");
    } else {
      const { html, language } = highlight(text, ext);
      const code = h("code", { class: `hljs language-${language}` });
      code.innerHTML = html; // hljs escapes the text it wraps
      box.replaceChildren(h("pre", { tabindex: 0, "aria-label": `Contents of ${file.name}` }, code), more ?? "");
    }
  } catch (e) {
    box.replaceChildren(h("p", { class: "muted" }, `Preview failed (${(e as Error).message}).`));
  } finally {
    box.removeAttribute("aria-busy");
  }
}
