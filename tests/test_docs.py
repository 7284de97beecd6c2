"""The README and docs/: every relative link resolves, and the README stays a short user's guide."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "DEVELOPERS.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+).*?\1")
_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def prose_lines(text: str) -> list:
    """The lines outside fenced code blocks, with inline code spans blanked out."""
    out, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(_CODE_SPAN.sub("", line))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set:
    """Every anchor the headings of a Markdown text produce (repeats get -1, -2, ... as on GitHub)."""
    seen: dict = {}
    out = set()
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def broken_links(text: str, where: Path) -> list:
    """The relative links of a Markdown text (at path `where`) whose file or #anchor does not exist."""
    broken = []
    for line in prose_lines(text):
        for target in _LINK.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (where.parent / path).resolve() if path else where
            if not file.exists():
                broken.append(target)
            elif anchor and (file.suffix != ".md" or anchor not in anchors(file.read_text())):
                broken.append(target)
    return broken


def test_checker_finds_broken_files_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## The `cascade`: stages, ranks\n")
    page = tmp_path / "page.md"
    text = ("# Title\n\n[ok](other.md) [ok](other.md#the-cascade-stages-ranks) [ok](#title)\n"
            "[gone](missing.md) [bad anchor](other.md#nowhere) [self](#no-such-heading)\n"
            "![picture](missing.png) [web](https://example.org/x.md)\n"
            "```\n[in code](not-checked.md)\n# not a heading\n```\n`[span](not-checked-either.md)`\n")
    page.write_text(text)
    assert broken_links(text, page) == ["missing.md", "other.md#nowhere", "#no-such-heading", "missing.png"]


def test_slugs_follow_github():
    assert slug("Benchmarking against Adam: `symdisc bench`") == "benchmarking-against-adam-symdisc-bench"
    assert slug("Search strategies, the funnel and simplification") == \
        "search-strategies-the-funnel-and-simplification"
    assert slug("Time to target & early stopping") == "time-to-target--early-stopping"
    assert anchors("# A\n## A\n```\n# A\n```\n") == {"a", "a-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert broken_links(page.read_text(), page) == []


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    head = "\n".join(lines[:10])
    assert "make demo" in head and "make test" in head


def test_every_docs_page_is_reachable_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    linked = {target.partition("#")[0] for line in prose_lines(readme) for target in _LINK.findall(line)}
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages and pages <= linked, f"not in the README's map of docs/: {sorted(pages - linked)}"
