// The Names tab: three cells side by side (with each one's saliency), the answer and the gates
// character by character, and a step through time with the cell's equations at the chosen step.
// Every number shown comes from the server (predict, saliency, trace: rnnlab.nn's own computation);
// this module only writes them into the equations' text.
import { $, api, busy, colorBar, el, fmt, heatmap, labelName, modelsOf, probBar, shadedChars, showError, t, transpose } from "./core.js";

let namesState = null; // {name, answers, saliency, trace, selected}
let namesTicket = 0; // only the latest question's answer is shown
const stepper = { t: 0, units: [0, 1, 2], timer: null };

export async function predictNames(ev) {
  if (ev) ev.preventDefault();
  const name = $("names-input").value.trim();
  $("names-error").textContent = "";
  if (!name) { $("names-error").textContent = t("empty_input"); return; }
  const selected = $("names-model").value;
  // The selected model, then the bundled trio (RNN, LSTM, GRU) or other names runs, side by side.
  const ids = [selected, ...modelsOf("names").filter((r) => r.kind === "bundled").map((r) => r.id)];
  const more = modelsOf("names").map((r) => r.id);
  const compare = [...new Set(ids.length > 1 ? ids : ids.concat(more))].filter(Boolean).slice(0, 4);
  const ticket = ++namesTicket;
  await busy(document.querySelector("#names-form button[type=submit]"), async () => {
    try {
      const [answers, saliency, trace] = await Promise.all([
        Promise.all(compare.map((id) => api("/api/names/predict", { names: [name], top: 3, run: id }))),
        Promise.all(compare.map((id) => api("/api/names/saliency", { name, run: id }).catch(() => null))),
        api("/api/names/trace", { name, top: 5, run: selected || undefined })]);
      if (ticket !== namesTicket) return;
      stopPlay();
      stepper.t = trace.chars.length - 1;
      stepper.units = stepper.units.filter((u) => u < trace.hidden[0].length);
      if (!stepper.units.length) stepper.units = [0];
      namesState = { name, answers, saliency, trace, selected: trace.run };
      renderNames();
    } catch (e) {
      if (ticket !== namesTicket) return;
      namesState = null; // an error replaces the previous answer
      $("names-cards").replaceChildren();
      $("names-trace").hidden = true;
      showError("names-error", e);
    }
  });
}

function saliencyStrip(s) {
  if (!s) return null;
  const top = Math.max(1e-12, ...s.saliency);
  return el("div", { class: "saliency", "data-run": s.run, title: t("saliency_title") },
    ...s.chars.map((c, i) => el("span", { class: "sal", style: `--s:${(s.saliency[i] / top).toFixed(3)}`,
      title: `${c}: ${s.saliency[i].toExponential(2)}` }, c === " " ? "\u00a0" : c)));
}

export function renderNames() {
  if (!namesState) return;
  const { answers, saliency, trace } = namesState;
  $("names-cards").replaceChildren(...answers.map((a, k) => {
    const r = a.results[0];
    return el("div", { class: "card" + (a.run === namesState.selected ? " selected" : ""), "data-run": a.run,
      onclick: () => { $("names-model").value = a.run; predictNames(); } },
      el("h3", {}, `${a.run}`, el("span", { class: "muted" }, a.cell ? ` · ${a.cell.toUpperCase()}` : "")),
      ...r.top.map((x) => probBar(labelName(x.label), x.probability)),
      saliencyStrip(saliency[k]),
      r.unknown_characters.length ? el("div", { class: "unknown" }, `${t("unknown")}: ${r.unknown_characters.join(" ")}`) : null);
  }));
  $("names-saliency-note").hidden = !saliency.some(Boolean);
  $("names-trace").hidden = false;
  $("names-trace-model").textContent = `${trace.run} · ${(trace.cell || "").toUpperCase()}`;
  renderStep();
}

// --- the maps and the step ------------------------------------------------------------------
const MAP_TITLES = { input: "gate_input", forget: "gate_forget", output: "gate_output", reset: "gate_reset",
  update: "gate_update", candidate: "candidate", cell: "cell_state", hidden: "hidden" };

function mapsOf(trace) { // [key, (T, H) matrix, diverging?]: the gates (0..1), then c_t beside h_t
  const maps = Object.entries(trace.gates || {}).map(([k, m]) => [k, m, false]);
  if (trace.cell_state) maps.push(["cell", trace.cell_state, true]);
  maps.push(["hidden", trace.hidden, true]);
  return maps;
}
function pick(unit, step) { // a click on a map: that unit at that step
  stepper.t = step;
  stepper.units = [unit, ...stepper.units.filter((u) => u !== unit)].slice(0, 6);
  renderStep();
}
function renderMaps(trace) {
  heatmap($("names-probs"), transpose(trace.probabilities), trace.labels.map(labelName), trace.chars,
    { values: true, cellW: 40, cellH: 24, left: 150, mark: stepper.t });
  $("probs-bar").replaceChildren(colorBar(false, 0, 1));
  const panels = [];
  for (const [key, m, div] of mapsOf(trace)) {
    if (!m || !m.length) continue;
    const units = m[0].length;
    const canvas = el("canvas", { "data-gate": key });
    const lo = div ? (key === "cell" ? Math.min(-1, ...m.flat()).toFixed(1) : -1) : 0;
    const hi = div ? (key === "cell" ? Math.max(1, ...m.flat()).toFixed(1) : 1) : 1;
    panels.push(el("div", { class: "panel" }, el("h3", {}, t(MAP_TITLES[key] || key),
      el("span", { class: "muted" }, ` · ${units} ${t("units")}`)), canvas, colorBar(div, lo, hi)));
    const scaled = key === "cell" ? transpose(m).map((row) => row.map((v) => v / Math.max(Math.abs(lo), Math.abs(hi)))) : transpose(m);
    heatmap(canvas, scaled, [...Array(units).keys()].map((i) => `${i}`), trace.chars,
      { diverging: div, cellW: 22, cellH: Math.max(3, Math.min(8, Math.floor(520 / units))), left: 34, mark: stepper.t,
        onpick: pick, values: false, raw: key === "cell" ? transpose(m) : null });
  }
  if (!Object.keys(trace.gates || {}).length) panels.unshift(el("p", { class: "note" }, t("no_gates")));
  $("names-gates").replaceChildren(...panels);
}

function renderStep() {
  if (!namesState) return;
  const trace = namesState.trace, T = trace.chars.length;
  stepper.t = Math.max(0, Math.min(T - 1, stepper.t));
  const slider = $("step-slider");
  slider.max = T - 1; slider.value = stepper.t;
  $("step-chars").replaceChildren(...trace.chars.map((c, i) => el("span", { class: "step-ch" + (i === stepper.t ? " now" : ""),
    onclick: () => { stepper.t = i; renderStep(); } }, c === " " ? "\u00a0" : c)));
  $("step-at").textContent = t("step_at", { t: stepper.t + 1, n: T, c: trace.chars[stepper.t] });
  $("step-units").value = stepper.units.join(" ");
  $("step-play").textContent = stepper.timer ? "❚❚" : "▶";
  $("step-play").title = stepper.timer ? t("pause") : t("play");
  renderMaps(trace);
  renderUnits(trace);
  $("step-equations").replaceChildren(...stepper.units.map((u) => unitCard(trace, stepper.t, u)));
}

// --- trace a unit: the name shaded by each unit's state, the units that move most first ------------
const UNITS_SHOWN = 8;
function renderUnits(trace) {
  const states = trace.cell_state || trace.hidden; // (T, H): what the unit carries from letter to letter
  const H = states[0].length, range = (u) => Math.max(...states.map((r) => r[u])) - Math.min(...states.map((r) => r[u]));
  const order = [...Array(H).keys()].sort((a, b) => range(b) - range(a)).slice(0, UNITS_SHOWN);
  $("units-list").replaceChildren(...order.map((u) => el("div", {
    class: "unit-row" + (stepper.units.includes(u) ? " picked" : ""), "data-unit": u, role: "button", tabindex: 0,
    title: t("unit_follow"), onclick: () => pick(u, stepper.t) },
  el("span", { class: "unit-name" }, `${t("unit")} ${u}`),
  shadedChars(trace.chars, states.map((r) => r[u]), stepper.t, trace.cell_state ? "c" : "h"),
  el("span", { class: "muted" }, ` ${t("unit_range")} ${fmt(range(u), 2)}`))));
}

// --- the equations of one unit at step t, with the server's numbers written in --------------
const n3 = (v) => (v < 0 ? `(${fmt(v)})` : fmt(v));
function line(lhs, rhs, value, key) {
  return el("div", { class: "eq", "data-q": key }, el("span", { class: "lhs" }, lhs), " = ", el("span", {}, rhs),
    value === undefined ? "" : el("span", {}, " = ", el("strong", { class: "val" }, fmt(value))));
}
function unitCard(trace, s, u) {
  const at = (m, k = s) => (m && k >= 0 ? m[k][u] : 0); // the state before the first step is 0
  const g = trace.gates || {}, rows = [];
  if (trace.cell === "lstm") {
    const [i, f, gg, o, c, h] = [at(g.input), at(g.forget), at(trace.candidate), at(g.output), at(trace.cell_state), at(trace.hidden)];
    const cPrev = at(trace.cell_state, s - 1);
    rows.push(line("i_t", "σ(W_i x_t + U_i h_{t−1} + b_i)", i, "i"), line("f_t", "σ(W_f x_t + U_f h_{t−1} + b_f)", f, "f"),
      line("g_t", "tanh(W_g x_t + U_g h_{t−1} + b_g)", gg, "g"), line("o_t", "σ(W_o x_t + U_o h_{t−1} + b_o)", o, "o"),
      line("c_t", `f_t·c_{t−1} + i_t·g_t = ${n3(f)}·${n3(cPrev)} + ${n3(i)}·${n3(gg)}`, c, "c"),
      line("h_t", `o_t·tanh(c_t) = ${n3(o)}·tanh(${fmt(c)})`, h, "h"));
  } else if (trace.cell === "gru") {
    const [r, z, n, h] = [at(g.reset), at(g.update), at(trace.candidate), at(trace.hidden)];
    const hPrev = at(trace.hidden, s - 1);
    rows.push(line("r_t", "σ(W_r x_t + U_r h_{t−1} + b_r)", r, "r"), line("z_t", "σ(W_z x_t + U_z h_{t−1} + b_z)", z, "z"),
      line("n_t", "tanh(W_n x_t + b_n + r_t·(U_n h_{t−1} + b_hn))", n, "n"),
      line("h_t", `(1 − z_t)·n_t + z_t·h_{t−1} = (1 − ${n3(z)})·${n3(n)} + ${n3(z)}·${n3(hPrev)}`, h, "h"));
  } else {
    const phi = trace.nonlinearity || "tanh";
    rows.push(line("h_{t−1}", t("previous_state"), at(trace.hidden, s - 1), "hprev"),
      line("h_t", `${phi}(W x_t + U h_{t−1} + b)`, at(trace.hidden), "h"));
  }
  return el("div", { class: "unit-card", "data-unit": u },
    el("h4", {}, `${t("unit")} ${u}`, el("span", { class: "muted" }, ` · t = ${s + 1} (${trace.chars[s]})`)), ...rows);
}

// --- the controls ----------------------------------------------------------------------------
function stopPlay() { if (stepper.timer) { clearInterval(stepper.timer); stepper.timer = null; } }
function move(to) { stopPlay(); stepper.t = to; renderStep(); }
export function setUpStepper() {
  $("step-first").addEventListener("click", () => move(0));
  $("step-prev").addEventListener("click", () => move(stepper.t - 1));
  $("step-next").addEventListener("click", () => move(stepper.t + 1));
  $("step-slider").addEventListener("input", () => move(Number($("step-slider").value)));
  $("step-play").addEventListener("click", () => {
    if (!namesState) return;
    if (stepper.timer) { stopPlay(); renderStep(); return; }
    const T = namesState.trace.chars.length;
    if (stepper.t >= T - 1) stepper.t = -1;
    const tick = () => {
      if (!namesState || stepper.t >= namesState.trace.chars.length - 1) { stopPlay(); renderStep(); return; }
      stepper.t += 1;
      renderStep();
    };
    stepper.timer = setInterval(tick, 700);
    tick();
  });
  $("step-units").addEventListener("change", () => {
    if (!namesState) return;
    const H = namesState.trace.hidden[0].length;
    const units = [...new Set(($("step-units").value.match(/\d+/g) || []).map(Number).filter((u) => u < H))].slice(0, 6);
    stepper.units = units.length ? units : [0];
    renderStep();
  });
}
