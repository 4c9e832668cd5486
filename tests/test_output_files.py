"""stylegan_anime/output_files.py: outputs are linked into place without ever replacing what is there (a file,
a symlink, a dangling symlink), temp files never outlive the write, and free names count up NAME-1, NAME-2."""
from __future__ import annotations

import errno
import os

import pytest

from stylegan_anime.cli.common import USER_ERRORS
from stylegan_anime.output_files import OutputExists, claim_paths, free_name, new_output


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_new_output_writes_through_a_temp_file_beside_the_destination(tmp_path):
    dest = tmp_path / "sub" / "pic.png"  # the folder is made
    with new_output(dest) as tmp:
        assert tmp.parent == dest.parent and tmp.suffix == ".png" and tmp != dest
        assert not dest.exists()  # nothing at the destination until the block is done
        tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"new" and leftovers(dest.parent) == []


def test_an_existing_file_is_never_overwritten(tmp_path):
    dest = tmp_path / "pic.png"
    dest.write_bytes(b"mine")
    with pytest.raises(OutputExists, match="pic.png already exists; not overwriting it"):
        with new_output(dest) as tmp:
            tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"mine" and leftovers(tmp_path) == []


def test_a_file_that_appears_during_the_write_is_kept(tmp_path):
    dest = tmp_path / "pic.png"
    with pytest.raises(OutputExists):
        with new_output(dest, hint="pick another name") as tmp:
            tmp.write_bytes(b"new")
            dest.write_bytes(b"theirs")  # another process got there first
    assert dest.read_bytes() == b"theirs" and leftovers(tmp_path) == []


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_at_the_destination_is_neither_followed_nor_replaced(tmp_path, dangling):
    target = tmp_path / "target.txt"
    if not dangling:
        target.write_bytes(b"target")
    link = tmp_path / "out.png"
    link.symlink_to(target)
    with pytest.raises(OutputExists):
        with new_output(link) as tmp:
            tmp.write_bytes(b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert (target.read_bytes() == b"target") if not dangling else not target.exists()
    assert leftovers(tmp_path) == []


def test_a_symlink_planted_during_the_write_is_not_followed(tmp_path):
    target = tmp_path / "victim.txt"
    dest = tmp_path / "out.png"
    with pytest.raises(OutputExists):
        with new_output(dest) as tmp:
            tmp.write_bytes(b"new")
            dest.symlink_to(target)  # dangling: linking through it would create the victim
    assert not target.exists() and dest.is_symlink()


def test_an_error_inside_the_block_removes_the_temp_file(tmp_path):
    dest = tmp_path / "pic.png"
    with pytest.raises(ZeroDivisionError):
        with new_output(dest) as tmp:
            tmp.write_bytes(b"half")
            1 / 0
    assert not dest.exists() and leftovers(tmp_path) == []


def test_without_hard_links_it_renames_but_still_never_clobbers(tmp_path, monkeypatch):
    """A file system without hard links (some FUSE / SMB mounts): checked, then renamed."""
    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(os, "link", no_links)
    dest = tmp_path / "pic.png"
    with new_output(dest) as tmp:
        tmp.write_bytes(b"new")
    assert dest.read_bytes() == b"new" and leftovers(tmp_path) == []
    with pytest.raises(OutputExists):
        with new_output(dest) as tmp:
            tmp.write_bytes(b"newer")
    assert dest.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_free_name_counts_up_past_files_links_and_taken_names(tmp_path):
    base = tmp_path / "grid.png"
    assert free_name(base) == base
    base.write_bytes(b"x")
    assert free_name(base) == tmp_path / "grid-1.png"
    (tmp_path / "grid-1.png").symlink_to(tmp_path / "nowhere")  # a dangling symlink counts as taken
    assert free_name(base) == tmp_path / "grid-2.png"
    assert free_name(base, taken={tmp_path / "grid-2.png"}) == tmp_path / "grid-3.png"
    assert free_name(tmp_path / "new.png", taken={tmp_path / "new.png"}) == tmp_path / "new-1.png"
    assert free_name(tmp_path / "archive") == tmp_path / "archive"  # no suffix: NAME-1
    (tmp_path / "archive").mkdir()
    assert free_name(tmp_path / "archive") == tmp_path / "archive-1"


def test_claim_paths_names_the_first_taken_output(tmp_path):
    free, taken = tmp_path / "a.png", tmp_path / "b.png"
    claim_paths([free, tmp_path / "c.png"])  # nothing there: no error
    taken.write_bytes(b"x")
    with pytest.raises(OutputExists, match=r"b\.png already exists.*\(use another --outdir\)"):
        claim_paths([free, taken], hint="use another --outdir")
    (tmp_path / "d.png").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputExists, match=r"d\.png"):
        claim_paths([tmp_path / "d.png"])


def test_output_exists_is_a_one_line_user_error():
    assert issubclass(OutputExists, USER_ERRORS)
    e = OutputExists("x/y.png", "hint")
    assert str(e) == "x/y.png already exists; not overwriting it (hint)" and "\n" not in str(e)
