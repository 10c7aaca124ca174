from __future__ import annotations

import pytest

from raabin_labeler.core.taxonomy import Taxonomy, TaxonomyError


def test_default_tree_is_the_raabin_one():
    tax = Taxonomy.default()
    assert tax.top_level() == ["neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil",
                               "burst", "artifact", "not_recognized"]
    assert tax.get("neutrophil").children == ("neutrophil.mature", "neutrophil.band", "neutrophil.meta")
    assert tax.rollup("lymphocyte.large") == "lymphocyte"
    assert tax.display_name("burst") == "Burst (smudge cell)"
    assert tax.display_name(None) == "Not labeled"
    assert tax.display_name("neutrophil") == "Neutrophil ?"  # class sure, sub-type not


def test_hotkeys_form_two_key_chords():
    tax = Taxonomy.default()
    assert tax.by_hotkey("1") == "neutrophil"
    assert tax.by_hotkey("2", parent="neutrophil") == "neutrophil.band"
    assert tax.by_hotkey("2", parent="lymphocyte") == "lymphocyte.large"
    assert tax.by_hotkey("0") == "not_recognized"
    assert tax.by_hotkey("9") is None


def test_foreign_names_resolve_and_unknown_ones_become_extra_labels():
    tax = Taxonomy.default()
    assert tax.resolve("Small Lymph") == "lymphocyte.small"
    assert tax.resolve("band") == "neutrophil.band"
    assert tax.resolve("WBC") is None
    with pytest.raises(KeyError):
        tax.resolve("RBC")
    bigger, path = tax.with_extra("RBC")
    assert path == "rbc" and bigger.get("rbc").extra
    assert "rbc" not in bigger.wbc_labels()
    assert Taxonomy.from_dict(bigger.to_dict()).labels == bigger.labels


def test_a_project_tree_with_clashing_hotkeys_is_refused():
    data = Taxonomy.default().to_dict()
    data["labels"][1]["hotkey"] = "1"
    with pytest.raises(TaxonomyError, match="hotkey '1'"):
        Taxonomy.from_dict(data)
