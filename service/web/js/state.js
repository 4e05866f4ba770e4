/*
 * The page's shared state: the DOM elements it drives, what is loaded and shown, and the test hooks.
 *
 * Test hooks: window.matconceptMap = {ready, query: {x, y} | null, nPoints, seq, busy, layoutId};
 * `seq` grows each time the neighbours list is redrawn or an error is shown.
 */

export const hooks = {
  ready: false,
  query: null,
  nPoints: 0,
  seq: 0,
  busy: false,
  layoutId: null,
};
window.matconceptMap = hooks;

const $ = (id) => document.getElementById(id);

export const el = {
  map: $("map"),
  mapWrap: $("map-wrap"),
  overlay: $("map-overlay"),
  dropOverlay: $("drop-overlay"),
  dropZone: $("drop-zone"),
  upload: $("upload-input"),
  neighbours: $("neighbours"),
  neighboursTitle: $("neighbours-title"),
  neighbourUsing: $("neighbour-using"),
  clear: $("clear-button"),
  status: $("status"),
  progress: $("progress"),
  colorBy: $("color-by"),
  element: $("element-input"),
  elementList: $("element-list"),
  searchForm: $("search-form"),
  search: $("search-input"),
  layoutInfo: $("layout-info"),
};

export const state = {
  meta: null, // GET /v1/map/meta: API paths and colour fields
  fields: new Map(), // colour field key -> its description (from meta)
  layout: null, // the /v1/map layout record of the loaded points
  points: null, // the /v1/map/points columns
  n: 0,
  idIndex: new Map(), // material id -> point index
  formulaIndex: new Map(), // reduced formula -> [point index]
  hoverText: [],
  elementCounts: new Map(),
  baseCache: new Map(), // colour mode key -> scattergl traces (same arrays reused: Plotly.react skips them)
  matches: [], // point indices of the last search
  selected: null, // point index whose neighbours are listed
  query: null, // {x, y, label, kind, structure}
  neighbours: [], // [{rank, material_id, distance, formula, spacegroup_symbol, source, x, y}]
  plotted: false,
  uploading: false,
  jobShown: false,
  pollTimer: null,
  token: 0, // the newest neighbours request; older answers are dropped
};

/** The API paths of the meta answer (GET /v1/map/meta). */
export function paths() {
  return state.meta.api;
}

/** Forget what was shown for the old points: positions from another layout mean nothing. */
export function clearSelection() {
  state.query = null;
  state.neighbours = [];
  state.selected = null;
  state.matches = [];
  hooks.query = null;
}
