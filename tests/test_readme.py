"""The README's Python examples run as written and print what they claim."""

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python examples"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile("\n".join(blocks), str(README), "exec"), {})
    printed = out.getvalue()
    assert "[-6. -6.]" in printed
    assert "-152.00516157" in printed
