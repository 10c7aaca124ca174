"""What the tool windows (agreement, duplicates, nucleus panel) share about their Toplevel."""
from __future__ import annotations

import tkinter as tk


def is_open(top: tk.Misc) -> bool:
    """Whether the window still exists: the user may have closed it, or Tk gone away with the app."""
    try:
        return bool(top.winfo_exists())
    except tk.TclError:
        return False
