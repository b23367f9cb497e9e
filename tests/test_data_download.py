"""The upstream download path, end to end, without internet.

A fake GitHub (``http.server`` on 127.0.0.1, port 0) serves

* raw files at ``<raw>/<owner>/<repo>/<commit>/<path>``, built from the mirror (its ``.gz`` files
  decompressed: upstream holds the uncompressed bytes, which the manifests' upstream lines hash), and
* a codeload-style archive at ``<codeload>/<owner>/<repo>/tar.gz/<commit>`` whose members are
  ``<repo>-<commit>/tweet/...``, built from the mirror's tweet tarballs.

The package is pointed at it with ``REPRO_GITHUB_RAW`` / ``REPRO_GITHUB_CODELOAD``, with
``REPRO_DATA_MIRROR`` unset and ``REPRO_CACHE_DIR`` in a temporary folder. The fake's files are
checked against the manifests first, so nothing here invents a hash.

Not covered: WDI and cn_qlib downloads. WDI upstream is one ``data.csv`` per indicator with every
country, the mirror keeps only the USA rows; cn_qlib upstream is per-stock ``.bin`` files running
to 2026, the mirror holds a trimmed archive. Neither can be rebuilt byte for byte from the mirror,
and the manifest pins the upstream bytes.
"""

from __future__ import annotations

import gzip
import io
import os
import socket
import tarfile
import threading
import types
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from repro.data import (
    ChecksumError,
    MissingDataError,
    _store,
    cn_industry,
    cn_qlib,
    mamballm,
    reuters,
    sentiment,
    stocknet,
    us_prices,
)
from repro.data._store import FileSet, sha256_file

pytestmark = pytest.mark.skipif(
    not os.environ.get("REPRO_DATA_MIRROR"),
    reason="REPRO_DATA_MIRROR is not set: the fake GitHub is built from the offline data mirror "
    "(e.g. REPRO_DATA_MIRROR=/work/shared/data; CI sets it)",
)

# (source module, upstream key, upstream path, mirror path): files the mirror holds verbatim or gzipped
RAW_FILES = [
    (stocknet, "stocknet", "StockTable", "stocknet/StockTable"),
    (stocknet, "stocknet", "price/raw/AAPL.csv", "stocknet/price/raw/AAPL.csv.gz"),
    (stocknet, "stocknet", "price/raw/MSFT.csv", "stocknet/price/raw/MSFT.csv.gz"),
    (reuters, "reuters", "input/news_reuters.csv", "reuters/news_reuters.csv.gz"),
    (mamballm, "mamballm", "GSPC_processed_results_7b.csv", "mamballm/GSPC_processed_results_7b.csv.gz"),
    (us_prices, "sicheng", "data/AAPL.csv", "us_prices/sicheng_sp500_2003_2023/AAPL.csv.gz"),
    (us_prices, "quantedge", "data/AAPL.csv", "us_prices/quantedge_2021_2026/AAPL.csv.gz"),
    (cn_industry, "stock_agent", "build/stock_basic.json", "cn_industry/stock_basic.json.gz"),
    (sentiment, "fiqa", "datasets/task1_headline_ABSA_train.json",
     "sentiment/fiqa_task1/task1_headline_ABSA_train.json"),
    (sentiment, "fiqa", "datasets/task1_post_ABSA_train.json", "sentiment/fiqa_task1/task1_post_ABSA_train.json"),
    (sentiment, "phrasebank", "FinancialPhraseBank/Sentences_AllAgree.txt",
     "sentiment/financial_phrasebank/Sentences_AllAgree.txt.gz"),
    (cn_qlib, "hist", "data/csi300_stock_index.npy", "cn_qlib/csi300_stock_index.npy"),
]
# tweet folders put into the codeload archive
ARCHIVE_FOLDERS = [("preprocessed", "AAPL"), ("preprocessed", "MSFT"), ("raw", "MSFT")]

STOCKNET = stocknet.SOURCE.upstreams["stocknet"]
ARCHIVE_PATH = f"/codeload/{STOCKNET.repo}/tar.gz/{STOCKNET.commit}"


def raw_path(module, key: str, path: str) -> str:
    up = module.SOURCE.upstreams[key]
    return f"/raw/{up.repo}/{up.commit}/{path}"


def flip_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[len(damaged) // 2] ^= 0x01
    return bytes(damaged)


# --------------------------------------------------------------------------- the fake GitHub
@dataclass
class FakeGitHub:
    root: Path
    requests: list[str] = field(default_factory=list)
    override: dict[str, bytes] = field(default_factory=dict)  # URL path -> bytes served instead
    server: ThreadingHTTPServer | None = None

    address: tuple[str, int] = ("127.0.0.1", 0)

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                fake.requests.append(path)
                if path in fake.override:
                    body = fake.override[path]
                else:
                    target = fake.root / path.lstrip("/")
                    if not target.is_file():
                        self.send_error(404)
                        return
                    body = target.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = self.server.server_address[:2]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture(scope="module")
def fake_tree(tmp_path_factory) -> Path:
    mirror = Path(os.environ["REPRO_DATA_MIRROR"])
    root = tmp_path_factory.mktemp("fake_github")
    for module, key, path, mirror_rel in RAW_FILES:
        data = (mirror / mirror_rel).read_bytes()
        if mirror_rel.endswith(".gz"):
            data = gzip.decompress(data)
        target = root / raw_path(module, key, path).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    # codeload archive: "<repo>-<commit>/<path>" for every member, as GitHub writes it
    prefix = f"{STOCKNET.repo.split('/')[1]}-{STOCKNET.commit}/"
    archive = root / ARCHIVE_PATH.lstrip("/")
    archive.parent.mkdir(parents=True)
    with tarfile.open(archive, "w:gz", compresslevel=1) as out:
        for kind, ticker in ARCHIVE_FOLDERS:
            with tarfile.open(mirror / f"stocknet/tweet/{kind}/{ticker}.tar.gz") as src:
                for member in src.getmembers():
                    fh = src.extractfile(member) if member.isfile() else None
                    member.name = prefix + member.name
                    out.addfile(member, fh)
    return root


@pytest.fixture
def github(fake_tree):
    fake = FakeGitHub(fake_tree)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def upstream(github, tmp_path, monkeypatch):
    """Read from the fake GitHub into an empty cache (call after computing mirror references)."""

    def switch(raw: str | None = None, codeload: str | None = None) -> Path:
        cache = tmp_path / "cache"
        monkeypatch.delenv("REPRO_DATA_MIRROR", raising=False)
        monkeypatch.setenv("REPRO_CACHE_DIR", str(cache))
        monkeypatch.setenv("REPRO_GITHUB_RAW", raw or f"{github.url}/raw")
        monkeypatch.setenv("REPRO_GITHUB_CODELOAD", codeload or f"{github.url}/codeload")
        return cache

    return switch


@pytest.fixture
def no_sleep(monkeypatch):
    """Retries back off with time.sleep; record the waits instead of waiting."""
    waits: list[float] = []
    monkeypatch.setattr(_store, "time", types.SimpleNamespace(sleep=waits.append))
    return waits


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")] if folder.exists() else []


# --------------------------------------------------------------------------- the fake is faithful
def test_fake_github_matches_manifests(fake_tree):
    for module, key, path, _ in RAW_FILES:
        up = module.SOURCE.upstreams[key]
        served = fake_tree / raw_path(module, key, path).lstrip("/")
        assert sha256_file(served) == module.SOURCE.expected(up.location(path)), path
    prefix = f"{STOCKNET.repo.split('/')[1]}-{STOCKNET.commit}/"
    for kind, ticker in ARCHIVE_FOLDERS:
        folder = f"tweet/{kind}/{ticker}/"
        digest = FileSet(fake_tree / ARCHIVE_PATH.lstrip("/"), prefix=prefix + folder).digest()
        assert digest == stocknet.SOURCE.expected(STOCKNET.location(folder)), folder


# --------------------------------------------------------------------------- downloads equal the mirror
def test_stocknet_prices_download_equals_mirror(github, upstream):
    expected = stocknet.prices("AAPL")
    expected_panel = stocknet.prices_panel(["AAPL", "MSFT"], "2014-01-01", "2015-12-31")
    cache = upstream()
    got = stocknet.prices("AAPL")
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(stocknet.prices_panel(["AAPL", "MSFT"], "2014-01-01", "2015-12-31"),
                                  expected_panel)
    cached = cache / "stocknet" / "upstream" / "yumoxu+stocknet-dataset" / "price" / "raw" / "AAPL.csv"
    assert sha256_file(cached) == stocknet.SOURCE.expected(STOCKNET.location("price/raw/AAPL.csv"))
    assert raw_path(stocknet, "stocknet", "price/raw/AAPL.csv") in github.requests
    assert not partial_files(cache)


def test_reuters_download_equals_mirror(github, upstream):
    expected = reuters.headlines()
    upstream()
    pd.testing.assert_frame_equal(reuters.headlines(), expected)
    assert github.requests == [raw_path(reuters, "reuters", "input/news_reuters.csv")]


def test_other_single_file_sources_download_equal_mirror(github, upstream):
    readers = {
        "mamballm": mamballm.gspc_texts,
        "sicheng": lambda: us_prices.sicheng("AAPL"),
        "quantedge": lambda: us_prices.quantedge("AAPL"),
        "cn_industry": cn_industry.stock_basic,
        "fiqa": sentiment.fiqa,
        "phrasebank": lambda: sentiment.phrasebank("All"),
    }
    expected = {name: read() for name, read in readers.items()}
    hist = cn_qlib.hist_stock_index()
    upstream()
    for name, read in readers.items():
        pd.testing.assert_frame_equal(read(), expected[name], obj=name)
    assert cn_qlib.hist_stock_index() == hist


def test_tweets_via_archive_equal_mirror(github, upstream):
    expected = stocknet.tweets("AAPL")
    expected_raw = stocknet.tweets("MSFT", raw=True)
    cache = upstream()
    pd.testing.assert_frame_equal(stocknet.tweets("AAPL"), expected)
    pd.testing.assert_frame_equal(stocknet.tweets("MSFT", raw=True), expected_raw)
    assert github.requests.count(ARCHIVE_PATH) == 1  # one archive download serves every folder
    base = cache / "stocknet" / "upstream" / "yumoxu+stocknet-dataset" / "tweet"
    assert (base / "preprocessed" / "AAPL").is_dir() and (base / "raw" / "MSFT").is_dir()
    assert not (base / "preprocessed" / "MSFT").exists()  # only the folders asked for are unpacked
    assert len(list((base / "preprocessed" / "AAPL").iterdir())) > 600


# --------------------------------------------------------------------------- the cache
def test_second_call_uses_the_cache(github, upstream):
    expected = stocknet.prices("AAPL")
    expected_tweets = stocknet.tweets("MSFT")
    upstream()
    stocknet.prices("AAPL")
    stocknet.tweets("MSFT")
    github.stop()  # nothing can be downloaded any more
    seen = len(github.requests)
    pd.testing.assert_frame_equal(stocknet.prices("AAPL"), expected)
    pd.testing.assert_frame_equal(stocknet.tweets("MSFT"), expected_tweets)
    assert len(github.requests) == seen


def test_damaged_cache_entry_is_downloaded_again(github, upstream):
    expected = stocknet.prices("AAPL")
    cache = upstream()
    stocknet.prices("AAPL")
    cached = cache / "stocknet" / "upstream" / "yumoxu+stocknet-dataset" / "price" / "raw" / "AAPL.csv"
    replacement = cached.with_name("replacement")
    replacement.write_bytes(flip_byte(cached.read_bytes()))
    replacement.replace(cached)  # a new file, so the hash memo cannot vouch for it
    pd.testing.assert_frame_equal(stocknet.prices("AAPL"), expected)
    assert github.requests.count(raw_path(stocknet, "stocknet", "price/raw/AAPL.csv")) == 2


# --------------------------------------------------------------------------- failures
def test_corrupted_download_raises_and_leaves_nothing(github, upstream):
    url_path = raw_path(stocknet, "stocknet", "price/raw/AAPL.csv")
    github.override[url_path] = flip_byte((github.root / url_path.lstrip("/")).read_bytes())
    cache = upstream()
    with pytest.raises(ChecksumError) as info:
        stocknet.prices("AAPL")
    message = str(info.value)
    assert "price/raw/AAPL.csv" in message and "REPRO_DATA_MIRROR" in message
    folder = cache / "stocknet" / "upstream" / "yumoxu+stocknet-dataset" / "price" / "raw"
    assert not (folder / "AAPL.csv").exists()
    assert list(folder.iterdir()) == []  # atomic: no partial file left behind
    assert github.requests.count(url_path) == 1  # a checksum mismatch is not retried
    del github.override[url_path]  # upstream fixed: the next call succeeds
    assert len(stocknet.prices("AAPL")) == 1258


def test_corrupted_archive_folder_raises(github, upstream, fake_tree):
    # the same archive with one byte of one MSFT day file changed
    buf = io.BytesIO()
    with tarfile.open(fake_tree / ARCHIVE_PATH.lstrip("/")) as src, tarfile.open(fileobj=buf, mode="w:gz") as out:
        changed = False
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if data and not changed and "/tweet/preprocessed/MSFT/" in member.name:
                data, changed = flip_byte(data), True
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    github.override[ARCHIVE_PATH] = buf.getvalue()
    cache = upstream()
    with pytest.raises(ChecksumError, match="tweet/preprocessed/MSFT/"):
        stocknet.tweets("MSFT")
    base = cache / "stocknet" / "upstream" / "yumoxu+stocknet-dataset" / "tweet" / "preprocessed"
    assert not (base / "MSFT").exists()
    assert not list((cache / "stocknet" / "archives").iterdir())  # the bad archive is not kept
    del github.override[ARCHIVE_PATH]
    assert len(stocknet.tweets("MSFT")) > 0


def test_unreadable_archive_raises_and_is_deleted(github, upstream):
    github.override[ARCHIVE_PATH] = b"<html>a captive portal</html>"
    cache = upstream()
    with pytest.raises(ChecksumError, match="not a readable .tar.gz"):
        stocknet.tweets("MSFT")
    assert not list((cache / "stocknet" / "archives").iterdir())
    del github.override[ARCHIVE_PATH]
    pd.testing.assert_frame_equal(stocknet.tweets("MSFT"), stocknet.tweets("MSFT"))


def test_404_raises_missing_data_error(github, upstream, no_sleep):
    upstream()
    with pytest.raises(MissingDataError) as info:
        stocknet.prices("XOM")  # not on the fake GitHub
    message = str(info.value)
    assert "REPRO_DATA_MIRROR" in message and "price/raw/XOM.csv" in message and "404" in message
    assert github.requests.count(raw_path(stocknet, "stocknet", "price/raw/XOM.csv")) == 1  # no retry
    assert no_sleep == []


def test_archive_404_raises_missing_data_error(github, upstream, no_sleep):
    upstream(codeload=f"{github.url}/nowhere")
    with pytest.raises(MissingDataError, match="REPRO_DATA_MIRROR"):
        stocknet.tweets("AAPL")


def test_unreachable_server_raises_missing_data_error(tmp_path, upstream, no_sleep):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cache = upstream(raw=f"http://127.0.0.1:{port}", codeload=f"http://127.0.0.1:{port}")
    with pytest.raises(MissingDataError) as info:
        reuters.headlines()
    message = str(info.value)
    assert "REPRO_DATA_MIRROR" in message and "input/news_reuters.csv" in message
    assert no_sleep == [1.5, 3.0]  # three attempts, no pointless wait after the last one
    assert not partial_files(cache)
