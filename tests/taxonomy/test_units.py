"""Official street lists import with errors that name the file, the line and the column."""

from __future__ import annotations

import pytest

from taxonomy import TaxonomyError, import_streets


def write(tmp_path, text):
    path = tmp_path / "streets.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_statistics_bureau_format(data_dir):
    streets = import_streets(data_dir / "admin" / "beijing_streets.csv")
    assert len(streets) == 349
    assert any(s.name == "建外街道" and s.district_code == "110105" for s in streets)
    assert sum(s.name == "八里庄街道" for s in streets) == 2  # 朝阳区 and 海淀区


def test_plain_format_with_district_code(tmp_path):
    path = write(tmp_path, "code,name,district_code\n110105001,建外街道,110105\n")
    assert import_streets(path, ["110105"])[0].name == "建外街道"


@pytest.mark.parametrize("text, key, reason", [
    ("code,title,areaCode\n1,建外街道,110105\n", "name", "missing column"),
    ("code,name,areaCode\n1,建外街道,999999\n", "line 2.areaCode", "unknown district"),
    ("code,name,areaCode\n1,建外街道,110105\n1,朝外街道,110105\n", "line 3.code", "duplicate code"),
    ("code,name,areaCode\n1,,110105\n", "line 2.name", "empty value"),
])
def test_bad_street_lists(tmp_path, text, key, reason):
    path = write(tmp_path, text)
    with pytest.raises(TaxonomyError) as err:
        import_streets(path, ["110105"])
    assert err.value.file == str(path) and err.value.key == key and reason in err.value.reason
