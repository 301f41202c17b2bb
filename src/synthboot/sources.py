"""Documents as a source: files -> sections at their headings -> chunks under a token budget.

The chunking policy (the README's "Documents as a source" says the same):
1. A document is read into sections at its headings: Markdown `#` and underlined headings,
   reStructuredText underlined (and overlined) titles, HTML `<h1>`-`<h6>`, PDF pages (pypdf).
   A plain-text file is one section. Navigation, scripts and styles of an HTML page are dropped.
2. A section shorter than `min_tokens` joins the next section of its document (a heading with
   one line under it is not worth a question of its own).
3. A section within `max_tokens` is one chunk; a longer one is cut into windows of at most
   `max_tokens` tokens at sentence boundaries, each window starting with the last sentences of the
   one before (at least `overlap` tokens), so a fact cut by a boundary is whole in one window.
   A token is a whitespace-separated word: cheap, model-independent and close enough to a budget.
4. Every chunk starts with its heading path ("Guide > Install"), so a chunk read alone says what
   it is about; its hash is the SHA-256 of its text, so an unchanged chunk keeps its hash (and
   its generated examples) whatever changed elsewhere.
"""

from __future__ import annotations

import glob
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from synthboot.errors import SpecError
from synthboot.spec import SourcesSpec, Spec
from synthboot.store import Chunk

SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".rest": "rst", ".txt": "text",
            ".text": "text", ".html": "html", ".htm": "html", ".pdf": "pdf"}


@dataclass
class Section:
    heading: str  # the heading path, " > "-joined ("" before the first heading)
    text: str


# -- finding and reading documents ------------------------------------------------------------
def source_files(spec: Spec) -> list[tuple[str, Path]]:
    """(name as stored, path) of every document the spec's `sources.paths` name, sorted, no repeats.

    Names are relative to the spec's directory when the file lies under it, so a run store reads
    the same wherever the project is checked out.
    """
    assert spec.sources is not None
    base = Path(spec.base_dir)
    found: dict[Path, str] = {}
    for i, pattern in enumerate(spec.sources.paths):
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        if glob.has_magic(pattern):
            matches = [Path(p) for p in sorted(glob.glob(full, recursive=True))
                       if Path(p).is_file() and Path(p).suffix.lower() in SUFFIXES]
        else:
            path = Path(full)
            if not path.is_file():
                raise SpecError(f"{pattern!r}: no such file", field=f"sources.paths[{i}]")
            if path.suffix.lower() not in SUFFIXES:
                raise SpecError(f"{pattern!r}: unsupported document type (use {', '.join(sorted(SUFFIXES))})",
                                field=f"sources.paths[{i}]")
            matches = [path]
        if not matches:
            raise SpecError(f"{pattern!r} matches no document ({', '.join(sorted(SUFFIXES))})",
                            field=f"sources.paths[{i}]")
        for path in matches:
            resolved = path.resolve()
            try:
                name = resolved.relative_to(base.resolve()).as_posix()
            except ValueError:
                name = resolved.as_posix()
            found.setdefault(resolved, name)
    return sorted(((name, path) for path, name in found.items()), key=lambda item: item[0])


def read_sections(path: Path) -> list[Section]:
    """A document's sections, by its file type (see the module docstring)."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind == "pdf":
        return _pdf_sections(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}", field="sources.paths") from None
    if kind == "markdown":
        return markdown_sections(text)
    if kind == "rst":
        return rst_sections(text)
    if kind == "html":
        return html_sections(text)
    return [Section("", text)]


def _nest(path: list[tuple[int, str]], level: int, title: str) -> str:
    while path and path[-1][0] >= level:
        path.pop()
    path.append((level, title.strip()))
    return " > ".join(t for _, t in path)


def markdown_sections(text: str) -> list[Section]:
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    heading, fence = "", None
    rows = text.splitlines()
    i = 0
    while i < len(rows):
        line = rows[i]
        stripped = line.strip()
        if fence is None and (m := re.match(r"^(```|~~~)", stripped)):
            fence = m.group(1)
        elif fence is not None and stripped.startswith(fence):
            fence = None
        elif fence is None and (m := re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)):
            sections.append(Section(heading, "\n".join(lines)))
            heading, lines = _nest(path, len(m.group(1)), m.group(2)), []
            i += 1
            continue
        elif (fence is None and stripped and i + 1 < len(rows) and re.fullmatch(r"=+|-+", rows[i + 1].strip())
              and not stripped.startswith(("-", "*", "+", ">", "|"))):
            # An underlined (setext) heading; `---` under a paragraph line, not after a blank.
            sections.append(Section(heading, "\n".join(lines)))
            heading, lines = _nest(path, 1 if rows[i + 1].strip()[0] == "=" else 2, stripped), []
            i += 2
            continue
        lines.append(line)
        i += 1
    sections.append(Section(heading, "\n".join(lines)))
    return sections


_RST_ADORN = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def rst_sections(text: str) -> list[Section]:
    """Titles are a line underlined (optionally also overlined) by one repeated punctuation character.

    Levels are assigned in the order the adornment styles first appear, as docutils does.
    """
    rows = text.splitlines()
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    styles: list[str] = []
    heading = ""
    i = 0
    while i < len(rows):
        line = rows[i]
        over = _RST_ADORN.match(line) and i + 2 < len(rows) and rows[i + 1].strip() \
            and _RST_ADORN.match(rows[i + 2]) and rows[i + 2].strip()[0] == line.strip()[0]
        under = line.strip() and not _RST_ADORN.match(line) and i + 1 < len(rows) \
            and _RST_ADORN.match(rows[i + 1]) and len(rows[i + 1].strip()) >= len(line.strip())
        if over or under:
            title = rows[i + 1] if over else line
            style = (("o" if over else "u") + (line if over else rows[i + 1]).strip()[0])
            if style not in styles:
                styles.append(style)
            sections.append(Section(heading, "\n".join(lines)))
            heading, lines = _nest(path, styles.index(style) + 1, title), []
            i += 3 if over else 2
            continue
        if (m := re.match(r"^\.\.\s+\w[\w-]*::\s*", line)):
            lines.append(line[m.end():])  # a directive: its marker goes, its text stays
        elif not re.match(r"^\.\.\s+(_|\|)", line):  # link targets and substitutions carry no prose
            lines.append(line)
        i += 1
    sections.append(Section(heading, "\n".join(lines)))
    return sections


class _HTMLSections(HTMLParser):
    SKIP = frozenset({"script", "style", "noscript", "nav", "header", "footer", "head", "template", "svg"})
    SKIP_CLASSES = ("sphinxsidebar", "related", "footer", "headerlink", "navigation", "sidebar")
    BLOCKS = frozenset({"p", "div", "li", "ul", "ol", "pre", "br", "tr", "table", "dt", "dd", "dl", "section", "article",
              "blockquote", "hr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.path: list[tuple[int, str]] = []
        self.heading = ""
        self.parts: list[str] = []
        self.skip: list[str] = []  # the tag that opened the skipped element, once per nesting
        self.title_level: int | None = None
        self.title: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self.skip:
            if tag == self.skip[0]:
                self.skip.append(tag)
            return
        classes = (a.get("class") or "")
        if tag in self.SKIP or a.get("role") == "navigation" or any(c in classes.split() for c in self.SKIP_CLASSES):
            self.skip.append(tag)
            return
        if re.fullmatch(r"h[1-6]", tag):
            self.title_level, self.title = int(tag[1]), []
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[0]:
                self.skip.pop()
            return
        if self.title_level is not None and tag == f"h{self.title_level}":
            self.sections.append(Section(self.heading, "".join(self.parts)))
            self.heading = _nest(self.path, self.title_level, " ".join("".join(self.title).split()))
            self.parts, self.title_level = [], None
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        (self.title if self.title_level is not None else self.parts).append(data)

    def close(self) -> None:
        super().close()
        self.sections.append(Section(self.heading, "".join(self.parts)))


def html_sections(text: str) -> list[Section]:
    parser = _HTMLSections()
    parser.feed(text)
    parser.close()
    return [Section(s.heading, re.sub(r"[ \t]+", " ", s.text)) for s in parser.sections]


def _pdf_sections(path: Path) -> list[Section]:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise SpecError(f"{path}: reading PDF needs the package pypdf (pip install pypdf)",
                        field="sources.paths") from None
    try:
        reader = PdfReader(str(path))
        return [Section(f"page {n}", page.extract_text() or "") for n, page in enumerate(reader.pages, 1)]
    except Exception as exc:  # noqa: BLE001 - a broken PDF is the user's input: one line, not a traceback
        raise SpecError(f"cannot read the PDF {path}: {type(exc).__name__}: {exc}", field="sources.paths") from None


# -- chunking -------------------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[\"'(\[]?[A-Z0-9`*_])|\n\s*\n")


def sentences(text: str) -> list[str]:
    """The text cut at sentence ends and blank lines, whitespace collapsed inside each piece."""
    return [" ".join(s.split()) for s in _SENTENCE_END.split(text) if s and s.strip()]


def windows(pieces: list[str], max_tokens: int, overlap: int) -> Iterator[list[str]]:
    """Consecutive pieces packed into windows of at most `max_tokens` words, overlapping by `overlap`."""
    words = [len(p.split()) for p in pieces]
    # A piece longer than the budget on its own is cut into word runs first.
    if any(n > max_tokens for n in words):
        cut: list[str] = []
        for piece, n in zip(pieces, words):
            tokens = piece.split()
            cut += [" ".join(tokens[i:i + max_tokens]) for i in range(0, n, max_tokens)] if n > max_tokens else [piece]
        pieces, words = cut, [len(p.split()) for p in cut]
    start = 0
    while start < len(pieces):
        end, size = start, 0
        while end < len(pieces) and (end == start or size + words[end] <= max_tokens):
            size += words[end]
            end += 1
        yield pieces[start:end]
        if end >= len(pieces):
            return
        # The next window starts at the last pieces of this one worth `overlap` words (a new piece at least).
        back, kept = end, 0
        # (Only as much as leaves room for the next new piece, so no window repeats the one before.)
        while back - 1 > start and kept < overlap and kept + words[back - 1] + words[end] <= max_tokens:
            back -= 1
            kept += words[back]
        start = min(end, back)


def chunk_sections(document: str, sections: list[Section], settings: SourcesSpec) -> list[Chunk]:
    """A document's chunks (see the module docstring), numbered from 0 in reading order."""
    merged: list[Section] = []
    carry: Section | None = None
    for section in sections:
        body = section.text.strip()
        if carry is not None:
            lead = (f"{carry.heading}\n" if carry.heading and carry.heading != section.heading else "")
            body = f"{lead}{carry.text}\n\n{body}".strip()
            carry = None
        if not body:
            continue
        if len(body.split()) < settings.min_tokens:
            carry = Section(section.heading, body)
            continue
        merged.append(Section(section.heading, body))
    if carry is not None:
        if merged:
            merged[-1] = Section(merged[-1].heading, f"{merged[-1].text}\n\n{carry.text}")
        else:
            merged.append(carry)
    chunks: list[Chunk] = []
    for section in merged:
        for window in windows(sentences(section.text), settings.max_tokens, settings.overlap):
            body = " ".join(window)
            text = f"{section.heading}\n\n{body}" if section.heading else body
            chunks.append(Chunk(document=document, position=len(chunks), heading=section.heading, text=text,
                                hash=hashlib.sha256(text.encode()).hexdigest(), tokens=len(text.split())))
    return chunks


def load_chunks(spec: Spec) -> list[Chunk]:
    """Every chunk of every document the spec names, in document order."""
    assert spec.sources is not None
    out: list[Chunk] = []
    for name, path in source_files(spec):
        out += chunk_sections(name, read_sections(path), spec.sources)
    if not out:
        raise SpecError("the documents hold no text to generate from", field="sources.paths")
    return out


# -- the task's fields ------------------------------------------------------------------------
@dataclass(frozen=True)
class GroundedFields:
    context: str
    question: str
    answer: str
    question_type: str | None  # a field the generator does not write: filled from the task


def grounded_fields(spec: Spec, schema) -> GroundedFields:
    """The context, question and answer fields of a spec with sources; a SpecError names a wrong one."""
    s = spec.sources
    assert s is not None
    if s.context_field not in schema.names:
        raise SpecError(f"the task has no field {s.context_field!r} to hold the chunk text "
                        f"(add `{s.context_field}: {{type: str, input: true}}` to fields)", field="sources.context_field")
    if s.context_field not in schema.inputs:
        raise SpecError(f"{s.context_field!r} must be an input field (`input: true`)", field="sources.context_field")
    question = s.question_field or next((n for n in schema.inputs if n != s.context_field), None)
    if question is None or question not in schema.inputs or question == s.context_field:
        raise SpecError("no question field: add an input field besides the context, or name it",
                        field="sources.question_field")
    strings = [n for n in schema.outputs if schema.model.model_fields[n].annotation is str]
    answer = s.answer_field or next(iter(strings), None)
    if answer is None or answer not in schema.outputs:
        raise SpecError("no answer field: add a str output field, or name it", field="sources.answer_field")
    qtype = "question_type" if "question_type" in schema.names and "question_type" not in (question, answer) else None
    return GroundedFields(s.context_field, question, answer, qtype)
