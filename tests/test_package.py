"""Package hygiene: docs that point at files point inside the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docstrings_cite_only_files_in_the_repository():
    cited = {}
    for path in (ROOT / "geomshock").rglob("*.py"):
        for name in re.findall(r"``([\w./-]+\.(?:md|py|ipynb))``", path.read_text()):
            if "/" in name:
                cited.setdefault(name, path.relative_to(ROOT))
    missing = {
        name: str(src) for name, src in cited.items() if not (ROOT / name).exists()
    }
    assert not missing, f"docstrings cite files outside the repository: {missing}"
