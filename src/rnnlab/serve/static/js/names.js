// The Names tab: three cells side by side (with each one's saliency), the answer and the gates
// character by character, and a step through time with the cell's equations at the chosen step.
// Every number shown comes from the server (predict, saliency, trace: rnnlab.nn's own computation);
// this module only writes them into the equations' text.
import { $, api, busy, colorBar, el, heatmap, labelName, modelsOf, probBar, showError, t, transpose } from "./core.js";
import { createStepper } from "./stepper.js";

let namesState = null; // {name, answers, saliency, trace, selected}
let namesTicket = 0; // only the latest question's answer is shown
let stepper = null; // the step-through view over namesState.trace (setUpStepper)

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
      namesState = { name, answers, saliency, trace, selected: trace.run };
      renderNames(trace.chars.length - 1);
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

export function renderNames(at) { // at: a new trace, shown from that step
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
  if (at === undefined) stepper.render(); else stepper.show(trace, at);
}

// The names' own figure over the steps: what the model would answer had the name stopped there.
function classProbabilities(trace, step) {
  heatmap($("names-probs"), transpose(trace.probabilities), trace.labels.map(labelName), trace.chars,
    { values: true, cellW: 40, cellH: 24, left: 150, mark: step });
  $("probs-bar").replaceChildren(colorBar(false, 0, 1));
}
export function setUpStepper() {
  stepper = createStepper({ panel: "names-step", p: "step", gates: "names-gates", unitsList: "units-list" },
    () => namesState && namesState.trace, classProbabilities);
}

