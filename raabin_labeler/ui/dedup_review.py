"""Tools → Duplicate cells… (issue 5, item 5): review the groups a search marked, side by side.

Each row is one physical cell seen several times: the kept crop (thick green border) and its
duplicates with their distances to it and their sharpness. The reviewer confirms the group,
splits a member off, or keeps another member instead; Ctrl+Z undoes. Clicking a crop shows the
cell in the labeling window. The model is a :class:`DedupReviewController`; files are read and
crops cut on worker threads (:mod:`.thumbnails`), the search runs as a background job, and all
results are applied on the Tk thread from ``after`` (STYLE.md).
"""
from __future__ import annotations

import tkinter as tk
from dataclasses import dataclass, field
from tkinter import ttk
from typing import TYPE_CHECKING, Any, Callable

from PIL import ImageTk

from ..app.dedup_review import (THUMBNAIL, DedupReviewController, LabelingAnnotations, Marks, Member, ReviewGroup,
                                default_author, read_marks, search_job)
from ..core.jobs import Finished, ItemDone, Job, Progress
from ..errors import UserError
from .thumbnails import LazyLoader
from .windows import is_open

if TYPE_CHECKING:
    from .main_window import MainWindow

POLL_MS = 50
THUMBS_PER_TICK = 6  # crops turned into PhotoImages per tick: the window never stalls
GROUP_PAGE = 30  # groups shown at once; "Show more" adds a page
KEPT_COLOUR = "#2e9e3e"
MEMBER_COLOUR = "#b0b0b0"
TILE_WIDTH = THUMBNAIL + 34  # px a crop's tile takes in a line, border and padding included
ErrorHandler = Callable[[type, BaseException, Any], None]


def evidence_text(member: Member) -> str:
    """The distances to the keeper that made the search group them (ImageHash bits, correlations,
    the overlapping fields)."""
    e = member.evidence
    if not e:
        return "distance to the keeper\nnot measured"
    lines = [f"aHash {e['ahash']} · pHash {e['phash']}" if "ahash" in e else ""]
    if "ncc" in e:
        lines.append(f"NCC {e['ncc']:.3f} · texture {e.get('texture_ncc', float('nan')):.3f}")
    # lines short enough for a tile (TILE_WIDTH): a wider one pushed the group's buttons off screen
    if "reg_ncc" in e:  # confirmed by registration: the crops were shifted or cut differently
        lines.append(f"{e.get('inliers', 0)} keypoints agree · scale {e.get('scale', 1.0):.2f}")
        lines.append(f"overlap NCC {e['reg_ncc']:.3f}")
    if "field_ncc" in e:  # the two photos overlap and show the cell at one place
        dx, dy = e["shift"]
        lines.append(f"same field · NCC {e['field_ncc']:.3f}")
        lines.append(f"photos {dx:+d}, {dy:+d} px apart")
    return "\n".join(line for line in lines if line)


@dataclass
class _Row:
    """One group's row on screen and the widgets a crop arriving later fills in."""

    group: ReviewGroup
    line: ttk.Frame
    frame: ttk.LabelFrame
    title: str
    buttons: dict[str, list[ttk.Button]] = field(default_factory=dict)
    sharp: dict[str, list[tk.StringVar]] = field(default_factory=dict)
    tiles: dict[str, tk.Frame] = field(default_factory=dict)


class DedupReviewView:
    """The Toplevel. ``ctl`` is rebuilt when another author is chosen."""

    def __init__(self, window: "MainWindow", report_error: ErrorHandler):
        self.window = window
        self.project = window.controller.project
        self.report_error = report_error
        self.annotations = LabelingAnnotations(window.controller)
        self.ctl: DedupReviewController | None = None
        self.loader = LazyLoader("dedup-marks")
        self.thumbs = LazyLoader("dedup-crops")
        self.job: Job | None = None
        self.loaded = False
        self.shown = 0  # groups on screen (pages of GROUP_PAGE)
        self._photos: dict[str, ImageTk.PhotoImage] = {}  # by cell ref; Tk drops an image nobody holds
        self._sharpness: dict[str, float] = {}  # measured while cutting crops
        self._crop_buttons: dict[str, list[ttk.Button]] = {}
        self._sharp_labels: dict[str, list[tk.StringVar]] = {}
        self.rows: list[ttk.LabelFrame] = []  # one per group on screen
        self._rows: dict[int, _Row] = {}  # by id() of the group shown: a decision redraws only its group
        self._last_line: dict[str, ttk.Frame] = {}  # cell ref -> line of a row just dropped
        self.lines: list[ttk.Frame] = []  # the lines the groups flow into
        self._laid_width = 0
        self._relayout_job: str | None = None
        self.top = tk.Toplevel(window.root)
        self.top.title(f"Duplicate cells — {self.project.name}")
        self.top.geometry("1180x820")
        self.top.protocol("WM_DELETE_WINDOW", self.close)
        self.author = tk.StringVar(value="")
        self.mode = tk.StringVar(value="robust")
        self.status = tk.StringVar(value="reading the marks…")
        self.summary = tk.StringVar(value="")
        self.redundant = tk.StringVar(value="")
        self._build()
        self.top.bind("<Control-z>", lambda e: self.undo())
        self._poll_job: str | None = self.top.after(POLL_MS, self._poll)
        self.load(None)

    @classmethod
    def for_window(cls, window: "MainWindow", report_error: ErrorHandler) -> "DedupReviewView":
        return cls(window, report_error)

    def exists(self) -> bool:
        return is_open(self.top)

    # -- layout ---------------------------------------------------------------------------
    def _build(self) -> None:
        style = ttk.Style(self.top)
        style.configure("Crop.TButton", padding=0)
        style.configure("Kept.TLabel", foreground=KEPT_COLOUR, font=("TkDefaultFont", 10, "bold"))
        bar = ttk.Frame(self.top, padding=4)
        bar.pack(fill="x")
        ttk.Label(bar, text="Cells of:").pack(side="left")
        authors = self.project.authors()
        self.author_box = ttk.Combobox(bar, textvariable=self.author, values=authors, state="readonly", width=16)
        self.author_box.pack(side="left", padx=(2, 10))
        self.author_box.bind("<<ComboboxSelected>>", lambda e: self.load(self.author.get()))
        ttk.Label(bar, text="Mode:").pack(side="left")
        for mode, text in (("robust", "robust (aligned + NCC)"), ("paper", "paper (aHash < 11, pHash < 14)")):
            ttk.Radiobutton(bar, text=text, value=mode, variable=self.mode).pack(side="left")
        self.find_button = ttk.Button(bar, text="Find duplicates", command=self.find)
        self.find_button.pack(side="left", padx=10)
        self.progress = ttk.Progressbar(bar, mode="determinate", maximum=1, length=160)
        self.progress.pack(side="left")
        info = ttk.Frame(self.top, padding=(6, 0))
        info.pack(fill="x")
        ttk.Label(info, text="Ctrl+Z undo · click a crop to see it on its photo",
                  foreground="#555555").pack(side="right", anchor="n")
        ttk.Label(info, textvariable=self.summary, style="Heading.TLabel").pack(anchor="w")
        ttk.Label(info, textvariable=self.redundant, wraplength=1100, justify="left").pack(anchor="w")
        status = ttk.Frame(self.top, padding=(6, 2))
        status.pack(fill="x", side="bottom")
        ttk.Label(status, textvariable=self.status).pack(side="left")
        body = ttk.Frame(self.top)
        body.pack(fill="both", expand=True)
        self.list_canvas = tk.Canvas(body, highlightthickness=0)
        scroll = ttk.Scrollbar(body, orient="vertical", command=self.list_canvas.yview)
        self.list_canvas.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.list_canvas.pack(fill="both", expand=True)
        self.list_frame = ttk.Frame(self.list_canvas, padding=4)
        self.list_canvas.create_window(0, 0, window=self.list_frame, anchor="nw")
        self.list_frame.bind("<Configure>", lambda e: self.list_canvas.configure(
            scrollregion=self.list_canvas.bbox("all")))
        self.more_button = ttk.Button(self.list_frame, text="Show more", command=self.show_more)
        self._scrolls(self.list_canvas)
        self.list_canvas.bind("<Configure>", self._resized)

    def _scrolls(self, widget: tk.Misc) -> None:
        """The wheel scrolls the list wherever the pointer is over it (X11 buttons 4/5, others)."""
        for sequence, step in (("<Button-4>", -3), ("<Button-5>", 3)):
            widget.bind(sequence, lambda e, s=step: self.list_canvas.yview_scroll(s, "units"))
        widget.bind("<MouseWheel>", lambda e: self.list_canvas.yview_scroll(-1 if e.delta > 0 else 1, "units"))

    # -- reading ------------------------------------------------------------------------------
    def load(self, author: str | None) -> None:
        """Read the marks of ``author`` (None: the default one) off the Tk thread."""
        try:
            self.annotations.settle()  # the labeling window's pending edits reach the files first
        except UserError as exc:
            self.status.set(str(exc))
            return
        self.loaded = False
        self.status.set("reading the marks…")
        project, expert = self.project, self.window.controller.expert

        def read() -> tuple[str, Marks]:
            who = author or default_author(project, expert)
            return who, read_marks(project, who)

        self.loader.request([("marks", read)])

    def _marks_read(self, author: str, marks: Marks) -> None:
        if self.ctl is None or self.ctl.author != author:
            self.ctl = DedupReviewController(self.project, author, self.annotations)
            self._photos.clear()
            self._sharpness.clear()
        self.author.set(author)
        self.ctl.show(marks)
        self.loaded = True
        self.status.set("")
        self.render(keep_scroll=False)

    # -- the search ---------------------------------------------------------------------------
    def find(self) -> None:
        """Search the chosen author's cells in the background; marks are written when it ends."""
        if self.ctl is None or self.job is not None:
            return
        try:
            self.annotations.settle()
        except UserError as exc:
            self.status.set(str(exc))
            return
        self.job = search_job(self.project, self.ctl.author, self.mode.get(), self.window.job_runner(2))
        self.find_button.configure(state="disabled")
        self.author_box.configure(state="disabled")
        self.progress.configure(maximum=1, value=0)
        self.status.set(f"{self.job.name}: cutting crops…")
        self.job.start()

    def _job_events(self) -> None:
        job = self.job
        assert job is not None
        for event in job.drain(limit=20):
            if isinstance(event, Progress) and event.item == "crops hashed":
                self.progress.configure(maximum=max(1, event.total), value=event.done)
                # the comparison after the last crop takes minutes at 40,000 crops: say it runs
                then = "; comparing them…" if event.done >= event.total else ""
                self.status.set(f"{job.name}: {event.done} / {event.total} crops hashed{then}")
            elif isinstance(event, Progress) and event.item == "photos compared":  # robust: fields first
                self.progress.configure(maximum=max(1, event.total), value=event.done)
                self.status.set(f"{job.name}: {event.done} / {event.total} photos compared for overlapping fields")
            elif isinstance(event, ItemDone):
                if event.outcome.error is not None:
                    self.status.set(f"{job.name} failed: {event.outcome.error}")
                else:
                    self._search_done(event.outcome.value)
            elif isinstance(event, Finished):
                self.job = None
                self.find_button.configure(state="normal")
                self.author_box.configure(state="readonly")
                if event.last_error and not event.errors:
                    self.status.set(event.last_error)
                return

    def _search_done(self, found) -> None:
        assert self.ctl is not None
        try:
            changed = self.ctl.apply_search(found)
        except UserError as exc:
            self.status.set(str(exc))
            return
        self.progress.configure(value=self.progress.cget("maximum"))
        unreadable = (f"; left out, cannot be read: {'; '.join(str(p) for p in found.unreadable)}"
                      if found.unreadable else "")
        self.status.set(f"{found.cells} cells searched: {len(found.groups)} groups found, "
                        f"{changed} cell(s) marked anew{unreadable}")
        self.render(keep_scroll=False)

    # -- the list -----------------------------------------------------------------------------
    def render(self, keep_scroll: bool = True) -> None:
        """Rebuild every row on screen: a new list (another author, a search)."""
        for key in list(self._rows):
            self._drop_row(key)
        self._show_groups(keep_scroll, reflow=True)

    def _show_groups(self, keep_scroll: bool = True, reflow: bool = False) -> None:
        """Show the controller's groups, building rows only for groups not on screen yet.

        A decision gives new objects only to the groups it changed (``group_marks``); rebuilding
        all ~2,900 widgets of a page froze the window 1.3-2.1 s a decision (QA, BCCD). Groups also
        stay on their lines unless one no longer fits (``reflow``, after a resize, flows them all
        again): a line that moves moves every line below it, costing about as much as a rebuild.
        A row is built and sized unmapped before it replaces the old one, for the same reason.
        """
        ctl = self.ctl
        assert ctl is not None
        where = self.list_canvas.yview()[0]
        groups = ctl.groups
        self.shown = min(len(groups), max(self.shown, GROUP_PAGE) if keep_scroll else GROUP_PAGE)
        confirmed = sum(g.confirmed for g in groups)
        dropped = sum(len(g.members) for g in groups)
        self.summary.set(f"{ctl.author}: {len(groups)} cell(s) seen more than once · {dropped} duplicate(s) "
                         f"left out of exports · {confirmed} group(s) confirmed" if groups else
                         f"{ctl.author}: no duplicates marked. Choose a mode and press Find duplicates.")
        photos = ctl.redundant_photos
        self.redundant.set(f"Redundant photos (every cell a duplicate of one elsewhere): {', '.join(photos)}"
                           if photos else "No redundant photos.")
        shown = groups[:self.shown]
        room = max(TILE_WIDTH + 40, self.list_canvas.winfo_width() - 16)
        self._retarget(shown)
        plan = None if reflow else self._kept_lines(shown, room)
        if plan is None:
            self._last_line.clear()
            plan = self._flowed_lines(shown, room)
            self._laid_width = self.list_canvas.winfo_width()
        fresh: dict[int, _Row] = {}
        index = 0
        for line, line_groups in plan:
            for group in line_groups:
                row = self._rows.get(id(group))
                if row is None or row.line is not line:
                    fresh[id(group)] = self._group_row(line, group)
                self._title(fresh.get(id(group)) or row, index)
                index += 1
        if fresh:
            self.list_frame.update_idletasks()
        wanted = {id(g) for _, line_groups in plan for g in line_groups}
        for key in [key for key in self._rows if key not in wanted or key in fresh]:
            self._drop_row(key)
        self._rows.update(fresh)
        for row in fresh.values():
            self._register(row)
        lines = [line for line, _ in plan]
        for line in self.lines:
            if line not in lines:
                line.destroy()
        self.lines = lines
        self.rows.clear()
        for line, line_groups in plan:
            frames = [self._rows[id(g)].frame for g in line_groups]
            self._pack_line(line, frames)
            self.rows.extend(frames)
        self.more_button.pack_forget()
        rest = len(groups) - self.shown
        if rest > 0:
            self.more_button.configure(text=f"Show {min(rest, GROUP_PAGE)} more ({rest} not shown)")
            self.more_button.pack(anchor="w", pady=6)
        self.list_canvas.update_idletasks()
        self.list_canvas.configure(scrollregion=self.list_canvas.bbox("all"))
        self.list_canvas.yview_moveto(where if keep_scroll else 0)
        self._request_crops()

    def _retarget(self, shown: list[ReviewGroup]) -> None:
        """A row whose group kept its keeper and the other members' evidence shows the new group:
        its title changes, a split member's tile goes, an undone split's tile comes back."""
        on_screen = {id(g) for g in shown}
        stale = {row.group.keeper.ref: key for key, row in self._rows.items() if key not in on_screen}

        def seen(member: Member) -> tuple:
            return member.ref, member.box, member.evidence

        for group in shown:
            key = stale.get(group.keeper.ref)
            if id(group) in self._rows or key is None:
                continue
            row = self._rows[key]
            had = {m.ref: seen(m) for m in row.group.members}
            refs = {m.ref for m in group.members}
            if seen(row.group.keeper) != seen(group.keeper) or \
                    any(had.get(m.ref, seen(m)) != seen(m) for m in group.members) or \
                    [m.ref for m in row.group.members if m.ref in refs] != [m.ref for m in group.members
                                                                            if m.ref in had]:
                continue  # another keeper, other evidence or another order: built anew
            del self._rows[key], stale[group.keeper.ref]
            self._rows[id(group)] = row
            row.group = group
            for ref in set(had) - refs:
                self._forget_widgets(row, ref)
                row.tiles.pop(ref).destroy()
            previous = row.tiles[group.keeper.ref]
            for member in group.members:
                if member.ref not in had:
                    self._tile(row, previous.master, member, kept=False)
                    row.tiles[member.ref].pack_configure(after=previous)
                    self._crop_buttons.setdefault(member.ref, []).extend(row.buttons[member.ref])
                    self._sharp_labels.setdefault(member.ref, []).extend(row.sharp[member.ref])
                previous = row.tiles[member.ref]

    def _kept_lines(self, shown: list[ReviewGroup], room: int) -> list[tuple[ttk.Frame, list[ReviewGroup]]] | None:
        """Each group on the line its row is on (a changed group where its previous version
        was), or None when that no longer flows: a line too wide, or groups out of order."""
        if not self.lines:
            return None
        place = {id(line): i for i, line in enumerate(self.lines)}
        by_ref = {ref: row.line for row in self._rows.values() for ref in row.group.refs}
        plan: list[list[ReviewGroup]] = [[] for _ in self.lines]
        at = 0
        for group in shown:
            row = self._rows.get(id(group))
            line = row.line if row is not None else next(
                (by_ref.get(ref) or self._last_line.get(ref) for ref in group.refs
                 if by_ref.get(ref) or self._last_line.get(ref)), None)
            if line is not None and id(line) in place:
                if place[id(line)] < at:
                    return None
                at = place[id(line)]
            plan[at].append(group)
        for line_groups in plan:
            if sum((len(g.members) + 1) * TILE_WIDTH + 24 for g in line_groups) > room and len(line_groups) > 1:
                return None
        return [(line, line_groups) for line, line_groups in zip(self.lines, plan) if line_groups]

    def _flowed_lines(self, shown: list[ReviewGroup], room: int) -> list[tuple[ttk.Frame, list[ReviewGroup]]]:
        """Groups flow left to right, as many as fit a line; existing lines are reused."""
        plan: list[list[ReviewGroup]] = []
        used = 0
        for group in shown:
            width = (len(group.members) + 1) * TILE_WIDTH + 24
            if not plan or used + width > room:
                plan.append([])
                used = 0
            plan[-1].append(group)
            used += width
        while len(self.lines) < len(plan):
            line = ttk.Frame(self.list_frame)
            line.pack(fill="x", anchor="w")
            self._scrolls(line)
            self.lines.append(line)
        return list(zip(self.lines, plan))

    def show_more(self) -> None:
        self.shown += GROUP_PAGE
        self._show_groups()

    @staticmethod
    def _pack_line(line: ttk.Frame, frames: list[ttk.LabelFrame]) -> None:
        """Pack ``frames`` (children of ``line``) in order, moving only those not in place."""
        for i, frame in enumerate(frames):
            now = [str(slave) for slave in line.pack_slaves()]
            if i < len(now) and now[i] == str(frame):
                continue
            place = {"after": frames[i - 1]} if i else ({"before": line.pack_slaves()[0]} if now else {})
            frame.pack(side="left", anchor="n", padx=(0, 8), pady=4, **place)

    @staticmethod
    def _title(row: "_Row", index: int) -> None:
        """The row's title follows its group's place in the list."""
        state = "✓ confirmed" if row.group.confirmed else "not reviewed"
        title = f" {index + 1}. {len(row.group.members) + 1} photos of one cell · {state} "
        if row.title != title:
            row.frame.configure(text=title)
            row.title = title

    def _group_row(self, line: ttk.Frame, group: ReviewGroup) -> "_Row":
        frame = ttk.LabelFrame(line, padding=4)
        row = _Row(group, line, frame, "")
        tiles = ttk.Frame(frame)
        tiles.pack(anchor="w")
        self._tile(row, tiles, group.keeper, kept=True)
        for member in group.members:
            self._tile(row, tiles, member, kept=False)
        ttk.Button(frame, text="Confirm group", command=lambda: self._decide(self.ctl.confirm, row.group)).pack(
            anchor="w", pady=(4, 0))
        for widget in (frame, tiles):
            self._scrolls(widget)
        return row

    def _register(self, row: "_Row") -> None:
        """A row on screen: crops and sharpness arriving later reach its widgets."""
        for ref, buttons in row.buttons.items():
            self._crop_buttons.setdefault(ref, []).extend(buttons)
        for ref, variables in row.sharp.items():
            self._sharp_labels.setdefault(ref, []).extend(variables)

    def _forget_widgets(self, row: "_Row", ref: str) -> None:
        """Crops arriving later no longer go to the row's widgets of ``ref``."""
        for widgets, mine in ((self._crop_buttons, row.buttons.pop(ref, [])),
                              (self._sharp_labels, row.sharp.pop(ref, []))):
            left = [w for w in widgets.get(ref, ()) if not any(w is m for m in mine)]
            if left:
                widgets[ref] = left
            else:
                widgets.pop(ref, None)

    def _drop_row(self, key: int) -> None:
        row = self._rows.pop(key)
        for ref in list(row.tiles):
            self._forget_widgets(row, ref)
        if str(row.frame) in map(str, row.line.pack_slaves()):
            for ref in row.group.refs:  # where the group comes back after an undo
                self._last_line[ref] = row.line
        row.frame.destroy()

    def _resized(self, event) -> None:
        """Flow the groups again when the width changes by about a crop (debounced)."""
        if self.ctl is None or abs(event.width - self._laid_width) < TILE_WIDTH // 2:
            return
        if self._relayout_job is not None:
            self.top.after_cancel(self._relayout_job)
        self._relayout_job = self.top.after(200, self._relayout)

    def _relayout(self) -> None:
        self._relayout_job = None
        self._show_groups(reflow=True)

    def _tile(self, row: "_Row", master: tk.Misc, member: Member, kept: bool) -> None:
        colour, thickness = (KEPT_COLOUR, 5) if kept else (MEMBER_COLOUR, 1)
        tile = tk.Frame(master, highlightbackground=colour, highlightcolor=colour, highlightthickness=thickness,
                        padx=4, pady=4)
        tile.pack(side="left", padx=6, anchor="n")
        row.tiles[member.ref] = tile
        photo = self._photos.get(member.ref) or self._blank()
        button = ttk.Button(tile, image=photo, style="Crop.TButton", command=lambda m=member: self.open_cell(m))
        button.pack()
        row.buttons.setdefault(member.ref, []).append(button)
        if kept:
            ttk.Label(tile, text="kept", style="Kept.TLabel").pack()
        else:
            ttk.Label(tile, text=evidence_text(member), justify="center", wraplength=TILE_WIDTH - 10).pack()
        sharp = tk.StringVar(value=self._sharpness_text(member.ref))
        row.sharp.setdefault(member.ref, []).append(sharp)
        ttk.Label(tile, textvariable=sharp).pack()
        ttk.Label(tile, text=f"{member.image}\n{member.cell_id}", foreground="#555555", justify="center",
                  wraplength=THUMBNAIL + 20).pack()
        if not kept:
            ttk.Button(tile, text="Not the same cell",
                       command=lambda m=member: self._decide(self.ctl.split, row.group, m)).pack(fill="x")
            ttk.Button(tile, text="Keep this one",
                       command=lambda m=member: self._decide(self.ctl.swap_keeper, row.group, m)).pack(fill="x")
        for widget in (tile, button):
            self._scrolls(widget)

    def _blank(self) -> tk.PhotoImage:
        if not hasattr(self, "_blank_photo"):
            self._blank_photo = tk.PhotoImage(master=self.top, width=THUMBNAIL, height=THUMBNAIL)
        return self._blank_photo

    def _sharpness_text(self, ref: str) -> str:
        known = self.ctl.sharpness.get(ref) if self.ctl else None
        value = known if known is not None else self._sharpness.get(ref)
        return "sharpness …" if value is None else f"sharpness {value:.1f}"

    def _request_crops(self) -> None:
        """Cut the crops not cut yet, photo by photo (the controller keeps the last photo decoded)."""
        ctl = self.ctl
        assert ctl is not None
        todo = {m.ref: m for g in ctl.groups[:self.shown] for m in (g.keeper, *g.members)
                if m.ref not in self._photos and m.box is not None}
        ordered = sorted(todo.values(), key=lambda m: (m.image, m.cell_id))
        self.thumbs.request([(m.ref, lambda m=m: ctl.crop(m)) for m in ordered])

    @property
    def crops_loaded(self) -> bool:
        return self.loaded and not self.thumbs.busy

    # -- decisions ------------------------------------------------------------------------------
    def _decide(self, action: Callable[..., None], *args) -> None:
        if self.ctl is None or self.job is not None:
            self.status.set("Wait until the search ends.")
            return
        try:
            action(*args)
        except UserError as exc:
            self.status.set(str(exc))
            return
        self.status.set("")
        self._show_groups()

    def undo(self) -> None:
        if self.ctl is None or not self.ctl.can_undo():
            self.status.set("Nothing to undo.")
            return
        self._decide(self.ctl.undo)

    def open_cell(self, member: Member) -> None:
        self.window.show_cell(member.image, [member.cell_id], member.box)

    # -- the poll loop ---------------------------------------------------------------------------
    def _poll(self) -> None:
        self._poll_job = None
        try:
            for result in self.loader.drain(limit=1):
                if result.crash:
                    self.report_error(*result.crash)
                    self.status.set("reading the marks: internal error (see the log)")
                elif result.problem:
                    self.status.set(result.problem)
                else:
                    self._marks_read(*result.value)
            if self.job is not None:
                self._job_events()
            for result in self.thumbs.drain(limit=THUMBS_PER_TICK):
                self._crop_arrived(result)
        finally:
            if self.exists():
                self._poll_job = self.top.after(POLL_MS, self._poll)

    def _crop_arrived(self, result) -> None:
        if result.crash:
            self.report_error(*result.crash)
            return
        if result.problem:
            self.status.set(result.problem)
            return
        image, sharpness = result.value
        photo = self._photos[result.key] = ImageTk.PhotoImage(image, master=self.top)
        if sharpness is not None:
            self._sharpness[result.key] = sharpness
        for button in self._crop_buttons.get(result.key, ()):
            button.configure(image=photo)
        for var in self._sharp_labels.get(result.key, ()):
            var.set(self._sharpness_text(result.key))

    # -- closing -------------------------------------------------------------------------------
    def close(self) -> None:
        self.loader.stop()
        self.thumbs.stop()
        if self.job is not None:
            self.job.cancel()  # its result is dropped: nothing is marked after the window closes
            self.job = None
        for job in (self._poll_job, self._relayout_job):
            if job is not None:
                self.top.after_cancel(job)
        self._poll_job = self._relayout_job = None
        self.top.destroy()
