"""Class map: parsing, dropping, remapping, names and the unknown-id error."""

import pytest

from edge.errors import DataError
from train.data.classmap import ClassMap, class_name, class_names


def test_parse_drop_and_remap():
    cmap = ClassMap.parse("1:1,2:0,3:2,4:3")
    assert [cmap.to_project(i) for i in (1, 2, 3, 4)] == [1, 0, 2, 3]
    assert cmap.project_ids == [1, 2, 3]
    assert cmap.to_text() == "1:1,2:0,3:2,4:3"
    assert ClassMap.parse(cmap.to_text()) == cmap


def test_unknown_severstal_id_is_an_error():
    cmap = ClassMap.parse("1:1,2:0,3:2")
    with pytest.raises(DataError, match="Severstal class 4 is not in the class map 1:1,2:0,3:2"):
        cmap.to_project(4)


def test_identity_covers_one_to_the_largest_id():
    assert ClassMap.identity([3, 1, 1]).mapping == {1: 1, 2: 2, 3: 3}
    assert ClassMap.identity([]).project_ids == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:1,2", "'2' is not 'severstal_id:project_id'"),
        ("1:a", "'1:a' is not"),
        ("1:1,1:2", "Severstal class 1 given twice"),
        ("1:1,2:3", r"project ids must be 1..C without gaps, got \[1, 3\]"),
    ],
)
def test_bad_map_text(text, message):
    with pytest.raises(DataError, match=message):
        ClassMap.parse(text)


def test_names():
    assert class_names([1, 2, 3]) == ["rolled-in scale", "scratches", "rolling films"]
    assert class_name(4) == "class 4"
    assert ClassMap.parse("1:0,2:1,3:2,4:3,5:4").names()[-1] == "class 4"
