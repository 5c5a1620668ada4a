// rnnlab serve: the page's script. Plain JS, no library; heatmaps and curves are drawn on canvas.
"use strict";

// --- words of the page in English and Chinese ------------------------------------------------
const I18N = {
  en: {
    tagline: "recurrent networks from their equations", tab_names: "Names", tab_poems: "Poems",
    tab_sentiment: "Sentiment", tab_runs: "Runs", tab_gradients: "Gradients",
    names_intro: "A character-level classifier reads a surname letter by letter and guesses its language (18 languages).",
    model: "model", predict: "Predict", step_title: "Step by step",
    step_intro: "What the model would answer had the name stopped after each character, and what its first recurrent layer does at each step (forward direction).",
    probabilities_title: "Class probabilities after each character",
    gates_note: "Gates lie between 0 (closed) and 1 (open): an LSTM's forget gate near 1 keeps the cell's memory, its input gate lets the new character in; a GRU's update gate near 1 keeps the old state. Hidden units run from -1 (red) to +1 (blue). Hover a cell for its value.",
    gate_input: "input gate i", gate_forget: "forget gate f", gate_output: "output gate o", gate_reset: "reset gate r",
    gate_update: "update gate z", hidden: "hidden state h", units: "units", no_gates: "A vanilla RNN has no gates: only its hidden state.",
    poems_intro: "A character-level LSTM language model trained on the Tang poems writes a poem under the form's constraints. Click a character to see what else the model considered there; rewrite one line and keep the rest.",
    begin: "first character", acrostic: "acrostic", form: "form", free: "free", temperature: "temperature", seed: "seed",
    write: "Write", random: "random", in_poem: "the character in the poem", alternatives_title: "The model's choices here", alternatives_note: "Click a choice to put it in the poem.",
    regen: "↻ rewrite", regen_title: "write this line again, keeping the others", here: "here",
    sentiment_intro: "Two BiGRUs with attention, one reading jieba words and one their characters, classify a hotel review; each word is shaded by how much it moved the answer (taking it out changes the probability by that much).",
    example_good: "example: good", example_bad: "example: bad", analyse: "Analyse", legend_pos: "supports the answer",
    legend_neg: "speaks against it", drivers: "The words that decided", positive: "positive", negative: "negative",
    truncated: "cut to the first {n} of {m} tokens", effect: "effect", attention: "attention", unknown: "not in the vocabulary",
    runs_intro: "The bundled models and the run folders given with --runs. Pick a run to draw its curves; a run that is training updates live.",
    run: "run", task: "task", cell: "cell", epochs: "epochs", status: "status", test: "test", report: "report",
    loss: "loss", train: "train", validation: "validation", training: "training", done: "done", bundled: "bundled",
    stopped: "stopped", live: "live: updated every 2 s", no_rows: "no epoch finished yet", no_runs: "No runs: start rnnlab serve with --runs DIR.",
    grad_title: "Vanishing and exploding gradients, measured", long_title: "Remembering across T steps",
    footer: "Everything runs on this machine: rnnlab's own models, no internet.", perplexity: "perplexity",
    probability: "probability", working: "working…", epoch: "epoch", no_model: "no {task} model: start rnnlab serve with --runs DIR",
    accuracy: "accuracy", send: "Run", result: "answer", one_per_line: "one per line",
  },
  zh: {
    tagline: "从公式出发的循环神经网络", tab_names: "姓名", tab_poems: "写诗", tab_sentiment: "情感", tab_runs: "训练记录",
    tab_gradients: "梯度",
    names_intro: "字符级分类器逐个字母读一个姓氏，猜它来自哪种语言（18 种）。",
    model: "模型", predict: "预测", step_title: "逐步查看",
    step_intro: "如果姓名在每个字母处停下，模型会怎样回答；以及第一层循环网络在每一步的内部状态（正向）。",
    probabilities_title: "每读一个字母后的类别概率",
    gates_note: "门的取值在 0（关）到 1（开）之间：LSTM 的遗忘门接近 1 时保留记忆，输入门让新字母进入；GRU 的更新门接近 1 时保留旧状态。隐藏单元从 -1（红）到 +1（蓝）。鼠标悬停可看数值。",
    gate_input: "输入门 i", gate_forget: "遗忘门 f", gate_output: "输出门 o", gate_reset: "重置门 r", gate_update: "更新门 z",
    hidden: "隐藏状态 h", units: "单元", no_gates: "普通 RNN 没有门，只有隐藏状态。",
    poems_intro: "在全唐诗上训练的字符级 LSTM 语言模型，按格律约束写诗。点一个字，看模型在这里还考虑过哪些字；重写一句，保留其余各句。",
    begin: "首字", acrostic: "藏头", form: "体裁", free: "自由", temperature: "温度", seed: "随机种子", write: "写诗",
    random: "随机", in_poem: "诗中现在的字",
    alternatives_title: "模型在这里的候选字", alternatives_note: "点击候选字，把它放进诗里。",
    regen: "↻ 重写", regen_title: "重写这一句，保留其余各句", here: "此处",
    sentiment_intro: "两个带注意力的双向 GRU（一个读结巴分词的词，一个读字）判断酒店评论的情感；每个词的底色表示它对结果的影响（去掉它，概率改变多少）。",
    example_good: "示例：好评", example_bad: "示例：差评", analyse: "分析", legend_pos: "支持该结论", legend_neg: "反对该结论",
    drivers: "起决定作用的词", positive: "正面", negative: "负面", truncated: "只取前 {n} 个词（共 {m} 个）",
    effect: "影响", attention: "注意力", unknown: "不在词表中",
    runs_intro: "内置模型和 --runs 指定的训练记录。选一个查看曲线；正在训练的会实时更新。",
    run: "名称", task: "任务", cell: "单元", epochs: "轮数", status: "状态", test: "测试", report: "报告",
    loss: "损失", train: "训练集", validation: "验证集", training: "训练中", done: "已完成", bundled: "内置",
    stopped: "已停止", live: "实时：每 2 秒更新", no_rows: "还没有完成的轮次", no_runs: "没有训练记录：用 --runs DIR 启动 rnnlab serve。",
    grad_title: "梯度消失与爆炸：实测", long_title: "跨越 T 步的记忆",
    grad_intro: "rnnlab gradients 把每种单元展开 T = 100 步，把每个循环权重缩放到谱半径 0.5、1 或 1.5，测量 dL_T/dh_k 的范数随距离 T - k 的变化。",
    grad_reading: "解读：sigmoid RNN 在所有尺度下都梯度消失（sigmoid' ≤ 1/4：100 步之后 dL/dh_0 只有 dL/dh_T 的 1e-92 到 1e-50）。tanh 和 ReLU 在谱半径小于 1 时消失、大于 1 时爆炸（半径 1.5 时每步 ×1.04 和 ×1.06）。使用 torch 默认初始化时，门控单元也会衰减，因为门的初值接近 sigmoid(0) = 0.5，传递路径被它们缩小。加上遗忘门偏置后，LSTM 的细胞路径是平的（每个半径下每步 ×0.97–1.04）：dC_t/dC_{t-1} = f_t 接近 1，中间没有 W 或 φ' 相乘。",
    long_intro: "rnnlab longrange 训练每种单元在 T 步之后回忆序列的第一个符号（8 个关键符号之一，之后是 T - 1 个干扰符号；随机猜测为 1/8）。",
    long_reading: "解读：普通 RNN 的准确率随距离下降，到 T = 200 时只剩随机水平：从答案回到关键符号的梯度每步缩小一个因子。保持门打开（chrono 初始化）的门控单元能把关键符号无损地带过 200 步。使用 torch 默认初始化的 LSTM 从 T = 25 起就失败，比普通 RNN 还差：遗忘门初值为 sigmoid(0) = 0.5，关键符号每步衰减一半，训练还来不及学会保留它。LSTM 的优势在于门——一个决定单元记多久的旋钮——而且只有旋钮一开始就接近“保留”时才起作用。",
    footer: "一切都在本机运行：rnnlab 自己的模型，不连互联网。", perplexity: "困惑度", probability: "概率", working: "计算中…",
    epoch: "轮", no_model: "没有{task}模型：用 --runs DIR 启动 rnnlab serve",
    accuracy: "准确率", send: "运行", result: "结果", one_per_line: "每行一个",
  },
};
const LANGUAGES_ZH = {
  Arabic: "阿拉伯语", Chinese: "汉语", Czech: "捷克语", Dutch: "荷兰语", English: "英语", French: "法语", German: "德语",
  Greek: "希腊语", Irish: "爱尔兰语", Italian: "意大利语", Japanese: "日语", Korean: "韩语", Polish: "波兰语",
  Portuguese: "葡萄牙语", Russian: "俄语", Scottish: "苏格兰语", Spanish: "西班牙语", Vietnamese: "越南语",
};
let lang = localStorage.getItem("rnnlab-lang") || ((navigator.language || "").startsWith("zh") ? "zh" : "en");

function t(key, vars) {
  let s = (I18N[lang] && I18N[lang][key]) || I18N.en[key] || key;
  for (const [k, v] of Object.entries(vars || {})) s = s.replace(`{${k}}`, v);
  return s;
}
function labelName(label) {
  return lang === "zh" && LANGUAGES_ZH[label] ? `${LANGUAGES_ZH[label]} ${label}` : label;
}
function sentimentName(label, labels) {
  const binary = labels && labels.length === 2 && labels.includes("0") && labels.includes("1");
  if (!binary) return label;
  return `${label === "1" ? t("positive") : t("negative")} (${label})`;
}

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  // Keep each element's English text (from the HTML) so that switching back restores it.
  for (const el of document.querySelectorAll("[data-i18n]")) {
    if (el.dataset.en === undefined) el.dataset.en = el.textContent;
    const key = el.dataset.i18n;
    el.textContent = lang === "en" ? (I18N.en[key] || el.dataset.en) : (I18N.zh[key] || el.dataset.en);
  }
  document.getElementById("lang").textContent = lang === "zh" ? "English" : "中文";
  document.querySelectorAll(".regen").forEach((b) => { b.textContent = t("regen"); b.title = t("regen_title"); });
  rerender();
}

// --- small helpers --------------------------------------------------------------------------
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
  return node;
}
async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  let res;
  try {
    res = await fetch(path, options);
  } catch (e) {
    throw new Error("the server does not answer (is rnnlab serve still running?)");
  }
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
  return data;
}
function fmt(p, digits = 3) { return p === null || p === undefined ? "" : Number(p).toFixed(digits); }
// A labelled bar; ``scale`` is the probability drawn full width (the largest of a list, so small ones stay visible).
function probBar(label, p, extraClass, scale) {
  const width = Math.max(0, Math.min(1, (p || 0) / (scale || 1))) * 100;
  return el("div", { class: "pbar " + (extraClass || "") },
    el("span", { class: "label" }, label),
    el("div", { class: "track" }, el("div", { class: "fill", style: `width:${width}%` })),
    el("span", { class: "num" }, fmt(p)));
}
async function busy(button, fn) {
  button.disabled = true;
  try { await fn(); } finally { button.disabled = false; }
}

// --- tabs -----------------------------------------------------------------------------------
const TABS = ["names", "poems", "sentiment", "runs", "gradients"]; // a task without a tab of its own gets one (below)
function showTab(name) {
  if (!TABS.includes(name)) name = "names";
  for (const tab of TABS) {
    $(`tab-${tab}`).hidden = tab !== name;
    document.querySelector(`nav [data-tab="${tab}"]`).setAttribute("aria-selected", String(tab === name));
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (name === "runs") loadRuns(); else stopPolling();
}

// --- the models of each task ----------------------------------------------------------------
let RUNS = { runs: [], defaults: {} };
async function loadModels() {
  RUNS = await api("/api/runs");
  for (const task of Object.keys(TASK_INFO).filter((name) => $(`${name}-model`))) {
    const select = $(`${task}-model`);
    const current = select.value;
    select.replaceChildren(...RUNS.runs.filter((r) => r.task === task).map((r) =>
      el("option", { value: r.id }, r.id + (r.cell ? ` (${r.cell})` : ""))));
    select.value = current || RUNS.defaults[task] || "";
    if (!select.value && select.options.length) select.selectedIndex = 0;
  }
}
function modelsOf(task) { return RUNS.runs.filter((r) => r.task === task); }

// --- heatmaps on canvas ---------------------------------------------------------------------
function sequential(v) { // 0 -> white, 1 -> blue
  const x = Math.max(0, Math.min(1, v));
  return `rgb(${Math.round(255 - 212 * x)},${Math.round(255 - 147 * x)},${Math.round(255 - 79 * x)})`;
}
function diverging(v) { // -1 red, 0 white, +1 blue
  const x = Math.max(-1, Math.min(1, v));
  if (x < 0) return `rgb(${Math.round(255 + (197 - 255) * -x)},${Math.round(255 + (48 - 255) * -x)},${Math.round(255 + (48 - 255) * -x)})`;
  return sequential(x);
}
// matrix[row][col]; columns are the name's characters.
function heatmap(canvas, matrix, rowLabels, colLabels, opts) {
  const cw = opts.cellW || 30, ch = opts.cellH || 22, left = opts.left || 110, top = 22;
  const rows = matrix.length, cols = rows ? matrix[0].length : 0;
  const dpr = window.devicePixelRatio || 1;
  const w = left + cols * cw + 4, h = top + rows * ch + 4;
  canvas.width = w * dpr; canvas.height = h * dpr;
  canvas.style.width = `${w}px`; canvas.style.height = `${h}px`;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.font = "12px system-ui, sans-serif";
  g.textBaseline = "middle";
  g.fillStyle = "#1f2933";
  g.textAlign = "center";
  colLabels.forEach((c, j) => g.fillText(c, left + j * cw + cw / 2, top / 2));
  g.textAlign = "right";
  for (let i = 0; i < rows; i++) {
    if (rowLabels && (ch >= 10 || i % Math.ceil(10 / ch) === 0)) g.fillText(rowLabels[i], left - 6, top + i * ch + ch / 2);
    for (let j = 0; j < cols; j++) {
      const v = matrix[i][j];
      g.fillStyle = opts.diverging ? diverging(v) : sequential(v);
      g.fillRect(left + j * cw, top + i * ch, cw - 1, ch - (ch > 4 ? 1 : 0));
      if (opts.values && ch >= 16) {
        g.fillStyle = v > 0.55 ? "#fff" : "#1f2933";
        g.textAlign = "center";
        g.fillText(v.toFixed(2), left + j * cw + cw / 2, top + i * ch + ch / 2);
        g.textAlign = "right";
      }
      g.fillStyle = "#1f2933";
    }
  }
  canvas.onmousemove = (ev) => {
    const r = canvas.getBoundingClientRect();
    const j = Math.floor((ev.clientX - r.left - left) / cw), i = Math.floor((ev.clientY - r.top - top) / ch);
    const tip = $("tooltip");
    if (i < 0 || j < 0 || i >= rows || j >= cols) { tip.hidden = true; return; }
    tip.textContent = `${rowLabels ? rowLabels[i] : i} · ${colLabels[j]} (${j + 1}): ${matrix[i][j].toFixed(3)}`;
    tip.style.left = `${ev.clientX + 12}px`; tip.style.top = `${ev.clientY + 12}px`;
    tip.hidden = false;
  };
  canvas.onmouseleave = () => { $("tooltip").hidden = true; };
}
function transpose(m) { return m.length ? m[0].map((_, j) => m.map((row) => row[j])) : []; }

// --- Names ----------------------------------------------------------------------------------
let namesState = null; // {name, answers, trace, selected}
let namesTicket = 0; // only the latest question's answer is shown
async function predictNames(ev) {
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
function renderNames() {
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

// --- Poems ----------------------------------------------------------------------------------
let poemState = null; // the last answer: {run, poem, lines, chars, ...}
let activeChar = null; // [line, position]
function poemOptions() {
  return {
    begin: $("poems-begin").value.trim(), acrostic: $("poems-acrostic").value.trim(),
    form: $("poems-form-select").value, temperature: Number($("poems-temperature").value),
    seed: Number($("poems-seed").value) || 0, top: 6, run: $("poems-model").value || undefined,
  };
}
async function writePoem(ev) {
  if (ev) ev.preventDefault();
  $("poems-error").textContent = "";
  await busy(document.querySelector("#poems-form button[type=submit]"), async () => {
    try {
      const answer = await api("/api/poems/generate", { ...poemOptions(), n: 1, details: true });
      poemState = { run: answer.run, ...answer.results[0] };
      activeChar = null;
      renderPoem();
    } catch (e) {
      $("poems-error").textContent = e.message;
    }
  });
}
async function regenerateLine(k, button) {
  $("poems-error").textContent = "";
  const options = poemOptions();
  options.seed = Math.floor(Math.random() * 1e9); // a new line each click
  await busy(button, async () => {
    try {
      poemState = await api("/api/poems/regenerate", { ...options, run: poemState.run, lines: poemState.lines, line: k });
      activeChar = null;
      renderPoem(k);
    } catch (e) {
      $("poems-error").textContent = e.message;
    }
  });
}
async function replaceChar(li, pos, ch) {
  const lines = poemState.lines.slice();
  const chars = [...lines[li]];
  chars[pos] = ch;
  lines[li] = chars.join("");
  try {
    poemState = await api("/api/poems/score", { poem: lines.join(""), top: 6, run: poemState.run });
    renderPoem();
    showAlternatives(li, pos);
  } catch (e) {
    $("poems-error").textContent = e.message;
  }
}
function renderPoem(fresh) {
  const poem = $("poem");
  if (!poemState) { poem.replaceChildren(); return; }
  poem.replaceChildren(...poemState.chars.map((line, li) => el("div", { class: "line" + (li === fresh ? " fresh" : ""), "data-line": li },
    ...line.map((c, pos) => {
      const isMark = "，。？！；".includes(c.char);
      if (isMark) return el("span", { class: "mark" }, c.char);
      // Shade by surprise: a character the model found unlikely gets a stronger underline.
      const p = c.probability;
      const border = p === null || p === undefined ? "transparent" : `rgba(221,107,32,${Math.min(0.9, (1 - p) * 0.9)})`;
      return el("span", { class: "ch" + (activeChar && activeChar[0] === li && activeChar[1] === pos ? " active" : ""),
        style: `border-bottom-color:${border}`, title: p === null || p === undefined ? "" : `p = ${fmt(p)}`,
        "data-line": li, "data-pos": pos, onclick: () => showAlternatives(li, pos) }, c.char);
    }),
    el("button", { class: "regen", type: "button", title: t("regen_title"), "data-line": li,
      onclick: (ev) => regenerateLine(li, ev.currentTarget) }, t("regen")))));
  const meta = [];
  if (poemState.form) meta.push(`${t("form")}: ${poemState.form}`);
  if (poemState.seed !== undefined) meta.push(`${t("seed")}: ${poemState.seed}`);
  if (poemState.perplexity) meta.push(`${t("perplexity")}: ${fmt(poemState.perplexity, 1)}`);
  if (poemState.rhyme_group) meta.push(`rhyme: ${poemState.rhyme_group}`);
  meta.push(poemState.run);
  $("poem-meta").textContent = meta.join(" · ");
  if (activeChar) showAlternatives(...activeChar); else $("poem-side").hidden = true;
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

// --- Sentiment ------------------------------------------------------------------------------
let sentimentState = null;
async function analyse(ev) {
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
function renderSentiment() {
  if (!sentimentState) return;
  const r = sentimentState.results[0];
  $("sentiment-result").hidden = false;
  $("sentiment-label").textContent = sentimentName(r.label, sentimentState.labels);
  $("sentiment-label").dataset.label = r.label;
  $("sentiment-prob").textContent = `${t("probability")} ${fmt(r.probability)}`;
  $("sentiment-bar").style.width = `${r.probability * 100}%`;
  const scale = Math.max(1e-6, ...r.words.map((w) => Math.abs(w.effect)));
  $("sentiment-words").replaceChildren(...r.words.map((w) => {
    const a = Math.abs(w.effect) / scale * 0.6;
    const color = w.effect >= 0 ? `rgba(47,133,90,${a})` : `rgba(197,48,48,${a})`;
    const tip = `${t("effect")} ${w.effect >= 0 ? "+" : ""}${w.effect.toFixed(3)}` +
      (w.attention !== undefined ? ` · ${t("attention")} ${w.attention.toFixed(3)}` : "") + (w.unknown ? ` · ${t("unknown")}` : "");
    return el("span", { class: "w" + (w.unknown ? " unknown" : ""), style: `background:${color}`, title: tip,
      "data-effect": w.effect }, w.word);
  }));
  $("sentiment-truncated").textContent = r.truncated_from ? " · " + t("truncated", { n: r.words.length, m: r.truncated_from }) : "";
  const ranked = r.words.slice().sort((a, b) => Math.abs(b.effect) - Math.abs(a.effect)).slice(0, 5);
  $("sentiment-drivers").replaceChildren(...ranked.map((w) =>
    el("li", {}, el("strong", {}, w.word), ` ${w.effect >= 0 ? "+" : ""}${w.effect.toFixed(3)}`)));
}

// --- Runs -----------------------------------------------------------------------------------
let selectedRun = null, pollTimer = null;
function stopPolling() { if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; } }
async function loadRuns() {
  try {
    await loadModels();
  } catch (e) {
    $("runs-error").textContent = e.message;
    return;
  }
  renderRuns();
  const pick = selectedRun || (RUNS.runs.find((r) => r.training) || RUNS.runs.find((r) => r.kind === "run") ||
    RUNS.runs[0] || {}).id;
  if (pick) showRun(pick);
}
function statusBadge(r) {
  const key = r.kind === "bundled" ? "bundled" : r.training ? "training" : r.done ? "done" : "stopped";
  return el("span", { class: `badge ${key}` }, t(key));
}
function testFigure(r) {
  const x = r.test || {};
  if (x.accuracy !== undefined) return `acc ${fmt(x.accuracy, 4)}` + (x.macro_f1 !== undefined ? ` · F1 ${fmt(x.macro_f1, 4)}` : "");
  if (x.test_perplexity !== undefined) return `${t("perplexity")} ${fmt(x.test_perplexity, 1)}`;
  return "";
}
function renderRuns() {
  const body = document.querySelector("#runs-table tbody");
  if (!RUNS.runs.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7 }, t("no_runs"))));
    return;
  }
  body.replaceChildren(...RUNS.runs.map((r) => el("tr", { "data-run": r.id, class: r.id === selectedRun ? "selected" : "",
    onclick: () => showRun(r.id) },
    el("td", {}, r.id), el("td", {}, r.task), el("td", {}, (r.cell || "") + (r.bidirectional ? " (bi)" : "")),
    el("td", {}, r.planned_epochs ? `${r.epochs}/${r.planned_epochs}` : `${r.epochs}`), el("td", {}, statusBadge(r)),
    el("td", {}, testFigure(r)),
    el("td", {}, r.files.includes("report.html") ?
      el("a", { href: `/api/runs/${r.id}/files/report.html`, target: "_blank", rel: "noopener",
        onclick: (ev) => ev.stopPropagation() }, "report.html") : ""))));
}
async function showRun(id) {
  stopPolling();
  selectedRun = id;
  document.querySelectorAll("#runs-table tbody tr").forEach((tr) => tr.classList.toggle("selected", tr.dataset.run === id));
  let data;
  try {
    data = await api(`/api/runs/${id}/metrics`);
  } catch (e) {
    if (selectedRun === id) $("runs-error").textContent = e.message;
    return;
  }
  if (selectedRun !== id) return; // another run was picked while this one loaded
  $("runs-error").textContent = "";
  $("run-detail").hidden = false;
  $("run-title").textContent = `${data.run} · ${data.task}`;
  const rows = data.rows;
  const metric = (TASK_INFO[data.task] || {}).monitor || "accuracy"; // the metric the task's training follows
  $("run-metric-title").textContent = t(metric);
  drawCurves($("run-loss"), rows, "train_loss", "val_loss");
  drawCurves($("run-metric"), rows, `train_${metric}`, `val_${metric}`);
  $("run-live").textContent = data.training ? " · " + t("live") : "";
  if (data.training && !$("tab-runs").hidden) pollTimer = setTimeout(() => showRun(id), 2000);
}
function drawCurves(canvas, rows, trainKey, valKey) {
  const dpr = window.devicePixelRatio || 1, W = 520, H = 280, L = 56, R = 14, T = 12, B = 34;
  canvas.width = W * dpr; canvas.height = H * dpr; canvas.style.width = `${W}px`; canvas.style.height = `${H}px`;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  g.clearRect(0, 0, W, H);
  g.font = "12px system-ui, sans-serif";
  g.fillStyle = "#627080";
  const pts = (key) => rows.map((r, i) => [r.epoch !== undefined ? r.epoch : i + 1, r[key]]).filter((p) => typeof p[1] === "number" && isFinite(p[1]));
  const series = [[pts(trainKey), "#2b6cb0"], [pts(valKey), "#dd6b20"]];
  const all = series.flatMap((s) => s[0]);
  canvas.dataset.points = String(series[0][0].length);
  if (!all.length) { g.fillText(t("no_rows"), L, H / 2); return; }
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

// --- what the tasks declare (GET /api/tasks): every form's defaults, ranges and choices ----------
let TASK_INFO = {}; // task -> {name, help, monitor, verbs: {verb: {help, zh, input, options: [...]}}}
function option(task, verb, name) {
  const v = ((TASK_INFO[task] || {}).verbs || {})[verb];
  return v ? v.options.find((o) => o.name === name) : undefined;
}
function declare(id, o, attrs) { // an input takes its limits and first value from an option's declaration
  const node = $(id);
  if (!node || !o) return;
  for (const [attr, key] of Object.entries(attrs)) if (o[key] !== undefined) node.setAttribute(attr, o[key]);
}
function applyDeclarations() {
  const names = (((TASK_INFO.names || {}).verbs || {}).predict || {}).input;
  if (names) $("names-input").maxLength = names.max_chars;
  const reviews = (((TASK_INFO.sentiment || {}).verbs || {}).predict || {}).input;
  if (reviews) $("sentiment-input").maxLength = reviews.max_chars;
  declare("poems-begin", option("poems", "generate", "begin"), { maxlength: "max_chars" });
  declare("poems-acrostic", option("poems", "generate", "acrostic"), { maxlength: "max_chars" });
  declare("poems-seed", option("poems", "generate", "seed"), { min: "min", max: "max", value: "default" });
  const temperature = option("poems", "generate", "temperature");
  if (temperature) {
    const [lo, hi] = temperature.typical || [temperature.min, temperature.max];
    Object.assign($("poems-temperature"), { min: lo, max: hi, value: temperature.default });
    $("poems-temperature-value").textContent = Number(temperature.default).toFixed(2);
  }
  const form = option("poems", "generate", "form");
  if (form) $("poems-form-select").value = form.default;
  for (const task of Object.values(TASK_INFO)) if (!TABS.includes(task.name)) addTaskTab(task);
}

// A tab for a task the page has no view of its own for: a form per verb, built from its declaration.
function addTaskTab(task) {
  TABS.splice(TABS.length - 2, 0, task.name);
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
      title: lang === "zh" ? inp.zh : inp.help, required: true })));
  for (const o of verb.options) form.append(el("label", { title: lang === "zh" ? o.zh : o.help },
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
  return el("div", { class: "verb" }, el("h2", {}, name), el("p", { class: "note" }, lang === "zh" ? verb.zh : verb.help),
    form, error, output);
}

// --- start ----------------------------------------------------------------------------------
function rerender() {
  renderNames();
  renderPoem();
  renderSentiment();
  if (!$("tab-runs").hidden) renderRuns();
}
function start() {
  document.querySelectorAll("nav [data-tab]").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));
  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("rnnlab-lang", lang);
    applyLanguage();
  });
  $("names-form").addEventListener("submit", predictNames);
  $("poems-form").addEventListener("submit", writePoem);
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
  window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));
  applyLanguage();
  showTab(location.hash.slice(1));
  api("/api/tasks").then((info) => {
    TASK_INFO = Object.fromEntries(info.tasks.map((task) => [task.name, task]));
    applyDeclarations();
    showTab(location.hash.slice(1));
    document.body.dataset.ready = "1";
    return loadModels();
  }).catch((e) => { $("names-error").textContent = e.message; document.body.dataset.ready = "1"; });
  api("/api/health").then((h) => { $("health").textContent = `rnnlab ${h.version}`; }).catch(() => {});
}
start();
