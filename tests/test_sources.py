"""Documents as a source: reading Markdown, reStructuredText, text and HTML, and the chunking policy."""

from __future__ import annotations

from pathlib import Path

import pytest

import synthboot
from synthboot.errors import SpecError
from synthboot.sources import (chunk_sections, html_sections, load_chunks, markdown_sections, read_sections,
                               rst_sections, sentences, windows)
from synthboot.spec import SourcesSpec

DOCS = Path(__file__).parent / "data" / "docs"
SETTINGS = SourcesSpec(paths=["x"], max_tokens=60, overlap=10, min_tokens=10)


def test_markdown_sections_follow_headings_and_skip_code_fences():
    text = "intro line\n# Title\nbody\n## Sub\nmore\n```\n# not a heading\n```\nSetext\n------\nlast\n"
    sections = markdown_sections(text)
    assert [s.heading for s in sections] == ["", "Title", "Title > Sub", "Title > Setext"]
    assert "# not a heading" in sections[2].text
    assert sections[3].text.strip() == "last"


def test_rst_titles_take_levels_in_order_of_first_appearance():
    text = "=====\nTop\n=====\n\nintro\n\nPart\n----\n\n.. note:: kept text\n.. _target:\n\nbody\n"
    sections = rst_sections(text)
    assert [s.heading for s in sections if s.heading] == ["Top", "Top > Part"]
    assert "kept text" in sections[-1].text and "_target" not in sections[-1].text


def test_html_drops_navigation_scripts_and_styles():
    sections = html_sections((DOCS / "volcanoes.html").read_text())
    text = " ".join(s.text for s in sections)
    assert [s.heading for s in sections if s.heading] == ["Volcanoes", "Volcanoes > Shield volcanoes",
                                                          "Volcanoes > Stratovolcanoes"]
    assert "tracking" not in text and "Index of all pages" not in text and "Previous topic" not in text
    assert "Copyright" not in text and "color: red" not in text
    assert "calm & effusive" in text  # character references decoded


def test_windows_respect_the_budget_and_overlap():
    pieces = [f"s{i} " + "w " * 9 for i in range(12)]  # 12 sentences of 10 words
    got = list(windows(pieces, max_tokens=35, overlap=10))
    assert all(sum(len(p.split()) for p in w) <= 35 for w in got)
    assert got[0][-1] == got[1][0]  # each window starts with the last sentence of the one before
    assert got[-1][-1] == pieces[-1]
    assert len({tuple(w) for w in got}) == len(got)  # no window repeats another
    # a sentence longer than the budget is cut into word runs, never dropped
    long = list(windows(["x " * 100], max_tokens=30, overlap=5))
    assert sum(len(" ".join(w).split()) for w in long) >= 100


def test_chunks_carry_heading_position_and_content_hash():
    chunks = chunk_sections("tea.md", read_sections(DOCS / "tea.md"), SETTINGS)
    assert [c.position for c in chunks] == list(range(len(chunks)))
    assert chunks[1].heading == "Brewing tea > Green tea" and chunks[1].text.startswith("Brewing tea > Green tea\n\n")
    assert "70 and 80 degrees" in chunks[1].text
    assert len({c.hash for c in chunks}) == len(chunks)
    again = chunk_sections("tea.md", read_sections(DOCS / "tea.md"), SETTINGS)
    assert [c.hash for c in again] == [c.hash for c in chunks]


def test_short_sections_join_the_next_one():
    text = "# A\nshort.\n# B\n" + "A longer sentence with enough words to stand alone as a chunk. " * 3
    chunks = chunk_sections("d.md", markdown_sections(text), SETTINGS)
    assert len(chunks) == 1 and "short." in chunks[0].text and chunks[0].heading == "B"


def test_a_long_section_becomes_overlapping_chunks():
    body = " ".join(f"Sentence number {i} says one thing about the topic." for i in range(40))
    chunks = chunk_sections("long.md", markdown_sections("# Long\n" + body), SETTINGS)
    assert len(chunks) > 4
    assert all(c.tokens <= SETTINGS.max_tokens + 2 for c in chunks)  # the budget, plus the heading line
    first, second = sentences(chunks[0].text.split("\n\n", 1)[1]), sentences(chunks[1].text.split("\n\n", 1)[1])
    assert first[-1] in second and second[0] in first  # overlapping by whole sentences, at least `overlap` words
    assert sum(len(s.split()) for s in second if s in first) >= SETTINGS.overlap


def _spec(tmp_path: Path, paths: str) -> str:
    return (f"task: questions about the documents\nfields:\n  context: {{type: str, input: true}}\n"
            f"  question: {{type: str, input: true}}\n  answer: {{type: str}}\nsources:\n  paths: {paths}\n")


def test_spec_sources_resolve_globs_relative_to_the_spec(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("tea.md", "lighthouse.rst", "bicycle.txt", "volcanoes.html"):
        (docs / name).write_text((DOCS / name).read_text())
    (docs / "ignored.png").write_bytes(b"\x89PNG")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(_spec(tmp_path, "[docs/*]"))
    spec = synthboot.load_spec(spec_path)
    chunks = load_chunks(spec)
    assert sorted({c.document for c in chunks}) == ["docs/bicycle.txt", "docs/lighthouse.rst", "docs/tea.md",
                                                     "docs/volcanoes.html"]


@pytest.mark.parametrize("paths, message", [("[nothing/*.md]", "matches no document"),
                                            ("[missing.md]", "no such file"),
                                            ("[spec.yaml]", "unsupported document type")])
def test_bad_sources_are_one_line_errors(tmp_path, paths, message):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(_spec(tmp_path, paths))
    spec = synthboot.load_spec(spec_path)
    with pytest.raises(SpecError, match=message) as err:
        load_chunks(spec)
    assert "sources.paths[0]" in str(err.value)


def test_a_sources_spec_needs_a_context_input_field(tmp_path):
    with pytest.raises(SpecError, match="context"):
        synthboot.parse_spec("task: t\nfields:\n  question: {type: str, input: true}\n  answer: {type: str}\n"
                             "sources: {paths: [a.md]}\n")
    # Neither topics nor sources is fine: the LM proposes the topics (issue 11, generate.subtopics).
    spec = synthboot.parse_spec("task: t\nfields:\n  question: {type: str, input: true}\n  answer: {type: str}\n"
                                "seeds: [{question: q, answer: a}]\n")
    assert spec.topics == [] and spec.sources is None


def test_pdf_pages_are_sections():
    sections = read_sections(Path(__file__).parent / "data" / "docs-pdf" / "kites.pdf")  # a PDF written by hand
    assert [s.heading for s in sections] == ["page 1", "page 2"]
    assert "tethered aircraft" in sections[0].text and "8 and 25 kilometres" in sections[1].text
    chunks = chunk_sections("kites.pdf", sections, SourcesSpec(paths=["x"], min_tokens=5))
    assert [c.heading for c in chunks] == ["page 1", "page 2"]


def test_a_broken_pdf_is_a_one_line_error(tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\nthis is not a PDF body")
    with pytest.raises(SpecError, match="cannot read the PDF"):
        read_sections(broken)
