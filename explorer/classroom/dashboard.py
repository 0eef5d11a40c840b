"""The "Classroom" page: start a class, hand out the join code, watch every student's run, push settings, polls.

Only a session holding the room's teacher token sees the dashboard: the one that pressed
**Start a class**, or one opened from the teacher link (``/classroom?room=CODE&token=...``).
Anything else gets a plain refusal and no data. Every student-supplied string (names, chips,
poll answers) is shown as plain text: through ``explorer.core.text.plain`` in markdown, escaped
in plotly (``figures``).
"""

from __future__ import annotations

import contextlib
import functools
import time

import streamlit as st

from explorer.classroom import figures, links, push
from explorer.classroom.tiles import (
    SORTS,
    Tile,
    chip_texts,
    count_text,
    floor_ratio,
    loss_text,
    questions,
    status_line,
    tiles,
)
from explorer.core.text import plain
from explorer.rooms import (
    Limits,
    PushedSettings,
    RoomFull,
    RoomStore,
    StoreUnavailable,
    UnknownRoom,
    open_store,
)
from explorer.settings import settings

ROOM_KEY = "fme_class_room"  # session_state: (code, token) of the room this session teaches
FOCUS_KEY = "fme_class_focus"  # session_state: the student id shown large, or None
COLUMNS = 5  # tiles per row: 30 students are 6 rows
REFUSAL = "This dashboard opens only from its teacher link. Students: join with the link or code your teacher shows."
CHART = {"displayModeBar": False, "staticPlot": False}
OUTAGE = (
    "The classroom store is not answering just now (its server may be restarting): the students' "
    "runs go on, and this page shows them again by itself as soon as it answers."
)


def _tolerates_outage(part):
    """``part`` of the page, with a store that does not answer shown as ``OUTAGE``, not a traceback;
    the 2-second fragments then try again on their own."""

    @functools.wraps(part)
    def shown(*args, **kwargs):
        try:
            return part(*args, **kwargs)
        except StoreUnavailable:
            st.warning(OUTAGE, icon=":material/cloud_off:")

    return shown


@st.cache_resource(show_spinner=False)
def _open(url: str | None, data_dir: str) -> RoomStore:
    # The idle time is read here, not keyed: settings() is read once per process anyway.
    limits = Limits(idle_seconds=settings().room_idle_hours * 3600)
    return open_store(url, data_dir=data_dir, limits=limits)


def store() -> RoomStore:
    """This server process's one classroom store, opened from ``explorer.settings``."""
    s = settings()
    return _open(s.rooms_url, str(s.data_dir))


def idle_text() -> str:
    """How long a room lives untouched, in words: ``"12 h"``, ``"30 min"``."""
    hours = store().limits.idle_seconds / 3600
    return f"{hours:g} h" if hours >= 1 else f"{hours * 60:.0f} min"


@_tolerates_outage
def main() -> None:
    st.set_page_config(page_title="Classroom", layout="wide")
    st.title("Classroom")
    credentials = _credentials()
    if credentials is None:
        _start()
        return
    code, token = credentials
    try:
        store().check_token(code, token)
        code = store().room(code).code
    except (PermissionError, UnknownRoom):
        st.error(REFUSAL)
        return
    _handout(code, token)
    _controls(code, token)
    _live(code, token)
    _polls(code, token)


def _credentials() -> tuple[str, str] | None:
    """(code, token) from this session or the link; ("", "") when the link names a room without a token."""
    if "room" in st.query_params:
        return st.query_params.get("room", ""), st.query_params.get("token", "")
    return st.session_state.get(ROOM_KEY)


def _start() -> None:
    st.write(
        "Start a class to get a join code for your students. Each student's Playground then shows "
        "up here as a live tile: their samples, step and loss. You can push settings to everyone "
        "and run polls."
    )
    if st.button("Start a class", type="primary", icon=":material/school:"):
        try:
            st.session_state[ROOM_KEY] = store().create_room()
        except RoomFull as e:
            st.error(plain(e))
            return
        st.rerun()


def _handout(code: str, token: str) -> None:
    """Join code, join link and QR for the projector; the private teacher link folded away."""
    base = links.base_url(st.context.url)
    join = links.join_link(base, code)
    qr, words, private = st.columns([1, 3, 3], vertical_alignment="center")
    qr.image(links.qr_png(join), width=150)
    with words:
        st.markdown(f"## Join code: `{code}`")
        st.code(join, language=None)
        st.code(code, language=None)
    with private:
        st.caption(
            "Students scan the QR code or open the link; the Playground then asks for a name (optional)."
        )
        with st.expander("Teacher link: private, keep it off the projector", icon=":material/key:"):
            st.caption(
                f"Opens this dashboard from any browser, as long as the room lives ({idle_text()} idle)."
            )
            st.code(links.teacher_link(base, code, token), language=None)


def _controls(code: str, token: str) -> None:
    """Sidebar: push settings, start/pause training for the room, export the results."""
    with st.sidebar:
        st.subheader("Push to everyone")
        with st.form("fme_class_push", border=False):
            choices = {
                name: st.selectbox(push.LABELS[name], (push.KEEP, *options), key=f"fme_class_push_{name}")
                for name, options in push.CHOICES.items()
            }
            steps = st.number_input(
                "Solver steps (0 keeps them)", 0, push.MAX_STEPS, 0, key="fme_class_push_steps"
            )
            sent = st.form_submit_button("Push settings", icon=":material/send:")
        if sent:
            _push(code, token, choices, int(steps))
        training = store().room(code).training
        st.caption("Training for the whole room: " + ("running" if training else "paused"))
        start, pause = st.columns(2)
        if start.button("Start all", icon=":material/play_arrow:", disabled=training):
            store().set_training(code, token, True)
            st.rerun()
        if pause.button("Pause all", icon=":material/pause:", disabled=not training):
            store().set_training(code, token, False)
            st.rerun()
        st.subheader("Export")
        st.download_button(
            "Download results (CSV)",
            store().export_csv(code, token),
            file_name=f"class-{code}.csv",
            mime="text/csv",
            icon=":material/download:",
        )


def _push(code: str, token: str, choices: dict[str, str], steps: int) -> None:
    try:
        wanted = push.settings_from(choices, steps)
    except ValueError as e:
        st.error(plain(e))
        return
    if wanted == PushedSettings():
        st.info("Nothing to push: every setting is on (keep).")
        return
    sent = store().push_settings(code, token, wanted)
    st.success(plain(f"Pushed (version {sent.version}): {push.describe(sent)}."))


@st.fragment(run_every=2)
@_tolerates_outage
def _live(code: str, token: str) -> None:
    """The grid of tiles, redrawn every 2 s; a tile's button shows that run large."""
    seats = store().students(code, token)
    head, order = st.columns([2, 3], vertical_alignment="bottom")
    head.subheader(count_text(len(seats)))
    by = order.segmented_control("Sort by", SORTS, default=SORTS[0], key="fme_class_sort") or SORTS[0]
    shown = tiles(seats, time.time(), by)
    focus = next((t for t in shown if t.student_id == st.session_state.get(FOCUS_KEY)), None)
    if focus is not None:
        _large(focus)
        return
    if not shown:
        st.info("No students yet: they appear here as soon as they open the join link.")
    for row in range(0, len(shown), COLUMNS):
        for column, t in zip(st.columns(COLUMNS), shown[row : row + COLUMNS], strict=False):
            with column, st.container(border=True, key=f"fme_class_tile_{t.student_id}"):
                _tile(t)


def _name_and_chips(t: Tile, large: bool = False) -> None:
    st.markdown(f"## {plain(t.name)}" if large else f"**{plain(t.name)}**")
    chips = chip_texts(t)
    if chips:
        st.markdown(" ".join(f":violet-badge[{plain(c)}]" for c in chips))


def _numbers(t: Tile) -> None:
    """Loss against its floor as a bar (full at the floor), then step, quality and last seen."""
    st.progress(floor_ratio(t), text=plain(loss_text(t)))
    st.caption(plain(status_line(t)))


def _tile(t: Tile) -> None:
    _name_and_chips(t)
    st.plotly_chart(figures.tile_figure(t), config=CHART, key=f"fme_class_fig_{t.student_id}")
    _numbers(t)
    st.button(
        "Show large",
        key=f"fme_class_big_{t.student_id}",
        icon=":material/open_in_full:",
        on_click=st.session_state.__setitem__,
        args=(FOCUS_KEY, t.student_id),
    )


def _large(t: Tile) -> None:
    """One student's run, as big as the page, for projecting."""
    st.button(
        "Back to the grid",
        icon=":material/grid_view:",
        on_click=st.session_state.__setitem__,
        args=(FOCUS_KEY, None),
    )
    _name_and_chips(t, large=True)
    st.plotly_chart(figures.tile_figure(t, height=560), config=CHART, key="fme_class_fig_large")
    _numbers(t)


@st.fragment(run_every=2)
def _polls(code: str, token: str) -> None:
    """Answer counts per question as bars, and a button that reveals the question to everyone."""
    with contextlib.suppress(StoreUnavailable):  # the grid above says so (OUTAGE); the next tick tries again
        _poll_cards(code, token)


def _poll_cards(code: str, token: str) -> None:
    asked = questions(store().students(code, token))
    if not asked:
        return
    st.subheader("Polls")
    for column, question in zip(st.columns(min(len(asked), 3)) * len(asked), asked, strict=False):
        poll = store().poll_counts(code, token, question)
        with column, st.container(border=True):
            n = sum(poll.counts.values())
            st.markdown(f"**{plain(question)}** · {n} answer{'' if n == 1 else 's'}")
            st.plotly_chart(figures.poll_figure(poll.counts), config=CHART, key=f"fme_class_poll_{question}")
            if poll.revealed:
                st.caption("Revealed to everyone.")
            elif st.button(
                "Reveal to everyone", key=f"fme_class_reveal_{question}", icon=":material/visibility:"
            ):
                store().reveal(code, token, question)
                st.rerun(scope="fragment")
