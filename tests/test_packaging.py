"""Our packaging as pip builds it: no warnings of our own making, and every module,
migration and data file in the wheel."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile

from harness import ROOT
from waiting import scaled


def test_wheel_builds_without_warnings_and_holds_every_package(tmp_path):
    # A copy of the tree: a build writes build/ and *.egg-info beside the sources.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "var", "build", ".fuzz", "*.egg-info", "__pycache__", ".pytest_cache"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(source)],
                           capture_output=True, text=True, timeout=scaled(300))
    assert built.returncode == 0, built.stderr
    output = built.stdout + built.stderr
    # The build backend's own warnings (deprecated metadata, modules outside the package list).
    warnings = [line for line in output.splitlines() if re.search(r"(Warning|deprecated|absent from)", line)
                and "pypi" not in line and "Location" not in line]
    assert warnings == [], "\n".join(warnings)
    wheel = next(tmp_path.glob("groupware_gateways-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in ("server/storage/migrations/env.py", "server/storage/migrations/script.py.mako",
                 "server/storage/migrations/versions/0001_initial.py", "shared/groupware.wsdl",
                 "groupware/cli.py", "gateways/pop3/server.py"):
        assert path in names, path
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "fuzz/", "bench/"))]
    metadata = next(n for n in names if n.endswith("/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: AGPL-3.0-or-later" in text or "License: AGPL-3.0-or-later" in text
    assert "Classifier: License ::" not in text
