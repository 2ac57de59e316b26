"""Small helpers shared by tests (imported as `from helpers import ...`; tests/ is on sys.path via conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

from heal.cli import run

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PUBMEDQA = SHARED / "pubmedqa" / "ori_pqal_trainval.json"
PUBMEDQA_FOLDS = SHARED / "pubmedqa" / "pqal_cv_folds.json"
REPO = Path(__file__).resolve().parents[1]
# The installed console script of the interpreter running the tests (the venv need not be activated).
HEAL_BIN = str(Path(sys.executable).parent / "heal")


def heal(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `heal argv...` in-process; return (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = run([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    # Progress bars (model loading, data preparation) may precede the error; they redraw with carriage returns.
    lines = [line for line in err.strip().splitlines() if line.strip() and "\r" not in line and "it/s]" not in line]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
