"""Paper 001's level 2 (section VI-G): a T5 that reads numbers as text and writes a number back.

Each example is serialised as

    input  "LSTM prediction 0.31 and sentiment score -0.27"
    target "actual target -0.52"

and a seq2seq T5 is fine-tuned on the pairs with teacher forcing; the number is parsed back out of the
generated text (NaN when it cannot be, so the caller can count failures instead of silently dropping rows).

No pretrained weights can be downloaded here, so the default (``model=None``) is a *small* T5 built from
``T5Config`` and trained from scratch, with a BPE tokenizer trained on the serialised training texts.
Its pre-tokenizer isolates every digit, '-' and '.', so any number -- seen in training or not -- is encoded
digit by digit and never as ``<unk>``. Passing ``model="t5-small"`` or a local folder fine-tunes that model
(and its own tokenizer) instead; a folder written by :meth:`NumberT5.save` loads the same way.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # T5's ids 0, 1, 2: pad doubles as the decoder start token
INPUT_TEMPLATE = "LSTM prediction {pred} and sentiment score {sentiment}"
TARGET_PREFIX = "actual target"
# T5's relative position bias is an additive attention mask, which sends SDPA down its generic path; on these
# ~20-token sequences plain ("eager") attention measured as fast or slightly faster per CPU training step.
# Fixed for every model (it is not saved in config.json), so a reloaded model computes what the trained one did.
ATTENTION = "eager"

# Tolerant of the spaces a decode may put between tokens ("actual target - 0 . 5 2"): whitespace is
# allowed around the sign, between digits and around the decimal point, and is removed before float().
_NUMBER_AFTER_TARGET = re.compile(
    r"actual\s*target\s*:?\s*(?P<sign>[-+]?)\s*(?P<int>\d(?:\s*\d)*)(?:\s*\.\s*(?P<frac>\d(?:\s*\d)*))?",
    flags=re.IGNORECASE,
)


class T5ModelError(RuntimeError):
    """A requested pretrained T5 (hub id or folder) could not be loaded."""


# ---------------------------------------------------------------------------------------------------------
# Serialisation and parsing
# ---------------------------------------------------------------------------------------------------------


def format_number(x: float, digits: int = 2) -> str:
    """``x`` with ``digits`` fixed decimals; negative zero ("-0.00") is written "0.00"."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"cannot serialise a non-finite number: {x}")
    text = f"{x:.{digits}f}"
    # A value that rounds to zero keeps its sign in Python's formatting; the model should not have to learn
    # two spellings of the same target.
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    return text


def format_input(pred: float, sentiment: float, digits: int = 2) -> str:
    """The model's input text, e.g. "LSTM prediction 0.31 and sentiment score -0.27"."""
    return INPUT_TEMPLATE.format(pred=format_number(pred, digits), sentiment=format_number(sentiment, digits))


def format_target(y: float, digits: int = 2) -> str:
    """The model's target text, e.g. "actual target -0.52"."""
    return f"{TARGET_PREFIX} {format_number(y, digits)}"


def serialise(preds, sentiments, digits: int = 2) -> list[str]:
    """:func:`format_input` over two equally long arrays."""
    preds, sentiments = np.asarray(preds, dtype=float).ravel(), np.asarray(sentiments, dtype=float).ravel()
    if preds.shape != sentiments.shape:
        raise ValueError(f"preds and sentiments differ in length: {preds.size} vs {sentiments.size}")
    return [format_input(p, s, digits) for p, s in zip(preds, sentiments)]


def serialise_targets(ys, digits: int = 2) -> list[str]:
    """:func:`format_target` over an array."""
    return [format_target(y, digits) for y in np.asarray(ys, dtype=float).ravel()]


def parse_number(text: str) -> float:
    """The number after "actual target" in ``text`` (spaces between its tokens allowed), else NaN."""
    match = _NUMBER_AFTER_TARGET.search(text or "")
    if match is None:
        return float("nan")
    number = match["sign"] + match["int"] + ("." + match["frac"] if match["frac"] else "")
    return float(re.sub(r"\s+", "", number))


def parse_numbers(texts) -> np.ndarray:
    """:func:`parse_number` over a list of texts, as a float array (NaN where unparsable)."""
    return np.array([parse_number(t) for t in texts], dtype=float)


# ---------------------------------------------------------------------------------------------------------
# Tokenizer and model
# ---------------------------------------------------------------------------------------------------------


@dataclass
class T5Settings:
    """Size and training of the from-scratch T5 (the architecture fields are ignored for a pretrained one)."""

    d_model: int = 64
    d_ff: int = 128
    num_layers: int = 2  # encoder and decoder each
    num_heads: int = 4
    d_kv: int = 16
    dropout: float = 0.1
    vocab_size: int = 128  # BPE training target; the vocabulary stops earlier once every word is merged
    lr: float = 1e-3  # AdamW
    batch_size: int = 32
    max_epochs: int = 60
    patience: int = 8  # epochs without a lower validation loss before stopping
    digits: int = 2  # decimals of the serialised numbers
    max_new_tokens: int = 12
    num_beams: int = 1  # 1: greedy decoding; the paper mentions beam search


def train_tokenizer(texts: list[str], vocab_size: int = 128):
    """A BPE tokenizer trained on ``texts`` in which every digit, '-' and '.' is a token of its own.

    Metaspace keeps word boundaries as a '▁' marker, so decoding gives back "actual target -0.52" rather
    than tokens joined by spaces; punctuation and digits are split off before BPE, so merges never form
    multi-digit tokens and an unseen number is spelled out of the always-present alphabet.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(),
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=list("0123456789-.▁"), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    # T5 ends every sequence with </s>: the encoder sees where the input stops and the decoder learns to stop.
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def _small_t5(settings: T5Settings, tokenizer):
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(vocab_size=len(tokenizer), d_model=settings.d_model, d_ff=settings.d_ff, d_kv=settings.d_kv,
                      num_layers=settings.num_layers, num_decoder_layers=settings.num_layers,
                      num_heads=settings.num_heads, dropout_rate=settings.dropout,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id, attn_implementation=ATTENTION)
    return T5ForConditionalGeneration(config)


def _load_pretrained(name: str):
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    try:
        model = T5ForConditionalGeneration.from_pretrained(name, attn_implementation=ATTENTION)
        tokenizer = AutoTokenizer.from_pretrained(name)
    except OSError as exc:
        # A hub id is "name" or "owner/name"; anything else was meant as a local folder.
        is_path = name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name or Path(name).exists()
        what = ("is not a folder holding a saved T5 (config.json, weights and tokenizer files)" if is_path
                else "is not in the local Hugging Face cache")
        raise T5ModelError(
            f"Could not load the T5 model {name!r}: it {what}. Pretrained weights cannot be downloaded on this "
            "machine (no access to the Hugging Face hub). Where there is internet, download them, e.g. "
            "`huggingface-cli download t5-small --local-dir t5-small` (newer hub versions: `hf download ...`), "
            "copy the folder here and pass model='<folder>'. Leaving model=None uses the offline default: "
            f"a small T5 trained from scratch with its own tokenizer. (Cause: {exc})"
        ) from exc
    return model, tokenizer


def _pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All sequences right-padded to the longest, and their lengths (batches are cut to their own longest)."""
    ids = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, torch.tensor([len(s) for s in seqs], dtype=torch.long)


def _cut(padded: tuple[torch.Tensor, torch.Tensor], idx) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``idx`` padded only to their own longest sequence (dynamic padding), with the attention mask."""
    ids, lengths = padded
    idx = torch.as_tensor(idx, dtype=torch.long)
    lengths = lengths[idx]
    width = int(lengths.max())
    mask = (torch.arange(width) < lengths[:, None]).long()
    return ids[idx, :width], mask


class NumberT5:
    """T5 mapping "LSTM prediction p and sentiment score s" to "actual target y" (paper 001, level 2)."""

    def __init__(self, settings: T5Settings | None = None, model: str | None = None, seed: int = 0,
                 device: str | None = None):
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()  # save/load would otherwise draw bars into notebooks and logs
        self.settings = settings or T5Settings()
        self.seed = seed
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model_name = model
        self.model = self.tokenizer = None
        if model is not None:
            self.model, self.tokenizer = _load_pretrained(str(model))
            self.model.to(self.device)
        self.history: pd.DataFrame | None = None

    # -- data -------------------------------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenise once up front (with the closing </s>); batches are then cut from the padded table."""
        return _pad(self.tokenizer(list(texts), add_special_tokens=True)["input_ids"], self.tokenizer.pad_token_id)

    def _loss(self, inputs, targets, idx) -> tuple[torch.Tensor, int]:
        """Mean token loss of one batch and its token count (for a token-weighted epoch mean)."""
        ids, mask = _cut(inputs, idx)
        labels, label_mask = _cut(targets, idx)
        # -100 is ignored by the loss; T5 shifts the labels right itself (teacher forcing).
        labels = labels.masked_fill(label_mask == 0, -100)
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                         labels=labels.to(self.device), use_cache=False)  # no key/value cache to build in training
        return out.loss, int(label_mask.sum())

    def _mean_loss(self, inputs, targets, batch_size: int = 256) -> float:
        """Token-weighted mean loss over encoded examples, in evaluation mode (no dropout)."""
        self.model.eval()
        total, count, n_rows = 0.0, 0, len(inputs[0])
        with torch.inference_mode():
            for start in range(0, n_rows, batch_size):
                loss, n = self._loss(inputs, targets, torch.arange(start, min(start + batch_size, n_rows)))
                total, count = total + loss.item() * n, count + n
        return total / count

    def loss(self, inputs: list[str], targets: list[str]) -> float:
        """Mean cross-entropy per target token (the ``valid_loss`` of the history) of the current model."""
        self._require_model()
        return self._mean_loss(self._encode(inputs), self._encode(targets))

    # -- training -------------------------------------------------------------------------------------

    def _devices(self) -> list[int]:
        return [self.device.index or 0] if self.device.type == "cuda" else []

    def _start(self, inputs: list[str], targets: list[str]):
        """Seed; from scratch, train the tokenizer on the training texts and build a fresh model; encode the
        training pairs once (batches only pad). Returns (inputs, targets, optimiser, batch-order generator)."""
        torch.manual_seed(self.seed)
        if self.model_name is None:
            self.tokenizer = train_tokenizer(list(inputs) + list(targets), self.settings.vocab_size)
            self.model = _small_t5(self.settings, self.tokenizer).to(self.device)
        x, y = self._encode(inputs), self._encode(targets)
        # fused: one kernel for all parameters; the per-tensor loop costs as much as a small model's step.
        optimiser = torch.optim.AdamW(self.model.parameters(), lr=self.settings.lr, fused=True)
        return x, y, optimiser, torch.Generator().manual_seed(self.seed)

    def _train_epoch(self, x, y, optimiser, order_rng: torch.Generator) -> float:
        """One pass over the encoded pairs in a random order; the token-weighted mean training loss."""
        self.model.train()
        total, count = 0.0, 0
        order = torch.randperm(len(x[0]), generator=order_rng)
        for start in range(0, len(order), self.settings.batch_size):
            loss, n = self._loss(x, y, order[start: start + self.settings.batch_size])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, count = total + loss.item() * n, count + n
        return total / count

    def train_one_epoch(self, inputs: list[str], targets: list[str]) -> float:
        """The first training epoch of :meth:`fit` (same tokenizer, weights and batches), without its
        validation: its seconds (the tokenizer and the encoding not counted). For ``repro.bench``."""
        with torch.random.fork_rng(devices=self._devices()):
            x, y, optimiser, order_rng = self._start(inputs, targets)
            start = time.perf_counter()
            self._train_epoch(x, y, optimiser, order_rng)
            seconds = time.perf_counter() - start
        self.model.eval()
        return seconds

    def fit(self, inputs: list[str], targets: list[str], valid_inputs: list[str],
            valid_targets: list[str]) -> pd.DataFrame:
        """Train with teacher forcing and early stopping on the validation loss; keep the best epoch.

        From scratch, the tokenizer is trained on the training inputs and targets only (never on validation
        text) and a fresh model is built, so repeated fits are independent. A loaded model is fine-tuned.
        Returns the history: one row per epoch with ``epoch, train_loss, valid_loss`` (mean token loss).
        """
        s = self.settings
        if len(inputs) != len(targets) or len(valid_inputs) != len(valid_targets):
            raise ValueError("inputs and targets must have equal lengths")
        if not inputs or not valid_inputs:
            raise ValueError("fit needs training and validation examples")
        # fork_rng: the seed fixes initialisation and dropout without changing the caller's global RNG.
        with torch.random.fork_rng(devices=self._devices()):
            x, y, optimiser, order_rng = self._start(inputs, targets)
            vx, vy = self._encode(valid_inputs), self._encode(valid_targets)
            best, best_state, waited, rows = math.inf, None, 0, []
            for epoch in range(1, s.max_epochs + 1):
                train_loss = self._train_epoch(x, y, optimiser, order_rng)
                valid_loss = self._mean_loss(vx, vy)
                rows.append({"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss})

                if valid_loss < best:
                    best, waited = valid_loss, 0
                    best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                else:
                    waited += 1
                    if waited >= s.patience:
                        break
            if best_state is None:
                raise RuntimeError(f"the validation loss was never finite: {rows[-1]['valid_loss']}")
            self.model.load_state_dict(best_state)
        self.model.eval()
        self.history = pd.DataFrame(rows, columns=["epoch", "train_loss", "valid_loss"])
        return self.history

    # -- inference ------------------------------------------------------------------------------------

    def _require_model(self):
        if self.model is None:
            raise RuntimeError("NumberT5 has no model yet: call fit() first (or pass model=<folder>)")

    def generate(self, inputs: list[str], batch_size: int = 128) -> list[str]:
        """Decoded outputs for ``inputs`` (greedy, or beam search when ``settings.num_beams > 1``)."""
        self._require_model()
        if len(inputs) == 0:
            return []
        s = self.settings
        self.model.eval()
        encoded = self._encode(inputs)
        texts: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(inputs), batch_size):
                ids, mask = _cut(encoded, torch.arange(start, min(start + batch_size, len(inputs))))
                out = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                          max_new_tokens=s.max_new_tokens, num_beams=s.num_beams, do_sample=False)
                texts += self.tokenizer.batch_decode(out, skip_special_tokens=True)
        return [t.strip() for t in texts]

    def predict(self, inputs: list[str], batch_size: int = 128) -> tuple[np.ndarray, list[str]]:
        """Parsed numbers (NaN where the text has none -- count them, never drop) and the generated texts."""
        texts = self.generate(inputs, batch_size=batch_size)
        return parse_numbers(texts), texts

    def save(self, folder) -> Path:
        """Write model and tokenizer with ``save_pretrained``; ``NumberT5(model=folder)`` loads them back."""
        self._require_model()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        return folder
