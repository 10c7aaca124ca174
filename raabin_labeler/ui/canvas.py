"""The photo canvas: draws the visible part of the photo and the cells, translates the mouse.

Items are tagged (``cell``, ``cell:<id>``, ``handle``) and moved with ``coords``; a redraw
compares what is drawn with what should be and touches only what changed, so dragging one
box among a hundred costs one box. The photo itself is re-rendered only on zoom, pan or a
new decode, and only the visible region at screen resolution.
"""
from __future__ import annotations

import tkinter as tk
from dataclasses import dataclass
from typing import Callable

from PIL import Image, ImageTk

from ..app.labeling import LabelingController
from ..app.photo_cache import Pyramid
from ..app.view import ViewTransform
from ..core import geometry
from ..core.annotation import Box, Cell

HANDLE_PX = 4  # half the side of a resize handle on screen
PICK_PX = 7  # how near (screen px) the pointer must be to grab a handle


@dataclass(frozen=True)
class _Drawn:
    box: tuple[float, float, float, float]
    style: tuple


class PhotoCanvas(tk.Canvas):
    def __init__(self, master: tk.Misc, controller: LabelingController, **kw):
        super().__init__(master, background="#202020", highlightthickness=0, takefocus=1, **kw)
        self.controller = controller
        self.view = ViewTransform()
        self.pyramid: Pyramid | None = None
        self.show_label_text = True
        self.show_others = False
        self.message: str | None = None
        self._photo_item: int | None = None
        self._photo_ref: ImageTk.PhotoImage | None = None  # Tk forgets images nobody holds
        self.pointed: Box | None = None  # see _draw_pointed
        self._rendered_key: tuple | None = None
        self._detail_job: str | None = None
        self._drawn: dict[str, _Drawn] = {}
        self._drag: dict | None = None
        self._space_down = False
        self.on_view_change: Callable[[], None] = lambda: None
        self.fitted = True  # keep fitting the photo when the window is resized, until zoomed
        self.bind("<Configure>", self._resized)
        self.bind("<ButtonPress-1>", self._press)
        self.bind("<B1-Motion>", self._motion)
        self.bind("<ButtonRelease-1>", self._release)
        self.bind("<Control-ButtonPress-1>", self._place)
        self.bind("<ButtonPress-2>", self._pan_start)
        self.bind("<B2-Motion>", self._pan_motion)
        self.bind("<MouseWheel>", lambda e: self.zoom_at(e.x, e.y, 1.25 if e.delta > 0 else 0.8))
        self.bind("<Button-4>", lambda e: self.zoom_at(e.x, e.y, 1.25))
        self.bind("<Button-5>", lambda e: self.zoom_at(e.x, e.y, 0.8))
        self.bind("<KeyPress-space>", self._space, add=True)
        self.bind("<KeyRelease-space>", self._space_up, add=True)

    # -- geometry helpers -----------------------------------------------------------------
    def _size(self) -> tuple[int, int]:
        return max(1, self.winfo_width()), max(1, self.winfo_height())

    def image_size(self) -> tuple[int, int] | None:
        ann = self.controller.annotation
        if ann is not None:
            return ann.image.width, ann.image.height
        if self.pyramid is not None and self.pyramid.full_size:
            return self.pyramid.full_size
        return None

    def to_image(self, sx: float, sy: float) -> tuple[float, float]:
        return self.view.to_image(sx, sy)

    def screen_box(self, box: Box) -> tuple[float, float, float, float]:
        x1, y1 = self.view.to_screen(box.x1, box.y1)
        x2, y2 = self.view.to_screen(box.x2, box.y2)
        return x1, y1, x2, y2

    # -- view -----------------------------------------------------------------------------
    def _resized(self, _event) -> None:
        if self.fitted:
            self.fit()
        else:
            self.refresh(photo=True)

    def fit(self) -> None:
        size = self.image_size()
        self.fitted = True
        if size:
            self.view.fit(*size, *self._size())
            self.refresh(photo=True)
            self.on_view_change()

    def zoom_at(self, sx: float, sy: float, factor: float) -> None:
        self.fitted = False
        self.view.zoom_at(sx, sy, factor)
        self.refresh(photo=True)
        self.on_view_change()

    def zoom_to(self, zoom: float) -> None:
        self.fitted = False
        self.view.set_zoom(zoom, *self._size())
        self.refresh(photo=True)
        self.on_view_change()

    def center_on(self, box: Box) -> None:
        self.view.center_on(*box.center, *self._size())
        self.refresh(photo=True)

    def _pan_start(self, event) -> None:
        self._drag = {"mode": "pan", "x": event.x, "y": event.y}

    def _pan_motion(self, event) -> None:
        if self._drag and self._drag["mode"] == "pan":
            self.fitted = False
            self.view.pan(event.x - self._drag["x"], event.y - self._drag["y"])
            self._drag["x"], self._drag["y"] = event.x, event.y
            self.refresh(photo=True)

    def _space(self, event) -> str:
        self._space_down = True
        return "break"

    def _space_up(self, event) -> None:
        self._space_down = False

    # -- drawing --------------------------------------------------------------------------
    def set_pyramid(self, pyramid: Pyramid | None, render: bool = True) -> None:
        self.pyramid = pyramid
        self._rendered_key = None
        if render or (pyramid is not None and pyramid.error is not None):  # a broken photo: clear the last one
            self.refresh(photo=True)

    def refresh(self, photo: bool = False) -> None:
        """Bring the screen up to date; ``photo`` re-renders the photo when the view moved."""
        if photo:
            self._render_photo()
        self._sync_cells()

    def _render_photo(self, detail: bool = False) -> None:
        """Paint the visible region: first from a coarse level (fast), detail right after.

        A coarse level is enough for the first paint of the next photo (issue 3: ≤ 50 ms);
        the sharper level follows a moment later unless the view moved on meanwhile.
        """
        size = self.image_size()
        pyramid = self.pyramid
        cw, ch = self._size()
        if pyramid is not None and pyramid.error is not None:  # no photo: not the previous one either
            self.delete("photo")
            self._photo_item = None
            self._rendered_key = None
            self._show_message(self.message or str(pyramid.error))
            return
        if pyramid is None or not pyramid.levels or size is None:
            self._show_message(self.message)
            return
        self._show_message(self.message)
        region = self.view.visible_region(cw, ch, *size)
        best = pyramid.best_for(self.view.zoom)
        level = best if detail else pyramid.levels[0]
        # The quick pass samples the nearest pixel (a few ms); the detail pass filters properly.
        resample = Image.BILINEAR if detail and self.view.zoom <= 2 * best[0] else Image.NEAREST
        key = (id(level[1]) if level else None, resample, region, round(self.view.zoom, 6), cw, ch)
        if key == self._rendered_key or (not detail and self._rendered_key is not None
                                         and self._rendered_key[2:] == key[2:]):
            return
        self._rendered_key = key
        if region is None or level is None:
            self.delete("photo")
            self._photo_item = None
            return
        if not detail and self._detail_job is None:
            self._detail_job = self.after(1, self._render_detail)  # after the quick paint shows
        scale, source = level
        x0, y0, x1, y1 = region
        sx0, sy0, sx1, sy1 = self.view.to_screen(x0, y0) + self.view.to_screen(x1, y1)
        out_w, out_h = max(1, round(sx1 - sx0)), max(1, round(sy1 - sy0))
        crop = source.crop((x0 * scale, y0 * scale, x1 * scale, y1 * scale))
        shown = crop.resize((out_w, out_h), resample, reducing_gap=None if resample == Image.NEAREST else 2.0)
        if self._photo_ref is not None and (self._photo_ref.width(), self._photo_ref.height()) == shown.size:
            self._photo_ref.paste(shown)  # reusing the Tk image is much cheaper than a new one
        else:
            self._photo_ref = ImageTk.PhotoImage(shown, master=self)
            if self._photo_item is not None:
                self.itemconfigure(self._photo_item, image=self._photo_ref)
        if self._photo_item is None:
            self._photo_item = self.create_image(sx0, sy0, anchor="nw", image=self._photo_ref, tags=("photo",))
            self.tag_lower("photo")
        else:
            self.coords(self._photo_item, sx0, sy0)

    def showing_detail(self) -> bool:
        """Whether the photo on screen comes from the sharpest level this zoom can use."""
        best = self.pyramid.best_for(self.view.zoom) if self.pyramid else None
        return (best is not None and self._rendered_key is not None and self._rendered_key[0] == id(best[1])
                and self._detail_job is None)

    def _render_detail(self) -> None:
        self._detail_job = None
        self._render_photo(detail=True)

    def _show_message(self, text: str | None) -> None:
        """A problem with the photo or its file, on a solid backing: readable over any smear."""
        self.delete("message")
        if text:
            cw, ch = self._size()
            item = self.create_text(cw / 2, ch / 2, text=text, fill="#ffd0d0", width=cw * 0.8,
                                    font=("TkDefaultFont", 12), tags=("message",))
            x1, y1, x2, y2 = self.bbox(item)
            backing = self.create_rectangle(x1 - 12, y1 - 8, x2 + 12, y2 + 8, fill="#2a1414", outline="#c04040",
                                            tags=("message",))
            self.tag_lower(backing, item)

    def _style(self, cell: Cell, proposal: bool) -> tuple:
        selected = cell.id == self.controller.selected
        tax = self.controller.taxonomy
        color = tax.get(cell.label).color if cell.label and cell.label in tax else "#ffffff"
        if proposal:
            color = "#ffe14d"
        text = ""
        if self.show_label_text:
            text = tax.display_name(cell.label) if cell.label in tax or cell.label is None else cell.label
            if proposal:
                text = "proposal" if not cell.label else f"proposal: {text}"
            elif cell.label is None:
                text = "unlabeled"
        return (color, proposal, selected, text, self.view.zoom, self.view.origin_x, self.view.origin_y)

    def _sync_cells(self) -> None:
        """Create, move, restyle or delete only the cell items whose state changed."""
        wanted: dict[str, tuple[Cell, bool]] = {c.id: (c, False) for c in self.controller.cells() if not c.rejected}
        for cell in self.controller.open_proposals():
            wanted.setdefault(cell.id, (cell, True))
        for cell_id in list(self._drawn):
            if cell_id not in wanted:
                self.delete(f"cell:{cell_id}")
                del self._drawn[cell_id]
        for cell_id, (cell, proposal) in wanted.items():
            box = self.screen_box(cell.box)
            style = self._style(cell, proposal)
            drawn = self._drawn.get(cell_id)
            if drawn is not None and drawn.box == box and drawn.style == style:
                continue
            self._draw_cell(cell, proposal, box, style, fresh=drawn is None or drawn.style[:4] != style[:4])
            self._drawn[cell_id] = _Drawn(box, style)
        self._draw_handles()
        self._draw_others()
        self._draw_pointed()

    def _draw_pointed(self) -> None:
        """The place another view sent the user to, when no cell of theirs is there to select
        (a lead opening a gallery crop sees the experts' cell marked, not an unmarked blob)."""
        self.delete("pointed")
        if self.pointed is not None and self.controller.selected is None:
            x1, y1, x2, y2 = self.screen_box(self.pointed)
            self.create_rectangle(x1 - 3, y1 - 3, x2 + 3, y2 + 3, outline="#ff40ff", width=2, dash=(2, 3),
                                  tags=("pointed",))

    def _draw_cell(self, cell: Cell, proposal: bool, box, style, fresh: bool) -> None:
        tag = f"cell:{cell.id}"
        color, _, selected, text = style[:4]
        x1, y1, x2, y2 = box
        if fresh:
            self.delete(tag)
            width = 3 if selected else 2
            self.create_rectangle(x1, y1, x2, y2, outline=color, width=width,
                                  dash=(6, 4) if proposal else (), tags=("cell", tag, f"{tag}:rect"))
            if text:  # a dark copy underneath keeps the label readable on any stain
                self.create_text(x1 + 4, y1 + 3, anchor="nw", text=text, fill="#000000",
                                 font=("TkDefaultFont", 10, "bold"), tags=("cell", tag, f"{tag}:shadow"))
                self.create_text(x1 + 3, y1 + 2, anchor="nw", text=text, fill=color,
                                 font=("TkDefaultFont", 10, "bold"), tags=("cell", tag, f"{tag}:text"))
        else:
            self.coords(f"{tag}:rect", x1, y1, x2, y2)
            self.coords(f"{tag}:shadow", x1 + 4, y1 + 3)
            self.coords(f"{tag}:text", x1 + 3, y1 + 2)

    def _draw_handles(self) -> None:
        self.delete("handle")
        found = self.controller.find(self.controller.selected) if self.controller.selected else None
        if not found:
            return
        for hx, hy in geometry.handle_points(found[0].box).values():
            sx, sy = self.view.to_screen(hx, hy)
            self.create_rectangle(sx - HANDLE_PX, sy - HANDLE_PX, sx + HANDLE_PX, sy + HANDLE_PX,
                                  fill="#ffffff", outline="#000000", tags=("handle",))

    def _draw_others(self) -> None:
        """Other experts' cells, only when blind mode is off (issue 3, item 9)."""
        self.delete("other")
        if not self.show_others:
            return
        tax = self.controller.taxonomy
        for author, ann in self.controller.other.items():
            for cell in ann.cells:
                if cell.rejected:
                    continue
                x1, y1, x2, y2 = self.screen_box(cell.box)
                self.create_rectangle(x1, y1, x2, y2, outline="#c0c0ff", dash=(2, 3), tags=("other",))
                name = tax.display_name(cell.label) if cell.label in tax or cell.label is None else cell.label
                self.create_text(x1 + 3, y2 - 2, anchor="sw", text=f"{author}: {name}", fill="#c0c0ff",
                                 font=("TkDefaultFont", 9), tags=("other",))

    # -- mouse ----------------------------------------------------------------------------
    def _press(self, event) -> None:
        self.focus_set()
        if self._space_down:
            self._pan_start(event)
            return
        if not self.controller.editable():
            return
        ix, iy = self.to_image(event.x, event.y)
        tolerance = PICK_PX / self.view.zoom
        selected = self.controller.find(self.controller.selected) if self.controller.selected else None
        if selected is not None:
            handle = geometry.handle_at(selected[0].box, ix, iy, tolerance)
            if handle is not None:
                self.controller.begin_edit()
                self._drag = {"mode": "resize", "id": selected[0].id, "origin": selected[0].box, "handle": handle}
                return
        cell_id = self.controller.select_at(ix, iy)
        if cell_id is not None:
            self.controller.begin_edit()
            self._drag = {"mode": "move", "id": cell_id, "origin": self.controller.find(cell_id)[0].box,
                          "x": ix, "y": iy}
        else:
            self._drag = {"mode": "draw", "x": ix, "y": iy}
            self.create_rectangle(event.x, event.y, event.x, event.y, outline="#ffffff", dash=(3, 3),
                                  tags=("rubber",))
        self.refresh()

    def _motion(self, event) -> None:
        drag = self._drag
        if drag is None:
            return
        if drag["mode"] == "pan":
            self._pan_motion(event)
            return
        ix, iy = self.to_image(event.x, event.y)
        if drag["mode"] == "move":
            self.controller.drag_move(drag["id"], drag["origin"], ix - drag["x"], iy - drag["y"])
        elif drag["mode"] == "resize":
            self.controller.drag_resize(drag["id"], drag["origin"], drag["handle"], ix, iy)
        elif drag["mode"] == "draw":
            sx, sy = self.view.to_screen(drag["x"], drag["y"])
            self.coords("rubber", sx, sy, event.x, event.y)

    def _release(self, event) -> None:
        drag, self._drag = self._drag, None
        if drag is None:
            return
        if drag["mode"] in ("move", "resize"):
            self.controller.end_edit()
        elif drag["mode"] == "draw":
            self.delete("rubber")
            ix, iy = self.to_image(event.x, event.y)
            self.controller.draw_box(drag["x"], drag["y"], ix, iy)
        self.refresh()

    def _place(self, event) -> str:
        self.focus_set()
        self.controller.place_box(*self.to_image(event.x, event.y))
        return "break"

    def pointer_in_image(self) -> tuple[float, float]:
        x = self.winfo_pointerx() - self.winfo_rootx()
        y = self.winfo_pointery() - self.winfo_rooty()
        cw, ch = self._size()
        if not (0 <= x < cw and 0 <= y < ch):
            x, y = cw / 2, ch / 2
        return self.to_image(x, y)
