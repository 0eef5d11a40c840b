"""Build hook that ships the app with the package; everything else is in pyproject.toml.

The Playground (streamlit_app.py), the lessons (pages/) and the server settings
(.streamlit/config.toml) stay at the top of the repository, the layout the project was asked for.
The build copies them into ``explorer/app/`` so that an installed ``flow-matching-explorer``
serves the same app with the same settings as ``make run`` (see ``explorer/serve.py``).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
APP_FILES = ("streamlit_app.py", "pages/*.py", ".streamlit/config.toml")
APP_PACKAGE_DIR = Path("explorer", "app")


class BuildWithApp(build_py):
    """``build_py`` plus the app's files under ``explorer/app/``, in their repository layout."""

    def run(self):
        if self.editable_mode:  # an editable install runs the checkout, app files included
            super().run()
            return
        # pip builds in the checkout's build/ folder, and build_py only adds to it: a module removed
        # since the last build would otherwise still ship. Pure Python: build_py fills build_lib alone.
        shutil.rmtree(self.build_lib, ignore_errors=True)
        super().run()
        for source in self._app_files():
            target = Path(self.build_lib, APP_PACKAGE_DIR, source.relative_to(ROOT))
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target))

    @staticmethod
    def _app_files() -> list[Path]:
        files = [path for pattern in APP_FILES for path in sorted(ROOT.glob(pattern))]
        if not any(path.parent.name == "pages" for path in files):
            raise RuntimeError(f"no lesson pages found in {ROOT / 'pages'}: run the build from a checkout")
        return files


setup(cmdclass={"build_py": BuildWithApp})
