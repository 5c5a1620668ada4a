// The Names tab: three cells side by side, and the answer and the gates character by character.
import { $, api, busy, el, heatmap, labelName, modelsOf, probBar, t, transpose } from "./core.js";

// --- Names ----------------------------------------------------------------------------------
let namesState = null; // {name, answers, trace, selected}
let namesTicket = 0; // only the latest question's answer is shown
export async function predictNames(ev) {
  if (ev) ev.preventDefault();
  const name = $("names-input").value.trim();
  $("names-error").textContent = "";
  if (!name) return;
  const selected = $("names-model").value;
  // The selected model, then the bundled trio (RNN, LSTM, GRU) or other names runs, side by side.
  const ids = [selected, ...modelsOf("names").filter((r) => r.kind === "bundled").map((r) => r.id)];
  const more = modelsOf("names").map((r) => r.id);
  const compare = [...new Set(ids.length > 1 ? ids : ids.concat(more))].filter(Boolean).slice(0, 4);
  const ticket = ++namesTicket;
  await busy(document.querySelector("#names-form button[type=submit]"), async () => {
    try {
      const answers = await Promise.all(compare.map((id) => api("/api/names/predict", { names: [name], top: 3, run: id })));
      const trace = await api("/api/names/trace", { name, top: 5, run: selected || undefined });
      if (ticket !== namesTicket) return;
      namesState = { name, answers, trace, selected: trace.run };
      renderNames();
    } catch (e) {
      $("names-error").textContent = e.message;
    }
  });
}
export function renderNames() {
  if (!namesState) return;
  const { answers, trace } = namesState;
  $("names-cards").replaceChildren(...answers.map((a) => {
    const r = a.results[0];
    const card = el("div", { class: "card" + (a.run === namesState.selected ? " selected" : ""), "data-run": a.run,
      onclick: () => { $("names-model").value = a.run; predictNames(); } },
      el("h3", {}, `${a.run}`, el("span", { class: "muted" }, a.cell ? ` · ${a.cell.toUpperCase()}` : "")),
      ...r.top.map((x) => probBar(labelName(x.label), x.probability)),
      r.unknown_characters.length ? el("div", { class: "unknown" }, `${t("unknown")}: ${r.unknown_characters.join(" ")}`) : null);
    return card;
  }));
  $("names-trace").hidden = false;
  $("names-trace-model").textContent = `${trace.run} · ${(trace.cell || "").toUpperCase()}`;
  heatmap($("names-probs"), transpose(trace.probabilities), trace.labels.map(labelName), trace.chars,
    { values: true, cellW: 40, cellH: 24, left: 150 });
  const panels = [];
  const gateKeys = { input: "gate_input", forget: "gate_forget", output: "gate_output", reset: "gate_reset", update: "gate_update" };
  const entries = Object.entries(trace.gates || {});
  const all = entries.concat([["hidden", trace.hidden]]);
  for (const [gate, m] of all) {
    if (!m || !m.length) continue;
    const units = m[0].length;
    const canvas = el("canvas", { "data-gate": gate });
    const title = gate === "hidden" ? t("hidden") : t(gateKeys[gate] || gate);
    panels.push(el("div", { class: "panel" }, el("h3", {}, title, el("span", { class: "muted" }, ` · ${units} ${t("units")}`)), canvas));
    heatmap(canvas, transpose(m), [...Array(units).keys()].map((i) => `${i}`), trace.chars,
      { diverging: gate === "hidden", cellW: 22, cellH: Math.max(2, Math.min(8, Math.floor(400 / units))), left: 34 });
  }
  if (!entries.length) panels.unshift(el("p", { class: "note" }, t("no_gates")));
  $("names-gates").replaceChildren(...panels);
}
