// A new high-priority alarm while the page is open: a beep (WebAudio, no sound file) and a browser
// notification, each switched on or off by the officer (kept in localStorage).
"use strict";
import { levelWord } from "./format.js";
import { t } from "./i18n.js";
import { enterpriseName, priorityOf, sensorLabel } from "./store.js";

let audio = null;

export const settings = {
  get sound() { return localStorage.getItem("gridgate.sound") !== "off"; },
  set sound(on) { localStorage.setItem("gridgate.sound", on ? "on" : "off"); if (on) unlock(); },
  get notify() { return localStorage.getItem("gridgate.notify") === "on"; },
  set notify(on) {
    localStorage.setItem("gridgate.notify", on ? "on" : "off");
    if (on && "Notification" in window && Notification.permission === "default") Notification.requestPermission();
  },
};

/** Browsers start audio only after a gesture: called from the login and the switches. */
export function unlock() {
  if (!window.AudioContext) return;
  audio ??= new AudioContext();
  if (audio.state === "suspended") audio.resume().catch(() => {});
}

function beep() {
  if (!audio) return;
  const now = audio.currentTime;
  for (const [i, freq] of [880, 660, 880].entries()) {
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.type = "square";
    osc.frequency.value = freq;
    gain.gain.setValueAtTime(0.0001, now + i * 0.25);
    gain.gain.exponentialRampToValueAtTime(0.2, now + i * 0.25 + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.25 + 0.2);
    osc.connect(gain).connect(audio.destination);
    osc.start(now + i * 0.25);
    osc.stop(now + i * 0.25 + 0.22);
  }
}

/** A live event: sound and notify when it is a new (or risen) high-priority alarm the officer sees. */
export function announce(ev) {
  const a = ev.alarm;
  if (!["raised", "rose"].includes(ev.type) || priorityOf(a) !== "high") return;
  if (["shelved", "suppressed", "out_of_service"].includes(a.state)) return;
  const counts = document.body.dataset;
  counts.alerts = String(Number(counts.alerts ?? 0) + 1);
  if (settings.sound) { beep(); counts.beeps = String(Number(counts.beeps ?? 0) + 1); }
  if (settings.notify && "Notification" in window && Notification.permission === "granted") {
    const label = sensorLabel(a.sensor_id);
    try {
      const n = new Notification(t("notify.title", { level: levelWord(a.level), ent: enterpriseName(a.enterprise) }), {
        body: `${label.device} ${label.point} ${a.value ?? ""} ${a.unit ?? ""}`.trim(), tag: `alarm-${a.id}`,
        icon: "/static/icon.svg", renotify: true });
      n.onclick = () => { window.focus(); location.hash = `#/alarm/${a.id}`; };
      counts.notified = String(Number(counts.notified ?? 0) + 1);
    } catch { /* a browser that allows notifications only from a service worker: the beep is still there */ }
  }
}
