/*
 * The powder patterns of the query and the selected hit, overlaid (plotly.js, loaded before this
 * module as the global `Plotly`), each scaled to its strongest peak = 100; "mirror" draws the hit's
 * downwards, so that matching peaks face each other.
 */

import { el, hooks } from "./state.js";

const QUERY_COLOR = "#e11d48";
const HIT_COLOR = "#2563eb";
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';
const CONFIG = {
  responsive: true,
  displaylogo: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "toggleSpikelines", "autoScale2d"],
  toImageButtonOptions: { filename: "matconcept-patterns", scale: 2 },
};

/** Intensities scaled so that the strongest is `top` (100, or -100 for the mirrored hit). */
function scaled(intensity, top) {
  let max = 0;
  for (const v of intensity) if (v > max) max = v;
  return max > 0 ? intensity.map((v) => (top * Math.max(v, 0)) / max) : intensity.map(() => 0);
}

/**
 * A plotly line trace. A simulated pattern comes sparse (its non-zero bins on the model's grid, see
 * PatternOut in service/app/schemas.py) and is drawn as sticks, one per bin; a measured one as a line.
 */
function trace(uid, pattern, sign, color) {
  const y = scaled(pattern.intensity, 100 * sign);
  const shown = scaled(pattern.intensity, 100);
  let xs = pattern.two_theta;
  let ys = y;
  let custom = shown;
  if (pattern.sticks) {
    xs = [];
    ys = [];
    custom = [];
    pattern.two_theta.forEach((t, i) => {
      xs.push(t, t, null);
      ys.push(0, y[i], null);
      custom.push(shown[i], shown[i], null);
    });
  }
  return {
    uid,
    type: "scatter",
    mode: "lines",
    name: pattern.label,
    x: xs,
    y: ys,
    connectgaps: false,
    // The query's lines wide and pale under the hit's narrow ones: where they coincide, both show.
    line: { color, width: uid === "query" && pattern.sticks ? 4 : 1.4 },
    opacity: uid === "query" ? 0.45 : 0.95,
    hovertemplate: "2θ %{x:.2f}°<br>%{customdata:.1f}<extra>" + uid + "</extra>",
    customdata: custom,
  };
}

let shown = { query: null, hit: null, note: "" };

/** Draw the patterns ({label, two_theta, intensity} or null each); a note says what is missing. */
export async function drawPatterns(query, hit, note) {
  shown = { query, hit, note };
  el.patternNote.hidden = !note;
  el.patternNote.textContent = note || "";
  if (typeof Plotly === "undefined") {
    el.patternNote.hidden = false;
    el.patternNote.textContent = "plotly.js did not load (/map/static/plotly.min.js); the patterns cannot be drawn.";
    return;
  }
  const mirror = el.patternMirror.checked;
  const traces = [];
  if (query) traces.push(trace("query", query, 1, QUERY_COLOR));
  if (hit) traces.push(trace("hit", hit, mirror ? -1 : 1, HIT_COLOR));
  const ends = [query, hit]
    .filter(Boolean)
    .flatMap((p) => p.range || [p.two_theta[0], p.two_theta[p.two_theta.length - 1]]);
  const layout = {
    margin: { l: 50, r: 16, t: 8, b: 42 },
    font: { family: FONT, size: 12, color: "#1c2430" },
    xaxis: {
      title: { text: "2θ (°, Cu Kα)" },
      range: ends.length ? [Math.min(...ends), Math.max(...ends)] : undefined,
      zeroline: false,
      gridcolor: "#eef1f5",
    },
    yaxis: {
      title: { text: mirror ? "intensity (hit mirrored)" : "intensity" },
      range: mirror ? [-108, 108] : [0, 108],
      tickvals: mirror ? [-100, -50, 0, 50, 100] : [0, 25, 50, 75, 100],
      ticktext: mirror ? ["100", "50", "0", "50", "100"] : ["0", "25", "50", "75", "100"],
      zeroline: true,
      zerolinecolor: "#94a3b8",
      gridcolor: "#eef1f5",
    },
    legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
    showlegend: true,
    paper_bgcolor: "#fff",
    plot_bgcolor: "#fff",
  };
  el.pattern.hidden = !traces.length;
  if (traces.length) {
    await Plotly.react(el.pattern, traces, layout, CONFIG);
  } else {
    Plotly.purge(el.pattern);
  }
  hooks.patterns = [query, hit]
    .filter(Boolean)
    .map((p, k) => ({ uid: traces[k].uid, name: p.label, n: p.two_theta.length, sticks: Boolean(p.sticks) }));
}

/** Redraw the last patterns (the mirror switch changed). */
export function redrawPatterns() {
  return drawPatterns(shown.query, shown.hit, shown.note);
}
