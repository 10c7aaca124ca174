"""One registry of user commands: id, label, handler, enabled-check, default key.

The window builds its menus, its key bindings and the Help → Keyboard shortcuts table from
this registry (Thonny's ``add_command``; IDLE's virtual events keep *what* apart from *which
key*). A user's rebinding is a mapping of command id to key, stored in the settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Command:
    id: str
    label: str
    handler: Callable[[], object]
    default_key: str | None = None  # a Tk event sequence such as "<Control-z>"
    enabled: Callable[[], bool] = lambda: True
    menu: str | None = None  # the menu it appears in, if any
    checked: Callable[[], bool] | None = None  # for on/off settings: shown with a tick

    def run(self) -> bool:
        """Run if enabled; returns whether it ran."""
        if not self.enabled():
            return False
        self.handler()
        return True


class CommandRegistry:
    def __init__(self, overrides: dict[str, str] | None = None):
        self.commands: dict[str, Command] = {}
        self.overrides = dict(overrides or {})

    def add(self, command: Command) -> Command:
        if command.id in self.commands:
            raise ValueError(f"command {command.id!r} is registered twice")
        self.commands[command.id] = command
        return command

    def key_for(self, command_id: str) -> str | None:
        if command_id in self.overrides:
            return self.overrides[command_id] or None
        return self.commands[command_id].default_key

    def bindings(self) -> dict[str, str]:
        """Key sequence → command id; a user's rebinding wins over a default on the same key."""
        out: dict[str, str] = {}
        for cid in self.commands:
            if cid not in self.overrides and self.key_for(cid):
                out[self.key_for(cid)] = cid
        for cid in self.commands:
            if cid in self.overrides and self.key_for(cid):
                out[self.key_for(cid)] = cid
        return out

    def run(self, command_id: str) -> bool:
        return self.commands[command_id].run()

    def in_menu(self, menu: str) -> list[Command]:
        return [c for c in self.commands.values() if c.menu == menu]
