"""Side panels of the labeling window: label tree, photo list, acquisition, magnifier."""
from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable

from PIL import Image, ImageTk

from ..app.labeling import LabelingController
from ..app.photo_cache import Pyramid
from ..core.annotation import ACQUISITION_FIELDS, Acquisition, AnnotationError

STATUS_FILTERS = ("all", "not started", "in progress", "done", "has unlabeled")


class LabelPanel(ttk.Frame):
    """The taxonomy as a tree with this photo's counts; a click labels the selected cell."""

    def __init__(self, master: tk.Misc, controller: LabelingController):
        super().__init__(master)
        self.controller = controller
        ttk.Label(self, text="Labels", style="Heading.TLabel").pack(anchor="w")
        self.tree = ttk.Treeview(self, columns=("key", "count"), height=14, selectmode="browse")
        self.tree.heading("#0", text="Class")
        self.tree.heading("key", text="Key")
        self.tree.heading("count", text="Here")
        self.tree.column("#0", width=200)
        self.tree.column("key", width=40, anchor="center")
        self.tree.column("count", width=45, anchor="e")
        self.tree.pack(fill="both", expand=True)
        tax = controller.taxonomy
        for label in tax:
            key = label.hotkey or ""
            if label.parent and key:
                key = f"{tax.get(label.parent).hotkey}{key}"
            self.tree.insert(label.parent or "", "end", iid=label.path, text=label.name,
                             values=(key, ""), open=True)
        self.tree.bind("<<TreeviewSelect>>", self._picked)

    def _picked(self, _event) -> None:
        chosen = self.tree.selection()
        if chosen and self.controller.selected:
            self.controller.label_selected(chosen[0])
        if chosen:
            self.tree.selection_remove(chosen)

    def refresh(self) -> None:
        counts = self.controller.label_counts()
        for label in self.controller.taxonomy:
            self.tree.set(label.path, "count", counts.get(label.path, "") or "")


def photo_label(image: str) -> str:
    """The file name first, its folder after: a narrow column still tells the photos apart."""
    folder, _, name = image.rpartition("/")
    return f"{name}  ({folder})" if folder else name


class PhotoList(ttk.Frame):
    """Every photo with this expert's status; filled in small batches so opening stays instant."""

    def __init__(self, master: tk.Misc, controller: LabelingController, on_open: Callable[[str], None]):
        super().__init__(master)
        self.controller = controller
        self.on_open = on_open
        top = ttk.Frame(self)
        top.pack(fill="x")
        ttk.Label(top, text="Photos", style="Heading.TLabel").pack(side="left")
        self.filter = tk.StringVar(value="all")
        box = ttk.Combobox(top, textvariable=self.filter, values=STATUS_FILTERS, state="readonly", width=13)
        box.pack(side="right")
        box.bind("<<ComboboxSelected>>", lambda e: self.rebuild())
        self.tree = ttk.Treeview(self, columns=("status", "cells"), height=10, selectmode="browse")
        self.tree.heading("#0", text="Photo")
        self.tree.heading("status", text="Status")
        self.tree.heading("cells", text="Cells")
        self.tree.column("#0", width=160)
        self.tree.column("status", width=90)
        self.tree.column("cells", width=40, anchor="e")
        self.tree.pack(fill="both", expand=True)
        self.tree.bind("<<TreeviewSelect>>", self._picked)
        self._pending: list[str] = []
        self._job: str | None = None
        self._syncing = False

    def rebuild(self) -> None:
        self.tree.delete(*self.tree.get_children())
        self._pending = list(self.controller.images)
        if self._job is None:
            self._job = self.after_idle(self._fill)

    def _fill(self) -> None:
        self._job = None
        batch, self._pending = self._pending[:40], self._pending[40:]
        wanted = self.filter.get()
        for image in batch:
            status = self.controller.photo_status(image)
            if wanted == "has unlabeled" and not status.unlabeled:
                continue
            if wanted not in ("all", "has unlabeled") and status.state != wanted:
                continue
            self.tree.insert("", "end", iid=image, text=photo_label(image), values=(status.state, status.cells or ""))
        if self._pending:
            self._job = self.after(1, self._fill)
        else:
            self.show_current()

    def update_current(self) -> None:
        if self.controller.image:
            self.update_row(self.controller.image)

    def update_row(self, image: str) -> None:
        if self.tree.exists(image):
            status = self.controller.photo_status(image)
            self.tree.item(image, values=(status.state, status.cells or ""))

    def show_current(self) -> None:
        image = self.controller.image
        if image and self.tree.exists(image) and self.tree.selection() != (image,):
            self._syncing = True
            self.tree.selection_set(image)
            self.tree.see(image)
            self.after_idle(lambda: setattr(self, "_syncing", False))

    def _picked(self, _event) -> None:
        chosen = self.tree.selection()
        if chosen and not self._syncing and chosen[0] != self.controller.image:
            self.on_open(chosen[0])

    def destroy(self) -> None:
        if self._job is not None:
            self.after_cancel(self._job)
        super().destroy()


class AcquisitionPanel(ttk.LabelFrame):
    """Smear, stain, microscope, magnification, camera, diagnosis of this photo."""

    def __init__(self, master: tk.Misc, controller: LabelingController, report: Callable[[str], None]):
        super().__init__(master, text="Acquisition")
        self.controller = controller
        self.report = report
        self.vars: dict[str, tk.StringVar] = {}
        for row, name in enumerate(ACQUISITION_FIELDS):
            ttk.Label(self, text=name.capitalize()).grid(row=row, column=0, sticky="w")
            var = self.vars[name] = tk.StringVar()
            entry = ttk.Entry(self, textvariable=var, width=18)
            entry.grid(row=row, column=1, sticky="ew")
            entry.bind("<Return>", lambda e: self.apply(False))
        buttons = ttk.Frame(self)
        buttons.grid(row=len(ACQUISITION_FIELDS), column=0, columnspan=2, sticky="ew")
        ttk.Button(buttons, text="Apply", command=lambda: self.apply(False)).pack(side="left")
        ttk.Button(buttons, text="Apply to folder", command=lambda: self.apply(True)).pack(side="left")
        self.columnconfigure(1, weight=1)

    def _saved_text(self) -> dict[str, str]:
        """The photo's recorded values as the fields show them."""
        ann = self.controller.annotation
        values = ann.acquisition.to_dict() if ann else {}
        return {name: "" if values.get(name) is None else str(values[name]) for name in self.vars}

    def refresh(self) -> None:
        for name, text in self._saved_text().items():
            self.vars[name].set(text)

    def apply_if_typed(self) -> None:
        """Leaving the photo: values typed without Apply are kept, like every other edit."""
        if self.controller.annotation is not None and any(
                self.vars[name].get().strip() != text for name, text in self._saved_text().items()):
            self.apply(False)

    def apply(self, whole_folder: bool) -> None:
        ann = self.controller.annotation
        if ann is None:
            return
        data = {**ann.acquisition.extra, **{k: (v.get().strip() or None) for k, v in self.vars.items()}}
        try:
            acquisition = Acquisition.from_dict(data)
        except AnnotationError as exc:
            self.report(f"Acquisition not saved: {exc.problem}")
            return
        count = self.controller.set_acquisition(acquisition, whole_folder=whole_folder)
        self.report(f"Acquisition saved for {count} photo{'s' if count != 1 else ''}")


class Magnifier(ttk.Frame):
    """The selected cell at full resolution, whatever the zoom of the main canvas."""

    SIDE = 220

    def __init__(self, master: tk.Misc, controller: LabelingController):
        super().__init__(master)
        self.controller = controller
        ttk.Label(self, text="Selected cell", style="Heading.TLabel").pack(anchor="w")
        self.canvas = tk.Canvas(self, width=self.SIDE, height=self.SIDE, background="#202020",
                                highlightthickness=0)
        self.canvas.pack()
        self._ref: ImageTk.PhotoImage | None = None
        self._key: tuple | None = None

    def refresh(self, pyramid: Pyramid | None) -> None:
        found = self.controller.find(self.controller.selected) if self.controller.selected else None
        if found is None or pyramid is None or not pyramid.levels:
            if self._key is not None:
                self.canvas.delete("all")
                self._key = None
            return
        box = found[0].box
        scale, source = pyramid.levels[-1]
        key = (box, id(source))
        if key == self._key:
            return
        self._key = key
        side = max(box.width, box.height)
        cx, cy = box.center
        region = ((cx - side / 2) * scale, (cy - side / 2) * scale, (cx + side / 2) * scale, (cy + side / 2) * scale)
        crop = source.crop(tuple(round(v) for v in region)).resize((self.SIDE, self.SIDE), Image.BILINEAR)
        self._ref = ImageTk.PhotoImage(crop, master=self)
        self.canvas.delete("all")
        self.canvas.create_image(0, 0, anchor="nw", image=self._ref)
