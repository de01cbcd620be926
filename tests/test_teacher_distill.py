"""A teacher's logits as distillation targets (`birdtpu embed --predictions`): classes mapped by
scientific name, unmapped ones reported and left empty, empty classes keep their labels."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from birdtpu.data.crops import teacher_blend
from birdtpu.errors import DataError
from birdtpu.teachers.targets import class_map, read_names, teacher_predictions
from birdtpu.train.teacher_targets import read_teacher

BIRDNET_LABELS = ["Turdus merula_Eurasian Blackbird", "Parus major_Great Tit", "Pica pica_Magpie"]


def test_names_tables_and_the_class_map(tmp_path):
    plus = tmp_path / "taxonomy.csv"
    plus.write_text(
        "primary_label,scientific_name,class_name\ngretit1,Parus major,Aves\nfrog1,Hyla x,Amphibia\n"
    )
    ebird = tmp_path / "eBird_Taxonomy_v2021.csv"
    ebird.write_text(
        "TAXON_ORDER,SPECIES_CODE,SCI_NAME\n1,eurbla,turdus merula\n2,gretit1,Parus major\n"
    )
    assert read_names(str(plus)) == {"gretit1": "Parus major", "frog1": "Hyla x"}
    names = read_names(str(ebird))
    index, unmapped = class_map(["gretit1", "eurbla", "nosuch"], names, BIRDNET_LABELS)
    assert index.tolist() == [1, 0, -1] and unmapped == ["nosuch"]  # case-insensitive, before '_'
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name\na,b\n")
    with pytest.raises(
        DataError, match="bad.csv: expected columns primary_label,scientific_name or"
    ):
        read_names(str(bad))


def test_teacher_predictions_are_the_max_over_a_recordings_windows():
    logits = np.array([[0.0, 2.0, -1.0], [1.0, -2.0, 0.5], [3.0, 0.0, 0.0]])
    data = {"logits": logits, "recording": ["a.ogg", "a.ogg", "b.ogg"]}
    table = teacher_predictions(data, ["gretit1", "eurbla", "nosuch"], np.array([1, 0, -1]))
    sig = 1 / (1 + np.exp(-logits))
    assert table["row_id"].tolist() == ["a.ogg", "b.ogg"]
    np.testing.assert_allclose(table["gretit1"], [sig[:2, 1].max(), sig[2, 1]])
    np.testing.assert_allclose(table["eurbla"], [sig[:2, 0].max(), sig[2, 0]])
    assert table["nosuch"].isna().all()


def test_a_class_the_teacher_leaves_empty_keeps_its_label(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("row_id,a,b\nx.ogg,0.2,\n")
    table = read_teacher([str(path)], ["a", "b"])
    assert np.isnan(table["b"].iloc[0])
    soft = table[["a", "b"]].to_numpy(np.float32)
    blend = teacher_blend(["x.ogg"], soft, 0.5)
    out = blend(tf.constant("x.ogg"), tf.constant([1.0, 1.0])).numpy()
    np.testing.assert_allclose(out, [0.5 * 1.0 + 0.5 * 0.2, 1.0])
    np.testing.assert_allclose(blend(tf.constant("other"), tf.constant([0.0, 1.0])).numpy(), [0, 1])
    path.write_text("row_id,a,b\nx.ogg,0.2,high\n")
    with pytest.raises(DataError, match=r"row 'x.ogg', column 'b': 'high' is not a number"):
        read_teacher([str(path)], ["a", "b"])


@pytest.mark.slow
def test_embed_writes_teacher_predictions_for_the_recipe(tmp_path):
    """`birdtpu embed --predictions` with the Perch stand-in on the tiny synthetic set: one row per
    catalog recording, two classes mapped by a names table, the third reported and empty; the
    table is a valid train.teacher_predictions."""
    import teacher_models as tm
    from conftest import TINY, run_cli

    teacher = tm.save_savedmodel(str(tmp_path / "perch_v2"))
    names = tmp_path / "names.csv"
    names.write_text("primary_label,scientific_name\nsyn00wh,Parus major\nsyn01tr,Turdus merula\n")
    out = tmp_path / "teacher.csv"
    sets = [
        f"--set={o}" for o in (*TINY, f"data.root={tmp_path}/data", f"output_dir={tmp_path}/runs")
    ]
    run = run_cli(
        "embed", *sets, f"--teacher=perch:{teacher}", f"--predictions={out}", f"--names={names}"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert (
        "2 of 3 classes mapped by scientific name" in run.stderr
        and "no teacher class for 1:" in run.stderr
    )
    table = pd.read_csv(out)
    assert len(table) == 18 and table.columns[0] == "row_id"
    classes = list(table.columns[1:])
    assert table[classes].isna().sum().tolist().count(18) == 1  # the unmapped class, empty
    read_teacher([str(out)], classes)  # usable as train.teacher_predictions
