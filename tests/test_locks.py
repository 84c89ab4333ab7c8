"""The lock files (constraints/pyX.Y.txt): this environment is the one its Python's lock
describes, and nothing in it excludes a patch release of that Python."""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
VERSION = "{}.{}".format(*sys.version_info[:2])
LOCK = ROOT / "constraints" / f"py{VERSION}.txt"


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if match:
            found[canonicalize_name(match[1])] = match[2]
    return found


def installed() -> dict[str, metadata.Distribution]:
    return {
        canonicalize_name(d.metadata["Name"]): d
        for d in metadata.distributions()
        if d.metadata["Name"] and canonicalize_name(d.metadata["Name"]) not in ("mlcd", "pip")
    }


def test_every_installed_package_is_the_version_this_pythons_lock_pins():
    if not LOCK.exists():  # a Python with no lock of its own yet installs from the newest one
        return
    locked = pins(LOCK)
    wrong = {
        name: (d.version, locked.get(name))
        for name, d in installed().items()
        if locked.get(name) != d.version
    }
    assert not wrong, f"installed (version, locked) differ from {LOCK.name}: {wrong}"


def test_no_installed_package_excludes_an_earlier_patch_release_of_this_python():
    # Debian 12's python3 is 3.11.2: a pin that needs 3.11.5 would not install there.
    lowest = f"{VERSION}.0"
    excluding = {
        name: d.metadata["Requires-Python"]
        for name, d in installed().items()
        if d.metadata["Requires-Python"]
        and not SpecifierSet(d.metadata["Requires-Python"]).contains(lowest, prereleases=True)
    }
    assert not excluding, f"these need more than Python {lowest}: {excluding}"


def test_each_supported_python_has_a_lock_on_the_current_numeric_stack():
    for version in ("3.11", "3.12", "3.13"):
        locked = pins(ROOT / "constraints" / f"py{version}.txt")
        assert locked["deepchecks"] == "0.19.1"
        assert int(locked["numpy"].split(".")[0]) == 2
        assert tuple(int(p) for p in locked["scikit-learn"].split(".")[:2]) >= (1, 6)
