"""The trainer pages cannot rot: every Python block in docs/trainers/*.md is a verbatim piece of
the recipe file the page names (the file its test runs), unless marked as a sketch."""

from __future__ import annotations

import re

import pytest
from helpers.recipes import EXAMPLES

DOCS = EXAMPLES.parents[1] / "docs" / "trainers"
SKETCH = "<!-- a sketch, not from a recipe file -->"
PAGES = {"lightning.md": "lightning_ddp.py", "huggingface.md": "hf_trainer.py", "fsdp.md": "fsdp_torchrun.py"}


@pytest.mark.parametrize(("page", "recipe"), sorted(PAGES.items()))
def test_every_code_block_is_in_its_recipe(page: str, recipe: str) -> None:
    text = (DOCS / page).read_text()
    source = (EXAMPLES / recipe).read_text()
    assert f"examples/trainers/{recipe}" in text
    blocks = re.findall(r"([^\n]*)\n```python\n(.*?)```", text, flags=re.S)
    checked = [code for before, code in blocks if not before.endswith(SKETCH)]
    assert len(checked) >= 2
    for code in checked:
        assert code in source, f"{page}: this block is not in {recipe}:\n{code}"


def test_readme_links_every_page() -> None:
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    for page in PAGES:
        assert f"docs/trainers/{page}" in readme
