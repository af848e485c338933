// recstream dashboard: polls the dashboard's JSON endpoints and draws them with uPlot.
// Every value from the server is put into the page as text, never as HTML.
"use strict";

const COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const SERIES_EVERY_MS = 2000;
const PANELS_EVERY_MS = 5000;
const charts = {};  // id → {plot, key}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(path) {
  const answer = await fetch(path, { cache: "no-store" });
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.error || `${path}: HTTP ${answer.status}`);
  return body;
}

const pct = (x, digits = 1) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(digits)}%`);
const num = (x, digits = 1) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const compact = (x) => {
  if (x === null || x === undefined) return "–";
  const a = Math.abs(x);
  if (a >= 1e6) return `${(x / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return Number.isInteger(x) ? String(x) : x.toFixed(a >= 10 ? 1 : 2);
};
const when = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "–");
const last = (values) => {
  for (let i = (values || []).length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
  return null;
};
const colour = (i) => COLOURS[i % COLOURS.length];

// ---- charts ----

function draw(id, xs, lines, opts = {}) {
  // lines: [{label, values}]; the chart is rebuilt only when its set of lines changes.
  const box = document.getElementById(id);
  const points = lines.reduce((n, l) => n + l.values.filter((v) => v !== null).length, 0);
  box.dataset.points = String(points);
  box.dataset.lines = String(lines.length);
  if (!lines.length || !xs.length) {
    if (charts[id]) { charts[id].plot.destroy(); delete charts[id]; }
    if (!box.querySelector(".empty")) box.append(el("div", { class: "empty" }, "no data yet"));
    return;
  }
  box.querySelector(".empty")?.remove();
  const key = lines.map((l) => l.label).join("|") + (opts.key || "");
  const data = [xs, ...lines.map((l) => l.values)];
  if (charts[id] && charts[id].key === key) {
    charts[id].plot.setData(data);
    return;
  }
  if (charts[id]) charts[id].plot.destroy();
  const width = Math.max(320, box.clientWidth - 16);
  const series = [{}].concat(lines.map((l, i) => ({
    label: l.label, stroke: l.colour || colour(i), width: 2, spanGaps: false,
    fill: opts.bars ? (l.colour || colour(i)) + "99" : undefined,
    paths: opts.bars ? uPlot.paths.bars({ size: [0.8 / lines.length, 60], align: 1 }) : undefined,
    points: opts.bars ? { show: false } : undefined,
    value: (u, v) => (v === null ? "–" : opts.format ? opts.format(v) : num(v, 3)),
  })));
  const plot = new uPlot({
    width, height: 200, series,
    scales: { x: { time: !opts.bars }, y: { range: (u, lo, hi) => [Math.min(0, lo), hi > 0 ? hi * 1.1 : 1] } },
    axes: [
      opts.xLabels ? { values: (u, ticks) => ticks.map((t) => opts.xLabels[t] ?? "") } : {},
      { values: (u, ticks) => ticks.map((t) => (opts.format ? opts.format(t) : t)), size: 60 },
    ],
    legend: { live: !opts.bars },
  }, data, box);
  charts[id] = { plot, key };
}

function byVersion(body, field) {
  return Object.entries(body.versions).map(([version, s], i) => ({ label: version, values: s[field], colour: colour(i) }));
}

function render(body) {
  const xs = body.t;
  const rates = [
    { label: "events/s", values: body.events.valid || [] },
    { label: "rejected/s", values: body.events.rejected || [] },
    ...Object.entries(body.versions).map(([v, s]) => ({ label: `lists/s ${v}`, values: s.lists_per_s })),
  ].filter((l) => l.values.length);
  draw("chart-rates", xs, rates, { format: compact });
  draw("chart-ctr", xs, byVersion(body, "ctr"), { format: (v) => pct(v) });
  draw("chart-conversion", xs, byVersion(body, "conversion"), { format: (v) => pct(v) });
  draw("chart-coverage", xs, byVersion(body, "coverage"), { format: (v) => pct(v) });
  draw("chart-diversity", xs, byVersion(body, "diversity"), { format: (v) => num(v, 2) });
  draw("chart-latency", xs, byVersion(body, "latency_p99_ms"), { format: compact });
  draw("chart-lag", xs, Object.entries(body.lag).map(([w, values], i) => ({ label: w, values, colour: colour(i) })),
    { format: compact });
  renderHistogram(body.histogram);
  renderTiles(body);
  renderWorkers(body.workers);
  const ago = body.workers && Object.values(body.workers).length
    ? Math.round(body.now - Math.max(...Object.values(body.workers).map((w) => w.ts)) / 1000) : null;
  document.getElementById("status").textContent = ago === null
    ? "no worker has reported yet (snapshots come every RECSTREAM_METRICS_INTERVAL_S)"
    : `updated ${new Date(body.now * 1000).toLocaleTimeString()} · newest snapshot ${ago} s old`;
}

function renderHistogram(h) {
  const labels = h.le_ms.map((le) => `≤${le >= 1000 ? le / 1000 + "s" : le + "ms"}`).concat(["more"]);
  const versions = Object.keys(h.counts);
  const xs = labels.map((_, i) => i);
  const lines = versions.map((v, i) => ({ label: v, values: h.counts[v], colour: colour(i) }));
  draw("chart-histogram", h.le_ms.length ? xs : [], lines, { bars: true, xLabels: labels, format: compact, key: "bars" });
}

function renderTiles(body) {
  const serving = [...new Set(Object.values(body.workers).map((w) => w.version))];
  const main = serving.length === 1 ? serving[0] : null;
  const s = (main && body.versions[main]) || {};
  const lagTotal = Object.values(body.workers).reduce((n, w) => n + (w.lag || 0), 0);
  const tiles = [
    ["events/s", num(last(body.events.valid || []), 1)],
    [`lists/s${main ? " · " + main : ""}`, num(last(s.lists_per_s || []), 1)],
    ["CTR", pct(last(s.ctr || []))],
    ["conversion", pct(last(s.conversion || []))],
    ["coverage", pct(last(s.coverage || []))],
    ["diversity", num(last(s.diversity || []), 2)],
    ["p99 latency ms", num(last(s.latency_p99_ms || []), 0)],
    ["lag (events)", num(lagTotal, 0)],
    ["serving", serving.join(", ") || "–"],
  ];
  const box = document.getElementById("tiles");
  box.replaceChildren(...tiles.map(([label, value]) => el("div", { class: "tile", "data-label": label },
    el("div", { class: "value" }, value), el("div", { class: "label" }, label))));
}

function renderWorkers(workers) {
  const rows = Object.entries(workers).map(([id, w]) => el("tr", {},
    el("td", {}, id), el("td", {}, w.version ?? "–"), el("td", {}, when(w.since_ms)), el("td", {}, w.ab ?? "–"),
    el("td", { class: "num" }, num(w.lag, 0)),
    el("td", { class: "num" }, `${w.swaps.ok ?? 0} / ${w.swaps.failed ?? 0}`), el("td", {}, when(w.ts))));
  document.querySelector("#workers tbody").replaceChildren(...rows);
}

// ---- panels ----

function renderModels(body) {
  const detail = (e) => {
    if (e.kind === "refused") return e.reason || "";
    if (e.kind === "trained" && e.valid) return Object.entries(e.valid).map(([k, v]) => `${k} ${num(v, 4)}`).join(", ");
    return "";
  };
  const rows = body.events.slice().reverse().map((e) => el("tr", { class: `kind-${e.kind}` },
    el("td", {}, e.ts ? new Date(e.ts).toLocaleString() : "–"), el("td", {}, e.kind), el("td", {}, e.version ?? "–"),
    el("td", {}, e.worker ?? ""), el("td", {}, detail(e))));
  document.querySelector("#models tbody").replaceChildren(...rows);
}

function interval(x) {
  return x.value === null ? "–" : `${pct(x.value, 2)} [${pct(x.low, 2)}, ${pct(x.high, 2)}]`;
}

function renderAB(body) {
  const box = document.getElementById("ab");
  if (!body.split) { box.className = "muted"; box.textContent = "no A/B test running (RECSTREAM_AB)"; return; }
  box.className = "";
  const versus = body.versus.arms;
  const diff = (d) => (d.diff === null ? "–" : `${(100 * d.diff).toFixed(2)} pt [${(100 * d.low).toFixed(2)}, ${(100 * d.high).toFixed(2)}]`);
  const rows = Object.entries(body.arms).map(([arm, a]) => el("tr", {},
    el("td", {}, arm), el("td", { class: "num" }, a.users), el("td", { class: "num" }, a.lists),
    el("td", {}, interval(a.ctr)), el("td", {}, interval(a.conversion)),
    el("td", {}, versus[arm] ? diff(versus[arm].ctr) : "baseline"),
    el("td", {}, versus[arm] ? diff(versus[arm].conversion) : "baseline")));
  const sr = body.sample_ratio;
  box.replaceChildren(
    el("p", {}, `split ${body.split}; sample ratio p = ${sr.p === null ? "–" : sr.p.toFixed(3)}`,
      sr.mismatch ? el("strong", { class: "error" }, " — sample ratio mismatch: the split is broken") : ""),
    el("table", {}, el("thead", {}, el("tr", {}, ["arm", "users", "lists", "CTR [95%]", "conversion [95%]",
      `CTR − ${body.versus.baseline}`, `conversion − ${body.versus.baseline}`].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)));
}

// ---- user lookup ----

function itemName(items, id) {
  const entry = items[id];
  return entry && entry.title ? `${entry.title} (${id})` : id;
}

function renderUser(body) {
  const { user, recommendations: recs, items } = body;
  const bought = new Set(user.bought || []);
  const chips = (ids) => el("div", { class: "chips" }, ids.map((id) =>
    el("span", { class: bought.has(id) ? "chip bought" : "chip" }, itemName(items, id))));
  const rows = (recs.items || []).map((entry, i) => el("tr", {},
    el("td", { class: "num" }, i + 1), el("td", {}, itemName(items, entry.item_id)),
    el("td", { class: "num" }, num(entry.score, 3)),
    el("td", {}, (entry.because || []).map((id) => itemName(items, id)).join("; ") || "–")));
  const served = (user.served || []).map((s) => el("tr", {},
    el("td", {}, when(s.created_ts)), el("td", {}, s.model_version), el("td", {}, s.items.length),
    el("td", {}, s.hits.map((h) => JSON.stringify(h)).join(" ") || "–")));
  document.getElementById("user").replaceChildren(
    el("p", {}, `${user.user_id}: ${user.events} events, ${user.seen_count} items seen, ${bought.size} bought`),
    el("h3", {}, "Recent history (newest last; green: bought)"), chips(user.recent || []),
    el("h3", {}, `Latest list · ${recs.origin} · model ${recs.model_version}${recs.variant ? " · arm " + recs.variant : ""}`),
    el("table", { id: "user-list" }, el("thead", {}, el("tr", {}, ["#", "item", "score", "because"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)),
    el("h3", {}, "Served lists (attribution)"),
    el("table", {}, el("thead", {}, el("tr", {}, ["made", "model", "items", "hits"].map((h) => el("th", {}, h)))),
      el("tbody", {}, served)));
  document.getElementById("user").className = "";
}

async function lookup(event) {
  event.preventDefault();
  const id = document.getElementById("user-id").value.trim();
  if (!id) return;
  const box = document.getElementById("user");
  box.className = "muted";
  box.textContent = "looking up…";
  try {
    renderUser(await getJSON(`/api/users/${encodeURIComponent(id)}`));
  } catch (err) {
    box.className = "error";
    box.textContent = String(err.message || err);
  }
}

// ---- polling ----

async function pollSeries() {
  const minutes = document.getElementById("minutes").value;
  try {
    render(await getJSON(`/api/series?minutes=${minutes}`));
  } catch (err) {
    document.getElementById("status").textContent = `error: ${err.message || err}`;
  }
}

async function pollPanels() {
  try { renderModels(await getJSON("/api/models")); } catch (err) { console.warn(err); }
  try { renderAB(await getJSON("/api/ab")); } catch (err) { document.getElementById("ab").textContent = String(err.message || err); }
}

document.getElementById("lookup").addEventListener("submit", lookup);
document.getElementById("minutes").addEventListener("change", pollSeries);
pollSeries();
pollPanels();
setInterval(pollSeries, SERIES_EVERY_MS);
setInterval(pollPanels, PANELS_EVERY_MS);
