// The Gradients tab, live: pick a cell, T, the recurrent weights' spectral radius and the hidden size;
// the server measures ||dL_T/dh_k|| (POST /api/gradients/flow, rnnlab.gradflow's own measurement) and
// the page draws it against T - k on a log scale, beside the earlier measurements (up to 5).
// The form's defaults and ranges come from GET /api/gradients (declared once: FlowOptions).
import { $, api, canvasFont, busy, el, showError, state, t } from "./core.js";

const COLORS = ["#2b6cb0", "#dd6b20", "#2f855a", "#805ad5", "#c53030"];
let options = null, cells = null, curves = [], timer = null, ticket = 0, loading = null;

// A cell's name in the menu: a student's own (rnnlab serve --lab: "lab-lstm") as "yours" beside rnnlab's.
function cellName(c) {
  if (!c.startsWith("lab-")) return t(`flow_${c}`);
  return state.lang === "zh" ? `你的 ${t(`flow_${c.slice(4)}`)}（实验）` : `your ${t(`flow_${c.slice(4)}`)} (lab)`;
}
function control(o) {
  const id = `flow-${o.name}`;
  let input;
  if (o.choices) {
    const offered = o.name === "cell" && cells ? cells : o.choices; // the server says which it has
    input = el("select", { id }, ...offered.map((c) => el("option", { value: c, selected: c === o.default }, o.name === "cell" ? cellName(c) : t(`flow_${c}`))));
  } else if (o.name === "seed") {
    input = el("input", { id, type: "number", min: o.min, max: o.max, value: o.default, class: "narrow" });
  } else {
    // step before value: a range input snaps its value to the step it has when the value is set
    input = el("input", { id, type: "range", min: o.min, max: o.max, step: o.type === "float" ? 0.05 : 1, value: o.default });
  }
  input.addEventListener("input", () => { showValue(o); schedule(); });
  const label = el("label", { title: state.lang === "zh" ? o.zh : o.help }, el("span", { "data-flow-label": o.name }, t(`flow_opt_${o.name}`)), " ", input);
  if (input.type === "range") label.append(" ", el("output", { id: `${id}-value` }));
  return label;
}
function showValue(o) {
  const out = $(`flow-${o.name}-value`);
  if (out) out.textContent = o.type === "float" ? Number($(`flow-${o.name}`).value).toFixed(2) : $(`flow-${o.name}`).value;
}
export function setUpGradients() { // once, when the tab is first shown
  if (!loading) loading = build();
  return loading;
}
async function build() {
  try {
    const described = await api("/api/gradients");
    options = described.options;
    cells = described.cells || null;
  } catch (e) {
    showError("flow-error", e);
    loading = null;
    return;
  }
  const button = el("button", { type: "submit", id: "flow-measure" }, t("measure"));
  const clear = el("button", { type: "button", id: "flow-clear", class: "secondary", onclick: () => { curves = []; drawFlow(); } }, t("clear"));
  $("flow-form").replaceChildren(...options.map(control), button, clear);
  options.forEach(showValue);
  $("flow-form").addEventListener("submit", (ev) => { ev.preventDefault(); measure(); });
  await measure();
}
function schedule() { clearTimeout(timer); timer = setTimeout(measure, 250); }

export async function measure() {
  if (!options) return;
  const body = {};
  for (const o of options) {
    const v = $(`flow-${o.name}`).value;
    body[o.name] = o.choices ? v : o.type === "int" ? Math.round(Number(v)) : Number(v);
  }
  const mine = ++ticket;
  $("flow-error").textContent = "";
  await busy($("flow-measure"), async () => {
    try {
      const r = await api("/api/gradients/flow", body);
      if (mine !== ticket) return;
      const key = `${r.cell}|${r.T}|${r.radius}|${r.hidden}|${r.seed}`;
      r.key = key;
      curves = [r, ...curves.filter((c) => c.key !== key)].slice(0, COLORS.length);
      drawFlow();
    } catch (e) {
      if (mine !== ticket) return;
      showError("flow-error", e);
    }
  });
}

export function drawFlow() {
  const canvas = $("flow-chart");
  if (!canvas) return;
  const W = Math.max(280, Math.min(760, canvas.parentElement.clientWidth - 4)), H = 320, L = 58, R = 12, T = 14, B = 40;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = W * dpr; canvas.height = H * dpr; canvas.style.width = `${W}px`; canvas.style.height = `${H}px`;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.font = canvasFont();
  canvas.dataset.curves = String(curves.length);
  const logs = (v) => v.map((x) => Math.log10(Math.max(x, 1e-300)));
  const series = curves.flatMap((c, k) => [[c, logs(c.h), COLORS[k], false], ...(c.C ? [[c, logs(c.C), COLORS[k], true]] : [])]);
  if (!series.length) return;
  const xMax = Math.max(...curves.map((c) => c.T));
  let y0 = Math.floor(Math.min(...series.flatMap((s) => s[1]))), y1 = Math.ceil(Math.max(...series.flatMap((s) => s[1])));
  if (y1 - y0 < 2) { y0 -= 1; y1 += 1; }
  const X = (d) => L + d / xMax * (W - L - R), Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  g.strokeStyle = "#d9dee5"; g.fillStyle = "#627080"; g.textAlign = "right"; g.textBaseline = "middle";
  const every = Math.max(1, Math.ceil((y1 - y0) / 8));
  for (let y = y0; y <= y1; y += every) {
    g.beginPath(); g.moveTo(L, Y(y)); g.lineTo(W - R, Y(y)); g.stroke();
    g.fillText(`1e${y}`, L - 6, Y(y));
  }
  g.textAlign = "center"; g.textBaseline = "top";
  const step = Math.max(1, Math.ceil(xMax / 8 / 5) * 5);
  for (let d = 0; d <= xMax; d += step) g.fillText(String(d), X(d), H - B + 6);
  g.fillText(t("flow_x"), (L + W - R) / 2, H - 16);
  g.save(); g.translate(12, (T + H - B) / 2); g.rotate(-Math.PI / 2); g.fillText(t("flow_y"), 0, -6); g.restore();
  for (const [c, ys, color, dashed] of series.reverse()) {
    g.strokeStyle = color; g.lineWidth = c === curves[0] ? 2.5 : 1.5; g.setLineDash(dashed ? [6, 4] : []);
    g.beginPath();
    ys.forEach((y, k) => { const x = X(c.distance[k]); if (k) g.lineTo(x, Y(y)); else g.moveTo(x, Y(y)); });
    g.stroke();
  }
  g.setLineDash([]);
  $("flow-legend").replaceChildren(...curves.map((c, k) => el("div", { class: "legend-row" + (k ? "" : " newest") },
    el("span", { class: "swatch", style: `background:${COLORS[k]}` }), " ", legendText(c))));
  const r = curves[0];
  $("flow-reading").textContent = t("flow_reading", { rate: r.rate.toFixed(3), verdict: t(`verdict_${r.verdict}`),
    first: r.h[0].toExponential(1), last: r.h[r.h.length - 1].toExponential(1), T: r.T, ms: r.ms });
}
function legendText(c) {
  const rate = `×${c.rate.toFixed(3)}/${t("per_step")} (${t(`verdict_${c.verdict}`)})`;
  const cell = c.C ? ` · c_t ×${c.rate_C.toFixed(3)} (${t("dashed")})` : "";
  return `${cellName(c.cell)} · ρ ${c.radius} · T ${c.T} · H ${c.hidden} · seed ${c.seed}: h ${rate}${cell}`;
}
export function renderGradients() { // the language changed: the form's words and the chart's
  if (!options) return;
  for (const o of options) {
    const label = document.querySelector(`[data-flow-label="${o.name}"]`);
    if (label) label.textContent = t(`flow_opt_${o.name}`);
    if (o.choices) for (const opt of $(`flow-${o.name}`).options) opt.textContent = o.name === "cell" ? cellName(opt.value) : t(`flow_${opt.value}`);
  }
  $("flow-measure").textContent = t("measure");
  $("flow-clear").textContent = t("clear");
  drawFlow();
}
