"""The user's settings file and the command registry (rebindable keys, STYLE.md)."""
from __future__ import annotations

import json

import pytest

from raabin_labeler.app.commands import Command, CommandRegistry
from raabin_labeler.app.settings import MAX_RECENT, Settings, config_dir


@pytest.fixture
def config(tmp_path, monkeypatch):
    folder = tmp_path / "config"
    monkeypatch.setenv("RAABIN_LABELER_CONFIG", str(folder))
    return folder


# -- settings -----------------------------------------------------------------------------
def test_the_config_folder_follows_the_environment(config, monkeypatch, tmp_path):
    assert config_dir() == config
    monkeypatch.delenv("RAABIN_LABELER_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_dir() == tmp_path / "xdg" / "raabin-labeler"


def test_first_start_has_defaults_and_no_identity(config):
    settings = Settings.load()
    assert settings == Settings() and settings.expert is None and settings.blind is True
    assert not (config / "settings.json").exists()


def test_settings_round_trip(config):
    settings = Settings(expert="ann", key_bindings={"undo": "<Control-u>"}, advance_after_label=False,
                        keep_zoom_between_photos=True, chord_timeout_ms=600, blind=False,
                        last_image={"/p": "s1/p0.jpg"}, last_view={"/p": [0.5, 10.0, 20.0]},
                        window_geometry="1400x900+0+0")
    settings.save()
    assert (config / "settings.json").exists()
    assert Settings.load() == settings


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]"])
def test_a_broken_settings_file_is_set_aside_and_defaults_are_used(config, text):
    config.mkdir()
    path = config / "settings.json"
    path.write_text(text, encoding="utf-8")
    assert Settings.load() == Settings()
    assert (config / "settings.json.broken").read_text(encoding="utf-8") == text
    Settings(expert="ann").save()  # the next save writes a fresh file
    assert Settings.load().expert == "ann"


def test_values_of_the_wrong_type_fall_back_to_defaults_and_unknown_keys_are_ignored(config):
    config.mkdir()
    (config / "settings.json").write_text(json.dumps({
        "expert": "ann", "recent_projects": "not a list", "chord_timeout_ms": "fast",
        "blind": False, "from_a_newer_version": 1}), encoding="utf-8")
    settings = Settings.load()
    assert settings.expert == "ann" and settings.blind is False
    assert settings.recent_projects == [] and settings.chord_timeout_ms == Settings().chord_timeout_ms


def test_recent_projects_are_newest_first_without_repeats_and_bounded(tmp_path):
    settings = Settings()
    for i in range(MAX_RECENT + 3):
        settings.remember_project(tmp_path / f"p{i}")
    settings.remember_project(tmp_path / "p5")
    assert len(settings.recent_projects) == MAX_RECENT
    assert settings.recent_projects[0] == str((tmp_path / "p5").resolve())
    assert settings.recent_projects.count(str((tmp_path / "p5").resolve())) == 1
    assert str((tmp_path / "p0").resolve()) not in settings.recent_projects


# -- commands -----------------------------------------------------------------------------
def registry(overrides=None) -> tuple[CommandRegistry, list[str]]:
    ran: list[str] = []
    reg = CommandRegistry(overrides)
    reg.add(Command("undo", "Undo", lambda: ran.append("undo"), "<Control-z>", menu="Edit"))
    reg.add(Command("redo", "Redo", lambda: ran.append("redo"), "<Control-y>", menu="Edit"))
    reg.add(Command("next_photo", "Next photo", lambda: ran.append("next"), "<Next>", menu="Go"))
    reg.add(Command("accept", "Accept proposal", lambda: ran.append("accept"), "a", enabled=lambda: False))
    return reg, ran


def test_default_keys_bind_their_commands():
    reg, _ = registry()
    assert reg.bindings() == {"<Control-z>": "undo", "<Control-y>": "redo", "<Next>": "next_photo", "a": "accept"}
    assert [c.id for c in reg.in_menu("Edit")] == ["undo", "redo"]


def test_a_users_rebinding_wins_over_the_default():
    reg, _ = registry({"undo": "<Control-u>"})
    assert reg.key_for("undo") == "<Control-u>"
    bindings = reg.bindings()
    assert bindings["<Control-u>"] == "undo" and "<Control-z>" not in bindings


def test_a_rebinding_onto_another_commands_default_key_takes_that_key():
    reg, _ = registry({"undo": "<Control-y>"})
    assert reg.bindings()["<Control-y>"] == "undo"
    assert "redo" not in reg.bindings().values()


def test_an_empty_rebinding_unbinds_the_command():
    reg, _ = registry({"next_photo": ""})
    assert reg.key_for("next_photo") is None and "next_photo" not in reg.bindings().values()


def test_run_respects_the_enabled_check():
    reg, ran = registry()
    assert reg.run("undo") is True
    assert reg.run("accept") is False
    assert ran == ["undo"]


def test_a_command_id_can_be_registered_once_only():
    reg, _ = registry()
    with pytest.raises(ValueError, match="undo"):
        reg.add(Command("undo", "Undo again", lambda: None))


def test_rebindings_from_settings_drive_the_registry(config):
    Settings(key_bindings={"redo": "<Control-Shift-z>"}).save()
    reg, ran = registry(Settings.load().key_bindings)
    assert reg.bindings()["<Control-Shift-z>"] == "redo"
    reg.run(reg.bindings()["<Control-Shift-z>"])
    assert ran == ["redo"]


def test_a_rebinding_that_is_not_text_is_dropped_on_load(config):
    import json
    config.mkdir(parents=True, exist_ok=True)
    (config / "settings.json").write_text(json.dumps({"key_bindings": {"photo.next": 5, "edit.undo": "<Control-u>"}}))
    assert Settings.load().key_bindings == {"edit.undo": "<Control-u>"}
