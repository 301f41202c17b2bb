"""Chunking and embedding 1,000 documentation pages (issue 13; target: under a minute on 2 cores).

Corpus: Python 3.11's own documentation as Debian ships it, in the package python3.11-doc
(install it first: `apt-get install python3.11-doc`; tests never need it). Its 530 HTML pages
under /usr/share/doc/python3.11/html are read as HTML; the rest of the 1,000 pages are the
reStructuredText sources of the same manual (`_sources/**/*.rst.txt`), read as reStructuredText.
Nothing is fetched at run time.

    python bench/docs_scale.py [--pages 1000] [--embedder static] [--max-tokens 200]

Prints pages, sections, chunks and words, then the wall time of reading + chunking, of embedding
every chunk, and their total. The static embedder is built (distilled from the packaged MiniLM)
before the clock starts, as it is once per machine.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from synthboot.embeddings import get_embedder
from synthboot.sources import chunk_sections, html_sections, rst_sections
from synthboot.spec import SourcesSpec

ROOT = Path("/usr/share/doc/python3.11/html")


def pages(n: int) -> list[tuple[str, Path]]:
    if not ROOT.is_dir():
        raise SystemExit(f"{ROOT} is missing: apt-get install python3.11-doc")
    html = sorted(p for p in ROOT.rglob("*.html") if "_sources" not in p.parts)
    rst = sorted((ROOT / "_sources").rglob("*.rst.txt"))
    chosen = [("html", p) for p in html][:n]
    chosen += [("rst", p) for p in rst][:n - len(chosen)]
    if len(chosen) < n:
        raise SystemExit(f"only {len(chosen)} pages in {ROOT}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--embedder", default="static")
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--overlap", type=int, default=30)
    args = parser.parse_args()
    settings = SourcesSpec(paths=["-"], max_tokens=args.max_tokens, overlap=args.overlap)
    chosen = pages(args.pages)
    model = get_embedder(args.embedder)
    model.encode(["warm up"])  # load (and for `static`, build) the model before timing

    started, cpu_started = time.perf_counter(), time.process_time()
    sections = chunks = 0
    texts: list[str] = []
    for kind, path in chosen:
        text = path.read_text(encoding="utf-8", errors="replace")
        found = html_sections(text) if kind == "html" else rst_sections(text)
        sections += len(found)
        pieces = chunk_sections(str(path.relative_to(ROOT)), found, settings)
        chunks += len(pieces)
        texts += [c.text for c in pieces]
    chunked, cpu_chunked = time.perf_counter(), time.process_time()
    vectors = model.encode(texts, batch_size=1024)
    embedded, cpu_embedded = time.perf_counter(), time.process_time()

    words = sum(len(t.split()) for t in texts)
    html_n = sum(1 for k, _ in chosen if k == "html")
    print(f"pages {len(chosen)} ({html_n} HTML, {len(chosen) - html_n} reST), sections {sections}, "
          f"chunks {chunks}, words {words:,}, embedding dims {vectors.shape[1]}")
    print(f"wall: read + chunk {chunked - started:.2f} s; embed ({args.embedder}) {embedded - chunked:.2f} s; "
          f"total {embedded - started:.2f} s on {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f})")
    print(f"CPU time of this process: read + chunk {cpu_chunked - cpu_started:.2f} s; "
          f"embed {cpu_embedded - cpu_chunked:.2f} s")


if __name__ == "__main__":
    main()
