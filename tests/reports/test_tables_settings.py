"""Tables never average records whose settings differ: such records get rows of their own,
labelled by what differs."""

import json

import pandas as pd
import pytest

from reports.tables import method_table, reference_rows, settings_suffixes, tidy
from tests.reports.conftest import rec


def with_epochs(record: dict, epochs: int) -> dict:
    settings = json.loads(record["settings"])
    settings["training"]["max_epochs"] = epochs
    return record | {"settings": json.dumps(settings, sort_keys=True)}


def test_records_of_two_max_epochs_are_two_rows_not_one_mean():
    frame = pd.DataFrame([with_epochs(rec("mmrecun", 0, 0.10, 0.2), 80), with_epochs(rec("mmrecun", 1, 0.12, 0.2), 80),
                          with_epochs(rec("mmrecun", 0, 0.20, 0.4, original_forget_ks=0.9), 40),
                          rec("graph_edit", 0, 0.14, 0.3)])
    table = method_table(tidy(frame)).set_index("label")
    assert list(table.index) == ["graph_edit", "mmrecun [training.max_epochs=40]", "mmrecun [training.max_epochs=80]"]
    assert table.loc["mmrecun [training.max_epochs=80]", "seeds"] == 2
    assert table.loc["mmrecun [training.max_epochs=80]", "retain_test_ndcg@20"] == pytest.approx(0.11)
    assert table.loc["mmrecun [training.max_epochs=40]", "retain_test_ndcg@20"] == pytest.approx(0.20)
    refs = reference_rows(tidy(frame)).set_index("label")
    assert "original [training.max_epochs=40]" in refs.index and "original [training.max_epochs=80]" in refs.index
    assert refs.loc["original [training.max_epochs=40]", "forget_ks"] == pytest.approx(0.9)


def test_code_versions_and_ratios_split_rows_too_and_agreeing_records_keep_their_label(records):
    assert set(tidy(records)["label"]) == {"graph_edit", "mmrecun", "tru", "tru front: lr=0.03", "tru-no-gate"}
    frame = pd.DataFrame([rec("tru", 0), rec("tru", 1, code_version="0.1.0+def"), rec("tru", 2, ratio=0.1),
                          rec("tru", 3, settings=None)])
    tidied = tidy(frame)
    assert list(tidied["label"]) == ["tru [code=0.1.0+abc]", "tru [code=0.1.0+def]", "tru",
                                     "tru [settings not recorded, code=0.1.0+abc]"]
    # another deletion ratio is another cell, not another row of the same cell
    assert list(tidied["regime"]) == ["user (random 0.2)"] * 2 + ["user (random 0.1)", "user (random 0.2)"]
    assert set(tidied["regime_name"]) == {"user"}
    assert list(settings_suffixes(frame, ["method"])) == [" [code=0.1.0+abc, ratio=0.2]", " [code=0.1.0+def, ratio=0.2]",
                                                          " [code=0.1.0+abc, ratio=0.1]",
                                                          " [settings not recorded, code=0.1.0+abc, ratio=0.2]"]
    one = pd.DataFrame([rec("tru", 0), rec("tru", 1, settings=None)])  # only the settings' presence differs
    assert list(settings_suffixes(one, ["method"])) == ["", " [settings not recorded]"]
