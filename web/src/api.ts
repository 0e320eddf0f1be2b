// The typed client of the server's HTTP API. Every error response becomes an ApiError carrying the
// server's one-line message, its code and, for query errors, the character position.

import type { FileList, FileRecord, GraphData, RecentMetrics, Related, SortKey, SortOrder, TagCount, Whoami } from "./types";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly position?: number,
  ) {
    super(message);
  }
}

/** The CSRF cookie's value, which every write authenticated by the session cookie must send back
 * in this header (the server checks it against the session: signed double-submit cookie). */
export function csrfHeaders(): Record<string, string> {
  const m = /(?:^|;\s*)disgrafs_csrf=([0-9a-f]+)/.exec(document.cookie);
  return m ? { "x-disgrafs-csrf": m[1] } : {};
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: { ...csrfHeaders(), ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(`cannot reach the server (${(e as Error).message})`, 0, "network");
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    let code = "http_error";
    let position: number | undefined;
    try {
      const e = await response.json();
      message = e.error ?? message;
      code = e.code ?? code;
      position = typeof e.position === "number" ? e.position : undefined;
    } catch {
      // Not JSON (a proxy's page, say): keep the status line.
    }
    throw new ApiError(message, response.status, code, position);
  }
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

function qs(params: Record<string, string | number | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : "";
}

export interface ListParams {
  q?: string;
  limit?: number;
  offset?: number;
  sort?: SortKey;
  order?: SortOrder;
}

export const api = {
  health: () => request<{ status: string; version: string }>("GET", "/api/health"),
  list: (p: ListParams) => request<FileList>("GET", `/api/files${qs({ ...p })}`),
  file: (id: string) => request<FileRecord>("GET", `/api/files/${encodeURIComponent(id)}`),
  remove: (id: string) => request<void>("DELETE", `/api/files/${encodeURIComponent(id)}`),
  addTags: (id: string, tags: string[]) =>
    request<FileRecord>("POST", `/api/files/${encodeURIComponent(id)}/tags`, { tags }),
  removeTags: (id: string, tags: string[]) =>
    request<FileRecord>("DELETE", `/api/files/${encodeURIComponent(id)}/tags`, { tags }),
  related: (id: string, limit = 12) =>
    request<{ related: Related[] }>("GET", `/api/files/${encodeURIComponent(id)}/related${qs({ limit })}`),
  graph: (q: string, limit: number) => request<GraphData>("GET", `/api/graph${qs({ q, limit })}`),
  tags: (prefix: string, limit = 10) => request<{ tags: TagCount[] }>("GET", `/api/tags${qs({ prefix, limit })}`),
  recentMetrics: (since?: number) => request<RecentMetrics>("GET", `/api/metrics/recent${qs({ since })}`),
  me: () => request<Whoami>("GET", "/api/auth/me"),
  login: (user: string, password: string) => request<Whoami>("POST", "/api/auth/login", { user, password }),
  loginLink: (code: string) => request<Whoami>("POST", "/api/auth/link", { code }),
  logout: () => request<void>("POST", "/api/auth/logout"),
};

/** URL of a file's bytes: as an attachment (download) or inline (previews). */
export function contentUrl(id: string, inline = false): string {
  return `/api/files/${encodeURIComponent(id)}/content${inline ? "?inline=1" : ""}`;
}
