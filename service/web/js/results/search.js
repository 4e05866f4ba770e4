/*
 * Running a query: a material id (its stored vector is the query), a formula (the stored materials
 * with it; the first is the query, the others are offered), or an uploaded file (a structure or a
 * measured pattern, embedded by the service, stored nowhere). The hits are listed and the nearest
 * one (other than the query itself) is compared with it.
 */

import { postForm, postJSON } from "../api.js";
import { escapeHtml, formulaHtml } from "../format.js";
import { clearComparison, loadQuerySide, selectHit } from "./compare.js";
import { materialsOfFormula } from "./formula.js";
import { NOTIONS, clearHits, renderHits } from "./hits.js";
import { addressOf, filtersOf, queryLabel } from "./query.js";
import { el, hooks, paths, state } from "./state.js";
import { setProgress, setStatus, showError } from "./ui.js";

/** Keep the address bar on the current query, its options and the selected hit (shareable). */
function remember(push) {
  const hit = state.selected ? state.selected.material_id : null;
  const address = addressOf(state.query, state.options, hit);
  if (address === location.pathname + location.search) return;
  if (push) history.pushState(null, "", address);
  else history.replaceState(null, "", address);
}

function searchBody(options) {
  const body = { top_k: options.top_k };
  if (options.using) body.using = options.using; // none: the service's default for the query
  const filters = filtersOf(options);
  if (filters) body.filters = filters;
  return body;
}

/** The chips of the other materials with the query's formula (links to their own query). */
function showMatches(formula, ids, chosen, options) {
  el.matches.hidden = ids.length < 2;
  el.matches.innerHTML =
    `<span>${ids.length} stored materials are ${formulaHtml(formula)}:</span>` +
    ids
      .map((id) => {
        const current = id === chosen ? ' class="current"' : "";
        return `<a href="${escapeHtml(addressOf({ id }, options, null))}"${current}>${escapeHtml(id)}</a>`;
      })
      .join("");
}

/** Search with `query` ({id} | {formula} | {file}) and `options`; `push` adds a history entry. */
export async function runQuery(query, options, { push = false, hit = null } = {}) {
  const token = ++state.token;
  state.query = query;
  state.options = options;
  state.querySide = null;
  clearHits("Searching…");
  clearComparison();
  hooks.busy = true;
  hooks.query = queryLabel(query);
  remember(push);
  const label = queryLabel(query);
  let answer;
  let id = query.id || null;
  try {
    if (query.formula) {
      setStatus(`Looking up ${label}…`);
      setProgress(null);
      const ids = await materialsOfFormula(query.formula);
      if (token !== state.token) return;
      if (!ids.length) {
        clearHits(`No stored material has the formula <b>${formulaHtml(label)}</b>.`);
        setStatus(`No stored material has the formula “${label}”: try another formula or an id.`, "warn");
        hooks.seq += 1;
        return;
      }
      id = ids[0];
      showMatches(label, ids, id, options);
    }
    if (id) {
      setStatus(`Searching for the nearest materials to ${id}…`);
      setProgress(null);
      answer = await postJSON(paths().search, Object.assign({ material_id: id }, searchBody(options)));
    } else {
      const file = query.file;
      const form = new FormData();
      form.append("file", file, file.name);
      const body = searchBody(options);
      form.append("top_k", String(body.top_k));
      if (body.using) form.append("using", body.using);
      if (body.filters) form.append("filters", JSON.stringify(body.filters));
      setStatus(`Uploading ${file.name}…`);
      setProgress(0);
      answer = await postForm(paths().search, form, {
        onProgress: (fraction) => {
          if (token !== state.token) return;
          setProgress(fraction);
          setStatus(`Uploading ${file.name}… ${Math.round(100 * fraction)}%`);
        },
        onSent: () => {
          if (token !== state.token) return;
          setProgress(null);
          setStatus(`Embedding ${file.name} and searching…`);
        },
      });
    }
  } catch (e) {
    if (token === state.token) {
      clearHits("No hits.");
      showError(e.message.indexOf(label) >= 0 ? e.message : `${label}: ${e.message}`);
    }
    return;
  } finally {
    if (token === state.token) {
      setProgress(undefined);
      hooks.busy = false;
    }
  }
  if (token !== state.token) return;
  state.result = answer;
  const resolved = id ? { id } : query;
  state.querySide = loadQuerySide(resolved, answer);
  el.modelInfo.innerHTML = `model <b>${escapeHtml(answer.model_id)}</b>`;
  showHits(resolved, answer, hit);
}

function showHits(resolved, answer, wanted) {
  const hits = answer.hits || [];
  const s = answer.query_structure;
  let who = escapeHtml(queryLabel(resolved));
  if (resolved.file) {
    who = s ? `${formulaHtml(s.formula)} <span>(${escapeHtml(resolved.file.name)})</span>` : `<b>${who}</b>`;
  }
  const notion = (NOTIONS[answer.using] || answer.using) + (state.options.using ? "" : " (the default for this query)");
  const measure = answer.using === "hybrid" ? "ranked by fused score" : "Euclidean distance";
  const filtered = filtersOf(state.options) ? " · filtered" : "";
  const unshared = resolved.file
    ? "<br><span>The file stays in your browser: the address keeps the options only.</span>"
    : "";
  renderHits(
    `${hits.length} nearest to <b>${who}</b><br><span>by ${escapeHtml(notion)}, ${measure}${filtered}</span>` +
      unshared,
    hits,
    (h) => selectHit(h, () => remember(false)),
  );
  if (!hits.length) {
    setStatus("No stored material passes the filters.", "warn");
    return;
  }
  setStatus(`${hits.length} hits for ${queryLabel(state.query)}.`, "ok");
  const chosen =
    hits.find((h) => h.material_id === wanted) || hits.find((h) => h.material_id !== resolved.id) || hits[0];
  selectHit(chosen, () => remember(false));
}
