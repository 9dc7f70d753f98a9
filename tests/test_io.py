import json
import os
import stat

import pytest

from hsjp.io import atomic_write_json


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path):
    path = atomic_write_json(tmp_path / "sub" / "m.json", {"AP": 0.5})
    assert json.loads(path.read_text()) == {"AP": 0.5}
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    assert os.listdir(path.parent) == ["m.json"]


def test_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = atomic_write_json(tmp_path / "m.json", {"old": True})

    def killed(*args):
        raise KeyboardInterrupt  # as if the run were stopped between writing and renaming

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(path, {"new": True})
    assert json.loads(path.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["m.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_write_names_the_target_and_leaves_no_temporary(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(NotADirectoryError) as err:
        atomic_write_json(tmp_path / "file" / "sub" / "m.json", {})
    assert err.value.filename == str(tmp_path / "file" / "sub" / "m.json") and "cannot create folder" in str(err.value)

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="cannot write") as err:
        atomic_write_json(tmp_path / "m.json", {})
    assert err.value.filename == str(tmp_path / "m.json") and sorted(os.listdir(tmp_path)) == ["file"]
