"""The Easy-GT panel: a cell's crop at 575×575 with the live nucleus mask, slider and outline pen.

Issue 6, steps 5-7. The crop is cut from the full-resolution photo and prepared (Otsu once) on
a worker thread; the result is picked up with ``after`` and dropped if the expert moved on. A
slider move is a comparison and a blend pasted into the one PhotoImage the canvas shows
(benchmarks/nucleus_panel_speed.py). The pen: drag on the crop draws a freehand outline; its
vertices are handles (drag to move, right-click to delete, double-click an edge to add one).
All state lives in :class:`~raabin_labeler.app.nucleus.NucleusPanelController`.
"""
from __future__ import annotations

import sys
import tkinter as tk
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from tkinter import messagebox, ttk
from typing import TYPE_CHECKING, Callable

from PIL import Image, ImageTk

from ..app.labeling import LabelingController
from ..app.nucleus import STEPS, NucleusPanelController, edge_at, method_for, prepare_session, vertex_at
from ..core.annotation import Box, Cell
from ..core.imageio import open_image
from ..core.masks import FAILED
from ..core.nucleus import WORK_SIZE, NucleusSession
from ..errors import UserError
from .windows import is_open

if TYPE_CHECKING:
    from .main_window import MainWindow

POLL_MS = 20
HANDLE_PX = 4  # half the side of a vertex handle
PICK_PX = 7  # how near (screen px) the pointer must be to grab a vertex or an edge
OUTLINE_COLOR = "#ffd400"
ErrorHandler = Callable[[type, BaseException, object], None]


def _prepare(photo: Image.Image | None, path: Path, max_pixels: int, cell: Cell) -> NucleusSession:
    """Worker side: decode the photo if the window has no full-resolution copy, then the channel."""
    return prepare_session(photo if photo is not None else open_image(path, max_pixels), cell.box,
                           method_for(cell))


class NucleusPanel:
    """A Toplevel over one cell at a time; call from the Tk thread only.

    ``full_photo()`` returns the current photo at full resolution if the window has it decoded
    (None makes the worker decode it). ``executor`` runs the preparation; tests may pass a
    synchronous one.
    """

    def __init__(self, master: tk.Misc, labeling: LabelingController,
                 full_photo: Callable[[], Image.Image | None], report_error: ErrorHandler,
                 *, executor: Executor | None = None):
        self.labeling = labeling
        self.full_photo = full_photo
        self.report_error = report_error
        self.controller: NucleusPanelController | None = None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="nucleus")
        self._owns_executor = executor is None
        self._pending: tuple[int, str, str, Box, Future] | None = None
        self._carried: NucleusPanelController | None = None  # the cell's state before its box moved
        self._token = 0
        self._poll_job: str | None = None
        self._drag_vertex: int | None = None
        self._syncing = False
        self.top = tk.Toplevel(master)
        self.top.title("Nucleus and cell mask")
        self._build()
        self.top.protocol("WM_DELETE_WINDOW", self.close_asking)
        self.top.bind("<Escape>", lambda e: self.close_asking())
        # the photo keys work from the panel too (its adjustment is saved on the way)
        self.top.bind("<Next>", lambda e: self.labeling.next_photo())
        self.top.bind("<Prior>", lambda e: self.labeling.previous_photo())
        labeling.listeners.append(self._labeling_changed)

    # -- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        self.canvas = tk.Canvas(self.top, width=WORK_SIZE, height=WORK_SIZE, background="#202020",
                                highlightthickness=0, cursor="pencil")
        self.canvas.pack(side="left", padx=4, pady=4)
        self._photo = ImageTk.PhotoImage("RGB", (WORK_SIZE, WORK_SIZE), master=self.top)  # reused: paste only
        self.canvas.create_image(0, 0, anchor="nw", image=self._photo, tags=("crop",))
        self.canvas.create_line(0, 0, 0, 0, fill=OUTLINE_COLOR, width=2, tags=("outline",), state="hidden")
        self.canvas.create_line(0, 0, 0, 0, fill="#ff6060", width=2, tags=("pen",), state="hidden")
        self.canvas.bind("<ButtonPress-1>", self._press)
        self.canvas.bind("<B1-Motion>", self._motion)
        self.canvas.bind("<ButtonRelease-1>", self._release)
        self.canvas.bind("<Double-Button-1>", self._double)
        self.canvas.bind("<ButtonPress-3>", self._right)
        side = ttk.Frame(self.top, padding=6)
        side.pack(side="left", fill="y")
        self.title = tk.StringVar()
        ttk.Label(side, textvariable=self.title, style="Heading.TLabel").pack(anchor="w")
        ttk.Label(side, text="Nucleus threshold (higher = smaller nucleus)").pack(anchor="w", pady=(8, 0))
        row = ttk.Frame(side)
        row.pack(fill="x")
        self.threshold = tk.IntVar(value=0)
        self.scale = ttk.Scale(row, from_=0, to=255, orient="horizontal", length=260, command=self._slid)
        self.scale.pack(side="left")
        ttk.Label(row, textvariable=self.threshold, width=4).pack(side="left", padx=4)
        steps = ttk.Frame(side)
        steps.pack(anchor="w", pady=2)
        self.step_buttons = {}
        for delta in STEPS:
            button = ttk.Button(steps, text=f"{delta:+d}", width=4, command=lambda d=delta: self.step(d))
            button.pack(side="left")
            self.step_buttons[delta] = button
        self.auto_button = ttk.Button(side, text="Auto outline", command=self.auto_outline)
        self.auto_button.pack(fill="x", pady=(10, 2))
        self.failed_button = ttk.Button(side, text="Failed / unusable", command=self.mark_failed)
        self.failed_button.pack(fill="x", pady=2)
        self.save_button = ttk.Button(side, text="Save", command=self.save)
        self.save_button.pack(fill="x", pady=2)
        self.next_button = ttk.Button(side, text="Next cell", command=self.next_cell)
        self.next_button.pack(fill="x", pady=2)
        ttk.Button(side, text="Close (Esc)", command=self.close).pack(fill="x", pady=(10, 2))
        ttk.Label(side, wraplength=300, foreground="#505050",
                  text="Drag on the crop to draw the cell's outline. Drag a yellow handle to move it, "
                       "right-click it to delete it, double-click the outline to add one. Cytoplasm is "
                       "the cell minus the nucleus; basophils get a whole-cell mask only.").pack(anchor="w", pady=8)
        self.status = tk.StringVar()
        ttk.Label(side, textvariable=self.status, wraplength=300).pack(anchor="w")
        self._set_enabled(False)

    def _set_enabled(self, on: bool) -> None:
        state = ["!disabled"] if on else ["disabled"]
        for widget in (self.scale, self.auto_button, self.failed_button, self.save_button, self.next_button,
                       *self.step_buttons.values()):
            widget.state(state)

    # -- opening a cell ---------------------------------------------------------------------
    def show_cell(self, cell_id: str) -> None:
        """Prepare the panel for ``cell_id`` of the current photo (off the Tk thread)."""
        c = self.labeling
        found = c.find(cell_id)
        if found is None or c.image is None:
            self.status.set("Select a cell in the window first")
            return
        ctl = self.controller
        if ctl is not None and ctl.cell_id == cell_id and self._pending is None and ctl.box == found[0].box:
            return  # `n` again on the cell shown: keep it as the expert left it (adjusted or not)
        if ctl is not None and ctl.cell_id == cell_id:
            self._carried = ctl  # its box moved: the crop is made again, the adjustment carried over
        elif ctl is not None:
            self.save_adjustments()  # per-cell adjustments are kept (issue 6), not dropped on a switch
        if self._pending is not None:
            self._pending[-1].cancel()  # superseded (a box nudged key after key): not cut at all
        self._token += 1
        self.controller = None
        self._set_enabled(False)
        cell = found[0]
        self.title.set(f"{cell.id} · {c.taxonomy.get(cell.label).name if cell.label in c.taxonomy else 'not labeled'}")
        self.status.set("Preparing the crop…")
        future = self._executor.submit(_prepare, self.full_photo(), c.project.image_path(c.image),
                                       c.project.max_pixels, cell)
        self._pending = (self._token, cell_id, c.image, cell.box, future)
        self._schedule_poll()

    def _schedule_poll(self) -> None:
        if self._poll_job is None:
            self._poll_job = self.top.after(POLL_MS if self._pending and not self._pending[-1].done() else 0,
                                            self._poll)

    def _poll(self) -> None:
        self._poll_job = None
        if self._pending is None:
            return
        token, cell_id, image, box, future = self._pending
        if not future.done():
            self._schedule_poll()
            return
        self._pending = None
        found = self.labeling.find(cell_id)
        if token != self._token or self.labeling.image != image or found is None:
            return  # stale: the expert moved on
        if found[0].box != box:  # moved while its crop was cut: that crop would misalign the mask
            self.show_cell(cell_id)
            return
        try:
            session = future.result()
        except UserError as exc:
            self.status.set(str(exc))
            return
        except Exception:
            self.report_error(*sys.exc_info())
            return
        self.controller = NucleusPanelController(self.labeling, cell_id, session)
        carried, self._carried = self._carried, None
        if carried is not None and carried.cell_id == cell_id:
            self.controller.take_adjustment(carried)
        self._set_enabled(True)  # first: a disabled ttk.Scale ignores set(), and would show 0
        self._show_threshold()
        self._draw_outline()
        self.render()
        self._update_status()

    @property
    def ready(self) -> bool:
        return self.controller is not None

    # -- the live mask ------------------------------------------------------------------------
    def render(self) -> None:
        """Paste the overlay into the canvas' one PhotoImage (issue 6: ≤ 16 ms)."""
        if self.controller is not None:
            self._photo.paste(Image.fromarray(self.controller.overlay()))

    def _slid(self, value: str) -> None:
        if self._syncing or self.controller is None:
            return
        threshold = self.controller.set_threshold(float(value))
        if threshold != self.threshold.get():
            self.threshold.set(threshold)
            self.render()
            self._update_status()

    def step(self, delta: int) -> None:
        if self.controller is None:
            return
        self.controller.step(delta)
        self._show_threshold()
        self.render()
        self._update_status()

    def _show_threshold(self) -> None:
        """The slider and the number at the controller's threshold (not taken as a slider move)."""
        self.threshold.set(self.controller.threshold)
        self._syncing = True
        self.scale.set(self.controller.threshold)
        self._syncing = False

    def _update_status(self) -> None:
        ctl = self.controller
        if ctl is None:
            return
        parts = [f"automatic threshold {ctl.session.auto_threshold}"]
        if ctl.whole_cell_only:
            parts = ["basophil: whole-cell mask only (no nucleus split)"]
        saved = ctl.saved_status
        parts.append("marked failed / unusable" if saved == FAILED else
                     f"saved ({saved})" if saved else "no mask saved yet")
        if ctl.changed:
            parts.append("unsaved changes")
        self.status.set(" · ".join(parts))
        for widget in (self.scale, *self.step_buttons.values()):
            widget.state(["disabled"] if ctl.whole_cell_only else ["!disabled"])

    # -- the outline pen ----------------------------------------------------------------------
    def _scale(self) -> tuple[float, float]:
        w, h = self.controller.crop_size
        return WORK_SIZE / w, WORK_SIZE / h

    def _to_crop(self, x: float, y: float) -> tuple[float, float]:
        sx, sy = self._scale()
        return x / sx, y / sy

    def _to_view(self, points) -> list[float]:
        sx, sy = self._scale()
        return [v for x, y in points for v in (x * sx, y * sy)]

    def _pick_radius(self) -> float:
        return PICK_PX / min(self._scale())

    def _draw_outline(self) -> None:
        self.canvas.delete("handle")
        points = self.controller.outline if self.controller else None
        if not points:
            self.canvas.itemconfigure("outline", state="hidden")
            return
        flat = self._to_view(points)
        self.canvas.coords("outline", *flat, *flat[:2])
        self.canvas.itemconfigure("outline", state="normal")
        for i in range(len(points)):
            x, y = flat[2 * i], flat[2 * i + 1]
            self.canvas.create_rectangle(x - HANDLE_PX, y - HANDLE_PX, x + HANDLE_PX, y + HANDLE_PX,
                                         fill=OUTLINE_COLOR, outline="black", tags=("handle", f"handle:{i}"))

    def _press(self, event: tk.Event) -> None:
        if self.controller is None:
            return
        x, y = self._to_crop(event.x, event.y)
        self._drag_vertex = vertex_at(self.controller.outline or [], x, y, self._pick_radius())
        if self._drag_vertex is None:
            self.controller.begin_stroke(x, y)

    def _motion(self, event: tk.Event) -> None:
        if self.controller is None:
            return
        x, y = self._to_crop(event.x, event.y)
        if self._drag_vertex is not None:
            i = self._drag_vertex
            self.controller.move_vertex(i, x, y)
            flat = self._to_view(self.controller.outline)
            self.canvas.coords("outline", *flat, *flat[:2])
            vx, vy = flat[2 * i], flat[2 * i + 1]
            self.canvas.coords(f"handle:{i}", vx - HANDLE_PX, vy - HANDLE_PX, vx + HANDLE_PX, vy + HANDLE_PX)
            self.render()
            return
        stroke = self.controller.extend_stroke(x, y)
        if len(stroke) >= 2:
            self.canvas.coords("pen", *self._to_view(stroke))
            self.canvas.itemconfigure("pen", state="normal")

    def _release(self, event: tk.Event) -> None:
        if self.controller is None:
            return
        if self._drag_vertex is not None:
            self._drag_vertex = None
        else:
            self.controller.end_stroke()
            self.canvas.itemconfigure("pen", state="hidden")
        self._draw_outline()
        self.render()
        self._update_status()

    def _right(self, event: tk.Event) -> None:
        if self.controller is None:
            return
        x, y = self._to_crop(event.x, event.y)
        index = vertex_at(self.controller.outline or [], x, y, self._pick_radius())
        if index is not None and self.controller.delete_vertex(index):
            self._outline_changed()

    def _double(self, event: tk.Event) -> None:
        """The second press of a double-click: on an edge it adds a vertex (and drags it);
        elsewhere it is an ordinary press (Tk sends only this event for that press)."""
        if self.controller is None:
            return
        x, y = self._to_crop(event.x, event.y)
        radius = self._pick_radius()
        points = self.controller.outline or []
        edge = edge_at(points, x, y, radius) if vertex_at(points, x, y, radius) is None else None
        if edge is None:
            self._press(event)
            return
        self._drag_vertex = self.controller.insert_vertex(edge, x, y)
        self._outline_changed()

    def _outline_changed(self) -> None:
        self._draw_outline()
        self.render()
        self._update_status()

    def auto_outline(self) -> None:
        if self.controller is not None:
            self.controller.use_auto_outline()
            self._outline_changed()

    # -- saving -------------------------------------------------------------------------------
    def save(self) -> bool:
        """Write the mask and record it on the cell; False (with the reason shown) if it failed."""
        if self.controller is None:
            return False
        try:
            cell = self.controller.save()
        except UserError as exc:
            self.status.set(f"Not saved: {exc}")
            return False
        self._update_status()
        self.status.set(f"Saved {cell.nucleus_mask} · " + self.status.get())
        return True

    def mark_failed(self) -> None:
        if self.controller is None:
            return
        try:
            self.controller.mark_failed()
        except UserError as exc:
            self.status.set(f"Not recorded: {exc}")
            return
        self._update_status()

    def next_cell(self) -> None:
        """Save (unless the cell is marked failed and untouched since) and open the next cell."""
        ctl = self.controller
        if ctl is None:
            return
        if not (ctl.saved_status == FAILED and not ctl.changed) and not self.save():
            return
        self.labeling.select(ctl.cell_id)
        self.labeling.cycle(True)
        if self.labeling.selected is not None and self.labeling.selected != ctl.cell_id:
            self.show_cell(self.labeling.selected)

    # -- the labeling window's changes ----------------------------------------------------------
    def save_adjustments(self) -> None:
        """Save the shown cell's mask if the expert adjusted it since the last save."""
        if self.controller is not None and self.controller.changed:
            self.save()

    def close_asking(self) -> None:
        """Escape or the window's close button: adjustments not saved yet are offered first."""
        if self.controller is not None and self.controller.changed:
            answer = messagebox.askyesnocancel(
                "Unsaved nucleus adjustment", f"Save the adjusted mask of cell {self.controller.cell_id}?",
                parent=self.top)
            if answer is None or (answer and not self.save()):
                return  # stay: cancelled, or the save failed (the reason is shown)
        self.close()

    def _labeling_changed(self, what: str) -> None:
        ctl = self.controller
        pending = self._pending
        if what == "leaving":  # the expert moves to another photo: keep what they adjusted here
            self.save_adjustments()
            return
        if what == "photo":
            if (ctl and ctl.image != self.labeling.image) or (pending and pending[2] != self.labeling.image):
                self.close()  # the panel's cell is on the photo the expert left
        elif what == "cells" and ctl is not None:
            found = self.labeling.find(ctl.cell_id)
            if found is None:
                self.close()  # the cell was deleted (or an undo removed it)
            elif found[0].box != ctl.box:
                self.show_cell(ctl.cell_id)  # moved or resized (or an undo did): cut the new crop
            else:
                if ctl.follow_cell():  # an undo or redo of its mask: show what is on disk again
                    self._show_threshold()
                    self._draw_outline()
                self.render()
                self._update_status()

    def exists(self) -> bool:
        return is_open(self.top)

    def close(self) -> None:
        if self._labeling_changed in self.labeling.listeners:
            self.labeling.listeners.remove(self._labeling_changed)
        if self._poll_job is not None:
            self.top.after_cancel(self._poll_job)
            self._poll_job = None
        self._pending = None
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self.exists():
            self.top.destroy()


def _full_photo(window: "MainWindow") -> Callable[[], Image.Image | None]:
    """The window's decoded photo at full resolution (scale 1), if its cache has it yet."""
    def get() -> Image.Image | None:
        c = window.controller
        if c.image is None:
            return None
        pyramid = window.cache.get(c.project.image_path(c.image))
        if pyramid is None or not pyramid.levels:
            return None
        scale, image = pyramid.levels[-1]
        return image if scale == 1.0 else None
    return get


def open_nucleus_panel(window: "MainWindow") -> NucleusPanel:
    """The panel on the window's selected cell (issue 6); the lead wires it to a command."""
    panel = NucleusPanel(window.root, window.controller, _full_photo(window), window._callback_exception)
    if window.controller.selected is None:
        panel.status.set("Select a cell in the window first")
    else:
        panel.show_cell(window.controller.selected)
    return panel
