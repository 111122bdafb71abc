"""No numpy view of a SimpleITK image that nothing keeps alive.

``sitk.GetArrayViewFromImage(img)`` shares the image's buffer without holding a reference to
it: called on a temporary (``GetArrayViewFromImage(sitk.ReadImage(p))``) the image is freed when
the call returns and the view reads whatever the allocator puts there next. The baselines' lesion
SD read such a view and came out as 1e34 in about one process in five.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _view_calls_on_temporaries(text: str, label: str) -> list[str]:
    tree = ast.parse(text, filename=label)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = (
            node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        )
        if name == "GetArrayViewFromImage" and isinstance(node.args[0], ast.Call):
            found.append(f"{label}:{node.lineno}")
    return found


def test_no_array_view_of_a_temporary_image():
    files = [*ROOT.glob("src/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py")]
    offenders = [
        hit
        for path in files
        for hit in _view_calls_on_temporaries(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert not offenders, f"GetArrayViewFromImage on a temporary image: {offenders}"


def test_the_check_finds_one():
    text = "import SimpleITK as sitk\nv = sitk.GetArrayViewFromImage(sitk.ReadImage('x'))\n"
    assert _view_calls_on_temporaries(text, "example.py") == ["example.py:2"]
    kept = (
        "import SimpleITK as sitk\nimg = sitk.ReadImage('x')\nv = sitk.GetArrayViewFromImage(img)\n"
    )
    assert _view_calls_on_temporaries(kept, "example.py") == []
