"""Process helpers for tests that start and kill engine processes."""


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie (exited, not yet reaped by its new parent) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
