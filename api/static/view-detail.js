// One alarm: what and where, the sensor's trend over the alarm's span with its limits and the start
// and end marked, the enterprise's contact and departments, the actions the state and case allow
// (real forms, errors inline), and the whole history.
"use strict";
import { api, post } from "./api.js";
import { trendChart } from "./chart.js";
import { duration, el, levelWord, time, withUnit } from "./format.js";
import { t, word } from "./i18n.js";
import {
  acted, actorName, allowed, departmentName, departmentsFor, enterpriseName, gridName, limitsOf, priorityOf,
  sensorLabel, state, subscribe, withLatest,
} from "./store.js";

const SHELF_MINUTES = [15, 30, 60, 120, 240, 480];

function facts(pairs) {
  return el("dl", { class: "facts" }, pairs.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [el("dt", {}, t(k)), el("dd", {}, v)]));
}

function recipientName(r) {
  const [kind, id] = r.split(":");
  return kind === "department" ? departmentName(id) : actorName(id ?? kind);
}

function historyList(history) {
  return el("ol", { class: "history" }, history.map((ev) => el("li", { class: `ev ev-${ev.type}`, dataset: { type: ev.type } },
    el("time", {}, time(ev.ts)), " ",
    el("strong", {}, word("ev", ev.type)), " ",
    el("span", { class: "actor" }, ev.actor ? actorName(ev.actor) : ""),
    ev.type === "escalated" && ev.recipients.length ? el("span", { class: "to" }, ` → ${ev.recipients.map(recipientName).join("、")}`) : null,
    ev.note ? el("div", { class: "note" }, ev.note) : null,
    el("div", { class: "step" }, `${levelWord(ev.level)} · ${word("state", ev.state)} · ${word("case", ev.case)}`))));
}

/** A trend of the alarm's sensor over its span (a margin either side), aggregated when long. */
async function trend(a, box) {
  const [ent, dev, point] = a.sensor_id.split("/");
  const now = Date.now();
  const end = a.in_alarm || !a.cleared_at ? now : a.cleared_at;
  const margin = Math.max(60_000, (end - a.raised_at) * 0.25);
  const start = a.raised_at - margin, stop = Math.min(now, end + margin);
  let q = `start=${Math.round(start)}&end=${Math.round(stop)}`;
  if (stop - start > 30 * 60_000) {
    const low = a.level === "low" || a.level === "low_low";
    q += `&every=${Math.ceil((stop - start) / 300_000)}s&agg=${low ? "min" : "max"}`;
  }
  const data = await api(`/sensors/${ent}/${dev}/${point}/readings?${q}`);
  const marks = [{ ts: a.raised_at, label: t("d.start"), cls: "start" }];
  if (a.cleared_at) marks.push({ ts: a.cleared_at, label: t("d.end"), cls: "end" });
  const chart = trendChart({ points: withLatest(data.points, a.sensor_id, stop), limits: limitsOf(a.sensor_id),
                             start, end: stop, marks,
                             unit: data.unit, width: Math.min(900, box.clientWidth || 340), height: 220 });
  box.replaceChildren(chart, data.points.length ? "" : el("p", { class: "empty" }, t("d.no_readings")));
}

/** A form for one action; ``folded`` ones (the less usual) open from their title. */
function actionForm(cls, title, fields, go, submit, after, folded = false) {
  const error = el("p", { class: "form-error", role: "alert" });
  const button = el("button", { type: "submit" }, go);
  const form = el("form", { class: `act ${cls}` }, folded ? null : el("h3", {}, title), ...fields, button, error);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      const out = await submit(Object.fromEntries(new FormData(form)));
      acted(out.alarm);
      after();
    } catch (x) {
      error.textContent = x.message;
    } finally {
      button.disabled = false;
    }
  });
  return folded ? el("details", { class: "act-more", dataset: { act: cls.slice(4) } }, el("summary", {}, title), form) : form;
}

function note(name, placeholder, required = false) {
  return el("textarea", { name, rows: 2, placeholder: t(placeholder), required, maxlength: 2000 });
}

function actions(a, after) {
  const can = allowed(a);
  const forms = [];
  const path = (verb) => `/alarms/${a.id}/${verb}`;
  const dept = state.me.role === "department";
  if (can.ack) forms.push(actionForm("act-ack", t("a.ack"), [note("note", "a.note.optional")], t("a.ack.go"),
    (f) => post(path("ack"), { note: f.note }), after));
  if (can.dispatch) {
    const options = departmentsFor(a).map((d) => el("option", { value: d.id },
      `${departmentName(d.id)}${d.role ? `（${t(`a.${d.role}`)}）` : ""}`));
    forms.push(actionForm("act-dispatch", t("a.dispatch"), [
      el("select", { name: "department", required: true, "aria-label": t("a.dispatch") },
        el("option", { value: "" }, t("a.dispatch.pick")), options),
      note("note", "a.dispatch.note", true)], t("a.dispatch.go"),
    (f) => post(path("dispatch"), { department: f.department, note: f.note }), after));
  }
  if (can.resolve) forms.push(actionForm("act-resolve", t(dept ? "a.report" : "a.resolve"),
    [note("note", "a.resolve.note", true)], t("a.resolve.go"), (f) => post(path("resolve"), { note: f.note }), after,
    !dept));
  if (can.close) forms.push(actionForm("act-close", t("a.close"), [note("note", "a.note.optional")], t("a.close.go"),
    (f) => post(path("close"), { note: f.note }), after));
  if (can.shelve) {
    const most = (state.meta.max_shelve_s ?? 28800) / 60;
    const minutes = SHELF_MINUTES.filter((m) => m <= most);
    forms.push(actionForm("act-shelve", t("a.shelve"), [
      el("input", { name: "reason", required: true, maxlength: 2000, placeholder: t("a.shelve.reason") }),
      el("label", {}, t("a.shelve.for"), " ",
        el("select", { name: "minutes" }, minutes.map((m) => el("option", { value: m, selected: m === 60 }, t(`m.${m}`)))))],
    t("a.shelve.go"), (f) => post(path("shelve"), { reason: f.reason, minutes: Number(f.minutes) }), after, true));
  }
  if (can.unshelve) forms.push(actionForm("act-unshelve", t("a.unshelve"), [note("note", "a.note.optional")],
    t("a.unshelve.go"), (f) => post(path("unshelve"), { note: f.note }), after));
  const hints = [];
  if (a.case === "dispatched" && !dept) hints.push(t("a.wait_dept"));
  if (can.closeLater) hints.push(t("a.wait_normal"));
  if (a.case === "closed") hints.push(t("a.closed"));
  if (!forms.length && !hints.length) hints.push(t("a.none"));
  return [el("div", { class: "forms" }, forms), ...hints.map((h) => el("p", { class: "hint" }, h))];
}

function enterpriseFacts(a) {
  const e = state.enterprises.get(a.enterprise);
  if (!e) return facts([["d.grid", gridName(a.grid)]]);
  return el("div", {},
    el("h3", {}, el("a", { href: `#/enterprise/${e.id}` }, e.name ?? e.id)),
    facts([
      ["d.grid", gridName(e.grid)],
      ["d.address", e.address],
      ["d.contact", e.contact],
      ["d.phone", e.phone ? el("a", { href: `tel:${e.phone}` }, e.phone) : null],
      ["d.lead", e.lead_department ? departmentName(e.lead_department) : null],
      ["d.coop", (e.cooperating_departments ?? []).map(departmentName).join("、")],
    ]));
}

/** The alarm ``id`` in ``root``; returns the function that stops it. */
export function detailView(root, id) {
  root.replaceChildren(el("p", { class: "empty" }, t("loading")));
  let alarm = null, actionsKey = "", stopped = false, pending = null;
  const head = el("section", { class: "card head" });
  const chartBox = el("div", { class: "chart-box", id: "trend" });
  const trendCard = el("section", { class: "card trend-card" }, el("h2", {}, t("d.trend")), chartBox);
  const actionsCard = el("section", { class: "card actions", id: "actions" });
  const entCard = el("section", { class: "card enterprise" }, el("h2", {}, t("d.enterprise")));
  const historyCard = el("section", { class: "card" }, el("h2", {}, t("d.history")));

  async function load() {
    let a;
    try { a = await api(`/alarms/${id}`); } catch (x) { root.replaceChildren(el("p", { class: "form-error" }, x.message)); return; }
    if (stopped) return;
    alarm = a;
    if (!head.isConnected) {
      root.replaceChildren(el("a", { class: "back", href: "#/alarms" }, `← ${t("back")}`), head,
        ...(a.point ? [trendCard] : []), actionsCard, entCard, historyCard);
    }
    drawHead(a);
    const key = JSON.stringify([allowed(a), a.case, a.state]);
    if (key !== actionsKey) {
      actionsKey = key;
      actionsCard.replaceChildren(el("h2", {}, t("d.actions")), ...actions(a, load));
    }
    entCard.replaceChildren(el("h2", {}, t("d.enterprise")), enterpriseFacts(a));
    historyCard.replaceChildren(el("h2", {}, t("d.history")), historyList(a.history));
    if (a.point) await trend(a, chartBox).catch((x) => chartBox.replaceChildren(el("p", { class: "form-error" }, x.message)));
  }

  function drawHead(a) {
    const label = sensorLabel(a.sensor_id);
    const prio = priorityOf(a);
    head.className = `card head prio-${prio}`;
    head.replaceChildren(
      el("div", { class: "head-line" }, el("span", { class: `badge prio-${prio}` }, levelWord(a.level)),
        el("span", { class: "prio-word" }, word("prio", prio))),
      el("h1", {}, a.enterprise ? enterpriseName(a.enterprise) : gridName(a.grid)),
      el("p", { class: "where" }, [label.device, label.point].filter(Boolean).join(" · ")),
      facts([
        ["d.value", withUnit(state.latest.get(a.sensor_id)?.value ?? a.value, a.unit)],
        ["d.peak", withUnit(a.peak, a.unit)],
        ["d.raised", `${time(a.raised_at)}（${t("for", { t: duration((a.cleared_at ?? Date.now()) - a.raised_at) })}）`],
        ["d.cleared", a.cleared_at ? time(a.cleared_at) : null],
        ["d.state", word("state", a.state)],
        ["d.acked", a.acked_by ? `${actorName(a.acked_by)} ${time(a.acked_at)}${a.ack_note ? `：${a.ack_note}` : ""}` : null],
        ["d.case", `${word("case", a.case)}${a.department ? ` → ${departmentName(a.department)}` : ""}`],
      ]));
  }

  load();
  const stop = subscribe((c) => {
    if (c.what === "event" && c.event.alarm.id === Number(id)) {
      clearTimeout(pending);
      pending = setTimeout(load, 150);
    } else if (c.what === "latest" && alarm) drawHead({ ...alarm, ...(state.alarms.get(alarm.id) ?? {}) });
  });
  const tick = setInterval(() => { if (alarm?.in_alarm && alarm.point) trend(alarm, chartBox).catch(() => {}); }, 15000);
  return () => { stopped = true; stop(); clearInterval(tick); clearTimeout(pending); };
}
