"""Command line: fetch or verify the data sets.

    python -m repro.data fetch [SOURCE ...]   download (or verify from REPRO_DATA_MIRROR) and unpack
    python -m repro.data sources              list sources, upstream repositories, commits, licences
"""

from __future__ import annotations

import argparse
import sys
import time

from .. import paths
from . import SOURCES, DataError, source_module, sources_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m repro.data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download or verify every file a source's readers use")
    fetch.add_argument("sources", nargs="*", default=list(SOURCES), metavar="SOURCE",
                       help=f"default: all ({', '.join(SOURCES)})")
    sub.add_parser("sources", help="list sources with upstream repository, commit and licence")
    args = parser.parse_args(argv)

    if args.command == "sources":
        print(sources_table().to_string(index=False))
        return 0

    try:
        mirror = paths.mirror_dir()
    except FileNotFoundError as exc:  # REPRO_DATA_MIRROR set, but not a folder
        print(exc, file=sys.stderr)
        return 1
    where = f"mirror {mirror}" if mirror else f"upstream (cache {paths.cache_dir()})"
    print(f"data from {where}")
    for name in args.sources:
        start = time.perf_counter()
        try:
            source_module(name).prefetch()
        except DataError as exc:
            print(f"  {name}: FAILED\n    {exc}", file=sys.stderr)
            return 1
        print(f"  {name}: ok ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
