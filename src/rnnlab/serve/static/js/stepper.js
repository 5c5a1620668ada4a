// Step through time: play / step controls over a trace's characters, the gate and state maps with the
// current step framed, the units that react most, and one unit's equations with the server's numbers
// written in. One stepper per view (the Names tab's, the Poems tab's), each over its own elements.
// Every number comes from the server's trace (rnnlab.nn's own cell equations); nothing is computed here.
import { $, colorBar, el, fmt, heatmap, shadedChars, t, transpose } from "./core.js";

const MAP_TITLES = { input: "gate_input", forget: "gate_forget", output: "gate_output", reset: "gate_reset",
  update: "gate_update", candidate: "candidate", cell: "cell_state", hidden: "hidden" };
const UNITS_SHOWN = 8;

function mapsOf(trace) { // [key, (T, H) matrix, diverging?]: the gates (0..1), then c_t beside h_t
  const maps = Object.entries(trace.gates || {}).map(([k, m]) => [k, m, false]);
  if (trace.cell_state) maps.push(["cell", trace.cell_state, true]);
  maps.push(["hidden", trace.hidden, true]);
  return maps;
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

// The controls, built into ``panel`` with ids ``<p>-first`` ... (English text and data-i18n keys, as the
// page's own elements: the language switch words them); ``extra``: an element put above the equations.
function controls(panel, p, extra) {
  const button = (id, label, text) => el("button", { type: "button", id: `${p}-${id}`, class: "secondary", "aria-label": label }, text);
  panel.replaceChildren(el("h3", { "data-i18n": "step_through" }, "Step through time"),
    el("div", { class: "row wrap" }, button("first", "first", "|◀"), button("prev", "previous", "◀"), button("play", "play", "▶"),
      button("next", "next", "▶|"), el("input", { type: "range", id: `${p}-slider`, min: 0, max: 0, value: 0, "aria-label": "step" }),
      el("span", { id: `${p}-chars`, class: "step-chars" })),
    el("div", { class: "row wrap" }, el("strong", { id: `${p}-at` }),
      el("label", {}, el("span", { "data-i18n": "units_pick" }, "units"), " ",
        el("input", { id: `${p}-units`, class: "narrow", value: "0 1 2", autocomplete: "off", inputmode: "numeric" })),
      el("span", { class: "note", "data-i18n": "units_hint" }, "(up to 6, e.g. 0 5 17; or tap a map)")),
    extra || null, el("div", { id: `${p}-equations`, class: "equations" }),
    el("p", { class: "note", "data-i18n": "equations_note" }, "Each number is what the server's trace computed (rnnlab.nn's own " +
      "cell equations) at this step; the page only writes them into the equations. σ is the sigmoid, · the product of one unit's values."));
}

// panel: the element the controls go into, their ids prefixed ``p`` (``step``: #step-first ...); gates, unitsList:
// the ids of the maps' container and of the units' list; trace(): the trace shown (or null); above(trace, t): the
// view's own figure over the steps (the names' class probabilities, the poem's next characters); extra: see controls.
export function createStepper({ panel, p, gates, unitsList, extra }, trace, above) {
  controls($(panel), p, extra);
  const ids = { first: `${p}-first`, prev: `${p}-prev`, play: `${p}-play`, next: `${p}-next`, slider: `${p}-slider`,
    chars: `${p}-chars`, at: `${p}-at`, units: `${p}-units`, equations: `${p}-equations`, gates, unitsList };
  const s = { t: 0, units: [0, 1, 2], timer: null };
  const pick = (unit, step) => { // a tap on a map or a unit's row: that unit at that step
    s.t = step;
    s.units = [unit, ...s.units.filter((u) => u !== unit)].slice(0, 6);
    render();
  };
  function renderMaps(tr) {
    if (above) above(tr, s.t);
    const panels = [];
    for (const [key, m, div] of mapsOf(tr)) {
      if (!m || !m.length) continue;
      const units = m[0].length;
      const canvas = el("canvas", { "data-gate": key });
      const lo = div ? (key === "cell" ? Math.min(-1, ...m.flat()).toFixed(1) : -1) : 0;
      const hi = div ? (key === "cell" ? Math.max(1, ...m.flat()).toFixed(1) : 1) : 1;
      panels.push(el("div", { class: "panel" }, el("h3", {}, t(MAP_TITLES[key] || key),
        el("span", { class: "muted" }, ` · ${units} ${t("units")}`)), canvas, colorBar(div, lo, hi)));
      const scaled = key === "cell" ? transpose(m).map((row) => row.map((v) => v / Math.max(Math.abs(lo), Math.abs(hi)))) : transpose(m);
      heatmap(canvas, scaled, [...Array(units).keys()].map((i) => `${i}`), tr.chars,
        { diverging: div, cellW: 22, cellH: Math.max(3, Math.min(8, Math.floor(520 / units))), left: 34, mark: s.t,
          onpick: pick, values: false, raw: key === "cell" ? transpose(m) : null });
    }
    if (!Object.keys(tr.gates || {}).length) panels.unshift(el("p", { class: "note" }, t("no_gates")));
    $(ids.gates).replaceChildren(...panels);
  }
  // trace a unit: the text shaded by each unit's state, the units that move most first
  function renderUnits(tr) {
    const states = tr.cell_state || tr.hidden; // (T, H): what the unit carries from character to character
    const H = states[0].length, range = (u) => Math.max(...states.map((r) => r[u])) - Math.min(...states.map((r) => r[u]));
    const order = [...Array(H).keys()].sort((a, b) => range(b) - range(a)).slice(0, UNITS_SHOWN);
    $(ids.unitsList).replaceChildren(...order.map((u) => el("div", {
      class: "unit-row" + (s.units.includes(u) ? " picked" : ""), "data-unit": u, role: "button", tabindex: 0,
      title: t("unit_follow"), onclick: () => pick(u, s.t) },
    el("span", { class: "unit-name" }, `${t("unit")} ${u}`),
    shadedChars(tr.chars, states.map((r) => r[u]), s.t, tr.cell_state ? "c" : "h"),
    el("span", { class: "muted" }, ` ${t("unit_range")} ${fmt(range(u), 2)}`))));
  }
  function render() {
    const tr = trace();
    if (!tr) return;
    const T = tr.chars.length;
    s.t = Math.max(0, Math.min(T - 1, s.t));
    const slider = $(ids.slider);
    slider.max = T - 1; slider.value = s.t;
    $(ids.chars).replaceChildren(...tr.chars.map((c, i) => el("span", { class: "step-ch" + (i === s.t ? " now" : ""),
      onclick: () => { s.t = i; render(); } }, c === " " ? "\u00a0" : c)));
    $(ids.at).textContent = t("step_at", { t: s.t + 1, n: T, c: tr.chars[s.t] });
    $(ids.units).value = s.units.join(" ");
    $(ids.play).textContent = s.timer ? "❚❚" : "▶";
    $(ids.play).title = s.timer ? t("pause") : t("play");
    renderMaps(tr);
    renderUnits(tr);
    $(ids.equations).replaceChildren(...s.units.map((u) => unitCard(tr, s.t, u)));
  }
  function stop() { if (s.timer) { clearInterval(s.timer); s.timer = null; } }
  function move(to) { stop(); s.t = to; render(); }
  $(ids.first).addEventListener("click", () => move(0));
  $(ids.prev).addEventListener("click", () => move(s.t - 1));
  $(ids.next).addEventListener("click", () => move(s.t + 1));
  $(ids.slider).addEventListener("input", () => move(Number($(ids.slider).value)));
  $(ids.play).addEventListener("click", () => {
    const tr = trace();
    if (!tr) return;
    if (s.timer) { stop(); render(); return; }
    if (s.t >= tr.chars.length - 1) s.t = -1;
    const tick = () => {
      const now = trace();
      if (!now || s.t >= now.chars.length - 1) { stop(); render(); return; }
      s.t += 1;
      render();
    };
    s.timer = setInterval(tick, 700);
    tick();
  });
  $(ids.units).addEventListener("change", () => {
    const tr = trace();
    if (!tr) return;
    const H = tr.hidden[0].length;
    const units = [...new Set(($(ids.units).value.match(/\d+/g) || []).map(Number).filter((u) => u < H))].slice(0, 6);
    s.units = units.length ? units : [0];
    render();
  });
  // a new trace: stop playing, start at step ``at``, keep the picked units that it has
  function show(tr, at) {
    stop();
    s.t = at;
    s.units = s.units.filter((u) => u < tr.hidden[0].length);
    if (!s.units.length) s.units = [0];
    render();
  }
  return { render, show, stop };
}
