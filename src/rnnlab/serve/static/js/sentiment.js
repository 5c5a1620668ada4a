// The Sentiment tab: a review, its label, every word shaded by its effect.
import { $, api, busy, el, fmt, sentimentName, t } from "./core.js";

// --- Sentiment ------------------------------------------------------------------------------
let sentimentState = null;
export async function analyse(ev) {
  if (ev) ev.preventDefault();
  const text = $("sentiment-input").value.trim();
  $("sentiment-error").textContent = "";
  if (!text) return;
  await busy(document.querySelector("#sentiment-form button[type=submit]"), async () => {
    try {
      sentimentState = await api("/api/sentiment/predict", { texts: [text], run: $("sentiment-model").value || undefined });
      renderSentiment();
    } catch (e) {
      $("sentiment-error").textContent = e.message;
    }
  });
}
export function renderSentiment() {
  if (!sentimentState) return;
  const r = sentimentState.results[0];
  $("sentiment-result").hidden = false;
  $("sentiment-label").textContent = sentimentName(r.label, sentimentState.labels);
  $("sentiment-label").dataset.label = r.label;
  $("sentiment-prob").textContent = `${t("probability")} ${fmt(r.probability)}`;
  $("sentiment-bar").style.width = `${r.probability * 100}%`;
  const measured = r.words.filter((w) => w.effect !== null); // long reviews: the words ranked first (the rest unmeasured)
  const scale = Math.max(1e-6, ...measured.map((w) => Math.abs(w.effect)));
  $("sentiment-words").replaceChildren(...r.words.map((w) => {
    if (w.effect === null) return el("span", { class: "w unmeasured", title: t("unmeasured") }, w.word);
    const a = Math.abs(w.effect) / scale * 0.6;
    const color = w.effect >= 0 ? `rgba(47,133,90,${a})` : `rgba(197,48,48,${a})`;
    const tip = `${t("effect")} ${w.effect >= 0 ? "+" : ""}${w.effect.toFixed(3)}` +
      (w.attention !== undefined ? ` · ${t("attention")} ${w.attention.toFixed(3)}` : "") + (w.unknown ? ` · ${t("unknown")}` : "");
    return el("span", { class: "w" + (w.unknown ? " unknown" : ""), style: `background:${color}`, title: tip,
      "data-effect": w.effect }, w.word);
  }));
  $("sentiment-truncated").textContent = (r.truncated_from ? " · " + t("truncated", { n: r.words.length, m: r.truncated_from }) : "") +
    (measured.length < r.words.length ? " · " + t("measured", { n: measured.length, m: r.words.length }) : "");
  const ranked = measured.slice().sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect)).slice(0, 5);
  $("sentiment-drivers").replaceChildren(...ranked.map((w) =>
    el("li", {}, el("strong", {}, w.word), ` ${w.effect >= 0 ? "+" : ""}${w.effect.toFixed(3)}`)));
}
