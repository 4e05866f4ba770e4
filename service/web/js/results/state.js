/*
 * The results page's shared state: the DOM elements it drives, the current query and hits, and the
 * test hooks.
 *
 * Test hooks: window.matconceptResults = {ready, seq, busy, query, hits, selected, viewers, patterns};
 * `seq` grows each time the hits list is redrawn, a hit's comparison is complete, or an error is
 * shown; `busy` is true while a search or a comparison is loading. `viewers.query|hit` is
 * {atoms, drawn, hasCell, cell, format} of the drawn model (or null), `patterns` the uid, name,
 * number of points and kind of each drawn trace; `viewerLibrary` whether 3Dmol.js loaded.
 */

export const hooks = {
  ready: false,
  seq: 0,
  busy: false,
  query: null,
  hits: [],
  selected: null,
  viewers: { query: null, hit: null },
  patterns: [],
  viewerLibrary: false,
};
window.matconceptResults = hooks;

const $ = (id) => document.getElementById(id);

export const el = {
  modelInfo: $("model-info"),
  queryForm: $("query-form"),
  queryInput: $("query-input"),
  upload: $("upload-input"),
  dropZone: $("drop-zone"),
  dropOverlay: $("drop-overlay"),
  progress: $("progress"),
  status: $("status"),
  options: $("options-form"),
  using: $("opt-using"),
  topK: $("opt-top-k"),
  elementsAll: $("opt-elements-all"),
  elementsNone: $("opt-elements-none"),
  elementsOnly: $("opt-elements-only"),
  spacegroup: $("opt-spacegroup"),
  source: $("opt-source"),
  hitsTitle: $("hits-title"),
  matches: $("matches"),
  hits: $("hits"),
  compare: $("compare"),
  empty: $("empty"),
  compareBody: $("compare-body"),
  queryCaption: $("query-caption"),
  hitCaption: $("hit-caption"),
  download: $("download-cif"),
  viewers: { query: $("viewer-query"), hit: $("viewer-hit") },
  viewerNotes: { query: $("viewer-query-note"), hit: $("viewer-hit-note") },
  viewerInfo: { query: $("viewer-query-info"), hit: $("viewer-hit-info") },
  pattern: $("pattern"),
  patternNote: $("pattern-note"),
  patternHint: $("pattern-hint"),
  patternMirror: $("pattern-mirror"),
  details: $("details"),
};

export const state = {
  meta: null, // GET /v1/map/meta: the API paths
  query: null, // {id} | {formula} | {file: File, kind: "structure" | "pattern"}
  options: null, // {using, top_k, elements_all, elements_none, spacegroup, source}
  result: null, // the POST /v1/search answer
  selected: null, // the hit compared with the query
  querySide: null, // Promise of {label, structure: {text, format} | null, pattern, note}
  formulaIndex: null, // Promise of Map(formula key -> [material id]), from the map's points
  token: 0, // the newest search; older answers are dropped
  compareToken: 0, // the newest comparison
};

/** The API paths of the meta answer (GET /v1/map/meta). */
export function paths() {
  return state.meta.api;
}
