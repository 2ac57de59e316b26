"""Resume state for long runs: finished rows appended to `<output_dir>/<stage>.partial/rows.jsonl` as they complete.

    state = PartialRun(folder, "redteam", fingerprint, restart=False)
    done = state.done_keys()                  # rows a crashed earlier attempt already finished
    state.append(rows)                        # flushed and fsync'ed: survives a crash right after
    …; state.remove()                         # the run completed and wrote its results

The partial folder is clearly named and holds a fingerprint of the settings that produced its rows; a rerun with
other settings is refused (the rows would not belong to it) unless `--restart` discards them. A line cut short by a
crash is ignored, and that row is simply redone.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from heal.data.io import write_json
from heal.errors import HealError


class PartialRun:
    def __init__(self, folder: str | Path, stage: str, fingerprint: dict, restart: bool = False):
        self.folder = Path(folder) / f"{stage}.partial"
        self.rows_path = self.folder / "rows.jsonl"
        self.fingerprint = fingerprint
        if restart and self.folder.exists():
            shutil.rmtree(self.folder)
        self._check()

    def _check(self) -> None:
        stored = self.folder / "fingerprint.json"
        if not stored.exists():
            return
        try:
            previous = json.loads(stored.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            previous = {}
        changed = sorted(k for k in set(previous) | set(self.fingerprint) if previous.get(k) != self.fingerprint.get(k))
        if changed:
            raise HealError(f"{self.folder}: holds an unfinished run with other settings ({', '.join(changed)}); "
                            "rerun with the same flags to resume it, pass --restart to discard it, or choose another "
                            "--output_dir")

    def rows(self) -> list[dict]:
        if not self.rows_path.exists():
            return []
        rows = []
        for line in self.rows_path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # the last line of a crashed attempt
                continue
        return rows

    def done_keys(self) -> set[str]:
        return {row["key"] for row in self.rows() if "key" in row}

    def append(self, rows: list[dict]) -> None:
        if not rows:
            return
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            write_json(self.folder / "fingerprint.json", self.fingerprint)
        with open(self.rows_path, "a", encoding="utf-8") as f:
            # A crash mid-line leaves a fragment; start on a fresh line so the next row is never glued to it.
            if f.tell() and not self.rows_path.read_bytes().endswith(b"\n"):
                f.write("\n")
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
