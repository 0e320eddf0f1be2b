// The shapes the server's JSON API returns (see the API contract in ARCHITECTURE.md).

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
  size: number;
  hash: string;
  mime: string;
  kind: FileKind;
  created: string;
  modified: string;
  tags: Tag[];
  tagging: "pending" | "done" | "failed";
}

export interface FileList {
  files: FileRecord[];
  total: number;
}

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

export type SortKey = "name" | "size" | "mime" | "created" | "modified";
export type SortOrder = "asc" | "desc";
