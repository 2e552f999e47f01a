// Charts drawn as SVG by this file: a trend with limit lines, marks and drag-to-zoom; sparklines;
// horizontal bars against a target; stacked priority mixes. Styling is in console.css (classes only).
"use strict";
import { clock, num } from "./format.js";
import { word } from "./i18n.js";

const NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

/** Round step sizes (1, 2, 2.5, 5 × 10^n) giving about ``count`` ticks over [lo, hi]. */
export function ticks(lo, hi, count = 4) {
  const raw = (hi - lo) / count || 1;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}

const LIMIT_ORDER = ["low_low", "low", "high", "high_high"];

/**
 * A trend: ``points`` [{ts, value}] over [start, end] (epoch ms), the sensor's ``limits`` as dashed
 * lines, ``marks`` [{ts, label}] as vertical lines; ``onZoom(start, end)`` after a drag across it.
 */
export function trendChart({ points, limits = {}, start, end, marks = [], width = 600, height = 240, unit = "",
                             onZoom = null }) {
  const pad = { l: 46, r: 10, t: 16, b: 24 };
  const w = Math.max(200, width), h = height;
  const values = points.map((p) => p.value).filter((v) => v !== null && Number.isFinite(v));
  const all = [...values, ...Object.values(limits)];
  let lo = all.length ? Math.min(...all) : 0, hi = all.length ? Math.max(...all) : 1;
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const span = hi - lo;
  lo -= span * 0.08; hi += span * 0.08;
  const x = (ts) => pad.l + ((ts - start) / Math.max(1, end - start)) * (w - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (h - pad.t - pad.b);
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "chart trend", role: "img",
                            "aria-label": unit });
  const grid = svg("g", { class: "axis" });
  for (const v of ticks(lo, hi, 4)) {
    grid.append(svg("line", { x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v), class: "gridline" }));
    grid.append(svg("text", { x: pad.l - 4, y: y(v) + 4, "text-anchor": "end" }, num(v)));
  }
  const secs = end - start < 15 * 60_000;
  const xticks = Math.max(2, Math.floor((w - pad.l - pad.r) / 90));
  for (let i = 0; i <= xticks; i++) {
    const ts = start + (i / xticks) * (end - start);
    grid.append(svg("text", { x: x(ts), y: h - 6, "text-anchor": i === 0 ? "start" : i === xticks ? "end" : "middle" },
                    clock(ts, secs)));
  }
  grid.append(svg("text", { x: 2, y: 11, class: "unit" }, unit));
  root.append(grid);
  for (const key of LIMIT_ORDER.filter((k) => limits[k] !== undefined)) {
    const ly = y(limits[key]);
    root.append(svg("line", { x1: pad.l, x2: w - pad.r, y1: ly, y2: ly, class: `limit limit-${key}`,
                              "data-limit": key, "data-value": limits[key] }));
    root.append(svg("text", { x: pad.l + 4, y: ly - 3, class: `limit-label limit-${key}` },
                    `${word("level", key)} ${num(limits[key])}`));
  }
  let taken = -Infinity, row = 0;
  for (const m of marks.filter((m) => m.ts >= start && m.ts <= end)) {
    const mx = x(m.ts), wide = m.label.length * 11 + 4;
    const right = mx + 3 + wide > w;  // near the right edge: the label to the left of its line
    const from = right ? mx - 3 - wide : mx + 3;
    row = from < taken ? row + 1 : 0;  // labels that would overlap go one under the other
    taken = from + wide;
    root.append(svg("line", { x1: mx, x2: mx, y1: pad.t, y2: h - pad.b, class: `mark ${m.cls ?? ""}` }));
    root.append(svg("text", { x: right ? mx - 3 : mx + 3, y: pad.t - 4 + row * 13, "text-anchor": right ? "end" : "start",
                              class: "mark-label" }, m.label));
  }
  let d = "", pen = false;
  for (const p of points) {
    if (p.value === null || !Number.isFinite(p.value)) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${x(p.ts).toFixed(1)},${y(p.value).toFixed(1)}`;
    pen = true;
  }
  if (d) root.append(svg("path", { d, class: "series", "data-points": values.length }));
  if (values.length === 1) {
    const p = points.find((q) => q.value !== null);
    root.append(svg("circle", { cx: x(p.ts), cy: y(p.value), r: 3, class: "dot" }));
  }
  if (onZoom) zoomable(root, { x0: pad.l, x1: w - pad.r, top: pad.t, bottom: h - pad.b, start, end, onZoom });
  return root;
}

/** Drag across the plot to pick a time range (pointer events: mouse, pen and touch alike). */
function zoomable(root, { x0, x1, top, bottom, start, end, onZoom }) {
  const band = svg("rect", { x: 0, y: top, width: 0, height: bottom - top, class: "zoom-band" });
  root.append(band);
  let from = null;
  const local = (e) => {
    const box = root.getBoundingClientRect();
    return Math.min(x1, Math.max(x0, (e.clientX - box.left) * (root.viewBox.baseVal.width / box.width)));
  };
  root.addEventListener("pointerdown", (e) => { from = local(e); root.setPointerCapture(e.pointerId); });
  root.addEventListener("pointermove", (e) => {
    if (from === null) return;
    const at = local(e);
    band.setAttribute("x", Math.min(from, at)); band.setAttribute("width", Math.abs(at - from));
  });
  root.addEventListener("pointerup", (e) => {
    if (from === null) return;
    const at = local(e), a = Math.min(from, at), b = Math.max(from, at);
    from = null; band.setAttribute("width", 0);
    if (b - a < 8) return;
    const ts = (px) => start + ((px - x0) / (x1 - x0)) * (end - start);
    onZoom(Math.round(ts(a)), Math.round(ts(b)));
  });
}

/** A small line of recent values, the last one dotted. */
export function sparkline(points, { width = 120, height = 30 } = {}) {
  const vals = points.filter((p) => p.value !== null && Number.isFinite(p.value));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: "chart spark", "aria-hidden": "true" });
  if (vals.length < 1) return root;
  let lo = Math.min(...vals.map((p) => p.value)), hi = Math.max(...vals.map((p) => p.value));
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const t0 = vals[0].ts, t1 = Math.max(vals[vals.length - 1].ts, t0 + 1);
  const x = (ts) => 2 + ((ts - t0) / (t1 - t0)) * (width - 6);
  const y = (v) => 3 + (1 - (v - lo) / (hi - lo)) * (height - 6);
  root.append(svg("polyline", { points: vals.map((p) => `${x(p.ts).toFixed(1)},${y(p.value).toFixed(1)}`).join(" "),
                                class: "series" }));
  const last = vals[vals.length - 1];
  root.append(svg("circle", { cx: x(last.ts), cy: y(last.value), r: 2.5, class: "dot" }));
  return root;
}

/** Horizontal bars, one per row {label, value}, with a dashed ``target`` line (and a ``flood`` line). */
export function barChart(rows, { target = null, targetLabel = "", flood = null, floodLabel = "", width = 600,
                                 fmt = num } = {}) {
  const label = Math.min(120, Math.round(width * 0.3)), rowH = 24, top = 16;
  const h = top + rows.length * rowH + 6;
  const max = Math.max(1e-9, ...rows.map((r) => r.value ?? 0), (target ?? 0) * 1.25, (flood ?? 0) * 1.05);
  const x = (v) => label + (v / max) * (width - label - 40);
  const root = svg("svg", { viewBox: `0 0 ${width} ${h}`, width, height: h, class: "chart bars", role: "img" });
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    root.append(svg("text", { x: label - 6, y: y + 15, "text-anchor": "end", class: "bar-label" }, r.label));
    const v = r.value ?? 0;
    const over = target !== null && v > target;
    root.append(svg("rect", { x: label, y: y + 4, width: Math.max(1, x(v) - label), height: rowH - 8,
                              class: over ? "bar over" : "bar" }));
    root.append(svg("text", { x: x(v) + 4, y: y + 15, class: "bar-value" }, r.value === null ? "—" : fmt(v)));
  });
  for (const [v, text, cls] of [[target, targetLabel, "target"], [flood, floodLabel, "flood"]]) {
    if (v === null) continue;
    root.append(svg("line", { x1: x(v), x2: x(v), y1: top - 4, y2: h - 4, class: `ref ${cls}` }));
    root.append(svg("text", { x: x(v), y: top - 6, "text-anchor": "middle", class: `ref-label ${cls}` }, text));
  }
  return root;
}

/** 100 % stacked bars of the high / medium / low shares, one per row {label, mix: {high, medium, low}}. */
export function mixChart(rows, { width = 600 } = {}) {
  const label = Math.min(120, Math.round(width * 0.3)), rowH = 24;
  const h = rows.length * rowH + 4;
  const root = svg("svg", { viewBox: `0 0 ${width} ${h}`, width, height: h, class: "chart mix", role: "img" });
  rows.forEach((r, i) => {
    const y = i * rowH;
    root.append(svg("text", { x: label - 6, y: y + 16, "text-anchor": "end", class: "bar-label" }, r.label));
    const total = ["high", "medium", "low"].reduce((s, k) => s + (r.mix[k] ?? 0), 0);
    let at = label;
    for (const k of ["high", "medium", "low"]) {
      const share = total ? (r.mix[k] ?? 0) / total : 0;
      const w = share * (width - label - 8);
      if (w > 0) root.append(svg("rect", { x: at, y: y + 4, width: w, height: rowH - 8, class: `mix-${k}` }));
      if (w > 28) root.append(svg("text", { x: at + w / 2, y: y + 16, "text-anchor": "middle", class: "mix-text" },
                                  `${Math.round(share * 100)}%`));
      at += w;
    }
    if (!total) root.append(svg("rect", { x: label, y: y + 4, width: width - label - 8, height: rowH - 8, class: "mix-none" }));
  });
  return root;
}
