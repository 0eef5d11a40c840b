"""The Playground page: composed from state, controls, compute, figures, canvas, training, export.

Order of work in one run (what the browser sees first comes first):
1. the view state: from the URL on a new link, else from the session; widgets seeded from it;
2. the controls (sidebar, toolbar) -> a new ``ViewState``;
3. the main animated figure (cached numbers, a deterministic figure: an unchanged figure is not
   re-sent and keeps its animation position);
4. the data panel, the live training fragment, share and export; the schedule sketch last.

Inputs that change the data (preset, drawing, upload, paste) and the training buttons act in
widget callbacks, which run before the script: the figure of the same run already shows them.
"""

from __future__ import annotations

import base64
import math
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import streamlit as st
import torch

import fmcore
from explorer import compat, figures, training
from explorer.core import fields, flows, quality
from explorer.core.data import Dataset
from explorer.core.state import CUSTOM, URL_MAX_POINTS, ViewState, as_shared
from explorer.core.text import plain, shorten
from explorer.figures import export, theme
from explorer.settings import configure_torch
from fmcore import datasets
from fmcore.solvers import integrate, nfe_for

from . import cache, canvas, controls

__all__ = ["main"]

STATE_KEY = "fme_view"
QUERY_KEY = "fme_last_query"
MODEL_KEY = "fme_model"
DATA_ERROR_KEY = "fme_data_error"
MODEL_ERROR_KEY = "fme_model_error"
LAST_FIGURE_KEY = "fme_last_figure"
MAX_UPLOAD_MB = 2
"""Largest CSV or model upload (``server.maxUploadSize`` in .streamlit/config.toml says the same):
20,000 points of CSV are under 1 MB, and a model the Playground trains is tens of kB."""
SOLVER_FAILURES = (RuntimeError, FloatingPointError, ZeroDivisionError, OverflowError, ValueError)
"""What integrating a field can raise (an adaptive step that underflows, a model that overflows)."""
PICK_KEY = "fme_pick"
LIVE_FIGURES_KEY = "fme_live_figures"
LIVE_KEY = "fme_live"  # the live fragment's own container
CHART_KEY = "fme_flow_chart"
DATA_TABS = (":material/apps: Presets", ":material/draw: Draw", ":material/upload: Upload")
LIVE_EVERY_S = training.REDRAW_INTERVALS_S[0]
TICK_BUDGET_S = 0.2
SNAPSHOT_PARTICLES = 600
SNAPSHOT_T = 0.5

_W = controls._key  # widget keys


# -- state ---------------------------------------------------------------------------------------


def _current_query() -> dict[str, str]:
    return {k: st.query_params.get(k) for k in st.query_params.keys()}  # noqa: SIM118


def _load_state() -> tuple[ViewState, list[str], bool]:
    """The view to start this run from, notices about the link, and whether it came from the URL.

    The URL is read when a session starts (a link was opened) and when the browser's back or
    forward button changed it. Otherwise the session's own view wins: a rerun request carries the
    URL the page had when it was sent, which on a busy server can predate the last change, and
    taking it for a new link would put the controls back (found with 30 browsers at once).
    """
    query = _current_query()
    saved = st.session_state.get(STATE_KEY)
    if saved is not None and (query == st.session_state.get(QUERY_KEY) or not compat.history_navigation()):
        return saved, [], False
    state, notices = ViewState.from_query(query)
    return state, notices, True


def _seed(state: ViewState, everything: bool) -> None:
    """Give the widgets the state's values: all of them after a link, else only missing ones."""
    if everything:
        controls.seed_widgets(state)
        st.session_state[_W("data")] = state.data
        st.session_state[_W("follow_on")] = state.follow is not None
        if state.follow is not None:
            st.session_state[_W("fx")], st.session_state[_W("fy")] = map(float, state.follow)
        if state.data == CUSTOM and state.points is not None:
            canvas.Drawing(st.session_state).replace(state.points)
        return
    missing = _W("schedule") not in st.session_state
    if missing:  # e.g. back from another page: its widgets were cleaned up, the view was not
        controls.seed_widgets(state)
    st.session_state.setdefault(_W("data"), state.data)
    st.session_state.setdefault(_W("follow_on"), state.follow is not None)
    fx, fy = state.follow or (0.8, -1.6)
    st.session_state.setdefault(_W("fx"), float(fx))
    st.session_state.setdefault(_W("fy"), float(fy))


def _write_url(state: ViewState) -> None:
    query = state.to_query()
    if query != _current_query():
        st.query_params.from_dict(query)
    st.session_state[QUERY_KEY] = query
    st.session_state[STATE_KEY] = state


# -- data ----------------------------------------------------------------------------------------


def _dataset(state: ViewState) -> tuple[Dataset, ViewState]:
    """The data of the view; user points that cannot describe a distribution fall back to moons."""
    if state.data == CUSTOM:
        points = canvas.Drawing(st.session_state).points()
        if points is not None:
            points = as_shared(points)
            try:
                dataset = cache.load_dataset(CUSTOM, 0, points, _points_key(points))
                return dataset, replace(state, points=points)
            except ValueError as error:
                st.warning(
                    plain(f"Your points can't be used yet: {error} Showing the moons preset meanwhile.")
                )
        state = replace(state, data="moons", points=None)
    return cache.load_dataset(state.data, state.seed), replace(state, points=None)


def _points_key(points: np.ndarray) -> str:
    return ViewState(data=CUSTOM, points=points).points_key


def _use_points(points: np.ndarray | None) -> None:
    """Callback side: make the user's points the data (or go back to the last preset)."""
    if points is None:
        st.session_state[_W("data")] = st.session_state.get("fme_last_preset", "moons")
    else:
        st.session_state[_W("data")] = CUSTOM


def _accept_points(raw: np.ndarray, source: str) -> None:
    """Validate user points (from a file or pasted text) and make them the data, or keep everything."""
    if len(raw) > datasets.MAX_POINTS:
        st.session_state[DATA_ERROR_KEY] = (
            f"{source}: Too many points: {len(raw):,} given, the limit is {datasets.MAX_POINTS:,}. "
            "Keep a subset of the rows. Nothing was changed."
        )
        return
    try:
        normalized = datasets.from_points(raw)
    except ValueError as error:
        st.session_state[DATA_ERROR_KEY] = f"{source}: {error} Nothing was changed."
        return
    canvas.Drawing(st.session_state).replace(normalized.data.numpy())
    _use_points(normalized.data.numpy())
    st.session_state.pop(DATA_ERROR_KEY, None)


def _too_large(upload) -> str | None:
    """A sentence when an upload is over ``MAX_UPLOAD_MB`` (refused before it is read), else None."""
    if upload.size <= MAX_UPLOAD_MB * 10**6:  # Streamlit's uploader counts MB of 10^6 bytes
        return None
    return (
        f"{shorten(upload.name)} is {upload.size / 10**6:.1f} MB; uploads are at most {MAX_UPLOAD_MB} MB. "
        "Nothing was changed."
    )


def _csv_text(data: bytes) -> str | None:
    """The text of a CSV in UTF-8, UTF-16 (with its byte-order mark) or Latin-1; None for binary data."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")  # every byte is a Latin-1 character: spreadsheets' older exports


def _on_upload() -> None:
    upload = st.session_state.get(_W("upload"))
    if upload is None:
        return
    name = shorten(upload.name)
    refusal = _too_large(upload)
    if refusal:
        st.session_state[DATA_ERROR_KEY] = refusal
        return
    text = _csv_text(upload.getvalue())
    if text is None:
        st.session_state[DATA_ERROR_KEY] = (
            f"{name}: this is not a text file. Upload a CSV of x,y rows (UTF-8, UTF-16 or Latin-1 text)."
        )
        return
    try:
        points = datasets.parse_csv(text)
    except ValueError as error:
        st.session_state[DATA_ERROR_KEY] = f"{name}: {error} Nothing was changed."
        return
    _accept_points(points, name)


def _on_paste() -> None:
    text = st.session_state.get(_W("paste"), "")
    try:
        points = datasets.parse_csv(text)
    except ValueError as error:
        st.session_state[DATA_ERROR_KEY] = f"Pasted points: {error} Nothing was changed."
        return
    _accept_points(points, "Pasted points")


def _on_undo() -> None:
    pad = canvas.Drawing(st.session_state)
    pad.undo()
    st.session_state.pop(canvas.NOTICE_KEY, None)
    _use_points(pad.points())


def _on_clear() -> None:
    pad = canvas.Drawing(st.session_state)
    pad.clear()
    st.session_state.pop(canvas.NOTICE_KEY, None)
    _use_points(None)


def _on_preset() -> None:
    choice = st.session_state.get(_W("data"))
    if choice is None:  # pills can be unselected: keep the data
        st.session_state[_W("data")] = st.session_state.get("fme_last_choice", "moons")
    elif choice != CUSTOM:
        st.session_state["fme_last_preset"] = choice


def _thumbnail_uri(points: np.ndarray, size: int = 96) -> str:
    image = export.scatter_image(points, size, box=3.2)
    return "data:image/png;base64," + base64.b64encode(export.png_bytes(image)).decode("ascii")


@st.cache_data(max_entries=8, show_spinner=False)
def _preset_thumbnails(seed: int) -> tuple[str, ...]:
    return tuple(_thumbnail_uri(datasets.sample(name, 700, seed).numpy()) for name in datasets.NAMES)


def _gallery_css(seed: int, custom: np.ndarray | None) -> str:
    """Turns the preset pills into a grid of clickable thumbnails (each pill gets its picture)."""
    uris = list(_preset_thumbnails(seed))
    if custom is not None:
        uris.append(_thumbnail_uri(custom))
    scope = ".st-key-fme_gallery div[role='radiogroup']"
    rules = [
        f"{scope} {{ display: grid; grid-template-columns: repeat(5, minmax(0, 1fr)); gap: 6px; }}",
        f"{scope} button {{ height: 74px; min-width: 0; padding: 0 2px 3px 2px; border-radius: 10px;"
        f" align-items: flex-end; justify-content: center; background-size: 64px 64px;"
        f" background-repeat: no-repeat; background-position: center 2px; background-color: {theme.BACKGROUND};"
        f" border: 1px solid #232b42; }}",
        f"{scope} button p {{ font-size: 0.68rem; line-height: 1; color: {theme.MUTED}; white-space: nowrap;"
        " overflow: hidden; text-overflow: ellipsis; }",
        f"{scope} button[aria-checked='true'] {{ border: 2px solid {theme.DATA}; }}",
        f"{scope} button[aria-checked='true'] p {{ color: {theme.TEXT}; }}",
    ]
    rules += [
        f"{scope} button:nth-of-type({i + 1}) {{ background-image: url('{uri}'); }}"
        for i, uri in enumerate(uris)
    ]
    return "<style>" + "\n".join(rules) + "</style>"


def data_panel(state: ViewState) -> None:
    """Presets (gallery + picker), the drawing pad, and CSV upload / paste."""
    error = st.session_state.pop(DATA_ERROR_KEY, None)
    if error:
        st.error(plain(error), icon=":material/error:")
    pad = canvas.Drawing(st.session_state)
    # on_change="rerun" makes the tabs lazy: each tab's widgets (the gallery, the drawing pad with
    # fabric.js, the uploader) are built and sent only while it is open: off the first paint.
    presets, draw, upload = st.tabs(
        DATA_TABS,
        key=_W("data_tab"),
        on_change="rerun",
    )
    if presets.open:
        _presets_tab(presets, state, pad)
    if draw.open:
        _draw_tab(draw, pad)
    if upload.open:
        _upload_tab(upload)


def _presets_tab(tab, state: ViewState, pad: canvas.Drawing) -> None:
    with tab, st.container(key="fme_gallery"):
        custom = pad.points()
        st.html(_gallery_css(state.seed, custom))  # style only: applied to the page, no markdown pass
        options = (*datasets.NAMES, CUSTOM) if custom is not None else datasets.NAMES
        st.session_state["fme_last_choice"] = state.data
        st.pills(
            "Data set",
            options,
            format_func=lambda n: "your points" if n == CUSTOM else n,
            key=_W("data"),
            on_change=_on_preset,
            label_visibility="collapsed",
        )
        st.caption(datasets.DESCRIPTIONS.get(state.data, "Your own points (drawn or uploaded)."))


def _draw_tab(tab, pad: canvas.Drawing) -> None:
    with tab:
        spread = st.slider(
            "Brush spread",
            1,
            24,
            6,
            key=_W("spread"),
            help="How far points scatter around a stroke (pixels).",
        )
        canvas.drawing(spread, _use_points)
        notice = st.session_state.get(canvas.NOTICE_KEY)
        if notice:
            st.warning(plain(notice), icon=":material/info:")
        count = pad.count()
        left, middle, right = st.columns([1.3, 1, 1], vertical_alignment="center")
        left.markdown(
            f"<div class='fm-stat' data-testid='fm-point-count'><b>{count:,}</b> <span class='label'>points drawn</span></div>",
            unsafe_allow_html=True,
        )
        middle.button(
            "Undo",
            key=_W("undo"),
            on_click=_on_undo,
            icon=":material/undo:",
            disabled=not pad.strokes,
            width="stretch",
        )
        right.button(
            "Clear",
            key=_W("clear"),
            on_click=_on_clear,
            icon=":material/delete:",
            disabled=not pad.strokes,
            width="stretch",
        )
        st.caption("Each stroke adds points; they are centred and scaled to unit spread, like the noise.")


def _upload_tab(tab) -> None:
    with tab:
        st.file_uploader(
            "CSV of x,y points (header optional)", type=["csv", "txt"], key=_W("upload"), on_change=_on_upload
        )
        st.text_area("…or paste x,y rows", key=_W("paste"), height=90, placeholder="0.5, 1.2\n-0.3, 0.8\n…")
        st.button(
            "Use pasted points", key=_W("use_paste"), on_click=_on_paste, icon=":material/content_paste:"
        )
        st.caption(
            f"Up to {datasets.MAX_POINTS:,} points. Errors leave your current data and model untouched."
        )


# -- training ------------------------------------------------------------------------------------


@dataclass
class Model:
    """What the page knows about the session's network: its version, and the settings it was trained with.

    ``token`` names the network in caches that every session shares (``st.cache_data``): a random
    uuid4 made with each new network, never an address, which a later session's runner can reuse.
    """

    generation: int = 0
    spec: tuple | None = None
    token: str = ""

    @staticmethod
    def get() -> Model:
        return st.session_state.setdefault(MODEL_KEY, Model())

    def renew(self, spec: tuple | None) -> None:
        """A new network: the next generation, with a fresh ``token``."""
        self.generation += 1
        self.spec = spec
        self.token = uuid.uuid4().hex


def _spec(state: ViewState, dataset: Dataset) -> tuple:
    return (dataset.key, state.coupling, state.target, state.seed, state.lr)


def _configure(runner, dataset: Dataset, state: ViewState) -> bool:
    model = Model.get()
    try:
        runner.configure(
            torch.from_numpy(dataset.train),
            schedule=state.schedule,
            target=state.target,
            coupling=state.coupling,
            seed=state.seed,
            lr=state.lr,
        )
    except ValueError as error:
        st.session_state[MODEL_ERROR_KEY] = f"Could not start training: {error}"
        return False
    model.renew(_spec(state, dataset))
    return True


def _on_train(dataset: Dataset, state: ViewState) -> None:
    runner = training.session_runner(st.session_state)
    model = Model.get()
    if (not runner.configured or model.spec != _spec(state, dataset)) and not _configure(
        runner, dataset, state
    ):
        return
    runner.start()


def _on_pause() -> None:
    training.session_runner(st.session_state).pause()


def _on_reset(dataset: Dataset, state: ViewState) -> None:
    _configure(training.session_runner(st.session_state), dataset, state)


def _on_load_model() -> None:
    """Load a saved model (validated by fmcore) in place of the current one; errors keep everything."""
    upload = st.session_state.get(_W("model_upload"))
    if upload is None:
        return
    name = shorten(upload.name)
    refusal = _too_large(upload)
    if refusal:
        st.session_state[MODEL_ERROR_KEY] = refusal.replace(
            "Nothing was changed.", "Your current model is kept."
        )
        return
    runner = training.session_runner(st.session_state)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        path.write_bytes(upload.getvalue())
        try:
            # Validated by fmcore.io (anything but an fmcore model of 2-D data is refused); messages
            # name the upload, not the server's temporary path.
            runner.load(path, name=name)
        except (ValueError, OSError) as error:
            st.session_state[MODEL_ERROR_KEY] = f"{name} was not loaded: {error} Your current model is kept."
            return
    Model.get().renew(None)
    st.session_state[_W("field")] = "learned"
    st.session_state.pop(MODEL_ERROR_KEY, None)
    st.toast(plain(f"Loaded {name}: the figure now shows its learned field."), icon=":material/check_circle:")


def _model_source(runner, state: ViewState) -> flows.Source | None:
    velocity = runner.velocity
    if velocity is None:
        return None
    model = Model.get()
    return flows.learned_source(
        velocity, (model.token, model.generation, runner.step), runner.schedule or "linear", state.schedule
    )


def _snapshot(runner, dataset: Dataset, state: ViewState):
    """The network's current samples and its field at t = 0.5 (a few ms: cheap solver, few particles)."""
    velocity = runner.velocity
    z0 = torch.from_numpy(cache.noise_particles(SNAPSHOT_PARTICLES, state.seed))
    try:
        with torch.no_grad():
            trajectory = integrate(velocity, z0, "midpoint", 8, schedule=runner.schedule or "linear")
            field = velocity(torch.from_numpy(fields.arrow_grid()), torch.tensor(SNAPSHOT_T)).numpy()
    except fmcore.SolverError:  # a network whose outputs overflow: the main figure says so
        return None
    return figures.snapshot_figure(trajectory.zs[-1].numpy(), dataset.shown, field, height=250)


def training_panel(runner, dataset: Dataset, state: ViewState) -> None:
    """Train / pause / reset, then the live part: stats, loss curve and the network's samples."""
    # Every element below exists in every run (empty slots when unused), and the live fragment has
    # a container of its own: a fragment run, however many elements it draws, then never shifts,
    # overwrites or clears the Data panel below it in the same column.
    error = st.session_state.pop(MODEL_ERROR_KEY, None)
    error_slot = st.empty()
    if error:
        error_slot.error(plain(error), icon=":material/error:")
    model = Model.get()
    stale = runner.configured and model.spec is not None and model.spec != _spec(state, dataset)
    if stale and runner.running:  # new data or settings while training: a fresh network, still running
        if _configure(runner, dataset, state):
            runner.start()
            st.toast(
                "Data or training settings changed: training a fresh network.", icon=":material/restart_alt:"
            )
        stale = False
    go_col, pause_col, reset_col = st.columns(3)
    go_col.button(
        "Train" if runner.step == 0 or stale else "Resume",
        key=_W("train"),
        on_click=_on_train,
        args=(dataset, state),
        icon=":material/play_arrow:",
        type="primary",
        disabled=runner.running,
        width="stretch",
    )
    pause_col.button(
        "Pause",
        key=_W("pause"),
        on_click=_on_pause,
        icon=":material/pause:",
        disabled=not runner.running,
        width="stretch",
    )
    reset_col.button(
        "Reset",
        key=_W("reset"),
        on_click=_on_reset,
        args=(dataset, state),
        icon=":material/restart_alt:",
        disabled=not runner.configured,
        width="stretch",
    )
    stale_slot = st.empty()
    if stale:
        stale_slot.caption("The network was trained on other data or settings: **Train** starts a fresh one.")

    every = training.redraw_interval(training.active_sessions()) if runner.running else None

    @st.fragment(run_every=every)
    def live():
        was_running = runner.running
        if was_running:
            runner.tick(budget_s=TICK_BUDGET_S)
        loss, snapshot = _live_figures(runner, dataset, state)  # before drawing: no half-drawn redraw
        # One element per place, in every run: a chart written over an empty slot would vanish and
        # come back at every redraw, and one that moved up or down a place would be drawn anew.
        st.markdown(_stats_line(runner, every), unsafe_allow_html=True)
        if runner.message and runner.status != "ok":
            st.warning(plain(runner.message), icon=":material/warning:")
        elif runner.message:
            st.caption(plain(runner.message))
        else:
            st.empty()
        for figure, key in ((loss, "fme_loss"), (snapshot, "fme_snapshot")):
            if figure is not None:
                st.plotly_chart(figure, key=key, config=dict(displayModeBar=False))
            else:
                st.empty()
        if snapshot is not None:
            st.caption(
                f"The network now: its samples (violet, {SNAPSHOT_PARTICLES} particles, midpoint 8 steps) "
                f"and its field at t = {SNAPSHOT_T}. Trained on the {runner.schedule} path."
            )
        else:
            st.caption(
                "Press **Train**: the loss falls towards its floor (dashed) while the network's samples take shape."
            )
        if was_running and not runner.running:
            st.rerun()  # it stopped by itself (diverged or failed): every control back at once
        if runner.running and _retime(every, training.active_sessions()):
            st.rerun()  # the class grew or shrank: a new redraw period takes a full run to set

    with st.container(key=LIVE_KEY):
        live()


def _stats_line(runner, every: float | None) -> str:
    """step · steps/s · device · loss · state, and the redraw period when a busy server lengthened it."""
    stats = runner.stats
    speed = (
        f"{stats.steps_per_s:,.0f} steps/s" if stats is not None and stats.steps_per_s > 0 else "– steps/s"
    )
    state_word = "training" if runner.running else ("paused" if runner.step else "not started")
    parts = [
        f"<b>step {runner.step:,}</b>",
        speed,
        f"<span class='label'>device</span> <b>{runner.device}</b>",
    ]
    if stats is not None and np.isfinite(stats.loss):
        parts.append(f"loss <b>{stats.loss:.4f}</b>")
    parts.append(f"<span class='label'>{state_word}</span>")
    if every is not None and every > LIVE_EVERY_S:
        parts.append(f"<span class='label'>redrawn every {every:g} s: a busy server</span>")
    return f"<div class='fm-stat' data-testid='fm-train-stats'>{' · '.join(parts)}</div>"


def _retime(every: float | None, active: int) -> bool:
    """Whether the live part's redraw period is off enough to be worth a full run to change.

    Longer at once when the class grows; shorter only once it is well below the threshold (x1.5
    margin), so that sessions near a threshold do not flip back and forth.
    """
    if every is None:
        return False
    return (
        training.redraw_interval(active) > every or training.redraw_interval(math.ceil(active * 1.5)) < every
    )


def _live_figures(runner, dataset: Dataset, state: ViewState):
    """(loss figure or None, snapshot figure or None), rebuilt only when the network changed.

    A rerun of the live part with nothing new (no slice finished) then sends the same figures,
    which Streamlit does not re-send and the browser does not redraw.
    """
    steps, losses = runner.history
    floor = runner.loss_floor
    key = (Model.get().generation, runner.step, len(steps), floor, dataset.key, state.seed)
    cached = st.session_state.get(LIVE_FIGURES_KEY)
    if cached is not None and cached[0] == key:
        return cached[1]
    loss = figures.loss_figure(steps, losses, floor, height=170) if len(steps) else None
    snapshot = _snapshot(runner, dataset, state) if runner.velocity is not None else None
    st.session_state[LIVE_FIGURES_KEY] = (key, (loss, snapshot))
    return loss, snapshot


# -- the figure ----------------------------------------------------------------------------------


def _on_pick() -> None:
    """A click on a particle follows it: its start z_0 becomes the followed point."""
    event = st.session_state.get(CHART_KEY)
    selection = getattr(event, "selection", None) or (
        event.get("selection") if hasattr(event, "get") else None
    )
    points = (selection or {}).get("points") or []
    pick = st.session_state.get(PICK_KEY) or {}
    for point in points:
        curve, index = point.get("curve_number"), point.get("point_index")
        if curve in pick.get("curves", ()) and index is not None and index < len(pick["starts"]):
            x, y = pick["starts"][index]
            st.session_state[_W("follow_on")] = True
            st.session_state[_W("fx")], st.session_state[_W("fy")] = round(float(x), 3), round(float(y), 3)
            return


def _panel(
    source: flows.Source,
    exact: flows.Source,
    dataset: Dataset,
    state: ViewState,
    solver: str,
    steps: int,
    grid: str,
    label: str,
    kind: str,
    density: np.ndarray | None,
) -> tuple[figures.Panel, flows.Flow, float]:
    flow = cache.flow(source, state.n, state.seed, solver, steps, grid)
    field = cache.field_frames(source)
    if kind == "difference":
        field = field - cache.field_frames(exact)
    energy = cache.energy_distance(flow.samples, quality.reference_for(dataset, state.n))
    panel = figures.Panel(
        flow=flow,
        data=dataset.shown,
        title=figures.panel_title(flow, label, energy, two_lines=state.compare),
        field=field,
        field_kind=kind,
        density=density,
        warp=cache.warp_frames(source, solver, steps, grid) if state.warp else None,
        show_paths=state.paths,
        single=cache.single_path(source, state.follow, solver, steps, grid) if state.follow else None,
    )
    return panel, flow, energy


def main_figure(state: ViewState, dataset: Dataset, runner, height: int):
    """Compute and draw the animation.

    Returns:
        ``(measured, figure, kind, source)``: [(Flow, energy distance)] per panel, the figure (for
        export), the field actually shown and its source.
    """
    exact = flows.exact_source(dataset, state.schedule)
    learned = _model_source(runner, state)
    kind = state.field
    safe = replace(state, field="exact", solver="rk4", steps=20, grid="uniform", compare=False, density=False)

    def fallback():
        if state == safe:
            raise RuntimeError("the exact field's own figure failed")
        return main_figure(safe, dataset, runner, height)

    if kind != "exact" and learned is None:
        st.info(
            "No trained network yet: showing the **exact** field. Press **Train** on the right, "
            "then the learned field appears here.",
            icon=":material/info:",
        )
        kind = "exact"
    source = exact if kind == "exact" else learned
    model_density = state.density and state.model_density and kind != "exact"
    density = None
    if state.density:
        try:
            density = (
                cache.model_density_frames(source)
                if model_density
                else cache.density_frames(dataset, state.schedule)
            )
        except SOLVER_FAILURES as error:
            return _solver_failed("The density's log-likelihood solve", state, error, fallback)
    settings = [(state.solver, state.steps, state.grid, "A" if state.compare else "")]
    if state.compare:
        settings.append((state.solver_b, state.steps_b, state.grid_b, "B"))
    panels, measured = [], []
    for solver, steps, grid, label in settings:
        try:
            panel, flow, energy = _panel(
                source, exact, dataset, state, solver, steps, grid, label, kind, density
            )
        except SOLVER_FAILURES as error:
            return _solver_failed(f"{solver} with {steps} steps", state, error, fallback)
        panels.append(panel)
        measured.append((flow, energy))
        if not np.isfinite(flow.samples).all():
            st.warning(
                f"{solver} with {steps} steps on the {state.schedule} path produced non-finite values "
                "(a step divided by zero or blew up); those particles are not drawn. Try another solver, "
                "more steps or another time grid.",
                icon=":material/warning:",
            )
    figure_key = (
        kind,
        source.key,
        exact.key if kind == "difference" else None,
        dataset.key,
        state.n,
        state.seed,
        tuple(settings),
        state.density,
        model_density,
        state.warp,
        state.paths,
        state.follow,
        height,
    )
    figure = _cached_figure(figure_key, panels)
    starts = cache.noise_particles(state.n, state.seed)
    st.session_state[PICK_KEY] = {"curves": _particle_curves(figure), "starts": starts}
    _show_figure(figure)
    st.session_state[LAST_FIGURE_KEY] = (measured, figure, kind, source)
    return measured, figure, kind, source


def _show_figure(figure) -> None:
    st.plotly_chart(
        figure,
        key=CHART_KEY,
        on_select=_on_pick,
        selection_mode="points",
        config=dict(displayModeBar=False, scrollZoom=False),  # drag pans, double-click resets
    )


def _solver_failed(what: str, state: ViewState, error: Exception, fallback: Callable[[], tuple]):
    """A solve that raised (an overflowing model, an adaptive step that underflowed): say so in
    plain words and keep showing the last figure (the exact field's, when there is none yet)."""
    st.warning(
        plain(
            f"{what} could not integrate this field on the {state.schedule} path ({error}). "
            "The figure shows the last one that worked: try another solver, other steps, or another model."
        ),
        icon=":material/warning:",
    )
    last = st.session_state.get(LAST_FIGURE_KEY)
    if last is None:
        return fallback()
    _show_figure(last[1])
    return last


@st.cache_resource(max_entries=16, show_spinner=False)
def _cached_figure(key: tuple, _panels: list):
    """Build each figure once: ``key`` names everything the panels were computed from.

    Shared across sessions and never mutated after it is built.
    """
    return figures.flow_figure(_panels, height=key[-1])


def _particle_curves(figure) -> tuple[int, ...]:
    return tuple(i for i, trace in enumerate(figure.data) if trace.name == "particles z_t")


# -- the page ------------------------------------------------------------------------------------


def header() -> None:
    st.markdown(
        "<div class='fm-header'><h1 class='fm-title'>Flow Matching <span class='noise'>Explorer</span></h1>"
        "<div class='fm-chips'><span class='fm-chip noise'><b>t = 0</b> noise z₀</span>"
        "<span class='fm-chip data'><b>t = 1</b> data z₁</span>"
        "<span class='fm-chip'>sampling integrates <b>forward</b> in t</span>"
        "<span class='fm-chip'><b>NFE</b> = network evaluations</span></div></div>",
        unsafe_allow_html=True,
    )


def caption(state: ViewState, kind: str, measured, dataset: Dataset) -> None:
    arrows = {
        "exact": (
            "the <b>exact</b> marginal velocity v(z, t) of the data (closed form over "
            f"{len(dataset.shown)} points, each blurred by {flows.EXACT_BANDWIDTH:g} so it stays finite at t = 1)"
        ),
        "learned": "the velocity the <b>network</b> learned",
        "difference": "the network's <b>error</b>, learned − exact (particles follow the network)",
    }[kind]
    floor = cache.noise_floor(dataset, state.n)
    lines = [
        f"<b>{state.n:,} particles</b> start as noise z₀ ~ N(0, I) at t = 0 (blue) and ride {arrows} "
        "until they reach the data (amber points) at t = 1. Press <b>▶</b> or drag the time slider.",
    ]
    if state.paths:
        lines.append("Faint lines trace 120 particles; their dots are the solver's steps.")
    if state.density and state.model_density and kind != "exact":
        lines.append(
            "Shading: the <b>network's</b> density pₜ, by the change of variables from N(0, I) "
            "(log-likelihood, one backward solve per frame), normalised per frame."
        )
    elif state.density:
        lines.append("Shading: the exact density pₜ, normalised per frame.")
    if state.warp:
        lines.append("Grid lines: a square grid of noise, bent by the flow.")
    if state.follow:
        lines.append("White: one particle — the solver's steps (solid) against its ODE path (dotted).")
    else:
        lines.append("Click a particle to follow it.")
    metric = " · ".join(
        f"<b>{flow.solver}</b> {flows.steps_label(flow.solver, flow.steps, flow.nfe)} · "
        + (f"energy distance <b>{max(energy, 0.0):.4f}</b> · " if energy is not None else "")
        + f"straightness {flow.straightness:.2f}"
        for flow, energy in measured
    )
    spread = (
        f"(two samples of the data differ by ≈ {floor:.4f})"
        if floor is not None
        else "(too few data points to measure an energy distance)"
    )
    st.markdown(
        f"<div class='fm-caption' data-testid='fm-caption'>{' '.join(lines)}<br>"
        f"<span data-testid='fm-metrics'>{metric}</span> "
        f"<span class='label'>{spread}</span></div>",
        unsafe_allow_html=True,
    )


def follow_controls() -> None:
    """The followed particle's start point (read before the figure, by ``follow_point_from_widgets``).

    Lazy, like the other folded parts: its widgets exist only while it is open, and the view state
    (which seeds them) remembers the point in between.
    """
    panel = st.expander(
        "Follow one particle (the ODE view)",
        icon=":material/timeline:",
        key=_W("follow_panel"),
        on_change="rerun",
    )
    if not panel.open:
        return
    with panel:
        st.toggle("Show one particle's path", key=_W("follow_on"))
        left, right = st.columns(2)
        left.number_input("start x at t=0", -4.0, 4.0, step=0.1, key=_W("fx"), format="%.2f")
        right.number_input("start y at t=0", -4.0, 4.0, step=0.1, key=_W("fy"), format="%.2f")
        st.caption("Or click any particle in the figure.")


def export_panel(
    state: ViewState, measured, figure, dataset: Dataset, source: flows.Source, runner
) -> None:
    flow = measured[0][0]
    # on_change="rerun" makes it lazy: nothing inside is built or sent until it is opened, which keeps
    # its widgets (and the code highlighter) off the first paint.
    panel = st.expander("Share & export", icon=":material/ios_share:", key=_W("export"), on_change="rerun")
    if not panel.open:
        return
    with panel:
        query = "&".join(f"{k}={v}" for k, v in state.to_query().items())
        st.markdown(
            "**Share**: the address bar holds this exact view; copy it. Add `classroom=1` for a projector."
        )
        st.code("?" + query if query else "(the default view)", language=None)
        if state.points is not None and len(state.points) > URL_MAX_POINTS:
            st.caption(
                f"The link carries a {URL_MAX_POINTS:,}-point subsample of your {len(state.points):,} points."
            )
        field = cache.field_frames(source)
        title = f"{flow.solver} · {flows.steps_label(flow.solver, flow.steps, flow.nfe)} · {state.schedule}"
        frame_t = st.slider("Frame for the PNG (t)", 0.0, 1.0, 1.0, 0.02, key=_W("png_t"))
        k = round(frame_t * (len(flow.times) - 1))
        cols = st.columns(4)
        cols[0].download_button(
            "GIF",
            lambda: export.gif_bytes(flow.particles, flow.times, dataset.shown, field, title),
            file_name="flow.gif",
            mime="image/gif",
            icon=":material/gif_box:",
            on_click="ignore",
            width="stretch",
        )
        cols[1].download_button(
            "HTML",
            lambda: export.html_bytes(figure),
            file_name="flow.html",
            mime="text/html",
            icon=":material/html:",
            on_click="ignore",
            width="stretch",
        )
        cols[2].download_button(
            "PNG",
            lambda: export.png_bytes(
                export.render_frame(
                    flow.particles[k], float(flow.times[k]), dataset.shown, field[k], title, 800
                )
            ),
            file_name=f"flow_t{flow.times[k]:.2f}.png",
            mime="image/png",
            icon=":material/image:",
            on_click="ignore",
            width="stretch",
        )
        cols[3].download_button(
            "Samples CSV",
            export.csv_bytes(flow.samples),
            file_name="samples.csv",
            mime="text/csv",
            icon=":material/table:",
            on_click="ignore",
            width="stretch",
        )
        st.caption(
            "GIF and PNG render offline with Pillow; the HTML file embeds plotly.js and plays without a network."
        )
        st.markdown("**Model**")
        left, right = st.columns([1, 2], vertical_alignment="bottom")
        left.download_button(
            "Save model",
            lambda: _model_bytes(runner),
            file_name="flow_model.safetensors",
            mime="application/octet-stream",
            icon=":material/download:",
            on_click="ignore",
            disabled=runner.velocity is None,
            width="stretch",
        )
        right.file_uploader(
            "Load a saved model (.safetensors)",
            type=["safetensors"],
            key=_W("model_upload"),
            on_change=_on_load_model,
        )


def _model_bytes(runner) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        runner.save(path)
        return path.read_bytes()


def schedule_sketch(slot, schedule: str) -> None:
    """alpha_t and sigma_t of the view's schedule, under its picker (an inline SVG: no chart to load)."""
    ts = torch.linspace(0.0, 1.0, 81, dtype=torch.float64)
    value = fmcore.get_schedule(schedule)(ts)
    slot.markdown(
        figures.schedule_svg(ts.numpy(), value.alpha.numpy(), value.sigma.numpy()), unsafe_allow_html=True
    )


def main() -> None:
    """The whole Playground page."""
    configure_torch()
    state, notices, from_url = _load_state()
    st.set_page_config(
        page_title="Flow Matching Explorer",
        page_icon=":material/waves:",
        layout="wide",
        initial_sidebar_state="collapsed" if state.classroom else "expanded",
    )
    st.html(theme.CSS + (theme.CLASSROOM_CSS if state.classroom else ""))
    _seed(state, from_url)
    for notice in notices[:3]:
        st.toast(plain(notice), icon=":material/link_off:")
    if notices:
        st.warning(
            plain("Some link parameters were ignored: " + " ".join(notices)), icon=":material/link_off:"
        )

    header()
    schedule_slot = nfe_slot = None
    if not state.classroom:
        with st.sidebar:
            path = controls.path_controls()
            schedule_slot = st.empty()
            sampler = controls.sampler_controls()
            nfe_slot = st.empty()
            particles = controls.particle_controls()
            compare = controls.compare_controls()
            train = controls.training_controls()
        nfe_slot.markdown(controls.nfe_caption(sampler.solver, sampler.steps), unsafe_allow_html=True)
        state = replace(
            state,
            **vars(path),
            **vars(sampler),
            **vars(particles),
            **vars(compare),
            **vars(train),
            data=st.session_state.get(_W("data"), state.data),
        )
    runner = training.session_runner(st.session_state)

    if state.classroom:  # the figure, large, and only the training buttons beside it
        figure_col, side_col = st.columns([0.68, 0.32], gap="medium")
    elif state.compare:  # two panels take the whole width
        figure_col, side_col = st.container(), None
    else:
        figure_col, side_col = st.columns([0.62, 0.38], gap="medium")
    with figure_col:
        if not state.classroom:
            layers = controls.layer_controls()
            state = replace(state, **vars(layers))
            state = replace(state, follow=follow_point_from_widgets())
        dataset, state = _dataset(state)
        height = 720 if state.classroom else (600 if state.compare else 630)
        measured, figure, kind, source = main_figure(state, dataset, runner, height)
        caption(state, kind, measured, dataset)
        if not state.classroom:
            follow_controls()
            export_panel(state, measured, figure, dataset, source, runner)
    train_col, data_col = (side_col, side_col) if side_col is not None else st.columns(2, gap="large")
    with train_col:
        st.markdown("##### :material/model_training: Train a network")
        training_panel(runner, dataset, state)
    if not state.classroom:
        with data_col:
            st.markdown("##### :material/scatter_plot: Data")
            data_panel(state)
    if schedule_slot is not None:
        schedule_sketch(schedule_slot, state.schedule)
        counted = measured[0][0].nfe
        if counted != nfe_for(state.solver, state.steps):  # adaptive: say what it actually took
            nfe_slot.markdown(
                controls.nfe_caption(state.solver, state.steps, counted), unsafe_allow_html=True
            )
    _write_url(state)


def follow_point_from_widgets() -> tuple[float, float] | None:
    """The followed start point from the expander's widgets (read before they render)."""
    if not st.session_state.get(_W("follow_on")):
        return None
    return round(float(st.session_state.get(_W("fx"), 0.0)), 3), round(
        float(st.session_state.get(_W("fy"), 0.0)), 3
    )
