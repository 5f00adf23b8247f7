"""Every relative link and image in README.md and docs/**/*.md points to a file that exists,
and every `#anchor` into a Markdown file names one of its headings (GitHub's slugs)."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files(root=ROOT):
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path):
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def broken_links(root=ROOT):
    broken = []
    for md in markdown_files(root):
        text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            dest = (md.parent / file_part).resolve() if file_part else md
            where = f"{md.relative_to(root)}: ({target})"
            if not dest.is_file():
                broken.append(f"{where} -> no file {file_part}")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where} -> no heading #{anchor} in {dest.relative_to(root)}")
    return broken


def test_docs_links_point_to_existing_files_and_headings():
    assert broken_links() == []


def test_the_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "ok.md").write_text("# A heading\n")
    (tmp_path / "README.md").write_text(
        "[fine](docs/ok.md#a-heading) ![gone](docs/missing.png) [bad](docs/ok.md#nope)\n"
        "```\n[in a code block](not/checked.md)\n```\n")
    found = broken_links(tmp_path)
    assert len(found) == 2
    assert "no file docs/missing.png" in found[0]
    assert "no heading #nope" in found[1]
