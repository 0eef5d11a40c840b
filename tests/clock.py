"""A clock the test moves by hand, for code that takes ``clock=`` (the room stores, the engine's worker)."""


class Clock:
    """Seconds that move only when the test says so: expiry, heartbeats and syncs without racing a busy machine."""

    def __init__(self, t: float = 1.8e9):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
