"""What the project installs: one top-level package, `workorder_pipeline`, whose subpackages are
the repository's top-level folders (relative links), and no module of ours under a bare name.

The wheel is what setuptools builds from pyproject.toml: its build_py step, run here into a
temporary directory, writes exactly the files a wheel holds besides its dist-info.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "workorder_pipeline"
#: Top-level folders of the checkout that are Python packages but not part of the product.
NOT_INSTALLED = {"tests"}


def top_level_packages() -> set[str]:
    return (
        {
            path.name
            for path in ROOT.iterdir()
            if path.is_dir() and not path.is_symlink() and (path / "__init__.py").is_file()
        }
        - NOT_INSTALLED
        - {PACKAGE}
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the wheel would install (build_py) and its metadata (egg_info), in tmp only."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q",
         "egg_info", "--egg-base", str(out), "build_py", "--build-lib", str(out / "lib")],
        cwd=ROOT, check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return out


def test_the_wheel_installs_one_top_level_name_workorder_pipeline(built: Path) -> None:
    assert sorted(os.listdir(built / "lib")) == [PACKAGE]
    top_level = next(built.glob("*.egg-info")) / "top_level.txt"
    assert top_level.read_text().split() == [PACKAGE]


def package_data() -> set[str]:
    """The files pyproject.toml declares as package data (templates, the console's static
    files, Alembic's ini), as the wheel names them."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    found = set()
    for package, patterns in declared.items():
        folder = ROOT.joinpath(*package.split(".")[1:])
        for pattern in patterns:
            found |= {f"{PACKAGE}/{path.relative_to(ROOT).as_posix()}" for path in folder.glob(pattern)}
    return found


def test_the_wheel_holds_every_module_of_the_top_level_folders_as_real_files(built: Path) -> None:
    modules = {
        f"{PACKAGE}/{path.relative_to(ROOT).as_posix()}"
        for name in top_level_packages()
        for path in (ROOT / name).rglob("*.py")
        if "__pycache__" not in path.parts
    }
    expected = {f"{PACKAGE}/__init__.py"} | modules | package_data()
    lib = built / "lib"
    files = {path.relative_to(lib).as_posix() for path in lib.rglob("*") if path.is_file()}
    assert files == expected  # the Alembic migrations included: package data of storage
    assert f"{PACKAGE}/storage/migrations/versions/0001_work_orders.py" in files
    # What the console and the monthly report render from, beside the modules.
    assert f"{PACKAGE}/api/console/templates/base.html" in files
    assert f"{PACKAGE}/api/console/static/htmx-2.0.11.min.js" in files
    assert f"{PACKAGE}/services/report_formats/templates/monthly.html.j2" in files
    assert not [path for path in lib.rglob("*") if path.is_symlink()]


def test_every_file_the_product_reads_besides_its_modules_is_declared_package_data() -> None:
    """A template or static file added without a package-data line would be missing from the
    wheel only: the checkout would hide it. script.py.mako serves `alembic revision` only."""
    others = {
        f"{PACKAGE}/{path.relative_to(ROOT).as_posix()}"
        for name in top_level_packages()
        for path in (ROOT / name).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    }
    assert others - package_data() == {f"{PACKAGE}/storage/migrations/script.py.mako"}


def test_the_console_script_wo_runs_the_installed_package(built: Path) -> None:
    entry_points = (next(built.glob("*.egg-info")) / "entry_points.txt").read_text()
    assert "wo = workorder_pipeline.wo.cli:main" in entry_points.splitlines()


def test_each_top_level_folder_is_a_relative_link_in_the_package() -> None:
    """A relative link works in any clone; a folder without a link would not be installed."""
    package = ROOT / PACKAGE
    links = {path.name: os.readlink(path) for path in package.iterdir() if path.is_symlink()}
    assert links == {name: f"../{name}" for name in top_level_packages()}
    assert {path.name for path in package.iterdir()} - set(links) <= {"__init__.py", "__pycache__"}


def test_importing_every_module_of_the_package_loads_none_under_a_bare_name() -> None:
    """The checkout is on sys.path here (as under pytest): `import services` would work, and
    would make a second copy of every module it reaches, enums included."""
    script = (
        "import importlib, pkgutil, sys\n"
        f"import {PACKAGE} as package\n"
        "for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "    importlib.import_module(module.name)\n"
        "loaded = sorted(name for name in sys.modules if name.startswith(package.__name__ + '.'))\n"
        f"bare = sorted(n for n in sys.modules if n.split('.')[0] in {sorted(top_level_packages())!r})\n"
        "print(len(loaded), bare)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    count, bare = done.stdout.strip().split(" ", 1)
    assert bare == "[]"
    assert int(count) > 100  # every module was reached through the links


def test_the_image_copies_the_package_and_every_folder_it_links() -> None:
    """deploy/Dockerfile copies folders one by one: a link to a folder it does not copy would
    dangle in the image's build, and that folder's modules would be missing."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    copied = {line.split()[1].rstrip("/") for line in dockerfile.splitlines() if line.startswith("COPY ")}
    assert {PACKAGE, *top_level_packages()} <= copied
