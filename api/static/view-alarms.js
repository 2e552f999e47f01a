// The alarm list: cards on a phone, a table on a wide screen (one table, laid out by console.css);
// unacknowledged high priority on top; names, live value and peak, age, who acknowledged, the case.
"use strict";
import { settings, unlock } from "./alerts.js";
import { duration, el, levelWord, withUnit } from "./format.js";
import { t, word } from "./i18n.js";
import {
  actorName, byUrgency, departmentName, enterpriseName, priorityOf, sensorLabel, state, subscribe,
} from "./store.js";

const COLUMNS = ["level", "enterprise", "sensor", "value", "peak", "age", "state", "ack", "case"];
let showClosed = localStorage.getItem("gridgate.closed") === "on";

function toggle(id, label, checked, onchange) {
  return el("label", { class: "switch" },
    el("input", { type: "checkbox", id, checked, onchange: (e) => onchange(e.target.checked) }), label);
}

function caseText(a) {
  const parts = [word("case", a.case)];
  if (a.department) parts.push(`→ ${departmentName(a.department)}`);
  if (a.chattering) parts.push(`· ${word("ev", "chattering")}`);
  return parts.join(" ");
}

function row(a, now) {
  const prio = priorityOf(a);
  const label = sensorLabel(a.sensor_id);
  const live = state.latest.get(a.sensor_id);
  const value = a.in_alarm && a.point && live?.value !== null && live?.value !== undefined ? live.value : a.value;
  const cell = (col, ...content) => el("td", { class: `c-${col}`, "data-label": t(`col.${col}`) }, ...content);
  const fresh = a.state === "unacknowledged";
  return el("tr", {
    class: `alarm prio-${prio} st-${a.state}${a.in_alarm ? " active" : ""}${fresh ? " unacked" : ""}`,
    dataset: { id: a.id, level: a.level, state: a.state, case: a.case },
    tabindex: 0,
    onclick: () => { location.hash = `#/alarm/${a.id}`; },
    onkeydown: (e) => { if (e.key === "Enter") location.hash = `#/alarm/${a.id}`; },
  },
  cell("level", el("span", { class: `badge prio-${prio}` }, levelWord(a.level))),
  cell("enterprise", el("a", { href: `#/alarm/${a.id}` }, a.enterprise ? enterpriseName(a.enterprise) : t("none"))),
  cell("sensor", [label.device, label.point].filter(Boolean).join(" · ")),
  cell("value", withUnit(value, a.unit)),
  cell("peak", withUnit(a.peak, a.unit)),
  cell("age", duration(now - a.raised_at)),
  cell("state", word("state", a.state)),
  cell("ack", a.acked_by ? actorName(a.acked_by) : t("none")),
  cell("case", caseText(a)));
}

/** The list in ``root``; returns the function that stops it. */
export function alarmsView(root) {
  const body = el("tbody", { id: "alarms" });
  const empty = el("p", { class: "empty", hidden: true }, t("none.alarms"));
  const table = el("table", { class: "alarm-table" },
    el("thead", {}, el("tr", {}, COLUMNS.map((c) => el("th", { class: `c-${c}` }, t(`col.${c}`))))), body);
  const bar = el("div", { class: "toolbar" },
    toggle("opt-sound", t("opt.sound"), settings.sound, (on) => { settings.sound = on; unlock(); }),
    toggle("opt-notify", t("opt.notify"), settings.notify, (on) => { settings.notify = on; }),
    toggle("opt-closed", t("opt.closed"), showClosed, (on) => {
      showClosed = on; localStorage.setItem("gridgate.closed", on ? "on" : "off"); draw();
    }));
  root.replaceChildren(el("h2", { class: "sr" }, t("nav.alarms")), bar, table, empty);

  function draw() {
    const now = Date.now();
    const list = [...state.alarms.values()].filter((a) => showClosed || a.case !== "closed").sort(byUrgency);
    body.replaceChildren(...list.map((a) => row(a, now)));
    empty.hidden = list.length > 0;
  }
  draw();
  const stop = subscribe((c) => { if (c.what !== "live") draw(); });
  const tick = setInterval(draw, 10000);
  return () => { stop(); clearInterval(tick); };
}
