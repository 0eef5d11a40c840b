"""The default classroom store: one SQLite file (stdlib ``sqlite3``) in WAL mode.

Several server processes on one machine may open the same file: WAL lets readers run while one
writer writes, ``busy_timeout`` makes a writer wait for another instead of failing, and every
check-then-write (the caps) runs inside ``BEGIN IMMEDIATE`` so two processes cannot both pass a
check. Inside a process one connection is shared by Streamlit's script threads, behind a lock.
Expired rooms are deleted with everything in them (foreign keys cascade) by ``expire``, which
``create_room`` also runs; until then every read treats them as gone.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from explorer.rooms.model import (
    Limits,
    Poll,
    PushedSettings,
    Room,
    RoomFull,
    Seat,
    Student,
    StudentReport,
    TooManyAttempts,
    UnknownRoom,
    check_push,
    check_report,
    clean_name,
    clean_text,
    new_code,
    normalise_code,
    push_from_json,
    push_to_json,
    report_from_json,
    report_to_json,
)
from explorer.rooms.store import (
    Clock,
    new_student_id,
    new_token,
    require_token,
    seats_csv,
    token_hash,
    unavailable_as,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    code TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    created REAL NOT NULL,
    last_active REAL NOT NULL,
    training INTEGER NOT NULL DEFAULT 0,
    push TEXT,
    push_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS students (
    code TEXT NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    joined REAL NOT NULL,
    last_seen REAL NOT NULL,
    report TEXT,
    PRIMARY KEY (code, id)
);
CREATE TABLE IF NOT EXISTS answers (
    code TEXT NOT NULL,
    student TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    PRIMARY KEY (code, student, question),
    FOREIGN KEY (code, student) REFERENCES students(code, id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS revealed (
    code TEXT NOT NULL REFERENCES rooms(code) ON DELETE CASCADE,
    question TEXT NOT NULL,
    PRIMARY KEY (code, question)
);
CREATE TABLE IF NOT EXISTS failed_joins (client TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS failed_joins_by_client ON failed_joins (client, at);
"""
RATE_WINDOW = 60.0  # seconds over which wrong join codes are counted


@unavailable_as((sqlite3.OperationalError,), "SQLite")
class SQLiteStore:
    """``RoomStore`` on a SQLite file (created with its folder if missing)."""

    def __init__(self, path: str | Path, *, limits: Limits = Limits(), clock: Clock = time.time):
        self.path = Path(path)
        self.limits = limits
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; _write opens BEGIN IMMEDIATE itself.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, fast
            self._db.executescript(SCHEMA)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _live_cutoff(self) -> float:
        return self.clock() - self.limits.idle_seconds

    def _room_row(self, db: sqlite3.Connection, code: str) -> tuple:
        code = normalise_code(code)
        row = db.execute(
            "SELECT code, token_hash, created, last_active, training, push FROM rooms "
            "WHERE code = ? AND last_active >= ?",
            (code, self._live_cutoff()),
        ).fetchone()
        if row is None:
            raise UnknownRoom(f"no class has the code {code!r}: check it, or ask for a new one")
        return row

    def _teacher(self, db: sqlite3.Connection, code: str, token: str) -> str:
        """The room's code after checking the token; marks the room active."""
        row = self._room_row(db, code)
        require_token(token, row[1])
        db.execute("UPDATE rooms SET last_active = ? WHERE code = ?", (self.clock(), row[0]))
        return row[0]

    def _student(self, db: sqlite3.Connection, code: str, student_id: str) -> str:
        """The room's code after checking the student is in it; marks both seen now."""
        room = self._room_row(db, code)[0]
        now = self.clock()
        seen = db.execute(
            "UPDATE students SET last_seen = ? WHERE code = ? AND id = ?", (now, room, str(student_id))
        )
        if seen.rowcount == 0:
            raise UnknownRoom("this student is not in the class (it may have expired): join again")
        db.execute("UPDATE rooms SET last_active = ? WHERE code = ?", (now, room))
        return room

    def create_room(self) -> tuple[str, str]:
        self.expire()
        token, hashed = new_token()
        now = self.clock()
        with self._write() as db:
            (rooms,) = db.execute("SELECT COUNT(*) FROM rooms").fetchone()
            if rooms >= self.limits.rooms_per_server:
                raise RoomFull(
                    f"this server already holds {rooms} classes, its limit: try again when one expires"
                )
            while True:  # 31^6 codes: a clash is rare, and retried
                code = new_code()
                clash = db.execute("SELECT 1 FROM rooms WHERE code = ?", (code,)).fetchone()
                if clash is None:
                    break
            db.execute(
                "INSERT INTO rooms (code, token_hash, created, last_active) VALUES (?, ?, ?, ?)",
                (code, hashed, now, now),
            )
        return code, token

    def room(self, code: str) -> Room:
        with self._lock:
            row = self._room_row(self._db, code)
            revealed = self._db.execute("SELECT question FROM revealed WHERE code = ?", (row[0],)).fetchall()
        return Room(
            code=row[0],
            created=row[2],
            last_active=row[3],
            push=push_from_json(row[5]),
            training=bool(row[4]),
            revealed=frozenset(q for (q,) in revealed),
        )

    def join(self, code: str, display_name: str | None = None, *, client: str = "") -> str:
        name = clean_name(display_name, self.limits)
        client_key, now = token_hash(client), self.clock()  # clients are kept hashed (IPs are personal)
        try:
            with self._write() as db:
                db.execute(
                    "DELETE FROM failed_joins WHERE client = ? AND at <= ?", (client_key, now - RATE_WINDOW)
                )
                (failures,) = db.execute(
                    "SELECT COUNT(*) FROM failed_joins WHERE client = ? AND at > ?",
                    (client_key, now - RATE_WINDOW),
                ).fetchone()
                if failures >= self.limits.failed_joins_per_minute:
                    raise TooManyAttempts("too many wrong class codes from here: wait a minute and try again")
                room = self._room_row(db, code)[0]
                (seated,) = db.execute("SELECT COUNT(*) FROM students WHERE code = ?", (room,)).fetchone()
                if seated >= self.limits.students_per_room:
                    raise RoomFull(f"this class is full ({seated} students, its limit)")
                student = new_student_id()
                db.execute(
                    "INSERT INTO students (code, id, name, joined, last_seen) VALUES (?, ?, ?, ?, ?)",
                    (room, student, name, now, now),
                )
                db.execute("UPDATE rooms SET last_active = ? WHERE code = ?", (now, room))
        except UnknownRoom:
            with self._write() as db:
                db.execute("INSERT INTO failed_joins (client, at) VALUES (?, ?)", (client_key, now))
            raise
        return student

    def report(self, code: str, student_id: str, report: StudentReport) -> None:
        encoded = report_to_json(check_report(report, self.limits))
        with self._write() as db:
            room = self._student(db, code, student_id)
            db.execute(
                "UPDATE students SET report = ? WHERE code = ? AND id = ?", (encoded, room, student_id)
            )

    def check_token(self, code: str, token: str) -> None:
        with self._write() as db:
            self._teacher(db, code, token)

    def students(self, code: str, token: str) -> list[Seat]:
        with self._write() as db:
            room = self._teacher(db, code, token)
            rows = db.execute(
                "SELECT id, name, joined, last_seen, report FROM students WHERE code = ? ORDER BY rowid",
                (room,),
            ).fetchall()
            answers: dict[str, dict[str, str]] = {}
            for student, question, answer in db.execute(
                "SELECT student, question, answer FROM answers WHERE code = ?", (room,)
            ):
                answers.setdefault(student, {})[question] = answer
        return [
            Seat(
                student=Student(id=sid, name=name, joined=joined, last_seen=seen),
                report=None if report is None else report_from_json(report),
                answers=answers.get(sid, {}),
            )
            for sid, name, joined, seen, report in rows
        ]

    def push_settings(self, code: str, token: str, settings: PushedSettings) -> PushedSettings:
        settings = check_push(settings, self.limits)
        with self._write() as db:
            room = self._teacher(db, code, token)
            (version,) = db.execute("SELECT push_version + 1 FROM rooms WHERE code = ?", (room,)).fetchone()
            pushed = PushedSettings(**{**settings.changed(), "version": version})
            db.execute(
                "UPDATE rooms SET push = ?, push_version = ? WHERE code = ?",
                (push_to_json(pushed), version, room),
            )
        return pushed

    def latest_push(self, code: str) -> PushedSettings | None:
        with self._lock:
            return push_from_json(self._room_row(self._db, code)[5])

    def set_training(self, code: str, token: str, running: bool) -> None:
        with self._write() as db:
            room = self._teacher(db, code, token)
            db.execute("UPDATE rooms SET training = ? WHERE code = ?", (int(bool(running)), room))

    def answer_poll(self, code: str, student_id: str, question: str, answer: str) -> bool:
        question = clean_text(question, self.limits.text_chars, "a question id")
        answer = clean_text(answer, self.limits.text_chars, "an answer")
        with self._write() as db:
            room = self._student(db, code, student_id)
            if db.execute(
                "SELECT 1 FROM revealed WHERE code = ? AND question = ?", (room, question)
            ).fetchone():
                return False
            known = db.execute(
                "SELECT 1 FROM answers WHERE code = ? AND question = ? LIMIT 1", (room, question)
            ).fetchone()
            if known is None:
                (polls,) = db.execute(
                    "SELECT COUNT(DISTINCT question) FROM answers WHERE code = ?", (room,)
                ).fetchone()
                if polls >= self.limits.polls_per_room:
                    raise ValueError(f"this class already has {polls} polls, its limit")
            db.execute(
                "INSERT INTO answers (code, student, question, answer) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (code, student, question) DO UPDATE SET answer = excluded.answer",
                (room, student_id, question, answer),
            )
        return True

    def poll_counts(self, code: str, token: str, question: str) -> Poll:
        with self._write() as db:
            room = self._teacher(db, code, token)
            counts = db.execute(
                "SELECT answer, COUNT(*) FROM answers WHERE code = ? AND question = ? GROUP BY answer ORDER BY answer",
                (room, question),
            ).fetchall()
            revealed = db.execute(
                "SELECT 1 FROM revealed WHERE code = ? AND question = ?", (room, question)
            ).fetchone()
        return Poll(question=question, counts=dict(counts), revealed=revealed is not None)

    def reveal(self, code: str, token: str, question: str) -> None:
        question = clean_text(question, self.limits.text_chars, "a question id")
        with self._write() as db:
            room = self._teacher(db, code, token)
            db.execute("INSERT OR IGNORE INTO revealed (code, question) VALUES (?, ?)", (room, question))

    def is_revealed(self, code: str, question: str) -> bool:
        return question in self.room(code).revealed

    def export_csv(self, code: str, token: str) -> bytes:
        return seats_csv(self.students(code, token))

    def expire(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        with self._write() as db:
            gone = db.execute("DELETE FROM rooms WHERE last_active < ?", (now - self.limits.idle_seconds,))
            db.execute("DELETE FROM failed_joins WHERE at <= ?", (now - RATE_WINDOW,))
        return gone.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
