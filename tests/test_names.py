"""flexseg.names (names from data become safe file names) and the record's format (runs.WrittenRecord)."""

from __future__ import annotations

import json
import os

import pytest

from flexseg.names import MAX_NAME_BYTES, describe_renamed, safe_filename, unique_filenames
from flexseg.runs import RECORD_FILE, WrittenRecord, inside, open_output


@pytest.mark.parametrize(
    "stem,suffix,expected",
    [
        ("case_001", ".png", "case_001.png"),
        ("../../x", ".nii.gz", "_.._.._x.nii.gz"),
        ("/abs/path", ".seg.dcm", "_abs_path.seg.dcm"),
        ("x\nnotes", ".png", "x_notes.png"),
        ("a\rb\u2028c\u2029d\x00e\x1bf", ".png", "a_b_c_d_e_f.png"),
        ("..", ".png", "_...png"),
        ("", ".png", "_.png"),
        (".hidden", ".png", "_.hidden.png"),
        (os.fsdecode(b"caf\xe9"), ".png", "caf_.png"),
        ("caf\u00e9", ".png", "caf\u00e9.png"),  # UTF-8 is kept
    ],
)
def test_a_name_from_data_becomes_one_safe_component(stem, suffix, expected):
    assert safe_filename(stem, suffix) == expected


def test_long_names_are_bounded_and_stay_apart():
    a, b = safe_filename("é" * 200 + "a", ".png"), safe_filename("é" * 200 + "b", ".png")
    assert a != b and a.endswith(".png") and b.endswith(".png")
    assert len(a.encode()) <= MAX_NAME_BYTES and len(b.encode()) <= MAX_NAME_BYTES
    a.encode("utf-8")  # cut on a character boundary


def test_clashes_are_numbered_and_reported():
    names, renamed = unique_filenames([("a", ".png"), ("a", ".png"), ("x\n", ".png"), ("x\r", ".png"), ("b", ".png")])
    assert names == ["a.png", "a~2.png", "x_.png", "x_~2.png", "b.png"]
    assert renamed == [(1, "a.png", "a~2.png"), (3, "x_.png", "x_~2.png")]
    line = describe_renamed(renamed, ["a.png", "a.jpg", "x\n.png", "x\r.png", "b.png"])
    assert line.startswith("2 output name(s)") and "a.jpg gets a~2.png (a.png is taken by another input)" in line


def test_the_record_holds_one_json_string_a_line_and_reads_older_plain_lines(tmp_path):
    record = WrittenRecord(tmp_path)
    for name in ("x\nnotes.png", "sub/a.png", os.fsdecode(b"caf\xe9.png")):
        record.add(name)
    lines = (tmp_path / RECORD_FILE).read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(line.isascii() for line in lines)
    assert [json.loads(line) for line in lines[:-1]] == ["x\nnotes.png", "sub/a.png", os.fsdecode(b"caf\xe9.png")]
    assert WrittenRecord(tmp_path).names == record.names
    (tmp_path / RECORD_FILE).write_text('mask.png\nsub/b.png\n"c.png"\n../out.png\n/abs.png\n"torn')
    assert WrittenRecord(tmp_path).names == {"mask.png", "sub/b.png", "c.png"}
    with open_output(tmp_path, "test"):  # opening the folder rewrites an older record in the new format
        pass
    assert [json.loads(line) for line in (tmp_path / RECORD_FILE).read_bytes().split(b"\n") if line] == [
        "c.png",
        "mask.png",
        "sub/b.png",
    ]


def test_a_path_that_leaves_the_folder_is_never_recorded_or_deleted(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "victim.txt").write_text("the user's")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "linked").symlink_to(tmp_path / "elsewhere")
    record = WrittenRecord(tmp_path / "out")
    for bad in ("../x", "/x", "a//b", "a/./b", ""):
        with pytest.raises(Exception, match="leaves the folder"):
            record.add(bad)
    record.names.add("linked/victim.txt")  # as if a record said so
    assert inside(tmp_path / "out", "linked/victim.txt") is None
    assert not record.remove("linked/victim.txt")
    assert (tmp_path / "elsewhere" / "victim.txt").read_text() == "the user's"
