"""The README and docs/ are self-contained: every link resolves inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.registry import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s#]*)(#[^)\s]*)?\)")
# Files that exist only beside a checkout, never in it.
OUTSIDE = re.compile(
    r"\.\./shared|CONTRACT\.md|EMULATORS\.md|SLIP2GO\.md|STYLE\.md|\b00[0-4]_[0-9a-f]{16}\b"
)


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_resolve_inside_the_repository(doc: Path) -> None:
    text = doc.read_text()
    assert not OUTSIDE.search(text), OUTSIDE.search(text)
    for match in LINK.finditer(text):
        target, anchor = match.group(1), match.group(2)
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = (doc.parent / target).resolve() if target else doc
        assert path.is_relative_to(ROOT), f"{doc.name}: {target} is outside the repository"
        assert path.exists(), f"{doc.name}: {target} does not exist"
        if anchor and path.suffix == ".md":
            assert anchor[1:] in anchors(path.read_text()), f"{doc.name}: {target}{anchor}"


def test_contract_names_every_registered_function_and_topic() -> None:
    contract = (ROOT / "docs" / "contract.md").read_text()
    for spec in REGISTRY:
        assert f"`{spec.name}`" in contract, spec.name
        if spec.topic:
            assert f"`{spec.topic}`" in contract, spec.topic
