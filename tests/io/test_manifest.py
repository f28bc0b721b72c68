import pytest

from dina.errors import BadInputFile, BadManifest
from dina.io.manifest import read_manifest


def test_reads_rows_and_skips_blank_lines(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_manifest(p, required=("a",)) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"a": 1}\n{"a": \n', "line 2: not valid JSON"),
        ('{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object"),
        ('{"a": 1}\n{"b": 1}\n', "line 2: missing key"),
        ("\n\n", "no entries"),
    ],
)
def test_malformed_lines_are_named(tmp_path, text, match):
    p = tmp_path / "m.jsonl"
    p.write_text(text)
    with pytest.raises(BadManifest, match=match):
        read_manifest(p, required=("a",))


def test_missing_manifest(tmp_path):
    with pytest.raises(BadInputFile, match="does not exist"):
        read_manifest(tmp_path / "none.jsonl")
