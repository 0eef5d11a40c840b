"""The classroom's UI side (issue 15): a teacher's dashboard, and the calls a student's Playground makes.

- ``links``: the join link, the teacher link and the join QR code (streamlit-free).
- ``tiles``: the numbers behind a dashboard tile, sorting, "N students" (streamlit-free).
- ``push``: the choices a teacher can push, from fmcore's registries (streamlit-free).
- ``student``: join, report, pick up pushed settings, answer a poll (streamlit-free; the
  Playground calls these).
- ``figures``: plotly figures of a tile and of a poll (pure).
- ``dashboard``: the "Classroom" page (Streamlit).
- ``session``: this browser session's seat in a room, kept in ``st.session_state`` (Streamlit):
  the Playground (``explorer.playground.room``) and the lessons' polls use it.

The store itself is ``explorer.rooms``.
"""
