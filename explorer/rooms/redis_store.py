"""The classroom store on Redis (the ``redis`` client), for replicas on several machines.

Keys, all under ``fme:`` (one Redis, not a cluster: the scripts touch several keys at once):

- ``fme:rooms``: sorted set, code -> last activity; counts rooms and finds idle ones.
- ``fme:room:CODE``: hash with the token's sha256, created, last_active, training, push (JSON),
  push_version. Beside it ``:students`` (id -> name, joined), ``:seen`` (id -> last seen),
  ``:reports`` (id -> latest report), ``:answers`` ("id:question" -> answer), ``:questions`` and
  ``:revealed`` (sets).
- ``fme:failed:CLIENT``: sorted set of wrong join codes in the last minute (client hashed).

Every write to a room renews a TTL (idle time + a minute) on all its keys, so Redis drops an
abandoned room by itself; reads also compare ``last_active`` with the store's clock, so a room is
gone at exactly the idle time, and ``expire`` deletes such rooms at once. Joining, creating and
pushing, answering and marking activity are Lua scripts, so caps, push versions and closed polls
hold across replicas, and a write that races an expiry leaves nothing behind.

Pushed settings: a student polls ``latest_push`` (one HGET) on each redraw and applies a version
it has not applied yet: no per-student connection or thread. Each push is also published on
``fme:room:CODE:push``; ``subscribe`` listens there, for a process that wants to be told at once.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Callable

import redis

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

ROOMS = "fme:rooms"
PARTS = ("students", "seen", "reports", "answers", "questions", "revealed")
RATE_WINDOW = 60.0

# KEYS: rooms index, room hash. ARGV: code, now, cutoff, cap, token hash, ttl.
# Returns 1 (created), 0 (code taken: retry) or -n (n live rooms, the cap).
CREATE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[4]) then return -n end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'token_hash', ARGV[5], 'created', ARGV[2], 'last_active', ARGV[2],
           'training', '0', 'push_version', '0')
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
return 1
"""
# KEYS: room hash, students, seen. ARGV: cutoff, cap, student id, student JSON (the script adds its
# seat number, for joining order), now. Returns 1 (seated), -1 (no live room) or -2 - n (full, n).
JOIN = """
local last = redis.call('HGET', KEYS[1], 'last_active')
if not last or tonumber(last) < tonumber(ARGV[1]) then return -1 end
local n = redis.call('HLEN', KEYS[2])
if n >= tonumber(ARGV[2]) then return -2 - n end
local student = cjson.decode(ARGV[4])
student['seat'] = redis.call('HINCRBY', KEYS[1], 'seats', 1)
redis.call('HSET', KEYS[2], ARGV[3], cjson.encode(student))
redis.call('HSET', KEYS[3], ARGV[3], ARGV[5])
return 1
"""
# KEYS: room hash. ARGV: settings JSON, channel. Returns the pushed JSON with its version.
PUSH = """
local settings = cjson.decode(ARGV[1])
settings['version'] = redis.call('HINCRBY', KEYS[1], 'push_version', 1)
local pushed = cjson.encode(settings)
redis.call('HSET', KEYS[1], 'push', pushed)
redis.call('PUBLISH', ARGV[2], pushed)
return pushed
"""
# KEYS: rooms index, room hash, its parts. ARGV: code, now, ttl. Marks the room active and renews
# every TTL; if the room expired meanwhile, deletes what the caller's write just left behind.
TOUCH = """
if redis.call('EXISTS', KEYS[2]) == 0 then
    for i = 3, #KEYS do redis.call('DEL', KEYS[i]) end
    return 0
end
redis.call('HSET', KEYS[2], 'last_active', ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
for i = 2, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 1
"""
# KEYS: revealed, questions, answers. ARGV: question, answer field, answer, cap on questions.
# Returns 1 (stored), 0 (already revealed) or -n (n questions, the cap).
ANSWER = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 0 then
    local n = redis.call('SCARD', KEYS[2])
    if n >= tonumber(ARGV[4]) then return -n end
    redis.call('SADD', KEYS[2], ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
return 1
"""


def room_key(code: str) -> str:
    return f"fme:room:{code}"


@unavailable_as((redis.ConnectionError, redis.TimeoutError), "Redis")
class RedisStore:
    """``RoomStore`` on a Redis server; ``from_url("redis://host:6379/0")`` connects."""

    def __init__(self, client: redis.Redis, *, limits: Limits = Limits(), clock: Clock = time.time):
        self.r = client
        self.limits = limits
        self.clock = clock
        self.ttl = math.ceil(limits.idle_seconds) + 60  # the clock check is exact; the TTL is the sweeper
        self._create = client.register_script(CREATE)
        self._join = client.register_script(JOIN)
        self._push = client.register_script(PUSH)
        self._touch_script = client.register_script(TOUCH)
        self._answer = client.register_script(ANSWER)

    @classmethod
    def from_url(cls, url: str, *, limits: Limits = Limits(), clock: Clock = time.time) -> RedisStore:
        # Timeouts: a Redis that stops answering is an error on the page in seconds, not a hung page.
        client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, limits=limits, clock=clock)

    def _keys(self, code: str) -> list[str]:
        return [room_key(code)] + [f"{room_key(code)}:{part}" for part in PARTS]

    def _live(self, code: str) -> tuple[str, dict[str, str]]:
        code = normalise_code(code)
        fields = self.r.hgetall(room_key(code))
        if not fields or float(fields["last_active"]) < self.clock() - self.limits.idle_seconds:
            raise UnknownRoom(f"no class has the code {code!r}: check it, or ask for a new one")
        return code, fields

    def _touch(self, code: str, now: float) -> None:
        self._touch_script(keys=[ROOMS, *self._keys(code)], args=[code, repr(now), self.ttl])

    def _teacher(self, code: str, token: str) -> str:
        """The room's code after checking the token. Callers ``_touch`` after writing: a TTL can
        only be set on a key that exists."""
        code, fields = self._live(code)
        require_token(token, fields["token_hash"])
        return code

    def _student(self, code: str, student_id: str) -> str:
        code, _ = self._live(code)
        if not self.r.hexists(f"{room_key(code)}:students", str(student_id)):
            raise UnknownRoom("this student is not in the class (it may have expired): join again")
        return code

    def _seen(self, code: str, student_id: str) -> None:
        now = self.clock()
        self.r.hset(f"{room_key(code)}:seen", student_id, repr(now))
        self._touch(code, now)

    def create_room(self) -> tuple[str, str]:
        self.expire()
        token, hashed = new_token()
        now = self.clock()
        cutoff = now - self.limits.idle_seconds
        while True:  # 31^6 codes: a clash is rare, and retried
            code = new_code()
            args = [code, repr(now), repr(cutoff), self.limits.rooms_per_server, hashed, self.ttl]
            status = self._create(keys=[ROOMS, room_key(code)], args=args)
            if status < 0:
                raise RoomFull(
                    f"this server already holds {-status} classes, its limit: try again when one expires"
                )
            if status == 1:
                return code, token

    def room(self, code: str) -> Room:
        code, fields = self._live(code)
        return Room(
            code=code,
            created=float(fields["created"]),
            last_active=float(fields["last_active"]),
            push=push_from_json(fields.get("push")),
            training=fields["training"] == "1",
            revealed=frozenset(self.r.smembers(f"{room_key(code)}:revealed")),
        )

    def join(self, code: str, display_name: str | None = None, *, client: str = "") -> str:
        name = clean_name(display_name, self.limits)
        failed, now = f"fme:failed:{token_hash(client)}", self.clock()
        self.r.zremrangebyscore(failed, "-inf", now - RATE_WINDOW)
        if self.r.zcard(failed) >= self.limits.failed_joins_per_minute:
            raise TooManyAttempts("too many wrong class codes from here: wait a minute and try again")
        code = normalise_code(code)
        student = new_student_id()
        record = json.dumps({"name": name, "joined": repr(now)})  # text: Lua's cjson rounds numbers
        keys = [room_key(code), f"{room_key(code)}:students", f"{room_key(code)}:seen"]
        args = [now - self.limits.idle_seconds, self.limits.students_per_room, student, record, repr(now)]
        status = self._join(keys=keys, args=args)
        if status == -1:
            with self.r.pipeline(transaction=False) as p:
                p.zadd(failed, {secrets.token_hex(8): now})
                p.expire(failed, math.ceil(RATE_WINDOW))
                p.execute()
            raise UnknownRoom(f"no class has the code {code!r}: check it, or ask for a new one")
        if status < -1:
            raise RoomFull(f"this class is full ({-2 - status} students, its limit)")
        self._touch(code, now)
        return student

    def report(self, code: str, student_id: str, report: StudentReport) -> None:
        encoded = report_to_json(check_report(report, self.limits))
        code = self._student(code, student_id)
        self.r.hset(f"{room_key(code)}:reports", student_id, encoded)
        self._seen(code, student_id)

    def check_token(self, code: str, token: str) -> None:
        self._touch(self._teacher(code, token), self.clock())

    def students(self, code: str, token: str) -> list[Seat]:
        code = self._teacher(code, token)
        with self.r.pipeline(transaction=True) as p:
            for part in ("students", "seen", "reports", "answers"):
                p.hgetall(f"{room_key(code)}:{part}")
            students, seen, reports, answer_fields = p.execute()
        self._touch(code, self.clock())
        answers: dict[str, dict[str, str]] = {}
        for field, answer in answer_fields.items():
            student, question = field.split(":", 1)  # ids are hex: the first colon ends them
            answers.setdefault(student, {})[question] = answer
        records = {sid: json.loads(text) for sid, text in students.items()}
        return [
            Seat(
                student=Student(
                    id=sid, name=rec["name"], joined=float(rec["joined"]), last_seen=float(seen[sid])
                ),
                report=report_from_json(reports[sid]) if sid in reports else None,
                answers=answers.get(sid, {}),
            )
            for sid, rec in sorted(records.items(), key=lambda item: item[1]["seat"])
        ]

    def push_settings(self, code: str, token: str, settings: PushedSettings) -> PushedSettings:
        settings = check_push(settings, self.limits)
        code = self._teacher(code, token)
        pushed = self._push(keys=[room_key(code)], args=[push_to_json(settings), f"{room_key(code)}:push"])
        self._touch(code, self.clock())
        return push_from_json(pushed)

    def latest_push(self, code: str) -> PushedSettings | None:
        code, _ = self._live(code)
        return push_from_json(self.r.hget(room_key(code), "push"))

    def subscribe(self, code: str, callback: Callable[[PushedSettings], None]):
        """Call ``callback(pushed)`` in a background thread on each push to the room.

        Returns the thread; ``.stop()`` then ``.join()`` ends it. One thread and connection per call: meant for a
        server-side listener, not one per student (they poll ``latest_push``).
        """
        code, _ = self._live(code)
        pubsub = self.r.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(
            **{f"{room_key(code)}:push": lambda message: callback(push_from_json(message["data"]))}
        )
        return pubsub.run_in_thread(sleep_time=0.05, daemon=True)

    def set_training(self, code: str, token: str, running: bool) -> None:
        code = self._teacher(code, token)
        self.r.hset(room_key(code), "training", "1" if running else "0")
        self._touch(code, self.clock())

    def answer_poll(self, code: str, student_id: str, question: str, answer: str) -> bool:
        question = clean_text(question, self.limits.text_chars, "a question id")
        answer = clean_text(answer, self.limits.text_chars, "an answer")
        code = self._student(code, student_id)
        keys = [f"{room_key(code)}:{part}" for part in ("revealed", "questions", "answers")]
        status = self._answer(
            keys=keys, args=[question, f"{student_id}:{question}", answer, self.limits.polls_per_room]
        )
        if status < 0:
            raise ValueError(f"this class already has {-status} polls, its limit")
        self._seen(code, student_id)
        return status == 1

    def poll_counts(self, code: str, token: str, question: str) -> Poll:
        code = self._teacher(code, token)
        counts: dict[str, int] = {}
        for field, answer in self.r.hgetall(f"{room_key(code)}:answers").items():
            if field.split(":", 1)[1] == question:
                counts[answer] = counts.get(answer, 0) + 1
        revealed = bool(self.r.sismember(f"{room_key(code)}:revealed", question))
        self._touch(code, self.clock())
        return Poll(question=question, counts=dict(sorted(counts.items())), revealed=revealed)

    def reveal(self, code: str, token: str, question: str) -> None:
        question = clean_text(question, self.limits.text_chars, "a question id")
        code = self._teacher(code, token)
        self.r.sadd(f"{room_key(code)}:revealed", question)
        self._touch(code, self.clock())

    def is_revealed(self, code: str, question: str) -> bool:
        code, _ = self._live(code)
        return bool(self.r.sismember(f"{room_key(code)}:revealed", question))

    def export_csv(self, code: str, token: str) -> bytes:
        return seats_csv(self.students(code, token))

    def expire(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        idle = self.r.zrangebyscore(ROOMS, "-inf", f"({now - self.limits.idle_seconds!r}")
        if idle:
            with self.r.pipeline(transaction=True) as p:
                for code in idle:
                    p.delete(*self._keys(code))
                p.zrem(ROOMS, *idle)
                p.execute()
        return len(idle)

    def close(self) -> None:
        self.r.close()
