"""Stylesheets shared by the working pages (zone editor, catalog)."""

__all__ = ["TAB_STYLES"]

#: Tabs readable on the dark page: the chosen one filled, the others plain text.
TAB_STYLES = """
.bk-header { border-bottom: 1px solid #3a4660 !important; }
.bk-tab { color: #aab3c5 !important; background: transparent !important;
  font-size: 16px !important; padding: 6px 14px !important; border: 0 !important; }
.bk-tab.bk-active { color: #fff !important; background: #2f6fe4 !important;
  border-radius: 6px 6px 0 0 !important; font-weight: 700; }
"""
