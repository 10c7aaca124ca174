"""The labeling window: canvas in the middle, photo list left, labels and details right.

All user actions are commands in one registry (menus, keys and the shortcuts table come from
it). Work off the Tk thread — decoding, saving — reports through queues drained every
``POLL_MS`` by :meth:`MainWindow._poll`; callback errors go to :meth:`MainWindow.report_error`.
"""
from __future__ import annotations

import gc
import logging
import tkinter as tk
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from tkinter import messagebox, ttk
from typing import Callable, Sequence

from ..app.commands import Command, CommandRegistry
from ..app.labeling import LabelingController
from ..app.photo_cache import PhotoCache
from ..app.settings import Settings
from ..core.annotation import Box
from ..core.detection import default_model
from ..core.jobs import Finished, ItemDone, Job, PoolRunner, Runner
from ..core.project import DETECTOR
from ..core.proposals import detect_one, detection_tasks, save_proposals
from ..errors import FileProblem
from .canvas import PhotoCanvas
from .jobs_panel import JobsPanel
from .panels import AcquisitionPanel, LabelPanel, Magnifier, PhotoList

POLL_MS = 50
GC_YOUNG_TICKS = 20  # young objects collected every second,
GC_FULL_TICKS = 600  # everything every 30 s (a few ms, on the Tk thread)
PREFETCH = 2  # photos decoded ahead when moving forward
log = logging.getLogger(__name__)


class MainWindow:
    def __init__(self, root: tk.Tk | tk.Toplevel, controller: LabelingController, settings: Settings,
                 *, on_open_project: Callable[[Path | None], None] | None = None,
                 on_switch_expert: Callable[[], None] | None = None):
        self.root = root
        self.controller = controller
        self.settings = settings
        self.on_open_project = on_open_project
        self.on_switch_expert = on_switch_expert
        self.errors: list[str] = []
        #: How background jobs run; tests swap in a synchronous runner.
        self.job_runner: Callable[[int], Runner] = lambda n: (
            PoolRunner(processes=True, start_method="spawn") if n > 1 else PoolRunner(workers=1, processes=False))
        self.agreement_view = None  # the Tools → Agreement… window, once opened
        self.dedup_review = None  # the Tools → Duplicate cells… window, once opened
        self.nucleus_panel = None  # the Easy-GT panel (issue 6), once opened
        self._settings_saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="settings")
        self.cache = PhotoCache(max_photos=2 + PREFETCH, max_pixels=controller.project.max_pixels)
        self.registry = CommandRegistry(settings.key_bindings)
        self._chord_job: str | None = None
        self._poll_job: str | None = None
        self._status_text = tk.StringVar(value="")
        self._note = tk.StringVar(value="")
        self._photo_note = ""  # the note that names the shown photo's problem, cleared with it
        root.report_callback_exception = self._callback_exception
        self._build()
        self._register_commands()
        self._build_menus()
        self._bind_keys()
        controller.listeners.append(self._changed)
        root.protocol("WM_DELETE_WINDOW", self.close)
        # Garbage is collected on the Tk thread only: a collection that runs in a worker
        # thread can free Tk objects there, and Tcl aborts the process when that happens.
        self._gc_was_enabled = gc.isenabled()
        gc.disable()
        self._ticks = 0
        self._poll_job = root.after(POLL_MS, self._poll)

    # -- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        style = ttk.Style(self.root)
        style.configure("Heading.TLabel", font=("TkDefaultFont", 10, "bold"))
        outer = ttk.Panedwindow(self.root, orient="horizontal")
        outer.pack(fill="both", expand=True)
        left = ttk.Frame(outer, padding=4)
        self.photo_list = PhotoList(left, self.controller, self.open_image)
        self.photo_list.pack(fill="both", expand=True)
        nav = ttk.Frame(left)
        nav.pack(fill="x")
        ttk.Button(nav, text="◀ Previous", command=lambda: self.run("photo.previous")).pack(side="left")
        ttk.Button(nav, text="Next ▶", command=lambda: self.run("photo.next")).pack(side="left")
        ttk.Button(nav, text="Done ✓", command=lambda: self.run("photo.done")).pack(side="right")
        center = ttk.Frame(outer)
        self.canvas = PhotoCanvas(center, self.controller, width=1000, height=700)
        self.canvas.pack(fill="both", expand=True)
        self.canvas.show_label_text = self.settings.show_label_text
        self.canvas.show_others = not self.settings.blind
        self.canvas.on_view_change = self._remember_view
        right = ttk.Frame(outer, padding=4)
        self.labels = LabelPanel(right, self.controller)
        self.labels.pack(fill="both", expand=True)
        self.magnifier = Magnifier(right, self.controller)
        self.magnifier.pack(fill="x", pady=4)
        self.acquisition = AcquisitionPanel(right, self.controller, self.note)
        self.acquisition.pack(fill="x")
        self.jobs = JobsPanel(right)
        self.jobs.pack(fill="x", pady=(4, 0))
        outer.add(left, weight=0)
        outer.add(center, weight=1)
        outer.add(right, weight=0)
        bar = ttk.Frame(self.root, padding=(6, 2))
        bar.pack(fill="x", side="bottom")
        ttk.Label(bar, textvariable=self._status_text).pack(side="left")
        ttk.Label(bar, textvariable=self._note, foreground="#a03030").pack(side="right")

    def note(self, text: str) -> None:
        """A short message in the status bar (errors stay until the next message)."""
        self._note.set(text)

    # -- commands -------------------------------------------------------------------------
    def run(self, command_id: str) -> None:
        self.registry.run(command_id)

    def _register_commands(self) -> None:
        c, r = self.controller, self.registry
        has_cell = lambda: c.selected is not None and c.editable()  # noqa: E731
        add = lambda *a, **k: r.add(Command(*a, **k))  # noqa: E731
        add("photo.next", "Next photo", lambda: self._go(c.next_photo), "<Next>", menu="Go")
        add("photo.previous", "Previous photo", lambda: self._go(c.previous_photo), "<Prior>", menu="Go")
        add("photo.next_unfinished", "Next photo with unlabeled cells", lambda: self._go(c.next_unfinished_photo),
            "<Key-u>", menu="Go")
        add("photo.done", "Mark photo done / not done", self._toggle_done, "<Control-d>", c.editable, menu="Go")
        add("edit.undo", "Undo", c.undo, "<Control-z>", c.can_undo, menu="Edit")
        add("edit.redo", "Redo", c.redo, "<Control-Shift-Z>", c.can_redo, menu="Edit")
        add("edit.redo_y", "Redo (alternative)", c.redo, "<Control-y>", c.can_redo)
        add("cell.delete", "Delete cell (reject a proposal)", c.delete_selected, "<Delete>", has_cell, menu="Edit")
        add("cell.delete_backspace", "Delete cell (alternative)", c.delete_selected, "<BackSpace>", has_cell)
        add("cell.accept", "Accept proposal as it is", c.accept_selected, "<Key-a>", has_cell, menu="Edit")
        add("cell.reject", "Reject proposal", c.reject_selected, "<Key-x>", has_cell, menu="Edit")
        add("cell.place", "Place a default-size box at the pointer",
            lambda: c.place_box(*self.canvas.pointer_in_image()), "<Key-p>", c.editable, menu="Edit")
        add("cell.next", "Next cell", lambda: self._select_and_show(True), "<Tab>")
        add("cell.previous", "Previous cell", lambda: self._select_and_show(False), "<Shift-Tab>")
        for key, (dx, dy) in {"Left": (-1, 0), "Right": (1, 0), "Up": (0, -1), "Down": (0, 1)}.items():
            add(f"cell.nudge_{key.lower()}", f"Nudge cell {key.lower()} 1 px", lambda d=(dx, dy): c.nudge(*d),
                f"<Key-{key}>", has_cell)
            add(f"cell.nudge_{key.lower()}_10", f"Nudge cell {key.lower()} 10 px",
                lambda d=(dx, dy): c.nudge(10 * d[0], 10 * d[1]), f"<Shift-{key}>", has_cell)
        add("label.commit", "Keep the class without a sub-type", self._commit_chord, "<Return>")
        for digit in "0123456789":
            add(f"label.key_{digit}", f"Label key {digit}", lambda d=digit: self._label_key(d), f"<Key-{digit}>")
        add("view.fit", "Fit photo", self.canvas.fit, "<Key-f>", menu="View")
        add("view.actual", "Actual pixels (100 %)", lambda: self.canvas.zoom_to(1.0), "<Key-z>", menu="View")
        add("view.zoom_in", "Zoom in", lambda: self.canvas.zoom_to(self.canvas.view.zoom * 1.25), "<Key-plus>",
            menu="View")
        add("view.zoom_in_eq", "Zoom in (alternative)", lambda: self.canvas.zoom_to(self.canvas.view.zoom * 1.25),
            "<Key-equal>")
        add("view.zoom_out", "Zoom out", lambda: self.canvas.zoom_to(self.canvas.view.zoom * 0.8), "<Key-minus>",
            menu="View")
        add("view.labels", "Show label text on boxes", self._toggle_label_text, "<Key-t>", menu="View",
            checked=lambda: self.canvas.show_label_text)
        add("view.blind", "Blind mode (hide other experts)", self._toggle_blind, None, menu="View",
            checked=lambda: self.settings.blind)
        add("view.keep_zoom", "Keep the zoom when changing photo", self._toggle_keep_zoom, None, menu="View",
            checked=lambda: self.settings.keep_zoom_between_photos)
        add("edit.advance", "Move to the next unlabeled cell after labeling", self._toggle_advance, None,
            menu="Edit", checked=lambda: self.controller.advance_after_label)
        idle = lambda: not self.jobs.busy  # noqa: E731
        add("detect.photo", "Detect cells on this photo", lambda: self.detect([c.image]), "<Control-e>",
            lambda: idle() and c.image is not None, menu="Tools")
        add("detect.project", "Detect cells on every photo without proposals",
            lambda: self.detect([i for i in c.images if not c.project.has_annotation(DETECTOR, i)]), None, idle,
            menu="Tools")
        add("jobs.cancel", "Cancel the background job", self.jobs.cancel, None, lambda: self.jobs.busy, menu="Tools")
        add("agreement.open", "Agreement…", self.open_agreement, None, menu="Tools")
        add("dedup.review", "Duplicate cells…", self.open_dedup_review, None, menu="Tools")
        add("cell.nucleus", "Nucleus and cell mask…", self.open_nucleus_panel, "<Key-n>", has_cell, menu="Tools")
        add("file.open", "Open project…", self._open_project_dialog, "<Control-o>", menu="File")
        add("file.switch_expert", "Switch expert…", self._switch_expert, None, menu="File")
        add("file.save", "Save now", self._save_now, "<Control-s>", menu="File")
        add("file.quit", "Quit", self.close, "<Control-q>", menu="File")
        add("help.shortcuts", "Keyboard shortcuts", self.show_shortcuts, "<F1>", menu="Help")

    def _build_menus(self) -> None:
        bar = tk.Menu(self.root)
        self._menu_vars: dict[str, tk.BooleanVar] = {}
        for name in ("File", "Edit", "Go", "View", "Tools", "Help"):
            menu = tk.Menu(bar, tearoff=False)
            if name == "File" and self.settings.recent_projects:
                recent = tk.Menu(menu, tearoff=False)
                for path in self.settings.recent_projects:
                    recent.add_command(label=path, command=lambda p=path: self._open_project(Path(p)))
                menu.add_cascade(label="Recent projects", menu=recent)
            commands = self.registry.in_menu(name)
            for command in commands:
                key = self.registry.key_for(command.id)
                accel = key.strip("<>").replace("Key-", "").replace("Control-", "Ctrl+") if key else ""
                run = lambda cid=command.id: self.run(cid)  # noqa: E731
                if command.checked is not None:
                    var = self._menu_vars[command.id] = tk.BooleanVar(value=command.checked())
                    menu.add_checkbutton(label=command.label, accelerator=accel, variable=var, command=run)
                else:
                    menu.add_command(label=command.label, accelerator=accel, command=run)
            menu.configure(postcommand=lambda m=menu, cs=commands: self._refresh_menu(m, cs))
            bar.add_cascade(label=name, menu=menu)
        self.root.configure(menu=bar)

    def _refresh_menu(self, menu: tk.Menu, commands: list[Command]) -> None:
        """Grey out what cannot run now and tick the settings that are on, as the menu opens."""
        for command in commands:
            index = menu.index(command.label)
            menu.entryconfigure(index, state="normal" if command.enabled() else "disabled")
            if command.id in self._menu_vars:
                self._menu_vars[command.id].set(command.checked())

    def _bind_keys(self) -> None:
        """Keys are bound on the canvas, so typing in the acquisition fields labels nothing.

        A rebinding Tk cannot read (settings.json edited by hand) is skipped and named, never
        a window that does not open. X11 sends Shift+Tab as ISO_Left_Tab: bound too, or Tk's own
        focus traversal took the key (focus on the Done button; Space then marked photos done).
        """
        bad = []
        for sequence, command_id in self.registry.bindings().items():
            sequences = [sequence, "<ISO_Left_Tab>"] if sequence == "<Shift-Tab>" else [sequence]
            for each in sequences:
                try:
                    self.canvas.bind(each, lambda e, cid=command_id: self._key(cid))
                except (tk.TclError, TypeError) as exc:
                    bad.append(f"{command_id} = {sequence!r} ({exc})")
        if bad:
            self.note("settings.json key_bindings skipped: " + "; ".join(bad))
        self.canvas.focus_set()

    def _key(self, command_id: str) -> str:
        self.run(command_id)
        return "break"  # Tab must not move the focus away, arrows must not scroll

    # -- actions --------------------------------------------------------------------------
    def _go(self, move: Callable[[], bool]) -> None:
        before = self.controller.index
        move()
        if self.controller.index == before and self.controller.problem is None:
            self.note("No further photo that way")

    def open_image(self, image: str) -> None:
        self.controller.open_image(image)

    def show_cell(self, image: str, cell_ids: Sequence[str], box: Box | None) -> None:
        """Bring up ``image`` with the cell selected and centred (from the agreement gallery or
        the duplicate review): the first of ``cell_ids`` this expert's file knows, else the cell
        under the box centre."""
        c = self.controller
        if image not in c.images:
            self.note(f"{image} is no longer in the project")
            return
        if c.image != image and not c.open_image(image):
            return
        found = next((cid for cid in cell_ids if c.find(cid) is not None), None)
        if found is not None:
            c.select(found)
        elif box is not None:
            c.select_at(*box.center)
        if box is not None:
            self.canvas.pointed = box  # marked while no cell of this expert is selected there
            self.canvas.center_on(box)
            self.canvas.refresh()
        self.root.lift()
        self.canvas.focus_set()

    def _select_and_show(self, forward: bool) -> None:
        self.controller.cycle(forward)
        found = self.controller.find(self.controller.selected) if self.controller.selected else None
        if found:
            x1, y1, x2, y2 = self.canvas.screen_box(found[0].box)
            w, h = self.canvas.winfo_width(), self.canvas.winfo_height()
            if x2 < 0 or y2 < 0 or x1 > w or y1 > h:
                self.canvas.center_on(found[0].box)

    def _label_key(self, digit: str) -> None:
        if self._chord_job is not None:
            self.root.after_cancel(self._chord_job)
            self._chord_job = None
        self.controller.label_key(digit)
        if self.controller.chord_parent is not None:
            self._chord_job = self.root.after(self.settings.chord_timeout_ms, self._commit_chord)

    def _commit_chord(self) -> None:
        if self._chord_job is not None:
            self.root.after_cancel(self._chord_job)
            self._chord_job = None
        self.controller.commit_chord()

    def open_agreement(self) -> None:
        """Tools → Agreement… (issue 7); imported on first use, as it pulls in matplotlib."""
        from .agreement_view import AgreementView
        if self.agreement_view is not None and self.agreement_view.exists():
            self.agreement_view.top.lift()
            return
        labeling = self.controller.project.has_annotations(self.controller.expert)
        if self.settings.blind and labeling and not messagebox.askyesno(
                "Blind mode is on", f"The agreement view shows the other experts' labels of every cell, "
                f"which blind mode hides while {self.controller.expert} labels. Open it anyway?",
                parent=self.root):
            return
        self.agreement_view = AgreementView.for_window(self, self._callback_exception)

    def open_dedup_review(self) -> None:
        """Tools → Duplicate cells… (issue 5, item 5)."""
        from .dedup_review import DedupReviewView
        if self.dedup_review is not None and self.dedup_review.exists():
            self.dedup_review.top.lift()
        else:
            self.dedup_review = DedupReviewView.for_window(self, self._callback_exception)

    def open_nucleus_panel(self) -> None:
        """Tools → Nucleus and cell mask… on the selected cell (issue 6)."""
        from .nucleus_panel import open_nucleus_panel
        if self.nucleus_panel is not None and self.nucleus_panel.exists():
            self.nucleus_panel.show_cell(self.controller.selected)
            self.nucleus_panel.top.lift()
        else:
            self.nucleus_panel = open_nucleus_panel(self)

    def _toggle_label_text(self) -> None:
        self.settings.show_label_text = self.canvas.show_label_text = not self.canvas.show_label_text
        self.canvas.refresh()

    def _toggle_blind(self) -> None:
        self.settings.blind = not self.settings.blind
        self.canvas.show_others = not self.settings.blind
        self.note("Blind mode on: other experts hidden" if self.settings.blind else
                  "Blind mode off: other experts' labels shown")
        self.canvas.refresh()

    def detect(self, images: list[str]) -> None:
        """Detector proposals for ``images`` in the background; files are written as they come."""
        if not images:
            self.note("Every photo has proposals already")
            return
        c = self.controller
        tasks = detection_tasks(c.project, default_model(), images)
        job = Job("Detect cells", detect_one, tasks, runner=self.job_runner(len(tasks)),
                  describe=lambda task: task[0])
        self.jobs.start(job, self._proposals_arrived, self._detection_finished)

    def _proposals_arrived(self, event: ItemDone) -> None:
        if event.outcome.error is not None:
            return
        image = event.outcome.item[0]
        c = self.controller
        try:
            save_proposals(c.project, image, event.outcome.value)
        except FileProblem as exc:
            self.note(str(exc))
            return
        c.forget_status(image)
        if image == c.image:
            c.reload_proposals()
        self.photo_list.update_row(image)

    def _detection_finished(self, event: Finished) -> None:
        self.note(f"Detection: {event.last_error}" if event.last_error else "")
        self._update_title()

    def _toggle_keep_zoom(self) -> None:
        self.settings.keep_zoom_between_photos = not self.settings.keep_zoom_between_photos
        self.note("Zoom kept between photos" if self.settings.keep_zoom_between_photos else
                  "Each photo opens fitted")

    def _toggle_done(self) -> None:
        c = self.controller
        c.toggle_done()
        left = c.photo_status(c.image).unlabeled if c.image and c.annotation and c.annotation.status.done else 0
        if left:  # allowed (a photo may hold cells nobody can name), but never unnoticed
            self.note(f"Marked done with {left} cell(s) not labeled yet (U finds such photos)")

    def _toggle_advance(self) -> None:
        self.settings.advance_after_label = self.controller.advance_after_label = \
            not self.controller.advance_after_label
        self.note("Labeling moves to the next unlabeled cell" if self.controller.advance_after_label else
                  "Labeling stays on the cell")

    def _save_now(self) -> None:
        error = self.controller.autosaver.flush()
        self.note(f"Save failed: {error}" if error else "Saved")
        self._update_title()

    def _open_project_dialog(self) -> None:
        from tkinter import filedialog
        folder = filedialog.askdirectory(parent=self.root, title="Open a raabin-labeler project")
        if folder:
            self._open_project(Path(folder))

    def _open_project(self, folder: Path) -> None:
        if self.on_open_project is not None:
            self.on_open_project(folder)

    def _switch_expert(self) -> None:
        if self.on_switch_expert is not None:
            self.on_switch_expert()

    def show_shortcuts(self) -> None:
        window = tk.Toplevel(self.root)
        window.title("Keyboard shortcuts")
        tree = ttk.Treeview(window, columns=("key",), height=24)
        tree.heading("#0", text="Command")
        tree.heading("key", text="Key")
        tree.column("#0", width=320)
        tree.column("key", width=160)
        for command in self.registry.commands.values():
            tree.insert("", "end", text=command.label, values=(self.registry.key_for(command.id) or "—",))
        tree.pack(fill="both", expand=True)
        ttk.Label(window, text="Label keys: a class digit, then a sub-type digit; Enter or a short pause keeps "
                               "the class only. Ctrl+click places a default-size box. Rebind keys under "
                               "\"key_bindings\" in settings.json.", wraplength=480).pack(padx=6, pady=6)
        self.shortcuts_window = window

    # -- reacting to the controller ---------------------------------------------------------
    def _changed(self, what: str) -> None:
        if what == "leaving":
            self.acquisition.apply_if_typed()
            return
        if what == "photo":
            self._show_photo()
            return
        self.canvas.refresh()
        if what == "drag":  # only the moved box changes while the mouse moves
            return
        self.labels.refresh()
        self.magnifier.refresh(self.canvas.pyramid)
        if what == "cells":
            self.photo_list.update_current()
        self._update_title()

    def _show_photo(self) -> None:
        c = self.controller
        image = c.image
        if image is None:
            return
        if self._note.get() == self._photo_note:  # the last photo's problem is not this one's
            self.note("")
        path = c.project.image_path(image)
        pyramid = self.cache.request(path)
        if pyramid.error is not None and c.photo_unreadable(pyramid.error):
            return  # shown again, as unreadable
        for ahead in c.images[c.index + 1:c.index + 1 + PREFETCH]:
            self.cache.request(c.project.image_path(ahead))
        self.canvas.message = None if c.problem is None else str(c.problem)
        keep = self.settings.keep_zoom_between_photos and self.canvas.pyramid is not None
        self.canvas._drawn.clear()
        self.canvas.delete("cell")
        self.canvas.pointed = None  # a new photo: the place pointed at was on the last one
        self.canvas.set_pyramid(pyramid, render=keep)
        if not keep:
            self.canvas.fit()
        self.labels.refresh()
        self.acquisition.refresh()
        self.magnifier.refresh(pyramid)
        self.photo_list.show_current()
        self.photo_list.update_current()
        self.settings.last_image[str(c.project.root.resolve())] = image
        self._save_settings_soon()
        self._update_title()
        if c.problem is not None:
            self.root.after_idle(self._offer_backup)

    def _save_settings_soon(self) -> None:
        """Keep the last photo and view on disk even if the process is killed (issue 3, item 8)."""
        snapshot = self.settings.as_dict()
        self._settings_saver.submit(self.settings.save, None, snapshot)

    def _offer_backup(self) -> None:
        problem = self.controller.problem
        if problem is None:
            return
        self.note(str(problem))
        self._photo_note = str(problem)
        if not isinstance(problem, FileProblem) or not str(problem.path).endswith(".json"):
            return
        from ..core.store import backup_path
        if not backup_path(problem.path).exists():
            return
        if messagebox.askyesno("Annotation file cannot be read",
                               f"{problem}\n\nOpen the backup of this file instead? The unreadable file is "
                               f"kept beside it.", parent=self.root):
            try:
                self.controller.restore_backup()
            except FileProblem as exc:
                self.note(f"The backup cannot be read either: {exc}")

    def _remember_view(self) -> None:
        v, key = self.canvas.view, str(self.controller.project.root.resolve())
        if self.canvas.fitted:
            self.settings.last_view.pop(key, None)
        else:
            self.settings.last_view[key] = [v.zoom, v.origin_x, v.origin_y]

    def _update_title(self) -> None:
        c = self.controller
        state = c.autosaver.state.text
        chord = f" · {c.taxonomy.get(c.chord_parent).name} … (sub-type key or Enter)" if c.chord_parent else ""
        position = f"{c.index + 1}/{len(c.images)}" if c.images else "no photos"
        done = " ✓ done" if c.annotation is not None and c.annotation.status.done else ""
        self.root.title(f"{c.image or ''} ({position}){done} — {c.project.name} — {c.expert} — {state}")
        self._status_text.set(f"{c.expert} · {c.progress_text()} · {state}{chord}")

    # -- the poll loop: decodes, saves --------------------------------------------------------
    def _poll(self) -> None:
        self._poll_job = None
        self._ticks += 1
        if self._ticks % GC_FULL_TICKS == 0:
            gc.collect()
        elif self._ticks % GC_YOUNG_TICKS == 0:
            gc.collect(1)
        try:
            before = self.controller.autosaver.state
            after = self.controller.autosaver.tick()
            if after != before:
                self._update_title()
                if after.failed:
                    self.note(after.text + " — retrying")
            self.jobs.poll()
            current = self.canvas.pyramid.path if self.canvas.pyramid else None
            for _ in range(8):  # bounded batch per tick
                try:
                    path = self.cache.ready.get_nowait()
                except Exception:
                    break
                if path == current:  # a decode for a photo the user left is simply kept cached
                    pyramid = self.canvas.pyramid
                    if pyramid.error is not None and self.controller.photo_unreadable(pyramid.error):
                        continue
                    self.canvas.set_pyramid(pyramid)
                    self.magnifier.refresh(pyramid)
        finally:
            if self.root.winfo_exists():
                self._poll_job = self.root.after(POLL_MS, self._poll)

    # -- errors and closing -----------------------------------------------------------------
    def _callback_exception(self, exc_type, exc, tb) -> None:
        text = "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("callback failed:\n%s", text)
        self.errors.append(text)
        self.note(f"Internal error: {exc} (your work is saved; see the log)")
        try:
            self.controller.autosaver.flush()
        except Exception:
            pass

    def close(self) -> None:
        # what is typed or adjusted but not applied is kept, as when the photo changes
        self.acquisition.apply_if_typed()
        if self.nucleus_panel is not None and self.nucleus_panel.exists():
            self.nucleus_panel.save_adjustments()
        error = self.controller.autosaver.flush()
        if error and not messagebox.askyesno(
                "Unsaved changes", f"Saving failed: {error}\n\nClose anyway and lose the last change?",
                parent=self.root):
            return
        self.controller.close()
        self._settings_saver.shutdown(wait=True)
        try:
            self.settings.save()
        except FileProblem:
            pass
        if self._poll_job is not None:
            self.root.after_cancel(self._poll_job)
            self._poll_job = None
        self.jobs.cancel()
        for view in (self.agreement_view, self.dedup_review):  # their workers and poll loops end too
            if view is not None and view.exists():
                view.close()
        if self.nucleus_panel is not None:
            self.nucleus_panel.close()
        self.cache.close()
        self.root.destroy()
        gc.collect()
        if self._gc_was_enabled:
            gc.enable()
