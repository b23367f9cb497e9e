"""The sentiment scorer: its three backends, the disk cache, and the held-out choice."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from repro.text import sentiment


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 2-layer BERT with a WordPiece vocabulary, saved like a hub model."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    words = ["apple", "beats", "earnings", "expectations", "shares", "plunge", "after", "weak", "guidance", "the",
             "stock", "rises", "falls", "good", "bad"]
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    cfg = BertConfig(vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, num_labels=3,
                     id2label={0: "Neutral", 1: "Positive", 2: "Negative"},
                     label2id={"Neutral": 0, "Positive": 1, "Negative": 2})
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


TEXTS = ["Apple beats earnings expectations", "Shares plunge after weak guidance", "the stock rises",
         "the stock falls", "good", "bad"]


def test_vader_scores_and_cache(monkeypatch):
    scorer = sentiment.VaderScorer()
    scores = scorer.score(["good profit growth", "terrible loss, bankruptcy fears", "the report is out"])
    assert scores[0] > 0.3 and scores[1] < -0.3 and scores[2] == 0.0
    assert np.all(np.abs(scores) <= 1)
    # a second call is served from the disk cache: the analyser is never asked again
    monkeypatch.setattr(scorer, "_score", lambda texts: (_ for _ in ()).throw(AssertionError("not cached")))
    again = scorer.score(["the report is out", "good profit growth"])
    np.testing.assert_array_equal(again, scores[[2, 0]])
    assert (sentiment.paths.cache_dir() / "sentiment" / f"{scorer.key}.parquet").is_file()


def test_hf_classifier_is_p_positive_minus_p_negative(tiny_bert):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scorer = sentiment.HFClassifierScorer(str(tiny_bert))
    got = scorer.score(TEXTS)
    tok = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    with torch.inference_mode():
        probs = torch.softmax(model(**tok(TEXTS, padding=True, return_tensors="pt")).logits, -1).numpy()
    np.testing.assert_allclose(got, probs[:, 1] - probs[:, 2], atol=1e-6)  # labels: 1 Positive, 2 Negative
    # paper 001's rule: the top label's probability, negated only when that label is Negative
    paper = sentiment.HFClassifierScorer(str(tiny_bert), rule="paper")
    assert paper.key != scorer.key  # cached apart
    top = probs.argmax(1)
    np.testing.assert_allclose(paper.score(TEXTS), np.where(top == 2, -1, 1) * probs.max(1), atol=1e-6)
    with pytest.raises(ValueError, match="001's sign rule"):
        sentiment.HFClassifierScorer(str(tiny_bert), rule="vote")


def test_hf_classifier_errors(tiny_bert, tmp_path):
    with pytest.raises(sentiment.SentimentModelError, match="huggingface-cli download"):
        sentiment.HFClassifierScorer(str(tmp_path / "no-such-model"))
    with pytest.raises(sentiment.SentimentModelError, match="no 'positive' and 'negative'"):
        sentiment._label_values({0: "LABEL_0", 1: "LABEL_1"})


def test_sentence_encoder_keeps_order_and_normalises(tiny_bert):
    enc = sentiment.SentenceEncoder(str(tiny_bert), batch_size=2)  # batches sorted by length internally
    emb = enc.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    one_by_one = np.vstack([enc.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(emb, one_by_one, atol=1e-5)


def test_embedding_head_is_ridge_on_embeddings_and_keys_its_training_data(tiny_bert):
    from sklearn.linear_model import Ridge

    enc = sentiment.SentenceEncoder(str(tiny_bert))
    labels = [0.8, -0.7, 0.5, -0.5, 0.6, -0.6]
    head = sentiment.EmbeddingHeadScorer(enc, alphas=[0.01]).fit(TEXTS, labels)
    emb = enc.encode(TEXTS)
    expected = np.clip(Ridge(alpha=0.01).fit(emb, labels).predict(emb), -1, 1)
    np.testing.assert_allclose(head.score(TEXTS), expected, atol=1e-6)
    other = sentiment.EmbeddingHeadScorer(enc, alphas=[0.01]).fit(TEXTS, [-x for x in labels])
    assert other.key != head.key  # different training labels, different cache
    with pytest.raises(RuntimeError, match="not trained"):
        sentiment.EmbeddingHeadScorer(enc).score(["x"])


@pytest.mark.skipif(not os.environ.get("REPRO_DATA_MIRROR"), reason="needs the labelled texts (REPRO_DATA_MIRROR)")
def test_minilm_encoder_matches_sentence_transformers_and_beats_vader():
    from sentence_transformers import SentenceTransformer

    from repro.data import sentiment as labelled_data

    texts = ["Apple beats earnings expectations", "$AMZN shares plunge after weak guidance http://t.co/x"]
    ours = sentiment.SentenceEncoder().encode(texts)
    ref = SentenceTransformer(sentiment.minilm_path(), device="cpu").encode(texts)
    np.testing.assert_allclose(ours, ref, atol=2e-5)

    best, table = sentiment.select_scorer(labelled_data.labelled(["fiqa", "semeval"]), seed=0)
    assert list(table["backend"]) == ["minilm", "vader"] and best.name == "minilm"
    assert table.loc[0, "pearson"] > 0.5 and table.loc[0, "sign_accuracy"] > 0.7
    assert table.loc[0, "n"] == 592  # 20% of the 2,962 distinct labelled texts


def test_held_out_split_is_disjoint_and_seeded():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(50)], "score": np.linspace(-1, 1, 50)})
    a_train, a_test = sentiment.held_out_split(frame, 0.2, seed=3)
    b_train, b_test = sentiment.held_out_split(frame, 0.2, seed=3)
    assert len(a_test) == 10 and set(a_train["text"]).isdisjoint(a_test["text"])
    pd.testing.assert_frame_equal(a_test, b_test)


def test_make_scorer_errors():
    with pytest.raises(ValueError, match="hf backend needs a model"):
        sentiment.make_scorer("hf")
    with pytest.raises(ValueError, match="unknown sentiment backend"):
        sentiment.make_scorer("finbert")
