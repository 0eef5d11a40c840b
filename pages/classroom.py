"""Not a lesson: the Classroom's URL in the pages folder, for a fresh server's first visit (compat).

See ``explorer.compat.WORKAROUNDS`` ("pages/classroom.py"): the Classroom page itself is
``explorer.classroom.dashboard``, served by ``streamlit_app.py``'s navigation.
"""

from explorer import compat

compat.leave_pages_directory_mode()
