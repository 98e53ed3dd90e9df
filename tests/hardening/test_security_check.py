"""scripts/security-check fails on what it promises to catch (scripts/test runs it on llmur itself first)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SCRIPT = ROOT / "scripts" / "security-check"
BANDIT = str(Path(sys.executable).with_name("bandit"))


def _run(root: Path, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run([str(root / "scripts" / "security-check"), python], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "BANDIT": BANDIT})


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "security-check")
    for name in ("accounts", "billing", "memory", "gateway", "llmur", "bench"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "manage.py").write_text("")
    for path, text in files.items():
        (tmp_path / path).write_text(text)
    return tmp_path


def test_eval_shell_true_unsafe_yaml_and_bandit_high_findings_fail(tmp_path):
    root = _tree(tmp_path, {
        "gateway/bad.py": "import subprocess, yaml\n\n"
                          "def handle(body):\n"
                          "    value = eval(body)\n"
                          "    subprocess.run(body, shell=True)\n"
                          "    return yaml.load(body, Loader=yaml.Loader), value\n\n"
                          "def cached(raw):\n"
                          "    import pickle\n"
                          "    return pickle.loads(raw)\n",
        "llmur/weak.py": "import requests\n\ndef fetch(url):\n    return requests.get(url, verify=False)\n",
    })
    result = _run(root)
    assert result.returncode == 1
    out = result.stderr
    assert "gateway/bad.py:4:" in out and "gateway/bad.py:5:" in out and "gateway/bad.py:6:" in out
    assert "gateway/bad.py:10:" in out
    assert "bandit high-severity findings" in out and "llmur/weak.py" in out


def test_a_commented_mention_is_not_a_finding(tmp_path):
    root = _tree(tmp_path, {"billing/note.py": "# never eval( user input, never shell=True\nX = 1\n"})
    result = _run(root)
    assert result.returncode == 0, result.stderr


def test_an_unexpected_pth_file_fails(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()
    Path(site, "innocent_helper.pth").write_text("import os; os.system('true')\n")
    root = _tree(tmp_path / "tree", {}) if (tmp_path / "tree").mkdir() is None else None
    result = _run(root, str(python))
    assert result.returncode == 1
    assert "unexpected .pth file" in result.stderr and "innocent_helper.pth" in result.stderr
