/* convlens live: the page. Plain JS, no libraries, nothing fetched from outside this server.
 *
 * Flow: strokes go into a hidden high-resolution "ink" canvas; its box-averaged copy at the
 * model's input size is what the model sees and what the big canvas shows. Every change asks
 * for an update over the WebSocket; at most one request is in flight, the newest drawing wins
 * (the server keeps only the newest too). Updates are binary frames (see server/protocol.py):
 * a JSON header and raw arrays, maps as one byte per value on their layer's colour scale.
 * Everything is drawn into canvases built once, so nothing flickers while drawing.
 */
"use strict";

const INK = 10; // ink canvas pixels per input pixel
const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const kid of kids) if (kid != null) e.append(kid);
  return e;
};
const fmt = (v) => {
  if (v == null || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.001 || a >= 10000)) return v.toExponential(2);
  return v.toPrecision(3).replace(/\.?0+$/, "") || "0";
};

const state = {
  config: null, spec: null, models: [], ws: null, connected: false,
  nextId: 1, inflight: null, dirty: false, latest: {}, curves: {},
  tool: "pen", brush: 2.5, undo: [], drawing: false, last: null,
  method: "gradient", target: null, camLayer: null,
  selection: null, // {model, unit, kind:"unit"|"class"}
  updates: 0, // updates received (tests and the status line read it)
  sample: null, luts: {}, pending: null, detailsToken: 0,
};

/* --- colour ------------------------------------------------------------------------------ */
function lutFrom(rows) {
  const lut = new Uint8ClampedArray(256 * 4);
  rows.forEach((c, i) => { lut[i * 4] = c[0]; lut[i * 4 + 1] = c[1]; lut[i * 4 + 2] = c[2]; lut[i * 4 + 3] = 255; });
  return lut;
}
function legend(canvas, lut) {
  canvas.width = 128; canvas.height = 1;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(128, 1);
  for (let i = 0; i < 128; i++) img.data.set(lut.subarray(i * 2 * 4, i * 2 * 4 + 4), i * 4);
  ctx.putImageData(img, 0, 0);
}

/* --- frames ------------------------------------------------------------------------------ */
function encodeFrame(header, payload) {
  const head = new TextEncoder().encode(JSON.stringify(header));
  const start = (4 + head.length + 3) & ~3;
  const buf = new Uint8Array(start + payload.length);
  new DataView(buf.buffer).setUint32(0, head.length, true);
  buf.set(head, 4);
  buf.fill(32, 4 + head.length, start);
  buf.set(payload, start);
  return buf.buffer;
}
function decodeFrame(buffer) {
  const n = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, n)));
  const base = (4 + n + 3) & ~3;
  const arrays = {};
  for (const a of header.arrays) {
    const data = a.dtype === "u8"
      ? new Uint8Array(buffer, base + a.offset, a.nbytes)
      : new Float32Array(buffer, base + a.offset, a.nbytes / 4);
    arrays[a.name] = { ...a, data };
  }
  return { header, arrays };
}

/* --- messages on the page ---------------------------------------------------------------- */
let errorTimer = null;
function showError(text) {
  const box = $("#error");
  box.replaceChildren(el("span", { class: "message", text }),
    el("button", { title: "dismiss", "aria-label": "dismiss", text: "×", onclick: () => { box.hidden = true; } }));
  box.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { box.hidden = true; }, 12000);
}
function showNote(lines) {
  const box = $("#note");
  if (!lines || !lines.length) { box.hidden = true; return; }
  box.replaceChildren(...lines.map((l) => el("div", { text: l })));
  box.hidden = false;
}
async function api(path, options) {
  const res = await fetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (e) { body = { error: `the server answered ${res.status}` }; }
  if (!res.ok || body.error) throw new Error(body.error || `the server answered ${res.status}`);
  return body;
}

/* --- the drawing ------------------------------------------------------------------------- */
const draw = { ink: null, inkCtx: null, view: null, viewCtx: null, small: null, smallCtx: null, pixels: null };

function setupCanvas() {
  const { height: H, width: W } = state.spec;
  draw.ink = el("canvas"); draw.ink.width = W * INK; draw.ink.height = H * INK;
  draw.inkCtx = draw.ink.getContext("2d", { willReadFrequently: true });
  draw.small = el("canvas"); draw.small.width = W; draw.small.height = H;
  draw.smallCtx = draw.small.getContext("2d");
  draw.view = $("#draw"); draw.view.width = W; draw.view.height = H;
  draw.viewCtx = draw.view.getContext("2d");
  $("#canvas-wrap").style.aspectRatio = `${W} / ${H}`;
  const rf = $("#rf-overlay");
  rf.width = W * 16; rf.height = H * 16;
  clearInk(false);

  const v = draw.view;
  v.addEventListener("pointerdown", (e) => {
    if (e.button !== 0 && e.pointerType === "mouse") return;
    e.preventDefault();
    v.setPointerCapture(e.pointerId);
    pushUndo();
    state.drawing = true; state.sample = null;
    state.last = toInk(e);
    stroke(state.last, state.last, e.pressure, e.pointerType);
    changed();
  });
  v.addEventListener("pointermove", (e) => {
    if (!state.drawing) return;
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of events.length ? events : [e]) {
      const p = toInk(ev);
      stroke(state.last, p, ev.pressure, ev.pointerType);
      state.last = p;
    }
    changed();
  });
  const end = () => { if (state.drawing) { state.drawing = false; changed(); } };
  v.addEventListener("pointerup", end);
  v.addEventListener("pointercancel", end);
  v.addEventListener("contextmenu", (e) => e.preventDefault());
}
function toInk(e) {
  const r = draw.view.getBoundingClientRect();
  return [(e.clientX - r.left) / r.width * draw.ink.width, (e.clientY - r.top) / r.height * draw.ink.height];
}
function stroke(a, b, pressure, type) {
  const ctx = draw.inkCtx;
  const scale = type === "pen" && pressure > 0 ? 0.5 + pressure : 1;
  ctx.strokeStyle = ctx.fillStyle = state.tool === "pen" ? "#fff" : "#000";
  ctx.lineWidth = state.brush * INK * scale;
  ctx.lineCap = "round"; ctx.lineJoin = "round";
  ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
}
function clearInk(record = true) {
  if (record) pushUndo();
  draw.inkCtx.fillStyle = "#000";
  draw.inkCtx.fillRect(0, 0, draw.ink.width, draw.ink.height);
  state.sample = null;
}
function pushUndo() {
  state.undo.push(draw.inkCtx.getImageData(0, 0, draw.ink.width, draw.ink.height));
  if (state.undo.length > 40) state.undo.shift();
}
function undo() {
  const img = state.undo.pop();
  if (!img) return;
  draw.inkCtx.putImageData(img, 0, 0);
  changed();
}
function setPixels(u8, channels) {
  // An exact image (upload, validation image) into the ink, each input pixel a solid block.
  const { height: H, width: W } = state.spec;
  const img = draw.smallCtx.createImageData(W, H);
  for (let i = 0; i < H * W; i++) {
    for (let c = 0; c < 3; c++) img.data[i * 4 + c] = u8[(channels === 3 ? c : 0) * H * W + i];
    img.data[i * 4 + 3] = 255;
  }
  draw.smallCtx.putImageData(img, 0, 0);
  pushUndo();
  draw.inkCtx.imageSmoothingEnabled = false;
  draw.inkCtx.drawImage(draw.small, 0, 0, draw.ink.width, draw.ink.height);
  changed();
}
function inputPixels() {
  // Box-average the ink down to the input size: what the model sees (u8, C x H x W).
  const { channels: C, height: H, width: W } = state.spec;
  const src = draw.inkCtx.getImageData(0, 0, W * INK, H * INK).data;
  const out = new Uint8Array(C * H * W);
  const rowStride = W * INK * 4;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const sums = [0, 0, 0];
      for (let dy = 0; dy < INK; dy++) {
        let o = (y * INK + dy) * rowStride + x * INK * 4;
        for (let dx = 0; dx < INK; dx++, o += 4) { sums[0] += src[o]; sums[1] += src[o + 1]; sums[2] += src[o + 2]; }
      }
      const n = INK * INK;
      if (C === 1) out[y * W + x] = Math.round(sums[0] / n);
      else for (let c = 0; c < 3; c++) out[c * H * W + y * W + x] = Math.round(sums[c] / n);
    }
  }
  return out;
}
function paintView(u8) {
  const { channels: C, height: H, width: W } = state.spec;
  const img = draw.viewCtx.createImageData(W, H);
  for (let i = 0; i < H * W; i++) {
    for (let c = 0; c < 3; c++) img.data[i * 4 + c] = u8[(C === 3 ? c : 0) * H * W + i];
    img.data[i * 4 + 3] = 255;
  }
  draw.viewCtx.putImageData(img, 0, 0);
}

let changeScheduled = false;
function changed() {
  if (changeScheduled) return;
  changeScheduled = true;
  requestAnimationFrame(() => {
    changeScheduled = false;
    draw.pixels = inputPixels();
    paintView(draw.pixels);
    state.dirty = true;
    pump();
    syncUrl();
  });
}

/* --- the socket -------------------------------------------------------------------------- */
let retry = 500;
function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  ws.onopen = () => {
    state.connected = true; retry = 500; state.inflight = null;
    $("#conn").className = "dot on";
    state.dirty = true; pump();
  };
  ws.onclose = () => {
    state.connected = false; state.inflight = null;
    $("#conn").className = "dot off"; $("#latency").textContent = "reconnecting…";
    setTimeout(connect, retry); retry = Math.min(retry * 2, 8000);
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") onText(JSON.parse(ev.data));
    else onUpdate(decodeFrame(ev.data));
  };
}
function pump() {
  if (!state.connected || !state.dirty || !draw.pixels) return;
  if (state.inflight && performance.now() - state.inflight.sent < 15000) return;
  const id = state.nextId++;
  const focus = {};
  const sel = state.selection;
  if (sel) focus[sel.model] = sel.unit;
  const header = {
    type: "infer", id, models: state.models.map((m) => m.key), method: state.method,
    target: state.target, layer: state.camLayer, focus, faith: true,
    dtype: "u8", shape: [state.spec.channels, state.spec.height, state.spec.width],
  };
  if (!methodInfo(state.method).cam) header.layer = null;
  state.inflight = { id, sent: performance.now(), waiting: new Set(header.models) };
  state.dirty = false;
  state.ws.send(encodeFrame(header, draw.pixels));
}
function settle(id, model) {
  const f = state.inflight;
  if (!f || f.id !== id) return;
  f.waiting.delete(model);
  if (!f.waiting.size) {
    $("#latency").textContent = `${Math.round(performance.now() - f.sent)} ms`;
    state.inflight = null;
    pump();
  }
}
function onText(msg) {
  if (msg.type === "curves") {
    state.curves[msg.model] = msg;
    drawCurves(state.models.find((m) => m.key === msg.model), msg);
  } else if (msg.type === "skipped") {
    settle(msg.id, msg.model);
  } else if (msg.type === "error") {
    showError(msg.message);
    if (msg.model) settle(msg.id, msg.model);
    else if (state.inflight && (msg.id == null || msg.id === state.inflight.id)) { state.inflight = null; }
  }
}
function onUpdate({ header, arrays }) {
  const m = state.models.find((x) => x.key === header.model);
  if (!m) return;
  state.latest[m.key] = { header, arrays };
  state.updates += 1;
  m.render = true;
  scheduleRender();
  settle(header.id, header.model);
}
let renderScheduled = false;
function scheduleRender() {
  if (renderScheduled) return;
  renderScheduled = true;
  requestAnimationFrame(() => {
    renderScheduled = false;
    for (const m of state.models) if (m.render) { m.render = false; renderModel(m, state.latest[m.key]); }
    renderNow();
    drawRf();
  });
}

/* --- the model columns ------------------------------------------------------------------- */
function methodInfo(name) { return state.config.methods.find((x) => x.name === name) || {}; }

function buildModel(cfg) {
  const m = { key: cfg.key, cfg, layers: {}, dense: {} };
  const col = el("section", { class: "model", "data-model": cfg.key });
  col.append(el("h2", { class: "model-title" }, el("span", { text: cfg.label }),
    el("small", { text: `${cfg.layers.length} layers` })));
  // prediction
  const pred = el("div", { class: "card pred" });
  m.big = el("span", { class: "big", text: "–" });
  m.p = el("span", { class: "p", text: "" });
  pred.append(el("div", { class: "verdict" }, m.big, m.p));
  const probs = el("div", { class: "probs", role: "list" });
  m.rows = cfg.class_names.map((name, k) => {
    const pick = () => selectClass(cfg.key, k);
    const n = el("div", { class: "name", text: name, title: `class ${name}: click for its prototype and heatmap`, onclick: pick });
    const bar = el("div", { class: "bar" });
    const track = el("div", { class: "track", onclick: pick }, bar);
    const val = el("div", { class: "val", text: "" });
    probs.append(n, track, val);
    return { n, track, bar, val };
  });
  pred.append(probs);
  const top = el("div", { class: "model-top" }, pred);
  col.append(top);
  // heatmap
  const heat = el("div", { class: "card heat" });
  m.heatTitle = el("h3", {}, el("span", { text: "Heatmap" }));
  m.heatOverlay = el("canvas"); m.heatMap = el("canvas"); m.heatNative = el("canvas");
  m.nativeFig = el("figure", {}, m.heatNative, el("figcaption", { text: "native CAM resolution" }));
  m.nativeFig.hidden = true;
  m.heatLegend = el("canvas");
  m.heatScale = el("span");
  heat.append(m.heatTitle,
    el("div", { class: "heat-row" },
      el("figure", {}, m.heatOverlay, el("figcaption", { text: "over the input" })),
      el("figure", {}, m.heatMap, el("figcaption", { text: "signed map" })), m.nativeFig),
    el("div", { class: "legend" }, el("span", { text: "against" }), m.heatLegend, el("span", { text: "for" }), m.heatScale));
  legend(m.heatLegend, state.luts.diverging);
  m.curves = svg("svg", { class: "curves", viewBox: "0 0 240 136" });
  m.aucs = el("div", { class: "aucs", text: "deletion / insertion: waiting for the first drawing" });
  heat.append(el("div", { class: "curves-box" }, m.curves, m.aucs));
  top.append(heat);
  // layers
  const shapeOf = {};
  for (const info of cfg.layers) shapeOf[info.name] = info;
  for (const name of cfg.conv) {
    const info = shapeOf[name];
    const [C, h, w] = info.output_shape;
    const rf = info.receptive_field;
    const card = el("div", { class: "card layer", "data-layer": name });
    const lg = el("canvas"); legend(lg, state.luts.sequential);
    const lo = el("span", { text: "0" }); const hi = el("span", { text: "" });
    const grid = el("canvas", { class: "grid", "data-layer": name });
    card.append(el("h3", {}, el("span", { text: name }),
      el("small", { text: `${C} channels · ${h}×${w}` + (rf ? ` · field ${rf.size[0]}×${rf.size[1]}` : "") })),
    el("div", { class: "legend" }, lo, lg, hi, el("small", { text: "one scale for the layer" })), grid);
    const L = { model: cfg.key, name, C, h, w, card, grid, lo, hi, legendCanvas: lg, cmap: "sequential", cols: 0, rows: 0, tile: 0, gap: 2 };
    L.buffer = el("canvas");
    grid.addEventListener("click", (e) => {
      const hit = hitTile(L, e);
      if (hit) selectUnit(cfg.key, `${name}:${hit.c}`);
    });
    grid.addEventListener("mousemove", (e) => tip(e, tileTip(m, L, hitTile(L, e))));
    grid.addEventListener("mouseleave", () => tip(null));
    m.layers[name] = L;
    col.append(card);
  }
  for (const name of cfg.dense) {
    const info = shapeOf[name];
    const F = info.output_shape[0];
    const card = el("div", { class: "card dense", "data-layer": name });
    const bars = el("canvas", { class: "bars" });
    card.append(el("h3", {}, el("span", { text: name }), el("small", { text: `${F} units · bar height = value` })), bars);
    const D = { name, F, card, bars, values: null };
    bars.addEventListener("click", (e) => {
      const k = hitBar(D, e);
      if (k != null) selectUnit(cfg.key, `${name}:${k}`);
    });
    bars.addEventListener("mousemove", (e) => {
      const k = hitBar(D, e);
      tip(e, k == null || !D.values ? null : `${name}:${k} = ${fmt(D.values[k])}`);
    });
    bars.addEventListener("mouseleave", () => tip(null));
    m.dense[name] = D;
    col.append(card);
  }
  m.col = col;
  return m;
}
function svg(tag, attrs = {}) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function layoutGrid(L) {
  // Tiles of about 2-4x the map's size (a few rem), as many per row as the card holds.
  const cs = getComputedStyle(L.card);
  const width = Math.max(120, L.card.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight) - 1);
  const dpr = window.devicePixelRatio || 1;
  const rem = parseFloat(getComputedStyle(document.documentElement).fontSize) || 16;
  const want = Math.max(2 * L.w, Math.min(4 * L.w, Math.round(3.6 * rem)));
  let cols = Math.max(1, Math.min(L.C, Math.floor((width + L.gap) / (want + L.gap))));
  const rows = Math.ceil(L.C / cols);
  cols = Math.ceil(L.C / rows); // balance the rows
  const tile = Math.max(L.w, Math.min(Math.floor((width - (cols - 1) * L.gap) / cols), Math.round(want * 1.25)));
  const th = Math.round(tile * L.h / L.w);
  const cssW = cols * tile + (cols - 1) * L.gap, cssH = rows * th + (rows - 1) * L.gap;
  if (L.cols !== cols || L.tile !== tile || L.dpr !== dpr) {
    L.cols = cols; L.rows = rows; L.tile = tile; L.th = th; L.dpr = dpr;
    L.grid.style.width = `${cssW}px`; L.grid.style.height = `${cssH}px`;
    L.grid.width = Math.round(cssW * dpr); L.grid.height = Math.round(cssH * dpr);
    L.buffer.width = cols * L.w; L.buffer.height = rows * L.h;
  }
}
function hitTile(L, e) {
  const r = L.grid.getBoundingClientRect();
  const x = e.clientX - r.left, y = e.clientY - r.top;
  const col = Math.floor(x / (L.tile + L.gap)), row = Math.floor(y / (L.th + L.gap));
  const c = row * L.cols + col;
  if (col < 0 || col >= L.cols || c < 0 || c >= L.C) return null;
  const px = x - col * (L.tile + L.gap), py = y - row * (L.th + L.gap);
  if (px > L.tile || py > L.th) return null;
  return { c, i: Math.min(L.h - 1, Math.floor(py / L.th * L.h)), j: Math.min(L.w - 1, Math.floor(px / L.tile * L.w)) };
}
function tileTip(m, L, hit) {
  if (!hit || !L.data) return null;
  const q = L.data[hit.c * L.h * L.w + hit.i * L.w + hit.j];
  const v = L.lo_v + q / 255 * (L.hi_v - L.lo_v);
  return `${L.name}:${hit.c} @${hit.i},${hit.j} ≈ ${fmt(v)}`;
}
function hitBar(D, e) {
  const r = D.bars.getBoundingClientRect();
  const k = Math.floor((e.clientX - r.left) / r.width * D.F);
  return k >= 0 && k < D.F ? k : null;
}
let tipEl = null;
function tip(e, text) {
  if (!tipEl) { tipEl = el("div", { class: "tip" }); document.body.append(tipEl); }
  if (!e || !text) { tipEl.hidden = true; return; }
  tipEl.textContent = text; tipEl.hidden = false;
  tipEl.style.left = `${e.clientX + 12}px`; tipEl.style.top = `${e.clientY + 12}px`;
}

function renderModel(m, update) {
  if (!update) return;
  const { header, arrays } = update;
  const names = m.cfg.class_names;
  const probs = arrays.probabilities.data;
  m.big.textContent = header.predicted_name;
  m.p.textContent = `p = ${header.probability.toFixed(3)}`;
  m.rows.forEach((row, k) => {
    row.bar.style.width = `${(probs[k] * 100).toFixed(1)}%`;
    row.val.textContent = probs[k].toFixed(3);
    const best = k === header.predicted;
    row.n.classList.toggle("row-best", best); row.track.classList.toggle("row-best", best);
    row.val.classList.toggle("row-best", best);
    row.n.classList.toggle("row-target", k === header.target && state.target != null);
  });
  // heatmap
  const heat = arrays.heat;
  const scale = heat.scale || 1;
  const tname = names[header.target] ?? header.target;
  m.heatTitle.replaceChildren(el("span", { text: `${header.method.replace(/_/g, " ")}` }),
    el("small", { text: `evidence for class ${tname}${state.target == null ? " (predicted)" : ""}` +
      (header.options && header.options.layer ? ` · layer ${header.options.layer}` : "") }));
  m.heatScale.textContent = `±${fmt(scale)}`;
  paintSigned(m.heatMap, heat.data, heat.shape, scale, null);
  paintSigned(m.heatOverlay, heat.data, heat.shape, scale, draw.pixels);
  if (arrays.native) {
    m.nativeFig.hidden = false;
    paintSigned(m.heatNative, arrays.native.data, arrays.native.shape, arrays.native.scale || scale, null);
  } else m.nativeFig.hidden = true;
  // conv layers
  for (const L of Object.values(m.layers)) {
    const a = arrays[L.name];
    if (!a) continue;
    L.data = a.data; L.lo_v = a.lo; L.hi_v = a.hi;
    L.lo.textContent = fmt(a.lo); L.hi.textContent = fmt(a.hi);
    if (a.cmap !== L.cmap) { L.cmap = a.cmap; legend(L.legendCanvas, state.luts[a.cmap]); }
    paintGrid(L, a.data, state.luts[a.cmap]);
  }
  for (const D of Object.values(m.dense)) {
    const a = arrays[D.name];
    if (!a) continue;
    D.values = a.data;
    paintBars(D);
  }
}
function paintGrid(L, data, lut) {
  layoutGrid(L);
  const bctx = L.buffer.getContext("2d");
  const img = bctx.createImageData(L.buffer.width, L.buffer.height);
  const out = img.data, W = L.buffer.width, hw = L.h * L.w;
  for (let c = 0; c < L.C; c++) {
    const ox = (c % L.cols) * L.w, oy = Math.floor(c / L.cols) * L.h;
    for (let i = 0; i < L.h; i++) {
      let o = ((oy + i) * W + ox) * 4, s = c * hw + i * L.w;
      for (let j = 0; j < L.w; j++, o += 4, s++) {
        const q = data[s] * 4;
        out[o] = lut[q]; out[o + 1] = lut[q + 1]; out[o + 2] = lut[q + 2]; out[o + 3] = 255;
      }
    }
  }
  bctx.putImageData(img, 0, 0);
  const ctx = L.grid.getContext("2d");
  ctx.setTransform(L.dpr, 0, 0, L.dpr, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, L.grid.width, L.grid.height);
  const sel = state.selection;
  for (let c = 0; c < L.C; c++) {
    const col = c % L.cols, row = Math.floor(c / L.cols);
    const x = col * (L.tile + L.gap), y = row * (L.th + L.gap);
    ctx.drawImage(L.buffer, col * L.w, row * L.h, L.w, L.h, x, y, L.tile, L.th);
    if (sel && sel.kind === "unit" && sel.layer === L.name && sel.channel === c && sel.model === L.model) {
      ctx.strokeStyle = "#d95f02"; ctx.lineWidth = 2;
      ctx.strokeRect(x + 1, y + 1, L.tile - 2, L.th - 2);
    }
  }
}
function paintBars(D) {
  const c = D.bars, dpr = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight;
  if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
  const ctx = c.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  let lo = 0, hi = 0;
  for (const v of D.values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  const range = Math.max(hi - lo, 1e-9), zero = h * hi / range;
  const bw = w / D.F;
  const sel = state.selection;
  for (let k = 0; k < D.F; k++) {
    const v = D.values[k];
    const y = v >= 0 ? zero - v / range * h : zero;
    const picked = sel && sel.kind === "unit" && sel.layer === D.name && sel.channel === k;
    ctx.fillStyle = picked ? "#d95f02" : v >= 0 ? "#4c6a8a" : "#c0392b";
    ctx.fillRect(k * bw, y, Math.max(1, bw - (bw > 3 ? 1 : 0)), Math.max(1, Math.abs(v) / range * h));
  }
  ctx.fillStyle = "#9aa4ae"; ctx.fillRect(0, zero, w, 1);
}
function paintSigned(canvas, data, shape, scale, under) {
  // Signed map on the diverging scale; over the input, opacity grows with |value| (as in
  // images/colors.heatmap_overlay, so the app and the written pictures read alike).
  const [h, w] = shape;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  const lut = state.luts.diverging;
  const C = state.spec.channels, HW = state.spec.height * state.spec.width;
  for (let i = 0; i < h * w; i++) {
    const t = Math.max(-1, Math.min(1, data[i] / (scale || 1)));
    if (under) {
      const q = Math.round((0.5 + 0.4 * t) * 255) * 4;
      let g = under[i] / 255;
      if (C === 3) g = (0.299 * under[i] + 0.587 * under[HW + i] + 0.114 * under[2 * HW + i]) / 255;
      const base = 0.1 + 0.8 * g, a = 0.85 * Math.abs(t);
      for (let c = 0; c < 3; c++) img.data[i * 4 + c] = 255 * (base * (1 - a)) + lut[q + c] * a;
    } else {
      const q = Math.round((t + 1) / 2 * 255) * 4;
      for (let c = 0; c < 3; c++) img.data[i * 4 + c] = lut[q + c];
    }
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}
function drawCurves(m, msg) {
  if (!m) return;
  const s = m.curves;
  s.replaceChildren();
  const X = (f) => 26 + f * 206, Y = (p) => 8 + (1 - p) * 108;
  const axis = svg("path", { d: `M${X(0)},${Y(1)} L${X(0)},${Y(0)} L${X(1)},${Y(0)}`, stroke: "#9aa4ae", fill: "none" });
  s.append(axis);
  for (const [v, label] of [[0, "0"], [1, "1"]]) {
    const t = svg("text", { x: 20, y: Y(v) + 3, "text-anchor": "end" }); t.textContent = label; s.append(t);
  }
  const xl = svg("text", { x: X(0.5), y: 132, "text-anchor": "middle" }); xl.textContent = "share of pixels changed"; s.append(xl);
  const line = (ys, color, dash) => {
    const d = ys.map((p, k) => `${k ? "L" : "M"}${X(msg.fractions[k]).toFixed(1)},${Y(p).toFixed(1)}`).join(" ");
    s.append(svg("path", { d, stroke: color, fill: "none", "stroke-width": 1.6, "stroke-dasharray": dash || "" }));
  };
  line(msg.random_deletion, "#7fa6cf", "3 3");
  line(msg.random_insertion, "#e8a0a0", "3 3");
  line(msg.deletion, "#2166ac");
  line(msg.insertion, "#b2182b");
  const a = msg.aucs;
  const delOk = a.deletion < a.random_deletion, insOk = a.insertion > a.random_insertion;
  m.aucs.replaceChildren(
    el("div", {}, el("span", { class: "swatch", style: "background:#b2182b" }), "insertion AUC ",
      el("b", { text: fmt(a.insertion) }), ` (random ${fmt(a.random_insertion)}) `,
      el("span", { class: insOk ? "ok" : "bad", text: insOk ? "✓ higher" : "✗ not higher" })),
    el("div", {}, el("span", { class: "swatch", style: "background:#2166ac" }), "deletion AUC ",
      el("b", { text: fmt(a.deletion) }), ` (random ${fmt(a.random_deletion)}) `,
      el("span", { class: delOk ? "ok" : "bad", text: delOk ? "✓ lower" : "✗ not lower" })),
    el("div", { class: "hint", text: "probability of the class as the most important pixels are deleted (blue) or inserted into a blurred copy (red); dashed: a random order, the bar to beat" }));
}

/* --- selection: units and classes ------------------------------------------------------- */
function modelOf(key) { return state.models.find((m) => m.key === key) || state.models[0]; }
function parseUnit(m, text) {
  const mm = /^([^:@]+):(\d+)(?:@(\d+),(\d+))?$/.exec(text || "");
  if (!mm) return null;
  if (mm[1] === "class") return { kind: "class", channel: +mm[2] };
  return { kind: "unit", layer: mm[1], channel: +mm[2], position: mm[3] != null ? [+mm[3], +mm[4]] : null };
}
function selectUnit(key, unit) {
  const m = modelOf(key);
  const u = parseUnit(m, unit);
  if (!u || u.kind !== "unit") return;
  state.selection = { model: m.key, unit, ...u };
  openPanel();
  loadDetails();
  state.dirty = true; pump();
  scheduleRerender();
  syncUrl();
}
function selectClass(key, k) {
  const m = modelOf(key);
  state.selection = { model: m.key, unit: `class:${k}`, kind: "class", channel: k };
  state.target = k;
  $("#target").value = String(k);
  openPanel();
  loadDetails();
  state.dirty = true; pump();
  syncUrl();
}
function scheduleRerender() { for (const m of state.models) m.render = true; scheduleRender(); }
function openPanel() {
  $("#panel").hidden = false;
  $("#main").classList.add("with-panel");
}
function closePanel() {
  state.selection = null;
  $("#panel").hidden = true;
  $("#main").classList.remove("with-panel");
  scheduleRerender();
  syncUrl();
  requestAnimationFrame(() => { for (const m of state.models) m.render = true; scheduleRender(); });
}

function picture(pic, { scale = 4, maxSide = 120, box = null, label = "", fluid = false } = {}) {
  // An atlas sprite tile or a PNG data URL, drawn crisp; `box` outlines a window [t,l,b,r].
  const fig = el("figure", { class: "pic" });
  if (!pic) return fig;
  const c = el("canvas");
  const w = pic.w, h = pic.h;
  const k = Math.max(1, Math.min(scale, Math.floor(maxSide / Math.max(w, h)) || 1));
  c.width = w * k; c.height = h * k;
  if (!fluid) c.style.width = `${w * k}px`;
  const img = new Image();
  img.onload = () => {
    const ctx = c.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    const [sx, sy, sw, sh] = pic.box || [0, 0, img.naturalWidth, img.naturalHeight];
    ctx.drawImage(img, sx, sy, sw, sh, 0, 0, c.width, c.height);
    if (box) {
      const f = c.width / w;
      ctx.strokeStyle = "#ee3b2e"; ctx.lineWidth = Math.max(1.5, f / 3);
      ctx.strokeRect(box[1] * f + 0.5, box[0] * f + 0.5, (box[3] - box[1]) * f - 1, (box[2] - box[0]) * f - 1);
    }
    c.dataset.loaded = "1";
  };
  img.onerror = () => { c.dataset.loaded = "error"; };
  img.src = pic.src;
  c.className = "picture";
  fig.append(c);
  if (label) fig.append(el("figcaption", { text: label }));
  return fig;
}
function verdict(r, status, rMean, match) {
  if (status === "dead") return el("div", { class: "verdict-line bad", text: "dead: no validation image activates this unit" });
  if (r == null) return el("div", { class: "verdict-line", text: "not verified against real images" });
  const ok = r >= 0.9999 && (rMean == null || rMean >= 0.9999);
  const line = el("div", { class: "verdict-line", title: "r_peak: strongest activation reached / the best validation image's; r_mean: the map's mean reached / the best validation mean" },
    rMean == null ? "r = " : "r_peak = ", el("b", { text: fmt(r) }));
  if (rMean != null) line.append(" · r_mean = ", el("b", { text: fmt(rMean) }));
  line.append(" ", el("span", { class: ok ? "ok" : "bad", text: ok ? "✓ beats every real image" : "below the best real image" }));
  if (match != null) line.append(el("small", { text: ` · match ${fmt(match)} (1: its own real examples look most like it)` }));
  return line;
}

async function loadDetails() {
  const sel = state.selection;
  if (!sel) return;
  const token = ++state.detailsToken;
  const m = modelOf(sel.model);
  $("#panel-title").textContent = sel.unit + (state.models.length > 1 ? ` · ${m.cfg.label}` : "");
  const body = $("#panel-body");
  body.replaceChildren();
  const now = el("section", { class: "now" }, el("h4", { text: "Now, on the drawing" }), el("div", { class: "now-body loading", text: "waiting for the next update" }));
  body.append(now);
  renderNow();
  if (sel.kind === "class") {
    const sec = el("section", {}, el("h4", { text: "Prototype: the input the model finds most this class" }), el("div", { class: "loading", text: "rendering the prototype… (a few seconds the first time)" }));
    body.append(sec,
      el("section", {}, el("p", { class: "hint", text: `The heatmap now explains class ${m.cfg.class_names[sel.channel]}. ` },
        el("button", { text: "explain the predicted class again", onclick: () => { state.target = null; $("#target").value = ""; state.dirty = true; pump(); syncUrl(); } }))));
    try {
      const d = await api(`/api/class?model=${m.key}&class=${sel.channel}`);
      if (token !== state.detailsToken) return;
      const p = d.prototype;
      const pics = el("div", { class: "pics" }, picture(p.picture, { scale: 6, maxSide: 168, label: "prototype" }));
      if (p.deaveraged) pics.append(picture(p.deaveraged, { scale: 6, maxSide: 168, label: "minus the mean prototype" }));
      const ok = p.predicted === sel.channel && p.probability >= 0.99;
      sec.replaceChildren(sec.firstChild, pics, el("div", { class: "verdict-line" },
        `the model says ${m.cfg.class_names[p.predicted] ?? p.predicted} with p = ${fmt(p.probability)} `,
        el("span", { class: ok ? "ok" : "bad", text: ok ? "✓ verified" : "✗ not convincing" }),
        el("small", { text: ` · ${p.source === "atlas" ? "from the atlas" : "computed now"}` })));
    } catch (e) {
      if (token === state.detailsToken) sec.replaceChildren(sec.firstChild, el("div", { class: "error", text: e.message }));
    }
    return;
  }
  const kernelSec = el("section", {}, el("h4", { text: "Kernel" }), el("div", { class: "loading", text: "loading" }));
  const renderSec = el("section", {}, el("h4", { text: "Feature visualization: what it responds to most" }), el("div", { class: "loading", text: "loading" }));
  const exSec = el("section", {}, el("h4", { text: "Top real examples" }), el("div", { class: "loading", text: "mining the validation images…" }));
  body.append(kernelSec, renderSec, exSec);
  let d;
  try {
    d = await api(`/api/unit?model=${m.key}&unit=${encodeURIComponent(sel.unit)}`);
  } catch (e) {
    if (token === state.detailsToken) { kernelSec.replaceChildren(el("div", { class: "error", text: e.message })); renderSec.remove(); exSec.remove(); }
    return;
  }
  if (token !== state.detailsToken) return;
  const rf = d.layer_info.receptive_field;
  const src = d.source === "atlas" ? "from the atlas" : "computed now";
  if (d.kernel && d.kernel.picture) {
    kernelSec.replaceChildren(kernelSec.firstChild, picture(d.kernel.picture, { scale: 12, maxSide: 160 }),
      el("p", { class: "hint", text: "its weights, one tile per input channel: red adds, blue subtracts (one scale for the layer)" }));
  } else kernelSec.remove();
  const showRender = (r) => {
    const pics = el("div", { class: "pics" });
    if (r.picture) pics.append(picture(r.picture, { scale: 5, maxSide: 140, label: r.what || "" }));
    if (d.neuron_render && d.neuron_render.picture) pics.append(picture(d.neuron_render.picture, { scale: 8, maxSide: 120, label: `centre neuron (r ${fmt(d.neuron_render.r)})` }));
    renderSec.replaceChildren(renderSec.firstChild, pics, verdict(r.r, r.status, r.r_mean, r.match),
      el("small", { text: `${src}${r.seconds ? ` in ${r.seconds} s` : ""}` }));
  };
  if (d.render) showRender(d.render);
  else {
    renderSec.querySelector(".loading").textContent = "rendering… (a few seconds the first time)";
    api(`/api/render?model=${m.key}&unit=${encodeURIComponent(sel.unit)}`).then((r) => {
      if (token === state.detailsToken) showRender(r);
    }).catch((e) => { if (token === state.detailsToken) renderSec.replaceChildren(renderSec.firstChild, el("div", { class: "error", text: e.message })); });
  }
  if (d.examples && d.examples.items.length) {
    const grid = el("div", { class: "examples" });
    const spatial = !!rf;
    for (const item of d.examples.items) {
      const name = item.label != null ? m.cfg.class_names[item.label] ?? item.label : "";
      grid.append(picture(item.image, { scale: 3, maxSide: 84, fluid: true, box: spatial ? item.window : null, label: `${fmt(item.value)}${name !== "" ? ` · ${name}` : ""}` }));
    }
    const parts = [exSec.firstChild, el("p", { class: "hint", text: `by ${d.examples.score}; the box is the receptive field of the neuron that fired (${src})` }), grid];
    if (d.examples.items.some((x) => x.crop)) {
      const crops = el("div", { class: "examples" });
      for (const item of d.examples.items) if (item.crop) crops.append(picture(item.crop, { scale: 6, maxSide: 84, fluid: true }));
      parts.push(el("h4", { text: "their receptive-field crops" }), crops);
    }
    exSec.replaceChildren(...parts);
  } else exSec.replaceChildren(exSec.firstChild, el("div", { class: "hint", text: "no examples (the model records no dataset; start the server with --data NAME)" }));
}

function renderNow() {
  const sel = state.selection;
  const box = document.querySelector("#panel .now-body");
  if (!sel || !box) return;
  const m = modelOf(sel.model);
  const update = state.latest[m.key];
  if (!update) return;
  const f = update.header.focus;
  box.classList.remove("loading");
  if (sel.kind === "class") {
    const p = update.arrays.probabilities.data[sel.channel];
    const logit = update.arrays.logits.data[sel.channel];
    box.replaceChildren(el("div", {}, "p = ", el("b", { text: fmt(p) }), ` · score before softmax ${fmt(logit)}`));
    return;
  }
  if (f && f.error) { box.replaceChildren(el("div", { class: "error", text: f.error })); return; }
  if (!f || f.unit !== sel.unit) { box.textContent = "updating…"; return; }
  const L = m.layers[sel.layer];
  const parts = [];
  if (f.position) {
    parts.push(el("div", {}, sel.position ? `value at (${f.position.join(", ")}): ` : `max ${fmt(f.max)} at (${f.position.join(", ")}) · `,
      sel.position ? el("b", { text: fmt(f.value) }) : `mean ${fmt(f.mean)}`));
  } else parts.push(el("div", {}, "value: ", el("b", { text: fmt(f.value) })));
  if (L && L.data) {
    const c = el("canvas", { class: "now-map", title: "click a position to pick that neuron" });
    c.width = L.w; c.height = L.h;
    const k = Math.max(4, Math.floor(168 / Math.max(L.w, L.h)));
    c.style.width = `${L.w * k}px`; c.style.height = `${L.h * k}px`;
    const ctx = c.getContext("2d");
    const img = ctx.createImageData(L.w, L.h);
    const lut = state.luts[L.cmap];
    const off = sel.channel * L.h * L.w;
    for (let i = 0; i < L.h * L.w; i++) img.data.set(lut.subarray(L.data[off + i] * 4, L.data[off + i] * 4 + 4), i * 4);
    ctx.putImageData(img, 0, 0);
    if (f.position) {
      const wrap = el("div", { style: `position:relative;width:${L.w * k}px;height:${L.h * k}px` }, c);
      const mark = el("div", { style: `position:absolute;left:${f.position[1] * k}px;top:${f.position[0] * k}px;width:${k}px;height:${k}px;outline:2px solid #ee3b2e;pointer-events:none` });
      wrap.append(mark);
      c.addEventListener("click", (e) => {
        const r = c.getBoundingClientRect();
        const i = Math.floor((e.clientY - r.top) / r.height * L.h), j = Math.floor((e.clientX - r.left) / r.width * L.w);
        selectUnit(m.key, `${sel.layer}:${sel.channel}@${i},${j}`);
      });
      parts.push(wrap, el("small", { text: "this channel's map now (layer scale); click a position for that neuron. Red box on the input: its receptive field" }));
    } else parts.push(c);
  }
  box.replaceChildren(...parts);
}
function drawRf() {
  const c = $("#rf-overlay");
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  const sel = state.selection;
  if (!sel || sel.kind !== "unit") return;
  const update = state.latest[sel.model];
  const f = update && update.header.focus;
  if (!f || f.unit !== sel.unit || !f.window) return;
  const k = c.width / state.spec.width;
  const [t, l, b, r] = f.window;
  ctx.strokeStyle = "#ee3b2e"; ctx.lineWidth = 3;
  ctx.strokeRect(l * k + 1.5, t * k + 1.5, (r - l) * k - 3, (b - t) * k - 3);
}

/* --- inputs: upload, validation images ----------------------------------------------------- */
async function upload(file) {
  if (!file) return;
  const limit = state.config.limits.upload_bytes;
  if (file.size > limit) {
    showError(`${file.name} is over the ${limit / 2 ** 20} MB limit (${file.size.toLocaleString("en")} bytes); shrink it first`);
    return;
  }
  try {
    const d = await api(`/api/upload?model=${state.models[0].key}`, { method: "POST", body: file, headers: { "Content-Type": "application/octet-stream" } });
    setPixels(d.pixels, d.shape[0]);
    showNote([`${file.name}:`, ...(d.notes.length ? d.notes : ["used as it is"])]);
    $("#error").hidden = true;
  } catch (e) {
    showError(`${file.name}: ${e.message}`);
  }
}
async function loadSample(index, random) {
  try {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const q = random ? `seed=${seed}` : `index=${index}`;
    const d = await api(`/api/sample?model=${state.models[0].key}&${q}`);
    setPixels(d.pixels, d.shape[0]);
    state.sample = d.index;
    $("#sample-index").value = d.index;
    $("#sample-index").max = d.count - 1;
    const names = state.models[0].cfg.class_names;
    showNote([`validation image ${d.index} of ${d.count} (${d.dataset}), labelled ${names[d.label] ?? d.label}`]);
    syncUrl();
  } catch (e) {
    showError(e.message);
    $("#pick").hidden = /dataset/.test(e.message);
    if (!draw.pixels) changed();
  }
}

/* --- URL ------------------------------------------------------------------------------- */
function syncUrl() {
  const p = new URLSearchParams();
  if (new URLSearchParams(location.search).get("embed")) p.set("embed", "1");
  const sel = state.selection;
  if (sel) { p.set("unit", sel.unit); if (state.models.length > 1) p.set("model", sel.model); }
  if (state.method !== "gradient") p.set("method", state.method);
  if (state.target != null) p.set("target", String(state.target));
  if (state.camLayer && methodInfo(state.method).cam) p.set("layer", state.camLayer);
  if (state.sample != null) p.set("sample", String(state.sample));
  const q = p.toString();
  const url = q ? `?${q}` : location.pathname;
  if (url !== location.search) history.replaceState(null, "", q ? `?${q}` : location.pathname);
}

/* --- controls -------------------------------------------------------------------------- */
function setTool(tool) {
  state.tool = tool;
  document.querySelectorAll(".tool").forEach((b) => b.classList.toggle("active", b.dataset.tool === tool));
}
function setBrush(v) {
  state.brush = Math.max(0.75, Math.min(5, v));
  $("#brush").value = state.brush;
  $("#brush-size").textContent = `${state.brush} px`;
}
function setupControls() {
  document.querySelectorAll(".tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  $("#brush").addEventListener("input", (e) => setBrush(parseFloat(e.target.value)));
  $("#undo").addEventListener("click", undo);
  $("#clear").addEventListener("click", () => { clearInk(); showNote(null); changed(); });
  $("#upload").addEventListener("change", (e) => { upload(e.target.files[0]); e.target.value = ""; });
  $("#sample-go").addEventListener("click", () => loadSample(parseInt($("#sample-index").value || "0", 10), false));
  $("#sample-random").addEventListener("click", () => loadSample(0, true));
  $("#sample-index").addEventListener("keydown", (e) => { if (e.key === "Enter") $("#sample-go").click(); });
  const method = $("#method");
  for (const m of state.config.methods) method.append(el("option", { value: m.name, text: m.name.replace(/_/g, " ") + (m.cam ? " (CAM)" : "") }));
  method.value = state.method;
  method.addEventListener("change", () => { state.method = method.value; methodChanged(); state.dirty = true; pump(); syncUrl(); });
  const target = $("#target");
  state.models[0].cfg.class_names.forEach((n, k) => target.append(el("option", { value: String(k), text: n })));
  target.value = state.target == null ? "" : String(state.target);
  target.addEventListener("change", () => { state.target = target.value === "" ? null : parseInt(target.value, 10); state.dirty = true; pump(); syncUrl(); });
  const cam = $("#cam-layer");
  state.models[0].cfg.conv.forEach((n) => cam.append(el("option", { value: n, text: n })));
  const convs = state.models[0].cfg.conv;
  if (!state.camLayer || !convs.includes(state.camLayer)) state.camLayer = convs[convs.length - 1] || null;
  cam.value = state.camLayer || "";
  cam.addEventListener("change", () => { state.camLayer = cam.value; state.dirty = true; pump(); syncUrl(); });
  methodChanged();
  $("#panel-close").addEventListener("click", closePanel);
  $("#panel-link").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(location.href); $("#panel-link").textContent = "Copied"; }
    catch (e) { $("#panel-link").textContent = "Link in the address bar"; }
    setTimeout(() => { $("#panel-link").textContent = "Copy link"; }, 1500);
  });
  $("#help-btn").addEventListener("click", () => { $("#help").hidden = false; });
  $("#help-close").addEventListener("click", () => { $("#help").hidden = true; });
  $("#help").addEventListener("click", (e) => { if (e.target.id === "help") $("#help").hidden = true; });
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA")) return;
    const key = e.key.toLowerCase();
    if (key === "z" && !e.shiftKey) { e.preventDefault(); undo(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (key === "c") { clearInk(); showNote(null); changed(); }
    else if (key === "p") setTool("pen");
    else if (key === "e") setTool("eraser");
    else if (key === "r") loadSample(0, true);
    else if (e.key === "[") setBrush(state.brush - 0.25);
    else if (e.key === "]") setBrush(state.brush + 0.25);
    else if (e.key === "Escape") { if (!$("#help").hidden) $("#help").hidden = true; else closePanel(); }
    else if (e.key === "?") $("#help").hidden = !$("#help").hidden;
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(scheduleRerender, 80); });
}
function methodChanged() {
  const info = methodInfo(state.method);
  $("#cam-field").hidden = !info.cam;
  $("#method-summary").textContent = info.summary || "";
}

/* --- start ----------------------------------------------------------------------------- */
async function start() {
  const params = new URLSearchParams(location.search);
  if (params.get("embed")) document.body.classList.add("embed");
  try {
    state.config = await api("/api/config");
  } catch (e) {
    showError(`cannot reach the convlens server: ${e.message}`);
    return;
  }
  const cfg = state.config;
  state.luts = { sequential: lutFrom(cfg.colormaps.sequential), diverging: lutFrom(cfg.colormaps.diverging) };
  state.spec = cfg.models[0].input;
  $("#input-spec").textContent = cfg.models[0].input.describe;
  $("#models-label").textContent = cfg.models.map((m) => m.label).join("   vs   ");
  const wanted = params.get("method");
  if (wanted && cfg.methods.some((m) => m.name === wanted)) state.method = wanted;
  const target = params.get("target");
  if (target != null && /^\d+$/.test(target) && +target < cfg.models[0].class_names.length) state.target = +target;
  if (params.get("layer")) state.camLayer = params.get("layer");
  const holder = $("#models");
  holder.style.setProperty("--n-models", String(cfg.models.length));
  for (const mc of cfg.models) {
    const m = buildModel(mc);
    state.models.push(m);
    holder.append(m.col);
  }
  setupCanvas();
  setupControls();
  connect();
  const unit = params.get("unit");
  const sample = params.get("sample");
  if (sample != null && /^\d+$/.test(sample)) await loadSample(+sample, false);
  else if (cfg.models[0].dataset) await loadSample(0, false);
  else changed();
  if (unit) {
    const key = params.get("model") || state.models[0].key;
    const u = parseUnit(modelOf(key), unit);
    if (u && u.kind === "class") selectClass(key, u.channel);
    else if (u) selectUnit(key, unit);
    else showError(`cannot read unit ${JSON.stringify(unit)} from the address; write e.g. conv2d_3:12`);
  }
}
start();
