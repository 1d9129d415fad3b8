"""Load the policy YAML files, reporting every error with its file, line and field."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from workorder_pipeline.schemas.errors import ConfigurationError
from workorder_pipeline.schemas.figures import FiguresPolicy
from workorder_pipeline.schemas.policy import (
    Deadlines,
    LifecyclePolicy,
    Policy,
    ReferenceData,
    RoutingTree,
    Triage,
    Units,
)

UNITS_FILE = "units.yaml"
ROUTES_FILE = "routes.yaml"
DEADLINES_FILE = "deadlines.yaml"
TRIAGE_FILE = "triage.yaml"
LIFECYCLE_FILE = "lifecycle.yaml"
#: Optional: the score weights of the figures (schemas/figures.py); defaults when absent.
FIGURES_FILE = "figures.yaml"
#: Reference data: each file holds one list of ReferenceData, merged in this order.
REFERENCE_DIR = "reference"
REFERENCE_FILES = ("whitelist.yaml", "key-supervision.yaml", "checkpoints.yaml")

Model = TypeVar("Model", bound=BaseModel)
Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    file: Path
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f" {self.field}:" if self.field else ""
        return f"{self.file}:{self.line}:{where} {self.message}"


class PolicyError(ConfigurationError):
    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        super().__init__("invalid policy:\n" + "\n".join(f"  {p}" for p in problems))


def load_policy(directory: Path) -> Policy:
    """Load units, routes and deadlines from ``directory``; raise PolicyError listing every problem."""
    problems: list[PolicyProblem] = []
    units = _load(directory / UNITS_FILE, Units, problems)
    routing = _load(directory / ROUTES_FILE, RoutingTree, problems)
    deadlines = _load(directory / DEADLINES_FILE, Deadlines, problems)
    triage = _load(directory / TRIAGE_FILE, Triage, problems)
    lifecycle = _load(directory / LIFECYCLE_FILE, LifecyclePolicy, problems)
    figures_path = directory / FIGURES_FILE
    figures = _load(figures_path, FiguresPolicy, problems) if figures_path.exists() else FiguresPolicy()
    if units and routing:
        problems += _unknown_units(directory / ROUTES_FILE, units, routing)
    if problems or not (units and routing and deadlines and triage and lifecycle and figures is not None):
        raise PolicyError(problems)
    return Policy(
        units=units, routing=routing, deadlines=deadlines, triage=triage, lifecycle=lifecycle, figures=figures
    )


def load_reference(directory: Path) -> ReferenceData:
    """Load the reference lists from ``directory/reference``; raise PolicyError listing every problem."""
    problems: list[PolicyProblem] = []
    merged: dict[str, Any] = {}
    for name in REFERENCE_FILES:
        path = directory / REFERENCE_DIR / name
        if not path.exists():
            continue  # every list is optional
        part = _load(path, ReferenceData, problems)
        if part is not None:
            merged.update(part.model_dump(exclude_unset=True))
    if problems:
        raise PolicyError(problems)
    return ReferenceData.model_validate(merged)


class ReferenceFiles:
    """The reference lists, reloaded when their files change; a bad edit keeps the last good lists."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._stamp = self._files_stamp()
        self.current = load_reference(directory)

    def reload_if_changed(self) -> PolicyError | None:
        """Reload after an edit. Returns the error of a bad edit (the old lists stay in force)."""
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            self.current = load_reference(self._directory)
        except PolicyError as exc:
            return exc
        return None

    def _files_stamp(self) -> tuple[tuple[str, int, int], ...]:
        stamp = []
        for name in REFERENCE_FILES:
            try:
                stat = (self._directory / REFERENCE_DIR / name).stat()
            except FileNotFoundError:
                continue
            stamp.append((name, stat.st_mtime_ns, stat.st_size))
        return tuple(stamp)


def load_model(path: Path, model: type[Model]) -> Model:
    """One YAML file as ``model``; raise PolicyError naming the file, line and field of each problem."""
    problems: list[PolicyProblem] = []
    loaded = _load(path, model, problems)
    if loaded is None:
        raise PolicyError(problems)
    return loaded


def line_finder(path: Path) -> Callable[[Path_], int]:
    """The line a location (keys and indexes) of a YAML file starts on; 1 when unknown."""
    source = _YamlSource.read(path, [])
    return source.line_of if source is not None else lambda _loc: 1


def _load(path: Path, model: type[Model], problems: list[PolicyProblem]) -> Model | None:
    source = _YamlSource.read(path, problems)
    if source is None:
        return None
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"]) or source.repeat_location(error["msg"])
            problems.append(PolicyProblem(path, source.line_of(loc), ".".join(map(str, loc)), error["msg"]))
        return None


def _unknown_units(path: Path, units: Units, routing: RoutingTree) -> list[PolicyProblem]:
    line_of = line_finder(path)
    known = units.ids()
    problems = []
    for loc, unit in _named_units(routing):
        if unit not in known:
            line = line_of(loc)
            message = f"unit {unit!r} is not listed in {UNITS_FILE}"
            problems.append(PolicyProblem(path, line, ".".join(map(str, loc)), message))
    return problems


def _named_units(routing: RoutingTree) -> Iterator[tuple[Path_, str]]:
    def walk(node: Any, loc: Path_) -> Iterator[tuple[Path_, str]]:
        if node.unit:
            yield (*loc, "unit"), node.unit
        for index, unit in enumerate(node.jurisdiction):
            yield (*loc, "jurisdiction", index), unit
        for index, child in enumerate(node.routes):
            yield from walk(child, (*loc, "routes", index))

    yield from walk(routing.route, ("route",))
    conflict = routing.conflict_of_interest
    yield ("conflict_of_interest", "receiver"), conflict.receiver
    yield ("conflict_of_interest", "fallback"), conflict.fallback


@dataclass(frozen=True, slots=True)
class _YamlSource:
    """A YAML document's data and the line each of its values starts on."""

    data: Any
    lines: dict[Path_, int]
    scalars: dict[Path_, str]

    @classmethod
    def read(cls, path: Path, problems: list[PolicyProblem]) -> _YamlSource | None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            problems.append(PolicyProblem(path, 0, "", f"cannot read: {exc.strerror}"))
            return None
        try:
            node = yaml.compose(text, Loader=_PolicyLoader)
            data = yaml.load(text, Loader=_PolicyLoader)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 1
            problems.append(PolicyProblem(path, line, "", f"not valid YAML: {exc}"))
            return None
        lines: dict[Path_, int] = {}
        scalars: dict[Path_, str] = {}
        if node is not None:
            _index_lines(node, (), lines, scalars)
        return cls(data, lines, scalars)

    def repeat_location(self, message: str) -> Path_:
        """For a whole-document "...repeated: a, b" error: where the first repeat stands."""
        _, found, names = message.partition("repeated: ")
        if not found:
            return ()
        repeated = {name.strip() for name in names.split(",")}
        seen: set[str] = set()
        for loc, value in sorted(self.scalars.items(), key=lambda item: self.lines[item[0]]):
            if value in repeated and loc and loc[-1] in ("key", "id"):
                if value in seen:
                    return loc
                seen.add(value)
        return ()

    def line_of(self, loc: Path_) -> int:
        """The line of the deepest part of ``loc`` that exists in the file. A part the file
        does not hold is skipped: pydantic puts a tagged union's tag (``sms``) into the
        location, between the key and the fields the file does hold."""
        found: Path_ = ()
        for part in loc:
            # Compared as text: a YAML key "2027" and pydantic's location 2027 are one place.
            longer = (*found, str(part))
            if longer in self.lines:
                found = longer
        return self.lines.get(found, 1)


class _PolicyLoader(yaml.SafeLoader):
    """Safe YAML, but dates and times stay text: pydantic parses them and says where one is wrong."""


_PolicyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _index_lines(
    node: yaml.Node, loc: tuple[str, ...], lines: dict[Path_, int], scalars: dict[Path_, str]
) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.ScalarNode):
        scalars[loc] = str(node.value)
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            _index_lines(value_node, (*loc, key), lines, scalars)
            # The key's own line is the better pointer for a problem with its value.
            lines[(*loc, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*loc, str(index)), lines, scalars)
