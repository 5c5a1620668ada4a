// The Runs tab: the models and run folders, and a run's curves (redrawn while it trains).
import { $, api, canvasFont, el, fmt, loadModels, showError, state, t } from "./core.js";

// --- Runs -----------------------------------------------------------------------------------
let selectedRun = null, pollTimer = null, shownMetric = null;
export function stopPolling() { if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; } }
export async function loadRuns() {
  try {
    await loadModels();
  } catch (e) {
    showError("runs-error", e);
    return;
  }
  renderRuns();
  const pick = selectedRun || (state.runs.runs.find((r) => r.training) || state.runs.runs.find((r) => r.kind === "run") ||
    state.runs.runs[0] || {}).id;
  if (pick) showRun(pick);
}
function statusBadge(r) {
  const key = r.kind === "bundled" ? "bundled" : r.training ? "training" : r.done ? "done" : "stopped";
  return el("span", { class: `badge ${key}` }, t(key));
}
function testFigure(r) {
  const x = r.test || {};
  if (x.accuracy !== undefined) return `${t("accuracy")} ${fmt(x.accuracy, 4)}` + (x.macro_f1 !== undefined ? ` · ${t("macro_f1")} ${fmt(x.macro_f1, 4)}` : "");
  if (x.test_perplexity !== undefined) return `${t("perplexity")} ${fmt(x.test_perplexity, 1)}`;
  return "";
}
function epochsOf(r) { // a bundled model exported without its metrics.jsonl: epochs not recorded, not 0
  if (r.kind === "bundled") return r.epochs ? `${r.epochs}` : "—";
  return r.planned_epochs ? `${r.epochs}/${r.planned_epochs}` : `${r.epochs}`;
}
export function renderRuns() {
  if (shownMetric) $("run-metric-title").textContent = t(shownMetric); // the language may have changed
  const body = document.querySelector("#runs-table tbody");
  if (!state.runs.runs.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7 }, t("no_runs"))));
    return;
  }
  body.replaceChildren(...state.runs.runs.map((r) => el("tr", { "data-run": r.id, class: r.id === selectedRun ? "selected" : "",
    onclick: () => showRun(r.id) },
    el("td", {}, r.id), el("td", {}, r.task), el("td", {}, (r.cell || "") + (r.bidirectional ? " (bi)" : "")),
    el("td", { class: "epochs" }, epochsOf(r)), el("td", {}, statusBadge(r)),
    el("td", {}, testFigure(r)),
    el("td", {}, r.files.includes("report.html") ?
      el("a", { href: `/api/runs/${r.id}/files/report.html`, target: "_blank", rel: "noopener",
        onclick: (ev) => ev.stopPropagation() }, "report.html") : ""))));
}
export async function showRun(id) {
  stopPolling();
  selectedRun = id;
  document.querySelectorAll("#runs-table tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.run === id));
  let data;
  try {
    data = await api(`/api/runs/${id}/metrics`);
  } catch (e) {
    if (selectedRun === id) { showError("runs-error", e); $("run-detail").hidden = true; }
    return;
  }
  if (selectedRun !== id) return; // another run was picked while this one loaded
  $("runs-error").textContent = "";
  $("run-detail").hidden = false;
  $("run-title").textContent = `${data.run} · ${data.task}`;
  const rows = data.rows;
  const metric = (state.tasks[data.task] || {}).monitor || "accuracy"; // the metric the task's training follows
  shownMetric = metric;
  $("run-metric-title").textContent = t(metric);
  const bundled = (state.runs.runs.find((r) => r.id === id) || {}).kind === "bundled";
  for (const c of [$("run-loss"), $("run-metric")]) c.dataset.empty = t(bundled ? "no_curves_bundled" : "no_rows");
  drawCurves($("run-loss"), rows, "train_loss", "val_loss");
  drawCurves($("run-metric"), rows, `train_${metric}`, `val_${metric}`);
  $("run-live").textContent = data.training ? " · " + t("live") : "";
  if (data.training && !$("tab-runs").hidden) pollTimer = setTimeout(() => refresh(id), 2000);
}
async function refresh(id) { // while a run trains: its row (epochs, status) and its curves
  try { await loadModels(); renderRuns(); } catch (e) { /* the curves say it */ }
  if (selectedRun === id && !$("tab-runs").hidden) showRun(id);
}
function drawCurves(canvas, rows, trainKey, valKey) {
  const dpr = window.devicePixelRatio || 1, W = 520, H = 280, L = 56, R = 14, T = 12, B = 34;
  canvas.width = W * dpr; canvas.height = H * dpr; // CSS scales it to the panel (width 100%, at most 520 px)
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, W, H);
  g.font = canvasFont();
  g.fillStyle = "#627080";
  const pts = (key) => rows.map((r, i) => [r.epoch !== undefined ? r.epoch : i + 1, r[key]]).filter((p) => typeof p[1] === "number" && isFinite(p[1]));
  const series = [[pts(trainKey), "#2b6cb0"], [pts(valKey), "#dd6b20"]];
  const all = series.flatMap((s) => s[0]);
  canvas.dataset.points = String(series[0][0].length);
  if (!all.length) { g.fillText(canvas.dataset.empty || t("no_rows"), L, H / 2); return; }
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = Math.min(...all.map((p) => p[1])), y1 = Math.max(...all.map((p) => p[1]));
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 + 0.01; y1 += Math.abs(y1) * 0.1 + 0.01; }
  const pad = (y1 - y0) * 0.06; y0 -= pad; y1 += pad;
  const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  g.strokeStyle = "#d9dee5"; g.lineWidth = 1;
  g.textAlign = "right"; g.textBaseline = "middle";
  for (let k = 0; k <= 4; k++) {
    const y = y0 + (y1 - y0) * k / 4;
    g.beginPath(); g.moveTo(L, Y(y)); g.lineTo(W - R, Y(y)); g.stroke();
    g.fillText(Math.abs(y) >= 100 ? y.toFixed(0) : y.toFixed(3), L - 6, Y(y));
  }
  g.textAlign = "center"; g.textBaseline = "top";
  const step = Math.max(1, Math.ceil((x1 - x0) / 8));
  for (let x = Math.ceil(x0); x <= x1; x += step) g.fillText(String(x), X(x), H - B + 6);
  g.fillText(t("epoch"), (L + W - R) / 2, H - 14);
  for (const [p, color] of series) {
    if (!p.length) continue;
    g.strokeStyle = color; g.fillStyle = color; g.lineWidth = 2;
    g.beginPath();
    p.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
    g.stroke();
    p.forEach(([x, y]) => { g.beginPath(); g.arc(X(x), Y(y), 3, 0, 2 * Math.PI); g.fill(); });
  }
}
