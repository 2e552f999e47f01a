// The console's shell: login, the header (language, connection, who), the navigation by role, and the
// views by address (#/alarms, #/alarm/ID, #/grids, #/enterprise/ID, #/stats, #/cases).
"use strict";
import { announce, unlock } from "./alerts.js";
import { loggedIn, login, logout, whenLoggedOut } from "./api.js";
import { $, el } from "./format.js";
import { lang, setLang, t, translate, word } from "./i18n.js";
import { loadMeta, start, state, stop, subscribe } from "./store.js";
import { alarmsView } from "./view-alarms.js";
import { detailView } from "./view-detail.js";
import { enterpriseView, gridsView } from "./view-grid.js";
import { casesView, statsView } from "./view-stats.js";

let leave = () => {};
let started = false;

const NAV = {
  department: ["cases", "alarms", "grids", "stats"],
  enterprise: ["alarms", "grids", "stats"],
};

function nav() {
  const items = NAV[state.me.role] ?? ["alarms", "grids", "stats"];
  $("nav").replaceChildren(...items.map((v) => el("a", { href: `#/${v}`, dataset: { view: v } }, t(`nav.${v}`))),
    el("a", { href: "/api/v1/docs", class: "docs", target: "_blank", rel: "noopener" }, t("nav.docs")));
}

function home() { return state.me?.role === "department" ? "#/cases" : "#/alarms"; }

/** Show the view the address names (the login's home when it names none). */
function route() {
  if (!started) return;
  leave();
  const [, view, id] = (location.hash || home()).split("/");
  const root = $("view");
  root.replaceChildren();
  root.dataset.view = view ?? "";
  for (const a of $("nav").children) a.classList.toggle("here", a.dataset.view === view
    || (view === "alarm" && a.dataset.view === "alarms") || (view === "enterprise" && a.dataset.view === "grids"));
  const views = {
    alarms: () => alarmsView(root), alarm: () => detailView(root, id), grids: () => gridsView(root),
    enterprise: () => enterpriseView(root, decodeURIComponent(id ?? "")), stats: () => statsView(root),
    cases: () => casesView(root),
  };
  leave = (views[view] ?? views.alarms)() ?? (() => {});
  window.scrollTo(0, 0);
}

function showLive(up) {
  const s = $("status");
  s.className = `status ${up ? "up" : "down"}`;
  s.textContent = t(up ? "live" : "reconnecting");
}

async function begin() {
  $("login").hidden = true; $("app").hidden = false; $("logout").hidden = false;
  try {
    await start();
  } catch (x) {
    $("view").replaceChildren(el("p", { class: "form-error" }, x.message));
    return;
  }
  started = true;
  $("who").textContent = `${state.me.username} · ${word("role", state.me.role)}`;
  nav();
  route();
}

whenLoggedOut(() => {
  started = false;
  leave(); leave = () => {};
  stop();
  $("view").replaceChildren(); $("nav").replaceChildren();
  $("login").hidden = false; $("app").hidden = true; $("logout").hidden = true; $("who").textContent = "";
  showLive(false); $("status").textContent = t("offline");
});

subscribe((c) => {
  if (c.what === "live") showLive(c.up);
  if (c.what === "event") announce(c.event);
});

$("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  unlock();  // a gesture: the beep may play later
  if (!await login(e.target)) { $("login-error").textContent = t("login.wrong"); return; }
  $("login-error").textContent = "";
  e.target.reset();
  begin();
});
$("logout").addEventListener("click", logout);
$("lang").addEventListener("click", () => {
  setLang(lang === "zh" ? "en" : "zh");
  $("lang").textContent = t("lang.other");
  if (started) { $("who").textContent = `${state.me.username} · ${word("role", state.me.role)}`; nav(); route(); }
});
window.addEventListener("hashchange", route);

translate(document);
$("lang").textContent = t("lang.other");
loadMeta().catch(() => {});
if (loggedIn()) begin();
