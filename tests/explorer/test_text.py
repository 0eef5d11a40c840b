"""Outside strings shown as plain text: explorer.text.plain escapes markdown, LaTeX and HTML."""

import re

import pytest

from explorer.core.text import JOINER, MESSAGE_CHARS, QUOTE_CHARS, plain, quote, shorten

HOSTILE = [
    "[click to log in](http://evil.example)",
    "![x](http://evil.example/p.png)",
    "<img src=x onerror=alert(1)>",
    "$x^2$ and $$\\int$$",
    "<http://evil.example>",
    "# heading | table | ~~gone~~ **bold** _it_ `code`",
    ":red[coloured] :material/warning:",
]

# Every character that starts markdown, GFM, LaTeX or HTML syntax, which must not appear unescaped.
SYNTAX = "\\`*_[]{}()<>#|!~$&^="


def unescaped(markdown: str) -> list[str]:
    """Syntax characters in ``markdown`` not preceded by an (unescaped) backslash."""
    found, i = [], 0
    while i < len(markdown):
        if markdown[i] == "\\" and i + 1 < len(markdown):
            i += 2
            continue
        if markdown[i] in SYNTAX:
            found.append(markdown[i])
        i += 1
    return found


def unescape(markdown: str) -> str:
    """The text the markdown shows (the joiner is invisible)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace(JOINER, "")


@pytest.mark.parametrize("text", HOSTILE)
def test_every_syntax_character_is_escaped_and_the_text_reads_the_same(text):
    shown = plain(text)
    assert unescaped(shown) == []
    assert unescape(shown) == text  # what the markdown renders: exactly the characters given


@pytest.mark.parametrize(
    "text", ["see http://evil.example/x", "or www.evil.example", "HTTPS://EVIL.example", "me@evil.example"]
)
def test_bare_addresses_cannot_become_links(text):
    shown = plain(text)
    # GFM links 'scheme://', 'www.' and 'name@host' in the rendered text, where escapes are already
    # resolved: an invisible joiner inside each breaks them, and the text reads the same.
    assert "://" not in shown and not re.search(r"(?i)www\.", shown) and not re.search(r"@\w", shown)
    assert unescape(shown) == text


def test_our_own_sentences_pass_through_unchanged():
    sentence = "Line 2: 'nan' is not a finite number. Nothing was changed."
    assert plain(sentence) == sentence


def test_newlines_cannot_start_blocks_and_runaway_messages_are_cut():
    assert plain("ok\n\n# big heading\n> quote") == "ok \\# big heading \\> quote"
    long = plain("a" * 10 * MESSAGE_CHARS)
    assert len(long) == MESSAGE_CHARS + 1 and long.endswith("…")


def test_quoted_input_is_cut_at_80_characters_with_an_ellipsis():
    assert QUOTE_CHARS == 80
    assert quote("x" * 60_000) == repr("x" * 80) + "…"
    assert quote("short") == "'short'"
    assert shorten("n" * 200) == "n" * 80 + "…" and shorten("two\nlines") == "two lines"
