// fleet-agent dashboard: draws the server's device documents and keeps them live.
// No build step, no framework. One EventSource brings a snapshot, then coalesced updates; only
// the rows of changed devices are redrawn and moved, countdowns tick once a second. Everything
// taken from a payload goes through esc() before it reaches innerHTML.
"use strict";

const TOKEN = document.querySelector('meta[name="fleet-token"]').content;
const RECORDER = document.querySelector('meta[name="fleet-recorder"]').content === "on"; // --db
const devices = new Map(); // id -> device document
const rowEls = new Map(); // id -> <article>
let order = []; // ids, sorted problems first
let offset = 0; // server clock - browser clock (ms)
let source = null;
let drawerKey = null; // [device, service] shown in the drawer
const results = new Map(); // "device/service" -> last command result text
const stats = { loadedAt: null, snapshots: 0, updates: 0, rowsDrawn: 0, devices: 0, pastLoads: 0 };
window.fleetDashboard = stats;

const $ = (id) => document.getElementById(id);
const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ESC[c]);
const now = () => Date.now() + offset;

function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function clock(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? "" : new Date(t).toLocaleString();
}

// ---- rows -------------------------------------------------------------------------------

function countdown(retry) {
  if (!retry) return "";
  let html = `<span class="retries" title="failed attempts / limit">${esc(retry.count)}/${esc(retry.max)}</span>`;
  if (retry.exhausted) html += ` <span class="exhausted">exhausted</span>`;
  else if (retry.next) html += ` <span class="countdown" data-next="${esc(retry.next)}">${tick(retry.next)}</span>`;
  return html;
}

function tick(next) {
  const left = (Date.parse(next) - now()) / 1000;
  return left > 0.5 ? `retry in ${duration(left)}` : "retrying…";
}

function badgeHtml(badge) {
  let html = `<span class="badge tone-${esc(badge.tone)}">${esc(badge.text)}</span>`;
  if (badge.percent !== null && badge.percent !== undefined) {
    html += `<progress max="100" value="${esc(badge.percent)}"></progress>`;
  }
  return html;
}

function serviceHtml(d, s) {
  const key = `${d.id}/${s.name}`;
  const failing = s.retry !== null;
  const result = results.get(key);
  return `<li class="svc" data-service="${esc(s.name)}">
    <button class="svc-name link" data-open="${esc(s.name)}" title="${esc(s.image)}">${esc(s.name)}</button>
    ${badgeHtml(s.badge)} ${countdown(s.retry)}
    ${s.restartCount ? `<span class="restarts">${esc(s.restartCount)} restarts</span>` : ""}
    ${failing ? `<button class="retry" data-retry="${esc(s.name)}">Force Retry</button>` : ""}
    ${result ? `<span class="cmd-result">${esc(result)}</span>` : ""}
    ${s.message ? `<span class="msg">${esc(s.message)}</span>` : ""}
  </li>`;
}

function sinceText(d) {
  if (!d.since) return "";
  const ago = duration((now() - Date.parse(d.since)) / 1000);
  const basis = d.sinceBasis === "lastReport" ? "last report " : "";
  return d.availability === "offline" ? `${basis}${ago} ago` : `for ${ago}`;
}

function deviceHtml(d) {
  const avail = d.availability || "unknown";
  const counts = Object.entries(d.counts).map(([k, v]) => `${esc(k)} ${esc(v)}`).join(" · ");
  const failing = d.services.some((s) => s.retry !== null);
  const converged = d.converged === null ? "" : d.converged ? "converged" : "converging";
  const result = results.get(`${d.id}/`);
  return `<article class="device rank-${esc(d.rank)}" data-id="${esc(d.id)}">
  <div class="dev-head">
    <span class="avail avail-${esc(avail)}">${esc(avail)}</span>
    <b class="dev-id">${esc(d.id)}</b>
    <span class="since" data-since="${esc(d.since || "")}" title="${esc(clock(d.since))}">${esc(sinceText(d))}</span>
    ${converged ? `<span class="conv conv-${converged}">${converged}</span>` : ""}
    ${d.targetVersion !== null ? `<span class="version">v${esc(d.targetVersion)}</span>` : ""}
    <span class="counts">${counts}</span>
    ${d.rejected ? `<span class="badge tone-error">target rejected (${esc(d.rejected.code)})</span>` : ""}
    ${Object.entries(d.labels).map(([k, v]) => `<span class="label">${esc(k)}=${esc(v)}</span>`).join("")}
    ${failing ? `<button class="retry retry-all" data-retry="">Force Retry all failing</button>` : ""}
    ${result ? `<span class="cmd-result">${esc(result)}</span>` : ""}
  </div>
  <ul class="services">${d.services.map((s) => serviceHtml(d, s)).join("")}</ul>
</article>`;
}

function searchText(d) {
  const parts = [d.id, d.availability, ...Object.entries(d.labels).flat()];
  for (const s of d.services) parts.push(s.name, s.image, s.badge.text, s.message || "");
  for (const a of d.alerts) parts.push(a.type, a.message);
  return parts.join(" ").toLowerCase();
}

function matches(d) {
  const status = $("status-filter").value;
  const text = $("filter").value.trim().toLowerCase();
  const ok = {
    all: true,
    problems: d.rank < 3,
    error: d.rank === 0,
    offline: d.availability !== "online",
    busy: d.rank === 2,
    healthy: d.rank === 3,
  }[status];
  if (!ok) return false;
  if (!text) return true;
  if (d._text === undefined) d._text = searchText(d);
  return text.split(/\s+/).every((word) => d._text.includes(word));
}

const before = (a, b) => a.rank - b.rank || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function position(d) {
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (before(devices.get(order[mid]), d) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function element(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  return template.content.firstElementChild;
}

function drawAll(list) {
  devices.clear();
  for (const d of list) devices.set(d.id, d);
  order = list.map((d) => d.id).sort((a, b) => before(devices.get(a), devices.get(b)));
  $("rows").innerHTML = order.map((id) => deviceHtml(devices.get(id))).join("");
  rowEls.clear();
  for (const el of $("rows").children) rowEls.set(el.dataset.id, el);
  stats.rowsDrawn += order.length;
  refilter();
}

function drawOne(d) {
  const old = devices.get(d.id);
  const el = element(deviceHtml(d));
  el.hidden = !matches(d);
  stats.rowsDrawn += 1;
  if (old && old.rank === d.rank) {
    devices.set(d.id, d);
    rowEls.get(d.id).replaceWith(el);
    rowEls.set(d.id, el);
    return;
  }
  if (old) {
    order.splice(order.indexOf(d.id), 1);
    rowEls.get(d.id).remove();
  }
  const at = position(d);
  order.splice(at, 0, d.id);
  devices.set(d.id, d);
  rowEls.set(d.id, el);
  const next = order[at + 1];
  $("rows").insertBefore(el, next === undefined ? null : rowEls.get(next));
}

function drop(id) {
  if (!devices.has(id)) return;
  devices.delete(id);
  order.splice(order.indexOf(id), 1);
  rowEls.get(id).remove();
  rowEls.delete(id);
}

function refilter() {
  let shown = 0;
  for (const [id, el] of rowEls) {
    const visible = matches(devices.get(id));
    el.hidden = !visible;
    shown += visible ? 1 : 0;
  }
  $("empty").hidden = shown > 0 || devices.size === 0;
}

// ---- summary and alerts -----------------------------------------------------------------

function drawSummary() {
  let offline = 0;
  let failing = 0;
  for (const d of devices.values()) {
    if (d.availability !== "online") offline += 1;
    if (d.rank === 0) failing += 1;
  }
  stats.devices = devices.size;
  $("summary").textContent = `${devices.size} devices · ${failing} in error · ${offline} offline`;
}

const SEVERITY = { critical: 0, warning: 1 };
const ALERTS_SHOWN = 200;

function drawAlerts() {
  const all = [];
  for (const d of devices.values()) for (const a of d.alerts) all.push([d.id, a]);
  all.sort(([, a], [, b]) => (SEVERITY[a.severity] ?? 2) - (SEVERITY[b.severity] ?? 2) ||
    (a.raisedAt < b.raisedAt ? -1 : 1));
  $("alert-count").textContent = all.length ? String(all.length) : "";
  const items = all.slice(0, ALERTS_SHOWN).map(([id, a]) => `<li class="alert sev-${esc(a.severity)}"
      data-device="${esc(id)}" data-service="${esc(a.service)}">
    <span class="sev">${esc(a.severity)}</span> <b>${esc(id)}</b> / ${esc(a.service)}
    <span class="type">${esc(a.type)}</span>
    <span class="raised" data-since="${esc(a.raisedAt)}" title="${esc(clock(a.raisedAt))}">since ${esc(duration((now() - Date.parse(a.raisedAt)) / 1000))}</span>
    <div class="msg">${esc(a.message)}</div></li>`);
  if (all.length > ALERTS_SHOWN) items.push(`<li class="more">and ${all.length - ALERTS_SHOWN} more</li>`);
  $("alerts").innerHTML = items.join("") || `<li class="none">none</li>`;
  const active = all.map(([id, a]) => `${id}/${a.service}/${a.raisedAt}`).sort().join(" ");
  if (RECORDER && active !== past.active) {
    // at first at once; after a change a little later: a cleared alert reaches the database soon
    schedulePast(past.active === null ? 0 : PAST_AFTER_CHANGE_MS);
    past.active = active;
  }
}

// ---- past alerts (dashboard --db: cleared alerts from the recorder's database) ----------

const PAST_PAGE = 20;
const PAST_MAX = 200; // what one request may ask for (the server's cap)
const PAST_AFTER_CHANGE_MS = 2000;
const PAST_REFRESH_MS = 30000;
const past = { items: [], next: null, active: null, timer: null, seq: 0 };

function pastHtml(a) {
  const escalated = a.escalatedAt
    ? ` · escalated to ${esc(a.type)} after ${esc(duration(a.secondsToEscalate ?? 0))}` : "";
  return `<li class="alert past sev-${esc(a.severity)}" data-device="${esc(a.device)}" data-service="${esc(a.service)}">
    <span class="sev">${esc(a.severity)}</span> <b>${esc(a.device)}</b> / ${esc(a.service)}
    <span class="type">${esc(a.firstType)}</span>
    <div class="when">raised <time datetime="${esc(a.raisedAt)}">${esc(clock(a.raisedAt))}</time>${escalated},
    cleared after <span class="duration">${esc(duration(a.durationSeconds ?? 0))}</span>
    <time datetime="${esc(a.clearedAt)}">(${esc(clock(a.clearedAt))})</time></div></li>`;
}

function drawPast() {
  $("past-alerts").innerHTML = past.items.map(pastHtml).join("") || `<li class="none">none recorded</li>`;
  $("past-more").hidden = !past.next;
}

// more: the next page after those shown; else the newest again, as many as are shown
async function loadPast(more) {
  const seq = ++past.seq;
  const limit = more ? PAST_PAGE : Math.min(PAST_MAX, Math.max(PAST_PAGE, past.items.length));
  const params = new URLSearchParams({ limit: String(limit), q: $("filter").value.trim() });
  if (more && past.next) params.set("before", past.next);
  let doc;
  let ok = false;
  try {
    const response = await fetch(`/api/alerts/past?${params}`, { credentials: "same-origin" });
    doc = await response.json();
    ok = response.ok;
  } catch (error) {
    doc = { error: `the dashboard cannot be reached (${error})` };
  }
  if (seq !== past.seq) return; // a newer load is under way
  stats.pastLoads += 1;
  $("past-error").hidden = ok;
  $("past-error").textContent = ok ? "" : doc.error || "the past alerts cannot be read";
  if (!ok) return;
  past.items = more ? past.items.concat(doc.alerts) : doc.alerts;
  past.next = doc.more;
  drawPast();
}

function schedulePast(ms) {
  clearTimeout(past.timer);
  past.timer = setTimeout(() => loadPast(false), ms);
}

// ---- the drawer -------------------------------------------------------------------------

function drawerHtml(x) {
  const s = x.status;
  const e = x.error;
  const rows = [
    ["image", s.imageName], ["running image", s.runningImage], ["container", s.containerId],
    ["exit code", s.exitCode], ["restarts", s.restartCount], ["target version", s.targetVersion],
    ["updated", clock(s.updatedAt)],
  ].filter(([, v]) => v !== null && v !== undefined);
  let html = `<h2>${esc(x.device)} / ${esc(s.serviceName)}</h2><p>${badgeHtml(x.row.badge)} ${countdown(x.row.retry)}
    ${x.row.retry ? `<button class="retry" data-device="${esc(x.device)}" data-retry="${esc(s.serviceName)}">Force Retry</button>` : ""}</p>
    <dl>${rows.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join("")}</dl>`;
  if (e) {
    html += `<h3>Error</h3><dl><dt>type</dt><dd>${esc(e.type)}</dd><dt>since</dt><dd>${esc(clock(e.timestamp))}</dd>
      <dt>retries</dt><dd>${esc(e.retryCount)}/${esc(e.maxRetries)}${e.exhausted ? " (exhausted)" : ""}</dd></dl>
      <pre class="message">${esc(e.message)}</pre>`;
  }
  if (x.output.length) html += `<h3>Last output</h3><pre class="output">${x.output.map(esc).join("\n")}</pre>`;
  if (x.alert) {
    html += `<h3>Alert</h3><p class="alert sev-${esc(x.alert.severity)}"><span class="sev">${esc(x.alert.severity)}</span>
      ${esc(x.alert.type)} since ${esc(clock(x.alert.raisedAt))}</p><pre class="message">${esc(x.alert.message)}</pre>`;
  }
  if (x.deviceAlert) {
    html += `<h3>Device alert</h3><p>${esc(x.deviceAlert.type)}</p><pre class="message">${esc(x.deviceAlert.message)}</pre>`;
  }
  if (x.recorderError) html += `<p class="error recorder-error">${esc(x.recorderError)}; the history shown is the retained one</p>`;
  html += `<h3>History</h3><ol class="timeline">${x.history.map((h) => `<li><time>${esc(clock(h.timestamp))}</time>
    <b>${esc(h.serviceStatus)}</b> ${h.errorType ? esc(h.errorType) : ""} ${h.retryCount ? `(${esc(h.retryCount)})` : ""}
    ${h.message ? `<div class="msg">${esc(h.message)}</div>` : ""}</li>`).join("") || "<li>none yet</li>"}</ol>`;
  if (x.pastAlerts && x.pastAlerts.length) {
    html += `<h3>Past alerts</h3><ol class="timeline">${x.pastAlerts.map((a) => `<li><time>${esc(clock(a.raisedAt))}</time>
      <b>${esc(a.severity)}</b> ${esc(a.firstType)}${a.type !== a.firstType ? ` &rarr; ${esc(a.type)}` : ""}
      ${a.clearedAt ? `cleared after ${esc(Math.round(a.durationSeconds))} s` : "active"}</li>`).join("")}</ol>`;
  }
  return html;
}

async function openDrawer(device, service) {
  drawerKey = [device, service];
  const url = `/api/devices/${encodeURIComponent(device)}/services/${encodeURIComponent(service)}`;
  const response = await fetch(url, { credentials: "same-origin" });
  if (!drawerKey || drawerKey[0] !== device || drawerKey[1] !== service) return;
  const body = $("drawer-body");
  body.innerHTML = response.ok ? drawerHtml(await response.json()) : `<p>${esc(device)}/${esc(service)} is gone.</p>`;
  $("drawer").hidden = false;
}

function closeDrawer() {
  drawerKey = null;
  $("drawer").hidden = true;
}

// ---- Force Retry ------------------------------------------------------------------------

function toast(text, ok) {
  const el = document.createElement("div");
  el.className = `toast ${ok ? "ok" : "bad"}`;
  el.textContent = text;
  $("toasts").append(el);
  setTimeout(() => el.remove(), 8000);
}

async function forceRetry(device, service, button) {
  const key = `${device}/${service}`;
  button.disabled = true;
  results.set(key, "retry sent…");
  const where = service ? `${device}/${service}` : `${device} (all failing)`;
  let text;
  let ok = false;
  try {
    const response = await fetch(`/api/devices/${encodeURIComponent(device)}/retry`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Fleet-Token": TOKEN },
      body: JSON.stringify(service ? { service } : {}),
    });
    const doc = await response.json();
    const r = doc.result;
    ok = response.ok && r && r.ok;
    text = r ? `retry ${r.ok ? "ok" : "failed"}${r.services ? `: ${r.services.join(", ") || "nothing in error"}` : ""}${r.error ? `: ${r.error}` : ""}`
      : `retry failed: ${doc.error || response.status}`;
  } catch (error) {
    text = `retry failed: ${error}`;
  }
  results.set(key, text);
  toast(`${where}: ${text}`, ok);
  const d = devices.get(device);
  if (d) drawOne(d);
  if (drawerKey && drawerKey[0] === device) openDrawer(...drawerKey);
}

// ---- the stream -------------------------------------------------------------------------

function frame(doc) {
  offset = Date.parse(doc.now) - Date.now();
  const conn = $("conn");
  conn.textContent = doc.connected ? "live" : "broker unreachable";
  conn.className = `conn ${doc.connected ? "conn-ok" : "conn-bad"}`;
}

function onSnapshot(event) {
  const doc = JSON.parse(event.data);
  frame(doc);
  drawAll(doc.devices);
  drawSummary();
  drawAlerts();
  stats.snapshots += 1;
  if (stats.loadedAt === null) {
    // after the next frame: the time includes style, layout and paint, not only our script
    requestAnimationFrame(() => setTimeout(() => {
      stats.loadedAt = performance.now();
      document.body.dataset.loaded = "true";
    }));
  }
  if (drawerKey) openDrawer(...drawerKey);
}

function onUpdate(event) {
  const doc = JSON.parse(event.data);
  frame(doc);
  for (const d of doc.devices) drawOne(d);
  for (const id of doc.removed) drop(id);
  $("empty").hidden = order.some((id) => !rowEls.get(id).hidden) || devices.size === 0;
  drawSummary();
  drawAlerts();
  stats.updates += 1;
  if (drawerKey && doc.devices.some((d) => d.id === drawerKey[0])) openDrawer(...drawerKey);
}

function connect() {
  source = new EventSource("/api/events");
  source.addEventListener("snapshot", onSnapshot);
  source.addEventListener("update", onUpdate);
  source.addEventListener("status", (event) => frame(JSON.parse(event.data)));
  source.onerror = () => {
    const conn = $("conn");
    conn.textContent = "reconnecting to the dashboard…";
    conn.className = "conn conn-wait";
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000); // an HTTP error
  };
}

// ---- wiring -----------------------------------------------------------------------------

function everySecond() {
  for (const el of document.querySelectorAll(".countdown")) el.textContent = tick(el.dataset.next);
  if (Math.floor(Date.now() / 1000) % 10 === 0) {
    for (const el of document.querySelectorAll(".since[data-since]")) {
      const d = devices.get(el.closest(".device")?.dataset.id);
      if (d) el.textContent = sinceText(d);
    }
  }
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button, li.alert");
  if (!target) return;
  const row = target.closest(".device");
  if (target.dataset.retry !== undefined) {
    forceRetry(target.dataset.device || row.dataset.id, target.dataset.retry, target);
  } else if (target.dataset.open !== undefined) {
    openDrawer(row.dataset.id, target.dataset.open);
  } else if (target.classList.contains("alert") && target.dataset.service !== "_agent") {
    openDrawer(target.dataset.device, target.dataset.service);
  } else if (target.id === "drawer-close") {
    closeDrawer();
  } else if (target.id === "past-more") {
    loadPast(true);
  }
});
document.addEventListener("keydown", (event) => event.key === "Escape" && closeDrawer());
$("filter").addEventListener("input", () => {
  refilter();
  if (RECORDER) {
    past.items = [];
    schedulePast(300);
  }
});
if (RECORDER) {
  $("past-panel").hidden = false;
  setInterval(() => loadPast(false), PAST_REFRESH_MS);
}
$("status-filter").addEventListener("change", refilter);
setInterval(everySecond, 1000);
connect();
