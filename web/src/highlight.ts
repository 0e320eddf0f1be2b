// Syntax highlighting and Markdown rendering for previews, loaded on demand (a separate chunk) so
// the first paint of the graph does not wait for them. Markdown is sanitised with DOMPurify before
// it touches the DOM: an uploaded file is untrusted input.

import hljs from "highlight.js/lib/core";
import bash from "highlight.js/lib/languages/bash";
import c from "highlight.js/lib/languages/c";
import cpp from "highlight.js/lib/languages/cpp";
import css from "highlight.js/lib/languages/css";
import go from "highlight.js/lib/languages/go";
import ini from "highlight.js/lib/languages/ini";
import java from "highlight.js/lib/languages/java";
import javascript from "highlight.js/lib/languages/javascript";
import json from "highlight.js/lib/languages/json";
import markdown from "highlight.js/lib/languages/markdown";
import python from "highlight.js/lib/languages/python";
import rust from "highlight.js/lib/languages/rust";
import sql from "highlight.js/lib/languages/sql";
import typescript from "highlight.js/lib/languages/typescript";
import xml from "highlight.js/lib/languages/xml";
import yaml from "highlight.js/lib/languages/yaml";
import { marked } from "marked";
import DOMPurify from "dompurify";

const LANGUAGES = { bash, c, cpp, css, go, ini, java, javascript, json, markdown, python, rust, sql, typescript, xml, yaml };
for (const [name, lang] of Object.entries(LANGUAGES)) hljs.registerLanguage(name, lang);

const BY_EXTENSION: Record<string, string> = {
  sh: "bash", bash: "bash", zsh: "bash",
  c: "c", h: "c", cc: "cpp", cpp: "cpp", cxx: "cpp", hpp: "cpp",
  css: "css", go: "go", toml: "ini", ini: "ini", cfg: "ini", conf: "ini",
  java: "java", js: "javascript", mjs: "javascript", cjs: "javascript", jsx: "javascript",
  json: "json", md: "markdown", py: "python", rs: "rust", sql: "sql",
  ts: "typescript", tsx: "typescript", html: "xml", htm: "xml", xml: "xml", svg: "xml",
  yaml: "yaml", yml: "yaml",
};

/** Highlighted HTML for `text`, by the file's extension (auto-detected when unknown). */
export function highlight(text: string, ext: string): { html: string; language: string } {
  const language = BY_EXTENSION[ext];
  if (language) return { html: hljs.highlight(text, { language }).value, language };
  const auto = hljs.highlightAuto(text.slice(0, 20000));
  return auto.relevance >= 5 ? { html: auto.value, language: auto.language ?? "text" } : { html: escapeHtml(text), language: "text" };
}

/** Sanitised HTML of a Markdown document. */
export function renderMarkdown(text: string): string {
  const html = marked.parse(text, { async: false, gfm: true }) as string;
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true } });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" })[c]!);
}
