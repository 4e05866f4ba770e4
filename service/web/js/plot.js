/*
 * The plot, drawn with plotly.js. The stored points are `scattergl` traces (WebGL, smooth at
 * 100k+ points), coloured by a field of GET /v1/map/meta; the search matches, the neighbours, the
 * selected point and an uploaded query are small SVG `scatter` traces on top of them. (plotly
 * stacks its WebGL canvas above the SVG plot layer; map.css puts the canvas underneath instead,
 * and the plot backgrounds are transparent.)
 */

import { escapeHtml, formatDistance, formulaHtml, normaliseElement, symbolHtml } from "./format.js";
import { groupBy } from "./points.js";
import { el, hooks, state } from "./state.js";

const GREY = "#c5cbd3";
const ELEMENT_COLOR = "#2563eb";
// Tableau 10 without its red, which belongs to the query star.
const PALETTE = [
  "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2",
  "#edc948", "#9c755f", "#ff9da7", "#17becf", "#bab0ac",
];
const QUERY_COLOR = "#e11d48";
const NEIGHBOUR_COLOR = "#111827";
const MATCH_COLOR = "#0891b2";
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

const PLOT_CONFIG = {
  responsive: true,
  displaylogo: false,
  scrollZoom: true,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "toggleSpikelines"],
  toImageButtonOptions: { filename: "matconcept-map", scale: 2 },
};

let onPointClick = () => {};

/** What a click on a point does: `handler(point index)` (stored points only). */
export function setPointClickHandler(handler) {
  onPointClick = handler;
}

function markerSize() {
  if (state.n < 200) return 10;
  if (state.n < 2000) return 8;
  if (state.n < 20000) return 5;
  return 3;
}

/** A scattergl trace of the points at `indices`. */
function glTrace(name, indices, marker, showlegend) {
  const p = state.points;
  const m = indices.length;
  const x = new Float64Array(m);
  const y = new Float64Array(m);
  const text = new Array(m);
  for (let k = 0; k < m; k += 1) {
    const i = indices[k];
    x[k] = p.x[i];
    y[k] = p.y[i];
    text[k] = state.hoverText[i];
  }
  return {
    type: "scattergl",
    mode: "markers",
    name,
    x,
    y,
    text,
    customdata: Int32Array.from(indices),
    hovertemplate: "%{text}<extra></extra>",
    marker: Object.assign({ size: markerSize(), opacity: 0.85, line: { width: 0 } }, marker),
    showlegend: showlegend !== false,
  };
}

function elementTraces(element) {
  const p = state.points;
  const groups = groupBy((i) => (element && (p.elements[i] || []).indexOf(element) >= 0 ? "yes" : "no"));
  return [
    glTrace(element ? `without ${element}` : "all materials", groups.get("no") || [], { color: GREY }),
    glTrace(`with ${element}`, groups.get("yes") || [], { color: ELEMENT_COLOR, opacity: 0.9 }),
  ];
}

/** A colour scale with a colour bar, and the materials without a value in grey. */
function numericTraces(field) {
  const values = state.points[field.column] || [];
  const present = (i) => values[i] !== null && values[i] !== undefined;
  const groups = groupBy((i) => (present(i) ? "known" : "unknown"));
  const known = groups.get("known") || [];
  const name = field.label.toLowerCase();
  const range = field.range || [Math.min(...known.map((i) => values[i])), Math.max(...known.map((i) => values[i]))];
  return [
    glTrace(field.missing, groups.get("unknown") || [], { color: GREY }),
    glTrace(
      name,
      known,
      {
        color: known.map((i) => values[i]),
        colorscale: "Viridis",
        cmin: range[0],
        cmax: range[1],
        showscale: true,
        colorbar: {
          title: { text: name, side: "right" },
          thickness: 12,
          len: 0.6,
          tickvals: field.ticks.map((t) => t.value),
          ticktext: field.ticks.map((t) => t.label),
          outlinewidth: 0,
          tickfont: { size: 10 },
        },
      },
      false,
    ),
  ];
}

/** One trace per value: in the field's order, ascending, or most frequent first; missing last, grey. */
function categoricalTraces(field) {
  const values = state.points[field.column] || [];
  const missing = "\u0000missing";
  const groups = groupBy((i) => (values[i] === null || values[i] === undefined || values[i] === "" ? missing : values[i]));
  const unknown = groups.get(missing);
  groups.delete(missing);
  const order = field.order || [];
  const rank = (value) => (order.indexOf(value) >= 0 ? order.indexOf(value) : order.length);
  const ordered = Array.from(groups.entries()).sort((a, b) => {
    const byOrder = rank(a[0]) - rank(b[0]);
    if (byOrder) return byOrder;
    if (field.sort === "value") return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0;
    return b[1].length - a[1].length;
  });
  const label = (value) => (field.unit ? `${value} ${field.unit}${value === 1 ? "" : "s"}` : String(value));
  const traces = ordered.map((entry, k) => {
    const colour = PALETTE[(rank(entry[0]) < order.length ? rank(entry[0]) : k) % PALETTE.length];
    return glTrace(`${label(entry[0])} (${entry[1].length})`, entry[1], { color: colour });
  });
  if (unknown) traces.push(glTrace(`${field.missing} (${unknown.length})`, unknown, { color: GREY }));
  return traces;
}

/** The stored points coloured by the chosen field: a list of scattergl traces (cached per field). */
function baseTraces() {
  const field = state.fields.get(el.colorBy.value) || state.fields.get(state.meta.default_field);
  const element = normaliseElement(el.element.value);
  const key = field.kind === "element" ? `element:${element}` : field.key;
  if (state.baseCache.has(key)) {
    return state.baseCache.get(key);
  }
  let traces;
  if (field.kind === "element") {
    traces = elementTraces(element);
  } else if (field.kind === "numeric") {
    traces = numericTraces(field);
  } else {
    traces = categoricalTraces(field);
  }
  state.baseCache.set(key, traces);
  return traces;
}

function queryHover(q) {
  const s = q.structure;
  let text = `<b>query: ${escapeHtml(q.label)}</b><br>${q.kind === "pattern" ? "XRD pattern" : "structure"}`;
  if (s) {
    text += `<br>${formulaHtml(s.formula)}${s.spacegroup_symbol ? ` · ${symbolHtml(s.spacegroup_symbol)}` : ""}`;
  }
  return text;
}

/** The SVG traces drawn over the stored points: matches, neighbours, the selected point, the query. */
function overlayTraces() {
  const traces = [];
  const m = state.matches;
  traces.push({
    type: "scatter",
    mode: "markers",
    name: "search matches",
    x: m.map((i) => state.points.x[i]),
    y: m.map((i) => state.points.y[i]),
    text: m.map((i) => state.hoverText[i]),
    customdata: m,
    hovertemplate: "%{text}<extra>match</extra>",
    marker: { size: 18, symbol: "circle-open", color: MATCH_COLOR, line: { width: 3, color: MATCH_COLOR } },
    showlegend: m.length > 0,
  });
  const shown = state.neighbours.filter((h) => h.x !== null && h.y !== null);
  traces.push({
    type: "scatter",
    mode: "markers+text",
    name: "neighbours",
    x: shown.map((h) => h.x),
    y: shown.map((h) => h.y),
    text: shown.map((h) => String(h.rank)),
    textposition: "top right",
    textfont: { size: 11, color: NEIGHBOUR_COLOR, family: FONT },
    customdata: shown.map((h) => (state.idIndex.has(h.material_id) ? state.idIndex.get(h.material_id) : -1)),
    hovertext: shown.map(
      (h) =>
        `<b>#${h.rank} ${formulaHtml(h.formula)}</b><br>${escapeHtml(h.material_id)}<br>distance ${formatDistance(h.distance)}`,
    ),
    hovertemplate: "%{hovertext}<extra>neighbour</extra>",
    marker: { size: 13, symbol: "circle-open", color: NEIGHBOUR_COLOR, line: { width: 2, color: NEIGHBOUR_COLOR } },
    cliponaxis: false,
    showlegend: shown.length > 0,
  });
  const selected = state.selected === null ? [] : [state.selected];
  traces.push({
    type: "scatter",
    mode: "markers",
    name: "selected",
    x: selected.map((i) => state.points.x[i]),
    y: selected.map((i) => state.points.y[i]),
    text: selected.map((i) => state.hoverText[i]),
    customdata: selected,
    hovertemplate: "%{text}<extra>selected</extra>",
    marker: { size: 16, symbol: "diamond", color: "#fbbf24", line: { width: 2, color: NEIGHBOUR_COLOR } },
    showlegend: selected.length > 0,
  });
  const q = state.query;
  traces.push({
    type: "scatter",
    mode: "markers",
    name: "query",
    x: q ? [q.x] : [],
    y: q ? [q.y] : [],
    customdata: q ? [-1] : [],
    hovertext: q ? [queryHover(q)] : [],
    hovertemplate: "%{hovertext}<extra>query</extra>",
    marker: { size: 26, symbol: "star", color: QUERY_COLOR, line: { width: 1.5, color: "#ffffff" } },
    cliponaxis: false,
    showlegend: q !== null,
  });
  return traces;
}

function plotLayout() {
  // No grid: layout coordinates mean nothing by themselves, and the SVG layer (grid included) is
  // lifted above the WebGL points (map.css) so the overlays are on top.
  const axis = {
    showgrid: false,
    zeroline: false,
    showticklabels: false,
    ticks: "",
    showline: true,
    linecolor: "#dde2e8",
    mirror: true,
  };
  return {
    margin: { l: 12, r: 12, t: 12, b: 12 },
    xaxis: Object.assign({}, axis),
    yaxis: Object.assign({}, axis),
    hovermode: "closest",
    dragmode: "pan",
    uirevision: hooks.layoutId || "none",
    // Transparent: the SVG layer lies over the WebGL canvas (map.css); the div is white.
    plot_bgcolor: "rgba(0,0,0,0)",
    paper_bgcolor: "rgba(0,0,0,0)",
    font: { family: FONT, size: 12, color: "#1c2430" },
    legend: {
      x: 0.01,
      y: 0.99,
      xanchor: "left",
      yanchor: "top",
      bgcolor: "rgba(255,255,255,0.88)",
      bordercolor: "#dde2e8",
      borderwidth: 1,
      font: { size: 12 },
      itemsizing: "constant",
    },
    hoverlabel: { bgcolor: "#ffffff", bordercolor: "#cfd6df", font: { family: FONT, size: 12, color: "#1c2430" } },
  };
}

function onPlotClick(event) {
  const point = event && event.points && event.points[0];
  if (!point) return;
  const trace = el.map.data[point.curveNumber];
  const index = trace && trace.customdata ? Number(trace.customdata[point.pointNumber]) : -1;
  if (index >= 0) onPointClick(index);
}

/** Draw (or update) the plot: the stored points in the chosen colours and the overlays. */
export async function render() {
  if (!state.points) return;
  const traces = baseTraces().concat(overlayTraces());
  if (!state.plotted) {
    await Plotly.newPlot(el.map, traces, plotLayout(), PLOT_CONFIG);
    state.plotted = true;
    el.map.on("plotly_click", onPlotClick);
  } else {
    await Plotly.react(el.map, traces, plotLayout(), PLOT_CONFIG);
  }
}

function extent() {
  const p = state.points;
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < state.n; i += 1) {
    x0 = Math.min(x0, p.x[i]);
    x1 = Math.max(x1, p.x[i]);
    y0 = Math.min(y0, p.y[i]);
    y1 = Math.max(y1, p.y[i]);
  }
  return { x: [x0, x1], y: [y0, y1] };
}

/** Pan/zoom so that `xy` points are in view: centred on them, keeping a readable span. */
export async function centreOn(xys) {
  if (!xys.length || !state.plotted) return;
  const xs = xys.map((p) => p.x);
  const ys = xys.map((p) => p.y);
  const full = extent();
  const minSpanX = (full.x[1] - full.x[0]) * 0.2 || 1;
  const minSpanY = (full.y[1] - full.y[0]) * 0.2 || 1;
  const lo = [Math.min.apply(null, xs), Math.min.apply(null, ys)];
  const hi = [Math.max.apply(null, xs), Math.max.apply(null, ys)];
  const spanX = Math.max((hi[0] - lo[0]) * 1.3, minSpanX);
  const spanY = Math.max((hi[1] - lo[1]) * 1.3, minSpanY);
  const cx = (lo[0] + hi[0]) / 2;
  const cy = (lo[1] + hi[1]) / 2;
  await Plotly.relayout(el.map, {
    "xaxis.range": [cx - spanX / 2, cx + spanX / 2],
    "yaxis.range": [cy - spanY / 2, cy + spanY / 2],
  });
}
