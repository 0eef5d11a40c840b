"""Every workaround for a framework's behaviour, in one place: symptom, version, pinning test, exit.

The code workarounds are the functions below; the ones that are settings live in
``.streamlit/config.toml`` and are listed in ``WORKAROUNDS`` too, so that one table says what the
app does differently from a plain Streamlit app and when each difference can go.
``tests/app/test_compat.py`` checks that every entry's pinning test exists.

Versions: Streamlit 1.67.0 (``requirements.txt`` pins it), Python 3.11.
"""

from __future__ import annotations

import base64
import contextlib
import sys
import threading
import types
from collections.abc import MutableMapping
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import streamlit as st

__all__ = [
    "WORKAROUNDS",
    "Workaround",
    "first_view",
    "history_navigation",
    "leave_pages_directory_mode",
    "ready_figure",
    "rerun_when_drawn",
    "spawn_without_app_script",
    "widget_default",
]


@dataclass(frozen=True)
class Workaround:
    """One departure from the framework's plain use.

    Attributes:
        name: where it lives (a function here, or a config option).  symptom: what went wrong
        without it.  version: the version it was seen with.  test: the test that fails without it
        (``path::name``).  delete_when: the condition under which it can go.
    """

    name: str
    symptom: str
    version: str
    test: str
    delete_when: str


WORKAROUNDS: tuple[Workaround, ...] = (
    Workaround(
        "compat.leave_pages_directory_mode",
        "A fresh server's first visitor who goes straight to a lesson got Streamlit's legacy "
        "pages-directory navigation (file names) instead of the Playground and Lessons: the lessons "
        "live in pages/, and until some session has run streamlit_app.py (st.navigation) Streamlit "
        "serves that folder in the legacy mode.",
        "streamlit 1.67.0",
        "tests/browser/test_pages_browser.py::test_a_fresh_servers_first_visitor_can_go_straight_to_a_lesson",
        "Streamlit ignores pages/ once an app calls st.navigation (or offers a setting for it); "
        "renaming pages/ is not an option (the project layout asks for it).",
    ),
    Workaround(
        "pages/classroom.py",
        "A fresh server's first visitor who went straight to /classroom (a teacher link) got "
        "Streamlit's 'Page not found' box over the dashboard: in the legacy pages-directory mode "
        "(above) only pages/ files have URLs, and the box is sent before any app code runs. A stub "
        "pages/classroom.py gives the legacy mode that URL; it calls leave_pages_directory_mode, "
        "and the rerun serves the real Classroom page through st.navigation.",
        "streamlit 1.67.0",
        "tests/browser/test_classroom_room.py::test_a_class_of_five_joins_takes_a_push_and_answers_a_poll",
        "compat.leave_pages_directory_mode goes (the stub with it); streamlit_app.py lists only the "
        "numbered lesson files, so the stub never shows in the navigation.",
    ),
    Workaround(
        "compat.history_navigation",
        "A rerun request carries the URL the page had when it was sent, which on a busy server "
        "predates the last change: taking it for a newly opened link put the controls back. The URL "
        "is read only at a session's start and on back/forward, told apart by the run context's "
        "private is_history_navigation.",
        "streamlit 1.67.0",
        "tests/app/test_app.py::test_the_back_button_restores_the_view_its_url_names",
        "st.query_params tells a history navigation apart publicly, or a rerun stops carrying a stale URL.",
    ),
    Workaround(
        "compat.widget_default",
        "A page too slow to draw the sidebar drew its widgets from a later run and fell back to "
        "Streamlit's default, the minimum, sending back Steps 1, Particles 250, lr 1e-4 (30 browsers).",
        "streamlit 1.67.0",
        "tests/app/test_app.py::test_each_control_offers_its_session_value_as_its_default",
        "The frontend keeps a widget's session value when it first draws it from a later run.",
    ),
    Workaround(
        "compat.spawn_without_app_script",
        "Under streamlit run the app script is __main__, and multiprocessing's spawn re-runs a "
        "parent's __main__ in the child: the training engine's worker would run the whole app "
        "(seconds of start-up and hundreds of MB) before it trains a step.",
        "streamlit 1.67.0",
        "tests/explorer/test_engine.py::test_the_engine_does_not_rerun_the_servers_main_script",
        "Streamlit stops installing the app script as __main__, or multiprocessing offers a spawn "
        "that skips the parent's main module.",
    ),
    Workaround(
        "compat.ready_figure",
        "go.Figure(spec) validates every property of every frame, and every st.plotly_chart call "
        "(each rerun, the figure cached or not) converts each numpy array to binary through "
        "plotly's copy_to_readonly_numpy_array, which asks narwhals and pandas about its type first. "
        "For the Playground's 51-frame flow figure (~400 arrays) that was ~20 ms CPU to build and "
        "~20 ms to send, 3x that under load. Plotly's only switch is the private _validate=False; "
        "the arrays go in already as plotly.js typed-array specs, which plotly passes through.",
        "streamlit 1.67.0 with plotly 7.1.0",
        "tests/explorer/test_figures.py::test_a_ready_flow_figure_is_valid_and_sends_the_same_json",
        "plotly offers a public way to skip validation and converts arrays without the type checks "
        "(re-measure with bench/ui_latency.py --baseline).",
    ),
    Workaround(
        "compat.first_view",
        "A new visitor's first run sent the Playground's figure (a 1.7 MB spec: 51 frames) and the ~60 "
        "elements after it within milliseconds. Streamlit's frontend renders all the deltas that have "
        "arrived in one React pass, and the chart's code (plotly.js, a lazily loaded 4.7 MB chunk, ~1 s "
        "to evaluate on 2 cores) is requested only when that pass mounts the chart; then the theming "
        "rewrites the spec as a string (~40 replaceAll, ~170 ms for 1.7 MB). The figure was drawn at "
        "1.5-1.6x a one-chart page (bench/ui_latency.py --browser). The first run now sends the header, "
        "a figure of 11 frames and the toolbar's room (its widgets' code, ~0.5 s of main thread, came "
        "before the paint), and the browser asks for the rest once it has drawn it: painted at 1.14-1.24x "
        "in three paired runs (2026-12-03). Not on a room's link: a class opens it together on one "
        "server (one more run and figure each; the five-student browser test took 99 s, 61 s without).",
        "streamlit 1.67.0",
        "tests/app/test_compat.py::test_a_sessions_first_run_is_the_figure_then_the_whole_page",
        "Streamlit loads a lazy element's code before it renders the elements around it, or renders "
        "arriving deltas incrementally, and themes a spec without rewriting it as a string: "
        "re-measure bench/ui_latency.py --browser with FIRST_VIEW = False.",
    ),
    Workaround(
        "config runner.postScriptGC = false",
        "gc.collect() after every script run, fragment runs included, held the GIL 0.1 s each time: "
        "38 % of the server's samples with ten sessions training; control changes 6.3 s p50 (1.4 s without).",
        "streamlit 1.67.0",
        "tests/app/test_server_config.py::test_the_server_does_not_collect_garbage_after_every_script_run",
        "Streamlit's default becomes off, or the collection stops holding the GIL that long.",
    ),
    Workaround(
        "config global.minCachedMessageSize = 1e15",
        "Elements over 10 kB sent as references to the browser's cache stopped pages for good under "
        "load ('Bad delta path index' when a fragment run is interrupted, 'Cached ForwardMsg MISS').",
        "streamlit 1.67.0",
        "tests/app/test_server_config.py::test_no_message_is_sent_as_a_reference_to_the_browsers_cache",
        "bench/classroom.py --sessions 30 passes with the default (re-check on every Streamlit upgrade).",
    ),
    Workaround(
        "config global.disableWidgetStateDuplicationWarning = true",
        "compat.widget_default passes a widget's session value as its default too; Streamlit then "
        "logs 'default value but also set via Session State' at every run.",
        "streamlit 1.67.0",
        "tests/app/test_server_config.py::test_the_widget_default_warning_is_off",
        "compat.widget_default goes.",
    ),
)


def leave_pages_directory_mode() -> None:
    """Serve a lesson through ``streamlit_app.py``'s navigation even as a fresh server's first page.

    Until some session has run the main script (which calls ``st.navigation``), Streamlit treats an
    app with a ``pages/`` folder as a legacy multipage app. The lesson notices, switches the server
    to ``st.navigation`` mode (the flag 1.67's own ``st.navigation`` sets), and reruns: the main
    script then runs, builds the real navigation and shows this lesson.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


FIRST_VIEW = True
"""Whether a session's first Playground run is the first view (``first_view``); the AppTest tests
turn it off (``tests/conftest.py``), except those that pin it. The servers the tests start keep it."""
FIRST_VIEW_STRIDE = 5
"""The first view's figure keeps every 5th frame: 11 of 51 (t = 0, 0.1, ..., 1), a 0.45 MB spec (1.7 MB for 51)."""
FIRST_VIEW_TIMEOUT_S = 10.0
"""The browser asks for the whole page after this long even if it never saw the figure drawn."""
_FIRST_VIEW_KEY = "fme_first_view_sent"
_DRAWN_KEY = "fme_figure_drawn"

# The browser side of rerun_when_drawn: no markup, only a watcher. Custom components v2 run their
# module in the page itself (not an iframe), so it can see the chart. One animation frame after the
# chart's traces exist (they are painted then), a trigger value asks the server for a rerun.
_DRAWN_JS = """
export default function (component) {
  const { setTriggerValue, data } = component;
  const start = performance.now();
  let done = false;
  const poll = () => {
    if (done) return;
    if (document.querySelector(data.selector) || performance.now() - start > data.timeout_ms) {
      done = true;
      requestAnimationFrame(() => setTimeout(() => setTriggerValue("drawn", true), 0));
    } else {
      setTimeout(poll, 50);
    }
  };
  poll();
  return () => { done = true; };
}
"""
_figure_drawn = st.components.v2.component("fme_figure_drawn", js=_DRAWN_JS)


def first_view(session_state: MutableMapping) -> bool:
    """True on a session's first run only (and only once): the page then sends its header, the
    toolbar's room and a lighter main figure (``FIRST_VIEW_STRIDE``), calls ``rerun_when_drawn``
    and stops; the rerun that follows draws the whole page with every frame (see ``WORKAROUNDS``)."""
    if not FIRST_VIEW or session_state.get(_FIRST_VIEW_KEY):
        return False
    session_state[_FIRST_VIEW_KEY] = True
    return True


def rerun_when_drawn(chart_key: str) -> None:
    """Have the browser rerun the script once the chart with widget key ``chart_key`` has drawn its
    traces, or after ``FIRST_VIEW_TIMEOUT_S``. An element without markup (a custom component)."""
    _figure_drawn(
        key=_DRAWN_KEY,
        data={
            "selector": f".st-key-{chart_key} .js-plotly-plot .scatterlayer .trace",
            "timeout_ms": int(FIRST_VIEW_TIMEOUT_S * 1000),
        },
        height=0,
        on_drawn_change=_rerun_only,
    )


def _rerun_only() -> None:
    """The drawn trigger's callback: the rerun it causes is all it is for."""


def ready_figure(spec: dict) -> go.Figure:
    """``go.Figure(spec)`` as ``st.plotly_chart`` sends it, without plotly's per-property validation,
    and with the float32 arrays already binary; the tests validate our specs and compare the JSON.

    ``spec`` is changed in place (its arrays replaced) and kept by the figure.
    """
    return go.Figure(_typed_arrays(spec), _validate=False)


def _typed_arrays(value):
    """``value`` with each non-empty float32 array (inside dicts and lists) as a plotly.js typed-array
    spec ``{"dtype": "f4", "bdata": base64, "shape": "r, c"}``: what plotly's to_dict writes."""
    if isinstance(value, np.ndarray) and value.dtype == np.float32 and value.size:
        spec = {"dtype": "f4", "bdata": base64.b64encode(np.ascontiguousarray(value)).decode("ascii")}
        return spec | ({"shape": str(value.shape)[1:-1]} if value.ndim > 1 else {})
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _typed_arrays(item)
    elif isinstance(value, list):
        value[:] = [_typed_arrays(item) for item in value]
    return value


def history_navigation() -> bool:
    """Whether the browser's back or forward button started this run (a private run-context flag)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return bool(getattr(get_script_run_ctx(), "is_history_navigation", False))


def widget_default(key: str, fallback):
    """The value to pass as a widget's default: this session's value under ``key``, else ``fallback``.

    Passing the session value as the default too keeps a widget that the browser first draws from a
    later run at its value instead of Streamlit's own default.
    """
    return st.session_state.get(key, fallback)


_SPAWN_LOCK = threading.Lock()


@contextlib.contextmanager
def spawn_without_app_script():
    """Within this block, a ``multiprocessing`` spawn does not re-run this process's ``__main__``.

    The child needs only what its target imports; ``__main__`` is swapped for an empty module
    (no ``__file__``, no ``__spec__``: nothing to re-import) while the child starts.
    """
    main = sys.modules.get("__main__")
    stub = types.ModuleType("__main__")
    with _SPAWN_LOCK:
        sys.modules["__main__"] = stub
        try:
            yield
        finally:
            if sys.modules.get("__main__") is stub:  # a script run may have replaced it meanwhile
                sys.modules["__main__"] = main
