"""The architecture as a rule the code must keep (docs/architecture.md): dependencies point one way,
events <- sdk <- service packages <- admin / cli, and a package is used only through what its ``__init__`` names.

Every import of the three source folders is read with ``ast`` (imports inside functions too), so a new module that
reaches the wrong way fails here, naming the file, the line and the rule.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"events": "flagstream.events", "sdk": "flagstream", "services": "flagstream.services"}
#: The HTTP edge and the command line: they may use every service package, nothing below may use them.
EDGES = ("admin", "cli")
#: The embedded default's composition root may import everything (it wires admin, projector and runtime).
COMPOSITION_ROOT = "flagstream.services.runtime.up"


@dataclass(frozen=True)
class Import:
    file: str
    line: int
    source: str  # the importing module
    target: str  # the imported module (absolute)
    names: tuple[str, ...]  # names taken from it (empty for ``import x``)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.source} imports {self.target} {list(self.names) or ''}".rstrip()


def module_name(path: Path) -> tuple[str, bool]:
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    is_package = rest[-1] == "__init__"
    parts = rest[:-1] if is_package else rest
    return ".".join([FOLDERS[folder], *parts]), is_package


def imports() -> Iterator[Import]:
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            source, is_package = module_name(path)
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield Import(str(path.relative_to(ROOT)), node.lineno, source, alias.name, ())
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = source.split(".") if is_package else source.split(".")[:-1]
                        base = base[: len(base) - (node.level - 1)]
                        target = ".".join([*base, *([node.module] if node.module else [])])
                    else:
                        target = node.module or ""
                    names = tuple(alias.name for alias in node.names)
                    yield Import(str(path.relative_to(ROOT)), node.lineno, source, target, names)


def layer(module: str) -> tuple[int, str]:
    """(rank, package): events 0, sdk 1, a service package 2, admin and cli 3 (a higher rank may import a lower)."""
    parts = module.split(".")
    if parts[0] != "flagstream":
        return (-1, "")
    if len(parts) > 1 and parts[1] == "events":
        return (0, "events")
    if len(parts) > 1 and parts[1] == "services":
        package = parts[2] if len(parts) > 2 else ""
        return (3 if package in EDGES else 2, package)
    return (1, "sdk")


OURS = [imp for imp in imports() if imp.target.startswith("flagstream")]


def test_dependencies_point_one_way() -> None:
    """events <- sdk <- service packages <- admin / cli: nothing imports a layer above its own."""
    wrong = [str(imp) for imp in OURS if imp.source != COMPOSITION_ROOT and layer(imp.target)[0] > layer(imp.source)[0]]
    assert wrong == []


def test_admin_and_cli_do_not_import_each_other() -> None:
    """The CLI talks to the admin over HTTP; the admin never runs CLI code."""
    wrong = [
        str(imp)
        for imp in OURS
        if layer(imp.source)[0] == 3 and layer(imp.target)[0] == 3 and layer(imp.source)[1] != layer(imp.target)[1]
    ]
    assert wrong == []


def _public(package: str) -> set[str]:
    init = ROOT / "services" / package / "__init__.py"
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return {ast.literal_eval(element) for element in node.value.elts}  # type: ignore[attr-defined]
    raise AssertionError(f"services/{package}/__init__.py names no __all__")


SERVICE_PACKAGES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())


@pytest.mark.parametrize("package", [p for p in SERVICE_PACKAGES if p not in EDGES])
def test_each_service_package_names_its_public_api(package: str) -> None:
    public = _public(package)
    assert public, f"services/{package}/__init__.py exports nothing"
    module = __import__(f"flagstream.services.{package}", fromlist=["__all__"])
    assert sorted(public) == sorted(module.__all__)
    missing = [name for name in public if not hasattr(module, name)]
    assert missing == [], f"services/{package}: __all__ names what it does not define: {missing}"


def test_other_packages_use_a_service_package_only_through_its_public_api() -> None:
    """``from ..history import diff``, never ``from ..history.timetravel import _private``: a package's insides
    can change without breaking its users."""
    wrong = []
    for imp in OURS:
        src_rank, src_package = layer(imp.source)
        rank, package = layer(imp.target)
        if rank != 2 or package == src_package or imp.source == COMPOSITION_ROOT or src_rank < 2:
            continue
        parts = imp.target.split(".")
        if package == "":  # ``from .. import flagfile``: the package itself, used through its public names
            wrong += [f"{imp} ({name} is not a package)" for name in imp.names if name not in SERVICE_PACKAGES]
        elif len(parts) > 3:
            wrong.append(f"{imp} (import from flagstream.services.{package} instead)")
        elif not set(imp.names) <= _public(package):
            wrong.append(f"{imp} (not in its __all__: {sorted(set(imp.names) - _public(package))})")
    assert wrong == []


def test_service_packages_have_no_cycles() -> None:
    edges: dict[str, set[str]] = {}
    for imp in OURS:
        (src_rank, source), (rank, target) = layer(imp.source), layer(imp.target)
        if src_rank == rank == 2 and source != target and imp.source != COMPOSITION_ROOT:
            edges.setdefault(source, set()).add(target)

    def cycle_from(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                return [*path[path.index(nxt) :], nxt]
            found = cycle_from(nxt, [*path, nxt])
            if found:
                return found
        return None

    cycles = [c for start in sorted(edges) if (c := cycle_from(start, [start]))]
    assert cycles == []


def test_services_top_level_holds_packages_and_at_most_a_handful_of_modules() -> None:
    modules = sorted(p.name for p in (ROOT / "services").glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= 3, modules
