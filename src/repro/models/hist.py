"""HIST (Xu et al. 2021) and MTMD's memory-aware aggregators (paper 004, section III), on the day interface.

One call is one trading day: ``x`` (N stocks, T days, F features), ``mask`` (N,) of the stocks that exist that
day, and for :class:`HIST` the side input ``weight`` (N,), the market-value stand-in of [004 eq. 4]. Stocks with
``mask`` False never reach another stock's score (every cross-stock sum, softmax and top-k skips them).

* :class:`HIST` -- GRU encoder [004 eq. 2], predefined concept block [004 eq. 3] to [004 eq. 7] and
  [004 eq. 13] to [004 eq. 15], hidden concept block [004 eq. 8] to [004 eq. 10], individual block [004 eq. 11]
  and [004 eq. 12], doubly residual, regressor summing the three forecast features [004 eq. 21], [004 eq. 22].
  ``memory=("predefined", "hidden")`` adds a :class:`MemoryBlock` after each concept block: that is MTMD;
  ``memory=()`` is plain HIST.
* :class:`MemoryBlock` -- the memory-aware aggregator's global part: reading [004 eq. 16] to [004 eq. 18] and
  memorising [004 eq. 19], [004 eq. 20].
* :class:`MLPMemory` -- the MLP backbone of [004] Table VII, with or without a memory block before its head.
* :func:`concept_matrix` -- predefined concepts (industry, province) from :mod:`repro.data.cn_industry`.

The equation symbols were lost in the paper's text extraction, so where the text is open the reference code
decides: ``MingjieWang0606/MTMD-Public`` (``model2.py``, ``learn_memory.py``; HEAD 0e2a893) and
``Wentao-Xu/HIST`` (``model.py``, ``learn.py``; HEAD 149114c). Written from reading them; nothing copied.

Where this follows the code rather than the paper's words:

* [004 eq. 5] stock-to-concept scores are dot products (the code; the text says cosine), softmax over the day's
  stocks; the corrected concept [004 eq. 7] is that softmax-weighted mean of the stocks, with no linear layer or
  activation (the code has none there). The linear layer is the one of [004 eq. 15] (``fc_ps``).
* [004 eq. 14] each stock spreads over *all* of the day's concepts (soft links), not only its own ones.
* [004 eq. 9] each stock links to its ``hidden_k`` most similar other stocks (``learn.py``'s ``--K`` default 1:
  "the concept with the greatest similarity"); a stock chosen by anyone becomes a hidden concept and keeps its
  self-link (weight = its self-similarity, 1); concept = similarity-weighted *sum* of its linked stocks.
* [004 eq. 17] "batch normalisation among the stocks" is, in the code, a softmax of the scores over the day's
  stocks (``get_score``'s ``score_query``); no BatchNorm layer exists. That is what :meth:`MemoryBlock.read`
  returns as the matching probabilities. The read itself [004 eq. 18] weights the items by a softmax over the
  items, detached from the graph as the code does (``detach_weights``): the memory read passes gradient to the
  query only through the element-wise product.
* The read output replaces the stock-concept feature, so the backcast removed before the next block is that of
  the memory-refined ("global") feature [004 section III, "This global feature will be removed ...].
* Memory init: uniform [0, 1) rows, L2-normalised (``F.normalize(torch.rand(96, 64))``), here from a seeded
  generator.

Defects of the reference code, and what this module does instead:

1. ``learn_memory.main`` discards the memory that ``train_epoch`` returns, so validation and test read the random
   initial memory, never the trained one. Here the memory is a registered buffer updated in place of the module's
   state: what training wrote is what evaluation reads, and it is saved and restored with ``state_dict`` (also by
   the protocol's best-epoch copy).
2. The memory shape is hard-coded ``(96, 64)`` and ``--hidden_size`` is never passed to HIST (README runs 128,
   the model runs 64). Here items and width follow ``memory_items`` and ``hidden``.
3. ``upload`` hard-codes ``.cuda()`` and ``forward`` takes ``torch.get_device(x)`` (-1 on CPU): no CPU path. Here
   every tensor follows the input's device.
4. ``upload`` loops over the items in Python; here the update is one batched gather.
5. ``upload`` updates with the *read output* (query times read-out memory) and recomputes its scores; the paper
   updates with the query and the matching probabilities of the read [004 eq. 19] to [004 eq. 20]. Here: the query (the
   stock-concept feature before the read), detached, and the read's probabilities.
6. ``upload`` sends every stock to its single nearest item (``gathering_indices``) and computes, but never uses,
   each item's top stock (``updating_indices``); the paper selects top-k stocks. Here each item absorbs its
   ``topk`` stocks by the matching probability of [004 eq. 17] (a reading of the garbled [004 eq. 20]: the text's
   "sort all stocks by their sum" could also mean one stock ranking shared by all items).
7. HIST's concept weights divide by ``sum + 1`` instead of the sum ([004 eq. 4] is a proportion), which makes the
   result depend on the market-value unit (the scripts divide by 1e9). Here a proper weighted mean; stocks with a
   missing, zero or negative weight, and absent stocks, do not count.
8. Concepts are dropped when their *embedding* sums to exactly 0 (``hidden[hidden.sum(1) != 0]``), a numerical
   accident test; here a predefined concept exists when it has an existing member of positive weight that day, a
   hidden concept when an existing stock chose it.
9. ``fc_out_ps``, ``fc_out_hs`` and ``fc_out_indi`` are built and evaluated but never reach the loss; not built
   here. ``.squeeze()`` returns a 0-d tensor for a one-stock day; here always (N,).
10. Runs are unseeded (``seed = np.random.randint(1000000)``) and the memory comes from the global RNG; here the
    memory's generator is seeded (by default from ``torch``'s global RNG, drawn after every layer is built, so
    HIST with and without memory start from the same weights under one ``torch.manual_seed``).
11. ``model2.MLP`` hard-codes 360 inputs. Here ``n_inputs``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .panel_baselines import present_only
from .qlib_nets import alpha360_flat

BLOCKS = ("predefined", "hidden")
#: concept kinds -> column of :func:`repro.data.cn_industry.industries` ("area" is tushare's province)
CONCEPT_KINDS = {"industry": "industry", "province": "area", "area": "area"}


def _masked_softmax(scores: torch.Tensor, keep: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax along ``dim`` over the entries ``keep`` allows; 0 elsewhere and on slices with nothing kept.

    A finite fill instead of -inf keeps the gradient NaN-free when a whole slice is masked."""
    p = torch.softmax(scores.masked_fill(~keep, torch.finfo(scores.dtype).min), dim=dim)
    return p * keep


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity (rows of a x rows of b); 0 for a zero vector, as HIST sets NaN to 0."""
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


class MemoryBlock(nn.Module):
    """Memory items of MTMD's memory-aware aggregator [004 section III-B]: read (global aggregation) and
    memorise. ``memory`` (items, dim) is a buffer: no gradient, saved in ``state_dict``."""

    def __init__(self, dim: int, items: int = 96, topk: int = 5, seed: int = 0, detach_weights: bool = True):
        super().__init__()
        if items < 1 or topk < 1:
            raise ValueError(f"need items >= 1 and topk >= 1, got {items} and {topk}")
        self.topk, self.detach_weights = topk, detach_weights
        g = torch.Generator().manual_seed(int(seed))
        self.register_buffer("memory", F.normalize(torch.rand(items, dim, generator=g), dim=1))
        #: mean over the last read's existing stocks of their weights on each item (items,): what the items answer
        self.last_usage: torch.Tensor | None = None

    def read(self, query: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Global aggregation: returns (refined feature (N, D), matching probabilities (N, items)).

        scores = query @ memory^T [004 eq. 16]; matching probabilities = softmax of each item's scores over the
        existing stocks [004 eq. 17]; each stock's read-out = its softmax over the items times the memory, the
        refined feature = query * read-out, element-wise [004 eq. 18]."""
        keep = torch.ones(query.shape[0], dtype=torch.bool, device=query.device) if mask is None else mask.bool()
        memory = self.memory.to(query.dtype)
        scores = query @ memory.T  # [004 eq. 16]
        over_stocks = _masked_softmax(scores, keep[:, None], dim=0)  # [004 eq. 17]
        over_items = torch.softmax(scores, dim=1)
        weights = over_items.detach() if self.detach_weights else over_items
        self.last_usage = (over_items.detach() * keep[:, None]).sum(0) / keep.sum().clamp_min(1)
        return query * (weights @ memory), over_stocks  # [004 eq. 18]

    @torch.no_grad()
    def update(self, query: torch.Tensor, probs: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Memorise (training mode only, no-op in eval): each item absorbs its ``topk`` stocks.

        probs (the read's matching probabilities) are rescaled per item by their largest value [004 eq. 19];
        item m <- L2-normalise(m + sum over its top-k stocks s of rescaled prob(s, m) * query_s) [004 eq. 20].
        The query is detached: the memory learns by this rule, not by gradient."""
        if not self.training:
            return
        q, p = query.detach().to(self.memory.dtype), probs.detach().to(self.memory.dtype)
        if mask is not None:
            p = p * mask.bool()[:, None]
        rescaled = p / p.amax(dim=0, keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)  # [004 eq. 19]
        top = p.topk(min(self.topk, p.shape[0]), dim=0).indices  # (k, items): stocks per item
        # absent stocks can only be picked when fewer than k exist; their weight is 0
        delta = torch.einsum("km,kmd->md", rescaled.gather(0, top), q[top])
        # rebinding (not copy_) leaves the tensor an autograd graph may have saved untouched
        self.memory = F.normalize(self.memory + delta, dim=1)  # [004 eq. 20]


def _memory_seed(seed: int | None) -> int:
    """A given seed, or one drawn from torch's global RNG (so ``torch.manual_seed`` fixes the memory)."""
    return int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else int(seed)


class _UsageRecords:
    """Per-day notes of the memory's use while scoring (the protocol calls :meth:`reset_records` before the test
    days and reads :meth:`records` after): each eval call appends every block's mean item usage."""

    _log: dict[str, list] | None = None

    def reset_records(self) -> None:
        self._log = {}

    def _note(self, name: str, usage: torch.Tensor) -> None:
        self.last_item_usage[name] = usage
        if self._log is not None and not self.training:
            self._log.setdefault(name, []).append(usage.detach().float().cpu().numpy())

    def records(self) -> dict:
        """``memory_usage_<block>``: (scored days, items) mean matching probability of each item per day."""
        return {f"memory_usage_{k}": np.stack(v) for k, v in (self._log or {}).items() if v}


class HIST(_UsageRecords, nn.Module):
    """HIST, or MTMD with ``memory`` naming the concept blocks that get a :class:`MemoryBlock`.

    ``stock2concept`` (N_universe, K) 0/1 aligns with the rows of ``x``; ``hidden_k`` is HIST's ``K`` (links per
    stock in the hidden concept block); ``topk`` the stocks each memory item absorbs per training day;
    ``memory_seed`` seeds the memories (block i gets seed + i); None draws it from torch's global RNG."""

    side_inputs = ("weight",)

    def __init__(self, stock2concept: torch.Tensor, d_feat: int = 6, hidden: int = 64, layers: int = 2,
                 memory: tuple[str, ...] = (), memory_items: int = 96, topk: int = 5, dropout: float = 0.0,
                 hidden_k: int = 1, memory_seed: int | None = None):
        super().__init__()
        unknown = set(memory) - set(BLOCKS)
        if unknown:
            raise ValueError(f"unknown memory blocks {sorted(unknown)}; choose from {BLOCKS}")
        if stock2concept.dim() != 2:
            raise ValueError(f"stock2concept must be (stocks, concepts), got shape {tuple(stock2concept.shape)}")
        self.register_buffer("stock2concept", torch.as_tensor(stock2concept, dtype=torch.float32).clone())
        self.d_feat, self.hidden, self.hidden_k = d_feat, hidden, hidden_k
        self.memory_names = tuple(b for b in BLOCKS if b in memory)
        self.encoder = nn.GRU(d_feat, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        linear = lambda: nn.Linear(hidden, hidden)  # noqa: E731
        self.fc_ps, self.fc_ps_fore, self.fc_ps_back = linear(), linear(), linear()
        self.fc_hs, self.fc_hs_fore, self.fc_hs_back = linear(), linear(), linear()
        self.fc_indi = linear()
        for m in self.modules():  # HIST's init of its hidden-to-hidden layers
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        self.fc_out = nn.Linear(hidden, 1)
        self.act = nn.LeakyReLU()
        seed = _memory_seed(memory_seed) if self.memory_names else 0  # drawn last: same weights with or without
        self.memories = nn.ModuleDict({name: MemoryBlock(hidden, memory_items, topk, seed + i)
                                       for i, name in enumerate(self.memory_names)})
        #: per memory block, the last call's mean matching probability of each item (items,)
        self.last_item_usage: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor, index=None, mask: torch.Tensor | None = None,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        n = x.shape[0]
        if n != self.stock2concept.shape[0]:
            raise ValueError(f"x has {n} stocks, stock2concept {self.stock2concept.shape[0]}")
        valid = torch.ones(n, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        x = torch.where(valid[:, None, None], x, 0.0)  # absent rows may hold NaN; 0 keeps them finite
        h = present_only(lambda v: self.encoder(v)[0][:, -1], x, valid)  # [004 eq. 2], present stocks only
        if weight is None:
            w = valid.to(h.dtype)
        else:  # NaN, infinite, zero or negative weights: the stock does not count in its concepts
            w = torch.nan_to_num(weight.to(h.dtype), nan=0.0, posinf=0.0, neginf=0.0).clamp_min(0.0) * valid

        p = self._remember("predefined", self._predefined(h, w, valid), valid)
        p_back, out_ps = self.fc_ps_back(p), self.act(self.fc_ps_fore(p))  # backcast; forecast [004 eq. 21]
        u = h - p_back  # [004 eq. 8]: what the predefined concepts did not explain
        s = self._remember("hidden", self._hidden(u, valid), valid)
        s_back, out_hs = self.fc_hs_back(s), self.act(self.fc_hs_fore(s))
        out_indi = self.act(self.fc_indi(u - s_back))  # [004 eq. 11] to [004 eq. 12]
        return self.fc_out(out_ps + out_hs + out_indi).squeeze(-1)  # [004 eq. 22]

    def _predefined(self, h: torch.Tensor, w: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Predefined concept block: stock-concept feature (N, hidden), [004 eq. 3] to [004 eq. 7] and
        [004 eq. 13] to [004 eq. 15]."""
        a = self.stock2concept.to(h.dtype) * w[:, None]
        total = a.sum(0)
        present = total > 0  # concepts with an existing, weighted member today
        c0 = (a / total.clamp_min(torch.finfo(h.dtype).tiny)).T @ h  # weighted mean [004 eq. 3] to [004 eq. 4]
        # each concept over all stocks, [004 eq. 5] and [004 eq. 6]
        soft = _masked_softmax(h @ c0.T, valid[:, None], dim=0)
        c1 = soft.T @ h  # corrected concept [004 eq. 7]
        to_concept = _masked_softmax(_cosine(h, c1), present[None, :], dim=1)  # [004 eq. 13] to [004 eq. 14]
        return self.fc_ps(to_concept @ c1)  # [004 eq. 15]

    def _hidden(self, u: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Hidden concept block: every stock starts as a concept, links to its most similar others ([004 eq. 9],
        [004 eq. 10]), then the local aggregation as in the predefined block [004 eq. 13] to [004 eq. 15]."""
        n = u.shape[0]
        sim = _cosine(u, u)  # [004 eq. 9]
        eye = torch.eye(n, dtype=torch.bool, device=u.device)
        allowed = valid[:, None] & valid[None, :] & ~eye  # no self-links, no absent stocks
        chosen = torch.zeros_like(allowed)
        k = min(self.hidden_k, n - 1)
        if k > 0:
            top = sim.masked_fill(~allowed, float("-inf")).topk(k, dim=1).indices
            chosen = chosen.scatter(1, top, True) & allowed  # drop picks of -inf (too few existing stocks)
        is_concept = chosen.any(0)
        link = sim * chosen + torch.diag(sim.diagonal() * is_concept)  # a chosen stock keeps its own link
        concepts = link.T @ u  # [004 eq. 10]
        to_concept = _masked_softmax(_cosine(u, concepts), is_concept[None, :], dim=1)
        return self.fc_hs(to_concept @ concepts)

    def _remember(self, name: str, feature: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The block's memory read (and, in training, update); the feature unchanged without memory."""
        if name not in self.memories:
            return feature
        block = self.memories[name]
        refined, probs = block.read(feature, valid)
        block.update(feature, probs, valid)
        self._note(name, block.last_usage)
        return refined


class MLPMemory(_UsageRecords, nn.Module):
    """[004] Table VII's MLP backbone: ``layers`` x (Linear -> LeakyReLU) on the flattened window (qlib's column
    order), a :class:`MemoryBlock` on the last hidden layer when ``memory``, then a linear head. ``memory=False``
    is the plain MLP. Stocks are scored independently; ``mask`` only keeps absent stocks out of the memory."""

    side_inputs: tuple[str, ...] = ()

    def __init__(self, n_inputs: int = 360, hidden: int = 512, layers: int = 3, memory: bool = True,
                 memory_items: int = 96, topk: int = 5, dropout: float = 0.0, memory_seed: int | None = None):
        super().__init__()
        self.n_inputs = n_inputs
        parts: list[nn.Module] = []
        for i in range(layers):
            if i > 0 and dropout > 0:
                parts.append(nn.Dropout(dropout))
            parts += [nn.Linear(n_inputs if i == 0 else hidden, hidden), nn.LeakyReLU()]
        self.mlp = nn.Sequential(*parts)
        self.head = nn.Linear(hidden, 1)
        self.memory = MemoryBlock(hidden, memory_items, topk, _memory_seed(memory_seed)) if memory else None
        self.last_item_usage: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor, index=None, mask: torch.Tensor | None = None) -> torch.Tensor:
        valid = torch.ones(x.shape[0], dtype=torch.bool, device=x.device) if mask is None else mask.bool()
        flat = alpha360_flat(torch.where(valid[:, None, None], x, 0.0))
        if flat.shape[1] != self.n_inputs:
            raise ValueError(f"MLPMemory built for {self.n_inputs} inputs got {flat.shape[1]} (T*F)")
        h = self.mlp(flat)
        if self.memory is not None:
            refined, probs = self.memory.read(h, valid)
            self.memory.update(h, probs, valid)
            self._note("mlp", self.memory.last_usage)
            h = refined
        return self.head(h).squeeze(-1)


def concept_matrix(codes: list[str], kinds: tuple[str, ...] = ("industry", "province"),
                   min_members: int = 2) -> tuple[torch.Tensor, list[str]]:
    """HIST's stock-to-concept 0/1 matrix (len(codes), K) and the concept names ("industry:银行", ...).

    HIST's Tushare concept matrix is not public; industry and province (tushare ``stock_basic``) stand in.
    A missing value gives no concept; codes missing from the table (warned) get none; concepts with fewer than
    ``min_members`` of ``codes`` are dropped (a one-stock concept links its stock to nobody)."""
    from ..data import cn_industry

    bad = [k for k in kinds if k not in CONCEPT_KINDS]
    if bad or not kinds:
        raise ValueError(f"unknown concept kinds {bad or list(kinds)}; choose from {sorted(CONCEPT_KINDS)}")
    table = cn_industry.industries()
    upper = [str(c).upper() for c in codes]
    missing = [c for c in upper if c not in table.index]
    if missing:
        warnings.warn(f"{len(missing)} codes have no industry/province and get no concept: {missing[:10]}",
                      stacklevel=2)
    rows = table.reindex(upper)
    blocks = []
    for kind in kinds:
        values = rows[CONCEPT_KINDS[kind]]
        values = values.where(values.notna() & (values.astype(str).str.strip() != ""))
        blocks.append(pd.get_dummies(values, prefix=kind, prefix_sep=":", dtype=np.float32))
    matrix = pd.concat(blocks, axis=1)
    matrix = matrix.loc[:, matrix.sum(axis=0) >= min_members]
    values = torch.from_numpy(matrix.to_numpy(np.float32).copy()).reshape(len(upper), -1)
    return values, [str(c) for c in matrix.columns]


__all__ = ["BLOCKS", "CONCEPT_KINDS", "HIST", "MLPMemory", "MemoryBlock", "concept_matrix"]
