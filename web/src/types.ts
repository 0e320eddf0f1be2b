// The shapes the server's JSON API speaks. Their definition is crates/core (src/model.rs for the
// records, src/api.rs for the envelopes and headers; see "The API contract" in ARCHITECTURE.md):
// a field changed there changes here in the same commit.

export type FileKind = "document" | "image" | "audio" | "video" | "archive" | "code" | "data" | "other";
export type TagKind = "auto" | "user";

export interface Tag {
  name: string;
  kind: TagKind;
  extractor?: string;
  weight: number;
}

export interface FileRecord {
  id: string;
  name: string;
  /** The relative folder it was uploaded from ("photos/2024"), "" when it came alone. */
  folder: string;
  size: number;
  hash: string;
  mime: string;
  kind: FileKind;
  created: string;
  modified: string;
  tags: Tag[];
  tagging: "pending" | "done" | "failed";
  /** Facts the extractors found that are not tags (`width`, `duration_s`, ...); absent when none. */
  fields?: Record<string, string>;
  /** Where a query's `text:` terms matched the content, matched words marked `hit`; absent
   * without a text term. */
  snippet?: SnippetPart[];
}

export interface SnippetPart {
  text: string;
  /** A matched word; absent when false. */
  hit?: boolean;
}

export interface FileList {
  files: FileRecord[];
  total: number;
}

export interface ErrorBody {
  error: string;
  code: string;
  /** Character offset of a query error. */
  position?: number;
}

export interface Uploaded {
  files: FileRecord[];
}

export interface Health {
  status: string;
  version: string;
  files: number;
  blobs: number;
  bytes: number;
  tags: number;
  jobs_queued: number;
  jobs_running: number;
  jobs_failed: number;
}

/** Response header with the id of the file a tus upload stored. */
export const FILE_ID_HEADER = "disgrafs-file-id";

export interface Related {
  file: FileRecord;
  score: number;
  shared_tags: string[];
}

export type GraphNode =
  | { type: "file"; id: string; name: string; kind: FileKind; mime: string; size: number }
  | { type: "tag"; id: string; name: string; kind: TagKind; degree: number };

export interface GraphEdge {
  source: string;
  target: string;
  kind: TagKind;
  weight: number;
}

export interface GraphData {
  nodes: GraphNode[];
  edges: GraphEdge[];
  truncated: boolean;
}

export interface TagCount {
  name: string;
  kind: TagKind;
  files: number;
}

export type SortKey = "name" | "size" | "mime" | "created" | "modified" | "relevance";
export type SortOrder = "asc" | "desc";

/** GET /api/metrics/recent: the dashboard's figures, one point a second, the last minutes. */
export type MetricsUnit = "percent" | "bytes_per_second" | "per_second" | "milliseconds" | "count";

export interface MetricsFigure {
  id: string;
  title: string;
  unit: MetricsUnit;
  /** Why the figure has no values now (no accelerator attached, a /proc section unreadable). */
  unavailable?: string;
}

export interface MetricsPoint {
  /** Milliseconds since the epoch. */
  t: number;
  /** Figure id → series name → value. */
  values: Record<string, Record<string, number>>;
}

export interface RecentMetrics {
  interval_ms: number;
  keep: number;
  figures: MetricsFigure[];
  points: MetricsPoint[];
}

/** `GET /api/auth/me` and a login's answer (core `api::Whoami`). */
export interface Whoami {
  user: string;
  scope: "read" | "write" | "admin";
}
