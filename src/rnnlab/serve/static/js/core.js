// rnnlab serve: what the page's views share (plain JS modules, no library, nothing fetched from elsewhere).
import { ERRORS_ZH, I18N, LANGUAGES_ZH } from "./i18n.js";

// What every view shares: the language, the models and runs (GET /api/runs), the tasks' declarations
// (GET /api/tasks) and the tabs.
export const state = {
  lang: localStorage.getItem("rnnlab-lang") || ((navigator.language || "").startsWith("zh") ? "zh" : "en"),
  runs: { runs: [], defaults: {} },
  tasks: {}, // task -> {name, help, monitor, verbs: {verb: {help, zh, input, options: [...]}}}
  tabs: ["names", "poems", "sentiment", "runs", "gradients"], // a task without a view of its own gets a tab (tasks.js)
};

export function t(key, vars) {
  let s = (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
  return s;
}
export function labelName(label) {
  return state.lang === "zh" && LANGUAGES_ZH[label] ? `${LANGUAGES_ZH[label]} ${label}` : label;
}
export function sentimentName(label, labels) {
  const binary = labels && labels.length === 2 && labels.includes("0") && labels.includes("1");
  if (!binary) return label;
  return `${label === "1" ? t("positive") : t("negative")} (${label})`;
}


// --- small helpers --------------------------------------------------------------------------
export const $ = (id) => document.getElementById(id);
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}
// A busy server (503: the task's queue is full) is asked again after its Retry-After (1-10 s, with
// up to 30 % jitter so that a class's pages do not come back together), at most RETRIES times, with
// "busy, retrying (n/5)" shown from the first refusal until the request is answered or fails; then
// its error is shown like any other.
const RETRIES = 5;
let retrying = 0; // requests refused at least once and not yet answered
function busyNote(attempt) { // attempt 1..RETRIES: (still) waiting to ask again; 0: this request is done
  let note = $("busy-note");
  if (!note) {
    note = el("div", { id: "busy-note", role: "status", "aria-live": "polite", hidden: true });
    document.body.append(note);
  }
  if (attempt) note.textContent = t("busy_retrying", { n: attempt, most: RETRIES });
  note.hidden = retrying <= 0;
}
export async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let refused = false;
  try {
    for (let attempt = 0; ; attempt++) {
      let res;
      try {
        res = await fetch(path, options);
      } catch (e) {
        throw new Error("the server does not answer (is rnnlab serve still running?)");
      }
      let data = null;
      try { data = await res.json(); } catch (e) { /* not JSON */ }
      if (res.status === 503 && attempt < RETRIES) {
        const after = Math.min(10, Math.max(1, Number.parseInt(res.headers.get("Retry-After"), 10) || 1));
        if (!refused) { refused = true; retrying++; }
        busyNote(attempt + 1);
        await new Promise((done) => setTimeout(done, after * 1000 * (1 + 0.3 * Math.random())));
        continue;
      }
      if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
      return data;
    }
  } finally {
    if (refused) { retrying--; busyNote(0); }
  }
}
// A server's one-line error in the page's language (the known phrasings; the English stays as the tooltip).
export function showError(id, e) {
  const node = $(id), message = e && e.message !== undefined ? e.message : String(e || "");
  node.textContent = translateError(message);
  node.title = state.lang === "zh" ? message : "";
}
export function translateError(message) {
  if (state.lang !== "zh") return message;
  let out = message;
  for (const [pattern, zh] of ERRORS_ZH) out = out.replace(pattern, zh);
  return out;
}
export function fmt(p, digits = 3) { return p === null || p === undefined ? "" : Number(p).toFixed(digits); }
// A labelled bar; ``scale`` is the probability drawn full width (the largest of a list, so small ones stay visible).
export function probBar(label, p, extraClass, scale) {
  const width = Math.max(0, Math.min(1, (p || 0) / (scale || 1))) * 100;
  return el("div", { class: "pbar " + (extraClass || "") },
    el("span", { class: "label" }, label),
    el("div", { class: "track" }, el("div", { class: "fill", style: `width:${width}%` })),
    el("span", { class: "num" }, fmt(p)));
}
// While a request runs: the button says "working…" and is disabled, and a bar runs at the top of the page.
let running = 0;
export async function busy(button, fn) {
  const label = button.textContent;
  button.disabled = true;
  button.classList.add("working");
  button.textContent = t("working");
  document.body.classList.toggle("busy", ++running > 0);
  try { await fn(); } finally {
    button.disabled = false;
    button.classList.remove("working");
    if (button.textContent === t("working")) button.textContent = label;
    document.body.classList.toggle("busy", --running > 0);
  }
}

// --- the models of each task ----------------------------------------------------------------
export async function loadModels() {
  state.runs = await api("/api/runs");
  for (const task of Object.keys(state.tasks).filter((name) => $(`${name}-model`))) {
    const select = $(`${task}-model`);
    const current = select.value;
    select.replaceChildren(...state.runs.runs.filter((r) => r.task === task).map((r) =>
      el("option", { value: r.id }, r.id + (r.cell ? ` (${r.cell})` : ""))));
    select.value = current || state.runs.defaults[task] || "";
    if (!select.value && select.options.length) select.selectedIndex = 0;
  }
}
export function modelsOf(task) { return state.runs.runs.filter((r) => r.task === task); }

// --- heatmaps on canvas ---------------------------------------------------------------------
export function sequential(v) { // 0 -> white, 1 -> blue
  const x = Math.max(0, Math.min(1, v));
  return `rgb(${Math.round(255 - 212 * x)},${Math.round(255 - 147 * x)},${Math.round(255 - 79 * x)})`;
}
export function diverging(v) { // -1 red, 0 white, +1 blue
  const x = Math.max(-1, Math.min(1, v));
  if (x < 0) return `rgb(${Math.round(255 + (197 - 255) * -x)},${Math.round(255 + (48 - 255) * -x)},${Math.round(255 + (48 - 255) * -x)})`;
  return sequential(x);
}
// Characters shaded by one unit's state at each of them (red below zero, blue above, scaled to the
// largest |value|), as LSTMVis and char-rnn show a unit; ``now``: the index to underline (or -1).
export function shadedChars(chars, values, now = -1, name = "h") {
  const scale = Math.max(...values.map(Math.abs)) || 1;
  return el("span", { class: "unit-text" }, ...chars.map((c, i) => el("span", {
    class: "unit-ch" + (i === now ? " now" : ""), style: `background:${diverging(values[i] / scale)}`,
    title: `${name}_${i + 1} = ${fmt(values[i])}` }, c === " " ? "\u00a0" : c)));
}
// matrix[row][col]; columns are the name's characters.
export function heatmap(canvas, matrix, rowLabels, colLabels, opts) {
  $("tooltip").hidden = true; // the map under the tooltip is being replaced
  const cw = opts.cellW || 30, ch = opts.cellH || 22, left = opts.left || 110, top = 22;
  const rows = matrix.length, cols = rows ? matrix[0].length : 0;
  const dpr = window.devicePixelRatio || 1;
  const w = left + cols * cw + 4, h = top + rows * ch + 4;
  canvas.width = w * dpr; canvas.height = h * dpr;
  canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.font = canvasFont();
  g.textBaseline = "middle";
  g.fillStyle = "#1f2933";
  g.textAlign = "center";
  colLabels.forEach((c, j) => g.fillText(c, left + j * cw + cw / 2, top / 2));
  g.textAlign = "right";
  for (let i = 0; i < rows; i++) {
    if (rowLabels && (ch >= 10 || i % Math.ceil(10 / ch) === 0)) g.fillText(rowLabels[i], left - 6, top + i * ch + ch / 2);
    for (let j = 0; j < cols; j++) {
      const v = matrix[i][j];
      g.fillStyle = opts.diverging ? diverging(v) : sequential(v);
      g.fillRect(left + j * cw, top + i * ch, cw - 1, ch - (ch > 4 ? 1 : 0));
      if (opts.values && ch >= 16) {
        g.fillStyle = v > 0.55 ? "#fff" : "#1f2933";
        g.textAlign = "center";
        g.fillText(v.toFixed(2), left + j * cw + cw / 2, top + i * ch + ch / 2);
        g.textAlign = "right";
      }
      g.fillStyle = "#1f2933";
    }
  }
  if (opts.mark !== undefined && opts.mark !== null && cols) { // the current step: a frame around its column
    g.strokeStyle = "#dd6b20"; g.lineWidth = 2;
    g.strokeRect(left + opts.mark * cw - 1, top - 1, cw + 1, rows * ch + 1);
  }
  const at = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [Math.floor((ev.clientY - r.top - top) / ch), Math.floor((ev.clientX - r.left - left) / cw)];
  };
  canvas.onclick = opts.onpick ? (ev) => {
    const [i, j] = at(ev);
    if (i >= 0 && j >= 0 && i < rows && j < cols) opts.onpick(i, j);
  } : null;
  canvas.onmousemove = (ev) => {
    const [i, j] = at(ev);
    const tip = $("tooltip");
    if (!canvas.isConnected || i < 0 || j < 0 || i >= rows || j >= cols) { tip.hidden = true; return; }
    tip.textContent = `${rowLabels ? rowLabels[i] : i} · ${colLabels[j]} (${j + 1}): ${(opts.raw || matrix)[i][j].toFixed(3)}`;
    tip.style.left = `${ev.clientX + 12}px`; tip.style.top = `${ev.clientY + 12}px`;
    tip.hidden = false;
  };
  canvas.onmouseleave = () => { $("tooltip").hidden = true; };
}
// A colour bar for a heatmap: the scale's colours from lo to hi, with its ends and middle written.
export function colorBar(divergingScale, lo, hi) {
  const stops = divergingScale ? [-1, -0.5, 0, 0.5, 1].map(diverging) : [0, 0.5, 1].map(sequential);
  return el("div", { class: "colorbar", "aria-hidden": "true" },
    el("span", {}, String(lo)),
    el("span", { class: "ramp", style: `background:linear-gradient(to right,${stops.join(",")})` }),
    el("span", {}, String(hi)));
}
// The canvases' type: larger in projector mode.
export function canvasFont() { return `${document.body.classList.contains("projector") ? 15 : 12}px system-ui, sans-serif`; }
export function transpose(m) { return m.length ? m[0].map((_, j) => m.map((row) => row[j])) : []; }
