"""Labelled financial sentiment: FiQA 2018 task 1, SemEval-2017 task 5, Financial PhraseBank.

All three give a text and a sentiment; this module returns one tidy table with a
``score`` in [-1, 1] so a scorer can be trained and evaluated on them.

* FiQA 2018 task 1 (``dayanfcosta/fiqa-2018-task1``; no licence stated): headlines and
  microblog posts with a score per (target, aspect); a sentence's score is the mean over
  its targets. Only the training files carry scores.
* SemEval-2017 task 5 (``tonytan48/SentimentAnalysis-BERT`` copy of the official data;
  annotations CC BY-NC-SA 4.0): microblogs (only the annotated spans are distributed, not
  the full message) and headlines. Only the training files carry scores.
* Financial PhraseBank v1.0 (CC BY-NC-SA 3.0): sentences labelled positive / neutral /
  negative by 5-8 annotators; mapped to +1 / 0 / -1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import pandas as pd

from ._frames import check_names
from ._store import Source, Upstream, read_text

SOURCE = Source(
    "sentiment",
    "Labelled financial sentiment",
    {
        "fiqa": Upstream("dayanfcosta/fiqa-2018-task1", "acd0f4cfafa6421774bc8f009e8fa3e0ec441357", "none stated"),
        "semeval": Upstream(
            "tonytan48/SentimentAnalysis-BERT", "93e8371f19dcf9a505ddf4433a1121bbe6d3f669", "CC BY-NC-SA 4.0"
        ),
        "phrasebank": Upstream(
            "Alexis-Fauxbaton/Financial-News-Sentiment-Analysis",
            "c1b73e2c858aa0975ec0279db15a8ac033173130",
            "CC BY-NC-SA 3.0",
        ),
    },
)

DATASETS = ("fiqa", "semeval", "phrasebank")
PHRASEBANK_AGREEMENT = ("50", "66", "75", "All")
COLUMNS = ["dataset", "subset", "id", "text", "score"]


def _json(mirror: str, key: str, path: str):
    return json.loads(read_text(SOURCE.file(mirror, key, path)))


def fiqa() -> pd.DataFrame:
    """FiQA task 1 training sentences (headlines and posts) with their mean score."""
    rows = []
    for subset in ("headline", "post"):
        name = f"task1_{subset}_ABSA_train.json"
        data = _json(f"sentiment/fiqa_task1/{name}", "fiqa", f"datasets/{name}")
        for item_id, item in data.items():
            scores = [float(info["sentiment_score"]) for info in item["info"]]
            rows.append(("fiqa", subset, f"{subset}-{item_id}", item["sentence"], sum(scores) / len(scores)))
    return pd.DataFrame(rows, columns=COLUMNS)


def semeval() -> pd.DataFrame:
    """SemEval-2017 task 5 training items: microblog spans (joined) and headlines."""
    sub1 = "semeval-2017-task-5-subtask-1"
    sub2 = "semeval-2017-task-5-subtask-2"
    blogs = _json(f"sentiment/semeval2017_task5/{sub1}/Microblog_Trainingdata.json", "semeval",
                  f"{sub1}/Microblog_Trainingdata.json")
    heads = _json(f"sentiment/semeval2017_task5/{sub2}/Headline_Trainingdata.json", "semeval",
                  f"{sub2}/Headline_Trainingdata.json")
    rows = [("semeval", "microblog", f"microblog-{b['id']}", " ".join(b["spans"]), float(b["sentiment score"]))
            for b in blogs]
    rows += [("semeval", "headline", f"headline-{h['id']}", h["title"], float(h["sentiment"])) for h in heads]
    return pd.DataFrame(rows, columns=COLUMNS)


def phrasebank(agreement: str = "All") -> pd.DataFrame:
    """Financial PhraseBank sentences with at least ``agreement`` % annotator agreement."""
    (agreement,) = check_names([str(agreement)], PHRASEBANK_AGREEMENT, "PhraseBank agreement level")
    name = f"Sentences_{agreement}Agree.txt"
    # Upstream encodings differ: 50Agree is UTF-8, the others ISO-8859-1.
    encoding = "utf-8" if agreement == "50" else "latin-1"
    text = read_text(
        SOURCE.file(f"sentiment/financial_phrasebank/{name}.gz", "phrasebank", f"FinancialPhraseBank/{name}"),
        encoding=encoding,
    )
    label = {"positive": 1.0, "neutral": 0.0, "negative": -1.0}
    rows = []
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        sentence, _, tag = line.rpartition("@")
        rows.append(("phrasebank", f"{agreement}agree", f"pb{agreement}-{i}", sentence.strip(), label[tag.strip()]))
    return pd.DataFrame(rows, columns=COLUMNS)


def labelled(datasets: Iterable[str] = ("fiqa", "semeval")) -> pd.DataFrame:
    """The chosen labelled sets in one table: dataset, subset, id, text, score in [-1, 1].

    Empty texts are dropped and exact duplicate texts are kept once (their scores averaged),
    so a held-out split cannot contain a text seen in training.
    """
    names = check_names(datasets, DATASETS, "sentiment data set")
    loaders = {"fiqa": fiqa, "semeval": semeval, "phrasebank": phrasebank}
    frame = pd.concat([loaders[n]() for n in names], ignore_index=True)
    frame = frame[frame["text"].str.strip() != ""]
    frame = frame.groupby("text", sort=False, as_index=False).agg(
        dataset=("dataset", "first"), subset=("subset", "first"), id=("id", "first"), score=("score", "mean")
    )
    return frame[COLUMNS].reset_index(drop=True)


def prefetch() -> None:
    labelled(DATASETS)
    for level in PHRASEBANK_AGREEMENT:
        phrasebank(level)
