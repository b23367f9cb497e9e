"""Getting verified data files: from the offline mirror, or downloaded from upstream.

Every data source pins its upstream GitHub repositories at a commit and lists the
sha256 of every file it reads in ``data/manifests/<source>.sha256``. A manifest
line is ``<sha256>  <location>``, where a location is either

* ``mirror:<path>`` -- a file of the offline mirror (``REPRO_DATA_MIRROR``), or
* ``<owner>/<repo>@<commit>:<path>`` -- an upstream file in git's ``rev:path``
  syntax, so ``git show <commit>:<path> | sha256sum`` reproduces it.

A location ending in ``/`` is a folder; its digest is the sha256 of its listing
in ``sha256sum`` format (``<sha256>  <relative path>\\n`` per file, sorted by
path), see :func:`tree_digest`.

When ``REPRO_DATA_MIRROR`` is set, files are read from the mirror only (nothing is
downloaded). Otherwise they are downloaded from the upstream raw URLs at the pinned
commit into the cache (``data/cache`` or ``REPRO_CACHE_DIR``). Either way the bytes
are checked against the manifest before anything reads them.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..io import atomic_path

GITHUB_RAW = "https://raw.githubusercontent.com"
GITHUB_CODELOAD = "https://codeload.github.com"


# --------------------------------------------------------------------------- errors
class DataError(Exception):
    """Base class of the data layer's errors; every message says how to fix it."""


class MissingDataError(DataError, FileNotFoundError):
    """A file is neither in the mirror nor in the cache, and cannot be downloaded."""


class ChecksumError(DataError):
    """A file's bytes differ from the pinned sha256 in the manifest."""


class UnknownKeyError(DataError, ValueError):
    """An unknown ticker, universe, field or data set name."""


class DateRangeError(DataError, ValueError):
    """Requested dates lie outside the data."""


def _plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")


def unknown(kind: str, value: object, valid: Iterable[object], hint: str = "") -> UnknownKeyError:
    """Build an error that names the bad value, suggests close matches and lists the valid ones."""
    import difflib

    valid = sorted(str(v) for v in valid)
    shown = ", ".join(valid) if len(valid) <= 120 else ", ".join(valid[:120]) + f", ... ({len(valid)} in all)"
    close = difflib.get_close_matches(str(value), valid, n=3, cutoff=0.6)
    guess = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    msg = f"unknown {kind} {value!r}.{guess} Valid {_plural(kind)}: {shown}."
    return UnknownKeyError(msg + (f" {hint}" if hint else ""))


# --------------------------------------------------------------------------- hashing
_HASH_MEMO: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so repeated checks are free."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASH_MEMO:
            return _HASH_MEMO[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _HASH_LOCK:
        _HASH_MEMO[key] = digest
    return digest


def tree_digest(files: Iterable[tuple[str, str]]) -> str:
    """Digest of a folder from ``(relative path, sha256)`` pairs.

    Equal to ``sha256`` of the ``sha256sum``-format listing sorted by path, i.e.
    ``(cd folder && find . -type f | sed 's|^./||' | sort | xargs sha256sum) | sha256sum``.
    """
    listing = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(files))
    return sha256_bytes(listing.encode("utf-8"))


# --------------------------------------------------------------------------- upstream
@dataclass(frozen=True)
class Upstream:
    """A GitHub repository pinned at a commit."""

    repo: str
    commit: str
    license: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}/tree/{self.commit}"

    def location(self, path: str) -> str:
        return f"{self.repo}@{self.commit}:{path}"

    def raw_url(self, path: str) -> str:
        base = os.environ.get("REPRO_GITHUB_RAW", GITHUB_RAW).rstrip("/")
        return f"{base}/{self.repo}/{self.commit}/{path}"

    def archive_url(self) -> str:
        base = os.environ.get("REPRO_GITHUB_CODELOAD", GITHUB_CODELOAD).rstrip("/")
        return f"{base}/{self.repo}/tar.gz/{self.commit}"


# --------------------------------------------------------------------------- downloads
def download(url: str, dest: Path, expected: str | None, what: str, retries: int = 3) -> Path:
    """Download ``url`` to ``dest`` atomically, checking its sha256 when ``expected`` is given."""
    last: Exception | None = None
    for attempt in range(retries):
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "repro-data/0.1"})
            h = hashlib.sha256()
            with atomic_path(dest, suffix=".part") as tmp:  # a failed or corrupt download leaves nothing behind
                with open(tmp, "wb") as out, urllib.request.urlopen(req, timeout=120) as resp:
                    for block in iter(lambda: resp.read(1 << 20), b""):
                        h.update(block)
                        out.write(block)
                if expected is not None and h.hexdigest() != expected:
                    raise ChecksumError(
                        f"checksum mismatch for {what} downloaded from {url}: got sha256 {h.hexdigest()}, "
                        f"the manifest pins {expected}. The upstream file changed or the download was "
                        "corrupted; retry, or use the offline mirror (REPRO_DATA_MIRROR)."
                    )
            return dest
        except ChecksumError:
            raise
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError, OSError) as exc:
            last = exc
            if isinstance(exc, urllib.error.HTTPError) and exc.code == 404:
                break
            if attempt + 1 < retries:  # no point waiting after the last attempt
                time.sleep(1.5 * (attempt + 1))
    raise MissingDataError(
        f"could not download {what} from {url} ({last}). Check the internet connection, or set "
        "REPRO_DATA_MIRROR to a copy of the offline data mirror (see README, 'Data')."
    )


def download_many(jobs: list[tuple[str, Path, str | None, str]], workers: int = 8) -> None:
    """Run :func:`download` for many ``(url, dest, expected, what)`` jobs in parallel."""
    todo = [job for job in jobs if not job[1].exists()]
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for fut in [pool.submit(download, *job) for job in todo]:
            fut.result()


# --------------------------------------------------------------------------- file sets
class FileSet:
    """The files of one folder, read from a tar archive (mirror) or a directory (cache)."""

    def __init__(self, path: Path, prefix: str = ""):
        self.path = path
        self.prefix = prefix  # folder inside the archive, ending with "/"

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        """Yield ``(relative name, bytes)`` sorted by name."""
        if self.path.is_dir():
            for f in sorted(p for p in self.path.rglob("*") if p.is_file()):
                yield f.relative_to(self.path).as_posix(), f.read_bytes()
            return
        with tarfile.open(self.path) as tar:
            members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
            for m in members:
                if not m.name.startswith(self.prefix):
                    continue
                fh = tar.extractfile(m)
                assert fh is not None
                yield m.name[len(self.prefix):], fh.read()

    def digest(self) -> str:
        return tree_digest((name, sha256_bytes(data)) for name, data in self)


# --------------------------------------------------------------------------- sources
class Source:
    """One data source: its upstream repositories, manifest, mirror folder and cache."""

    def __init__(self, name: str, title: str, upstreams: dict[str, Upstream]):
        self.name = name
        self.title = title
        self.upstreams = upstreams
        self._manifest: dict[str, str] | None = None

    # manifest --------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return paths.manifest_dir() / f"{self.name}.sha256"

    @property
    def manifest(self) -> dict[str, str]:
        if self._manifest is None:
            if not self.manifest_path.is_file():
                raise MissingDataError(
                    f"manifest {self.manifest_path} is missing; it ships with the repository "
                    "(data/manifests). Re-clone, or run from an editable install (make install)."
                )
            entries: dict[str, str] = {}
            for line in self.manifest_path.read_text(encoding="utf-8").splitlines():
                if not line.strip() or line.startswith("#"):
                    continue
                digest, location = line.split(None, 1)
                entries[location.strip()] = digest
            self._manifest = entries
        return self._manifest

    def expected(self, location: str) -> str:
        try:
            return self.manifest[location]
        except KeyError:
            raise MissingDataError(
                f"{location} is not listed in {self.manifest_path.name}; this package only reads "
                "pinned files. Regenerate the manifest with scripts/make_manifests.py if the "
                "pinned commit was changed on purpose."
            ) from None

    def locations(self, prefix: str) -> list[str]:
        """Manifest locations starting with ``prefix`` (e.g. ``mirror:stocknet/price/``)."""
        return sorted(loc for loc in self.manifest if loc.startswith(prefix))

    # places ----------------------------------------------------------------
    @property
    def cache(self) -> Path:
        path = paths.cache_dir() / self.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def mirror() -> Path | None:
        try:
            return paths.mirror_dir()
        except FileNotFoundError as exc:  # REPRO_DATA_MIRROR is set but not a folder
            raise MissingDataError(str(exc)) from None

    def mirror_file(self, relpath: str) -> Path:
        """A verified file of the mirror (``REPRO_DATA_MIRROR`` must be set)."""
        mirror = self.mirror()
        assert mirror is not None
        path = mirror / relpath
        expected = self.expected(f"mirror:{relpath}")
        if not path.is_file():
            raise MissingDataError(
                f"{relpath} is missing from the data mirror {mirror} (REPRO_DATA_MIRROR). The mirror's "
                "README.md lists what it holds; copy the complete mirror, or unset REPRO_DATA_MIRROR "
                "to download from upstream."
            )
        got = sha256_file(path)
        if got != expected:
            raise ChecksumError(
                f"checksum mismatch for {path}: sha256 {got}, the manifest "
                f"({self.manifest_path.name}) pins {expected}. The mirror copy is damaged or from "
                "another version; restore it from the mirror's source (`sha256sum -c MANIFEST.sha256`)."
            )
        return path

    def upstream_file(self, upstream: str, path: str) -> Path:
        """A verified upstream file, downloaded into the cache on first use."""
        up = self.upstreams[upstream]
        expected = self.expected(up.location(path))
        dest = self.cache / "upstream" / up.repo.replace("/", "+") / path
        if dest.is_file():
            if sha256_file(dest) == expected:
                return dest
            dest.unlink()  # stale or damaged cache entry: fetch again
        return download(up.raw_url(path), dest, expected, f"{self.name} file {path}")

    def file(self, mirror_relpath: str, upstream: str, upstream_path: str) -> Path:
        """A verified local copy of one file (maybe gzip-compressed in the mirror).

        Readers must open the result with compression inferred from the suffix.
        """
        if self.mirror() is not None:
            return self.mirror_file(mirror_relpath)
        return self.upstream_file(upstream, upstream_path)

    def archive_member_folders(
        self, upstream: str, folders: list[str], what: str
    ) -> dict[str, Path]:
        """Download the upstream repository archive once and extract the given folders.

        Used where upstream keeps thousands of small files (StockNet's per-day tweets):
        one archive download instead of thousands of requests. Each folder is
        verified against its tree digest and moved into the cache atomically.
        """
        up = self.upstreams[upstream]
        base = self.cache / "upstream" / up.repo.replace("/", "+")
        out = {f: base / f.rstrip("/") for f in folders}
        missing = [f for f, p in out.items() if not p.is_dir()]
        if not missing:
            return out
        archive = self.cache / "archives" / f"{up.repo.replace('/', '+')}-{up.commit}.tar.gz"
        if not archive.is_file():
            download(up.archive_url(), archive, None, f"{self.name} repository archive ({what})")
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            tmpdir = Path(tmp)
            wanted = tuple(missing)
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    for m in tar:
                        if not m.isfile():
                            continue
                        # codeload archives prefix every path with "<repo>-<commit>/"
                        rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
                        # the archive is verified only after extraction: never write outside tmpdir
                        if rel.startswith("/") or ".." in rel.split("/"):
                            continue
                        if rel.startswith(wanted):
                            target = tmpdir / rel
                            target.parent.mkdir(parents=True, exist_ok=True)
                            fh = tar.extractfile(m)
                            assert fh is not None
                            target.write_bytes(fh.read())
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
                # a damaged download must not stay in the cache, or every later call fails the same way
                archive.unlink(missing_ok=True)
                raise ChecksumError(
                    f"the {self.name} repository archive downloaded from {up.archive_url()} is not a readable "
                    f".tar.gz ({exc}); it was deleted. Run again to re-download, or use the offline mirror "
                    "(REPRO_DATA_MIRROR)."
                ) from None
            for folder in missing:
                src = tmpdir / folder.rstrip("/")
                expected = self.expected(up.location(folder))
                got = FileSet(src).digest() if src.is_dir() else None
                if got != expected:
                    archive.unlink(missing_ok=True)
                    raise ChecksumError(
                        f"checksum mismatch for folder {folder} of {up.repo}@{up.commit[:7]}: "
                        f"tree digest {got}, the manifest pins {expected}. The archive was deleted; run again "
                        "to re-download, or use the offline mirror (REPRO_DATA_MIRROR)."
                    )
                out[folder].parent.mkdir(parents=True, exist_ok=True)
                _replace_dir(src, out[folder])
        return out

    def extracted_mirror_archive(self, relpath: str, version: str) -> Path:
        """Unpack a verified mirror archive (tar.*) into the cache once; return the folder."""
        archive = self.mirror_file(relpath)
        dest = self.cache / f"mirror-{version}"
        if dest.is_dir():
            return dest
        tmp = tempfile.mkdtemp(prefix=f".mirror-{version}.", dir=self.cache)
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            _replace_dir(Path(tmp), dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest


def _replace_dir(src: Path, dest: Path) -> None:
    """Move a finished folder into place; if another process got there first, keep its copy.

    ``os.replace`` cannot replace a non-empty folder, so two processes that unpack the
    same data on first use would otherwise make the slower one fail.
    """
    os.chmod(src, 0o755)  # mkdtemp makes 0700 folders; a cache may be shared
    try:
        os.replace(src, dest)
    except OSError:
        if not dest.is_dir():
            raise


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Read a possibly gzip-compressed text file."""
    import gzip

    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode(encoding)


def cached_parquet(source: Source, key: str, build: Callable[[], "object"]):
    """Build a DataFrame once and keep it as Parquet in the cache (keyed by content digests)."""
    import pandas as pd

    target = source.cache / "parsed" / f"{key}.parquet"
    if target.is_file():
        return pd.read_parquet(target)
    frame = build()
    with atomic_path(target, suffix=".parquet") as tmp:
        frame.to_parquet(tmp)
    return frame


__all__ = [
    "ChecksumError",
    "DataError",
    "DateRangeError",
    "FileSet",
    "MissingDataError",
    "Source",
    "UnknownKeyError",
    "Upstream",
    "download",
    "download_many",
    "sha256_file",
    "tree_digest",
]
