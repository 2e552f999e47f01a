// What the console knows: the login, the registry's names, the alarms in scope (kept current by the
// live stream), the latest value of each sensor (polled), and the lifecycle tables from the server.
"use strict";
import { API, api, currentToken, logout, renew } from "./api.js";
import { t, word } from "./i18n.js";

export const state = {
  me: null,
  meta: null,
  enterprises: new Map(), devices: new Map(), departments: new Map(), grids: new Map(), officers: new Map(),
  alarms: new Map(),   // id -> alarm
  latest: new Map(),   // sensor id -> {value, ts, unit, state}
  lastEventId: null,
};
const listeners = new Set();
let socket = null, retryMs = 1000, socketRenewed = false, timers = [];

/** Call ``fn(change)`` on every change: {what: "event", event} | {what: "alarms"} | {what: "latest"} | {what: "live", up}. */
export function subscribe(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function emit(change) { for (const fn of [...listeners]) fn(change); }

export async function loadMeta() {
  state.meta ??= await fetch("/console/meta.json").then((r) => r.json());
  return state.meta;
}

async function items(section) {
  try { return (await api(`/registry/${section}`)).items; } catch { return []; }
}

/** Log in done: read the login, the names and the alarms, then follow the stream and poll. */
export async function start() {
  await loadMeta();
  state.me = await api("/me");
  const [ents, devs, deps, grids, offs] = await Promise.all(
    ["enterprises", "devices", "departments", "grids", "officers"].map(items));
  state.enterprises = new Map(ents.map((e) => [e.id, e]));
  state.devices = new Map(devs.map((d) => [`${d.enterprise}/${d.id}`, d]));
  state.departments = new Map(deps.map((d) => [d.id, d]));
  state.grids = new Map(grids.map((g) => [g.id, g]));
  for (const g of state.me.grids) if (!state.grids.has(g.id)) state.grids.set(g.id, g);
  for (const e of state.me.enterprises) if (!state.enterprises.has(e.id)) state.enterprises.set(e.id, e);
  state.officers = new Map(offs.map((o) => [o.id, o]));
  await reloadAlarms(true);
  await pollLatest();
  connect();
  timers = [setInterval(pollLatest, 5000), setInterval(() => reloadAlarms(false), 30000)];
}

export function stop() {
  for (const id of timers) clearInterval(id);
  timers = [];
  if (socket) { const s = socket; socket = null; s.onclose = null; s.close(); }
  state.me = null; state.alarms.clear(); state.latest.clear(); state.lastEventId = null;
}

function keepAlarm(a) {
  const old = state.alarms.get(a.id);
  if (!old || old.updated_at <= a.updated_at) state.alarms.set(a.id, a);
}

/** The open cases (every one not closed) and the newest closed ones. The first read sets where the stream resumes. */
export async function reloadAlarms(first) {
  const [open, headers] = await api("/alarms?case=open_cases&limit=1000", {}, true);
  const closed = await api("/alarms?case=closed&limit=50");
  for (const a of [...open, ...closed]) keepAlarm(a);
  if (first) state.lastEventId = headers.get("X-Last-Event-Id");  // nothing after the list is missed
  emit({ what: "alarms" });
}

async function pollLatest() {
  if (!currentToken() || document.hidden && state.latest.size) return;
  try {
    for (const s of await api("/sensors/latest")) state.latest.set(s.sensor_id, s);
    emit({ what: "latest" });
  } catch { /* the next poll tries again */ }
}

/** Keep an alarm an action answered with, and tell the views. */
export function acted(alarm) {
  keepAlarm(alarm);
  emit({ what: "alarms" });
}

function connect() {
  const url = new URL(API + "/alarms/live", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("access_token", currentToken());
  if (state.lastEventId) url.searchParams.set("last_event_id", state.lastEventId);
  const ws = new WebSocket(url);
  socket = ws;
  ws.onopen = () => { retryMs = 1000; socketRenewed = false; emit({ what: "live", up: true }); };
  ws.onmessage = (msg) => {
    const ev = JSON.parse(msg.data);
    state.lastEventId = ev.id;
    keepAlarm(ev.alarm);
    const s = state.latest.get(ev.alarm.sensor_id);
    if (s && ev.alarm.value !== null && ev.ts >= (s.ts ?? 0)) state.latest.set(ev.alarm.sensor_id, { ...s, value: ev.alarm.value, ts: ev.ts });
    emit({ what: "event", event: ev });
  };
  ws.onclose = (e) => {
    if (socket !== ws) return;
    socket = null;
    emit({ what: "live", up: false });
    if (e.code === 4401 && !socketRenewed) {  // the token expired (or was revoked): renew once, or log out
      socketRenewed = true;
      renew().then((ok) => { if (ok) connect(); else logout(); });
      return;
    }
    if (e.code === 4401) { logout(); return; }
    if (!currentToken()) return;
    setTimeout(() => { if (currentToken() && !socket) connect(); }, retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  };
}

// -- names rather than ids ------------------------------------------------------------------------

export const enterpriseName = (id) => state.enterprises.get(id)?.name ?? id ?? t("none");
export const gridName = (id) => state.grids.get(id)?.name ?? id ?? t("none");
export const departmentName = (id) => state.departments.get(id)?.name ?? id ?? t("none");
export const deviceName = (ent, dev) => state.devices.get(`${ent}/${dev}`)?.name ?? dev;

/** The person behind a login: an officer's or department's name when the login is named after one. */
export function actorName(login) {
  if (!login) return t("none");
  return state.officers.get(login)?.name ?? state.departments.get(login)?.name ?? login;
}

/** The registry's point of ``ent/dev/key`` (a TOML-shaped dict), or null. */
export function pointOf(sensorId) {
  const [ent, dev, key] = String(sensorId).split("/");
  return state.devices.get(`${ent}/${dev}`)?.points?.find((p) => p.key === key) ?? null;
}

export function pointName(p, key) {
  if (p?.name) return p.name;
  const kind = p ? word("kind", p.kind) : "";
  const label = (p?.gas ?? key ?? "").toUpperCase();
  return kind && kind !== p.kind ? `${kind} ${label}` : label;
}

/** "恒源化工 · gas-ctrl-1 · 可燃气体 CH4" pieces for an alarm or sensor id. */
export function sensorLabel(sensorId) {
  const [ent, dev, key] = String(sensorId).split("/");
  const p = pointOf(sensorId);
  return { enterprise: enterpriseName(ent), device: deviceName(ent, dev), point: key ? pointName(p, key) : "" };
}

/** A point's alarm limits: its own, else GB/T 50493-2019's defaults for its kind (as the detector uses). */
export function limitsOf(sensorId) {
  const p = pointOf(sensorId);
  if (!p || !state.meta) return {};
  let std = state.meta.limits[p.kind] ?? {};
  const gas = p.kind === "toxic_gas" && p.gas ? state.meta.toxic_gases[p.gas] : null;
  if (gas) {
    const ppm = (mg) => (p.unit === "ppm" ? mg * state.meta.molar_volume / gas.molar_mass : mg);
    std = { high: ppm(gas.oel_mg_m3), high_high: ppm(2 * gas.oel_mg_m3) };
  }
  const out = {};
  for (const k of ["low_low", "low", "high", "high_high"]) {
    const v = p[k] ?? std[k];
    if (v !== undefined && v !== null) out[k] = v;
  }
  return out;
}

/** ``points`` of a sensor's series with its latest value added when the store has not written it yet. */
export function withLatest(points, sensorId, end) {
  const s = state.latest.get(sensorId);
  const last = points.length ? points[points.length - 1].ts : -Infinity;
  if (!s || s.ts === null || s.value === null || s.ts <= last || s.ts > end) return points;
  return [...points, { ts: s.ts, value: s.value }];
}

export function priorityOf(alarm) {
  return state.meta?.priority[alarm.level] ?? "low";
}

export const UNACKED = ["unacknowledged", "rtn_unacknowledged"];
const PRIO_RANK = { high: 0, medium: 1, low: 2 };

/** Unacknowledged high priority first, then the other unacknowledged, the active, the rest; newest first. */
export function byUrgency(a, b) {
  const group = (x) => (UNACKED.includes(x.state) ? PRIO_RANK[priorityOf(x)] : x.in_alarm ? 3 : 4);
  return group(a) - group(b) || b.raised_at - a.raised_at;
}

/** What the login may do to ``alarm`` now, from the server's state and case tables and its role. */
export function allowed(alarm) {
  const role = state.me?.role;
  const meta = state.meta;
  const byState = new Set(meta.transitions[alarm.state] ?? []);
  const byCase = new Set(meta.cases[alarm.case] ?? []);
  const handler = ["admin", "supervisor", "officer"].includes(role);
  const myDept = state.me?.acts_as?.department;
  const closed = alarm.case === "closed";
  return {
    ack: byState.has("ack") && role !== "enterprise" && !closed,
    dispatch: handler && byCase.has("dispatch"),
    shelve: handler && byState.has("shelve") && !closed,
    unshelve: handler && byState.has("unshelve") && !closed,
    resolve: (handler && alarm.case === "open" && byCase.has("resolve"))
      || (role === "department" && alarm.case === "dispatched" && alarm.department === myDept),
    close: handler && byCase.has("close") && alarm.state === "normal",
    closeLater: handler && byCase.has("close") && alarm.state !== "normal",
  };
}

/** The departments a case may go to: the enterprise's lead, then its cooperating ones (all, for a grid's own alarm). */
export function departmentsFor(alarm) {
  const ent = state.enterprises.get(alarm.enterprise);
  if (!alarm.enterprise) return [...state.departments.keys()].map((id) => ({ id, role: null }));
  if (!ent || !ent.lead_department) return [];
  return [{ id: ent.lead_department, role: "lead" },
          ...(ent.cooperating_departments ?? []).map((id) => ({ id, role: "coop" }))];
}
