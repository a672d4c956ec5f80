"""Chart helpers shared by reports and training reports: a CJK font when one is installed."""

from __future__ import annotations

CJK_FONT_NAMES = ("wenquanyi", "noto sans cjk", "noto serif cjk", "source han", "simhei", "microsoft yahei",
                  "pingfang", "heiti", "droid sans fallback")


def cjk_font() -> str | None:
    """The name of an installed font that has Chinese glyphs, or None."""
    from matplotlib import font_manager

    for font in font_manager.fontManager.ttflist:
        if any(key in font.name.lower() for key in CJK_FONT_NAMES):
            return font.name
    return None
