// Statistics against the EEMUA 191 targets (alarm rate, floods, priority mix) and officers' response
// times; and a department's dispatched cases, each with its report-back form.
"use strict";
import { api, post } from "./api.js";
import { barChart, mixChart } from "./chart.js";
import { el, levelWord, num, seconds, time } from "./format.js";
import { t, word } from "./i18n.js";
import { acted, actorName, enterpriseName, priorityOf, sensorLabel, state, subscribe } from "./store.js";

const PERIODS = { "p.24h": 86_400_000, "p.7d": 7 * 86_400_000, "p.30d": 30 * 86_400_000 };
const pct = (f) => (f === null || f === undefined ? t("none") : `${Math.round(f * 100)}%`);

function table(cls, head, rows) {
  return el("div", { class: "scroll" }, el("table", { class: `data ${cls}` },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", {}, t(h))))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))))));
}

/** The statistics of the chosen period, in ``root``. */
export function statsView(root) {
  let period = PERIODS["p.7d"], stopped = false;
  const body = el("div", {});
  const bar = el("div", { class: "range" }, el("span", { class: "muted" }, t("st.period")),
    Object.entries(PERIODS).map(([k, ms]) => el("button", { type: "button", onclick: () => { period = ms; load(); } }, t(k))));
  root.replaceChildren(bar, body);
  const width = () => Math.min(900, (root.clientWidth || 360) - 24);

  async function load() {
    const end = Date.now(), q = `start=${end - period}&end=${end}`;
    const supervising = ["admin", "supervisor", "officer"].includes(state.me.role);
    const [alarms, officers] = await Promise.all([api(`/stats/alarms?${q}`),
      supervising ? api(`/stats/officers?${q}`) : Promise.resolve(null)]);
    if (stopped) return;
    const tg = alarms.targets;
    const grids = [...alarms.grids, { ...alarms.total, name: t("st.total") }];
    const parts = [el("section", { class: "card", id: "stats-grids" },
      el("h2", {}, t("st.grids")),
      el("h3", {}, `${t("st.rate")}（${t("st.target")} ≤ ${tg.alarms_per_10min}）`),
      barChart(grids.map((g) => ({ label: g.name, value: g.rate_per_10min })), { target: tg.alarms_per_10min,
        targetLabel: t("st.target"), flood: tg.flood_above_alarms_per_10min, floodLabel: t("st.flood_line"), width: width() }),
      el("h3", {}, `${t("st.mix")}（${t("st.target")} ${pct(tg.priority_mix.high)} / ${pct(tg.priority_mix.medium)} / ${pct(tg.priority_mix.low)}）`),
      mixChart([{ label: t("st.target"), mix: tg.priority_mix }, ...grids.map((g) => ({ label: g.name, mix: g.priority_mix }))],
        { width: width() }),
      el("p", { class: "legend" }, ["high", "medium", "low"].map((k) => el("span", { class: `key mix-${k}` }, word("prio", k)))),
      table("grid-stats", ["st.name", "st.alarms", "st.rate", "st.floods", "st.chattering", "st.stale", "st.mix"],
        grids.map((g) => [g.name, g.alarms, num(g.rate_per_10min), g.floods, g.chattering, g.stale,
          ["high", "medium", "low"].map((k) => pct(g.priority_fractions[k])).join(" / ")])))];
    if (officers) {
      const limit = state.meta.escalate_after_s?.high_high;
      parts.push(el("section", { class: "card", id: "stats-officers" },
        el("h2", {}, t("st.officers")),
        el("h3", {}, t("st.med_ack")),
        barChart(officers.officers.map((o) => ({ label: o.name, value: o.median_ack_s })),
          { target: limit ?? null, targetLabel: limit ? `${word("ev", "escalated")} ${seconds(limit)}` : "", width: width(), fmt: seconds }),
        table("officer-stats", ["st.name", "st.received", "st.acked", "st.med_ack", "st.p90_ack", "st.closed",
          "st.med_close", "st.p90_close", "st.overdue"],
        officers.officers.map((o) => [o.name, o.alarms_received, o.acknowledged, seconds(o.median_ack_s),
          seconds(o.p90_ack_s), o.closed, seconds(o.median_close_s), seconds(o.p90_close_s), o.overdue]))));
    }
    body.replaceChildren(...parts);
  }
  load().catch((x) => body.replaceChildren(el("p", { class: "form-error" }, x.message)));
  return () => { stopped = true; };
}

function caseCard(a, detail) {
  const label = sensorLabel(a.sensor_id);
  const sent = [...(detail?.history ?? [])].reverse().find((e) => e.type === "dispatched");
  const error = el("p", { class: "form-error", role: "alert" });
  const button = el("button", { type: "submit" }, t("a.resolve.go"));
  const form = el("form", { class: "act act-resolve" },
    el("textarea", { name: "note", rows: 2, required: true, maxlength: 2000, placeholder: t("a.resolve.note") }), button, error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    button.disabled = true; error.textContent = "";
    try { acted((await post(`/alarms/${a.id}/resolve`, { note: form.note.value })).alarm); }
    catch (x) { error.textContent = x.message; button.disabled = false; }
  });
  return el("section", { class: `card case prio-${priorityOf(a)}`, dataset: { id: a.id } },
    el("div", { class: "head-line" }, el("span", { class: `badge prio-${priorityOf(a)}` }, levelWord(a.level)),
      el("a", { href: `#/alarm/${a.id}` }, `#${a.id}`)),
    el("h3", {}, enterpriseName(a.enterprise)),
    el("p", { class: "where" }, [label.device, label.point].filter(Boolean).join(" · ")),
    sent ? el("p", {}, el("strong", {}, `${t("c.task")}：`), sent.note ?? "",
      el("span", { class: "muted" }, ` — ${actorName(sent.actor)} ${time(sent.ts)}`)) : null,
    el("h3", {}, t("a.report")), form);
}

/** A department's cases: those waiting for its report, then those it reported on. */
export function casesView(root) {
  const mine = state.me.acts_as?.department;
  const details = new Map();
  let stopped = false, shown = null;
  async function draw() {
    const all = [...state.alarms.values()].filter((a) => a.department === mine);
    const waiting = all.filter((a) => a.case === "dispatched").sort((a, b) => b.updated_at - a.updated_at);
    const done = all.filter((a) => a.case !== "dispatched").sort((a, b) => b.updated_at - a.updated_at);
    const key = JSON.stringify(all.map((a) => [a.id, a.case, a.level]));
    if (key === shown) return;  // unchanged: keep what is being typed
    shown = key;
    for (const a of waiting) {
      if (!details.has(a.id)) details.set(a.id, await api(`/alarms/${a.id}`).catch(() => null));
    }
    if (stopped) return;
    root.replaceChildren(el("h2", {}, t("c.title")),
      ...(waiting.length ? waiting.map((a) => caseCard(a, details.get(a.id))) : [el("p", { class: "empty" }, t("c.none"))]),
      done.length ? el("section", { class: "card" }, el("h2", {}, t("c.done")), el("ul", { class: "done-list" },
        done.map((a) => el("li", { dataset: { id: a.id } }, el("a", { href: `#/alarm/${a.id}` },
          `${enterpriseName(a.enterprise)} · ${sensorLabel(a.sensor_id).point} · ${word("case", a.case)}`))))) : "");
  }
  draw();
  const stop = subscribe((c) => { if (c.what === "alarms" || c.what === "event") draw(); });
  return () => { stopped = true; stop(); };
}
