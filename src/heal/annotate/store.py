"""The annotation database: annotators, pairs, who was shown what, labels, guidelines. One SQLite file.

Durability: WAL journal with `synchronous=FULL`, and every write is one `BEGIN IMMEDIATE … COMMIT` that finishes
before the HTTP response is sent, so a label the server acknowledged survives `kill -9` (and a power cut). Writers
are serialised by SQLite's write lock, which also makes assignment race-free: two annotators asking at once can
never both take a pair's last slot.

Assignment: a pair goes to `labels_per_pair` different annotators. An annotator who asks for work first gets back the
pair they were shown and have not answered (so a reload, or a server restart, continues where they were); otherwise
the first pair they have never been shown that still has a free slot, pairs already started first (so pairs get
finished, which agreement needs). A shown-but-unanswered pair holds its slot for `reservation_minutes`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from heal.errors import HealError

CHOICES = ("answer_1", "answer_2", "tie", "both_unsafe")  # stored; the page's A/B map onto answer_1/2 per annotator
FLAGS = ("unsafe", "hallucination", "phi", "off_scope")
SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token_sha256 TEXT UNIQUE NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    id INTEGER PRIMARY KEY, fingerprint TEXT UNIQUE NOT NULL, prompt TEXT NOT NULL, answer_1 TEXT NOT NULL,
    answer_2 TEXT NOT NULL, ai_choice INTEGER CHECK (ai_choice IN (1, 2)), ai_judge TEXT, source TEXT,
    extra TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS assignments (
    pair_id INTEGER NOT NULL REFERENCES pairs(id), annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    swapped INTEGER NOT NULL, status TEXT NOT NULL CHECK (status IN ('open', 'done', 'skipped')),
    shown_at REAL NOT NULL, PRIMARY KEY (pair_id, annotator_id));
CREATE INDEX IF NOT EXISTS assignments_by_annotator ON assignments (annotator_id, status);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY, pair_id INTEGER NOT NULL REFERENCES pairs(id),
    annotator_id INTEGER NOT NULL REFERENCES annotators(id), choice TEXT NOT NULL, flags TEXT NOT NULL,
    rationale TEXT NOT NULL, seconds REAL, created_at TEXT NOT NULL, UNIQUE (pair_id, annotator_id));
"""
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class Refused(Exception):
    """A request the store turns down: HTTP `status` with a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Annotator:
    id: int
    name: str
    is_admin: bool


def hash_token(token: str) -> str:
    """Tokens are stored as their SHA-256 only: a copied database gives nobody a way to sign in."""
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    """One SQLite file; a connection per thread (FastAPI runs plain endpoints on a thread pool)."""

    def __init__(self, db_path: str | Path, create: bool = True):
        self.path = Path(db_path)
        if self.path.is_dir() or not self.path.parent.is_dir():
            raise HealError(f"{db_path}: not a usable database path; give a file in an existing folder "
                            "(e.g. --db_path labels.sqlite)")
        if not create and not self.path.is_file():
            raise HealError(f"{db_path}: no such database; create it with `heal annotate serve` or "
                            "`heal annotate add-annotator`")
        self._local = threading.local()
        self._write_lock = threading.Lock()
        if not create:  # an existing file: read it as it is, and refuse one that is not ours
            try:
                tables = {r[0] for r in self.read("SELECT name FROM sqlite_master WHERE type = 'table'")}
            except sqlite3.DatabaseError as e:
                raise HealError(f"{db_path}: not a HEAL annotation database ({e}); pick another --db_path") from None
            if not {"annotators", "pairs", "labels"} <= tables:
                raise HealError(f"{db_path}: not a HEAL annotation database (no annotators/pairs/labels tables)")
            return
        try:
            with self.write() as conn:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        except sqlite3.DatabaseError as e:
            raise HealError(f"{db_path}: not a HEAL annotation database ({e}); pick another --db_path") from None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # the commit is on disk before we acknowledge it
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed when the block ends (rolled back on any exception)."""
        conn = self._conn()
        # Threads of this process queue on a lock rather than on SQLite's busy handler, whose sleep-and-retry makes
        # a long latency tail under concurrent writers; other processes (a CLI next to the server) still wait on it.
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, params).fetchall()

    # --- settings, annotators, pairs ------------------------------------------------------------------------------

    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self.read("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str) -> None:
        with self.write() as conn:
            conn.execute("INSERT INTO settings VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         (key, value))

    def add_annotator(self, name: str, admin: bool = False) -> str:
        """Create an annotator; returns their token (shown once: only its hash is kept)."""
        if not _NAME.fullmatch(name or ""):
            raise HealError(f"annotator name {name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        token = "heal_" + secrets.token_urlsafe(24)
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM annotators WHERE name = ?", (name,)).fetchone():
                raise HealError(f"annotator {name!r} already exists in {self.path}; choose another name")
            conn.execute("INSERT INTO annotators (name, token_sha256, is_admin, created_at) VALUES (?, ?, ?, ?)",
                         (name, hash_token(token), int(admin), _now()))
        return token

    def reset_token(self, name: str) -> str:
        """A new token for `name`; the old one stops working."""
        token = "heal_" + secrets.token_urlsafe(24)
        with self.write() as conn:
            if conn.execute("UPDATE annotators SET token_sha256 = ? WHERE name = ?",
                            (hash_token(token), name)).rowcount == 0:
                known = [r[0] for r in conn.execute("SELECT name FROM annotators ORDER BY name")]
                raise HealError(f"unknown annotator {name!r} in {self.path}; known: {', '.join(known) or 'none'} "
                                "(add one with `heal annotate add-annotator`)")
        return token

    def annotator_for(self, token: str) -> Annotator | None:
        rows = self.read("SELECT id, name, is_admin FROM annotators WHERE token_sha256 = ?", (hash_token(token),))
        return Annotator(rows[0]["id"], rows[0]["name"], bool(rows[0]["is_admin"])) if rows else None

    def import_pairs(self, pairs: list, credentialed: bool = False) -> int:
        """Add pairs not already present (by fingerprint); returns how many were new."""
        added = 0
        with self.write() as conn:
            for pair in pairs:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO pairs (fingerprint, prompt, answer_1, answer_2, ai_choice, ai_judge, "
                    "source, extra) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (pair.fingerprint, pair.prompt, pair.answer_1, pair.answer_2, pair.ai_choice, pair.ai_judge,
                     "mimic" if credentialed and not pair.source else pair.source, json.dumps(pair.extra)))
                added += cursor.rowcount
            if credentialed:  # the file's metadata said so: remember it even for pairs without a source column
                conn.execute("INSERT OR REPLACE INTO settings VALUES ('credentialed', '1')")
        return added

    def credentialed(self) -> bool:
        from heal.data.schema import CREDENTIALED_SOURCES

        marks = ",".join("?" * len(CREDENTIALED_SOURCES))
        rows = self.read(f"SELECT 1 FROM pairs WHERE source IN ({marks}) LIMIT 1", tuple(CREDENTIALED_SOURCES))
        return bool(rows) or self.setting("credentialed") == "1"

    def count(self, sql: str, params: tuple = ()) -> int:
        return int(self.read(sql, params)[0][0])

    # --- guidelines: the health constitution's axes, editable by an admin ------------------------------------------

    def guidelines(self) -> dict:
        stored = self.setting("guidelines")
        if stored:
            return json.loads(stored)
        from heal.feedback.constitution import load_constitution

        constitution = load_constitution()
        return {"name": constitution.name, "preamble": constitution.preamble.strip(),
                "axes": [{"name": name, "text": text.strip()} for name, text in constitution.principles],
                "updated_by": None, "updated_at": None}

    def set_guidelines(self, guidelines: dict, who: Annotator) -> dict:
        value = {**guidelines, "updated_by": who.name, "updated_at": _now()}
        self.set_setting("guidelines", json.dumps(value))
        return value

    # --- the annotator's work ---------------------------------------------------------------------------------------

    _FREE = """SELECT id FROM (
        SELECT p.id, (SELECT COUNT(*) FROM assignments a WHERE a.pair_id = p.id
                      AND (a.status = 'done' OR (a.status = 'open' AND a.shown_at > ?))) AS taken
        FROM pairs p WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.pair_id = p.id AND a.annotator_id = ?))
        WHERE taken < ? ORDER BY taken DESC, id"""

    def next_pair(self, who: Annotator, labels_per_pair: int, reservation_s: float) -> dict | None:
        """The pair this annotator should label now (see the module docstring), or None when they are done."""
        with self.write() as conn:
            row = conn.execute("SELECT pair_id FROM assignments WHERE annotator_id = ? AND status = 'open' "
                               "ORDER BY shown_at DESC LIMIT 1", (who.id,)).fetchone()
            if row is None:
                row = conn.execute(self._FREE + " LIMIT 1",
                                   (time.time() - reservation_s, who.id, labels_per_pair)).fetchone()
                if row is None:
                    return None
                row = {"pair_id": row["id"]}
                conn.execute("INSERT INTO assignments VALUES (?, ?, ?, 'open', ?)",
                             (row["pair_id"], who.id, secrets.randbelow(2), time.time()))  # random A/B order
            return self._view(conn, row["pair_id"], who.id)

    def _view(self, conn: sqlite3.Connection, pair_id: int, annotator_id: int) -> dict:
        """The pair as this annotator sees it: their A/B order; no model, judge or source names."""
        pair = conn.execute("SELECT p.prompt, p.answer_1, p.answer_2, a.swapped FROM pairs p JOIN assignments a "
                            "ON a.pair_id = p.id AND a.annotator_id = ? WHERE p.id = ?",
                            (annotator_id, pair_id)).fetchone()
        a, b = (pair["answer_2"], pair["answer_1"]) if pair["swapped"] else (pair["answer_1"], pair["answer_2"])
        return {"pair_id": pair_id, "prompt": pair["prompt"], "answer_a": a, "answer_b": b}

    def _assignment(self, conn: sqlite3.Connection, who: Annotator, pair_id: int) -> sqlite3.Row:
        row = conn.execute("SELECT swapped, status, shown_at FROM assignments WHERE pair_id = ? AND annotator_id = ?",
                           (pair_id, who.id)).fetchone()
        if row is None:  # also for pairs that do not exist: no way to probe which ids exist
            raise Refused(403, f"pair {pair_id} is not assigned to you")
        return row

    def submit(self, who: Annotator, pair_id: int, choice: str, flags: list[str], rationale: str) -> dict:
        """Record a label (choice is A, B, tie or both_unsafe as the annotator saw the pair); committed on return.

        Sending the same label again (a client retrying after a lost response) is acknowledged, not duplicated."""
        flags_text = json.dumps(sorted(set(flags)))
        with self.write() as conn:
            assignment = self._assignment(conn, who, pair_id)
            stored = _stored_choice(choice, bool(assignment["swapped"]))
            if assignment["status"] == "done":
                old = conn.execute("SELECT id, choice, flags, rationale FROM labels WHERE pair_id = ? AND "
                                   "annotator_id = ?", (pair_id, who.id)).fetchone()
                if old is None or (old["choice"], old["flags"], old["rationale"]) != (stored, flags_text, rationale):
                    raise Refused(409, f"pair {pair_id} is already labelled; undo it first to change the label")
                label_id = old["id"]
            elif assignment["status"] == "skipped":
                raise Refused(409, f"pair {pair_id} was skipped")
            else:
                label_id = conn.execute(
                    "INSERT INTO labels (pair_id, annotator_id, choice, flags, rationale, seconds, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (pair_id, who.id, stored, flags_text, rationale,
                                                     round(time.time() - assignment["shown_at"], 3), _now())
                ).lastrowid
                conn.execute("UPDATE assignments SET status = 'done' WHERE pair_id = ? AND annotator_id = ?",
                             (pair_id, who.id))
            ai = conn.execute("SELECT ai_choice FROM pairs WHERE id = ?", (pair_id,)).fetchone()["ai_choice"]
        return {"label_id": label_id, "pair_id": pair_id, "choice": choice,
                "ai_verdict": _letter(ai, bool(assignment["swapped"])) if ai else None}

    def skip(self, who: Annotator, pair_id: int) -> None:
        with self.write() as conn:
            if self._assignment(conn, who, pair_id)["status"] != "open":
                raise Refused(409, f"pair {pair_id} is already labelled or skipped")
            conn.execute("UPDATE assignments SET status = 'skipped' WHERE pair_id = ? AND annotator_id = ?",
                         (pair_id, who.id))

    def undo(self, who: Annotator) -> dict:
        """Withdraw this annotator's most recent label; the pair comes back to them, their old answer attached."""
        with self.write() as conn:
            last = conn.execute("SELECT id, pair_id, choice, flags, rationale FROM labels WHERE annotator_id = ? "
                                "ORDER BY id DESC LIMIT 1", (who.id,)).fetchone()
            if last is None:
                raise Refused(409, "nothing to undo: you have no labels")
            conn.execute("DELETE FROM labels WHERE id = ?", (last["id"],))
            conn.execute("UPDATE assignments SET status = 'open', shown_at = ? WHERE pair_id = ? AND annotator_id = ?",
                         (time.time(), last["pair_id"], who.id))
            view = self._view(conn, last["pair_id"], who.id)
            swapped = conn.execute("SELECT swapped FROM assignments WHERE pair_id = ? AND annotator_id = ?",
                                   (last["pair_id"], who.id)).fetchone()["swapped"]
        return {"pair": view, "undone": {"choice": _shown_choice(last["choice"], bool(swapped)),
                                         "flags": json.loads(last["flags"]), "rationale": last["rationale"]}}

    def progress(self, who: Annotator, labels_per_pair: int, reservation_s: float) -> dict:
        counts = dict(self.read("SELECT status, COUNT(*) FROM assignments WHERE annotator_id = ? GROUP BY status",
                                (who.id,)))
        free = self.count(f"SELECT COUNT(*) FROM ({self._FREE})", (time.time() - reservation_s, who.id,
                                                                     labels_per_pair))
        done = counts.get("done", 0)
        return {"labelled": done, "skipped": counts.get("skipped", 0),
                "remaining": free + counts.get("open", 0), "total": done + free + counts.get("open", 0)}


def _stored_choice(choice: str, swapped: bool) -> str:
    if choice in ("A", "B"):
        return "answer_1" if (choice == "A") != swapped else "answer_2"
    return choice


def _shown_choice(stored: str, swapped: bool) -> str:
    if stored in ("answer_1", "answer_2"):
        return "A" if (stored == "answer_1") != swapped else "B"
    return stored


def _letter(ai_choice: int, swapped: bool) -> str:
    return _shown_choice(f"answer_{ai_choice}", swapped)
