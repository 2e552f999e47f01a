// Small helpers every view uses: building elements, times, ages, numbers, level words.
"use strict";
import { lang, t, word } from "./i18n.js";

/** ``el("td", {class: "x", onclick: fn}, "text", child)``: an element; attributes starting with "on" are handlers. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

/** A value with a sensible number of digits: 2 decimals at most, trailing zeros dropped. */
export function num(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return t("none");
  const digits = Math.abs(v) >= 100 ? 1 : 2;
  return String(+v.toFixed(digits));
}

export function withUnit(v, unit) {
  const n = num(v);
  return n === t("none") || !unit ? n : `${n} ${unit}`;
}

/** A duration in ms as "5 分钟" / "5 min" (the largest whole unit). */
export function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return t("s", { n: s });
  if (s < 3600) return t("min", { n: Math.floor(s / 60) });
  if (s < 86400) return t("h", { n: Math.floor(s / 3600) });
  return t("d", { n: Math.floor(s / 86400) });
}

const locale = () => (lang === "zh" ? "zh-CN" : "en-GB");

/** A time as the officer reads it: today's as a clock time, others with the date. */
export function time(ms) {
  if (ms === null || ms === undefined) return t("none");
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString(locale(), { hour12: false })
    : d.toLocaleString(locale(), { hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
}

export function clock(ms, withSeconds = false) {
  const d = new Date(ms);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}` + (withSeconds ? `:${two(d.getSeconds())}` : "");
}

/** The level in words: "二级报警" and, after it, the level's own name (high-high). */
export function levelWord(level) {
  const w = word("level", level);
  return lang === "zh" && w !== level ? `${w} ${level.replace("_", "-")}` : w;
}

export function seconds(v) {
  return v === null || v === undefined ? t("none") : duration(v * 1000);
}
