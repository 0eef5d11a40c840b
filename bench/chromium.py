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

SETTLED_JS = """() => {
    const app = document.querySelector("[data-testid='stApp']");
    return app && app.getAttribute('data-test-script-state') === 'notRunning'
        && app.getAttribute('data-test-connection-state') === 'CONNECTED'
        && !document.querySelector('.st-key-fme_figure_drawn');
}"""
"""True in the page once the app is settled: its script run over, connected, and not in a session's
first view (``explorer.compat.first_view``: the figure alone, the whole page to follow once drawn)."""
