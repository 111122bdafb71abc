"""The README's generated blocks, rewritten by the benchmark that measured them.

A block is the text between ``<!-- <mark>:begin ... -->`` and ``<!-- <mark>:end -->``.
"""

from __future__ import annotations

import re
from pathlib import Path


def replace_block(readme: Path, mark: str, body: str) -> bool:
    """Put ``body`` between the README's ``mark`` markers; False when it has no such block.

    The begin marker may carry a note (``<!-- performance:begin (rendered by ...) -->``); it is
    kept as it is.
    """
    text = Path(readme).read_text()
    begin = re.search(rf"<!-- {re.escape(mark)}:begin[^>]*-->", text)
    end = f"<!-- {mark}:end -->"
    if begin is None or end not in text[begin.end() :]:
        return False
    tail = text[begin.end() :].split(end, 1)[1]
    Path(readme).write_text(f"{text[: begin.end()]}\n{body.strip()}\n{end}{tail}")
    return True
