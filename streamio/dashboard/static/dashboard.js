// streamio's dashboard: the page's own script, no library, no network but its server.
// It keeps the retained batches it was sent (a snapshot, then the new ones of each
// update pushed over server-sent events) and draws the charts as SVG.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PAGE_SIZE = 20;
const state = {
  status: null, graph: null, batches: [], retained: 1000, panels: new Map(),
  page: 0, dirty: false, stopped: false,
};

// -- formatting ---------------------------------------------------------------

function fmtTime(t) {
  if (t === null || t === undefined) return "–";
  if (t < 1e8) return `${Number(t.toFixed(3))} s`; // a manual clock's time
  const date = new Date(t * 1000);
  const interval = state.status ? state.status.header.interval : 1;
  const text = date.toLocaleString(undefined, { hour12: false });
  return interval < 1 ? `${text}.${String(date.getMilliseconds()).padStart(3, "0")}` : text;
}

// A batch time on a chart's axis: the time of day (or a manual clock's seconds).
function fmtClock(t) {
  if (t < 1e8) return `${Number(t.toFixed(3))} s`;
  return new Date(t * 1000).toLocaleTimeString(undefined, { hour12: false });
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 0)} ms`;
  if (seconds < 120) return `${Number(seconds.toFixed(seconds < 10 ? 2 : 1))} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString(undefined, { maximumFractionDigits: digits });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function cell(value, cls) {
  return el("td", cls ? { class: cls } : {}, value);
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

// -- charts -------------------------------------------------------------------

// A line over [x, y] points, with an optional horizontal reference line at `ref`.
function lineChart(points, { width = 360, height = 90, ref = null, label = "" } = {}) {
  const chart = svg("svg", { class: "chart", width, height, "data-points": points.length });
  const pad = { left: 42, right: 6, top: 6, bottom: 14 };
  const w = width - pad.left - pad.right, h = height - pad.top - pad.bottom;
  const ys = points.map((p) => p[1]).filter((y) => y !== null);
  const maxY = Math.max(ref || 0, ...ys, 1e-9);
  const x0 = points.length ? points[0][0] : 0, x1 = points.length ? points[points.length - 1][0] : 1;
  const sx = (x) => pad.left + (x1 === x0 ? w : ((x - x0) / (x1 - x0)) * w);
  const sy = (y) => pad.top + h - (y / maxY) * h;
  chart.append(svg("line", { class: "axis", x1: pad.left, y1: pad.top + h, x2: pad.left + w, y2: pad.top + h }));
  chart.append(svg("line", { class: "axis", x1: pad.left, y1: pad.top, x2: pad.left, y2: pad.top + h }));
  chart.append(svg("text", { x: 2, y: pad.top + 8 }, label(maxY)));
  chart.append(svg("text", { x: 2, y: pad.top + h }, label(0)));
  if (ref !== null) {
    const y = sy(ref);
    chart.append(svg("line", { class: "ref", x1: pad.left, y1: y, x2: pad.left + w, y2: y }));
    chart.append(svg("text", { x: pad.left + 4, y: y + 11 }, `batch interval ${label(ref)}`));
  }
  if (points.length) {
    chart.append(svg("text", { x: pad.left, y: height - 2 }, fmtClock(x0)));
    chart.append(svg("text", { x: width - pad.right, y: height - 2, "text-anchor": "end" }, fmtClock(x1)));
  }
  const drawn = points.filter((p) => p[1] !== null);
  if (drawn.length) {
    const d = drawn.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`);
    chart.append(svg("path", { class: "line", d: d.join("") }));
  }
  return chart;
}

// A histogram of `values` over `bins` equal bins from 0 to their maximum.
function histogram(values, { width = 220, height = 90, bins = 12, label = String } = {}) {
  const chart = svg("svg", { class: "chart", width, height, "data-values": values.length });
  const pad = { left: 4, right: 4, top: 6, bottom: 14 };
  const w = width - pad.left - pad.right, h = height - pad.top - pad.bottom;
  const max = Math.max(...values, 1e-9);
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor((v / max) * bins))] += 1;
  const top = Math.max(...counts, 1);
  counts.forEach((count, i) => {
    const bh = (count / top) * h;
    chart.append(svg("rect", {
      class: "bar", x: pad.left + (i * w) / bins + 1, y: pad.top + h - bh,
      width: Math.max(1, w / bins - 2), height: bh,
    }));
  });
  chart.append(svg("text", { x: pad.left, y: height - 2 }, label(0)));
  chart.append(svg("text", { x: width - 60, y: height - 2 }, label(max)));
  return chart;
}

// Horizontal bars for [label, value] pairs.
function barChart(rows, { width = 360 } = {}) {
  const barHeight = 18, height = Math.max(1, rows.length) * barHeight + 4;
  const chart = svg("svg", { class: "chart", width, height, "data-bars": rows.length });
  const max = Math.max(...rows.map((r) => r[1]), 1e-9);
  const labelWidth = 110, w = width - labelWidth - 60;
  rows.forEach(([label, value], i) => {
    const y = 2 + i * barHeight;
    chart.append(svg("text", { x: 2, y: y + 12 }, String(label).slice(0, 18)));
    chart.append(svg("rect", { class: "bar", x: labelWidth, y: y + 2, width: Math.max(1, (value / max) * w), height: barHeight - 5 }));
    chart.append(svg("text", { x: labelWidth + (value / max) * w + 4, y: y + 12 }, fmtNumber(value, 2)));
  });
  return chart;
}

// -- the sections -------------------------------------------------------------

function renderHeader() {
  const header = state.status.header;
  const live = document.getElementById("live");
  live.textContent = state.stopped ? "stopped" : "live";
  live.className = `badge ${state.stopped ? "stopped" : "live"}`;
  const ran = header.started === null ? 0 : header.now - header.started;
  const since = header.started_wall ? new Date(header.started_wall * 1000).toLocaleString(undefined, { hour12: false }) : "–";
  const failed = header.failed ? `, ${fmtNumber(header.failed)} failed` : "";
  document.getElementById("summary").textContent =
    `${state.stopped ? "Ran" : "Running"} batches of ${fmtDuration(header.interval)} for ${fmtDuration(ran)} ` +
    `since ${since} (${fmtNumber(header.completed)} completed batches${failed}, ` +
    `${fmtNumber(header.records)} records)`;
}

function renderStatistics() {
  const interval = state.status.header.interval;
  const batches = state.batches;
  const rate = (b) => b.num_records / interval;
  const rows = [
    ["Input rate", rate, (v) => `${fmtNumber(v)}/s`, null],
    ["Scheduling delay", (b) => b.scheduling_delay, fmtDuration, null],
    ["Processing time", (b) => b.processing_time, fmtDuration, interval],
    ["Total delay", (b) => b.total_delay, fmtDuration, null],
  ];
  fillRows(document.getElementById("stats-body"), rows.map(([name, value, label, ref]) => {
    const values = batches.map(value).filter((v) => v !== null && v !== undefined);
    const avg = values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
    const points = batches.map((b) => [b.time, value(b)]);
    const slug = name.toLowerCase().replace(/ /g, "-");
    return el("tr", { "data-metric": slug },
      el("th", {}, name),
      el("td", { class: "avg" }, avg === null ? "–" : label(avg)),
      el("td", { class: "timeline" }, lineChart(points, { ref, label })),
      el("td", { class: "histogram" }, histogram(values, { label })));
  }));
}

function bufferFill(buffer) {
  if (!buffer) return "–";
  const byRecords = buffer.capacity ? buffer.used / buffer.capacity : 0;
  const byBytes = buffer.max_bytes ? buffer.used_bytes / buffer.max_bytes : 0;
  const fraction = Math.min(1, Math.max(byRecords, byBytes));
  const cls = fraction >= 0.99 ? "fill full" : fraction >= 0.7 ? "fill high" : "fill";
  const bar = el("span", { class: cls, title: `${fmtNumber(buffer.used)} records` }, el("span"));
  bar.firstChild.style.width = `${(fraction * 100).toFixed(1)}%`;
  const waiting = buffer.waiting_senders ? ` (${buffer.waiting_senders} waiting)` : "";
  return el("span", {}, bar, ` ${(fraction * 100).toFixed(0)}% · ${fmtNumber(buffer.used)} records${waiting}`);
}

function renderInputs() {
  const interval = state.status.header.interval;
  const last = state.batches[state.batches.length - 1];
  const rows = state.status.inputs.map((input) => {
    const counts = state.batches.map((b) => b.records[input.name] || 0);
    const avg = counts.length ? counts.reduce((a, b) => a + b, 0) / counts.length / interval : null;
    const lastRate = last ? (last.records[input.name] || 0) / interval : null;
    const error = input.last_error ? el("span", { class: "error" }, `${input.last_error} (${fmtTime(input.last_error_time)})`) : "–";
    return el("tr", { "data-input": input.name },
      cell(input.name), cell(input.receiver || input.kind), cell(input.status),
      cell(fmtNumber(lastRate), "num"), cell(fmtNumber(avg), "num"),
      cell(bufferFill(input.buffer)), cell(fmtNumber(input.rate_limit), "num"),
      cell(fmtNumber(input.restarts), "num"), cell(error));
  });
  fillRows(document.querySelector("#inputs tbody"), rows);
}

function renderPanels() {
  const box = document.getElementById("panels");
  if (!state.panels.size) {
    box.replaceChildren(el("p", { class: "legend" }, "No stream shown: add stream.to_dashboard(\"title\") to show one."));
    return;
  }
  box.replaceChildren(...[...state.panels.values()].map((panel) => {
    let body;
    if (panel.kind === "line") {
      const series = Object.entries(panel.series || {});
      body = el("div", {}, ...series.map(([key, points]) =>
        el("div", {}, el("p", { class: "meta" }, `${key}: ${fmtNumber(points.length ? points[points.length - 1][1] : null, 2)}`),
          lineChart(points, { label: (v) => fmtNumber(v, 2) }))));
    } else if (panel.kind === "bar") {
      body = barChart(panel.rows || []);
    } else {
      const rows = (panel.rows || []).map((row) => el("tr", {}, ...(Array.isArray(row) ? row : [row]).map((v) => cell(typeof v === "object" ? JSON.stringify(v) : v))));
      body = el("table", {}, el("tbody", {}, ...rows));
    }
    return el("div", { class: "card", "data-panel": panel.name, "data-time": panel.time === null ? "" : panel.time },
      el("h3", {}, panel.title),
      el("p", { class: "meta" }, panel.time === null ? "no batch yet" : `batch ${fmtTime(panel.time)} · ${fmtNumber(panel.records)} records`),
      body);
  }));
}

function renderGraph() {
  const graph = state.graph;
  const box = document.getElementById("graph");
  if (!graph) return;
  const nodes = [...graph.nodes, ...graph.outputs.map((o) => ({ name: o.name, kind: o.kind, parents: [o.stream], output: true }))];
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const depth = new Map();
  const depthOf = (n) => {
    if (!depth.has(n.name)) depth.set(n.name, n.parents.length ? 1 + Math.max(...n.parents.map((p) => depthOf(byName.get(p)))) : 0);
    return depth.get(n.name);
  };
  const columns = [];
  for (const n of nodes) (columns[depthOf(n)] ||= []).push(n);
  const boxW = 130, boxH = 38, gapX = 40, gapY = 14;
  const pos = new Map();
  columns.forEach((column, c) => column.forEach((n, r) => pos.set(n.name, { x: 10 + c * (boxW + gapX), y: 10 + r * (boxH + gapY) })));
  const width = 20 + columns.length * (boxW + gapX), height = 20 + Math.max(...columns.map((c) => c.length)) * (boxH + gapY);
  box.setAttribute("width", width);
  box.setAttribute("height", height);
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
  marker.append(svg("path", { d: "M0,0L10,5L0,10z", fill: "#7a8796", stroke: "none" }));
  defs.append(marker);
  const parts = [defs];
  for (const n of nodes) {
    const p = pos.get(n.name);
    for (const parent of n.parents) {
      const q = pos.get(parent);
      parts.push(svg("path", { d: `M${q.x + boxW},${q.y + boxH / 2} C${q.x + boxW + gapX / 2},${q.y + boxH / 2} ${p.x - gapX / 2},${p.y + boxH / 2} ${p.x},${p.y + boxH / 2}` }));
    }
  }
  for (const n of nodes) {
    const p = pos.get(n.name);
    const cls = n.output ? "output" : n.fused ? "fused" : n.parents.length ? "" : "input";
    const group = svg("g", { "data-node": n.name, "data-fused": n.fused ? "true" : "false" });
    const title = svg("title", {}, n.fused ? `${n.name} (${n.kind}), fused into the stage of ${n.stage}` : `${n.name} (${n.kind})`);
    group.append(title, svg("rect", { class: cls, x: p.x, y: p.y, width: boxW, height: boxH, rx: 4 }));
    group.append(svg("text", { x: p.x + 6, y: p.y + 15 }, n.name.slice(0, 20)));
    group.append(svg("text", { class: "kind", x: p.x + 6, y: p.y + 30 }, `${n.kind}${n.fused ? " · fused" : ""}`));
    parts.push(group);
  }
  box.replaceChildren(...parts);
}

function renderSide() {
  const status = state.status;
  fillRows(document.querySelector("#outputs tbody"), status.outputs.map((o) => el("tr", {}, cell(o.name), cell(fmtNumber(o.records), "num"))));
  const operators = new Set([...Object.keys(status.skipped), ...Object.keys(status.dead_lettered)]);
  const rows = [...operators].map((op) => el("tr", {}, cell(op), cell(fmtNumber(status.skipped[op] || 0), "num"), cell(fmtNumber(status.dead_lettered[op] || 0), "num")));
  fillRows(document.querySelector("#policies tbody"), rows.length ? rows : [el("tr", {}, el("td", { colSpan: 3 }, "no record skipped or dead-lettered"))]);
  const cp = status.checkpoint;
  document.getElementById("checkpoint").textContent = cp
    ? `${fmtNumber(cp.count)} written; last for batch ${fmtTime(cp.batch_time)}: ${fmtDuration(cp.duration)}, ${fmtNumber(cp.bytes_written)} bytes, ${fmtNumber(cp.keys_written)} keys`
    : "No checkpoint written.";
}

function batchLink(time) {
  return el("a", { href: `#batch=${time}` }, fmtTime(time));
}

function renderBatches() {
  const status = state.status;
  document.getElementById("active-count").textContent = status.active.length;
  fillRows(document.querySelector("#active tbody"), status.active.map((b) => el("tr", {},
    cell(fmtTime(b.time)), cell(fmtNumber(b.num_records), "num"),
    cell(b.started === null ? "–" : fmtDuration(Math.max(0, b.started - b.time)), "num"),
    cell(b.started === null ? "queued" : "processing"))));
  const newest = [...state.batches].reverse();
  const pages = Math.max(1, Math.ceil(newest.length / PAGE_SIZE));
  state.page = Math.min(state.page, pages - 1);
  document.getElementById("completed-count").textContent = newest.length;
  document.getElementById("page").textContent = `page ${state.page + 1} of ${pages}`;
  document.getElementById("newer").disabled = state.page === 0;
  document.getElementById("older").disabled = state.page >= pages - 1;
  const shown = newest.slice(state.page * PAGE_SIZE, (state.page + 1) * PAGE_SIZE);
  fillRows(document.querySelector("#completed tbody"), shown.map((b) => el("tr", { "data-time": b.time },
    el("td", {}, batchLink(b.time)), cell(fmtNumber(b.num_records), "num"),
    cell(fmtDuration(b.scheduling_delay), "num"), cell(fmtDuration(b.processing_time), "num"),
    cell(fmtDuration(b.total_delay), "num"), cell(fmtNumber(b.outputs.length), "num"),
    cell(b.error ? el("span", { class: "error" }, b.error) : "succeeded"))));
}

function keyValueTable(object) {
  const rows = Object.entries(object || {}).map(([k, v]) => el("tr", {}, cell(k), cell(typeof v === "object" ? JSON.stringify(v) : fmtNumber(v, 2))));
  return rows.length ? el("table", {}, el("tbody", {}, ...rows)) : el("p", { class: "legend" }, "none");
}

function renderBatchPage() {
  const match = /^#batch=(.+)$/.exec(location.hash);
  const page = document.getElementById("batch-page");
  for (const section of document.querySelectorAll("#overview > :not(#batch-page)")) section.hidden = Boolean(match);
  if (!match) { page.hidden = true; return; }
  page.hidden = false;
  const time = Number(match[1]);
  const batch = state.batches.find((b) => Math.abs(b.time - time) < 1e-6);
  document.getElementById("batch-title").textContent = `Batch ${fmtTime(time)}`;
  const details = document.getElementById("batch-details");
  if (!batch) { details.replaceChildren(el("p", {}, "This batch is no longer retained.")); return; }
  const longest = Math.max(...batch.outputs.map((o) => o.duration || 0), 1e-9);
  const outputs = batch.outputs.map((o) => {
    const bar = el("span", { class: "fill" }, el("span"));
    bar.firstChild.style.width = `${(((o.duration || 0) / longest) * 100).toFixed(1)}%`;
    return el("tr", { "data-output": o.name }, cell(o.name), cell(o.kind), cell(fmtDuration(o.duration), "num"), cell(bar),
      cell(o.error ? el("span", { class: "error" }, o.error) : "succeeded"));
  });
  details.replaceChildren(
    el("table", {}, el("tbody", {},
      el("tr", {}, el("th", {}, "Records"), cell(fmtNumber(batch.num_records), "num")),
      el("tr", {}, el("th", {}, "Submitted"), cell(fmtTime(batch.submitted))),
      el("tr", {}, el("th", {}, "Scheduling delay"), cell(fmtDuration(batch.scheduling_delay), "num")),
      el("tr", {}, el("th", {}, "Processing time"), cell(fmtDuration(batch.processing_time), "num")),
      el("tr", {}, el("th", {}, "Total delay"), cell(fmtDuration(batch.total_delay), "num")),
      el("tr", {}, el("th", {}, "Status"), cell(batch.error ? el("span", { class: "error" }, batch.error) : "succeeded")))),
    el("h3", {}, "Output operations"),
    outputs.length
      ? el("table", { id: "batch-outputs" }, el("thead", {}, el("tr", {}, ...["Output", "Kind", "Duration", "", "Status"].map((h) => el("th", {}, h)))), el("tbody", {}, ...outputs))
      : el("p", { class: "legend" }, "No output operation."),
    el("h3", {}, "Records per input"), keyValueTable(batch.records),
    el("h3", {}, "Input metadata"), el("pre", { id: "batch-metadata" }, JSON.stringify(batch.input_metadata, null, 2)),
    el("h3", {}, "Rate caps (records/s)"), keyValueTable(batch.rate_limits),
    el("h3", {}, "Skipped / dead-lettered"), keyValueTable({ ...batch.skipped, ...Object.fromEntries(Object.entries(batch.dead_lettered).map(([k, v]) => [`${k} (dead letters)`, v])) }),
    el("h3", {}, "Checkpoint"), el("p", {}, batch.checkpoint ? `${fmtDuration(batch.checkpoint.duration)}, ${fmtNumber(batch.checkpoint.bytes_written)} bytes` : "none"));
}

function render() {
  state.dirty = false;
  if (!state.status) return;
  renderHeader();
  renderBatchPage();
  if (location.hash.startsWith("#batch=")) return;
  renderStatistics();
  renderPanels();
  renderInputs();
  renderGraph();
  renderSide();
  renderBatches();
}

function scheduleRender() {
  if (!state.dirty) {
    state.dirty = true;
    requestAnimationFrame(render);
  }
}

// -- the live feed ------------------------------------------------------------

function applyStatus(data) {
  state.status = data;
  state.retained = data.header.retained;
  for (const panel of data.panels) state.panels.set(panel.name, panel);
}

function addBatches(batches) {
  for (const batch of batches) {
    const last = state.batches[state.batches.length - 1];
    if (last && last.time === batch.time) state.batches.pop();
    state.batches.push(batch);
  }
  if (state.batches.length > state.retained) state.batches.splice(0, state.batches.length - state.retained);
}

function connect() {
  const source = new EventSource("events");
  source.addEventListener("snapshot", (event) => {
    const data = JSON.parse(event.data);
    state.panels.clear();
    applyStatus(data);
    state.graph = data.graph;
    state.batches = data.batches;
    state.stopped = data.header.stopped;
    scheduleRender();
  });
  source.addEventListener("update", (event) => {
    const data = JSON.parse(event.data);
    applyStatus(data);
    addBatches(data.batches);
    scheduleRender();
  });
  source.addEventListener("stopped", () => {
    state.stopped = true;
    source.close();
    scheduleRender();
  });
}

document.getElementById("newer").addEventListener("click", () => { state.page -= 1; scheduleRender(); });
document.getElementById("older").addEventListener("click", () => { state.page += 1; scheduleRender(); });
window.addEventListener("hashchange", scheduleRender);
connect();
