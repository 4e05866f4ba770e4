/* The loaded /v1/map/points columns and their indexes: by id, by formula, by element; hover texts. */

import { escapeHtml, formulaHtml, symbolHtml } from "./format.js";
import { el, state } from "./state.js";

export function indexPoints(points) {
  const n = points.material_id.length;
  state.points = points;
  state.n = n;
  state.idIndex = new Map();
  state.formulaIndex = new Map();
  state.hoverText = new Array(n);
  state.elementCounts = new Map();
  state.baseCache = new Map();
  const systems = points.crystal_system || [];
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
    const system = systems[i] ? `, ${escapeHtml(systems[i])}` : "";
    const group = symbol ? `${symbolHtml(symbol)}${number ? ` (${number})` : ""}${system}` : "unknown";
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

/** Point indices grouped by `keyOf(index)`, in order of first appearance. */
export function groupBy(keyOf) {
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

export function pointXY(index) {
  return { x: state.points.x[index], y: state.points.y[index] };
}
