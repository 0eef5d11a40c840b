"""Flow Matching Explorer: the Playground, and the lessons in pages/ (listed in file-name order)."""

from pathlib import Path

import streamlit as st

from explorer.playground import page as playground

lessons = [st.Page(str(path)) for path in sorted((Path(__file__).parent / "pages").glob("*.py"))]
pages = {"": [st.Page(playground.main, title="Playground", icon=":material/waves:", default=True)]}
if lessons:
    pages["Lessons"] = lessons
st.navigation(pages).run()
