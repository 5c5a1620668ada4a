// rnnlab serve: the page's entry point: tabs, language, and each view's module.
import { $, api, loadModels, state, t } from "./js/core.js";
import { I18N } from "./js/i18n.js";
import { drawFlow, renderGradients, setUpGradients } from "./js/gradients.js";
import { predictNames, renderNames, setUpStepper } from "./js/names.js";
import { renderPoem, setUpCounters, writePoem } from "./js/poems.js";
import { loadRuns, renderRuns, stopPolling } from "./js/runs.js";
import { analyse, renderSentiment } from "./js/sentiment.js";
import { applyDeclarations } from "./js/tasks.js";

function applyLanguage() {
  document.documentElement.lang = state.lang === "zh" ? "zh-CN" : "en";
  // Keep each element's English text (from the HTML) so that switching back restores it.
  for (const el of document.querySelectorAll("[data-i18n]")) {
    if (el.dataset.en === undefined) el.dataset.en = el.textContent;
    const key = el.dataset.i18n;
    el.textContent = state.lang === "en" ? (I18N.en[key] || el.dataset.en) : (I18N.zh[key] || el.dataset.en);
  }
  document.getElementById("lang").textContent = state.lang === "zh" ? "English" : "中文";
  document.title = state.lang === "zh" ? "rnnlab · 循环神经网络实验" : "rnnlab";
  document.querySelectorAll(".regen").forEach((b) => { b.textContent = t("regen"); b.title = t("regen_title"); });
  rerender();
}

// --- tabs -----------------------------------------------------------------------------------
function showTab(name) {
  if (!state.tabs.includes(name)) name = "names";
  for (const tab of state.tabs) {
    $(`tab-${tab}`).hidden = tab !== name;
    document.querySelector(`nav [data-tab="${tab}"]`).setAttribute("aria-selected", String(tab === name));
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "runs") loadRuns(); else stopPolling();
  if (name === "gradients") setUpGradients().then(drawFlow);
  $("tooltip").hidden = true;
}

// --- projector mode: larger type, higher contrast (remembered) -------------------------------
function applyProjector(on) {
  document.body.classList.toggle("projector", on);
  document.documentElement.classList.toggle("projector", on); // rem sizes follow the root
  $("projector").setAttribute("aria-pressed", String(on));
  localStorage.setItem("rnnlab-projector", on ? "1" : "0");
  rerender();
}

// --- start ----------------------------------------------------------------------------------
function rerender() {
  renderNames();
  renderPoem();
  renderSentiment();
  if (!$("tab-runs").hidden) renderRuns();
  renderGradients();
}
function start() {
  document.querySelectorAll("nav [data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("rnnlab-lang", state.lang);
    applyLanguage();
  });
  $("projector").addEventListener("click", () => applyProjector(!document.body.classList.contains("projector")));
  document.body.classList.toggle("projector", localStorage.getItem("rnnlab-projector") === "1");
  document.documentElement.classList.toggle("projector", localStorage.getItem("rnnlab-projector") === "1");
  $("projector").setAttribute("aria-pressed", String(document.body.classList.contains("projector")));
  $("names-form").addEventListener("submit", predictNames);
  setUpStepper();
  $("poems-form").addEventListener("submit", writePoem);
  setUpCounters();
  $("sentiment-form").addEventListener("submit", analyse);
  $("poems-temperature").addEventListener("input", () => { $("poems-temperature-value").textContent = Number($("poems-temperature").value).toFixed(2); });
  $("poems-dice").addEventListener("click", () => { $("poems-seed").value = Math.floor(Math.random() * 100000); });
  $("poems-acrostic").addEventListener("input", () => { // an acrostic of 4 or 8 characters picks the lines
    const n = [...$("poems-acrostic").value.trim()].length, form = $("poems-form-select");
    if ((n === 4 || n === 8) && form.value.endsWith(n === 4 ? "x8" : "x4")) form.value = form.value[0] + "x" + n;
  });
  document.querySelectorAll(".example").forEach((b) => b.addEventListener("click", () => {
    $("sentiment-input").value = b.dataset.example;
    analyse();
  }));
  window.addEventListener("resize", () => { if (!$("tab-gradients").hidden) drawFlow(); });
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  applyLanguage();
  showTab(location.hash.slice(1));
  api("/api/tasks").then((info) => {
    state.tasks = Object.fromEntries(info.tasks.map((task) => [task.name, task]));
    applyDeclarations(showTab);
    showTab(location.hash.slice(1));
    document.body.dataset.ready = "1";
    return loadModels();
  }).catch((e) => { $("names-error").textContent = e.message; document.body.dataset.ready = "1"; });
  api("/api/health").then((h) => { $("health").textContent = `rnnlab ${h.version}`; }).catch(() => {});
}
start();
