#!/usr/bin/env python3
"""Regenerate data/manifests/*.sha256 (maintainers only; users never need this).

    python scripts/make_manifests.py --mirror ../shared/data \
        --git fr220574/Qlib-format-A-share-dataset=/path/to/clone/.git \
        --git datasets/world-development-indicators=/path/to/clone/.git [--git ...]

Mirror lines hash the mirror's files. Upstream lines hash the upstream bytes at the
pinned commit, read with ``git show <commit>:<path>`` from a local clone when one is
given with --git; without a clone they are derived from the mirror where the mirror
is a byte-exact copy (gunzip of a .gz, members of a .tar.gz). Upstream files that the
mirror does not keep verbatim (WDI's all-country tables, qlib's untrimmed features and
calendar) need a clone. When both are available they must agree, which checks the
mirror against upstream.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from repro.data import SOURCES, source_module  # noqa: E402
from repro.data._store import tree_digest  # noqa: E402

QLIB_FIELDS = ("open", "high", "low", "close", "volume", "factor")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Git:
    def __init__(self, clones: dict[str, Path]):
        self.clones = clones
        self.procs: dict[str, subprocess.Popen] = {}

    def has(self, repo: str) -> bool:
        return repo in self.clones

    def show(self, repo: str, commit: str, path: str) -> bytes:
        if repo not in self.procs:
            self.procs[repo] = subprocess.Popen(
                ["git", f"--git-dir={self.clones[repo]}", "cat-file", "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
        proc = self.procs[repo]
        proc.stdin.write(f"{commit}:{path}\n".encode())
        proc.stdin.flush()
        header = proc.stdout.readline().split()
        if header[-1] == b"missing":
            raise FileNotFoundError(f"{repo}@{commit}:{path}")
        data = proc.stdout.read(int(header[2]))
        proc.stdout.read(1)
        return data

    def ls(self, repo: str, commit: str, folder: str) -> list[str]:
        out = subprocess.run(
            ["git", f"--git-dir={self.clones[repo]}", "ls-tree", "-r", "--name-only", commit, folder],
            check=True, capture_output=True, text=True,
        ).stdout
        return [line[len(folder):] for line in out.splitlines()]


class Builder:
    def __init__(self, mirror: Path, git: Git):
        self.mirror = mirror
        self.git = git
        self.lines: dict[str, list[str]] = {}
        self.source = ""

    def add(self, digest: str, location: str) -> None:
        self.lines.setdefault(self.source, []).append(f"{digest}  {location}")

    def mirror_file(self, rel: str) -> bytes:
        data = (self.mirror / rel).read_bytes()
        self.add(sha(data), f"mirror:{rel}")
        return data

    def upstream(self, key: str, path: str, mirror_bytes: bytes | None) -> None:
        """Hash one upstream file, from git if cloned, else from its verbatim mirror copy."""
        up = source_module(self.source).SOURCE.upstreams[key]
        digest = sha(mirror_bytes) if mirror_bytes is not None else None
        if self.git.has(up.repo):
            got = sha(self.git.show(up.repo, up.commit, path))
            if digest is not None and got != digest:
                raise SystemExit(f"mirror and upstream differ: {up.location(path)}")
            digest = got
        if digest is None:
            raise SystemExit(f"need --git {up.repo}=<clone> to hash {path}")
        self.add(digest, up.location(path))

    def upstream_folder(self, key: str, folder: str, files: dict[str, bytes] | None) -> None:
        up = source_module(self.source).SOURCE.upstreams[key]
        digest = tree_digest((n, sha(b)) for n, b in files.items()) if files is not None else None
        if self.git.has(up.repo):
            names = self.git.ls(up.repo, up.commit, folder)
            got = tree_digest((n, sha(self.git.show(up.repo, up.commit, folder + n))) for n in names)
            if digest is not None and got != digest:
                raise SystemExit(f"mirror and upstream differ: {up.location(folder)}")
            digest = got
        self.add(digest, up.location(folder))

    def same_file(self, mirror_rel: str, key: str, path: str) -> None:
        """A mirror file that is the upstream file, maybe gzip -9n compressed."""
        data = self.mirror_file(mirror_rel)
        if mirror_rel.endswith(".gz") and not path.endswith(".gz"):
            data = gzip.decompress(data)
        self.upstream(key, path, data)

    def write(self, out: Path) -> None:
        for source, lines in self.lines.items():
            mod = source_module(source)
            head = [f"# {source}: {mod.SOURCE.title}", "# sha256  location (mirror:<path> or <repo>@<commit>:<path>;"
                    " a trailing / is a folder digest)"]
            for up in mod.SOURCE.upstreams.values():
                head.append(f"# upstream {up.repo} @ {up.commit} ({up.license})")
            (out / f"{source}.sha256").write_text("\n".join(head + sorted(lines, key=lambda l: l.split()[1])) + "\n")


def tar_members(path: Path, prefix: str) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name[len(prefix):]: tar.extractfile(m).read() for m in tar.getmembers()
                if m.isfile() and m.name.startswith(prefix)}


def build(b: Builder) -> None:
    m = b.mirror
    b.source = "stocknet"
    b.same_file("stocknet/StockTable", "stocknet", "StockTable")
    for f in sorted((m / "stocknet/price/raw").iterdir()):
        b.same_file(f"stocknet/price/raw/{f.name}", "stocknet", f"price/raw/{f.name[:-3]}")
    for kind in ("preprocessed", "raw"):
        for f in sorted((m / f"stocknet/tweet/{kind}").iterdir()):
            ticker = f.name.removesuffix(".tar.gz")
            b.mirror_file(f"stocknet/tweet/{kind}/{f.name}")
            folder = f"tweet/{kind}/{ticker}/"
            b.upstream_folder("stocknet", folder, tar_members(f, folder))

    b.source = "reuters"
    b.same_file("reuters/news_reuters.csv.gz", "reuters", "input/news_reuters.csv")

    b.source = "sentiment"
    for name in ("task1_headline_ABSA_train.json", "task1_post_ABSA_train.json"):
        b.same_file(f"sentiment/fiqa_task1/{name}", "fiqa", f"datasets/{name}")
    for sub, name in (("semeval-2017-task-5-subtask-1", "Microblog_Trainingdata.json"),
                      ("semeval-2017-task-5-subtask-2", "Headline_Trainingdata.json")):
        b.same_file(f"sentiment/semeval2017_task5/{sub}/{name}", "semeval", f"{sub}/{name}")
    for level in ("50", "66", "75", "All"):
        name = f"Sentences_{level}Agree.txt"
        b.same_file(f"sentiment/financial_phrasebank/{name}.gz", "phrasebank", f"FinancialPhraseBank/{name}")

    b.source = "wdi"
    b.mirror_file("wdi/wdi_usa_long.csv")
    for code in source_module("wdi").INDICATORS.values():
        b.upstream("wdi", f"indicators/{code.lower()}/data.csv", None)

    b.source = "mamballm"
    b.same_file("mamballm/GSPC_processed_results_7b.csv.gz", "mamballm", "GSPC_processed_results_7b.csv")

    b.source = "cn_industry"
    b.same_file("cn_industry/stock_basic.json.gz", "stock_agent", "build/stock_basic.json")

    b.source = "us_prices"
    for t in source_module("us_prices").TICKERS:
        b.same_file(f"us_prices/sicheng_sp500_2003_2023/{t}.csv.gz", "sicheng", f"data/{t}.csv")
        b.same_file(f"us_prices/quantedge_2021_2026/{t}.csv.gz", "quantedge", f"data/{t}.csv")

    b.source = "cn_qlib"
    b.same_file("cn_qlib/csi300_stock_index.npy", "hist", "data/csi300_stock_index.npy")
    b.mirror_file("cn_qlib/cn_qlib.tar.xz")
    members = tar_members(m / "cn_qlib/cn_qlib.tar.xz", "cn_qlib/")
    for name in source_module("cn_qlib").UNIVERSES:
        b.upstream("instruments", f"instruments/{name}.txt", members[f"instruments/{name}.txt"])
    b.upstream("features", "calendars/day.txt", None)
    feats = source_module("cn_qlib").SOURCE.upstreams["features"]
    codes = sorted({n.split("/")[1] for n in members if n.startswith("features/")})
    for code in codes:
        upper = code.upper()
        if not b.git.has(feats.repo):
            raise SystemExit(f"need --git {feats.repo}=<clone> for the qlib features")
        files = {}
        for field in QLIB_FIELDS:
            data = b.git.show(feats.repo, feats.commit, f"features/{upper}/{field}.day.bin")
            trimmed = members[f"features/{code}/{field}.day.bin"]
            if data[: len(trimmed)] != trimmed:  # the mirror must be a prefix of upstream
                raise SystemExit(f"mirror is not a prefix of upstream: features/{upper}/{field}.day.bin")
            files[f"{field}.day.bin"] = data
        b.add(tree_digest((n, sha(d)) for n, d in files.items()), feats.location(f"features/{upper}/"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, required=True)
    parser.add_argument("--git", action="append", default=[], metavar="OWNER/REPO=GITDIR")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "manifests")
    args = parser.parse_args()
    clones = dict(item.split("=", 1) for item in args.git)
    b = Builder(args.mirror.resolve(), Git({k: Path(v) for k, v in clones.items()}))
    build(b)
    args.out.mkdir(parents=True, exist_ok=True)
    b.write(args.out)
    assert set(b.lines) == set(SOURCES), set(SOURCES) - set(b.lines)
    print(f"wrote {sum(len(v) for v in b.lines.values())} lines to {args.out}")


if __name__ == "__main__":
    main()
