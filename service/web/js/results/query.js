/*
 * A query and its address. A typed query (an id or a formula) and the options live in the query
 * string, so every search can be shared: /?id=cod:1000000, /?formula=LiCoO2&using=xrd&top_k=20,
 * /?id=cod:1000000&elements_only=Ba,Ti,O,
 * /?formula=TiO2&elements_none=Pb&spacegroup=136&source=cod&hit=cod:9015662. An uploaded file stays
 * in the browser: its address keeps the options only.
 */

import { normaliseElement } from "../format.js";
import { el } from "./state.js";

export const DEFAULT_OPTIONS = {
  using: "", // none: the service picks the measured best for the query and names it in the answer
  top_k: 10,
  elements_all: [],
  elements_none: [],
  elements_only: [],
  spacegroup: null,
  source: [],
};
const USING = ["crystal", "structure", "hybrid", "xrd"];
const MAX_TOP_K = 100;

function list(text) {
  return String(text || "")
    .split(/[\s,;]+/)
    .map((t) => t.trim())
    .filter(Boolean);
}

function elements(text) {
  return list(text).map(normaliseElement);
}

function integer(text, low, high) {
  const n = Number(String(text || "").trim());
  return String(text || "").trim() && Number.isInteger(n) && n >= low && n <= high ? n : null;
}

/** An id has a source prefix ("cod:1000000"); anything else is read as a formula. */
export function parseTyped(text) {
  const q = (text || "").trim();
  if (!q) return null;
  return q.indexOf(":") > 0 ? { id: q } : { formula: q };
}

/** The options from the page's controls. */
export function readOptions() {
  return {
    using: USING.indexOf(el.using.value) >= 0 ? el.using.value : DEFAULT_OPTIONS.using,
    top_k: integer(el.topK.value, 1, MAX_TOP_K) || DEFAULT_OPTIONS.top_k,
    elements_all: elements(el.elementsAll.value),
    elements_none: elements(el.elementsNone.value),
    elements_only: elements(el.elementsOnly.value),
    spacegroup: integer(el.spacegroup.value, 1, 230),
    source: list(el.source.value).map((s) => s.toLowerCase()),
  };
}

export function writeOptions(options) {
  el.using.value = options.using;
  el.topK.value = String(options.top_k);
  el.elementsAll.value = options.elements_all.join(", ");
  el.elementsNone.value = options.elements_none.join(", ");
  el.elementsOnly.value = options.elements_only.join(", ");
  el.spacegroup.value = options.spacegroup === null ? "" : String(options.spacegroup);
  el.source.value = options.source.join(", ");
}

/** The SearchFilters of the options (see service/store/records.py), or null when there are none. */
export function filtersOf(options) {
  const filters = {};
  if (options.elements_all.length) filters.elements_all = options.elements_all;
  if (options.elements_none.length) filters.elements_none = options.elements_none;
  if (options.elements_only.length) filters.elements_only = options.elements_only;
  if (options.spacegroup !== null) filters.spacegroup_number = options.spacegroup;
  if (options.source.length) filters.sources = options.source;
  return Object.keys(filters).length ? filters : null;
}

/** What an address asks for: {query: {id} | {formula} | null, options, hit}. */
export function fromAddress(search) {
  const p = new URLSearchParams(search);
  let query = null;
  if (p.get("id")) query = { id: p.get("id").trim() };
  else if (p.get("formula")) query = { formula: p.get("formula").trim() };
  const options = {
    using: USING.indexOf(p.get("using")) >= 0 ? p.get("using") : DEFAULT_OPTIONS.using,
    top_k: integer(p.get("top_k"), 1, MAX_TOP_K) || DEFAULT_OPTIONS.top_k,
    elements_all: elements(p.get("elements_all")),
    elements_none: elements(p.get("elements_none")),
    elements_only: elements(p.get("elements_only")),
    spacegroup: integer(p.get("spacegroup"), 1, 230),
    source: list(p.get("source")).map((s) => s.toLowerCase()),
  };
  return { query, options, hit: p.get("hit") || null };
}

/** The address of a query (a typed one; an uploaded file is not in it), its options and selected hit. */
export function addressOf(query, options, hit) {
  const p = new URLSearchParams();
  if (query && query.id) p.set("id", query.id);
  else if (query && query.formula) p.set("formula", query.formula);
  if (options.using !== DEFAULT_OPTIONS.using) p.set("using", options.using);
  if (options.top_k !== DEFAULT_OPTIONS.top_k) p.set("top_k", String(options.top_k));
  if (options.elements_all.length) p.set("elements_all", options.elements_all.join(","));
  if (options.elements_none.length) p.set("elements_none", options.elements_none.join(","));
  if (options.elements_only.length) p.set("elements_only", options.elements_only.join(","));
  if (options.spacegroup !== null) p.set("spacegroup", String(options.spacegroup));
  if (options.source.length) p.set("source", options.source.join(","));
  if (hit && query && !query.file) p.set("hit", hit);
  const text = p.toString().replace(/%3A/gi, ":").replace(/%2C/gi, ",");
  return "/" + (text ? "?" + text : "");
}

/** The query as a short text: "cod:1000000", "LiCoO2", "NaCl.cif". */
export function queryLabel(query) {
  if (!query) return "";
  return query.id || query.formula || (query.file && query.file.name) || "";
}
