"""The Playground page, one module per panel; ``main()`` draws the whole page."""

from .page import main

__all__ = ["main"]
