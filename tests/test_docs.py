"""The docs hold together: the repository is its own reference, with no pointer to a file
outside it or to an issue tracker, and every section or equation of docs/paper.md that the
code and docs cite exists there, as does every anchor of a link between the docs."""

from __future__ import annotations

import re
import subprocess
from functools import cache

from tests.support.paths import REPO

PAPER = REPO / "docs" / "paper.md"
# The paper's restatement outside the repository, spelled so that this file does not name it.
OUTSIDE_RESTATEMENT = "SPEC" + ".md"
# The word issue followed by a number, with or without "#": a tracker a reader cannot see. Other
# projects' public issues may be cited when the sentence names the project ("pytorch issue
# #1234") or by their full URL (which has "issues/", not "issue ").
TRACKER = re.compile(r"(?<![\w/])(\S+\s+)?issue\s?#?\d+", re.IGNORECASE)
OTHER_PROJECTS = {
    "pytorch",
    "torch",
    "snakemake",
    "monai",
    "pylidc",
    "nnu-net",
    "nnunet",
    "highdicom",
    "pydicom",
    "dvc",
    "numpy",
    "scipy",
    "idc-index",
}
# In code and config, the page's path, a comma and a heading in double quotes; in links, any
# doc's name, "#" and the anchor of one of its headings.
SECTION_CITATION = re.compile(r'docs/paper\.md,\s+"([^"]+)"')
ANCHOR_LINK = re.compile(r"(?<![\w-])([\w-]+\.md)#([\w-]+)")
# "eq. 14", "eq. (8)", "eqs. 17-19", "Eqs. (1)-(4)", "eqs. (2) and (4)", "eqs. 2, 4".
EQUATION_CITATION = re.compile(r"\b[Ee]qs?\.\s*((?:\(?\d+\)?)(?:\s*(?:-|,|and)\s*\(?\d+\)?)*)")
NUMBERED_EQUATION = re.compile(r"\((\d+)\)\s*$")


@cache
def tracked_text_files() -> dict[str, str]:
    """Path (relative to the repository) -> text of every tracked file that is text."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    texts = {}
    for name in filter(None, listed.split("\0")):
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            texts[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6} ", line):
            lines.append(line.lstrip("#").strip())
    return lines


def numbered_equations(text: str) -> set[int]:
    """The equation numbers of docs/paper.md: lines of a fenced block ending in "(N)"."""
    numbers, fenced = set(), False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif fenced and (match := NUMBERED_EQUATION.search(line)):
            numbers.add(int(match.group(1)))
    return numbers


def cited_equations(citation: str) -> set[int]:
    numbers = set()
    for part in re.split(r"\s*(?:,|and)\s*", citation):
        bounds = [int(n) for n in re.findall(r"\d+", part)]
        numbers |= set(range(bounds[0], bounds[-1] + 1)) if bounds else set()
    return numbers


def test_no_file_points_outside_the_repository_for_the_paper():
    assert not [name for name, text in tracked_text_files().items() if OUTSIDE_RESTATEMENT in text]


def test_no_issue_tracker_references():
    found = []
    for name, text in tracked_text_files().items():
        for match in TRACKER.finditer(text):
            before = (match.group(1) or "").strip().strip("(").lower()
            if before not in OTHER_PROJECTS:
                found.append(f"{name}: {match.group(0).strip()}")
    assert not found


def test_the_paper_numbers_its_equations_1_to_19():
    assert numbered_equations(PAPER.read_text()) == set(range(1, 20))


def test_every_cited_equation_is_numbered_in_the_paper():
    numbered = numbered_equations(PAPER.read_text())
    wrong = [
        f"{name}: {match.group(0)}"
        for name, text in tracked_text_files().items()
        if name.startswith(("src/", "tests/", "benchmarks/", "workflow/", "docs/"))
        or name == "config.yaml"
        for match in EQUATION_CITATION.finditer(text)
        if not cited_equations(match.group(1)) <= numbered
    ]
    assert not wrong


def test_every_cited_section_of_the_paper_exists():
    sections = set(headings(PAPER.read_text()))
    wrong = [
        f"{name}: {match.group(1)}"
        for name, text in tracked_text_files().items()
        for match in SECTION_CITATION.finditer(re.sub(r"\s*\n\s*#?\s*", " ", text))
        if match.group(1) not in sections
    ]
    assert not wrong


def test_every_anchor_of_a_link_between_docs_exists():
    texts = tracked_text_files()
    anchors = {}
    for name, text in texts.items():
        if name.endswith(".md"):
            anchors.setdefault(name.rsplit("/", 1)[-1], set()).update(
                slug(h) for h in headings(text)
            )
    wrong = [
        f"{name}: {doc}#{anchor}"
        for name, text in texts.items()
        for doc, anchor in ANCHOR_LINK.findall(text)
        if doc in anchors and anchor not in anchors[doc]
    ]
    assert not wrong


def test_the_rules_catch_what_they_are_for():
    """Each check fails on a sample of what it is there to catch."""
    word = "issue"  # the samples are built, so that this file passes its own check
    assert TRACKER.search(f"measured on the demo ({word} 15)")
    assert TRACKER.search(f"see {word.title()} #18.")
    match = TRACKER.search(f"a known pytorch {word} #12345")
    assert match and match.group(1).strip() in OTHER_PROJECTS
    assert not TRACKER.search("https://github.com/pytorch/pytorch/issues/12345")
    assert cited_equations("(5)-(8)") == {5, 6, 7, 8}
    assert cited_equations("2 and 4") == {2, 4}
    assert cited_equations(EQUATION_CITATION.search("eqs. 17-19, via").group(1)) == {17, 18, 19}
    assert cited_equations(EQUATION_CITATION.search("Eqs. (1)-(4): F'").group(1)) == {1, 2, 3, 4}
    assert slug("Table 2's all-off row") == "table-2s-all-off-row"
    assert slug("The demo's recipe") == "the-demos-recipe"
