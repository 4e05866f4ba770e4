/*
 * matconcept materials map: every stored material at its 2-d layout position (t-SNE or UMAP of
 * the embedding), drawn with plotly.js. The stored points are `scattergl` traces (WebGL, smooth at
 * 100k+ points); the search matches, the neighbours, the selected point and an uploaded query are
 * small SVG `scatter` traces on top of them. (plotly stacks its WebGL canvas above the SVG plot
 * layer; map.css puts the canvas underneath instead, and the plot backgrounds are transparent.)
 *
 * Service routes used: GET /v1/map (layout + job state), GET /v1/map/points (columnar points),
 * POST /v1/map/place (multipart upload -> query position + neighbours), POST /v1/search (neighbours
 * of a stored material). Errors are {"error": {"code", "reason", "message"}}; the message is shown.
 *
 * Test hooks: window.matconceptMap = {ready, query: {x, y} | null, nPoints, seq, busy, layoutId};
 * `seq` grows each time the neighbours list is redrawn or an error is shown.
 *
 * Plain ES2017, no build step, no library other than plotly.js.
 */
(function () {
  "use strict";

  const API = {
    map: "/v1/map",
    points: "/v1/map/points",
    place: "/v1/map/place",
    search: "/v1/search",
    material: "/v1/materials/",
  };
  const TOP_K = 10;
  const JOB_POLL_MS = 1000; // while a layout computation runs
  const IDLE_POLL_MS = 5000; // otherwise: notices a computation started elsewhere
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
  const SPACEGROUP_MAX = 230;
  const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
  const METHOD_NAMES = { tsne: "t-SNE", umap: "UMAP" };

  const hooks = {
    ready: false,
    query: null,
    nPoints: 0,
    seq: 0,
    busy: false,
    layoutId: null,
  };
  window.matconceptMap = hooks;

  const $ = (id) => document.getElementById(id);
  const el = {
    map: $("map"),
    mapWrap: $("map-wrap"),
    overlay: $("map-overlay"),
    dropOverlay: $("drop-overlay"),
    dropZone: $("drop-zone"),
    upload: $("upload-input"),
    neighbours: $("neighbours"),
    neighboursTitle: $("neighbours-title"),
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

  const state = {
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
    neighbours: [], // [{material_id, distance, formula, spacegroup_symbol, source, x, y}]
    plotted: false,
    uploading: false,
    jobShown: false,
    pollTimer: null,
    token: 0, // the newest neighbours request; older answers are dropped
  };

  // ---------------------------------------------------------------- helpers

  function escapeHtml(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }

  /** "BaTiO3" -> "BaTiO<sub>3</sub>" (escaped). */
  function formulaHtml(formula) {
    return escapeHtml(formula || "?").replace(/(\d+(?:\.\d+)?)/g, "<sub>$1</sub>");
  }

  /** The record of a stored material: /v1/materials/cod:1000000 (":" is fine in a path). */
  function materialUrl(id) {
    return API.material + encodeURIComponent(id).replace(/%3A/gi, ":");
  }

  /** Hermann–Mauguin symbol with its screw axes as subscripts: "P6_3/mmc" -> "P6<sub>3</sub>/mmc". */
  function symbolHtml(symbol) {
    return escapeHtml(symbol).replace(/_(\d)/g, "<sub>$1</sub>");
  }

  /** Three significant digits; exponent form below 1e-3 (a material found as itself: ~1e-6). */
  function formatDistance(d) {
    if (typeof d !== "number" || !isFinite(d)) return "–";
    return d !== 0 && Math.abs(d) < 1e-3 ? d.toExponential(2) : d.toPrecision(3);
  }

  /** The readable message of an error answer (never a raw body or a stack). */
  function errorMessage(status, text) {
    try {
      const body = JSON.parse(text);
      if (body && body.error && body.error.message) {
        return body.error.message;
      }
      if (body && typeof body.detail === "string") {
        return body.detail;
      }
    } catch (e) {
      // not JSON: fall through to a generic message
    }
    if (status === 0) {
      return "the service did not answer (network error)";
    }
    return `the service answered HTTP ${status} without an error message`;
  }

  class HttpError extends Error {
    constructor(status, message, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function requestJSON(url, options) {
    let response;
    try {
      response = await fetch(url, Object.assign({ headers: { accept: "application/json" } }, options || {}));
    } catch (e) {
      throw new HttpError(0, "the service did not answer (network error)");
    }
    const text = await response.text();
    if (!response.ok) {
      let code = null;
      try {
        code = JSON.parse(text).error.code;
      } catch (e) {
        code = null;
      }
      throw new HttpError(response.status, errorMessage(response.status, text), code);
    }
    try {
      return JSON.parse(text);
    } catch (e) {
      throw new HttpError(response.status, "the service answered with something that is not JSON");
    }
  }

  function setStatus(text, kind) {
    el.status.textContent = text || "";
    el.status.className = "status" + (kind ? " " + kind : "");
  }

  function showError(text) {
    setStatus(text, "error");
    hooks.seq += 1;
  }

  /** fraction in [0, 1]: a bar; null: an indeterminate bar; undefined: hidden. */
  function setProgress(fraction) {
    if (fraction === undefined) {
      el.progress.hidden = true;
      el.progress.value = 0;
      return;
    }
    el.progress.hidden = false;
    if (fraction === null) {
      el.progress.removeAttribute("value");
    } else {
      el.progress.value = Math.max(0, Math.min(1, fraction));
    }
  }

  function showOverlay(html) {
    if (html) {
      el.overlay.innerHTML = `<div class="box">${html}</div>`;
      el.overlay.hidden = false;
    } else {
      el.overlay.hidden = true;
      el.overlay.innerHTML = "";
    }
  }

  // ---------------------------------------------------------------- points

  function indexPoints(points) {
    const n = points.material_id.length;
    state.points = points;
    state.n = n;
    state.idIndex = new Map();
    state.formulaIndex = new Map();
    state.hoverText = new Array(n);
    state.elementCounts = new Map();
    state.baseCache = new Map();
    for (let i = 0; i < n; i += 1) {
      const id = points.material_id[i];
      const formula = points.formula[i];
      state.idIndex.set(id, i);
      const same = state.formulaIndex.get(formula);
      if (same) {
        same.push(i);
      } else {
        state.formulaIndex.set(formula, [i]);
      }
      for (const element of points.elements[i] || []) {
        state.elementCounts.set(element, (state.elementCounts.get(element) || 0) + 1);
      }
      const symbol = points.spacegroup_symbol[i];
      const number = points.spacegroup_number[i];
      const group = symbol ? `${symbolHtml(symbol)}${number ? ` (${number})` : ""}` : "unknown";
      state.hoverText[i] =
        `<b>${formulaHtml(formula)}</b><br>${escapeHtml(id)}` +
        `<br>space group: ${group}<br>source: ${escapeHtml(points.source[i])}`;
    }
    const elements = Array.from(state.elementCounts.entries()).sort((a, b) => b[1] - a[1]);
    el.elementList.innerHTML = "";
    for (const entry of elements) {
      const option = document.createElement("option");
      option.value = entry[0];
      option.label = `${entry[1]} materials`;
      el.elementList.appendChild(option);
    }
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

  function groupBy(keyOf) {
    const groups = new Map();
    for (let i = 0; i < state.n; i += 1) {
      const key = keyOf(i);
      const group = groups.get(key);
      if (group) {
        group.push(i);
      } else {
        groups.set(key, [i]);
      }
    }
    return groups;
  }

  function normaliseElement(text) {
    const t = (text || "").trim();
    return t ? t.charAt(0).toUpperCase() + t.slice(1).toLowerCase() : "";
  }

  /** The stored points coloured by the chosen mode: a list of scattergl traces (cached per mode). */
  function baseTraces() {
    const mode = el.colorBy.value;
    const element = normaliseElement(el.element.value);
    const key = mode === "element" ? `element:${element}` : mode;
    if (state.baseCache.has(key)) {
      return state.baseCache.get(key);
    }
    const p = state.points;
    let traces;
    if (mode === "element") {
      const groups = groupBy((i) => (element && (p.elements[i] || []).indexOf(element) >= 0 ? "yes" : "no"));
      traces = [
        glTrace(element ? `without ${element}` : "all materials", groups.get("no") || [], { color: GREY }),
        glTrace(`with ${element}`, groups.get("yes") || [], { color: ELEMENT_COLOR, opacity: 0.9 }),
      ];
    } else if (mode === "spacegroup") {
      const groups = groupBy((i) => (p.spacegroup_number[i] ? "known" : "unknown"));
      const known = groups.get("known") || [];
      traces = [
        glTrace("no space group", groups.get("unknown") || [], { color: GREY }),
        glTrace(
          "space group",
          known,
          {
            color: known.map((i) => p.spacegroup_number[i]),
            colorscale: "Viridis",
            cmin: 1,
            cmax: SPACEGROUP_MAX,
            showscale: true,
            colorbar: {
              title: { text: "space group", side: "right" },
              thickness: 12,
              len: 0.6,
              // The first space group of each crystal system (triclinic 1 and monoclinic 3 share a tick).
              tickvals: [1, 16, 75, 143, 168, 195, 230],
              ticktext: ["1 tricl./mono.", "16 orth.", "75 tetr.", "143 trig.", "168 hex.", "195 cubic", "230"],
              outlinewidth: 0,
              tickfont: { size: 10 },
            },
          },
          false,
        ),
      ];
    } else if (mode === "source") {
      const groups = groupBy((i) => p.source[i] || "unknown");
      const ordered = Array.from(groups.entries()).sort((a, b) => b[1].length - a[1].length);
      traces = ordered.map((entry, k) =>
        glTrace(`${entry[0]} (${entry[1].length})`, entry[1], { color: PALETTE[k % PALETTE.length] }),
      );
    } else {
      const groups = groupBy((i) => p.n_elements[i]);
      const ordered = Array.from(groups.entries()).sort((a, b) => a[0] - b[0]);
      traces = ordered.map((entry, k) =>
        glTrace(
          `${entry[0]} element${entry[0] === 1 ? "" : "s"} (${entry[1].length})`,
          entry[1],
          { color: PALETTE[k % PALETTE.length] },
        ),
      );
    }
    state.baseCache.set(key, traces);
    return traces;
  }

  function pointXY(index) {
    return { x: state.points.x[index], y: state.points.y[index] };
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
        (h) => `<b>#${h.rank} ${formulaHtml(h.formula)}</b><br>${escapeHtml(h.material_id)}<br>distance ${formatDistance(h.distance)}`,
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

  function queryHover(q) {
    const s = q.structure;
    let text = `<b>query: ${escapeHtml(q.label)}</b><br>${q.kind === "pattern" ? "XRD pattern" : "structure"}`;
    if (s) {
      text += `<br>${formulaHtml(s.formula)}${s.spacegroup_symbol ? ` · ${symbolHtml(s.spacegroup_symbol)}` : ""}`;
    }
    return text;
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

  const PLOT_CONFIG = {
    responsive: true,
    displaylogo: false,
    scrollZoom: true,
    modeBarButtonsToRemove: ["select2d", "lasso2d", "toggleSpikelines"],
    toImageButtonOptions: { filename: "matconcept-map", scale: 2 },
  };

  async function render() {
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

  /** Pan/zoom so that `xy` points are in view: centred on them, keeping a readable span. */
  async function centreOn(xys) {
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

  // ---------------------------------------------------------------- layout job and loading

  function describeLayout(layout) {
    if (!layout) {
      el.layoutInfo.textContent = "no map computed yet";
      return;
    }
    const method = METHOD_NAMES[layout.method] || layout.method;
    const when = layout.created_at
      ? String(layout.created_at)
          .replace("T", " ")
          .replace(/(\.\d+)?(Z|[+-]00:?00)$/, " UTC")
          .replace(/\.\d+/, "")
      : "";
    const parts = [
      `<b>${escapeHtml(method)}</b> of <b>${Number(layout.n_points).toLocaleString("en")}</b> materials`,
      `model ${escapeHtml(layout.model_id)}`,
    ];
    if (when) {
      const took = typeof layout.elapsed_s === "number" ? ` in ${layout.elapsed_s.toFixed(1)} s` : "";
      parts.push(`computed ${escapeHtml(when)}${took}`);
    }
    el.layoutInfo.innerHTML = parts.join(" · ");
  }

  function schedulePoll(ms) {
    clearTimeout(state.pollTimer);
    state.pollTimer = setTimeout(poll, ms);
  }

  async function poll() {
    let info;
    try {
      info = await requestJSON(API.map);
    } catch (e) {
      if (!state.uploading) showError(`Map state: ${e.message}`);
      schedulePoll(IDLE_POLL_MS);
      return;
    }
    const job = info.job || { state: "idle", stage: "", progress: 0, message: "" };
    const layout = info.layout;
    if (job.state === "running") {
      showJob(job);
      if (layout && !state.points) {
        await loadPoints(layout); // an older layout, shown until the new one is ready
      } else if (!state.points) {
        describeLayout(null);
      }
      schedulePoll(JOB_POLL_MS);
      return;
    }
    const wasShown = state.jobShown;
    hideJob();
    if (job.state === "failed") {
      showError(`Map computation failed: ${job.message || "no message"}`);
    } else if (wasShown && !state.uploading) {
      setStatus("");
    }
    if (layout && layout.layout_id !== hooks.layoutId) {
      await loadPoints(layout);
    } else if (!layout && !state.points) {
      describeLayout(null);
      showOverlay(
        "<b>No map yet.</b><br>It is computed from the stored embeddings with " +
          "<code>POST /v1/map/layout</code> (needs the API key); this page loads it when it is ready.",
      );
    }
    schedulePoll(IDLE_POLL_MS);
  }

  function showJob(job) {
    state.jobShown = true;
    if (state.uploading) return; // the upload owns the bar; the map overlay still tells
    const pct = Math.round((job.progress || 0) * 100);
    setStatus(`Computing the map: ${job.stage || "running"} (${pct}%)${job.message ? ` — ${job.message}` : ""}`);
    setProgress(job.progress || 0);
    if (!state.points) {
      showOverlay(`<b>Computing the map…</b><br>${escapeHtml(job.stage || "running")} · ${pct}%`);
    }
  }

  function hideJob() {
    if (state.jobShown && !state.uploading) setProgress(undefined);
    state.jobShown = false;
  }

  async function loadPoints(layout) {
    let points;
    try {
      points = await requestJSON(API.points);
    } catch (e) {
      if (e.code === "NOT_FOUND") return;
      showError(`Loading the map: ${e.message}`);
      return;
    }
    indexPoints(points);
    hooks.layoutId = points.layout_id;
    state.layout = layout;
    // Positions from an older layout mean nothing on this one.
    state.query = null;
    state.neighbours = [];
    state.selected = null;
    state.matches = [];
    hooks.query = null;
    renderNeighbours(null);
    describeLayout(layout);
    showOverlay(state.n ? null : "<b>The map is empty.</b><br>Store some structures and compute it again.");
    await render();
    hooks.nPoints = state.n;
    hooks.ready = true;
  }

  // ---------------------------------------------------------------- neighbours

  function renderNeighbours(titleHtml) {
    el.neighbours.innerHTML = "";
    el.neighboursTitle.innerHTML = titleHtml || "Click a point, search, or upload a file.";
    const anything = state.neighbours.length || state.query || state.selected !== null || state.matches.length;
    el.clear.hidden = !anything;
    for (const hit of state.neighbours) {
      const li = document.createElement("li");
      li.dataset.materialId = hit.material_id;
      li.dataset.distance = String(hit.distance);
      li.title = "Show on the map";
      const onMap = hit.x !== null && hit.y !== null;
      const group = hit.spacegroup_symbol ? ` · ${symbolHtml(hit.spacegroup_symbol)}` : "";
      li.innerHTML =
        `<span class="rank">${hit.rank}</span>` +
        `<span class="what"><div class="formula">${formulaHtml(hit.formula)}</div>` +
        `<div class="meta"><a href="${materialUrl(hit.material_id)}" target="_blank" ` +
        `rel="noopener">${escapeHtml(hit.material_id)}</a>${group}` +
        `${hit.source ? ` · ${escapeHtml(hit.source)}` : ""}` +
        `${onMap ? "" : ' <span class="off-map">(not on this map)</span>'}</div></span>` +
        `<span class="distance" title="distance in the embedding space">${formatDistance(hit.distance)}</span>`;
      li.addEventListener("click", (event) => {
        if (event.target.closest("a")) return;
        const index = state.idIndex.get(hit.material_id);
        if (index !== undefined) selectPoint(index);
      });
      el.neighbours.appendChild(li);
    }
    hooks.seq += 1;
  }

  function onPlotClick(event) {
    const point = event && event.points && event.points[0];
    if (!point) return;
    const trace = el.map.data[point.curveNumber];
    const index = trace && trace.customdata ? Number(trace.customdata[point.pointNumber]) : -1;
    if (index >= 0) selectPoint(index);
  }

  /** List the neighbours of stored point `index` (POST /v1/search) and mark them on the map. */
  async function selectPoint(index) {
    const p = state.points;
    const id = p.material_id[index];
    const token = ++state.token;
    state.selected = index;
    hooks.busy = true;
    setStatus(`Finding the neighbours of ${id}…`);
    let answer;
    try {
      answer = await requestJSON(API.search, {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body: JSON.stringify({ material_id: id, top_k: TOP_K }),
      });
    } catch (e) {
      if (token === state.token) {
        hooks.busy = false;
        showError(`Neighbours of ${id}: ${e.message}`);
      }
      return;
    }
    if (token !== state.token) return;
    state.neighbours = (answer.hits || []).map((hit, k) => {
      const payload = hit.payload || {};
      const at = state.idIndex.get(hit.material_id);
      return {
        rank: k + 1,
        material_id: hit.material_id,
        distance: hit.distance,
        formula: payload.formula || "?",
        spacegroup_symbol: payload.spacegroup_symbol || null,
        source: payload.source || "",
        x: at === undefined ? null : p.x[at],
        y: at === undefined ? null : p.y[at],
      };
    });
    const group = p.spacegroup_symbol[index] ? ` · ${symbolHtml(p.spacegroup_symbol[index])}` : "";
    renderNeighbours(
      `Nearest to <b>${formulaHtml(p.formula[index])}</b> <span>(${escapeHtml(id)}${group})</span>`,
    );
    setStatus(`${state.neighbours.length} neighbours of ${id}.`, "ok");
    await render();
    hooks.busy = false;
  }

  // ---------------------------------------------------------------- upload and placement

  function upload(file) {
    if (!file) return;
    if (!state.points) {
      showError("The map is not loaded yet: wait until it is computed, then upload again.");
      return;
    }
    const token = ++state.token;
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("top_k", String(TOP_K));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", API.place);
    xhr.setRequestHeader("accept", "application/json");
    state.uploading = true;
    hooks.busy = true;
    setStatus(`Uploading ${file.name}…`);
    setProgress(0);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable && e.total > 0) {
        setProgress(e.loaded / e.total);
        setStatus(`Uploading ${file.name}… ${Math.round((100 * e.loaded) / e.total)}%`);
      }
    };
    xhr.upload.onload = () => {
      setProgress(null);
      setStatus(`Embedding and placing ${file.name}…`);
    };
    const finish = () => {
      state.uploading = false;
      setProgress(undefined);
      if (token === state.token) hooks.busy = false;
    };
    xhr.onload = () => {
      finish();
      if (token !== state.token) return;
      if (xhr.status < 200 || xhr.status >= 300) {
        const message = errorMessage(xhr.status, xhr.responseText);
        showError(message.indexOf(file.name) >= 0 ? message : `${file.name}: ${message}`);
        return;
      }
      let answer;
      try {
        answer = JSON.parse(xhr.responseText);
      } catch (e) {
        showError(`${file.name}: the service answered with something that is not JSON`);
        return;
      }
      hooks.busy = true;
      placeQuery(answer, file.name).then(
        () => {
          hooks.busy = false;
        },
        (e) => {
          hooks.busy = false;
          showError(`${file.name}: ${e.message}`);
        },
      );
    };
    xhr.onerror = () => {
      finish();
      if (token === state.token) showError(`${file.name}: upload failed, the service did not answer (network error)`);
    };
    xhr.send(form);
  }

  async function placeQuery(answer, fileName) {
    const q = answer.query;
    if (answer.layout_id && answer.layout_id !== hooks.layoutId) {
      schedulePoll(0); // the map was recomputed meanwhile: reload it (the query is still listed)
    }
    state.selected = null;
    state.query = { x: q.x, y: q.y, label: q.label || fileName, kind: q.kind, structure: q.structure || null };
    state.neighbours = (answer.hits || []).map((hit, k) => ({
      rank: k + 1,
      material_id: hit.material_id,
      distance: hit.distance,
      formula: hit.formula || "?",
      spacegroup_symbol: hit.spacegroup_symbol || null,
      source: hit.source || "",
      x: typeof hit.x === "number" ? hit.x : null,
      y: typeof hit.y === "number" ? hit.y : null,
    }));
    const s = q.structure;
    const what = q.kind === "pattern" ? "XRD pattern" : "structure";
    const sameAsFormula = s && s.formula === state.query.label;
    let title = `Nearest to your ${what} <b>${sameAsFormula ? formulaHtml(s.formula) : escapeHtml(state.query.label)}</b>`;
    if (s) {
      const facts = [];
      if (!sameAsFormula) facts.push(formulaHtml(s.formula));
      if (s.spacegroup_symbol) facts.push(symbolHtml(s.spacegroup_symbol));
      if (s.n_sites) facts.push(`${s.n_sites} sites`);
      if (s.disordered) facts.push("disordered");
      if (facts.length) title += ` <span>(${facts.join(" · ")})</span>`;
    }
    renderNeighbours(title);
    setStatus(`${state.query.label} placed at (${q.x.toPrecision(3)}, ${q.y.toPrecision(3)}) with ${state.neighbours.length} neighbours.`, "ok");
    await render();
    const near = state.neighbours.filter((h) => h.x !== null && h.y !== null);
    await centreOn([{ x: q.x, y: q.y }].concat(near.map((h) => ({ x: h.x, y: h.y }))));
    hooks.query = { x: q.x, y: q.y };
  }

  // ---------------------------------------------------------------- search and colouring

  async function search(text) {
    const q = (text || "").trim();
    if (!state.points) {
      showError("The map is not loaded yet.");
      return;
    }
    if (!q) {
      state.matches = [];
      setStatus("");
      await render();
      return;
    }
    let matches = [];
    if (state.idIndex.has(q)) {
      matches = [state.idIndex.get(q)];
    } else if (state.formulaIndex.has(q)) {
      matches = state.formulaIndex.get(q).slice();
    }
    state.matches = matches;
    if (!matches.length) {
      setStatus(`Nothing matches “${q}”: give an exact reduced formula (case-sensitive, e.g. BaTiO3) or a material id (e.g. cod:1000000).`, "warn");
      hooks.seq += 1;
      await render();
      return;
    }
    setStatus(
      matches.length === 1 ? `1 material matches “${q}”.` : `${matches.length} materials match “${q}”.`,
      "ok",
    );
    await render();
    await centreOn(matches.map(pointXY));
    if (matches.length === 1) await selectPoint(matches[0]);
  }

  function onColourChange() {
    const mode = el.colorBy.value;
    el.element.classList.toggle("inactive", mode !== "element");
    if (mode === "element") {
      const element = normaliseElement(el.element.value);
      if (element && state.points && !state.elementCounts.has(element)) {
        setStatus(`No material on the map contains ${element}.`, "warn");
      } else if (element && state.points) {
        setStatus(`${state.elementCounts.get(element)} of ${state.n} materials contain ${element}.`);
      }
    }
    render();
  }

  // ---------------------------------------------------------------- wiring

  function wire() {
    el.colorBy.addEventListener("change", onColourChange);
    let typing = null;
    el.element.addEventListener("input", () => {
      if (!normaliseElement(el.element.value)) return;
      el.colorBy.value = "element"; // typing an element means colouring by it
      el.element.classList.remove("inactive");
      clearTimeout(typing);
      typing = setTimeout(onColourChange, 250); // redraw once typing pauses
    });
    el.element.addEventListener("change", () => {
      el.element.value = normaliseElement(el.element.value);
    });
    el.searchForm.addEventListener("submit", (event) => {
      event.preventDefault();
      search(el.search.value);
    });
    el.upload.addEventListener("change", () => {
      const file = el.upload.files && el.upload.files[0];
      upload(file);
      el.upload.value = ""; // the same file can be chosen again
    });
    el.clear.addEventListener("click", () => {
      state.query = null;
      state.neighbours = [];
      state.selected = null;
      state.matches = [];
      state.token += 1;
      hooks.query = null;
      renderNeighbours(null);
      setStatus("");
      render();
    });

    // Drag and drop onto the map (or the drop zone); elsewhere a dropped file must not navigate away.
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).indexOf("Files") >= 0;
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    for (const target of [el.mapWrap, el.dropZone]) {
      target.addEventListener("dragenter", (e) => {
        if (!hasFiles(e)) return;
        depth += 1;
        el.dropZone.classList.add("dragging");
        if (target === el.mapWrap) el.dropOverlay.hidden = false;
      });
      target.addEventListener("dragleave", () => {
        depth = Math.max(0, depth - 1);
        if (!depth) {
          el.dropOverlay.hidden = true;
          el.dropZone.classList.remove("dragging");
        }
      });
      target.addEventListener("drop", (e) => {
        e.preventDefault();
        depth = 0;
        el.dropOverlay.hidden = true;
        el.dropZone.classList.remove("dragging");
        const file = e.dataTransfer && e.dataTransfer.files && e.dataTransfer.files[0];
        upload(file);
      });
    }
  }

  wire();
  el.element.classList.toggle("inactive", el.colorBy.value !== "element");
  if (typeof Plotly === "undefined") {
    showError("plotly.js did not load (/map/static/plotly.min.js); the map cannot be drawn.");
  } else {
    showOverlay("Loading the map…");
    poll();
  }
})();
