"""The jobs panel: what runs in the background, how far it is, cancel, the last error."""
from __future__ import annotations

import tkinter as tk
from tkinter import ttk
from typing import Callable

from ..core.jobs import Finished, ItemDone, Job, Progress


class JobsPanel(ttk.LabelFrame):
    """Shows one job at a time; ``poll`` is called from the window's ``after`` loop."""

    def __init__(self, master: tk.Misc):
        super().__init__(master, text="Background jobs")
        self.job: Job | None = None
        self.on_item: Callable[[ItemDone], None] = lambda event: None
        self.on_finished: Callable[[Finished], None] = lambda event: None
        self.text = tk.StringVar(value="idle")
        self.error = tk.StringVar(value="")
        ttk.Label(self, textvariable=self.text, width=34).pack(anchor="w")
        row = ttk.Frame(self)
        row.pack(fill="x")
        self.bar = ttk.Progressbar(row, mode="determinate", maximum=1)
        self.bar.pack(side="left", fill="x", expand=True)
        self.cancel_button = ttk.Button(row, text="Cancel", command=self.cancel, state="disabled")
        self.cancel_button.pack(side="right")
        ttk.Label(self, textvariable=self.error, foreground="#a03030", wraplength=260).pack(anchor="w")

    @property
    def busy(self) -> bool:
        return self.job is not None

    def start(self, job: Job, on_item: Callable[[ItemDone], None], on_finished: Callable[[Finished], None]) -> None:
        self.job, self.on_item, self.on_finished = job, on_item, on_finished
        self.error.set("")
        self.text.set(f"{job.name}: starting")
        self.bar.configure(maximum=max(1, len(job.items)), value=0)
        self.cancel_button.configure(state="normal")
        job.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.text.set(f"{self.job.name}: cancelling…")

    def poll(self) -> None:
        """Apply at most a small batch of events, so the window never stalls on a big job."""
        job = self.job
        if job is None:
            return
        for event in job.drain(limit=20):
            if isinstance(event, Progress):
                self.bar.configure(value=event.done)
                self.text.set(f"{job.name}: {event.done} / {event.total} {event.item}")
            elif isinstance(event, ItemDone):
                if event.outcome.error:
                    self.error.set(f"{job.describe(event.outcome.item)}: {event.outcome.error}")
                self.on_item(event)
            elif isinstance(event, Finished):
                self.job = None
                self.cancel_button.configure(state="disabled")
                state = "cancelled" if event.cancelled else "done"
                self.text.set(f"{job.name}: {state}, {event.done} / {event.total}"
                              + (f", {event.errors} failed" if event.errors else ""))
                self.on_finished(event)
                return
