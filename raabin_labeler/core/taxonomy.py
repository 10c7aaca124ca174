"""The label tree: dotted paths (``neutrophil.band``), display names, hotkeys, roll-up.

The default tree is the Raabin-WBC one (FORMAT.md), kept in ``assets/taxonomy.json``; a project
may carry its own in project.json. Labels met on import that the tree lacks (BCCD's RBC,
Platelets) become *extra* labels rather than being dropped.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator

from .paths import ASSETS_DIR

DEFAULT_TAXONOMY_FILE = ASSETS_DIR / "taxonomy.json"


class TaxonomyError(ValueError):
    """A taxonomy description that cannot be used; the message names the label at fault."""


@dataclass(frozen=True)
class Label:
    path: str
    name: str
    matrix_name: str
    hotkey: str | None
    color: str
    parent: str | None
    children: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    extra: bool = False

    @property
    def key(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def top(self) -> str:
        return self.path.split(".", 1)[0]


def normalize_name(name: str) -> str:
    return re.sub(r"[\s_\-.()]+", " ", name.strip().lower()).strip()


def slug(name: str) -> str:
    """A label key made from a foreign name: ``"Platelets"`` → ``platelets``."""
    key = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    return key or "label"


@dataclass
class Taxonomy:
    name: str
    labels: dict[str, Label]
    unlabeled_aliases: tuple[str, ...] = ()
    _lookup: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for label in self.labels.values():
            for alias in (label.path, label.key, label.name, label.matrix_name, *label.aliases):
                self._lookup.setdefault(normalize_name(alias), label.path)

    # -- reading -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Taxonomy":
        if not isinstance(data, dict) or not isinstance(data.get("labels"), list):
            raise TaxonomyError("a taxonomy needs a list under 'labels'")
        labels: dict[str, Label] = {}

        def add(node: Any, parent: str | None) -> None:
            if not isinstance(node, dict) or not isinstance(node.get("key"), str) or not node["key"]:
                raise TaxonomyError(f"label under {parent or 'the top level'} needs a 'key' string")
            key = node["key"]
            if "." in key:
                raise TaxonomyError(f"label key {key!r} must not contain '.'")
            path = f"{parent}.{key}" if parent else key
            if path in labels:
                raise TaxonomyError(f"label {path!r} appears twice")
            children = node.get("children") or []
            name = str(node.get("name") or key)
            labels[path] = Label(
                path=path, name=name, matrix_name=str(node.get("matrix_name") or name),
                hotkey=str(node["hotkey"]) if node.get("hotkey") is not None else None,
                color=str(node.get("color") or "#e377c2"), parent=parent,
                children=tuple(f"{path}.{c.get('key')}" for c in children if isinstance(c, dict)),
                aliases=tuple(str(a) for a in node.get("aliases") or ()),
                extra=bool(node.get("extra", False)))
            for child in children:
                add(child, path)

        for node in data["labels"]:
            add(node, None)
        tax = cls(str(data.get("name") or "custom"), labels,
                  tuple(str(a) for a in data.get("unlabeled_aliases") or ()))
        tax._check_hotkeys()
        return tax

    def _check_hotkeys(self) -> None:
        seen: dict[tuple[str | None, str], str] = {}
        for label in self.labels.values():
            if label.hotkey is None:
                continue
            where = (label.parent, label.hotkey)
            if where in seen:
                raise TaxonomyError(f"hotkey {label.hotkey!r} is used by both {seen[where]!r} and {label.path!r}")
            seen[where] = label.path

    @classmethod
    def default(cls) -> "Taxonomy":
        return cls.from_dict(json.loads(DEFAULT_TAXONOMY_FILE.read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        def node(path: str) -> dict[str, Any]:
            label = self.labels[path]
            out: dict[str, Any] = {"key": label.key, "name": label.name}
            if label.matrix_name != label.name:
                out["matrix_name"] = label.matrix_name
            if label.hotkey is not None:
                out["hotkey"] = label.hotkey
            out["color"] = label.color
            if label.aliases:
                out["aliases"] = list(label.aliases)
            if label.extra:
                out["extra"] = True
            if label.children:
                out["children"] = [node(c) for c in label.children]
            return out

        return {"name": self.name, "labels": [node(p) for p in self.top_level()],
                "unlabeled_aliases": list(self.unlabeled_aliases)}

    # -- queries ------------------------------------------------------------------------
    def __contains__(self, path: object) -> bool:
        return path in self.labels

    def __iter__(self) -> Iterator[Label]:
        return iter(self.labels.values())

    def get(self, path: str) -> Label:
        try:
            return self.labels[path]
        except KeyError:
            raise TaxonomyError(f"unknown label {path!r}") from None

    def top_level(self) -> list[str]:
        return [p for p, label in self.labels.items() if label.parent is None]

    def wbc_labels(self) -> list[str]:
        """Every label of the white-cell tree (extra labels such as RBC left out)."""
        return [p for p, label in self.labels.items() if not label.extra]

    def leaves(self) -> list[str]:
        return [p for p, label in self.labels.items() if not label.children]

    def rollup(self, path: str) -> str:
        """The top-level class of a label: ``neutrophil.band`` → ``neutrophil``."""
        return self.get(path).top

    def display_name(self, path: str | None) -> str:
        """The name shown for a label; a class with sub-types, given alone, reads "Neutrophil ?"."""
        if path is None:
            return "Not labeled"
        label = self.get(path)
        return f"{label.name} ?" if label.children else label.name

    def by_hotkey(self, key: str, parent: str | None = None) -> str | None:
        """The label a key press picks, at the top level or under ``parent``."""
        for label in self.labels.values():
            if label.parent == parent and label.hotkey == key:
                return label.path
        return None

    def resolve(self, name: str) -> str | None:
        """The label path a foreign name means, or None for "a white cell, class not given".

        Raises KeyError for names that match nothing (the caller decides: extra label or error).
        """
        norm = normalize_name(name)
        if norm in {normalize_name(a) for a in self.unlabeled_aliases}:
            return None
        if norm in self._lookup:
            return self._lookup[norm]
        raise KeyError(name)

    def with_extra(self, name: str) -> tuple["Taxonomy", str]:
        """This tree plus an extra top-level label for a foreign name; returns (tree, path)."""
        key = slug(name)
        if key in self.labels:
            return self, key
        data = self.to_dict()
        data["labels"].append({"key": key, "name": name.strip() or key, "extra": True, "color": "#e377c2"})
        return Taxonomy.from_dict(data), key
