"""Typical mistakes, each a small edit of the key (rnnlab's own code): what that mistake would compute.

A student's part that fails its check is compared with each mistake of the part on the same inputs;
the one it matches names the mistake. The tests write each as a student's file and check that the
right part catches it with this hint.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mistake:
    part: str
    name: str
    en: str
    zh: str
    old: str  # the text of the key it changes
    new: str


MISTAKES = (
    Mistake("rnn_cell", "w_hh transposed", "W_hh is used transposed: F.linear(h, W) already computes h W^T",
            "W_hh 被转置了：F.linear(h, W) 已经计算 h W^T", "F.linear(h, w_hh, b_hh)", "F.linear(h, w_hh.t(), b_hh)"),
    Mistake("rnn_cell", "no bias_hh", "bias_hh is missing: h_t = phi(W_ih x + b_ih + W_hh h + b_hh) has two biases",
            "缺少 bias_hh：公式中有两个偏置 b_ih 与 b_hh", "F.linear(h, w_hh, b_hh)", "F.linear(h, w_hh)"),
    Mistake("rnn_cell", "nonlinearity ignored", "the nonlinearity argument is ignored: sigmoid and relu give tanh",
            "忽略了 nonlinearity 参数：sigmoid 和 relu 也用了 tanh", "_PHI[nonlinearity](", "torch.tanh("),
    Mistake("lstm_cell", "gate order", "the gates are read in the wrong order: torch's fused order is i, f, g, o",
            "门的顺序错了：torch 的顺序是 i, f, g, o", "i, f, g, o = gates.chunk(4, dim=-1)",
            "i, f, o, g = gates.chunk(4, dim=-1)"),
    Mistake("lstm_cell", "sigmoid for g", "the candidate g goes through sigmoid where tanh belongs",
            "候选值 g 应该用 tanh，却用了 sigmoid", "torch.tanh(g)", "torch.sigmoid(g)"),
    Mistake("lstm_cell", "no tanh on c", "h_t = o_t * tanh(c_t): the tanh of the cell is missing",
            "h_t = o_t * tanh(c_t)：缺少对细胞状态的 tanh", "o * torch.tanh(c)", "o * c"),
    Mistake("lstm_cell", "forget gate unused", "the forget gate is not applied: c_t = f_t * c_{t-1} + i_t * g_t",
            "没有使用遗忘门：c_t = f_t * c_{t-1} + i_t * g_t", "c = f * c + i * g", "c = c + i * g"),
    Mistake("lstm_cell", "no bias_hh", "bias_hh is missing from the gates' pre-activation",
            "门的预激活缺少 bias_hh", "F.linear(h, w_hh, b_hh)  # (B, 4H)", "F.linear(h, w_hh)  # (B, 4H)"),
    Mistake("gru_cell", "(1-z) swapped", "(1 - z) and z are swapped: h_t = (1 - z_t) * n_t + z_t * h_{t-1}",
            "(1 - z) 与 z 位置颠倒：h_t = (1 - z_t) * n_t + z_t * h_{t-1}", "(1 - z) * n + z * h", "z * n + (1 - z) * h"),
    Mistake("gru_cell", "reset gate unused", "the reset gate is not applied: n_t = tanh(W_in x + b_in + r_t * (W_hn h + b_hn))",
            "没有使用重置门：n_t = tanh(W_in x + b_in + r_t * (W_hn h + b_hn))", "xn + r * hn", "xn + hn"),
    Mistake("gru_cell", "no bias_hh", "bias_hh is missing (the GRU's b_hn sits inside r_t * (W_hn h + b_hn))",
            "缺少 bias_hh（GRU 的 b_hn 在 r_t * (W_hn h + b_hn) 之内）", "F.linear(h, w_hh, b_hh).chunk",
            "F.linear(h, w_hh).chunk"),
    Mistake("tutorial_rnn", "no LogSoftmax", "the output is not passed through LogSoftmax",
            "输出没有经过 LogSoftmax", "return self.softmax(self.i2o(combined)), self.i2h(combined)",
            "return self.i2o(combined), self.i2h(combined)"),
    Mistake("tutorial_rnn", "concat order", "combined = concat(input, hidden), in that order",
            "combined = concat(input, hidden)，顺序不能颠倒", "torch.cat((input, hidden), dim=1)",
            "torch.cat((hidden, input), dim=1)"),
    Mistake("bptt_rnn", "no phi'", "the factor phi'(a_t) is missing: delta_t = dL/dh_t * phi'(a_t)",
            "缺少 phi'(a_t) 因子：delta_t = dL/dh_t * phi'(a_t)", "delta = dh * dphi(hs[t])", "delta = dh"),
    Mistake("bptt_rnn", "not summed over time", "the weight gradients are not summed over the time steps",
            "权重梯度没有对所有时间步求和", 'grads["W"] += np.outer(delta, hs[t - 1])',
            'grads["W"] = np.outer(delta, hs[t - 1])'),
    Mistake("bptt_rnn", "W not transposed", "going back a step multiplies by W^T, not W: dL/dh_{t-1} = W^T delta_t",
            "反向传到上一步要乘 W^T 而不是 W", 'dh_next = p["W"].T @ delta', 'dh_next = p["W"] @ delta'),
    Mistake("bptt_lstm", "cell path without f", "dL/dC_{t-1} = dL/dC_t * f_t: the forget gate is missing on the cell path",
            "细胞路径上缺少遗忘门：dL/dC_{t-1} = dL/dC_t * f_t", 'dC_next = dC * G["f"][t]', "dC_next = dC"),
    Mistake("bptt_lstm", "no tanh' on C", "dL/dC_t through h_t needs o_t * (1 - tanh^2 C_t)",
            "经 h_t 到 C_t 的梯度需要 o_t * (1 - tanh^2 C_t)", 'dh * G["o"][t] * (1 - tC * tC)', 'dh * G["o"][t]'),
    Mistake("sampling", "temperature ignored", "the temperature is ignored: divide the logits by it",
            "忽略了温度：应把 logits 除以温度", "(logits.float().cpu() / temperature)", "(logits.float().cpu())"),
    Mistake("sampling", "mask ignored", "characters the mask does not allow are drawn: set their logits to -inf",
            "抽到了掩码不允许的字：应把它们的 logits 设为 -inf", '.masked_fill(~allowed, float("-inf"))  # (B, V)',
            "  # (B, V)"),
    Mistake("preprocessing", "negations dropped", "the words of keep (不, 没有, 很 ...) are dropped with the stop words: "
            "keep them even when the list holds them", "keep 中的词（不、没有、很……）被当作停用词去掉了：即使停用词表里有，也要保留",
            "(w not in stopwords or w in keep)", "w not in stopwords"),
    Mistake("preprocessing", "stop words kept", "the stop words are not dropped", "没有去掉停用词",
            "(w not in stopwords or w in keep)", "True"),
    Mistake("preprocessing", "whitespace kept", "whitespace tokens (' ') are kept: drop the words that are only "
            "whitespace", "保留了空白（' '）：只含空白的词要去掉", "w.strip() and ", ""),
    Mistake("sampling", "top-k ignored", "top_k is ignored: keep only the k likeliest characters",
            "忽略了 top_k：只保留最可能的 k 个字", "    if top_k:\n", "    if False:\n"),
)


def mistakes_of(part: str) -> list[Mistake]:
    return [m for m in MISTAKES if m.part == part]


def apply(key: str, m: Mistake) -> str:
    """The key with the mistake made (an error if the key no longer holds the text it changes)."""
    if m.old not in key:
        raise LookupError(f"mistake {m.part}/{m.name}: the key no longer holds {m.old!r}")
    return key.replace(m.old, m.new, 1)
