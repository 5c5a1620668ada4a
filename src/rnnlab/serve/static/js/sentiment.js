// The Sentiment tab: a review, its label, every word shaded by its effect.
import { $, api, busy, el, fmt, sentimentName, showError, t } from "./core.js";

// --- Sentiment ------------------------------------------------------------------------------
let sentimentState = null;
export async function analyse(ev) {
  if (ev) ev.preventDefault();
  const text = $("sentiment-input").value.trim();
  $("sentiment-error").textContent = "";
  if (!text) { // a review of spaces: say so, and take the old answer away
    sentimentState = null;
    $("sentiment-result").hidden = true;
    $("sentiment-error").textContent = t("empty_input");
    return;
  }
  await busy(document.querySelector("#sentiment-form button[type=submit]"), async () => {
    try {
      sentimentState = await api("/api/sentiment/predict", { texts: [text], run: $("sentiment-model").value || undefined,
        explain: $("sentiment-explain").value || undefined });
      sentimentState.text = text;
      renderSentiment();
    } catch (e) {
      sentimentState = null; // an error replaces the previous answer
      $("sentiment-result").hidden = true;
      showError("sentiment-error", e);
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
  const shaded = (w) => {
    if (w.effect === null) return el("span", { class: "w unmeasured", title: t(r.explained_by ? "unmeasured" : "explain_none") }, w.word);
    const a = Math.abs(w.effect) / scale * 0.6;
    const color = w.effect >= 0 ? `rgba(47,133,90,${a})` : `rgba(197,48,48,${a})`;
    const tip = `${t("effect")} ${w.effect >= 0 ? "+" : ""}${w.effect.toFixed(3)}` +
      (w.attention !== undefined ? ` · ${t("attention")} ${w.attention.toFixed(3)}` : "") + (w.unknown ? ` · ${t("unknown")}` : "");
    return el("span", { class: "w" + (w.unknown ? " unknown" : ""), style: `background:${color}`, title: tip,
      "data-effect": w.effect }, w.word);
  };
  $("sentiment-words").replaceChildren(...asTyped(sentimentState.text || "", r.words, shaded));
  const unknown = r.words.filter((w) => w.unknown).length;
  $("sentiment-oov").hidden = !(r.words.length && unknown / r.words.length > 0.5);
  $("sentiment-oov").textContent = t("oov_warning", { n: unknown, m: r.words.length });
  $("sentiment-truncated").textContent = (r.truncated_from ? " · " + t("truncated", { n: r.words.length, m: r.truncated_from }) : "") +
    (r.explained_by && measured.length < r.words.length ? " · " + t("measured", { n: measured.length, m: r.words.length }) : "");
  $("sentiment-measure").textContent = r.explained_by ? t(`by_${r.explained_by}`) : "";
  $("sentiment-drivers-title").hidden = !r.explained_by;
  const ranked = measured.slice().sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect)).slice(0, 5);
  $("sentiment-drivers").replaceChildren(...ranked.map((w) =>
    el("li", {}, el("strong", {}, w.word), ` ${w.effect >= 0 ? "+" : ""}${w.effect.toFixed(3)}`)));
}

// The review as typed: each scored word found in the text in order and shaded; what lies between
// (punctuation, stop words, spaces) kept, greyed. A word not found as such (the model's text was
// normalised) is shown where the search stands.
export function asTyped(text, words, shaded) {
  const out = [];
  let at = 0;
  const skipped = (s) => { if (s) out.push(el("span", { class: "skipped", title: t("legend_skipped") }, s)); };
  for (const w of words) {
    const k = text.indexOf(w.word, at);
    if (k < 0) { out.push(shaded(w)); continue; }
    skipped(text.slice(at, k));
    out.push(shaded(w));
    at = k + w.word.length;
  }
  skipped(text.slice(at));
  return out;
}
