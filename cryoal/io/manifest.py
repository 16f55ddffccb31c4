"""Dataset manifests: ``data_manifests/*.yaml`` read into one validated model.

A manifest says what a public (or locally generated) cryo-ET dataset is and how to get
every byte of it: where the files come from (``source``), each file's relative path, size,
SHA-256 and role (tomogram, picks, labels, template, ...), the voxel size, the coordinate
convention of the picks, the class map and the train/test split. ``data_manifests/README.md``
documents every field; :func:`load_manifest` turns any validation failure into one line
naming the manifest file, the field and the fix.

Bundled manifests live in the repository's ``data_manifests/`` folder (copied into the wheel
as ``cryoal/data_manifests``); more folders can be listed in ``$CRYOAL_MANIFESTS``
(``os.pathsep``-separated), searched first.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from cryoal.io.generators import check_generator_command
from cryoal.io.names import check_class_name, check_tomo_id

#: Environment variable with extra manifest folders (searched before the bundled one).
MANIFESTS_ENV = "CRYOAL_MANIFESTS"

#: What a file of a dataset is.
FileKind = Literal["tomogram", "picks", "labels", "template", "tilt_series", "archive", "metadata"]

#: Coordinate conventions of picks files (see cryoal.io.coords and cryoal.io.point_text):
#: ``relion-3/4`` rlnCoordinateX/Y/Z pixels; ``relion-5`` rlnCenteredCoordinate*Angst (Å from
#: the tomogram centre); ``copick`` JSON locations in Å; ``csv-angstrom`` / ``csv-pixel``
#: CSV x, y, z in Å or in voxels of the tomogram; ``portal-ndjson`` CZ cryoET Data Portal
#: point ndjson, voxels of the annotation's voxel spacing; ``coords-pixel`` text ``x y z``
#: per line (IMOD model2point, EMPIAR-10045), voxels of the tomogram.
Convention = Literal[
    "relion-3/4", "relion-5", "copick", "csv-angstrom", "csv-pixel", "portal-ndjson", "coords-pixel"
]
CONVENTIONS: tuple[str, ...] = (
    "relion-3/4", "relion-5", "copick", "csv-angstrom", "csv-pixel", "portal-ndjson", "coords-pixel"
)  # fmt: skip
#: The file suffix each convention is read from (cryoal tells formats apart by suffix).
CONVENTION_SUFFIX: dict[str, str] = {
    "relion-3/4": ".star",
    "relion-5": ".star",
    "copick": ".json",
    "csv-angstrom": ".csv",
    "csv-pixel": ".csv",
    "portal-ndjson": ".ndjson",
    "coords-pixel": ".coords",
}
#: Conventions whose coordinates are pixels; a picks file's ``voxel_size_A`` gives their size.
PIXEL_CONVENTIONS: tuple[str, ...] = ("relion-3/4", "csv-pixel", "portal-ndjson", "coords-pixel")
#: Conventions whose files never name their tomogram; a picks file's ``tomo_id`` does.
UNNAMED_CONVENTIONS: tuple[str, ...] = ("portal-ndjson", "coords-pixel")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")

#: A generated source's command: checked against cryoal.io.generators.GENERATORS.
GeneratorCommand = Annotated[list[str], AfterValidator(check_generator_command)]


class Source(BaseModel):
    """Where the files come from.

    ``kind: http``: each file is downloaded from ``base_url`` + ``/`` + its ``url`` (or its
    ``path``); ``--mirror URL`` replaces ``base_url``. ``kind: local``: files are copied from
    the folder ``root`` (relative to the manifest file). ``kind: generated``: ``commands``
    (cryoal argument lists) are run in an empty folder inside the dataset folder and produce
    the files; each must be an allowed generator with allowed arguments
    (:func:`cryoal.io.generators.check_generator_command`: ``simulate tomogram`` or
    ``simulate subtomograms``, relative paths without ``..``), else the manifest is
    refused when it is loaded. ``kind:
    manual``: the files have no direct download URL (a login, a web form); the user downloads
    them from ``landing_page`` into the dataset folder and ``cryoal data fetch`` verifies them.
    """

    model_config = ConfigDict(extra="forbid")

    kind: Literal["http", "local", "generated", "manual"]
    base_url: str | None = None
    root: str | None = None
    commands: list[GeneratorCommand] = Field(default_factory=list)
    doi: str | None = None
    portal_id: str | None = None
    landing_page: str | None = None
    notes: str = ""

    @model_validator(mode="after")
    def _check_kind(self) -> Source:
        if self.kind == "http":
            if not self.base_url or not re.match(r"^https?://", self.base_url):
                raise ValueError(
                    "an http source needs base_url: 'https://...' (the URL the file paths are "
                    "relative to)"
                )
        elif self.kind == "local":
            if not self.root:
                raise ValueError("a local source needs root: the folder the files are copied from")
        elif self.kind == "manual":
            if not self.landing_page:
                raise ValueError(
                    "a manual source needs landing_page: the page users download the files from"
                )
        elif not self.commands:
            raise ValueError(
                "a generated source needs commands: a list of cryoal argument lists, e.g. "
                "[[simulate, tomogram, sim, --seed, '3']]"
            )
        if self.kind != "generated" and self.commands:
            raise ValueError(f"commands is only for a generated source, not {self.kind!r}")
        return self


class ClassEntry(BaseModel):
    """One class of the dataset: its id (model output index), name and where it comes from."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=0)
    name: str
    pdb_id: str | None = None
    description: str = ""
    aliases: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return check_class_name(value)


class FileEntry(BaseModel):
    """One file of the dataset."""

    model_config = ConfigDict(extra="forbid")

    path: str
    kind: FileKind
    url: str | None = None
    size: int | None = Field(None, ge=0)
    sha256: str | None
    checksum_note: str | None = None
    tomo_id: str | None = None
    convention: Convention | None = None
    class_name: str | None = None
    voxel_size_A: float | None = Field(None, gt=0)
    description: str = ""

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        p = PurePosixPath(value)
        if not value or p.is_absolute() or ".." in p.parts or "\\" in value or value.endswith("/"):
            raise ValueError(
                f"path {value!r} must be a relative file path with '/' separators and no '..'"
            )
        if p.name.startswith(".cryoal-") or p.name.endswith(".part"):
            raise ValueError(f"path {value!r} uses a name cryoal reserves for its own files")
        return str(p)

    @field_validator("sha256")
    @classmethod
    def _check_sha(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not _SHA_RE.match(value):
            raise ValueError(
                f"sha256 {value!r} must be 64 hexadecimal digits (the output of sha256sum), or "
                "null with a checksum_note"
            )
        return value

    @field_validator("tomo_id")
    @classmethod
    def _check_tomo(cls, value: str | None) -> str | None:
        if value is not None:
            check_tomo_id(value, "fix the tomo_id")
        return value

    @model_validator(mode="after")
    def _check_roles(self) -> FileEntry:
        if self.sha256 is None and not self.checksum_note:
            raise ValueError(
                "sha256 is null but checksum_note is missing; say why no checksum is published "
                "(cryoal records one on the first verified download)"
            )
        if self.kind == "picks" and self.convention is None:
            raise ValueError(
                f"picks file {self.path!r} needs convention: one of {list(CONVENTIONS)}"
            )
        if self.kind != "picks" and self.convention is not None:
            raise ValueError(f"convention is only for picks files, not a {self.kind} file")
        if self.convention is not None:
            suffix = CONVENTION_SUFFIX[self.convention]
            if PurePosixPath(self.path).suffix.lower() != suffix:
                raise ValueError(
                    f"picks file {self.path!r}: convention {self.convention} is read from a "
                    f"{suffix} file; fix the convention or the path"
                )
            if self.voxel_size_A is not None and self.convention not in PIXEL_CONVENTIONS:
                raise ValueError(
                    f"picks file {self.path!r}: voxel_size_A is the pixel size of pixel "
                    f"coordinates ({', '.join(PIXEL_CONVENTIONS)}); {self.convention} "
                    "coordinates carry their own unit, so remove it"
                )
        if self.kind in ("tomogram", "labels") and self.tomo_id is None:
            raise ValueError(f"{self.kind} file {self.path!r} needs tomo_id (the tomogram's id)")
        if self.convention in UNNAMED_CONVENTIONS and self.tomo_id is None:
            raise ValueError(
                f"picks file {self.path!r} needs tomo_id: {self.convention} files do not name "
                "their tomogram"
            )
        return self


class Split(BaseModel):
    """Tomogram ids for training and for testing (empty: not defined by the dataset)."""

    model_config = ConfigDict(extra="forbid")

    train: list[str] = Field(default_factory=list)
    test: list[str] = Field(default_factory=list)


class Manifest(BaseModel):
    """A dataset manifest (``data_manifests/<name>.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    format_version: Literal[1] = 1
    name: str
    title: str
    description: str
    licence: str
    citation: str
    source: Source
    voxel_size_A: float | None = Field(None, gt=0)
    axis_order: Literal["zyx"] = "zyx"
    box: int | None = Field(None, ge=8)
    classes: list[ClassEntry] = Field(default_factory=list)
    split: Split = Field(default_factory=Split)
    files: list[FileEntry] = Field(min_length=1)
    #: The file it was read from (set by :func:`load_manifest`).
    _file: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(
                f"name {value!r} must be lower case letters, digits and _ . - (it is the name "
                "users type: cryoal data fetch NAME)"
            )
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Manifest:
        paths = [f.path for f in self.files]
        dup = sorted({p for p in paths if paths.count(p) > 1})
        if dup:
            raise ValueError(f"files: path {dup[0]!r} is listed twice; list each file once")
        ids = [c.id for c in self.classes]
        if sorted(ids) != list(range(len(ids))):
            raise ValueError(f"classes: ids {sorted(ids)} must be 0, 1, ..., n-1 (one per class)")
        known: dict[str, str] = {}
        for c in self.classes:
            for label in (c.name, *c.aliases):
                if label in known and known[label] != c.name:
                    raise ValueError(
                        f"classes: {label!r} names both {known[label]!r} and {c.name!r}"
                    )
                known[label] = c.name
        tomo_list = [f.tomo_id for f in self.files if f.kind == "tomogram"]
        tomos = set(tomo_list)
        twice = sorted({str(t) for t in tomo_list if tomo_list.count(t) > 1})
        if twice:
            raise ValueError(
                f"files: tomo_id {twice[0]!r} names two tomogram files; give each tomogram "
                "its own tomo_id"
            )
        for f in self.files:
            if f.kind == "picks" and f.class_name is not None and f.class_name not in known:
                raise ValueError(
                    f"files: {f.path}: class_name {f.class_name!r} is not in the class map; add "
                    "it to classes (as a name or an alias)"
                )
            if f.kind in ("picks", "labels") and f.tomo_id is not None and f.tomo_id not in tomos:
                raise ValueError(
                    f"files: {f.path}: tomo_id {f.tomo_id!r} has no tomogram file; the tomograms "
                    f"are {sorted(t for t in tomos if t)}"
                )
        for part in ("train", "test"):
            unknown = sorted(set(getattr(self.split, part)) - tomos)
            if unknown:
                raise ValueError(
                    f"split.{part}: {unknown[0]!r} is not the tomo_id of a tomogram file"
                )
        if self.voxel_size_A is None and any(
            f.voxel_size_A is None for f in self.files if f.kind == "tomogram"
        ):
            raise ValueError("voxel_size_A is missing; give the tomograms' voxel size in Å")
        return self

    # ------------------------------------------------------------------ helpers
    @property
    def file(self) -> Path | None:
        """The manifest file it was read from (``None`` for one built in code)."""
        return self._file

    def fetch_argument(self) -> str:
        """What names this dataset on a command line (``cryoal data fetch ARG``): its name
        when the name finds this manifest (or it has no file), else its file's path."""
        if self._file is None:
            return self.name
        found = manifest_paths().get(self.name)
        if found is not None and found.resolve() == self._file.resolve():
            return self.name
        text = str(self._file)
        return shlex.quote(text)

    def files_of(self, kind: str) -> list[FileEntry]:
        """The files of one kind, in manifest order."""
        return [f for f in self.files if f.kind == kind]

    @property
    def class_names(self) -> list[str]:
        """Class names in id order."""
        return [c.name for c in sorted(self.classes, key=lambda c: c.id)]

    def class_for(self, label: str) -> str | None:
        """The class name that ``label`` (a name or an alias) stands for, or ``None``."""
        for c in self.classes:
            if label == c.name or label in c.aliases:
                return c.name
        return None

    @property
    def total_size(self) -> int | None:
        """Sum of the file sizes in bytes, or ``None`` when some size is not known."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)


# ---------------------------------------------------------------------- loading
def _field_path(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """``files[3].sha256`` style path; list items named by their ``path``/``name`` when known."""
    out = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            label = ""
            if isinstance(node, list) and 0 <= part < len(node) and isinstance(node[part], dict):
                label = str(node[part].get("path") or node[part].get("name") or "")
            out += f"[{part}]" + (f" ({label})" if label else "")
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        elif part in ("function-after", "function-before") or str(part).startswith("function"):
            continue
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "top level"


def _fix_for(err: Any) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "add this field"
    if kind == "extra_forbidden":
        return "remove it or check its spelling (see data_manifests/README.md)"
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        return f"use one of {expected}"
    return "fix the value (see data_manifests/README.md)"


def validation_message(path: str | os.PathLike, exc: ValidationError, raw: dict[str, Any]) -> str:
    """One line: file, field path, what is wrong, how to fix it (first error only)."""
    err = exc.errors(include_url=False)[0]
    where = _field_path(tuple(err["loc"]), raw)
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err.get("type") == "value_error":
        text = f"{msg}"
    else:
        got = err.get("input")
        shown = "" if err.get("type") == "missing" else f" (got {got!r})"[:80]
        text = f"{msg.lower()}{shown}; {_fix_for(err)}"
    more = len(exc.errors()) - 1
    tail = f" [{more} more problem{'s' if more > 1 else ''} after this one]" if more else ""
    if where == "top level" and err.get("type") == "value_error":
        return f"{path}: {text}{tail}"  # the message names its field itself
    return f"{path}: {where}: {text}{tail}"


def parse_manifest(raw: Any, path: str | os.PathLike) -> Manifest:
    """Validate an already-parsed YAML document (``path`` only names it in errors)."""
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a manifest must be a YAML mapping (name:, files:, ...)")
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(validation_message(path, exc, raw)) from None


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and validate one manifest file.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not YAML, or a field fails validation (one line: file, field path, fix).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found; check the path")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path}: not valid YAML ({' '.join(str(exc).split())}); fix the file"
        ) from exc
    manifest = parse_manifest(raw, path)
    manifest._file = path
    return manifest


def bundled_manifest_dir() -> Path:
    """The manifests shipped with cryoal: ``cryoal/data_manifests`` in an installed wheel,
    else the repository's ``data_manifests/`` (a source checkout or editable install)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "data_manifests"
    return installed if installed.is_dir() else package.parent / "data_manifests"


def manifest_dirs() -> list[Path]:
    """Folders searched for manifests: ``$CRYOAL_MANIFESTS`` entries, then the bundled one."""
    extra = [Path(p) for p in os.environ.get(MANIFESTS_ENV, "").split(os.pathsep) if p]
    return [*extra, bundled_manifest_dir()]


def manifest_paths() -> dict[str, Path]:
    """``name -> manifest file`` for every ``*.yaml`` in :func:`manifest_dirs` (first wins)."""
    found: dict[str, Path] = {}
    for folder in manifest_dirs():
        if folder.is_dir():
            for p in sorted(folder.glob("*.yaml")):
                found.setdefault(p.stem, p)
    return found


def find_manifest(name_or_path: str | os.PathLike) -> tuple[Manifest, Path]:
    """A manifest by dataset name (``shrec2021``) or by file path; returns it and its file.

    Raises
    ------
    FileNotFoundError
        Neither a manifest file nor a known dataset name (the message lists the names).
    ValueError
        The manifest is invalid, or its ``name`` differs from its file name.
    """
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_file():
        return load_manifest(candidate), candidate
    paths = manifest_paths()
    if text not in paths:
        names = ", ".join(sorted(paths)) or "(none found)"
        raise FileNotFoundError(
            f"{text}: no such dataset; known datasets: {names} (or pass a manifest .yaml file)"
        )
    manifest = load_manifest(paths[text])
    if manifest.name != text:
        raise ValueError(
            f"{paths[text]}: name {manifest.name!r} differs from the file name; rename one of them"
        )
    return manifest, paths[text]
