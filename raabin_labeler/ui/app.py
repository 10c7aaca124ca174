"""Starting the window: which project, which expert, and what to show first."""
from __future__ import annotations

import gc
import importlib
import os
import threading
import tkinter as tk
from pathlib import Path
from tkinter import messagebox, ttk

from ..app.agreement import AgreementController, default_experts
from ..app.labeling import LabelingController
from ..app.settings import Settings
from ..core.project import Project, check_author_id
from ..errors import UserError
from .main_window import MainWindow


def ask_expert(root: tk.Misc, project: Project, current: str | None) -> str | None:
    """The identity dialog: pick a known expert of the project or type a new name."""
    dialog = tk.Toplevel(root)
    dialog.title("Who is labeling?")
    if root.winfo_viewable():
        dialog.transient(root)
    ttk.Label(dialog, text="Your expert name. Your labels are saved under it, apart from other experts'.",
              wraplength=320).pack(padx=10, pady=(10, 4))
    choice = tk.StringVar(value=current or (project.experts[0] if project.experts else ""))
    box = ttk.Combobox(dialog, textvariable=choice, values=project.experts)
    box.pack(padx=10, fill="x")
    box.select_range(0, "end")  # typing a new name replaces the suggestion
    box.icursor("end")
    box.focus_set()
    error = ttk.Label(dialog, foreground="#a03030")
    error.pack(padx=10)
    result: list[str] = []

    def ok(_event=None) -> None:
        try:
            result.append(check_author_id(choice.get().strip()))
        except UserError as exc:
            error.configure(text=str(exc))
            return
        dialog.destroy()

    ttk.Button(dialog, text="Start labeling", command=ok).pack(pady=10)
    dialog.bind("<Return>", ok)
    dialog.protocol("WM_DELETE_WINDOW", dialog.destroy)
    dialog.wait_visibility()
    box.focus_force()  # the first thing the user does is type a name
    dialog.grab_set()
    root.wait_window(dialog)
    return result[0] if result else None


class Session:
    """One window over one project; switching project or expert starts a new session."""

    def __init__(self, root: tk.Tk, settings: Settings):
        self.root = root
        self.settings = settings
        self.window: MainWindow | None = None
        self.next_project: Path | None = None

    def start(self, folder: Path, expert: str | None) -> MainWindow | None:
        try:
            project = Project.open(folder)
        except UserError as exc:
            messagebox.showerror("Cannot open project", str(exc), parent=self.root)
            return None
        expert = expert or self.settings.expert
        if expert is None:
            self.root.withdraw()  # the dialog alone, not over an empty window
            expert = ask_expert(self.root, project, None)
            self.root.deiconify()
            if expert is None:
                return None
        other = project.claim(expert)
        if other is not None:
            if not messagebox.askyesno(
                    "Already open for this expert",
                    f"{expert} is labeling in this project in another window: {other}.\n\nTwo windows of "
                    f"one expert save the same files, and the later save of a photo replaces the other's "
                    f"work on it. Open it here anyway?", parent=self.root):
                return None
            project.claim(expert, force=True)
        self.settings.expert = expert
        self.settings.remember_project(folder)
        project.add_expert(expert)
        key = str(project.root.resolve())
        view = self.settings.last_view.get(key)
        controller = LabelingController(project, expert, advance_after_label=self.settings.advance_after_label)
        self.window = MainWindow(self.root, controller, self.settings,
                                 on_open_project=self._switch_project, on_switch_expert=self._switch_expert)
        images = controller.images
        last = self.settings.last_image.get(key)
        if images:
            controller.open_index(images.index(last) if last in images else 0)
        if view and len(view) == 3 and controller.image:
            self.window.canvas.view.zoom, self.window.canvas.view.origin_x, self.window.canvas.view.origin_y = view
            self.window.canvas.fitted = False
            self.window.canvas.refresh(photo=True)
        self.window.photo_list.rebuild()
        return self.window

    def _switch_project(self, folder: Path) -> None:
        self.next_project = folder
        self.window.close()

    def _switch_expert(self) -> None:
        assert self.window is not None
        expert = ask_expert(self.root, self.window.controller.project, self.settings.expert)
        if expert and expert != self.settings.expert:
            self.settings.expert = expert
            self.next_project = self.window.controller.project.root
            self.window.close()


def _warm_up_agreement_view(project: Project) -> None:
    """Prepare Tools → Agreement… in the background once the window is up, so that it opens
    within a second (issue 7): import matplotlib's Tk backend and read the two default experts'
    files and pair their cells once (both kept until the files change). Nothing here touches Tk."""
    def work() -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)  # the window comes first
        except (AttributeError, OSError):
            pass
        try:
            importlib.import_module("raabin_labeler.ui.agreement_view")
            experts = default_experts(project)
            if len(experts) >= 2:  # pairs and per-photo counts are kept until the files change
                agreement = AgreementController(project, experts[0], experts[1])
                agreement.load()
                agreement.summary()
                agreement.matrix_at("leaf")
        except Exception:  # the view reports its own problems when it is opened
            pass
    threading.Thread(target=work, name="warm-up", daemon=True).start()


def launch(project: Path | None, *, expert: str | None, sample: Path) -> int:
    """Open the window; returns the exit code for the CLI."""
    settings = Settings.load()
    if expert:
        settings.expert = check_author_id(expert)
    folder = project or (Path(settings.recent_projects[0]) if settings.recent_projects
                         and (Path(settings.recent_projects[0]) / "project.json").exists() else sample)
    while folder is not None:
        try:
            root = tk.Tk(className="raabin-labeler")
        except tk.TclError as exc:  # no display (ssh without X forwarding, a headless server)
            raise UserError(f"cannot open the window: {exc} (the batch commands need no display: "
                            f"raabin-labeler --help)") from None
        root.geometry(settings.window_geometry or "1500x900")
        session = Session(root, settings)
        if session.start(folder, settings.expert) is None:
            root.destroy()
            return 1
        root.after(1500, _warm_up_agreement_view, session.window.controller.project)
        root.mainloop()
        folder, settings = session.next_project, session.settings
        del session, root
        gc.collect()  # free Tk objects on this thread: Tcl aborts if a worker thread frees them
    return 0
