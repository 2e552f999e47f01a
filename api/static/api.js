// The HTTP side: tokens (kept in sessionStorage), calls with one renewal on a 401, login and logout.
"use strict";
import { t } from "./i18n.js";

export const API = "/api/v1";
let token = sessionStorage.getItem("gridgate.token");
let refreshToken = sessionStorage.getItem("gridgate.refresh");
let renewing = null;  // the refresh in flight: a refresh token works once, so callers share it
let onLoggedOut = () => {};

export const currentToken = () => token;
export const loggedIn = () => Boolean(token);
export function whenLoggedOut(fn) { onLoggedOut = fn; }

function keep(pair) {
  token = pair.access_token; refreshToken = pair.refresh_token;
  sessionStorage.setItem("gridgate.token", token); sessionStorage.setItem("gridgate.refresh", refreshToken);
}

/** Trade the refresh token for a new pair, once for all callers waiting on it. */
export function renew() {
  renewing ??= (async () => {
    if (!refreshToken) return false;
    const res = await fetch(API + "/auth/refresh", { method: "POST", headers: { "Content-Type": "application/json" },
                                                     body: JSON.stringify({ refresh_token: refreshToken }) });
    if (!res.ok) return false;
    keep(await res.json());
    return true;
  })().finally(() => { renewing = null; });
  return renewing;
}

/** The message of an error answer: its ``detail`` (a text, or the first validation errors). */
function message(body, res) {
  const d = body.detail;
  if (typeof d === "string") return d;
  if (Array.isArray(d)) return d.slice(0, 3).map((e) => [e.loc?.slice(-1)[0], e.msg ?? e.message].filter(Boolean)
    .join(": ")).join("; ");
  return `${res.status} ${res.statusText}`;
}

export async function api(path, options = {}, withHeaders = false, renewed = false) {
  const headers = { ...(options.headers || {}), Authorization: "Bearer " + token };
  const res = await fetch(API + path, { ...options, headers });
  if (res.status === 401 && !renewed && await renew()) return api(path, options, withHeaders, true);
  if (res.status === 401) { logout(); throw new Error(t("login.again")); }
  const body = res.status === 204 ? {} : await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(message(body, res));
    err.status = res.status;
    throw err;
  }
  return withHeaders ? [body, res.headers] : body;
}

export function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

/** Log in with the form's username and password; true when it worked. */
export async function login(form) {
  const res = await fetch(API + "/auth/token", { method: "POST", body: new URLSearchParams(new FormData(form)) });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) return false;
  keep(body);
  return true;
}

export function logout() {
  if (token) fetch(API + "/auth/logout", { method: "POST", headers: { Authorization: "Bearer " + token } }).catch(() => {});
  token = null; refreshToken = null;
  sessionStorage.removeItem("gridgate.token"); sessionStorage.removeItem("gridgate.refresh");
  onLoggedOut();
}
