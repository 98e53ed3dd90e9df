"""Every link between README.md and docs/ leads somewhere: the file exists and, for #anchors, one of its
headings has that anchor as GitHub spells it. Moving a section without its links fails here."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", CODE.sub("", page.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def links(page: Path) -> list[str]:
    return [target for target in LINK.findall(CODE.sub("", page.read_text()))
            if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_link_of_the_page_leads_to_a_file_and_heading_that_exist(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (destination.suffix != ".md" or anchor not in anchors(destination)):
            broken.append(f"{target}: no such heading")
    assert broken == []


def test_the_readme_links_every_page_of_docs():
    readme_links = {target.partition("#")[0] for target in links(ROOT / "README.md")}
    assert {f"docs/{page.name}" for page in PAGES[1:]} <= readme_links


def test_the_readme_stays_short_and_has_a_table_of_contents():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 450
    contents = readme.split("## Contents", 1)[1].split("\n## ", 1)[0]
    assert [link for link in LINK.findall(contents)] == [
        "#" + slug for slug in [re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
                                for h in re.findall(r"^## (.+)$", readme, re.MULTILINE) if h != "Contents"]]
