"""What a run records about the code that made it: the commit of hsjp's own checkout, and nothing else's."""

import shutil
import subprocess
from pathlib import Path

import pytest

import hsjp
from hsjp.errors import ConfigError
from hsjp.training.provenance import git_state, provenance, read_provenance

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "HOME": str(repo), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout


def _repo(root: Path, package: str) -> Path:
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-q", "-m", "first")
    return root / package


def test_a_checkout_of_hsjp_gives_its_commit_and_whether_tracked_files_changed(tmp_path):
    package = _repo(tmp_path, "src/hsjp")
    commit = _git(tmp_path, "rev-parse", "HEAD").strip()
    assert git_state(package) == {"commit": commit, "dirty": False, "changed": []}
    (package / "__init__.py").write_text("x = 2\n")
    (package / "untracked.py").write_text("")  # a stray file is not a change to the code that ran
    assert git_state(package) == {"commit": commit, "dirty": True, "changed": ["src/hsjp/__init__.py"]}


def test_an_installed_copy_inside_another_repository_reports_no_commit(tmp_path):
    # a project's repository that holds a virtual environment: its commit says nothing about hsjp's code
    assert git_state(_repo(tmp_path, "venv/lib/site-packages/hsjp")) is None
    assert git_state(tmp_path / "not-a-repo") is None


def test_the_running_checkout_is_the_one_recorded():
    entry = provenance()
    here = Path(__file__).resolve().parents[2]
    if not (here / ".git").exists() or Path(hsjp.__file__).resolve().parent != here / "src" / "hsjp":
        pytest.skip("hsjp does not run from this git checkout")
    assert entry["git"]["commit"] == _git(here, "rev-parse", "HEAD").strip()
    assert entry["python"] and entry["libraries"]["lightning"]


@pytest.mark.parametrize("text", ["{not json", '{"time": 1}'])
def test_a_damaged_provenance_file_is_refused_in_one_line_not_overwritten(tmp_path, text):
    (tmp_path / "provenance.json").write_text(text)
    with pytest.raises(ConfigError, match=r"provenance\.json: not .*move it aside"):
        read_provenance(tmp_path)
    assert (tmp_path / "provenance.json").read_text() == text
