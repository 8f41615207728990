"""The answer generator: a small causal decoder over the pretrained LM's vocabulary, reading the trunk's tokens.

The answer is text, generated token by token. Input embeddings are the frozen token embeddings of the pretrained
LM (SmolLM2-135M: 49,152 tokens x 576), projected to the decoder's width; the output head is tied to the same
matrix (logits = projected state . embedding of each token), so the vocabulary and the head are the LM's and the
decoder learns no per-word table of its own. Each block: causal self-attention over the answer so far,
cross-attention over the trunk's output (question + scene tokens), an MLP. Every answer position also starts from
the pooled question state (`Memory.query`), so the first cross-attention already knows what is asked: starting from
the start token alone, the first layer could only look at the same thing for every question, and on tabletop colour
questions the model answered one colour for all of them for longer.

Generation: greedy (batched) or beam search (one question, N ranked answers), both stopping at the LM's end token
or at a length limit. No sampling, no dropout at inference: the same inputs always give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class DecoderConfig:
    dim: int = 128
    layers: int = 2
    heads: int = 4
    mlp_ratio: float = 2.0
    max_positions: int = 16  # answer tokens the position table covers (the length limit cannot exceed it - 1)


@dataclass
class Memory:
    """What the decoder reads: the trunk's states (B, M, D) and their mask (B, M) bool, and a pooled question state
    (B, D) added to every answer position."""

    states: torch.Tensor
    mask: torch.Tensor
    query: torch.Tensor

    def row(self, i: int) -> Memory:
        """Question i's memory alone (batch 1), for beam search after a batched forward pass."""
        return Memory(self.states[i : i + 1], self.mask[i : i + 1], self.query[i : i + 1])

    def repeat(self, n: int) -> Memory:
        """One question's memory (batch 1) for n beams."""
        return Memory(self.states.expand(n, -1, -1), self.mask.expand(n, -1), self.query.expand(n, -1))


@dataclass(frozen=True)
class Hypothesis:
    """One generated answer: its token ids (without start/end tokens), summed log-probability, and whether it ended
    with the end token (False: cut at the length limit)."""

    ids: tuple[int, ...]
    logprob: float
    finished: bool


class _Block(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.heads = cfg.heads
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim), nn.LayerNorm(cfg.dim)
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.self_out = nn.Linear(cfg.dim, cfg.dim)
        self.q = nn.Linear(cfg.dim, cfg.dim)
        self.kv = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.cross_out = nn.Linear(cfg.dim, cfg.dim)
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, hidden), nn.GELU(), nn.Linear(hidden, cfg.dim))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.reshape(b, n, self.heads, d // self.heads).transpose(1, 2)

    def _merge(self, x: torch.Tensor) -> torch.Tensor:
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = (self._split(t) for t in self.qkv(self.norm1(x)).chunk(3, dim=-1))
        x = x + self.self_out(self._merge(F.scaled_dot_product_attention(q, k, v, is_causal=True)))
        k, v = (self._split(t) for t in self.kv(memory).chunk(2, dim=-1))
        bias = torch.zeros(memory_mask.shape, dtype=x.dtype, device=x.device).masked_fill(~memory_mask, float("-inf"))
        y = F.scaled_dot_product_attention(self._split(self.q(self.norm2(x))), k, v, attn_mask=bias[:, None, None, :])
        x = x + self.cross_out(self._merge(y))
        return x + self.mlp(self.norm3(x))


class AnswerDecoder(nn.Module):
    """prefix token ids (B, T) + Memory (states of width memory_dim) -> next-token logits (B, T, V).

    `embeddings` (V, H) is the frozen LM's token-embedding matrix: held as a non-persistent buffer (never trained,
    never saved: it is rebuilt from the packaged LM). `bos`/`eos` are the LM's start and end token ids."""

    def __init__(self, cfg: DecoderConfig, embeddings: torch.Tensor, memory_dim: int, bos: int, eos: int):
        super().__init__()
        self.cfg, self.bos, self.eos = cfg, int(bos), int(eos)
        self.register_buffer("embeddings", embeddings.detach(), persistent=False)
        lm_dim = embeddings.shape[1]
        self.inp = nn.Linear(lm_dim, cfg.dim)
        self.pos = nn.Embedding(cfg.max_positions, cfg.dim)
        self.memory_in = nn.Linear(memory_dim, cfg.dim)
        self.query_in = nn.Linear(memory_dim, cfg.dim)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.out = nn.Linear(cfg.dim, lm_dim)
        nn.init.normal_(self.pos.weight, std=0.02)

    def hidden(self, prefix: torch.Tensor, memory: Memory) -> torch.Tensor:
        """(B, T, H) states in the LM's embedding space, one per prefix position (what the tied head reads)."""
        if prefix.shape[1] > self.cfg.max_positions:
            raise ValueError(f"answer prefix of {prefix.shape[1]} tokens exceeds {self.cfg.max_positions} positions")
        x = self.inp(self.embeddings[prefix]) + self.pos.weight[: prefix.shape[1]] + self.query_in(memory.query)[:, None]
        mem = self.memory_in(memory.states)
        for block in self.blocks:
            x = block(x, mem, memory.mask)
        return self.out(self.norm(x))

    def logits(self, states: torch.Tensor) -> torch.Tensor:
        """The tied head: scores of every LM token."""
        return states @ self.embeddings.T

    def loss(self, memory: Memory, answers: list[list[int]]) -> torch.Tensor:
        """Mean cross entropy of each answer's tokens and its end token, teacher-forced after the start token.
        Logits are computed only at real positions (the head over 49k tokens is most of the cost)."""
        longest = max(len(a) for a in answers) + 1
        prefix = torch.full((len(answers), longest), self.eos, dtype=torch.long, device=memory.states.device)
        target = torch.full_like(prefix, -100)
        for row, ids in enumerate(answers):
            seq = [self.bos, *ids]
            prefix[row, : len(seq)] = torch.tensor(seq)
            target[row, : len(seq)] = torch.tensor([*ids, self.eos])
        states = self.hidden(prefix, memory)
        real = target >= 0
        return F.cross_entropy(self.logits(states[real]), target[real])

    # --- generation ---

    def _next_logprobs(self, prefix: torch.Tensor, memory: Memory) -> torch.Tensor:
        return torch.log_softmax(self.logits(self.hidden(prefix, memory)[:, -1]).float(), dim=-1)

    def _limit(self, max_tokens: int) -> int:
        if not 1 <= max_tokens <= self.cfg.max_positions - 1:
            raise ValueError(f"the answer length limit must be 1..{self.cfg.max_positions - 1}, got {max_tokens}")
        return max_tokens

    @torch.no_grad()
    def greedy(self, memory: Memory, max_tokens: int) -> list[Hypothesis]:
        """The most likely next token at every step, for a whole batch at once. At the length limit an answer
        ends if the end token is the most likely next one, else it is cut there (its score is its tokens')."""
        limit = self._limit(max_tokens)
        b = memory.states.shape[0]
        prefix = torch.full((b, 1), self.bos, dtype=torch.long, device=memory.states.device)
        score = [0.0] * b
        ids: list[list[int]] = [[] for _ in range(b)]
        finished, stopped = [False] * b, [False] * b
        for length in range(limit + 1):
            logp = self._next_logprobs(prefix, memory)
            best = logp.argmax(dim=-1)
            for row in range(b):
                if stopped[row]:
                    continue
                token = int(best[row])
                if token == self.eos:
                    score[row] += float(logp[row, token])
                    finished[row] = stopped[row] = True
                elif length == limit:
                    stopped[row] = True  # cut
                else:
                    score[row] += float(logp[row, token])
                    ids[row].append(token)
            if all(stopped):
                break
            prefix = torch.cat([prefix, best[:, None]], dim=1)
        return [Hypothesis(tuple(ids[r]), score[r], finished[r]) for r in range(b)]

    @torch.no_grad()
    def beam(self, memory: Memory, beams: int, max_tokens: int) -> list[Hypothesis]:
        """Beam search for ONE question (a batch-1 memory): up to `beams` answers, best first by summed
        log-probability (no length penalty: answers are a few tokens). A beam ends when the end token is among
        its `beams` best continuations; at the length limit the others are cut. With beams=1 this is greedy."""
        limit = self._limit(max_tokens)
        if beams < 1:
            raise ValueError(f"beams must be >= 1, got {beams}")
        live: list[tuple[list[int], float]] = [([], 0.0)]
        finished: list[Hypothesis] = []
        for length in range(limit + 1):
            prefix = torch.tensor([[self.bos, *ids] for ids, _ in live], dtype=torch.long, device=memory.states.device)
            logp = self._next_logprobs(prefix, memory.repeat(len(live)))
            candidates: list[tuple[float, list[int], int]] = []
            for row, (ids, score) in enumerate(live):
                top = torch.topk(logp[row], beams)
                tokens = top.indices.tolist()
                if length == limit:  # no more tokens: end here if the end token is among the best, else cut
                    end = self.eos in tokens
                    finished.append(Hypothesis(tuple(ids), score + float(logp[row, self.eos]) if end else score, end))
                    continue
                candidates += [(score + float(v), ids, t) for v, t in zip(top.values.tolist(), tokens)]
            candidates.sort(key=lambda c: -c[0])  # stable: ties keep beam order, then token rank
            live = []
            for score, ids, token in candidates:
                if token == self.eos:
                    finished.append(Hypothesis(tuple(ids), score, True))
                else:
                    live.append(([*ids, token], score))
                if len(live) == beams:
                    break
            finished.sort(key=lambda h: -h.logprob)
            best_live = max((s for _, s in live), default=float("-inf"))
            if not live or len(finished) >= beams and finished[beams - 1].logprob >= best_live:
                break  # summed log-probabilities only fall: no live beam can still enter the top `beams`
        return _dedupe(finished)[:beams]


def _dedupe(hypotheses: list[Hypothesis]) -> list[Hypothesis]:
    """Best first, one per token sequence (a cut and a finished copy of the same ids keep the better one)."""
    seen, out = set(), []
    for h in sorted(hypotheses, key=lambda h: -h.logprob):
        if h.ids not in seen:
            seen.add(h.ids)
            out.append(h)
    return out
