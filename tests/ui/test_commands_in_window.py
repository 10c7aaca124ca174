"""Every command is reachable: the shortcuts table lists all bindings, a user's rebinding works,
and menus grey out what cannot run."""
from __future__ import annotations

from raabin_labeler.app.settings import Settings
from raabin_labeler.core.annotation import Box
from raabin_labeler.ui.app import Session

from .conftest import key, wait_until


def test_shortcuts_window_lists_every_command_with_its_key(open_window, small_project):
    window = open_window(small_project)
    key(window.canvas, "<F1>")
    tree = window.shortcuts_window.winfo_children()[0]
    rows = {tree.item(i, "text"): tree.set(i, "key") for i in tree.get_children()}
    assert len(rows) == len(window.registry.commands)
    assert rows["Undo"] == "<Control-z>" and rows["Next photo"] == "<Next>"


def test_a_rebinding_from_the_settings_file_takes_effect(tk_root, small_project):
    settings = Settings(expert="expert-a", key_bindings={"photo.next": "<Key-n>"})
    window = Session(tk_root, settings).start(small_project.root, "expert-a")
    tk_root.deiconify()
    wait_until(tk_root, lambda: window.canvas._photo_item is not None)
    window.canvas.focus_force()
    key(window.canvas, "<Key-n>")
    assert window.controller.image == "field-2.jpg"
    key(window.canvas, "<Next>")  # the default key no longer runs it
    assert window.controller.image == "field-2.jpg"
    assert window.errors == []


def test_menus_grey_out_what_cannot_run_and_tick_settings(open_window, small_project):
    window = open_window(small_project)
    edit = [m for m in window.root.nametowidget(window.root["menu"]).winfo_children()][1]
    window._refresh_menu(edit, window.registry.in_menu("Edit"))
    assert edit.entrycget(edit.index("Undo"), "state") == "disabled"
    window.controller.place_box(300, 300)
    window._refresh_menu(edit, window.registry.in_menu("Edit"))
    assert edit.entrycget(edit.index("Undo"), "state") == "normal"
    assert window._menu_vars["edit.advance"].get() is True
    window.run("edit.advance")
    window._refresh_menu(edit, window.registry.in_menu("Edit"))
    assert window._menu_vars["edit.advance"].get() is False and not window.controller.advance_after_label


def test_a_rebinding_tk_cannot_read_is_skipped_and_named_not_a_window_that_fails(tk_root, small_project):
    settings = Settings(expert="expert-a", key_bindings={"photo.next": "<Key-foo>", "photo.done": "<Key-n>"})
    window = Session(tk_root, settings).start(small_project.root, "expert-a")
    assert window is not None
    tk_root.deiconify()
    wait_until(tk_root, lambda: window.canvas._photo_item is not None)
    assert "photo.next" in window._note.get() and "Key-foo" in window._note.get()
    assert window.errors == []


def test_shift_tab_as_x11_sends_it_selects_the_previous_cell_and_keeps_the_focus(open_window, small_project):
    """X11 sends Shift+Tab as ISO_Left_Tab; unbound, Tk moved the focus to the Done button."""
    window = open_window(small_project)
    c = window.controller
    first, second = c.add_cell(Box(50, 50, 150, 150)), c.add_cell(Box(400, 50, 500, 150))
    c.select(second.id)
    key(window.canvas, "<ISO_Left_Tab>")
    assert c.selected == first.id
    assert window.root.focus_get() is window.canvas
