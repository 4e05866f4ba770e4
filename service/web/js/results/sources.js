/*
 * What the comparison shows, read from the service (each read once per page and material): a
 * stored material's structure file and its simulated powder pattern (GET /v1/materials/{id}/pattern);
 * the simulated pattern of an uploaded structure (POST /v1/pattern) and the points of an uploaded
 * measurement (read here, for the plot only: the search has already read and checked the file).
 *
 * The viewer shows a structure as it was published where the store kept the file it came from
 * (?format=original: a COD CIF's conventional cell, as an uploaded CIF is shown) and the viewer can
 * draw it whole, else the primitive cell the model embedded (?format=cif, P1; what "Download CIF" gives).
 */

import { materialUrl, postJSON, requestJSON, requestText } from "../api.js";
import { paths } from "./state.js";
import { symmetryListed } from "./viewer.js";

const cache = new Map();

function once(key, load) {
  if (!cache.has(key)) {
    const promise = load();
    cache.set(key, promise);
    promise.catch(() => cache.delete(key)); // asked again next time
  }
  return cache.get(key);
}

/** The download address of a stored material's structure file. */
export function structureUrl(id, format) {
  return `${materialUrl(paths().material, id)}?format=${encodeURIComponent(format || "cif")}`;
}

/** The viewer's format of a structure file's name: "cif", "vasp" (POSCAR), or null (not drawn). */
export function viewerFormat(name) {
  const n = String(name || "")
    .split(/[\\/]/)
    .pop()
    .toLowerCase();
  if (/\.m?cif$/.test(n)) return "cif";
  if (/\.(vasp|poscar)$/.test(n) || /^(poscar|contcar)/.test(n)) return "vasp";
  return null;
}

function attachmentName(response) {
  const header = response.headers.get("content-disposition") || "";
  const m = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(header);
  return m ? decodeURIComponent(m[1]) : "";
}

/**
 * A stored material's structure for the viewer: {text, format, cell}, cell "as published" (its
 * original CIF or POSCAR) or "primitive" (the P1 CIF of the cell the model embedded).
 */
export function storedStructure(id) {
  return once(`structure ${id}`, async () => {
    let response = null;
    try {
      response = await fetch(structureUrl(id, "original"));
    } catch (e) {
      response = null; // the primitive cell below says what is wrong
    }
    if (response && response.ok) {
      const format = viewerFormat(attachmentName(response));
      const text = format ? await response.text() : "";
      if (format === "vasp" || (format === "cif" && symmetryListed(text)))
        return { text, format, cell: "as published" };
    }
    return { text: await requestText(structureUrl(id, "cif")), format: "cif", cell: "primitive" };
  });
}

/** A stored material's record (payload), for the query's caption. */
export function storedRecord(id) {
  return once(`record ${id}`, () => requestJSON(materialUrl(paths().material, id)));
}

/** A stored material's simulated powder pattern ({two_theta, intensity, ...}). */
export function storedPattern(id) {
  return once(`pattern ${id}`, () => requestJSON(`${materialUrl(paths().material, id)}/pattern`));
}

/** The simulated powder pattern of an uploaded structure file (nothing is stored). */
export async function uploadedPattern(file) {
  return postJSON(paths().pattern, { structure: { content: await file.text(), name: file.name } });
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/**
 * The (2θ, intensity) points of a measured pattern's text export, for the plot: the first two
 * numbers of each line (whitespace, comma or semicolon separated); headers and comments skipped.
 */
export async function measuredPoints(file) {
  const twoTheta = [];
  const intensity = [];
  for (const line of (await file.text()).split(/\r?\n/)) {
    const cells = line.trim().split(/[\s,;]+/);
    if (cells.length >= 2 && NUMBER.test(cells[0]) && NUMBER.test(cells[1])) {
      twoTheta.push(Number(cells[0]));
      intensity.push(Number(cells[1]));
    }
  }
  if (twoTheta.length < 2) throw new Error("no two-column (2θ, intensity) lines to plot");
  return { two_theta: twoTheta, intensity };
}
