"""Every requirement, invariant and section the code and docs cite is defined in docs/REQUIREMENTS.md,
so a reader of this repository alone can look each one up."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "docs" / "REQUIREMENTS.md"
CITING = [*REPO.glob("shared/**/*.py"), *REPO.glob("functions/**/*.py"), *REPO.glob("infra/**/*.py"),
          *REPO.glob("tests/**/*.py"), *REPO.glob("docs/*.md"), REPO / "README.md", REPO / "template.yaml"]
CITATION = re.compile(r"\b([RI](?:10|[1-9]))\b|REQUIREMENTS §(\d+)")


def defined() -> tuple[set[str], set[str]]:
    """The ids defined (`- **R4 ...**`) and the sections headed (`## §6 ...`) in REQUIREMENTS.md."""
    text = REQUIREMENTS.read_text(encoding="utf-8")
    ids = set(re.findall(r"^- \*\*([RI]\d+) ", text, flags=re.MULTILINE))
    sections = set(re.findall(r"^## §(\d+) ", text, flags=re.MULTILINE))
    return ids, sections


def citations(text: str) -> tuple[set[str], set[str]]:
    ids, sections = set(), set()
    for identifier, section in CITATION.findall(text):
        if identifier:
            ids.add(identifier)
        if section:
            sections.add(section)
    return ids, sections


def test_every_requirement_and_invariant_is_defined_once() -> None:
    ids, sections = defined()
    assert ids == {f"R{n}" for n in range(1, 11)} | {f"I{n}" for n in range(1, 9)}
    assert sections == {str(n) for n in range(1, 13)}


def test_every_citation_in_the_repository_resolves() -> None:
    ids, sections = defined()
    unresolved = []
    for path in CITING:
        if path in (REQUIREMENTS, Path(__file__)) or "__pycache__" in path.parts:
            continue
        cited_ids, cited_sections = citations(path.read_text(encoding="utf-8"))
        unresolved += [f"{path.relative_to(REPO)}: {i}" for i in sorted(cited_ids - ids)]
        unresolved += [f"{path.relative_to(REPO)}: §{s}" for s in sorted(cited_sections - sections)]
    assert unresolved == []


def test_nothing_cites_a_document_outside_the_repository() -> None:
    outside = [str(p.relative_to(REPO)) for p in CITING
               if "__pycache__" not in p.parts and p != Path(__file__) and "SPEC §" in p.read_text(encoding="utf-8")]
    assert outside == []


def test_the_citation_check_can_fail() -> None:
    ids, sections = citations("see R11, I2 and REQUIREMENTS §13")
    assert ids == {"I2"} and sections == {"13"}


def test_every_error_code_is_documented_with_its_status() -> None:
    from lorapin.domain import errors

    classes = [c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.LorapinError)]
    text = (REPO / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")
    documented = {(int(status), code) for status, codes in re.findall(r"^\| (\d{3}) \| ([^|]+) \|", text, re.M)
                  for code in re.findall(r"`([A-Z_]+)`", codes)}
    assert {(c.status, c.code) for c in classes} == documented
