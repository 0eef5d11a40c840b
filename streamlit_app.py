"""Flow Matching Explorer: the Playground, and the lessons in pages/ (in the order of their number prefix)."""

from pathlib import Path

import streamlit as st

from explorer.classroom import dashboard
from explorer.playground import page as playground

# By the number, not the name: "10_One_step.py" sorts before "1_The_ODE_view.py" as a string. Only
# numbered files are lessons (pages/classroom.py is a workaround: explorer/compat.py).
pages_dir = Path(__file__).parent / "pages"
files = sorted(pages_dir.glob("[0-9]*_*.py"), key=lambda p: int(p.name.split("_", 1)[0]))
lessons = [st.Page(str(path)) for path in files]
pages = {"": [st.Page(playground.main, title="Playground", icon=":material/waves:", default=True)]}
if lessons:
    pages["Lessons"] = lessons
pages["Teach"] = [st.Page(dashboard.main, title="Classroom", icon=":material/school:", url_path="classroom")]
st.navigation(pages).run()
