// nagare's web console: reads the admin listener's /api/ JSON
// (broker/console_api.h) every few seconds and draws it. No framework, no
// build step, nothing fetched from elsewhere.
"use strict";

const POLL_MS = 2000;
const LAG_POINTS = 150; // 5 minutes of polls
const lagHistory = new Map(); // group -> [total lag, ...]
let lastTopics = null; // previous poll, for rates
let chosenTopic = null;
// A link "#group=NAME" opens that group's detail.
const groupOfHash = () => {
  const m = location.hash.match(/^#group=(.+)$/);
  return m ? decodeURIComponent(m[1]) : null;
};
let chosenGroup = groupOfHash();
let topicsSeen = [];

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function num(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US");
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return (u === 0 ? n : n.toFixed(1)) + " " + units[u];
}

function duration(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  return s < 120 ? s.toFixed(1) + " s" : (s / 60).toFixed(1) + " min";
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(path + ": " + (body.error || r.status));
  return body;
}

// ---- brokers ----

function drawCluster(c) {
  $("broker").textContent = `broker ${c.broker_id} · version ${c.version}` +
    (c.clustered ? ` · controller ${c.controller < 0 ? "none" : c.controller}` : " · single broker");
  fill($("brokers").tBodies[0], c.brokers.map((b) =>
    el("tr", {}, el("td", {}, b.id), el("td", {}, `${b.host}:${b.port}`),
      el("td", {}, b.kafka_port || "–"),
      el("td", {}, b.id === c.controller ? "controller" : (b.id === c.broker_id ? "this broker" : "")))));
}

// ---- topics ----

function topicTotals(t) {
  let records = 0, size = 0, bin = 0, bout = 0, under = 0;
  for (const p of t.partitions) {
    records += p.high_watermark - p.log_start;
    size += p.size_bytes; bin += p.bytes_in; bout += p.bytes_out;
    if (p.isr.length < p.replicas.length) under++;
  }
  return { records, size, bin, bout, under };
}

function rate(name, field, now) {
  if (!lastTopics || !lastTopics.has(name)) return "–";
  const [prev, prevMs] = lastTopics.get(name);
  const secs = (now.ms - prevMs) / 1000;
  return secs > 0 ? bytes(Math.max(0, (now[field] - prev[field]) / secs)) + "/s" : "–";
}

function drawTopics(topics) {
  const nowMs = Date.now();
  const next = new Map();
  topicsSeen = topics.map((t) => t.name);
  fill($("topics-table").tBodies[0], topics.map((t) => {
    const tot = topicTotals(t);
    const now = { ...tot, ms: nowMs };
    next.set(t.name, [tot, nowMs]);
    const row = el("tr", { class: "pick" + (t.name === chosenTopic ? " chosen" : ""), "data-topic": t.name,
      onclick: () => { chosenTopic = t.name; drawTopics(topics); } },
      el("td", {}, t.name + (t.internal ? " (internal)" : "")), el("td", {}, t.partitions.length),
      el("td", { class: "num" }, num(tot.records)), el("td", { class: "num" }, bytes(tot.size)),
      el("td", { class: "num" }, rate(t.name, "bin", now)), el("td", { class: "num" }, rate(t.name, "bout", now)),
      el("td", { class: tot.under ? "bad" : "" }, tot.under ? tot.under + " partitions" : "none"));
    return row;
  }));
  lastTopics = next;
  const t = topics.find((x) => x.name === chosenTopic);
  $("partitions").hidden = !t;
  if (t) {
    $("partitions-topic").textContent = t.name;
    fill($("partitions-table").tBodies[0], t.partitions.map((p) =>
      el("tr", {}, el("td", { class: "num" }, p.partition), el("td", {}, p.leader < 0 ? "none" : p.leader),
        el("td", {}, p.replicas.join(", ")),
        el("td", { class: p.isr.length < p.replicas.length ? "bad" : "" }, p.isr.join(", ")),
        el("td", { class: "num" }, num(p.log_start)), el("td", { class: "num" }, num(p.log_end)),
        el("td", { class: "num" }, num(p.high_watermark)), el("td", { class: "num" }, bytes(p.size_bytes)),
        el("td", {}, el("a", { href: `#records?topic=${encodeURIComponent(t.name)}&partition=${p.partition}&offset=${p.log_start}` }, "browse")))));
  }
  const sel = $("r-topic");
  const keep = sel.value;
  sel.replaceChildren(...topicsSeen.map((n) => el("option", { value: n }, n)));
  if (topicsSeen.includes(keep)) sel.value = keep;
}

// ---- groups ----

function sparkline(points) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 160 28");
  const max = Math.max(1, ...points);
  const step = points.length > 1 ? 160 / (points.length - 1) : 0;
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.map((v, i) => `${(i * step).toFixed(1)},${(26 - (v / max) * 24).toFixed(1)}`).join(" "));
  svg.append(line);
  return svg;
}

function drawGroups(groups) {
  fill($("groups-table").tBodies[0], groups.map((g) => {
    let lag = 0, lagMs = 0;
    for (const o of g.offsets) { lag += o.lag || 0; lagMs = Math.max(lagMs, o.lag_ms || 0); }
    const hist = lagHistory.get(g.group) || [];
    hist.push(lag);
    if (hist.length > LAG_POINTS) hist.shift();
    lagHistory.set(g.group, hist);
    return el("tr", { class: "pick" + (g.group === chosenGroup ? " chosen" : ""), "data-group": g.group,
      onclick: () => { chosenGroup = g.group; drawGroupDetail(groups); } },
      el("td", {}, g.group), el("td", { class: "num" }, g.members.length),
      el("td", { class: "num" }, g.offsets.length), el("td", { class: "num" }, num(lag)),
      el("td", { class: "num" }, duration(lagMs)), el("td", {}, sparkline(hist)));
  }));
  drawGroupDetail(groups);
}

function drawGroupDetail(groups) {
  const g = groups.find((x) => x.group === chosenGroup);
  $("group-detail").hidden = !g;
  if (!g) return;
  $("group-name").textContent = g.group;
  const held = (m) => m.assignment === "unreadable" ? "assignment not readable"
    : m.assignment === "other protocol" ? "assignment of another protocol"
    : m.partitions.map((p) => p.topic + "/" + p.partition).join(", ") || "nothing yet";
  $("group-members").textContent = g.members.length === 0 ? "no members connected" :
    g.members.map((m) => m.protocol === "kafka"
      ? `${m.id} (Kafka client ${m.client_id} on ${m.host}): ${held(m)}`
      : `${m.id}: ${held(m)}`).join(" · ");
  fill($("group-offsets").tBodies[0], g.offsets.map((o) =>
    el("tr", {}, el("td", {}, o.topic), el("td", { class: "num" }, o.partition),
      el("td", { class: "num" }, num(o.committed)), el("td", { class: "num" }, num(o.lag)),
      el("td", { class: "num" }, duration(o.lag_ms)))));
}

// ---- share groups ----

function drawShare(parts) {
  fill($("share-table").tBodies[0], parts.map((p) =>
    el("tr", {}, el("td", {}, p.group), el("td", {}, p.topic), el("td", { class: "num" }, p.partition),
      el("td", { class: "num" }, `${num(p.start)} – ${num(p.end)}`), el("td", { class: "num" }, num(p.acquired)),
      el("td", { class: "num" }, num(p.available)),
      el("td", { class: "num" + (p.dead_letter_pending ? " bad" : "") }, num(p.dead_letter_pending)),
      el("td", { class: "num" }, num(p.archived)))));
}

// ---- records ----

function shown(v, enc, hex) {
  if (v === null) return el("span", { class: "muted" }, "null");
  if (!hex || enc === "hex") return (enc === "hex" ? "0x" : "") + v;
  return "0x" + Array.from(new TextEncoder().encode(v), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function showRecords(append) {
  const topic = $("r-topic").value;
  if (!topic) return;
  const q = new URLSearchParams({ topic, partition: $("r-partition").value, limit: $("r-limit").value });
  const from = $("r-from").value;
  if (append) q.set("offset", $("records-more").dataset.next);
  else if (from === "offset") q.set("offset", $("r-offset").value || "0");
  else if (from === "time" && $("r-time").value) q.set("time", String(new Date($("r-time").value).getTime()));
  try {
    const r = await getJSON("/api/records?" + q);
    const hex = $("r-hex").checked;
    const rows = r.records.map((x) => el("tr", { "data-offset": x.offset },
      el("td", { class: "num" }, x.offset), el("td", {}, new Date(x.timestamp).toISOString()),
      el("td", { class: "data" }, shown(x.key, x.key_encoding, hex)),
      el("td", { class: "data" }, shown(x.value, x.value_encoding, hex), x.value_cut ? el("span", { class: "muted" }, ` … (${num(x.value_bytes)} bytes)`) : ""),
      el("td", { class: "data" }, x.headers.map((h) => `${h.key}=${h.value === null ? "null" : h.value}`).join("\n"))));
    const tbody = $("records-table").tBodies[0];
    if (append) tbody.append(...rows); else fill(tbody, rows);
    $("records-note").textContent = `${r.topic}/${r.partition}: offsets ${num(r.log_start)} to ${num(r.high_watermark - 1)}` +
      (r.error ? ` · ${r.error}` : "") + (r.records.length === 0 ? " · no records there" : "");
    $("records-more").hidden = r.next_offset >= r.high_watermark || r.records.length === 0;
    $("records-more").dataset.next = r.next_offset;
  } catch (e) {
    $("records-note").textContent = e.message;
  }
}

function fromChanged() {
  $("r-offset").hidden = $("r-from").value !== "offset";
  $("r-time").hidden = $("r-from").value !== "time";
}

// A link "#records?topic=T&partition=P&offset=O" (or time=MS) opens the browser there.
function followHash() {
  const m = location.hash.match(/^#records\?(.*)$/);
  if (!m) return false;
  const q = new URLSearchParams(m[1]);
  if (!topicsSeen.includes(q.get("topic"))) return false;
  $("r-topic").value = q.get("topic");
  $("r-partition").value = q.get("partition") || "0";
  if (q.has("time")) {
    $("r-from").value = "time";
    const d = new Date(Number(q.get("time")));
    $("r-time").value = new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
  } else {
    $("r-from").value = "offset";
    $("r-offset").value = q.get("offset") || "0";
  }
  fromChanged();
  showRecords(false);
  return true;
}

// ---- polling ----

let hashPending = true;

async function poll() {
  try {
    const [cluster, topics, groups, share] = await Promise.all([
      getJSON("/api/cluster"), getJSON("/api/topics"), getJSON("/api/groups"), getJSON("/api/share-groups")]);
    drawCluster(cluster);
    drawTopics(topics.topics);
    drawGroups(groups.groups);
    drawShare(share.share_groups);
    $("error").hidden = true;
    if (hashPending && followHash()) hashPending = false;
  } catch (e) {
    $("error").textContent = "cannot reach the broker: " + e.message;
    $("error").hidden = false;
  }
}

$("records-form").addEventListener("submit", (e) => { e.preventDefault(); showRecords(false); });
$("records-more").addEventListener("click", () => showRecords(true));
$("r-from").addEventListener("change", fromChanged);
window.addEventListener("hashchange", () => {
  hashPending = !followHash();
  if (groupOfHash() !== null) chosenGroup = groupOfHash();
});
poll();
setInterval(poll, POLL_MS);
