"""How to launch Debian's Chromium on these machines: one place for the bench and the browser tests.

Flags that work as root with a closed network (never `playwright install`: no browser downloads here).
"""

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
