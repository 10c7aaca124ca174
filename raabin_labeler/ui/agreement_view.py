"""The agreement window (issue 7, items 4-5): two experts' Table 4 matrix, figures, gallery, adjudication.

Slow work runs in threads that never touch Tk: reading and pairing the experts' files, cutting
thumbnails, writing the automatic consensus, the double-labeled export. Each thread posts
messages on one queue that :meth:`AgreementView._poll` drains every ``POLL_MS`` in bounded
batches. A message from a task that is no longer current (other experts chosen, another matrix
cell clicked, the window closed) is dropped (STYLE.md: compute off the Tk thread, apply on it,
drop stale results). Inputs a task needs are captured on the Tk thread before it starts.
"""
from __future__ import annotations

import itertools
import queue
import sys
import threading
import tkinter as tk
from dataclasses import dataclass
from pathlib import Path
from tkinter import filedialog, ttk
from typing import TYPE_CHECKING, Any, Callable

from matplotlib.backends.backend_tkagg import FigureCanvasTkAgg
from matplotlib.figure import Figure
from PIL import ImageTk

from ..app.agreement import THUMBNAIL, AgreementController, default_experts
from ..core.agreement import LEVELS, CellPair, draw_heatmap, export_double_labeled
from ..core.consensus import SENT_BACK, AdjudicationSession
from ..core.project import Project
from ..errors import UserError
from .windows import is_open

if TYPE_CHECKING:
    from .main_window import MainWindow

POLL_MS = 50
THUMBS_PER_TICK = 6  # thumbnails turned into PhotoImages per poll tick: the window never stalls
MESSAGES_PER_TICK = 60
GALLERY_PAGE = 120  # thumbnails shown at once; "Show more" adds a page (a diagonal cell may hold thousands)
CROP_SIDE = 224  # px, the adjudication pane's crop
ANY = "(any)"
ORDER_NAMES = {"photo by photo": "photo", "same disagreement in a row": "disagreement"}
FILTERS = ("smear", "camera", "microscope", "folder")

ErrorHandler = Callable[[type, BaseException, Any], None]
Post = Callable[[str, Any], None]


@dataclass
class _Task:
    token: int
    cancel: threading.Event


class BackgroundTasks:
    """Named channels of one thread each; starting a channel's task makes its previous one stale.

    Workers call ``post(kind, payload)`` (may be called from another thread). A worker's return
    value arrives as kind "done"; a :class:`UserError` (a file problem the user can act on) as
    "failed" with its text; anything else as "crashed" with ``sys.exc_info()``.
    """

    def __init__(self) -> None:
        self.messages: queue.Queue[tuple[str, int, str, Any]] = queue.Queue()
        self._tasks: dict[str, _Task] = {}
        self._tokens = itertools.count(1)

    def start(self, channel: str, work: Callable[[Post, threading.Event], Any]) -> None:
        self.stop(channel)
        task = self._tasks[channel] = _Task(next(self._tokens), threading.Event())

        def post(kind: str, payload: Any = None) -> None:
            self.messages.put((channel, task.token, kind, payload))

        def run() -> None:
            try:
                post("done", work(post, task.cancel))
            except UserError as exc:
                post("failed", str(exc))
            except Exception:
                post("crashed", sys.exc_info())

        threading.Thread(target=run, name=f"agreement:{channel}", daemon=True).start()

    def stop(self, channel: str) -> None:
        task = self._tasks.pop(channel, None)
        if task is not None:
            task.cancel.set()

    def stop_all(self) -> None:
        for channel in list(self._tasks):
            self.stop(channel)

    def busy(self, channel: str) -> bool:
        return channel in self._tasks

    def current(self, channel: str) -> _Task | None:
        return self._tasks.get(channel)

    def next_current(self) -> tuple[str, str, Any] | None:
        """The next message of a current task, stale ones skipped; None when the queue is empty."""
        while True:
            try:
                channel, token, kind, payload = self.messages.get_nowait()
            except queue.Empty:
                return None
            task = self._tasks.get(channel)
            if task is None or task.token != token:
                continue
            if kind in ("done", "failed", "crashed"):
                del self._tasks[channel]
            return channel, kind, payload


def label_text(taxonomy, label: str | None, rejected: bool) -> str:
    if label is None:
        return "rejected (not a white cell)" if rejected else "not labeled"
    return taxonomy.display_name(label)


class AgreementView:
    """The Toplevel; the model is an :class:`AgreementController` rebuilt when the experts change."""

    def __init__(self, master: tk.Misc, project: Project, *, open_cell: Callable[[CellPair], None],
                 report_error: ErrorHandler, lead: str = "", chord_timeout_ms: int = 900):
        self.project = project
        self.open_cell = open_cell
        self.report_error = report_error
        self.chord_timeout_ms = chord_timeout_ms
        self.tasks = BackgroundTasks()
        self.ctl: AgreementController | None = None
        self._pending: AgreementController | None = None  # the experts being read
        self.loaded = False
        self.session: AdjudicationSession | None = None
        self.gallery_pairs: list[CellPair] = []
        self.gallery_buttons: list[ttk.Button] = []
        self._gallery_photos: dict[int, ImageTk.PhotoImage] = {}  # Tk drops an image nobody references
        self._crop_photo: ImageTk.PhotoImage | None = None
        self._chord: str | None = None
        self._chord_job: str | None = None
        self._heat_axes = None
        self.top = tk.Toplevel(master)
        self.top.title(f"Agreement — {project.name}")
        self.top.geometry("1350x900")
        self.top.protocol("WM_DELETE_WINDOW", self.close)
        first = default_experts(project)
        experts = sorted(first)
        self.expert_a = tk.StringVar(value=first[0] if first else "")
        self.expert_b = tk.StringVar(value=first[1] if len(first) > 1 else "")
        self.level = tk.StringVar(value="leaf")
        self.filters = {name: tk.StringVar(value=ANY) for name in FILTERS}
        self.lead = tk.StringVar(value=lead)
        self.queue_order = tk.StringVar(value=next(iter(ORDER_NAMES)))
        self.status = tk.StringVar(value="")
        self._build(experts)
        self._poll_job: str | None = self.top.after(POLL_MS, self._poll)
        self.top.bind("<FocusIn>", self._focused, add="+")
        self.reload()

    @classmethod
    def for_window(cls, window: "MainWindow", report_error: ErrorHandler) -> "AgreementView":
        return cls(window.root, window.controller.project,
                   open_cell=lambda pair: window.show_cell(
                       pair.image, [c.id for c in (pair.a, pair.b) if c is not None], pair.box),
                   report_error=report_error,
                   lead=window.controller.expert, chord_timeout_ms=window.settings.chord_timeout_ms)

    def exists(self) -> bool:
        return is_open(self.top)

    # -- layout ---------------------------------------------------------------------------
    def _build(self, experts: list[str]) -> None:
        bar = ttk.Frame(self.top, padding=4)
        bar.pack(fill="x")
        for text, var in (("Rows (A):", self.expert_a), ("Columns (B):", self.expert_b)):
            ttk.Label(bar, text=text).pack(side="left")
            box = ttk.Combobox(bar, textvariable=var, values=experts, state="readonly", width=14)
            box.pack(side="left", padx=(2, 8))
            box.bind("<<ComboboxSelected>>", lambda e: self.reload())
        for level in LEVELS:
            ttk.Radiobutton(bar, text=level, value=level, variable=self.level,
                            command=self._level_changed).pack(side="left")
        self.filter_boxes: dict[str, ttk.Combobox] = {}
        for name in FILTERS:
            ttk.Label(bar, text=f"{name}:").pack(side="left", padx=(8, 0))
            box = self.filter_boxes[name] = ttk.Combobox(bar, textvariable=self.filters[name], values=[ANY],
                                                         state="readonly", width=14)
            box.pack(side="left")
            box.bind("<<ComboboxSelected>>", lambda e: self._filter_changed())
        ttk.Button(bar, text="Reload", command=self.reload).pack(side="right")

        exports = ttk.Frame(self.top, padding=(4, 0))
        exports.pack(fill="x")
        ttk.Label(exports, text="Export:").pack(side="left")
        ttk.Button(exports, text="Matrix CSV…", command=self._ask_csv).pack(side="left")
        ttk.Button(exports, text="Heatmap PNG…", command=self._ask_png).pack(side="left")
        ttk.Button(exports, text="Double-labeled dataset…", command=self._ask_double_labeled).pack(side="left")
        self.cancel_export_button = ttk.Button(exports, text="Cancel export", state="disabled",
                                               command=self.cancel_export)
        self.cancel_export_button.pack(side="left", padx=(8, 0))

        status = ttk.Frame(self.top, padding=(6, 2))
        status.pack(fill="x", side="bottom")
        self.progress = ttk.Progressbar(status, mode="determinate", maximum=1, length=180)
        self.progress.pack(side="right")
        ttk.Label(status, textvariable=self.status).pack(side="left")

        panes = ttk.Panedwindow(self.top, orient="vertical")
        panes.pack(fill="both", expand=True)
        upper = ttk.Frame(panes)
        self.figure = Figure(figsize=(6.4, 5.2), dpi=100)
        self.canvas = FigureCanvasTkAgg(self.figure, master=upper)
        self.canvas.get_tk_widget().pack(side="left", fill="both", expand=True)
        # matplotlib prints and swallows callback errors under mainloop; send them to the window's handler
        self.canvas.callbacks.exception_handler = lambda exc: self.report_error(type(exc), exc, exc.__traceback__)
        self.canvas.mpl_connect("button_press_event", self._matrix_clicked)
        text = ttk.Frame(upper)
        text.pack(side="left", fill="both")
        self.figures_text = tk.Text(text, width=64, wrap="none", font="TkFixedFont", state="disabled")
        across = ttk.Scrollbar(text, orient="horizontal", command=self.figures_text.xview)
        self.figures_text.configure(xscrollcommand=across.set)
        across.pack(side="bottom", fill="x")
        self.figures_text.pack(side="top", fill="both", expand=True)
        lower = ttk.Notebook(panes)
        self.notebook = lower
        self.gallery_tab = self._build_gallery(lower)
        self.adjudication_tab = self._build_adjudication(lower)
        lower.add(self.gallery_tab, text="Gallery")
        lower.add(self.adjudication_tab, text="Adjudication")
        panes.add(upper, weight=3)
        panes.add(lower, weight=2)
        self._show_message("loading…")

    def _build_gallery(self, master: tk.Misc) -> ttk.Frame:
        tab = ttk.Frame(master, padding=4)
        head = ttk.Frame(tab)
        head.pack(fill="x")
        self.gallery_title = tk.StringVar(value="Click a matrix cell to see its crops.")
        ttk.Label(head, textvariable=self.gallery_title).pack(side="left")
        self.more_button = ttk.Button(head, text="Show more", command=self._gallery_more)
        self.gallery_canvas = tk.Canvas(tab, highlightthickness=0, height=2 * THUMBNAIL)
        scroll = ttk.Scrollbar(tab, orient="vertical", command=self.gallery_canvas.yview)
        self.gallery_canvas.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.gallery_canvas.pack(fill="both", expand=True)
        self.gallery_frame = ttk.Frame(self.gallery_canvas)
        self.gallery_canvas.create_window(0, 0, window=self.gallery_frame, anchor="nw")
        self.gallery_frame.bind("<Configure>", lambda e: self.gallery_canvas.configure(
            scrollregion=self.gallery_canvas.bbox("all")))
        for sequence, step in (("<Button-4>", -3), ("<Button-5>", 3)):
            self.gallery_canvas.bind(sequence, lambda e, s=step: self.gallery_canvas.yview_scroll(s, "units"))
        self.gallery_canvas.bind("<MouseWheel>", self._wheel)
        self._blank = tk.PhotoImage(master=self.top, width=THUMBNAIL, height=THUMBNAIL)
        return tab

    def _wheel(self, event) -> None:
        self.gallery_canvas.yview_scroll(-1 if event.delta > 0 else 1, "units")

    def _build_adjudication(self, master: tk.Misc) -> ttk.Frame:
        tab = ttk.Frame(master, padding=4)
        head = ttk.Frame(tab)
        head.pack(fill="x")
        ttk.Label(head, text="Lead:").pack(side="left")
        ttk.Entry(head, textvariable=self.lead, width=16).pack(side="left")
        ttk.Label(head, text="Order:").pack(side="left", padx=(8, 0))
        ttk.Combobox(head, textvariable=self.queue_order, values=list(ORDER_NAMES), state="readonly",
                     width=24).pack(side="left")
        self.start_button = ttk.Button(head, text="Start adjudication", command=self.start_adjudication)
        self.start_button.pack(side="left", padx=4)
        self.adjudication_progress = tk.StringVar(value="")
        ttk.Label(head, textvariable=self.adjudication_progress).pack(side="left", padx=8)
        ttk.Label(head, text="Keys: class digit, then sub-type digit or Enter · s send back · Ctrl+Z undo",
                  foreground="#555555").pack(side="right")
        body = ttk.Frame(tab)
        body.pack(fill="both", expand=True)
        columns = ("photo", "cell", "a", "b", "decision")
        self.queue_view = ttk.Treeview(body, columns=columns, show="headings", height=8, selectmode="browse")
        for column, text, width in zip(columns, ("Photo", "Cell", "A", "B", "Decision"), (160, 90, 150, 150, 150)):
            self.queue_view.heading(column, text=text)
            self.queue_view.column(column, width=width, stretch=column == "photo")
        self.queue_view.bind("<<TreeviewSelect>>", self._queue_selected)
        down = ttk.Scrollbar(body, orient="vertical", command=self.queue_view.yview)
        self.queue_view.configure(yscrollcommand=down.set)
        self.queue_view.pack(side="left", fill="both", expand=True)
        down.pack(side="left", fill="y")
        item = ttk.Frame(body, padding=(8, 0), takefocus=True)
        item.pack(side="left", fill="y")
        self._blank_crop = tk.PhotoImage(master=self.top, width=CROP_SIDE, height=CROP_SIDE)
        self.crop_label = ttk.Label(item, image=self._blank_crop)
        self.crop_label.grid(row=0, column=0, rowspan=2, sticky="n")
        self.item_text = tk.StringVar(value="")
        ttk.Label(item, textvariable=self.item_text, justify="left", wraplength=280, width=40).grid(
            row=0, column=1, sticky="nw", padx=8)
        buttons = ttk.Frame(item)
        buttons.grid(row=1, column=1, sticky="sw", padx=8)
        ttk.Button(buttons, text="Send back (s)", command=self.send_back).pack(fill="x")
        ttk.Button(buttons, text="Undo (Ctrl+Z)", command=self.undo).pack(fill="x")
        ttk.Button(buttons, text="Show in labeling window",
                   command=lambda: self.session and self.session.current
                   and self.open_cell(self.session.current.pair)).pack(fill="x")
        self.keys_widget = item
        # the pane and the queue take the label keys; typing in the lead's name labels nothing
        tag = self._keys_tag = f"adjudication-keys-{id(self)}"
        for widget in (item, self.queue_view, self.crop_label):
            widget.bindtags((tag, *widget.bindtags()))
            widget.bind("<Button-1>", lambda e: self.keys_widget.focus_set(), add=True)
        self.top.bind_class(tag, "<Key>", self._key)
        self.top.bind_class(tag, "<Return>", lambda e: self._commit_chord() or "break")
        self.top.bind_class(tag, "<Control-z>", lambda e: self.undo() or "break")
        return tab

    # -- loading ----------------------------------------------------------------------------
    def reload(self) -> None:
        """Read both experts' files again (after labeling in the main window, or other experts)."""
        a, b = self.expert_a.get(), self.expert_b.get()
        self.loaded = False
        self.ctl = None
        self._end_session()
        self._clear_gallery("Click a matrix cell to see its crops.")
        if not a or not b or a == b:
            self.tasks.stop("load")
            self._show_message("Choose two different experts with annotation files.")
            return
        self._show_message("loading…")
        self.tasks.stop("refresh")
        project = self.project
        self._pending = AgreementController(project, a, b)
        self.tasks.start("load", lambda post, cancel: AgreementController.read_pairs(
            project, a, b, lambda stage, done, total, item: post("progress", (stage, done, total))))

    def _focused(self, event) -> None:
        """Coming back from the labeling window: re-read in the background (only changed files
        are parsed again) and redraw if an expert's labels changed meanwhile."""
        if event.widget is not self.top or not self.loaded or self.session is not None:
            return
        if self.tasks.busy("refresh") or self.tasks.busy("load"):
            return
        ctl = self.ctl
        assert ctl is not None
        project, a, b = self.project, ctl.expert_a, ctl.expert_b
        self.tasks.start("refresh", lambda post, cancel: AgreementController.read_pairs(project, a, b))

    def _refreshed(self, read) -> None:
        ctl = self.ctl
        pairs, left_out = read
        if ctl is None or not self.loaded or self.session is not None:
            return
        if (len(pairs) == len(ctl.images) and all(p is q for p, q in zip(pairs, ctl.images))
                and [str(e) for e in left_out] == [str(e) for e in ctl.left_out]):
            return  # nothing changed: keep the gallery the user is looking at
        self._pending = AgreementController(self.project, ctl.expert_a, ctl.expert_b)
        self._loaded(read)
        self.status.set(f"{self.status.get()} (updated with the experts' latest edits)")

    def _loaded(self, read) -> None:
        self.ctl = self._pending
        self.ctl.set_images(*read)
        choices = self.ctl.choices()
        for name, box in self.filter_boxes.items():
            box.configure(values=[ANY, *choices[name]])
            if self.filters[name].get() not in choices[name]:
                self.filters[name].set(ANY)
        self.ctl.set_level(self.level.get())
        self.ctl.set_filter(**self._filter_values())
        self.loaded = True
        self.redraw()

    def _filter_values(self) -> dict[str, str | None]:
        return {name: (None if var.get() == ANY else var.get()) for name, var in self.filters.items()}

    def _filter_changed(self) -> None:
        if self.ctl is not None and self.loaded:
            self.ctl.set_filter(**self._filter_values())
            self._end_session()  # its queue came from the photos the old filters showed
            self.redraw()

    def _level_changed(self) -> None:
        if self.ctl is not None and self.loaded:
            self.ctl.set_level(self.level.get())
            self.redraw()

    # -- heatmap and figures -------------------------------------------------------------
    def _show_message(self, text: str) -> None:
        self.figure.clear()
        self.figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=12, color="#555555")
        self._heat_axes = None
        self.canvas.draw_idle()
        self._set_figures_text(text)
        self.status.set(text)

    def _set_figures_text(self, text: str) -> None:
        self.figures_text.configure(state="normal")
        self.figures_text.delete("1.0", "end")
        self.figures_text.insert("1.0", text)
        self.figures_text.configure(state="disabled")

    def redraw(self) -> None:
        ctl = self.ctl
        assert ctl is not None
        draw_heatmap(ctl.matrix, self.figure)
        self._heat_axes = self.figure.axes[0]  # the colour bar's axes come second
        self.canvas.draw_idle()
        other = "parent" if ctl.level == "leaf" else "leaf"
        theirs = ctl.figures_at(other)
        lines = [f"{ctl.expert_a} (rows) vs {ctl.expert_b} (columns), {ctl.level} level", "",
                 *ctl.summary().lines(), "", *ctl.figures.lines()]
        if ctl.left_out:  # counted nowhere until the file is mended: say which and why
            lines = [f"{len(ctl.left_out)} file(s) could not be read; their photos are left out:",
                     *(f"  {problem}" for problem in ctl.left_out), "", *lines]
        if theirs.n:
            lines += ["", f"at {other} level: observed agreement {theirs.observed:.1%}, kappa {theirs.kappa:.3f} "
                          f"(95% CI {theirs.ci_low:.3f} to {theirs.ci_high:.3f})"]
        self._set_figures_text("\n".join(lines))
        self._clear_gallery("Click a matrix cell to see its crops.")
        shown = len(ctl.visible_images)
        left_out = f"; {len(ctl.left_out)} unreadable file(s) left out" if ctl.left_out else ""
        self.status.set(f"{shown} photo(s) shown of {len(ctl.images)}; {ctl.matrix.total} cells in the matrix{left_out}")

    def _matrix_clicked(self, event) -> None:
        if self.ctl is None or self._heat_axes is None or event.inaxes is not self._heat_axes:
            return
        cell = self.ctl.cell_at(event.xdata, event.ydata)
        if cell is not None:
            self.show_gallery(*cell)

    # -- gallery ---------------------------------------------------------------------------
    def _clear_gallery(self, title: str) -> None:
        self.tasks.stop("gallery")
        for button in self.gallery_buttons:
            button.destroy()
        self.gallery_buttons, self.gallery_pairs = [], []
        self._gallery_photos.clear()
        self.gallery_title.set(title)
        self.more_button.pack_forget()

    def show_gallery(self, row: int, col: int) -> None:
        """The crops counted in matrix cell (row, col); thumbnails arrive in the background."""
        assert self.ctl is not None
        self._clear_gallery(self.ctl.gallery_title(row, col))
        self.gallery_pairs = self.ctl.gallery(row, col)
        self.notebook.select(self.gallery_tab)
        self.gallery_canvas.yview_moveto(0)
        self._gallery_more()

    def _gallery_more(self) -> None:
        start = len(self.gallery_buttons)
        columns = max(1, (self.notebook.winfo_width() - 30) // (THUMBNAIL + 12))
        for i, pair in enumerate(self.gallery_pairs[start:start + GALLERY_PAGE], start):
            button = ttk.Button(self.gallery_frame, image=self._blank, compound="top",
                                text=f"{pair.image}\n{pair.cell_id}", command=lambda p=pair: self.open_cell(p))
            button.grid(row=i // columns, column=i % columns, padx=2, pady=2)
            for sequence, step in (("<Button-4>", -3), ("<Button-5>", 3)):
                button.bind(sequence, lambda e, s=step: self.gallery_canvas.yview_scroll(s, "units"))
            button.bind("<MouseWheel>", self._wheel)
            self.gallery_buttons.append(button)
        rest = len(self.gallery_pairs) - len(self.gallery_buttons)
        if rest > 0:
            self.more_button.configure(text=f"Show {min(rest, GALLERY_PAGE)} more ({rest} not shown)")
            self.more_button.pack(side="right")
        else:
            self.more_button.pack_forget()
        todo = [(i, p) for i, p in enumerate(self.gallery_pairs[:len(self.gallery_buttons)])
                if i not in self._gallery_photos]
        ctl = self.ctl
        assert ctl is not None

        def cut(post: Post, cancel: threading.Event) -> None:
            for i, pair in todo:
                if cancel.is_set():
                    return
                try:
                    post("thumbnail", (i, ctl.thumbnail(pair)))
                except UserError as exc:  # an unreadable photo: say so on its thumbnail, go on
                    post("thumbnail_failed", (i, str(exc)))

        self.tasks.start("gallery", cut)

    @property
    def gallery_loaded(self) -> bool:
        return bool(self.gallery_buttons) and not self.tasks.busy("gallery")

    # -- adjudication ----------------------------------------------------------------------
    def start_adjudication(self) -> None:
        """Write the automatic "agreed" cells and build the queue, in the background."""
        if self.ctl is None or not self.loaded:
            self.status.set("Wait until both experts' files are read.")
            return
        lead = self.lead.get().strip()
        if not lead:
            self.status.set("Say who adjudicates: the lead's name is saved with every decision.")
            return
        ctl, images = self.ctl, self.ctl.visible_images  # captured now: the filters may change meanwhile
        order = ORDER_NAMES[self.queue_order.get()]
        self.start_button.configure(state="disabled")
        self.adjudication_progress.set("preparing…")
        self.notebook.select(self.adjudication_tab)
        self.tasks.start("adjudication", lambda post, cancel: AdjudicationSession(
            ctl.project, images, ctl.expert_a, ctl.expert_b, lead,
            progress=lambda stage, done, total, item: post("progress", (stage, done, total)), order=order))

    def _session_ready(self, session: AdjudicationSession) -> None:
        self.session = session
        self.start_button.configure(state="normal")
        self.queue_view.delete(*self.queue_view.get_children())
        for i, item in enumerate(session.items):
            self.queue_view.insert("", "end", iid=str(i), values=self._row(i))
        self._show_item()
        self.keys_widget.focus_set()

    def _end_session(self) -> None:
        self.tasks.stop("adjudication")
        self.tasks.stop("crop")
        self.session = None
        self._chord = None
        self.start_button.configure(state="normal")
        self.queue_view.delete(*self.queue_view.get_children())
        self.crop_label.configure(image=self._blank_crop)
        self._crop_photo = None
        self.item_text.set("")
        self.adjudication_progress.set("")

    def _row(self, index: int) -> tuple[str, ...]:
        session = self.session
        assert session is not None
        pair, tax = session.items[index].pair, self.project.taxonomy
        cell = session.decision(index)
        decision = ("—" if cell is None else "sent back" if cell.extra.get("decision") == SENT_BACK
                    else tax.display_name(cell.label))
        return (pair.image, pair.cell_id, label_text(tax, pair.label_a, pair.rejected_a),
                label_text(tax, pair.label_b, pair.rejected_b), decision)

    def _show_item(self) -> None:
        session = self.session
        if session is None:
            return
        self.adjudication_progress.set(session.progress_text())
        item = session.current
        if item is None:
            self.item_text.set("Every disagreement has a decision. Ctrl+Z takes the last one back.")
            self.crop_label.configure(image=self._blank_crop)
            self._crop_photo = None
            self.tasks.stop("crop")
            return
        iid = str(session.index)
        if self.queue_view.selection() != (iid,):
            self.queue_view.selection_set(iid)
        self.queue_view.see(iid)
        pair, tax = item.pair, self.project.taxonomy
        chord = f"\n{tax.get(self._chord).name} … (sub-type key or Enter)" if self._chord else ""
        self.item_text.set(f"{pair.image} · cell {pair.cell_id}\n"
                           f"{session.expert_a}: {label_text(tax, pair.label_a, pair.rejected_a)}\n"
                           f"{session.expert_b}: {label_text(tax, pair.label_b, pair.rejected_b)}{chord}")
        ctl = self.ctl
        assert ctl is not None
        self.tasks.start("crop", lambda post, cancel: ctl.thumbnail(pair, CROP_SIDE))

    def _queue_selected(self, _event=None) -> None:
        selected = self.queue_view.selection()
        if self.session is not None and selected and int(selected[0]) != self.session.index:
            self._chord = None
            self.session.select(int(selected[0]))
            self._show_item()

    def _key(self, event) -> str | None:
        if event.state & 0x4 or self.session is None:  # Control chords are commands, not labels
            return None
        char = event.char
        if not char:
            return None
        tax = self.project.taxonomy
        if char == "s":  # sends back the cell shown: a class key typed for it just before is dropped
            self.send_back()
            return "break"
        if self._chord is not None:
            parent = self._chord
            child = tax.by_hotkey(char, parent)
            self._cancel_chord()
            if child is not None:
                self.decide(child)
                return "break"
            self.decide(parent)  # not a sub-type: the class stands and the key goes on to the next cell
        path = tax.by_hotkey(char)
        if path is not None:
            if tax.get(path).children:
                self._chord = path
                self._chord_job = self.top.after(self.chord_timeout_ms, self._commit_chord)
                self._show_item()
            else:
                self.decide(path)
            return "break"
        return None

    def _cancel_chord(self) -> None:
        self._chord = None
        if self._chord_job is not None:
            self.top.after_cancel(self._chord_job)
            self._chord_job = None

    def _commit_chord(self) -> None:
        parent = self._chord
        self._cancel_chord()
        if parent is not None:
            self.decide(parent)

    def _record(self, act: Callable[[], object]) -> None:
        """Run a decision or an undo, then refresh the queue rows it touched and the item shown."""
        session = self.session
        assert session is not None
        before = session.index
        try:
            act()
        except UserError as exc:
            self.status.set(str(exc))
            return
        for index in {before, session.index} & set(range(session.total)):
            self.queue_view.item(str(index), values=self._row(index))
        self._show_item()

    def _can_decide(self) -> bool:
        if self.session is None:
            return False
        if self.session.current is None:
            self.status.set("Nothing left to decide.")
            return False
        return True

    def decide(self, label: str) -> None:
        """The lead's final label for the current cell (saved in annotations/consensus/ at once)."""
        session = self.session
        if self._can_decide():
            self._record(lambda: session.decide(label))

    def send_back(self) -> None:
        self._cancel_chord()
        if self._can_decide():
            self._record(self.session.send_back)

    def undo(self) -> None:
        if self.session is not None:
            if self._chord is not None:  # the class key is the last thing typed: only it is taken back
                self._cancel_chord()
                self._show_item()
                return
            if not self.session.can_undo:
                self.status.set("Nothing to undo.")
                return
            self._record(self.session.undo)

    # -- exports ---------------------------------------------------------------------------
    def _ask_csv(self) -> None:
        path = filedialog.asksaveasfilename(parent=self.top, title="Save the matrix as CSV",
                                            defaultextension=".csv", filetypes=[("CSV", "*.csv")])
        if path:
            self.write_csv(Path(path))

    def _ask_png(self) -> None:
        path = filedialog.asksaveasfilename(parent=self.top, title="Save the heatmap as PNG",
                                            defaultextension=".png", filetypes=[("PNG", "*.png")])
        if path:
            self.write_png(Path(path))

    def _ask_double_labeled(self) -> None:
        folder = filedialog.askdirectory(parent=self.top, title="Folder for the double-labeled dataset")
        if folder:
            self.export_double_labeled(Path(folder))

    def _export(self, what: str, path: Path, write: Callable[[Path], None]) -> None:
        if self.ctl is None or not self.loaded:
            self.status.set("Wait until both experts' files are read.")
            return
        try:
            write(path)
        except UserError as exc:
            self.status.set(str(exc))
            return
        self.status.set(f"{what} written to {path}")

    def write_csv(self, path: Path) -> None:
        self._export("matrix", path, lambda p: self.ctl.write_csv(p))

    def write_png(self, path: Path) -> None:
        self._export("heatmap", path, lambda p: self.ctl.write_png(p))

    def export_double_labeled(self, out: Path) -> None:
        """Crops of the cells both experts agree on (five classes) into ``out``, in the background."""
        if self.ctl is None or not self.loaded:
            self.status.set("Wait until both experts' files are read.")
            return
        project, images = self.project, self.ctl.visible_images
        self.status.set("double-labeled export: starting")

        def export(post: Post, cancel: threading.Event):
            def progress(stage: str, done: int, total: int, item: str) -> None:
                if cancel.is_set():
                    raise UserError(f"double-labeled export cancelled: the crops written so far stay in {out}, "
                                    "without the provenance CSV")
                post("progress", (stage, done, total))
            return export_double_labeled(project, images, out, progress)

        self.tasks.start("export", export)
        self.cancel_export_button.configure(state="normal")

    def cancel_export(self) -> None:
        """Stop the double-labeled export after the photo being cropped."""
        task = self.tasks.current("export")
        if task is not None:
            task.cancel.set()
            self.status.set("double-labeled export: cancelling…")

    # -- the poll loop ---------------------------------------------------------------------
    def _poll(self) -> None:
        self._poll_job = None
        try:
            # progress comes once per photo: only the latest of each channel is shown, and it
            # does not count against the tick's budget (else 640 photos' progress would hold
            # back the finished result by half a second)
            latest_progress: dict[str, Any] = {}
            thumbs = applied = 0
            while applied < MESSAGES_PER_TICK and thumbs < THUMBS_PER_TICK:
                message = self.tasks.next_current()
                if message is None:
                    break
                channel, kind, payload = message
                if kind == "progress":
                    latest_progress[channel] = payload
                    continue
                latest_progress.pop(channel, None)
                thumbs += kind == "thumbnail"
                applied += 1
                self._apply(channel, kind, payload)
            for channel, payload in latest_progress.items():
                if self.tasks.busy(channel):
                    self._apply(channel, "progress", payload)
        finally:
            if self.exists():
                self._poll_job = self.top.after(POLL_MS, self._poll)

    def _apply(self, channel: str, kind: str, payload: Any) -> None:
        if kind == "crashed":
            self.report_error(*payload)
            self.status.set(f"{channel}: internal error (see the log)")
            if channel == "adjudication":
                self.start_button.configure(state="normal")
            return
        if channel == "export" and kind in ("done", "failed", "crashed"):
            self.cancel_export_button.configure(state="disabled")
        if kind == "failed":
            self.status.set(payload)
            if channel == "load":
                self._show_message(payload)
            elif channel == "adjudication":
                self._end_session()
            return
        if kind == "progress":
            stage, done, total = payload
            self.progress.configure(maximum=max(1, total), value=done)
            self.status.set(f"{channel}: {stage} {done} / {total}")
            return
        if channel == "gallery" and kind == "thumbnail":
            index, image = payload
            photo = self._gallery_photos[index] = ImageTk.PhotoImage(image, master=self.top)
            self.gallery_buttons[index].configure(image=photo)
        elif channel == "gallery" and kind == "thumbnail_failed":
            index, text = payload
            self.gallery_buttons[index].configure(text=f"{self.gallery_pairs[index].image}\nunreadable")
            self.status.set(text)
        elif channel == "load":
            self._loaded(payload)
        elif channel == "refresh":
            self._refreshed(payload)
        elif channel == "adjudication":
            self._session_ready(payload)
        elif channel == "crop":
            self._crop_photo = ImageTk.PhotoImage(payload, master=self.top)
            self.crop_label.configure(image=self._crop_photo)
        elif channel == "export":
            self.status.set(" ".join(payload.lines()))
            self.progress.configure(value=self.progress.cget("maximum"))

    # -- closing ---------------------------------------------------------------------------
    def close(self) -> None:
        self.tasks.stop_all()
        self._cancel_chord()
        for sequence in ("<Key>", "<Return>", "<Control-z>"):
            self.top.unbind_class(self._keys_tag, sequence)
        if self._poll_job is not None:
            self.top.after_cancel(self._poll_job)
            self._poll_job = None
        self.top.destroy()
