// What the tasks declare (GET /api/tasks): the forms' defaults, ranges and choices, and a tab for a task
// without a view of its own.
import { $, api, busy, el, state, t } from "./core.js";

// --- what the tasks declare (GET /api/tasks): every form's defaults, ranges and choices ----------
function option(task, verb, name) {
  const v = ((state.tasks[task] || {}).verbs || {})[verb];
  return v ? v.options.find((o) => o.name === name) : undefined;
}
function declare(id, o, attrs) { // an input takes its limits and first value from an option's declaration
  const node = $(id);
  if (!node || !o) return;
  for (const [attr, key] of Object.entries(attrs)) if (o[key] !== undefined) node.setAttribute(attr, o[key]);
}
export function applyDeclarations(showTab) {
  const names = (((state.tasks.names || {}).verbs || {}).predict || {}).input;
  if (names) $("names-input").maxLength = names.max_chars;
  const reviews = (((state.tasks.sentiment || {}).verbs || {}).predict || {}).input;
  if (reviews) $("sentiment-input").maxLength = reviews.max_chars;
  declare("poems-begin", option("poems", "generate", "begin"), { maxlength: "max_chars" });
  declare("poems-acrostic", option("poems", "generate", "acrostic"), { maxlength: "max_chars" });
  declare("poems-keywords", option("poems", "generate", "keywords"), { maxlength: "max_chars" });
  declare("poems-seed", option("poems", "generate", "seed"), { min: "min", max: "max", value: "default" });
  const temperature = option("poems", "generate", "temperature");
  if (temperature) {
    const [lo, hi] = temperature.typical || [temperature.min, temperature.max];
    Object.assign($("poems-temperature"), { min: lo, max: hi, value: temperature.default });
    $("poems-temperature-value").textContent = Number(temperature.default).toFixed(2);
  }
  const explain = option("sentiment", "predict", "explain"); // how the words' effects are found
  if (explain) $("sentiment-explain").replaceChildren(...explain.choices.map((c) =>
    el("option", { value: c, selected: c === explain.default, "data-i18n": `explain_${c}` }, t(`explain_${c}`))));
  const form = option("poems", "generate", "form");
  if (form) $("poems-form-select").value = form.default;
  for (const task of Object.values(state.tasks)) if (!state.tabs.includes(task.name)) addTaskTab(task, showTab);
}

// A tab for a task the page has no view of its own for: a form per verb, built from its declaration.
function addTaskTab(task, showTab) {
  state.tabs.splice(state.tabs.length - 2, 0, task.name);
  const button = el("button", { role: "tab", "data-tab": task.name, onclick: () => showTab(task.name) }, task.name);
  document.querySelector('nav [data-tab="runs"]').before(button);
  const section = el("section", { id: `tab-${task.name}`, class: "tab", role: "tabpanel", hidden: true },
    el("p", { class: "intro" }, task.help));
  for (const [name, verb] of Object.entries(task.verbs)) section.append(verbForm(task.name, name, verb));
  $("tab-runs").before(section);
}
function optionInput(id, o) {
  if (o.choices) return el("select", { id }, ...o.choices.map((c) => el("option", { value: c, selected: c === o.default }, c)));
  if (o.type === "bool") return el("input", { id, type: "checkbox", checked: o.default });
  const number = o.type === "int" || o.type === "float";
  return el("input", { id, type: number ? "number" : "text", value: o.default, min: o.min, max: o.max,
    step: o.type === "float" ? "any" : undefined, maxlength: o.max_chars });
}
function readOption(node, o) {
  if (o.type === "bool") return node.checked;
  if (o.type === "int" || o.type === "float") return Number(node.value);
  return node.value;
}
function verbForm(task, name, verb) {
  const id = (x) => `${task}-${name}-${x}`;
  const form = el("form", { class: "row wrap generic", id: id("form") });
  const inp = verb.input;
  if (inp) form.append(el("label", {}, el("span", {}, `${inp.name}${inp.many ? " (" + t("one_per_line") + ")" : ""}`),
    el(inp.many ? "textarea" : "input", { id: id("input"), maxlength: inp.many ? undefined : inp.max_chars, rows: 3,
      title: state.lang === "zh" ? inp.zh : inp.help, required: true })));
  for (const o of verb.options) form.append(el("label", { title: state.lang === "zh" ? o.zh : o.help },
    el("span", {}, o.name), optionInput(id(o.name), o)));
  const output = el("pre", { class: "answer", id: id("answer") });
  const error = el("div", { class: "error", role: "alert", id: id("error") });
  form.append(el("button", { type: "submit" }, t("send")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {};
    if (inp) {
      const text = $(id("input")).value;
      body[inp.name] = inp.many ? text.split("\n").map((s) => s.trim()).filter(Boolean) : text;
    }
    for (const o of verb.options) body[o.name] = readOption($(id(o.name)), o);
    error.textContent = ""; output.textContent = "";
    await busy(form.querySelector("button[type=submit]"), async () => {
      try { output.textContent = JSON.stringify(await api(`/api/${task}/${name}`, body), null, 2); }
      catch (e) { error.textContent = e.message; }
    });
  });
  return el("div", { class: "verb" }, el("h2", {}, name), el("p", { class: "note" }, state.lang === "zh" ? verb.zh : verb.help),
    form, error, output);
}
