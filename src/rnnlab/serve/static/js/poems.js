// The Poems tab: write, click a character for the alternatives, rewrite a line, edit and score.
import { $, api, busy, el, fmt, probBar, shadedChars, showError, t, state } from "./core.js";
import { createStepper } from "./stepper.js";

// --- Poems ----------------------------------------------------------------------------------
let poemState = null; // the last answer: {run, poem, lines, chars, ...}
let activeChar = null; // [line, position]
function poemOptions() {
  return {
    begin: $("poems-begin").value.trim(), acrostic: $("poems-acrostic").value.trim(),
    keywords: $("poems-keywords").value.trim(),
    form: $("poems-form-select").value, temperature: Number($("poems-temperature").value),
    seed: Number($("poems-seed").value) || 0, top: 6, run: $("poems-model").value || undefined,
  };
}
export async function writePoem(ev) {
  if (ev) ev.preventDefault();
  $("poems-error").textContent = "";
  await busy(document.querySelector("#poems-form button[type=submit]"), async () => {
    try {
      const options = poemOptions();
      const answer = await api("/api/poems/generate", { ...options, n: 1, details: true });
      const made = answer.results[0];
      // generate's "tones" are the pattern's (中 = either): kept as the rules an edit is checked against
      poemState = { run: answer.run, ...made, form: options.form, seed: options.seed, template: made.tones, rule: made.pattern };
      activeChar = null;
      renderPoem();
    } catch (e) {
      poemState = null; // an error replaces the previous answer
      activeChar = null;
      renderPoem();
      $("poem-side").hidden = true;
      $("poem-meta").textContent = "";
      showError("poems-error", e);
    }
  });
}
async function regenerateLine(k, button) {
  $("poems-error").textContent = "";
  const options = poemOptions();
  options.seed = Math.floor(Math.random() * 1e9); // a new line each click
  await busy(button, async () => {
    try {
      const before = poemState;
      poemState = await api("/api/poems/regenerate", { ...options, run: poemState.run, lines: poemState.lines, line: k, choices: CHOICES });
      if (poemState.pattern === before.rule) Object.assign(poemState, { template: before.template, rule: before.rule });
      Object.assign(poemState, { form: before.form, seed: before.seed });
      activeChar = null;
      renderPoem(k);
    } catch (e) {
      showError("poems-error", e);
    }
  });
}
const CHOICES = 4; // rewrites offered for a line (the likeliest put in; the others a tap away, as Jiuge does)
async function chooseLine(k, line) { // one of the offered rewrites put in: the poem scored and checked again
  const lines = poemState.lines.slice();
  lines[k] = line;
  try {
    const before = poemState;
    poemState = await api("/api/poems/score", { poem: lines.join(""), top: 6, run: poemState.run });
    Object.assign(poemState, { template: before.template, rule: before.rule, form: before.form, seed: before.seed,
      line: k, choices: before.choices });
    renderPoem(k);
  } catch (e) {
    showError("poems-error", e);
  }
}
async function replaceChar(li, pos, ch) {
  const lines = poemState.lines.slice();
  const chars = [...lines[li]];
  chars[pos] = ch;
  lines[li] = chars.join("");
  try {
    const before = poemState;
    poemState = await api("/api/poems/score", { poem: lines.join(""), top: 6, run: poemState.run });
    Object.assign(poemState, { template: before.template, rule: before.rule, edited: [li, pos], form: before.form, seed: before.seed });
    renderPoem();
    showAlternatives(li, pos);
  } catch (e) {
    showError("poems-error", e);
  }
}
// --- the units that count (POST /api/poems/units): the poem shaded by the best counters ---------
let unitsOf = null; // the answer for the poem now shown
async function showCounters() {
  $("poems-error").textContent = "";
  await busy($("poem-units-button"), async () => {
    try {
      unitsOf = await api("/api/poems/units", { poem: poemState.poem, run: poemState.run });
      renderCounters();
    } catch (e) {
      showError("poems-error", e);
    }
  });
}
export function renderCounters() {
  const shown = Boolean(unitsOf && poemState && unitsOf.poem === poemState.poem);
  $("poem-units").hidden = !shown;
  if (!shown) return;
  $("poem-units-list").replaceChildren(...unitsOf.measures.map((m) => el("div", { class: "counted", "data-counts": m.counts },
    el("h4", {}, state.lang === "zh" ? m.zh : m.help),
    ...m.units.map((u) => el("div", { class: "unit-row", "data-unit": u.unit },
      el("span", { class: "unit-name" }, `${t("unit")} ${u.unit}`), shadedChars(unitsOf.chars, u.values, -1, unitsOf.state),
      el("span", { class: "muted" }, ` r² ${fmt(u.r2, 2)}`))))));
}
export function setUpCounters() {
  $("poem-units-button").addEventListener("click", showCounters);
  $("poem-step-button").addEventListener("click", stepThrough);
  poemStepper = createStepper({ panel: "poem-step", p: "pstep", gates: "pstep-gates", unitsList: "pstep-units-list",
    extra: el("div", { id: "pstep-next-chars", class: "next-chars" }) }, () => shownTrace(), nextChars);
}

// --- step through the poem's first lines (POST /api/poems/trace): the stepper of the Names tab -----
const STEP_LINES = 2; // a couplet: short enough to follow step by step
let poemTrace = null; // the answer for the poem now shown
let poemStepper = null;
function shownTrace() { return poemTrace && poemState && poemTrace.poem === poemState.poem ? poemTrace : null; }
async function stepThrough() {
  $("poems-error").textContent = "";
  await busy($("poem-step-button"), async () => {
    try {
      const declared = (((state.tasks.poems || {}).verbs || {}).trace || {}).input;
      const text = [...poemState.lines.slice(0, STEP_LINES).join("")].slice(0, declared ? declared.max_chars : undefined).join("");
      const answer = await api("/api/poems/trace", { text, top: 5, run: poemState.run });
      poemTrace = { ...answer, poem: poemState.poem };
      renderPoemTrace(0);
    } catch (e) {
      showError("poems-error", e);
    }
  });
}
function nextChars(trace, step) { // the model's likeliest next characters after this step, and the one that came
  const came = trace.chars[step + 1];
  $("pstep-next-chars").replaceChildren(el("h4", {}, t("next_after", { c: trace.chars[step] })),
    ...trace.next[step].map((n) => probBar(n.char, n.probability)),
    came === undefined ? null : el("p", { class: "muted" }, t("came_next", { c: came, p: fmt(trace.actual[step], 3) })));
}
export function renderPoemTrace(at) {
  const tr = shownTrace();
  $("poem-trace").hidden = !tr;
  if (!tr) return;
  $("poem-trace-model").textContent = `${tr.run} · ${(tr.cell || "").toUpperCase()}`;
  if (at === undefined) poemStepper.render(); else poemStepper.show(tr, at);
}

export function renderPoem(fresh) {
  const poem = $("poem");
  $("poem-units-button").hidden = !poemState;
  $("poem-step-button").hidden = !poemState || (poemState.lines || []).length < STEP_LINES;
  renderCounters();
  renderPoemTrace();
  if (!poemState) { poem.replaceChildren(); return; }
  poem.classList.toggle("with-tones", Boolean(poemState.template));
  poem.replaceChildren(...poemState.chars.map((line, li) => el("div", { class: "line" + (li === fresh ? " fresh" : ""), "data-line": li },
    ...line.map((c, pos) => {
      const isMark = "，。？！；".includes(c.char);
      if (isMark) return el("span", { class: "mark" }, c.char);
      // Shade by surprise: a character the model found unlikely gets a stronger underline.
      const p = c.probability;
      const border = p === null || p === undefined ? "transparent" : `rgba(221,107,32,${Math.min(0.9, (1 - p) * 0.9)})`;
      const rule = toneRule(li, pos, line.length - 1);
      return el("span", { class: "ch" + (activeChar && activeChar[0] === li && activeChar[1] === pos ? " active" : "") + rule.cls,
        style: `border-bottom-color:${border}`, title: (p === null || p === undefined ? "" : `p = ${fmt(p)}`) + rule.title,
        "data-tone": rule.tone, "data-why": rule.message, "data-line": li, "data-pos": pos, onclick: () => showAlternatives(li, pos) }, c.char);
    }),
    el("button", { class: "regen", type: "button", title: t("regen_title"), "data-line": li,
      onclick: (ev) => regenerateLine(li, ev.currentTarget) }, t("regen")),
    li === fresh && poemState.choices && poemState.choices.length > 1 ? el("div", { class: "choices", "data-line": li },
      el("span", { class: "muted" }, t("other_rewrites")), ...poemState.choices.map((c) => el("button", {
        type: "button", class: "choice" + (c === poemState.lines[li] ? " chosen" : ""), onclick: () => chooseLine(li, c) }, c)))
      : null)));
  const meta = [];
  if (poemState.form) meta.push(`${t("form")}: ${poemState.form === "free" ? t("free") : poemState.form}`);
  if (poemState.seed !== undefined) meta.push(`${t("seed")}: ${poemState.seed}`);
  if (poemState.perplexity) meta.push(`${t("perplexity")}: ${fmt(poemState.perplexity, 1)}`);
  if (poemState.rhyme_group) meta.push(`${t("rhyme")}: ${poemState.rhyme_group}`);
  meta.push(poemState.run);
  $("poem-meta").textContent = meta.join(" · ");
  const broken = [...document.querySelectorAll("#poem .ch.broken")].map((c) => c.dataset.why);
  $("poem-rules").textContent = broken.join(" · ");
  $("poem-rules").hidden = !broken.length;
  $("poem-legend").hidden = !poemState.template;
  if (activeChar) showAlternatives(...activeChar); else $("poem-side").hidden = true;
}
// The pattern's tone at a character (from generate's answer), whether its line rhymes there, and,
// after an edit, whether the server's check of the edited poem (score: char_tones, rhymes) breaks it.
function toneRule(li, pos, width) {
  const template = poemState.template;
  if (!template || !template[li]) return { cls: "", title: "", tone: null };
  const want = template[li][pos];
  const rhymes = pos === width - 1 && (li % 2 === 1 || (li === 0 && (poemState.rule || "").includes("首句入韵")));
  const name = { "平": t("level"), "仄": t("oblique"), "中": t("either") }[want] || want;
  let cls = rhymes ? " rhyme" : "", why = "";
  const edited = poemState.edited && poemState.edited[0] === li && poemState.edited[1] === pos;
  const own = poemState.char_tones && poemState.char_tones[li] ? poemState.char_tones[li][pos] : null;
  if (edited && own && want !== "中" && own !== "中" && own !== "？" && own !== want) why = name;
  if (edited && rhymes && poemState.rhymes === false) why = why ? `${why}, ${t("rhyme")}` : t("rhyme");
  const c = poemState.chars[li][pos].char;
  if (why) cls += " broken";
  const message = why ? t("tone_broken", { c, l: li + 1, p: pos + 1, want: why }) : null;
  return { cls, tone: want, message,
    title: ` · ${t("tones_title")}: ${name}${rhymes ? " · " + t("rhyme_here") : ""}${message ? " · " + message : ""}` };
}
function showAlternatives(li, pos) {
  activeChar = [li, pos];
  document.querySelectorAll(".poem .ch").forEach((s) =>
    s.classList.toggle("active", Number(s.dataset.line) === li && Number(s.dataset.pos) === pos));
  const c = poemState.chars[li][pos];
  const side = $("poem-side");
  side.hidden = false;
  const scale = Math.max(c.probability || 0, ...(c.alternatives || []).map((a) => a.probability || 0)) || 1;
  const rows = [probBar(`${c.char}`, c.probability, "current", scale)];
  rows[0].title = t("here");
  for (const a of c.alternatives || []) {
    // Only characters can replace a character (not a mark, not the end token): the lines keep their form.
    if (a.char === c.char || [...a.char].length !== 1 || "，。？！；：、".includes(a.char)) continue;
    const row = probBar(a.char, a.probability, "", scale);
    row.addEventListener("click", () => replaceChar(li, pos, a.char));
    rows.push(row);
  }
  $("poem-alternatives").replaceChildren(...rows);
}
