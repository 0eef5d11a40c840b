"""Lesson widgets: predict-then-see prompts, self-checks, pitfall boxes and links into the Playground.

The pure parts (``Question``, ``grade``, ``playground_url``) are plain functions of their inputs and
are tested without a server. The Streamlit wrappers are thin; each keeps what the learner committed
to in ``st.session_state`` under keys derived from its ``key``, so a rerun caused by any other
control does not forget a prediction or a checked answer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import streamlit as st

from explorer.classroom import session as classroom
from explorer.core.state import ViewState

__all__ = [
    "READING",
    "Feedback",
    "Question",
    "chart",
    "grade",
    "pitfall",
    "playground_link",
    "playground_url",
    "predict_then_see",
    "reading_list",
    "reveal",
    "self_check",
    "setup_page",
    "write_it_yourself",
]


@dataclass(frozen=True)
class Question:
    """A multiple-choice question with feedback for every answer.

    Attributes:
        prompt: the question (markdown).  options: the answers shown, in order.
        answer: the right one, an element of ``options`` (None: measured when revealed, see
        ``predict_then_see``).  why: the explanation shown with a right answer.  hints: feedback for particular wrong answers (a nudge, not the solution); wrong
        answers without one get a generic nudge.
    """

    prompt: str
    options: tuple[str, ...]
    answer: str | None
    why: str
    hints: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        if self.answer is not None and self.answer not in self.options:
            raise ValueError(f"the answer {self.answer!r} is not one of the options {self.options!r}")
        stray = set(self.hints) - set(self.options)
        if stray:
            raise ValueError(f"hints for answers that are not options: {sorted(stray)}")


@dataclass(frozen=True)
class Feedback:
    correct: bool
    message: str


def grade(question: Question, choice: str) -> Feedback:
    """Feedback for ``choice``: right answers get the explanation, wrong ones a hint to try again."""
    if choice == question.answer:
        return Feedback(True, f"Right. {question.why}")
    hint = question.hints.get(choice, "Look at the figure above again and try another answer.")
    return Feedback(False, f"Not quite. {hint}")


def reveal(question: Question, guess: str | None) -> Feedback:
    """Feedback once the answer is revealed: a wrong guess is told the answer (and its hint, if any);
    no guess (a teacher revealed it first) is told the answer."""
    if guess is None:
        return Feedback(False, f"The answer is “{question.answer}”. {question.why}")
    if guess == question.answer:
        return Feedback(True, f"Right. {question.why}")
    hint = question.hints.get(guess)
    return Feedback(
        False, f"Not quite: the answer is “{question.answer}”. {hint + ' ' if hint else ''}{question.why}"
    )


READING = (
    ("Chen, Rubanova, Bettencourt, Duvenaud (2018)", "Neural Ordinary Differential Equations", "1806.07366"),
    (
        "Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole (2021)",
        "Score-Based Generative Modeling through Stochastic Differential Equations",
        "2011.13456",
    ),
    ("Lipman, Chen, Ben-Hamu, Nickel, Le (2022)", "Flow Matching for Generative Modeling", "2210.02747"),
    (
        "Liu, Gong, Liu (2022)",
        "Flow Straight and Fast: Learning to Generate and Transfer Data with Rectified Flow",
        "2209.03003",
    ),
    (
        "Albergo, Vanden-Eijnden (2022)",
        "Building Normalizing Flows with Stochastic Interpolants",
        "2209.15571",
    ),
    (
        "Lu, Zhou, Bao, Chen, Li, Zhu (2022)",
        "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models",
        "2211.01095",
    ),
    (
        "Kingma, Gao (2023)",
        "Understanding Diffusion Objectives as the ELBO with Simple Data Augmentation",
        "2303.00848",
    ),
    ("Lipman, Havasi, Holderrieth, et al. (2024)", "Flow Matching Guide and Code", "2412.06264"),
    ("Lai, Song, Kim, Mitsufuji, Ermon (2025)", "The Principles of Diffusion Models", "2510.21890"),
)
"""(authors, title, arXiv id) of the papers the lessons cite, oldest first."""


def reading_list() -> None:
    """The papers behind the lessons, each with its arXiv link."""
    st.subheader("Reading list")
    st.markdown(
        "\n".join(
            f"- {who}, *{title}*, [arXiv:{id_}](https://arxiv.org/abs/{id_})" for who, title, id_ in READING
        )
    )


def playground_url(**settings) -> str:
    """A relative link to the Playground with ``settings`` (``ViewState`` fields) pre-filled.

    The settings go through ``ViewState`` and its ``to_query``, so a lesson can only link to a view
    the Playground can show (an unknown name raises ``TypeError``) and values equal to the
    Playground's defaults are left out. The link is relative (``./?data=circles&steps=5``) so it
    works behind a reverse proxy that serves the app under a sub-path: lesson pages live one level
    below the Playground's root.
    """
    query = ViewState(**settings).to_query()
    return "./?" + urlencode(query) if query else "./"


def playground_link(label: str = "Open this in the Playground", **settings) -> None:
    """A button that opens the Playground (in a new tab) with ``settings`` pre-filled."""
    st.link_button(f"{label} ↗", playground_url(**settings), icon=":material/science:")


@contextmanager
def pitfall(title: str, text: str) -> Iterator[None]:
    """A bordered box that names a common mistake; draw the figure that *shows* it inside the block."""
    with st.container(border=True):
        st.markdown(f"##### :material/warning: Pitfall: {title}")
        st.markdown(text)
        yield


def setup_page(title: str) -> None:
    """What every lesson page does first: the tab's title, the wide layout, the theme, one torch thread."""
    from explorer import compat
    from explorer.figures import theme
    from explorer.settings import configure_torch

    compat.leave_pages_directory_mode()
    st.set_page_config(page_title=title, page_icon="🌊", layout="wide")
    st.html(theme.CSS)
    configure_torch()
    st.title(title)


def chart(figure, key: str, container=st) -> None:
    """A plotly figure without the mode bar (the lessons' figures are for looking, not for exporting)."""
    container.plotly_chart(figure, key=key, config={"displayModeBar": False})


def _feedback(feedback: Feedback) -> None:
    (st.success if feedback.correct else st.error)(feedback.message)


def predict_then_see(
    question: Question,
    key: str,
    context: Hashable = None,
    measure: Callable[[], tuple[str, str]] | None = None,
) -> bool:
    """Ask the learner to commit to a prediction before the answer is shown.

    The learner picks an option and presses "Reveal"; from then on this returns True and the page
    draws the answer (its figure). ``context`` describes what the question is about (e.g. the
    start point chosen): when it changes, the prediction is cleared and the learner predicts again.
    ``measure``, when given, is called only after "Reveal" and returns ``(answer, why)``: for
    answers that have to be measured (and cost seconds) rather than known in advance.

    In a class (``explorer.classroom.session``), the guess goes to the room's poll instead, and
    the answer shows when the teacher reveals the question to everyone.

    Returns:
        True once the answer is revealed (by the learner, or by the teacher to the class) for the
        current ``context``.
    """
    guess_key, revealed_key, context_key = f"{key}__guess", f"{key}__revealed", f"{key}__context"
    sent_key = f"{key}__sent"
    if st.session_state.get(context_key, context) != context:
        for stale in (revealed_key, guess_key, sent_key):
            st.session_state.pop(stale, None)
    st.session_state[context_key] = context
    in_room = classroom.current() is not None
    if in_room and revealed_key not in st.session_state and classroom.revealed(question.prompt):
        st.session_state[revealed_key] = st.session_state.get(guess_key) or TEACHER_REVEALED
    revealed = st.session_state.get(revealed_key)

    with st.container(border=True):
        st.markdown(":material/psychology: **Predict, then see.** " + question.prompt)
        choice = st.radio(
            "Your prediction",
            question.options,
            index=None,
            key=guess_key,
            horizontal=True,
            disabled=revealed is not None,
        )
        if revealed is None and in_room:
            _answer_in_room(question, choice, sent_key)
        elif revealed is None:
            if st.button("Reveal", key=f"{key}__reveal", type="primary", disabled=choice is None):
                st.session_state[revealed_key] = revealed = choice
            elif choice is None:
                st.caption("Commit to a guess first; the answer appears after you press Reveal.")
        if revealed is not None:
            if measure is not None:
                answer, why = measure()
                question = replace(question, answer=answer, why=why)
            _feedback(reveal(question, None if revealed == TEACHER_REVEALED else revealed))
            if st.button("Predict again", key=f"{key}__again"):
                for stale in (revealed_key, guess_key, sent_key):
                    st.session_state.pop(stale, None)
                st.rerun()
    return revealed is not None


TEACHER_REVEALED = "\x00teacher"
"""What a question revealed by the teacher before this learner guessed keeps as its guess."""
REVEAL_WATCH_S = 2.0


def _answer_in_room(question: Question, choice: str | None, sent_key: str) -> None:
    """In a class: send the guess to the room's poll (again when it changes) and wait for the
    teacher's "Reveal to everyone", looked for every ``REVEAL_WATCH_S``."""
    changed = choice is not None and st.session_state.get(sent_key) != choice
    if changed and classroom.answer(question.prompt, choice):
        st.session_state[sent_key] = choice

    @st.fragment(run_every=REVEAL_WATCH_S)
    def watch():
        if classroom.revealed(question.prompt):
            st.rerun()  # the full run reveals it
        if choice is None:
            st.caption(
                "In class: pick your guess; it goes to your teacher, who reveals the answer to everyone."
            )
        else:
            st.caption("In class: your guess is sent to your teacher. The answer shows when they reveal it.")

    watch()


def self_check(questions: Sequence[Question], key: str = "check") -> None:
    """Two or three questions, each with its own "Check" button and feedback for right and wrong."""
    st.subheader("Check yourself")
    for i, question in enumerate(questions):
        q_key = f"{key}_{i}"
        choice = st.radio(question.prompt, question.options, index=None, key=f"{q_key}__choice")
        if st.button("Check", key=f"{q_key}__check"):
            st.session_state[f"{q_key}__checked"] = choice
        checked = st.session_state.get(f"{q_key}__checked")
        if checked is not None and checked == choice:
            _feedback(grade(question, checked))
        elif f"{q_key}__checked" in st.session_state and choice is None:
            st.info("Pick an answer first, then press Check.")


def write_it_yourself(key: str) -> None:
    """The exercise: the train-and-sample script with its target blank, a box for the target, a verdict.

    The learner's text is shown only as code and checked by ``lesson_exercise.check_target`` (an
    ``ast`` walk, never ``eval``); the verdict's message never repeats it.
    """
    from . import exercise as lesson_exercise

    st.subheader("Write it yourself")
    st.markdown(
        "Here is the whole algorithm as a script of about 30 lines: it trains a network on the two moons and "
        "samples it with Euler. One line is left blank: the regression target `u_t`. Type it below; the page "
        "checks it against the right target on a batch of 256 (any algebraic form passes)."
    )
    st.code(lesson_exercise.SCRIPT, language="python")
    typed = st.text_input(
        "u_t =", key=key, max_chars=lesson_exercise.MAX_LENGTH, placeholder="in z0, z1, t, alpha, sigma, …"
    )
    if st.button("Check my target", key=f"{key}__check") or typed:
        st.code("u_t = " + typed, language="python")
        verdict = lesson_exercise.check_target(typed)
        (st.success if verdict.correct else st.error)(verdict.message)
    st.markdown(
        "Fill the blank, save the script and run it with `python script.py`. The same loop is "
        "`fmcore.Trainer`; from a shell, `python -m fmcore train --data moons --steps 2000 --out "
        "moons.safetensors` trains one and `python -m fmcore sample --model moons.safetensors --out "
        "samples.csv` draws from it. More scripts are in the "
        "repository's `examples/`."
    )
