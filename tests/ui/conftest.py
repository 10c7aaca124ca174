"""Widget tests: a real, shown window under Xvfb, driven with event_generate (STYLE.md)."""
from __future__ import annotations

import gc
import os
import time
import tkinter as tk
from pathlib import Path

import pytest

from raabin_labeler.app.settings import Settings
from raabin_labeler.core.project import Project
from raabin_labeler.ui.app import Session
from tests.conftest import write_photo


def wait_until(root: tk.Misc, condition, timeout: float = 10.0) -> None:
    """Keep Tk running until ``condition()`` holds (decodes and saves finish off-thread)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        root.update()
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {getattr(condition, '__name__', condition)}")


@pytest.fixture(autouse=True)
def _config(tmp_path, monkeypatch):
    monkeypatch.setenv("RAABIN_LABELER_CONFIG", str(tmp_path / "config"))


@pytest.fixture
def tk_root():
    if not os.environ.get("DISPLAY"):
        pytest.fail("widget tests need a display: run them with the README's test command (Xvfb)")
    root = tk.Tk()
    root.geometry("1400x900+0+0")
    yield root
    try:
        root.destroy()
    except tk.TclError:
        pass
    # Collect the window's reference cycles here, on the Tk thread: a collection that happens
    # to run in a worker thread would free the Tcl interpreter there, and Tcl aborts.
    gc.collect()
    gc.enable()  # a window left open by a test switched automatic collection off


@pytest.fixture
def small_project(tmp_path) -> Project:
    photos = tmp_path / "photos"
    for i in range(3):
        write_photo(photos / f"field-{i + 1}.jpg", 800, 600, seed=i, quality=85)
    return Project.create(tmp_path / "project", images=photos, experts=["expert-a"])


@pytest.fixture
def open_window(tk_root):
    """Open a project in the real window; fails the test if any Tk callback raised."""
    sessions = []

    def _open(project: Project, expert: str = "expert-a"):
        session = Session(tk_root, Settings(expert=expert))
        window = session.start(project.root, expert)
        assert window is not None
        sessions.append(window)
        tk_root.deiconify()
        wait_until(tk_root, lambda: window.canvas.winfo_ismapped() and window.canvas._photo_item is not None)
        window.canvas.focus_force()
        tk_root.update()
        return window

    yield _open
    for window in sessions:
        assert window.errors == [], "a Tk callback raised:\n" + "\n".join(window.errors)
        try:
            exists = window.root.winfo_exists()
        except tk.TclError:
            exists = False
        if exists:
            window.close()  # flushes saves, stops the poll loop and background work


def drag(widget: tk.Misc, start: tuple[float, float], end: tuple[float, float], steps: int = 5, **kw) -> None:
    x0, y0 = start
    x1, y1 = end
    widget.event_generate("<ButtonPress-1>", x=round(x0), y=round(y0), **kw)
    for i in range(1, steps + 1):
        widget.event_generate("<B1-Motion>", x=round(x0 + (x1 - x0) * i / steps),
                              y=round(y0 + (y1 - y0) * i / steps), state=0x100)
    widget.event_generate("<ButtonRelease-1>", x=round(x1), y=round(y1), state=0x100)
    widget.update()


def key(widget: tk.Misc, sequence: str) -> None:
    widget.event_generate(sequence)
    widget.update()


def screen(window, ix: float, iy: float) -> tuple[float, float]:
    return window.canvas.view.to_screen(ix, iy)


REPO = Path(__file__).resolve().parents[2]
