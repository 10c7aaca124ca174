"""The user's settings: who they are, recent projects, key bindings, preferences.

Kept in the user's config folder (``$XDG_CONFIG_HOME/raabin-labeler/settings.json``, or
``$RAABIN_LABELER_CONFIG`` for tests), declared with defaults, saved atomically. A broken file
is set aside as ``settings.json.broken`` and defaults are used: losing preferences is
better than refusing to start.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..core.store import StoreError, read_json, write_json

MAX_RECENT = 10


def config_dir() -> Path:
    if os.environ.get("RAABIN_LABELER_CONFIG"):
        return Path(os.environ["RAABIN_LABELER_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "raabin-labeler"


@dataclass
class Settings:
    expert: str | None = None
    recent_projects: list[str] = field(default_factory=list)
    key_bindings: dict[str, str] = field(default_factory=dict)  # command id → Tk key sequence
    advance_after_label: bool = True
    keep_zoom_between_photos: bool = False
    show_label_text: bool = True
    blind: bool = True
    chord_timeout_ms: int = 900
    last_image: dict[str, str] = field(default_factory=dict)  # project folder → image
    last_view: dict[str, list[float]] = field(default_factory=dict)  # project folder → zoom, x, y
    window_geometry: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        path = path or config_dir() / "settings.json"
        if not path.exists():
            return cls()
        try:
            data = read_json(path)
            if not isinstance(data, dict):
                raise StoreError(path, "expected a JSON object")
        except StoreError:
            path.replace(path.with_name(path.name + ".broken"))
            return cls()
        settings = cls()
        for f in fields(cls):
            if f.name in data and isinstance(data[f.name], type(getattr(settings, f.name))) or (
                    f.name in data and getattr(settings, f.name) is None and isinstance(data[f.name], str)):
                setattr(settings, f.name, data[f.name])
        # a key is a Tk sequence string ("" unbinds): anything else, typed by hand, is dropped here
        settings.key_bindings = {k: v for k, v in settings.key_bindings.items()
                                 if isinstance(k, str) and isinstance(v, str)}
        return settings

    def save(self, path: Path | None = None, data: dict[str, Any] | None = None) -> None:
        """Save these settings, or ``data`` (a snapshot taken on the Tk thread) from a worker."""
        write_json(path or config_dir() / "settings.json", data if data is not None else asdict(self),
                   overwrite_broken=True)

    def remember_project(self, folder: Path) -> None:
        text = str(Path(folder).resolve())
        self.recent_projects = [text, *[p for p in self.recent_projects if p != text]][:MAX_RECENT]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
