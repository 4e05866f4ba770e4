/*
 * The 3D structure viewers (3Dmol.js, vendored from the npm registry by deploy/install.sh into
 * service/web/vendor/ and loaded before this module as the global `$3Dmol`): ball-and-stick atoms
 * in element colours, the unit cell drawn as a box, the atoms on its faces, edges and corners
 * repeated, bonds by distance; drag to rotate, wheel to zoom, right-drag to move.
 */

import { el, hooks } from "./state.js";

const STYLE = { sphere: { scale: 0.25, colorscheme: "Jmol" }, stick: { radius: 0.08, colorscheme: "Jmol" } };
const AXIS = (color) => ({ color, radius: 0.06, midpos: -1 });
const CELL_STYLE = {
  box: { color: "#64748b" },
  astyle: AXIS("#dc2626"),
  bstyle: AXIS("#16a34a"),
  cstyle: AXIS("#2563eb"),
  alabel: "a",
  blabel: "b",
  clabel: "c",
  alabelstyle: { fontColor: "#dc2626", backgroundOpacity: 0, fontSize: 14, inFront: true },
  blabelstyle: { fontColor: "#16a34a", backgroundOpacity: 0, fontSize: 14, inFront: true },
  clabelstyle: { fontColor: "#2563eb", backgroundOpacity: 0, fontSize: 14, inFront: true },
};
const TILT = [
  [-20, "x"],
  [25, "y"],
]; // degrees: a view slightly off the c axis shows depth
const SAME_SITE = 1e-3; // fractional distance under which two assembled atoms are one site
const MAX_DEDUPLICATED = 3000; // atoms; above this a CIF's symmetry copies are drawn as they come
const viewers = { query: null, hit: null };

/** Whether the viewer library loaded (a missing vendor/3Dmol-min.js leaves it undefined). */
export function viewerAvailable() {
  return typeof window.$3Dmol !== "undefined";
}

export const MISSING =
  "The 3D viewer (3Dmol.js) is not installed on this server: <code>bash deploy/install.sh</code> " +
  "vendors it from the npm registry into <code>service/web/vendor/</code>.";

/** A message in place of a pane's viewer (html, or null to show the viewer). */
export function paneNote(pane, html, kind) {
  const note = el.viewerNotes[pane];
  note.innerHTML = html || "";
  note.className = "viewer-note" + (kind ? " " + kind : "");
  note.hidden = !html;
  el.viewers[pane].hidden = Boolean(html);
  el.viewerInfo[pane].hidden = Boolean(html);
  if (html) hooks.viewers[pane] = null;
}

function viewerOf(pane) {
  if (!viewers[pane]) {
    viewers[pane] = window.$3Dmol.createViewer(el.viewers[pane], {
      backgroundColor: "white",
      antialias: true,
      preserveDrawingBuffer: true, // the test reads the canvas' pixels
    });
  }
  return viewers[pane];
}

/**
 * Symmetry copies of a CIF's atoms land on one another where an atom sits on a special position
 * (3Dmol applies every operation to every atom): keep one atom per site, comparing fractional
 * coordinates modulo whole cells.
 */
function removeDuplicateSites(model) {
  const cryst = model.getCrystData();
  const atoms = model.selectedAtoms({});
  if (!cryst || atoms.length > MAX_DEDUPLICATED) return;
  const toFractional = new window.$3Dmol.Matrix3().getInverse3(cryst.matrix);
  const kept = [];
  const duplicates = [];
  for (const atom of atoms) {
    const f = new window.$3Dmol.Vector3(atom.x, atom.y, atom.z).applyMatrix3(toFractional);
    const frac = [f.x, f.y, f.z];
    const same = kept.some(
      (k) =>
        k.elem === atom.elem &&
        k.frac.every((v, i) => {
          const d = Math.abs(v - frac[i]);
          return Math.min(d - Math.floor(d), Math.ceil(d) - d) < SAME_SITE;
        }),
    );
    if (same) duplicates.push(atom);
    else kept.push({ elem: atom.elem, frac });
  }
  if (duplicates.length) model.removeAtoms(duplicates);
}

/**
 * 3Dmol.js applies a CIF's symmetry operations when they are listed under the DDL1 name
 * `_symmetry_equiv_pos_as_xyz`; CIFs written since (COD's, pymatgen's with symmetry) list them as
 * `_space_group_symop_operation_xyz`. Same loop, older name, so that the whole cell is drawn.
 */
function withSymmetryOperations(text) {
  if (/_symmetry_equiv_pos_as_xyz/i.test(text)) return text;
  return text.replace(/^(\s*)_space_group_symop_operation_xyz\b/gim, "$1_symmetry_equiv_pos_as_xyz");
}

/**
 * Whether 3Dmol.js can draw a CIF's whole cell: it lists its symmetry operations, or it is in P1.
 * (A CIF that names its space group but lists no operations has only its asymmetric unit drawn:
 * the viewer does not generate operations from a symbol.)
 */
export function symmetryListed(text) {
  if (/^\s*_(symmetry_equiv_pos_as_xyz|space_group_symop_operation_xyz)\b/im.test(text)) return true;
  const symbol = /^\s*_(?:symmetry_space_group_name_H-M|space_group_name_H-M_alt)\s+['"]?([^'"\r\n]+)/im.exec(text);
  if (symbol && symbol[1].trim() !== "?") return symbol[1].replace(/\s+/g, "").toUpperCase() === "P1";
  const number = /^\s*_(?:space_group_IT_number|symmetry_Int_Tables_number)\s+(\d+)/im.exec(text);
  return !number || number[1] === "1";
}

/**
 * Draw a structure file ({text, format: "cif" | "vasp", cell: what cell it is}) in a pane; returns
 * {atoms, drawn, ...}: the atoms of the cell, and those drawn with the repeated ones on its faces.
 */
export function showStructure(pane, file) {
  if (!viewerAvailable()) {
    paneNote(pane, MISSING, "error");
    return null;
  }
  paneNote(pane, null);
  const viewer = viewerOf(pane);
  viewer.resize(); // its element may have been hidden since it was drawn
  viewer.clear();
  const text = file.format === "cif" ? withSymmetryOperations(file.text) : file.text;
  const model = viewer.addModel(text, file.format, {
    doAssembly: true,
    duplicateAssemblyAtoms: true,
    normalizeAssembly: true,
    wrapAtoms: true,
  });
  if (!model || !model.selectedAtoms({}).length) {
    paneNote(pane, "The viewer found no atoms in this file.", "error");
    return null;
  }
  if (file.format === "cif") removeDuplicateSites(model);
  const atoms = model.selectedAtoms({}).length;
  const hasCell = Boolean(model.getCrystData());
  if (hasCell) {
    viewer.addUnitCell(model, CELL_STYLE);
    viewer.replicateUnitCell(1, 1, 1, model, true); // the cell's own atoms on its faces, edges, corners
  }
  viewer.setStyle({}, STYLE);
  viewer.zoomTo();
  for (const [angle, axis] of TILT) viewer.rotate(angle, axis);
  viewer.zoom(0.85);
  viewer.render();
  const drawn = model.selectedAtoms({}).length;
  let what = file.cell ? `${file.cell} cell` : hasCell ? "unit cell" : "no cell in the file";
  if (file.format === "cif" && !symmetryListed(file.text)) what += " (no symmetry operations listed: asymmetric unit)";
  el.viewerInfo[pane].textContent = `${what} · ${atoms} atom${atoms === 1 ? "" : "s"} · drag to rotate, scroll to zoom`;
  hooks.viewers[pane] = { atoms, drawn, hasCell, cell: file.cell || null, format: file.format };
  return hooks.viewers[pane];
}

export function resizeViewers() {
  for (const pane of ["query", "hit"]) if (viewers[pane]) viewers[pane].resize();
}
