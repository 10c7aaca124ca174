"""The store's promises: round trips, unknown keys kept, broken files reported and left alone,
atomic saves under SIGKILL, concurrent experts, and no crash on any malformed input."""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raabin_labeler.core.annotation import (Acquisition, Author, Box, Cell, ImageAnnotation, ImageRef,
                                            Status)
from raabin_labeler.core.store import StoreError, backup_path, load_annotation, save_annotation


def sample_annotation(n_cells: int = 3, author: str = "expert-a") -> ImageAnnotation:
    cells = tuple(Cell(f"c-{i}", Box(10 * i, 5, 10 * i + 40, 60), "neutrophil.band" if i % 2 else None,
                       source="detector:colorfilter-1" if i == 0 else None,
                       created="2026-11-25T10:02:11Z", modified="2026-11-25T10:03:40Z")
                  for i in range(n_cells))
    return ImageAnnotation(ImageRef("smear07/IMG_0012.jpg", 640, 480, "ab" * 32), Author("expert", author),
                           cells, Acquisition(smear="S07", stain="Giemsa", magnification=100),
                           Status(done=False, seconds_spent=12))


def test_round_trip_keeps_every_field(tmp_path):
    ann = sample_annotation()
    save_annotation(tmp_path / "a.json", ann)
    assert load_annotation(tmp_path / "a.json") == ann


def test_unknown_keys_survive_load_and_save(tmp_path):
    data = sample_annotation().to_dict()
    data["lab_notes"] = {"slide": "box 4"}
    data["cells"][0]["confidence_by_model"] = [0.9, 0.1]
    data["image"]["scanner"] = "x"
    data["acquisition"]["immersion"] = "oil"
    (tmp_path / "a.json").write_text(json.dumps(data))
    save_annotation(tmp_path / "b.json", load_annotation(tmp_path / "a.json"))
    again = json.loads((tmp_path / "b.json").read_text())
    assert again["lab_notes"] == {"slide": "box 4"}
    assert again["cells"][0]["confidence_by_model"] == [0.9, 0.1]
    assert again["image"]["scanner"] == "x"
    assert again["acquisition"]["immersion"] == "oil"


def test_save_keeps_previous_version_as_backup(tmp_path):
    path = tmp_path / "a.json"
    first, second = sample_annotation(1), sample_annotation(2)
    save_annotation(path, first)
    save_annotation(path, second)
    assert load_annotation(path) == second
    assert load_annotation(backup_path(path)) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.json.bak"]


@pytest.mark.parametrize("text, where", [
    ('{"format": "raabin-labeler/1",\n "cells": [,]}', "line 2, column 12"),
    ("", None),
    ("[1, 2]", None),
    ('{"format": "raabin-labeler/1", "image": {"path": "x.jpg", "width": 5, "height": 5}, '
     '"author": {"kind": "expert", "id": "a"}, "cells": [{"id": "c", "box": [4, 4, 9, 9]}]}', "cells[0].box"),
])
def test_corrupt_file_is_reported_with_place_and_never_overwritten(tmp_path, text, where):
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(StoreError) as info:
        load_annotation(path)
    assert str(path) in str(info.value)
    if where:
        assert where in str(info.value)
    with pytest.raises(StoreError, match="left untouched"):
        save_annotation(path, sample_annotation())
    assert path.read_text() == text
    assert not backup_path(path).exists()


def test_broken_json_is_not_replaced_unless_asked(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"format": "raabin-')
    with pytest.raises(StoreError, match="left untouched"):
        save_annotation(path, sample_annotation())
    assert path.read_text() == '{"format": "raabin-'
    save_annotation(path, sample_annotation(), overwrite_broken=True)
    assert load_annotation(path) == sample_annotation()
    assert backup_path(path).read_text() == '{"format": "raabin-'


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["cells"][1].update(box=[50, 5, 40, 60]), "cells[1].box"),
    (lambda d: d["cells"][0].update(box=[600, 5, 700, 60]), "cells[0].box"),
    (lambda d: d["cells"][0].update(box=[1, 2, 3]), "cells[0].box"),
    (lambda d: d["cells"][0].update(id=""), "cells[0].id"),
    (lambda d: d["cells"][0].update(label=5), "cells[0].label"),
    (lambda d: d["cells"][0].update(nucleus_mask="/etc/passwd"), "cells[0].nucleus_mask"),
    (lambda d: d["cells"][0].update(nucleus_mask="masks/../../x.png"), "cells[0].nucleus_mask"),
    (lambda d: d["image"].update(path="../../outside.jpg"), "image.path"),
    (lambda d: d["image"].update(width=-3), "image"),
    (lambda d: d["author"].update(kind="robot"), "author.kind"),
    (lambda d: d.update(cells={"a": 1}), "cells"),
    (lambda d: d["cells"][1].update(id="c-0"), "cells[1].id"),
])
def test_wrong_schema_names_the_field(tmp_path, mutate, field):
    data = sample_annotation().to_dict()
    mutate(data)
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError) as info:
        load_annotation(path)
    assert f"({field})" in str(info.value)
    assert str(path) in str(info.value)


def test_newer_format_asks_for_an_upgrade(tmp_path):
    data = sample_annotation().to_dict()
    data["format"] = "raabin-labeler/9"
    (tmp_path / "a.json").write_text(json.dumps(data))
    with pytest.raises(StoreError, match="upgrade"):
        load_annotation(tmp_path / "a.json")


def test_coordinates_written_as_strings_are_read():
    data = sample_annotation().to_dict()
    data["cells"][0]["box"] = ["1", "2", "30.0", "40"]
    assert ImageAnnotation.from_dict(data).cells[0].box == Box(1, 2, 30, 40)


SAVER = r"""
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from raabin_labeler.core.annotation import *
from raabin_labeler.core.store import save_annotation
path, start, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for n in range(start, start + count):
    cells = tuple(Cell(f"c-{{i}}", Box(i, 0, i + 5, 5), "monocyte") for i in range(n % 40 + 1))
    ann = ImageAnnotation(ImageRef("x.jpg", 100, 100), Author("expert", sys.argv[4]), cells, status=Status(seconds_spent=n))
    save_annotation(path, ann)
    print(n, flush=True)
"""


def _saver(tmp_path: Path) -> Path:
    script = tmp_path / "saver.py"
    script.write_text(SAVER.format(repo=str(Path(__file__).resolve().parents[1])))
    return script


def test_sigkill_during_saves_never_leaves_a_broken_file(tmp_path):
    script, target = _saver(tmp_path), tmp_path / "ann" / "x.jpg.json"
    rng = random.Random(4)
    saved_total, start = 0, 0
    while saved_total < 200:
        proc = subprocess.Popen([sys.executable, script, str(target), str(start), "100000", "expert-a"],
                                stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # at least one save happened: the file exists from here on
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        done = 1 + len(out.split())
        saved_total += done
        ann = load_annotation(target)  # never broken: old or new version
        n = ann.status.seconds_spent
        assert start <= n <= start + done
        assert len(ann.cells) == n % 40 + 1
        start += done + 1
    assert saved_total >= 200


def test_two_experts_saving_the_same_photo_lose_nothing(tmp_path):
    script = _saver(tmp_path)
    folder = tmp_path / "annotations"
    procs = [subprocess.Popen([sys.executable, script, str(folder / who / "x.jpg.json"), "0", "500", who],
                              stdout=subprocess.DEVNULL) for who in ("expert-a", "expert-b")]
    for proc in procs:
        assert proc.wait(timeout=240) == 0
    for who in ("expert-a", "expert-b"):
        ann = load_annotation(folder / who / "x.jpg.json")
        assert ann.author.id == who and ann.status.seconds_spent == 499
        assert load_annotation(folder / who / "x.jpg.json.bak").status.seconds_spent == 498
        assert not [p for p in (folder / who).iterdir() if p.name.endswith(".tmp")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10 ** 30), 10 ** 30) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30)


def _mutations():
    base = sample_annotation().to_dict()
    keys = st.sampled_from(["format", "image", "author", "cells", "status", "acquisition"])
    return st.tuples(keys, json_values).map(lambda kv: {**base, kv[0]: kv[1]})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(_mutations(), json_values, st.binary(max_size=200), st.text(max_size=200)))
def test_loader_fuzz_gives_a_clear_error_or_a_valid_annotation(tmp_path, value):
    path = tmp_path / "fuzz.json"
    if isinstance(value, bytes):
        path.write_bytes(value)
    elif isinstance(value, str):
        path.write_bytes(value.encode("utf-8", "surrogatepass"))
    else:
        path.write_text(json.dumps(value))
    try:
        ann = load_annotation(path)
    except StoreError as exc:
        assert str(path) in str(exc)
    else:
        assert isinstance(ann, ImageAnnotation)


def test_deeply_nested_json_is_a_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(StoreError, match=str(path).replace("\\", "\\\\")):
        load_annotation(path)


def test_saves_keep_the_files_readable_by_the_other_experts(tmp_path):
    """A shared project folder: a new file gets the umask's permissions, a saved-over file keeps
    its own (the private temporary file's 0600 once leaked into every save)."""
    import stat

    from raabin_labeler.core import store

    new_file = 0o666 & ~store._UMASK
    save_annotation(tmp_path / "new.json", sample_annotation())
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == new_file
    (tmp_path / "group.json").write_text("{}")
    (tmp_path / "group.json").chmod(0o664)
    save_annotation(tmp_path / "group.json", sample_annotation(), overwrite_broken=True)
    assert stat.S_IMODE((tmp_path / "group.json").stat().st_mode) == 0o664
    store.atomic_write_bytes(tmp_path / "mask.png", b"\x89PNG")
    assert stat.S_IMODE((tmp_path / "mask.png").stat().st_mode) == new_file
