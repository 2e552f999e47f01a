// The grids in scope with their enterprises (open alarms, devices offline), and one enterprise: a tile
// per sensor updating live, and a zoomable trend of the chosen sensor with its limits.
"use strict";
import { api } from "./api.js";
import { sparkline, trendChart } from "./chart.js";
import { el, withUnit } from "./format.js";
import { t, word } from "./i18n.js";
import {
  actorName, departmentName, deviceName, gridName, limitsOf, pointName, priorityOf, state, subscribe,
  UNACKED, withLatest,
} from "./store.js";

const RANGES = { "r.10m": 10 * 60_000, "r.1h": 3_600_000, "r.6h": 6 * 3_600_000, "r.24h": 86_400_000, "r.7d": 7 * 86_400_000 };

const isOpen = (a) => a.case !== "closed" && (a.in_alarm || UNACKED.includes(a.state));
const devicesOf = (ent) => [...state.devices.values()].filter((d) => d.enterprise === ent);

/** The devices of ``ent`` that do not report: a communication alarm active, or every sensor stale. */
function offlineDevices(ent) {
  const comm = new Set([...state.alarms.values()].filter((a) => a.enterprise === ent && a.kind === "communication"
    && a.in_alarm).map((a) => a.device));
  for (const d of devicesOf(ent)) {
    const states = (d.points ?? []).map((p) => state.latest.get(`${ent}/${d.id}/${p.key}`)?.state);
    if (states.length && states.every((s) => s === "stale")) comm.add(d.id);
  }
  return [...comm];
}

function enterpriseRow(ent) {
  const open = [...state.alarms.values()].filter((a) => a.enterprise === ent.id && isOpen(a));
  const off = offlineDevices(ent.id);
  const worst = open.some((a) => priorityOf(a) === "high") ? "high" : open.length ? "medium" : off.length ? "low" : "ok";
  return el("li", { class: `ent-row prio-${worst}`, dataset: { enterprise: ent.id } },
    el("a", { href: `#/enterprise/${ent.id}` }, ent.name ?? ent.id),
    el("span", { class: "counts" },
      el("span", { class: open.length ? "count bad" : "count" }, `${t("g.open")} ${open.length}`),
      el("span", { class: off.length ? "count warn" : "count" },
        `${t("g.offline")} ${off.length}${off.length ? `（${off.map((d) => deviceName(ent.id, d)).join("、")}）` : ""}`)));
}

/** Every grid in scope, its officers, and its enterprises. */
export function gridsView(root) {
  function draw() {
    const ents = [...state.enterprises.values()];
    const grids = [...state.grids.values()].filter((g) => ents.some((e) => e.grid === g.id) || state.me.grids.some((m) => m.id === g.id));
    root.replaceChildren(...grids.map((g) => el("section", { class: "card grid-card", dataset: { grid: g.id } },
      el("h2", {}, g.name ?? g.id),
      el("p", { class: "muted" }, `${t("g.officers")}：${(g.officers ?? []).map(actorName).join("、") || t("g.none")}`),
      el("ul", { class: "ent-list" }, ents.filter((e) => e.grid === g.id).map(enterpriseRow)))));
  }
  draw();
  const stop = subscribe((c) => { if (c.what !== "live") draw(); });
  return stop;
}

function tile(ent, dev, p, onpick) {
  const id = `${ent}/${dev.id}/${p.key}`;
  return el("button", { type: "button", class: "tile", dataset: { sensor: id }, onclick: () => onpick(id) },
    el("span", { class: "t-name" }, pointName(p, p.key)),
    el("span", { class: "t-dev" }, deviceName(ent, dev.id)),
    el("span", { class: "t-value" }, t("none")),
    el("span", { class: "t-spark" }));
}

/** One enterprise: its facts, a tile per sensor, the trend of the chosen one. */
export function enterpriseView(root, entId) {
  const ent = state.enterprises.get(entId) ?? { id: entId, name: entId };
  const series = new Map();  // sensor -> recent points for its sparkline
  const tiles = el("div", { class: "tiles", id: "tiles" });
  const devices = devicesOf(entId);
  const points = devices.flatMap((d) => (d.points ?? []).map((p) => ({ d, p })));
  let chosen = (points.find(({ p }) => p.kind.endsWith("gas")) ?? points[0]);
  chosen = chosen ? `${entId}/${chosen.d.id}/${chosen.p.key}` : null;
  let range = { span: RANGES["r.10m"], start: null, end: null };  // live when start is null
  const chartBox = el("div", { class: "chart-box", id: "ent-trend" });
  const title = el("h2", {});
  const rangeBar = el("div", { class: "range" }, Object.entries(RANGES).map(([k, span]) =>
    el("button", { type: "button", dataset: { span }, onclick: () => { range = { span, start: null, end: null }; drawTrend(); } }, t(k))),
  el("button", { type: "button", class: "reset", onclick: () => { range = { span: RANGES["r.10m"], start: null, end: null }; drawTrend(); } },
    t("e.reset")));
  root.replaceChildren(
    el("a", { class: "back", href: "#/grids" }, `← ${t("back")}`),
    el("section", { class: "card" }, el("h1", {}, ent.name ?? entId),
      el("dl", { class: "facts" }, [["d.grid", gridName(ent.grid)], ["d.address", ent.address], ["d.contact", ent.contact],
        ["d.phone", ent.phone], ["d.lead", ent.lead_department && departmentName(ent.lead_department)],
        ["d.coop", (ent.cooperating_departments ?? []).map(departmentName).join("、")]]
        .filter(([, v]) => v).flatMap(([k, v]) => [el("dt", {}, t(k)), el("dd", {}, v)]))),
    el("section", { class: "card" }, el("h2", {}, t("e.sensors")), tiles),
    el("section", { class: "card trend-card" }, title, rangeBar, el("p", { class: "muted" }, t("e.zoom_hint")), chartBox));
  tiles.replaceChildren(...points.map(({ d, p }) => tile(entId, d, p, (id) => { chosen = id; drawTrend(); })));

  function drawTiles() {
    for (const node of tiles.children) {
      const id = node.dataset.sensor;
      const s = state.latest.get(id);
      const st = s?.state ?? "no_data";
      node.className = `tile st-${st}${id === chosen ? " chosen" : ""}`;
      node.querySelector(".t-value").textContent = `${withUnit(s?.value, s?.unit ?? "")} · ${word("state", st)}`;
      const pts = series.get(id) ?? [];
      if (s?.ts && s.value !== null && (!pts.length || pts[pts.length - 1].ts < s.ts)) pts.push({ ts: s.ts, value: s.value });
      while (pts.length > 120) pts.shift();
      series.set(id, pts);
      node.querySelector(".t-spark").replaceChildren(sparkline(pts, { width: 120, height: 28 }));
    }
  }

  async function loadSparks() {
    const end = Date.now();
    await Promise.all(points.map(async ({ d, p }) => {
      const id = `${entId}/${d.id}/${p.key}`;
      try {
        const r = await api(`/sensors/${id}/readings?start=${end - 10 * 60_000}&end=${end}&every=20s&agg=mean`);
        series.set(id, r.points.filter((q) => q.value !== null));
      } catch { series.set(id, []); }
    }));
    drawTiles();
  }

  async function drawTrend() {
    if (!chosen) return;
    const [, dev, key] = chosen.split("/");
    const p = points.find((x) => x.d.id === dev && x.p.key === key)?.p;
    title.textContent = `${t("e.trend")} · ${deviceName(entId, dev)} · ${pointName(p, key)}`;
    const end = range.end ?? Date.now(), start = range.start ?? end - range.span;
    let q = `start=${Math.round(start)}&end=${Math.round(end)}`;
    if (end - start > 15 * 60_000) q += `&every=${Math.max(1, Math.ceil((end - start) / 240_000))}s&agg=mean`;
    drawTiles();
    try {
      const r = await api(`/sensors/${chosen}/readings?${q}`);
      Object.assign(chartBox.dataset, { sensor: chosen, start: Math.round(start), end: Math.round(end) });
      chartBox.replaceChildren(trendChart({
        points: range.start === null ? withLatest(r.points, chosen, end) : r.points,
        limits: limitsOf(chosen), start, end, unit: r.unit, height: 240,
        width: Math.min(1100, chartBox.clientWidth || 340),
        onZoom: (a, b) => { range = { span: b - a, start: a, end: b }; drawTrend(); },
      }));
    } catch (x) { chartBox.replaceChildren(el("p", { class: "form-error" }, x.message)); }
  }

  loadSparks();
  drawTrend();
  const stop = subscribe((c) => {
    if (c.what === "latest") drawTiles();
    if (c.what === "event" && c.event.alarm.enterprise === entId) drawTiles();
  });
  const tick = setInterval(() => { if (range.start === null) drawTrend(); }, 10000);
  return () => { stop(); clearInterval(tick); };
}

