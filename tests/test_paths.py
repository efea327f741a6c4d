"""Printable names and output folders: the edges every command shares."""

import os

import pytest

from gfrnet_tf.errors import BadOutputError
from gfrnet_tf.io.paths import make_output_dir, printable


def test_names_that_are_not_utf8_print_as_escapes_and_others_unchanged():
    undecodable = os.fsdecode(b"caf\xe9_\xff.jpg")  # Latin-1 bytes, as scraped
    assert printable(undecodable) == "caf\\xe9_\\xff.jpg"
    printable(undecodable).encode("ascii")  # any terminal can show it
    assert printable("Zoë/ß 1.png") == "Zoë/ß 1.png"


def test_output_folder_is_created_or_refused_by_name(tmp_path):
    made = make_output_dir(tmp_path / "a" / "b")
    assert made.is_dir()
    (tmp_path / "file").write_text("x")
    for path, problem in (
        (tmp_path / "file", "is a file"),
        (tmp_path / "file" / "sub", "cannot write here: Not a directory"),
    ):
        with pytest.raises(BadOutputError, match=problem) as error:
            make_output_dir(path)
        assert error.value.source == str(path)


def test_control_characters_print_escaped_on_one_line():
    assert printable("a\nb\x00c\x1b[31m\x7f.png") == "a\\x0ab\\x00c\\x1b[31m\\x7f.png"
