"""A project folder: ``project.yaml`` + ``labels.sqlite`` + ``candidates.csv`` + ``rounds/``.

``Project.init`` creates one, ``Project.open`` opens one; adding tomograms checks their
voxel size against the project's. Changes to ``project.yaml`` are made under an exclusive
lock on ``.project.lock`` and written atomically, so two commands run at once never lose
each other's change.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from cryoal.io.mrc import check_finite_voxels, open_tomogram, read_polarity
from cryoal.io.names import check_tomo_id
from cryoal.project.config import (
    ProjectConfig,
    TomogramSpec,
    default_classes,
    load_config,
    new_config,
    save_config,
)
from cryoal.project.labels import LabelStore
from cryoal.project.layout import CANDIDATES_NAME, CONFIG_NAME, LABELS_NAME, LOCK_NAME

log = logging.getLogger(__name__)

#: A segment project's ranking (``defaults.strategy`` at ``init``): random sampling weighted by
#: the teacher's predicted foreground (the ``random_foreground`` recipe). Chosen by the
#: segmentation study (``benchmarks/results/study/seg_snr01``): KT-MSE with the voxel mean
#: was below random and below this on crops and on edit cost, and no arm beat it.
SEGMENT_STRATEGY = "random_foreground"
#: Relative tolerance when comparing voxel sizes.
VOXEL_SIZE_RTOL = 1e-3


def parse_class_list(text: str) -> list[str]:
    """``"ribosome, proteasome"`` -> ``["ribosome", "proteasome"]``."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(
            f"--classes {text!r} names no class; pass e.g. --classes ribosome,proteasome"
        )
    return names


class Project:
    """An open project. Use ``Project.init`` or ``Project.open`` rather than the constructor.

    Attributes
    ----------
    root
        The project folder.
    config
        The validated ``project.yaml``.
    """

    def __init__(self, root: Path, config: ProjectConfig) -> None:
        self.root = root
        self.config = config
        self._store: LabelStore | None = None

    # -- paths -----------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def labels_path(self) -> Path:
        return self.root / LABELS_NAME

    @property
    def candidates_path(self) -> Path:
        return self.root / CANDIDATES_NAME

    # -- creation and opening --------------------------------------------------------
    @classmethod
    def init(
        cls,
        root: str | os.PathLike,
        class_names: Sequence[str],
        *,
        voxel_size_A: float | None = None,
        box: int = 32,
        name: str | None = None,
        task: str = "classify",
    ) -> Project:
        """Create a project folder with ``project.yaml`` and an empty ``labels.sqlite``.

        Parameters
        ----------
        root
            Folder to create (may exist if it holds no project yet).
        class_names
            Classes in id order (0, 1, ...).
        voxel_size_A
            Voxel size every tomogram must have; None: taken from the first tomogram.
        box
            Subtomogram edge length in voxels.
        task
            ``classify`` or ``segment`` (labels are masks of the candidates' boxes; its
            ``defaults.strategy`` is then ``random_foreground``).

        Raises
        ------
        FileExistsError
            ``root`` already holds a project.
        ValueError
            Invalid class names, voxel size or box.
        """
        root = Path(root)
        if (root / CONFIG_NAME).exists():
            if not (root / LABELS_NAME).exists():
                raise FileExistsError(
                    f"{root / CONFIG_NAME}: a project already exists here, and its label "
                    f"store {LABELS_NAME} is missing; {missing_store_fix(root)}"
                )
            raise FileExistsError(
                f"{root / CONFIG_NAME}: a project already exists here; open it, or choose "
                "another folder"
            )
        config = new_config(
            name=name or root.resolve().name,
            voxel_size_A=voxel_size_A,
            box=box,
            task=task,
            classes=default_classes(list(class_names)),
        )
        if task == "segment":  # margin and the class cap have no meaning for voxel masks
            config.defaults.strategy = SEGMENT_STRATEGY
        root.mkdir(parents=True, exist_ok=True)
        LabelStore.create(root / LABELS_NAME, config.class_names).close()
        # project.yaml last: its presence means the project is complete.
        save_config(config, root / CONFIG_NAME, overwrite=False)
        log.info("created project %s with classes %s", root, config.class_names)
        return cls(root, config)

    @classmethod
    def open(cls, root: str | os.PathLike, *, check_labels: bool = True) -> Project:
        """Open an existing project; checks ``project.yaml`` against ``labels.sqlite``.

        ``check_labels=False`` leaves the label store closed (training jobs on a cluster
        node read snapshots and never open it); it is still opened on first use.

        Raises
        ------
        FileNotFoundError
            No ``project.yaml`` or ``labels.sqlite`` in ``root``.
        ValueError
            Invalid configuration, or classes that differ between the two files.
        """
        root = Path(root)
        if root.is_file() and root.name == CONFIG_NAME:
            root = root.parent
        config = load_config(root / CONFIG_NAME)
        project = cls(root, config)
        if not check_labels:
            return project
        store_classes = project.labels.class_names
        if store_classes != config.class_names:
            project.labels.raise_if_damaged()  # damage is not a change of classes
            raise ValueError(
                f"{project.config_path}: classes {config.class_names} differ from those of "
                f"{project.labels_path} {store_classes}; classes cannot be changed after "
                "labelling started, restore the class list in project.yaml"
            )
        return project

    @property
    def labels(self) -> LabelStore:
        """The live label store (opened on first use)."""
        if self._store is None:
            if not self.labels_path.exists():
                raise FileNotFoundError(
                    f"{self.labels_path}: the project's label store is missing; "
                    f"{missing_store_fix(self.root)}"
                )
            self._store = LabelStore(self.labels_path)
        return self._store

    def close(self) -> None:
        """Close the label store connection."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration changes -------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the project lock (``.project.lock``, ``flock``) while a process changes
        the project's files; other processes wait. Not re-entrant."""
        with open(self.root / LOCK_NAME, "a+") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    @contextlib.contextmanager
    def editing(self) -> Iterator[ProjectConfig]:
        """Lock, re-read ``project.yaml``, yield it for changes, validate and save it."""
        with self.locked():
            config = load_config(self.config_path)
            yield config
            config = ProjectConfig.model_validate(config.model_dump())
            save_config(config, self.config_path)
            self.config = config

    # -- tomograms -------------------------------------------------------------------
    def add_tomogram(
        self,
        path: str | os.PathLike,
        tomo_id: str | None = None,
        *,
        voxel_size_A: float | None = None,
        halves: tuple[str | os.PathLike, str | os.PathLike] | None = None,
    ) -> TomogramSpec:
        """Register a tomogram (MRC) with the project.

        Parameters
        ----------
        path
            The ``.mrc`` / ``.rec`` file (its header gives voxel size and shape).
        tomo_id
            Stable id; default the file name without extension. Letters, digits and
            ``_ . -`` (:func:`cryoal.io.names.check_tomo_id`), checked before the file is
            read.
        voxel_size_A
            Override a missing or wrong header voxel size (Å).
        halves
            Its odd and even half tomograms (see :meth:`add_halves`), checked before
            anything is recorded.

        Raises
        ------
        ValueError
            The id breaks the rule, the id or file is already in the project, the voxel
            size differs from the project's (the message gives the rescaling factor and
            commands), or the file holds NaN/Inf voxels (checked slab by slab, in bounded
            memory).

        The tomogram's particle polarity is recorded when its header carries cryoal's
        polarity label (simulated tomograms).
        """
        path = Path(path)
        tomo_id = tomo_id if tomo_id is not None else path.name.split(".")[0]
        check_tomo_id(tomo_id)  # before the (slow) scan of the voxels
        with open_tomogram(path, voxel_size_A=voxel_size_A) as tomo:
            vs, shape = tomo.voxel_size_A, tomo.shape
            check_finite_voxels(tomo.data, path)  # bounded memory: slab by slab
        polarity = read_polarity(path)
        resolved = path.resolve()
        stored_halves = None
        if halves is not None:  # checked before the lock: a scan of two more files
            probe = TomogramSpec(id=tomo_id, path=str(resolved), voxel_size_A=vs, shape_zyx=shape)
            stored_halves = self._checked_halves(probe, *halves, voxel_size_A)
        with self.editing() as config:
            for t in config.tomograms:
                if t.id == tomo_id:
                    raise ValueError(
                        f"tomogram {tomo_id!r} is already in the project ({t.path}); pass "
                        "another --tomo-id to add a different tomogram"
                    )
                if self.resolve_path(t.path) == resolved:
                    raise ValueError(
                        f"{path}: already in the project as tomogram {t.id!r}; nothing to do"
                    )
            if config.voxel_size_A is None:
                config.voxel_size_A = vs
            elif not np.isclose(vs, config.voxel_size_A, rtol=VOXEL_SIZE_RTOL):
                raise ValueError(voxel_size_mismatch_message(path, vs, config.voxel_size_A))
            if min(shape) < config.box:
                warnings.warn(
                    f"{path}: shape {shape} is smaller than the project's box {config.box} "
                    "voxels along one axis; its subtomograms will be padded",
                    stacklevel=3,
                )
            spec = TomogramSpec(
                id=tomo_id,
                path=self._stored_path(resolved),
                voxel_size_A=vs,
                shape_zyx=shape,
                polarity=polarity,
            )
            spec.halves = stored_halves
            config.tomograms.append(spec)
        log.info("added tomogram %s (%s, %s voxels at %.4g Å)", tomo_id, path, shape, vs)
        return spec

    def add_halves(
        self,
        tomo_id: str,
        odd: str | os.PathLike,
        even: str | os.PathLike,
        *,
        voxel_size_A: float | None = None,
    ) -> TomogramSpec:
        """Record the odd and even half tomograms of tomogram ``tomo_id`` (replacing any
        recorded before). The candidate cache then holds each candidate's two halves, and
        pretraining makes its two views of a candidate from them: the same particle under
        independent noise.

        Raises
        ------
        ValueError
            Unknown id, a half that is the tomogram itself or the other half, a shape or
            voxel size other than the tomogram's, or NaN/Inf voxels.
        """
        spec = self.config.tomogram(tomo_id)
        stored = self._checked_halves(spec, odd, even, voxel_size_A)
        with self.editing() as config:
            config.tomogram(tomo_id).halves = stored
        log.info("tomogram %s: halves %s, %s", tomo_id, *stored)
        return self.config.tomogram(tomo_id)

    def _checked_halves(
        self,
        spec: TomogramSpec,
        odd: str | os.PathLike,
        even: str | os.PathLike,
        voxel_size_A: float | None,
    ) -> tuple[str, str]:
        """The halves' paths as ``project.yaml`` stores them, once both are checked against
        the tomogram ``spec`` (see :meth:`add_halves`)."""
        main = self.resolve_path(spec.path)
        files = [Path(odd), Path(even)]
        resolved = [f.resolve() for f in files]
        if resolved[0] == resolved[1] or main in resolved:
            raise ValueError(
                f"{files[0]}, {files[1]}: the odd and even halves of tomogram {spec.id!r} must "
                f"be two files other than the tomogram ({main})"
            )
        for f in files:
            with open_tomogram(f, voxel_size_A=voxel_size_A) as half:
                if tuple(half.shape) != tuple(spec.shape_zyx) or not np.isclose(
                    half.voxel_size_A, spec.voxel_size_A, rtol=VOXEL_SIZE_RTOL
                ):
                    raise ValueError(
                        f"{f}: {half.shape} voxels at {half.voxel_size_A:.4g} Å, but tomogram "
                        f"{spec.id!r} has {tuple(spec.shape_zyx)} at {spec.voxel_size_A:.4g} Å; "
                        "give the half tomograms reconstructed like it (or --voxel-size "
                        "when only the header is wrong)"
                    )
                check_finite_voxels(half.data, f)
        return self._stored_path(resolved[0]), self._stored_path(resolved[1])

    def halves_paths(self, tomo_id: str) -> tuple[Path, Path] | None:
        """Absolute paths of tomogram ``tomo_id``'s odd and even halves, None when the
        project records none.

        Raises
        ------
        FileNotFoundError
            A recorded half is no longer there (one line with the path and the fix).
        """
        halves = self.config.tomogram(tomo_id).halves
        if halves is None:
            return None
        paths = (self.resolve_path(halves[0]), self.resolve_path(halves[1]))
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(
                    f"half tomogram of {tomo_id!r} of project {self.root}: {p} does not exist; "
                    f"record where the halves are now with 'cryoal project add-halves "
                    f"{self.root} {tomo_id} ODD EVEN'"
                )
        return paths

    def _stored_path(self, resolved: Path) -> str:
        root = self.root.resolve()
        if root in resolved.parents:
            return str(resolved.relative_to(root))
        return str(resolved)

    def resolve_path(self, stored: str) -> Path:
        """Absolute path of a tomogram path as stored in ``project.yaml``."""
        p = Path(stored)
        return (p if p.is_absolute() else self.root / p).resolve()

    def tomogram_path(self, tomo_id: str) -> Path:
        """Absolute path of tomogram ``tomo_id``.

        Raises
        ------
        ValueError
            Unknown id.
        FileNotFoundError
            The file is no longer there (one line with the id, the path and the fix).
        """
        path = self.resolve_path(self.config.tomogram(tomo_id).path)
        if not path.exists():
            raise FileNotFoundError(missing_tomogram_message(self.root, tomo_id, path))
        return path

    def relocate_tomogram(
        self, tomo_id: str, path: str | os.PathLike, *, voxel_size_A: float | None = None
    ) -> TomogramSpec:
        """Record the new place of tomogram ``tomo_id``, a file that was moved.

        The file at ``path`` must have the shape and voxel size recorded for the tomogram
        (``voxel_size_A`` overrides a missing or wrong header voxel size, as for
        :meth:`add_tomogram`); candidates and labels stay as they are.

        Raises
        ------
        ValueError
            Unknown id, another tomogram's file, or a shape or voxel size that differs.
        """
        path = Path(path)
        with open_tomogram(path, voxel_size_A=voxel_size_A) as tomo:
            vs, shape = tomo.voxel_size_A, tomo.shape
        resolved = path.resolve()
        with self.editing() as config:
            spec = config.tomogram(tomo_id)
            for t in config.tomograms:
                if t.id != tomo_id and self.resolve_path(t.path) == resolved:
                    raise ValueError(
                        f"{path}: already in the project as tomogram {t.id!r}; give the "
                        f"file of tomogram {tomo_id!r}"
                    )
            if tuple(shape) != tuple(spec.shape_zyx) or not np.isclose(
                vs, spec.voxel_size_A, rtol=VOXEL_SIZE_RTOL
            ):
                raise ValueError(
                    f"{path}: {shape} voxels at {vs:.4g} Å, but tomogram {tomo_id!r} has "
                    f"{tuple(spec.shape_zyx)} at {spec.voxel_size_A:.4g} Å; give the file "
                    "it was moved to (a different tomogram is added with 'cryoal project "
                    "add-tomogram')"
                )
            spec.path = self._stored_path(resolved)
        log.info("tomogram %s now at %s", tomo_id, resolved)
        return self.config.tomogram(tomo_id)

    @property
    def voxel_size_A(self) -> float:
        """The project's voxel size (Å); an error before the first tomogram fixes it."""
        if self.config.voxel_size_A is None:
            raise ValueError(
                f"{self.config_path}: the project has no voxel size yet; add a tomogram first "
                "('cryoal project add-tomogram DIR TOMO.mrc') or set voxel_size_A"
            )
        return float(self.config.voxel_size_A)


def missing_store_fix(root: Path) -> str:
    """How to get a project's deleted label store back."""
    return (
        "restore it from a backup, or rebuild it from the newest labels snapshot "
        f"(rounds/NNN/snapshot.csv) with 'cryoal project rebuild-labels {root}'"
    )


def missing_tomogram_message(root: Path, tomo_id: str, path: Path) -> str:
    """One line: which tomogram file is gone, and the two ways to point the project at it."""
    return (
        f"tomogram {tomo_id!r} of project {root}: {path} does not exist (moved or deleted "
        f"since it was added); move it back, or record where it is now with 'cryoal project "
        f"relocate-tomogram {root} {tomo_id} NEW_PATH'"
    )


def voxel_size_mismatch_message(path: Path, found_A: float, project_A: float) -> str:
    """One line: the mismatch, the factor, and how to rescale (or override a wrong header)."""
    factor = project_A / found_A
    return (
        f"{path}: voxel size {found_A:.4g} Å differs from the project's {project_A:.4g} Å; "
        f"rescale the tomogram by a factor {factor:.4g} to {project_A:.4g} Å/voxel (e.g. "
        f"IMOD 'squeezevol -f {factor:.4g} in.mrc out.mrc', or 'relion_image_handler --i "
        f"in.mrc --o out.mrc --angpix {found_A:.4g} --rescale_angpix {project_A:.4g}') and "
        "add the rescaled file; if the header is wrong, pass the true size with --voxel-size"
    )
