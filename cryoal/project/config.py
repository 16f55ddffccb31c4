"""``project.yaml``: what a project is made of (classes, tomograms, box, defaults).

The file is plain YAML validated by pydantic, so a person can read it and a typo is an
error with the field's name rather than a surprise later. It is always written atomically
(temp file, fsync, rename): a crash leaves the old file or the new one, never half of one.

Example::

    format_version: 1
    name: myproj
    voxel_size_A: 10.0
    box: 32
    classes:
    - {id: 0, name: ribosome, colour: '#1f77b4'}
    - {id: 1, name: proteasome, colour: '#ff7f0e'}
    tomograms:
    - {id: TS_01, path: /data/TS_01.mrc, voxel_size_A: 10.0, shape_zyx: [200, 512, 512]}
    defaults: {strategy: auto, k: 50, round0_strategy: auto, seed: 0, ...}
    keys: {next: n, previous: p, undo: Control-Z, confirm: Enter, unsure: u, not_a_particle: x,
           classes: ['1', ...]}
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cryoal.io.atomic import atomic_write_text
from cryoal.io.names import check_class_name, check_tomo_id

#: Version of the ``project.yaml`` layout this cryoal writes and reads.
CONFIG_FORMAT_VERSION = 1

#: File name of the project configuration inside a project folder.

#: Label values that are not classes. ``unsure``: the expert could not decide;
#: ``not-a-particle``: the candidate is junk (ice, carbon, noise, a false detection).
SPECIAL_LABELS = ("unsure", "not-a-particle")
#: The class a segmentation model predicts for mask value 0.
SEGMENT_BACKGROUND = "background"

#: matplotlib's tab10 colours: distinct, colour-blind tolerable, what napari users know.
DEFAULT_COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip

_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")

#: Where a user sets each field (shown in messages): the ``project init`` option, else
#: the key in project.yaml.
_FIELD_OPTIONS = {
    "box": "--box",
    "voxel_size_A": "--voxel-size",
    "classes": "--classes",
    "name": "--classes",
}


def describe_validation_error(exc: ValidationError, source: str | None = None) -> str:
    """One line naming the field(s), the value(s) and the fix, for a pydantic error.

    ``source`` (a file) is put first when the values came from one; otherwise fields are
    named by the ``cryoal project init`` option that sets them.
    """
    parts = []
    for err in exc.errors()[:3]:
        loc = [str(x) for x in err["loc"]]
        field = ".".join(loc)
        if source is None and loc and loc[-1] in _FIELD_OPTIONS:
            field = _FIELD_OPTIONS[loc[-1]]
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        hidden = isinstance(value, dict | list | tuple) or repr(value) in msg
        shown = "" if hidden else f" (got {value!r})"
        parts.append(f"{field}: {msg}{shown}" if field else f"{msg}{shown}")
    fix = "fix the file" if source is not None else "change the value"
    where = f"{source}: invalid project configuration" if source else "invalid project settings"
    return f"{where} ({'; '.join(parts)}); {fix}"


class ClassSpec(BaseModel):
    """One class the expert can assign: integer id (the model's output index), name, colour."""

    model_config = ConfigDict(extra="forbid")

    id: int = Field(ge=0)
    name: str
    colour: str = "#1f77b4"

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        check_class_name(value)
        if value in SPECIAL_LABELS:
            raise ValueError(
                f"class name {value!r} is reserved for the special label of that name; "
                "choose another class name"
            )
        return value

    @field_validator("colour")
    @classmethod
    def _check_colour(cls, value: str) -> str:
        if not _COLOUR_RE.match(value):
            raise ValueError(f"colour {value!r} must be a hex colour like '#1f77b4'")
        return value.lower()


class TomogramSpec(BaseModel):
    """A tomogram of the project.

    ``path`` is stored relative to the project folder when the file lives inside it (so the
    folder can be moved as a whole), absolute otherwise.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    path: str
    voxel_size_A: float = Field(gt=0)
    shape_zyx: tuple[int, int, int]
    #: Particle contrast when known (cryoal's simulated tomograms record ``bright``);
    #: ``project detect`` uses it before ``defaults.polarity``.
    polarity: Literal["dark", "bright"] | None = None
    #: The odd and even half tomograms (reconstructions from disjoint halves of the frames
    #: or tilts, same shape and voxel size), stored like ``path``; pretraining makes its two
    #: views of a candidate from them (``cryoal project add-halves``).
    halves: tuple[str, str] | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        check_tomo_id(value)
        return value


class Defaults(BaseModel):
    """Project-wide defaults; every CLI option that is not given falls back to these."""

    model_config = ConfigDict(extra="forbid")

    #: Acquisition strategy for rounds with a trained model: a ``cryoal.al`` strategy name, a
    #: recipe of :data:`cryoal.al.registry.RECIPES`, or ``auto`` (the default): the recipe
    #: the label-efficiency study measured for the round's model. A model trained from the
    #: project's pretrained encoder ranks with ``margin+div-emb+cap+explore`` (at SNR 0.1 its
    #: ALC beat pretrained random labelling on the 10:1 long-tailed pool, +0.035 [+0.008,
    #: +0.062], and was level on the balanced one); a model trained from scratch with
    #: ``margin+div+cap`` (it beat random labelling on long-tailed pools at SNR 0.1 and
    #: 0.05). Segment projects start with ``kt``.
    strategy: str = "auto"
    #: Suggestions per round.
    k: int = Field(default=50, ge=1)
    #: Round 0 (no model yet): ``random``, ``stratified`` (even over imported pick
    #: classes, or over tomograms when picks carry no class), ``typical`` (TypiClust in
    #: the embedding of the encoder ``cryoal pretrain DIR`` made) or ``auto``: ``typical``
    #: when the project has an encoder, else ``random`` (in the label-efficiency study the
    #: typical round 0 scored +0.05 [+0.03, +0.07] over a random one at 50 labels).
    round0_strategy: Literal["auto", "random", "stratified", "typical"] = "auto"
    #: Seed for suggestions and the validation split.
    seed: int = 0
    #: Particle radius (Å) for the candidate detector; None: a third of the box.
    particle_radius_A: float | None = Field(default=None, gt=0)
    #: Candidates the detector keeps per tomogram.
    detect_n: int = Field(default=500, ge=1)
    #: Particle contrast for the detector: ``dark`` (protein darker than ice, as in most
    #: reconstructions) or ``bright``.
    polarity: Literal["dark", "bright"] = "dark"
    #: Overrides of ``cryoal.train.config.TrainConfig`` fields for ``cryoal train DIR``
    #: (e.g. ``{teacher_preset: tiny, epochs: 5}``); command-line options override these.
    train: dict[str, Any] = Field(default_factory=dict)
    #: Overrides of ``cryoal.pretrain.PretrainConfig`` fields for ``cryoal pretrain DIR``
    #: (e.g. ``{epochs: 30}``); the preset and norm default to the teacher's.
    pretrain: dict[str, Any] = Field(default_factory=dict)


#: Keys napari keeps for navigation (slice stepping): a key map may not take them.
NAVIGATION_KEYS = frozenset({"Left", "Right", "Up", "Down", "Alt-Left", "Alt-Right"})


class KeyMap(BaseModel):
    """The labelling viewer's keys (``keys:`` in ``project.yaml``), in napari's key names
    (``n``, ``Control-Z``, ``Shift-N``). The k-th key of ``classes`` labels the k-th class.
    napari's navigation keys (Left / Right step slices) stay napari's."""

    model_config = ConfigDict(extra="forbid")

    next: str = "n"
    previous: str = "p"
    undo: str = "Control-Z"
    #: label with the class the round's model predicted (recorded as ``confirmed``)
    confirm: str = "Enter"
    unsure: str = "u"
    not_a_particle: str = "x"
    #: the candidate layer on (a click adds a particle; in napari's select mode a drag
    #: re-centres and Delete deletes) and off again
    edit_candidates: str = "e"
    classes: list[str] = Field(default_factory=lambda: [str(k) for k in range(1, 10)])

    def bindings(self) -> list[tuple[str, str]]:
        """``(key, action)`` pairs; actions: ``next``, ``previous``, ``undo``, ``confirm``,
        ``unsure``, ``not-a-particle``, ``edit-candidates`` and ``class:<k>`` (0-based class
        index)."""
        named = [("next", self.next), ("previous", self.previous), ("undo", self.undo),
                 ("confirm", self.confirm), ("unsure", self.unsure),
                 ("not-a-particle", self.not_a_particle),
                 ("edit-candidates", self.edit_candidates)]  # fmt: skip
        return [(key, action) for action, key in named] + [
            (key, f"class:{k}") for k, key in enumerate(self.classes)
        ]

    @model_validator(mode="after")
    def _check(self) -> KeyMap:
        seen: dict[str, str] = {}
        for key, action in self.bindings():
            if not key or key != key.strip() or " " in key:
                raise ValueError(f"keys: {action} has key {key!r}; use a napari key name like 'n'")
            if key in NAVIGATION_KEYS:
                raise ValueError(
                    f"keys: {action} = {key!r} is napari's navigation (Left / Right step "
                    "slices); choose another key"
                )
            if key in seen:
                raise ValueError(
                    f"keys: {key!r} is bound to both {seen[key]} and {action}; give each "
                    "action its own key"
                )
            seen[key] = action
        return self

    def label_of(self, action: str) -> str:
        """The key of an action as a person reads it (``Control-Z`` -> ``Ctrl+Z``)."""
        key = dict((a, k) for k, a in self.bindings())[action]
        return key.replace("Control-", "Ctrl+").replace("Shift-", "Shift+").replace("Alt-", "Alt+")

    def help_text(self, class_names: list[str]) -> str:
        """One line naming every key, for the viewer."""
        parts = [
            f"{self.label_of(f'class:{k}')} {name}"
            for k, name in enumerate(class_names[: len(self.classes)])
        ]
        parts.append(f"{self.label_of('confirm')} confirm the prediction")
        parts += [f"{self.label_of(a)} {a.replace('-', ' ')}"
                  for a in ("unsure", "not-a-particle", "next", "previous", "undo")]  # fmt: skip
        parts.append(
            f"{self.label_of('edit-candidates')} edit candidates (click adds; in select mode "
            "a drag re-centres, Delete deletes)"
        )
        return "keys: " + " · ".join(parts) + " · Left/Right: slices (napari)"

    def status_text(self, class_names: list[str]) -> str:
        """The keys in a short line for napari's status bar (the widget lists them in
        full): class keys with their names, the other keys alone."""
        classes = [f"{self.label_of(f'class:{k}')} {name}"
                   for k, name in enumerate(class_names[: len(self.classes)])]  # fmt: skip
        rest = [self.label_of(a) for a in ("confirm", "unsure", "not-a-particle", "next",
                                          "previous", "undo", "edit-candidates")]  # fmt: skip
        return "cryoal keys: " + " · ".join([*classes, *rest]) + " (listed in the widget)"


class ProjectConfig(BaseModel):
    """Validated content of ``project.yaml``."""

    model_config = ConfigDict(extra="forbid")

    format_version: int = CONFIG_FORMAT_VERSION
    name: str
    #: Voxel size (Å) every tomogram of the project must have; None until the first
    #: tomogram is added when ``init`` was not given one.
    voxel_size_A: float | None = Field(default=None, gt=0)
    #: Subtomogram edge length (voxels) for training and scoring.
    box: int = Field(default=32, ge=4)
    #: What the project's labels teach: ``classify`` (a class per candidate) or ``segment``
    #: (a voxel mask of each candidate's box, ``LabelStore.add_mask``).
    task: Literal["classify", "segment"] = "classify"
    classes: list[ClassSpec]
    tomograms: list[TomogramSpec] = Field(default_factory=list)
    defaults: Defaults = Field(default_factory=Defaults)
    #: The labelling viewer's keys.
    keys: KeyMap = Field(default_factory=KeyMap)

    @property
    def model_classes(self) -> list[str]:
        """The classes the project's models predict: its classes, and for a segment
        project ``background`` first (mask value 0; value k + 1 is class k)."""
        return (
            [SEGMENT_BACKGROUND, *self.class_names] if self.task == "segment" else self.class_names
        )

    @field_validator("format_version")
    @classmethod
    def _check_version(cls, value: int) -> int:
        if value > CONFIG_FORMAT_VERSION:
            raise ValueError(
                f"format_version {value} was written by a newer cryoal (this one reads "
                f"<= {CONFIG_FORMAT_VERSION}); upgrade cryoal"
            )
        return value

    @model_validator(mode="after")
    def _check_unique(self) -> ProjectConfig:
        if not self.classes:
            raise ValueError("a project needs at least one class")
        ids = [c.id for c in self.classes]
        if sorted(ids) != list(range(len(ids))):
            raise ValueError(f"class ids {ids} must be 0..{len(ids) - 1}, each once")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"class names {names} contain duplicates")
        tomo_ids = [t.id for t in self.tomograms]
        if len(set(tomo_ids)) != len(tomo_ids):
            raise ValueError(f"tomogram ids {tomo_ids} contain duplicates")
        return self

    # -- convenience ----------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        """Class names ordered by class id."""
        return [c.name for c in sorted(self.classes, key=lambda c: c.id)]

    def class_id(self, name: str) -> int:
        """Class id for ``name``; ``ValueError`` naming the known classes otherwise."""
        for c in self.classes:
            if c.name == name:
                return c.id
        raise ValueError(
            f"unknown class {name!r}; the project's classes are {self.class_names} "
            f"(or the special labels {list(SPECIAL_LABELS)})"
        )

    def tomogram(self, tomo_id: str) -> TomogramSpec:
        """The tomogram with id ``tomo_id``; ``ValueError`` listing the known ids otherwise."""
        for t in self.tomograms:
            if t.id == tomo_id:
                return t
        known = [t.id for t in self.tomograms] or "none yet"
        raise ValueError(
            f"unknown tomogram {tomo_id!r}; the project's tomograms are {known}; add it "
            "first with 'cryoal project add-tomogram DIR TOMO.mrc --tomo-id ID'"
        )


def default_classes(names: list[str]) -> list[ClassSpec]:
    """Classes with ids 0..n-1 in the given order and the default colour cycle.

    Raises ``ValueError`` (one line naming ``--classes`` and the value) for a bad name.
    """
    try:
        return [
            ClassSpec(id=i, name=n, colour=DEFAULT_COLOURS[i % len(DEFAULT_COLOURS)])
            for i, n in enumerate(names)
        ]
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def new_config(**fields: Any) -> ProjectConfig:
    """A validated :class:`ProjectConfig` from settings given on the command line.

    Raises ``ValueError`` with one line naming the option, the value and the fix.
    """
    try:
        return ProjectConfig(**fields)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def load_config(path: str | os.PathLike) -> ProjectConfig:
    """Read and validate ``project.yaml``.

    Raises
    ------
    FileNotFoundError
        No such file (the message says how to create a project).
    ValueError
        Not YAML, or a field fails validation (field name and reason in the message).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no project configuration here; create a project with "
            "'cryoal project init DIR --classes a,b'"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save the file as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(
            f"{path}: not valid YAML ({' '.join(str(exc).split())}); fix the file"
        ) from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a YAML mapping at the top level; fix the file")
    try:
        return ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, str(path))) from None


def save_config(config: ProjectConfig, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``config`` to ``path`` atomically (temp file, fsync, rename)."""
    data = config.model_dump(mode="json")
    for tomo in data.get("tomograms", []):
        for optional in ("polarity", "halves"):
            if tomo.get(optional) is None:
                tomo.pop(optional, None)  # unknown / none: leave the entry as before
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    atomic_write_text(path, text, overwrite=overwrite)
    return Path(path)
