"""The repository stands alone: no tracked file cites a design document outside it, and every
`docs/design.md §n` citation names a section that docs/design.md has."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
SCOPE = ("src/", "docs/", "configs/", "scripts/", "tests/")
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

# A design document that is not in the repository, or a path that leaves it.
FORBIDDEN = {
    "DESIGN §": re.compile(r"DESIGN\s*§"),
    "DESIGN's": re.compile(r"DESIGN['’]s\b"),
    "DESIGN.md": re.compile(r"\bDESIGN\.md\b"),
    "../shared": re.compile(r"\.\./shared\b"),
    "/work/shared": re.compile(r"/work/shared\b"),
}
# "docs/design.md §2" or "docs/design.md §2, §4" (also "§2.1"): every number is checked.
CITATION = re.compile(r"docs/design\.md\s*§\s*\d+(?:\.\d+)?(?:\s*(?:,|and|&)\s*§\s*\d+(?:\.\d+)?)*")
NUMBER = re.compile(r"§\s*(\d+(?:\.\d+)?)")
HEADING = re.compile(r"^#{2,4}\s+(\d+(?:\.\d+)?)\.?\s", re.MULTILINE)
MD_LINK = re.compile(r"\]\(([^)#\s]+)")


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc})")
    names = [n for n in out.decode("utf-8").split("\0") if n]
    return [n for n in names if (n == "README.md" or n.startswith(SCOPE)) and n != THIS]


def _texts() -> dict[str, str]:
    texts = {}
    for name in _tracked():
        path = ROOT / name
        if not path.is_file():  # deleted in the work tree but still in the index
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary (images, .npz)
            continue
        texts[name] = data.decode("utf-8", errors="replace")
    return texts


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def test_no_file_cites_a_document_outside_the_repository() -> None:
    found = [
        f"{name}:{_line(text, m.start())}: {label}"
        for name, text in _texts().items()
        for label, pattern in FORBIDDEN.items()
        for m in pattern.finditer(text)
    ]
    assert not found, "cite docs/design.md §n instead:\n" + "\n".join(found)


def test_markdown_links_stay_inside_the_repository() -> None:
    outside = []
    for name, text in _texts().items():
        if not name.endswith(".md"):
            continue
        for m in MD_LINK.finditer(text):
            target = m.group(1)
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = ((ROOT / name).parent / target).resolve()
            if not resolved.is_relative_to(ROOT):
                outside.append(f"{name}:{_line(text, m.start())}: {target}")
    assert not outside, "links that leave the repository:\n" + "\n".join(outside)


def design_sections() -> set[str]:
    return set(HEADING.findall(DESIGN.read_text(encoding="utf-8")))


def test_design_doc_has_numbered_sections() -> None:
    assert DESIGN.is_file(), "docs/design.md is missing"
    sections = design_sections()
    assert {str(n) for n in range(1, 9)} <= sections, f"sections found: {sorted(sections)}"


def test_design_citations_name_existing_sections() -> None:
    sections = design_sections()
    cited, bad = 0, []
    for name, text in _texts().items():
        for m in CITATION.finditer(text):
            for n in NUMBER.findall(m.group(0)):
                cited += 1
                if n not in sections:
                    bad.append(f"{name}:{_line(text, m.start())}: §{n}")
    assert cited > 0, "no docs/design.md citation found: the citation pattern no longer matches"
    assert not bad, f"docs/design.md has sections {sorted(sections)}; these citations name none of them:\n" + "\n".join(
        bad
    )


def test_readme_links_the_design_doc() -> None:
    assert "](docs/design.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_checks_catch_what_they_are_for() -> None:
    assert FORBIDDEN["DESIGN §"].search("see DESIGN §4")
    assert FORBIDDEN["../shared"].search("read ../shared/DESIGN.md")
    assert [NUMBER.findall(m.group(0)) for m in CITATION.finditer("(docs/design.md §2, §4) and docs/design.md §7")] == [
        ["2", "4"],
        ["7"],
    ]
    assert HEADING.findall("## 1. The loop\ntext\n## 12. More\n") == ["1", "12"]
