"""Fetch a dataset described by a manifest, verify every byte, place files atomically.

Each file goes to ``<name>.part`` beside its target first. HTTP downloads resume from the
size of an existing ``.part`` with a ``Range`` request (a server that ignores it and sends
the whole file is handled by starting again from zero). The SHA-256 is computed while the
bytes arrive; only a file whose checksum (and size) match is renamed into place with
``os.replace``. A mismatch removes the ``.part`` file. An interrupted download keeps it, so
the same command resumes.

Every file is placed inside the dataset folder: a symbolic link in it that leads outside is
refused before anything is fetched, and so is a file where the folder (or one of its
subfolders) must be. A generated source's commands are checked against
:mod:`cryoal.io.generators` when the manifest is validated, again before anything runs,
and their path arguments once more (symbolic links followed) just before each runs.

Checksums that a dataset does not publish are recorded on the first download in the lock
file ``DIR/.cryoal-checksums.json``; :func:`verify_dataset` checks against the manifest's
checksums and, where the manifest has none, against those recorded ones.

The library reports progress through a callback ``progress(path, done_bytes, total_bytes)``;
the CLI draws the bar.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import quote

from cryoal.io.atomic import atomic_write_text, fsync_directory
from cryoal.io.generators import check_generator_command, check_paths_inside
from cryoal.io.manifest import FileEntry, Manifest

logger = logging.getLogger(__name__)

#: Lock file with the verified checksums of a dataset folder.
LOCK_NAME = ".cryoal-checksums.json"
#: Environment variable: the folder under which datasets are fetched by default.
DATA_ENV = "CRYOAL_DATA"
#: Bytes per local read/write.
CHUNK = 1 << 20
#: Bytes per network read (what an interrupted transfer loses at most: the unfinished read).
NET_CHUNK = 1 << 16

ProgressCallback = Callable[[str, int, "int | None"], None]


class DownloadError(ValueError):
    """A transfer failed: offline, HTTP error, interrupted, or the bytes did not verify.

    A ``ValueError`` so that the CLI prints it as one ``cryoal: error:`` line.
    """


@dataclass
class FetchResult:
    """What :func:`fetch_dataset` did."""

    directory: Path
    fetched: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)


@dataclass
class FileCheck:
    """The verification of one file: ``status`` is ok, missing, mismatch or unverifiable."""

    path: str
    status: str
    detail: str = ""


def default_data_dir(name: str) -> Path:
    """``$CRYOAL_DATA/<name>``, else ``~/.cache/cryoal/datasets/<name>``."""
    root = os.environ.get(DATA_ENV)
    base = Path(root) if root else Path.home() / ".cache" / "cryoal" / "datasets"
    return base / name


# ---------------------------------------------------------------------- checksums
def _write_hashed(
    chunks: Iterable[bytes],
    fh: BinaryIO,
    digest: Any,
    done: int,
    report: Callable[[int], object],
) -> int:
    """Append ``chunks`` to ``fh`` and to ``digest``, reporting the running byte count
    after each; fsync at the end. Returns the byte count (``done`` plus what was written)."""
    for chunk in chunks:
        if not chunk:
            continue
        fh.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        report(done)
    fh.flush()
    os.fsync(fh.fileno())
    return done


def sha256_file(path: str | os.PathLike, progress: Callable[[int], None] | None = None) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done)
    return digest.hexdigest()


def read_lock(directory: str | os.PathLike) -> dict:
    """The lock file of a dataset folder (``{}`` when there is none)."""
    path = Path(directory) / LOCK_NAME
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path}: not valid JSON ({exc}); delete it and run 'cryoal data fetch' again"
        ) from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), dict):
        raise ValueError(f"{path}: not a cryoal checksum lock file; delete it and fetch again")
    return doc


def _write_lock(
    directory: Path, manifest: Manifest, manifest_path: Path | None, files: dict
) -> None:
    doc = {
        "format_version": 1,
        "dataset": manifest.name,
        "manifest": str(manifest_path.resolve()) if manifest_path else None,
        "files": dict(sorted(files.items())),
    }
    atomic_write_text(directory / LOCK_NAME, json.dumps(doc, indent=1) + "\n")


def _expected(entry: FileEntry, lock: dict) -> tuple[str | None, str]:
    """The checksum to verify against and where it comes from (manifest/recorded/none)."""
    if entry.sha256:
        return entry.sha256, "manifest"
    rec = lock.get("files", {}).get(entry.path, {})
    if rec.get("sha256"):
        return str(rec["sha256"]), "recorded"
    return None, "none"


# ---------------------------------------------------------------------- transfers
def file_url(manifest: Manifest, entry: FileEntry, mirror: str | None = None) -> str:
    """The URL of one file of an http manifest (``mirror`` replaces ``source.base_url``)."""
    rel = entry.url or entry.path
    if mirror is None and rel.startswith(("http://", "https://")):
        return rel
    if rel.startswith(("http://", "https://")):
        rel = entry.path
    base = (mirror or manifest.source.base_url or "").rstrip("/")
    return f"{base}/{quote(rel.lstrip('/'), safe='/._-~')}"


def _mismatch(where: str, entry: FileEntry, expected: str, got: str, size: int) -> DownloadError:
    return DownloadError(
        f"{where}: checksum mismatch for {entry.path}: expected sha256 {expected[:16]}…, got "
        f"{got[:16]}… ({size} bytes); the source served different bytes (wrong or corrupt "
        "mirror?); nothing was kept; try again or use another --mirror"
    )


def _finish(part: Path, target: Path, entry: FileEntry, expected: str | None, got: str,
            size: int, where: str) -> None:  # fmt: skip
    if entry.size is not None and size != entry.size:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{where}: {entry.path} has {size} bytes, the manifest says {entry.size}; nothing was "
            "kept; try again or use another --mirror"
        )
    if expected is not None and got != expected:
        part.unlink(missing_ok=True)
        raise _mismatch(where, entry, expected, got, size)
    os.replace(part, target)
    fsync_directory(target.parent)


def download_file(
    url: str,
    target: Path,
    entry: FileEntry,
    expected: str | None,
    *,
    progress: ProgressCallback | None = None,
    session: object | None = None,
    timeout: float = 30.0,
) -> str:
    """Download ``url`` to ``target`` via ``target.part`` with resume; return the SHA-256.

    Raises
    ------
    DownloadError
        Offline / unreachable server, HTTP error, interrupted transfer (the ``.part`` file
        is kept for resuming), or size/checksum mismatch (the ``.part`` file is removed).
    """
    import requests

    http = session if session is not None else requests.Session()
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    if entry.size is not None and offset > entry.size:
        logger.info("%s: longer than the file should be; starting again", part)
        part.unlink()
        offset = 0
    # identity: the bytes as stored (a server's gzip would break ranges and sizes)
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = http.get(url, headers=headers, stream=True, timeout=timeout)  # type: ignore[attr-defined]
    except requests.exceptions.RequestException as exc:
        raise DownloadError(
            f"{url}: cannot connect ({_reason(exc)}); check the network connection or pass "
            "--mirror URL"
        ) from None
    mode: Literal["ab", "wb"]  # append to the .part file or start it again
    with resp:
        if resp.status_code == 416 and offset:
            # the .part already holds every byte the server has: verify it as it is
            whole = sha256_file(part)
            _finish(part, target, entry, expected, whole, offset, url)
            return whole
        if resp.status_code not in (200, 206):
            raise DownloadError(
                f"{url}: the server answered HTTP {resp.status_code} {resp.reason}; check the URL "
                "or pass --mirror URL"
            )
        digest = hashlib.sha256()
        if resp.status_code == 206 and offset:
            start = _content_range_start(resp.headers.get("Content-Range", ""))
            if start != offset:
                raise DownloadError(
                    f"{url}: asked for bytes from {offset}, the server sent "
                    f"{resp.headers.get('Content-Range')!r}; delete {part} and try again"
                )
            with open(part, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    digest.update(chunk)
            mode = "ab"
        else:
            if offset:
                logger.info("%s: the server ignored the range request; starting from zero", url)
            offset = 0
            mode = "wb"
        total = entry.size
        if total is None:
            length = resp.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
        done = offset
        if progress:
            progress(entry.path, done, total)
        try:
            with open(part, mode) as fh:
                done = _write_hashed(
                    resp.iter_content(chunk_size=NET_CHUNK), fh, digest, done,
                    lambda n: progress and progress(entry.path, n, total),
                )  # fmt: skip
        except requests.exceptions.RequestException as exc:
            done = part.stat().st_size if part.exists() else done  # what reached the disk
            raise DownloadError(
                f"{url}: download interrupted after {done} of {total or '?'} bytes "
                f"({_reason(exc)}); run the same command again to resume from {part.name}"
            ) from None
        except OSError as exc:  # the local side: disk full, permissions
            raise DownloadError(
                f"{part}: cannot write ({exc.strerror or exc}) after {done} bytes; free disk "
                "space (or fix the folder's permissions) and run the same command again to resume"
            ) from None
    if total is not None and done < total:
        raise DownloadError(
            f"{url}: download interrupted after {done} of {total} bytes; run the same command "
            f"again to resume from {part.name}"
        )
    got = digest.hexdigest()
    _finish(part, target, entry, expected, got, done, url)
    return got


def _content_range_start(value: str) -> int | None:
    # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _reason(exc: BaseException) -> str:
    """A short reason for a requests exception (no URLs, no object reprs)."""
    text = str(exc)
    for key in ("Connection refused", "Name or service not known", "Temporary failure in name "
                "resolution", "timed out", "Connection reset", "Network is unreachable",
                "IncompleteRead", "Connection broken", "No route to host"):  # fmt: skip
        if key.lower() in text.lower():
            return key.lower()
    return type(exc).__name__


def copy_file(
    src: Path, target: Path, entry: FileEntry, expected: str | None,
    progress: ProgressCallback | None = None,
) -> str:  # fmt: skip
    """Copy a local file to ``target`` via ``target.part``, verifying it; return the SHA-256."""
    if not src.is_file():
        raise FileNotFoundError(
            f"{src}: source file of {entry.path} not found; check the manifest's source.root or "
            "pass --mirror DIR"
        )
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    total = src.stat().st_size
    done = 0
    with open(src, "rb") as fin, open(part, "wb") as fout:
        done = _write_hashed(
            iter(lambda: fin.read(CHUNK), b""), fout, digest, done,
            lambda n: progress and progress(entry.path, n, total),
        )  # fmt: skip
    got = digest.hexdigest()
    _finish(part, target, entry, expected, got, done, str(src))
    return got


def _generate(
    manifest: Manifest, dest: Path, todo: list[FileEntry], progress: ProgressCallback | None
) -> dict[str, str]:
    """Run the generator commands in a temp folder inside ``dest``; verify, then place."""
    tmp = Path(tempfile.mkdtemp(prefix=".cryoal-generate-", dir=dest))
    try:
        for argv in manifest.source.commands:
            check_paths_inside(argv, tmp)
            logger.info("running: cryoal %s", " ".join(argv))
            proc = subprocess.run(
                [sys.executable, "-m", "cryoal", *argv],
                cwd=tmp, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                raise DownloadError(
                    f"{manifest.name}: generator command 'cryoal {' '.join(argv)}' failed: {last}"
                )
        digests: dict[str, str] = {}
        for entry in todo:
            src = tmp / entry.path
            if not src.is_file():
                raise DownloadError(
                    f"{manifest.name}: the generator commands did not write {entry.path}; the "
                    "manifest and the commands disagree"
                )
            got = sha256_file(src)
            # only published checksums: files with a creation time inside differ every run
            expected = entry.sha256
            if expected is not None and got != expected:
                raise _mismatch(f"{manifest.name} (generated)", entry, expected, got,
                                src.stat().st_size)  # fmt: skip
            digests[entry.path] = got
            if progress:
                progress(entry.path, src.stat().st_size, src.stat().st_size)
        for entry in todo:
            target = dest / entry.path
            _makedirs(target.parent, [])
            os.replace(tmp / entry.path, target)
            fsync_directory(target.parent)
        return digests
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_dataset(
    manifest: Manifest,
    dest: str | os.PathLike,
    *,
    manifest_path: str | os.PathLike | None = None,
    mirror: str | None = None,
    progress: ProgressCallback | None = None,
    timeout: float = 30.0,
) -> FetchResult:
    """Fetch every file of ``manifest`` into ``dest`` (created), verified and atomically placed.

    Files already in place whose checksum matches are kept. ``mirror`` replaces the http
    source's ``base_url`` (or a local source's ``root``).

    Raises
    ------
    DownloadError, FileNotFoundError, ValueError
        Offline, HTTP errors, interrupted or mismatching transfers, a missing local source.
    """
    if mirror is not None and manifest.source.kind not in ("http", "local"):
        raise ValueError(
            f"{manifest.name}: --mirror replaces the URL or folder of http and local sources; "
            f"this dataset's source is {manifest.source.kind}: drop --mirror"
        )
    dest = Path(dest)
    for argv in manifest.source.commands:  # checked on loading; again for manifests made in code
        check_generator_command(argv)
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(
            f"{dest}: is a file, not a folder; fetch into a new folder or the one this dataset "
            "was fetched into (--to DIR)"
        )
    made: list[Path] = []  # folders this call creates, removed again if they stay empty
    _makedirs(dest, made)
    mpath = Path(manifest_path) if manifest_path else None
    lock = _read_own_lock(dest, manifest)
    files: dict = dict(lock.get("files", {}))
    result = FetchResult(directory=dest)
    todo = _files_to_fetch(manifest, dest, lock, result)

    def record(entry: FileEntry, digest: str) -> None:
        if entry.sha256 is None and entry.path not in files:
            result.recorded.append(entry.path)
        files[entry.path] = {
            "sha256": digest,
            "size": (dest / entry.path).stat().st_size,
            "published": entry.sha256 is not None,
            "verified": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    try:
        for entry, digest in _transferred(
            manifest, dest, todo, lock, made, mpath=mpath, mirror=mirror, progress=progress,
            timeout=timeout,
        ):  # fmt: skip
            record(entry, digest)
            result.fetched.append(entry.path)
    except BaseException:
        if manifest.source.kind != "manual":  # there the user is asked to save files in dest
            _remove_empty(made)  # nothing left behind by a failed first fetch (e.g. offline)
        raise
    finally:
        if files != lock.get("files", {}):
            _write_lock(dest, manifest, mpath, files)
    return result


def _read_own_lock(dest: Path, manifest: Manifest) -> dict:
    """The lock file of ``dest`` (``{}`` if none); refuse one written for another dataset."""
    lock = read_lock(dest)
    if lock and lock.get("dataset") not in (None, manifest.name):
        raise ValueError(
            f"{dest}: holds dataset {lock.get('dataset')!r}, not {manifest.name!r}; fetch into "
            "another folder (--to DIR)"
        )
    return lock


def _files_to_fetch(
    manifest: Manifest, dest: Path, lock: dict, result: FetchResult
) -> list[FileEntry]:
    """The manifest's files not yet in ``dest`` with the right checksum (those go to
    ``result.present``)."""
    todo: list[FileEntry] = []
    for entry in manifest.files:
        target = _inside(dest, entry)
        expected, _ = _expected(entry, lock)
        if target.is_file() and expected is not None:
            if sha256_file(target) == expected:
                result.present.append(entry.path)
                continue
            logger.warning("%s: checksum differs from the manifest; fetching it again", target)
        todo.append(entry)
    return todo


def _inside(dest: Path, entry: FileEntry) -> Path:
    """``dest / entry.path``, refused when a symbolic link on the way leads outside ``dest``
    (the file itself may be a link: it is replaced, not written through)."""
    target = dest / entry.path
    root = dest.resolve()
    parent = target.parent.resolve()
    if not parent.is_relative_to(root):
        raise ValueError(
            f"{target}: its folder resolves to {parent}, outside the dataset folder {root} (a "
            "symbolic link on the way); nothing was fetched; remove the link or fetch into "
            "another folder (--to DIR)"
        )
    return target


def _transferred(
    manifest: Manifest,
    dest: Path,
    todo: list[FileEntry],
    lock: dict,
    made: list[Path],
    *,
    mpath: Path | None,
    mirror: str | None,
    progress: ProgressCallback | None,
    timeout: float,
) -> Iterator[tuple[FileEntry, str]]:
    """Bring each file of ``todo`` into ``dest`` by the manifest's source kind; yield it with
    its SHA-256 once it is in place."""
    kind = manifest.source.kind
    if kind == "manual":
        for entry in todo:
            yield entry, _adopt(manifest, dest, entry, _expected(entry, lock)[0])
        return
    if kind == "generated":
        if todo:
            for path, digest in _generate(manifest, dest, todo, progress).items():
                yield next(e for e in todo if e.path == path), digest
        return
    session = None
    if kind == "http":
        import requests

        session = requests.Session()
    for entry in todo:
        target = dest / entry.path
        _makedirs(target.parent, made)
        expected, _ = _expected(entry, lock)
        if kind == "http":
            url = file_url(manifest, entry, mirror)
            digest = download_file(
                url, target, entry, expected, progress=progress, session=session, timeout=timeout
            )
        else:
            root = Path(mirror) if mirror else _local_root(manifest, mpath)
            digest = copy_file(root / (entry.url or entry.path), target, entry, expected, progress)
        yield entry, digest


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders of ``made`` (listed outermost first) that are empty, innermost first."""
    for folder in reversed(made):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _adopt(manifest: Manifest, dest: Path, entry: FileEntry, expected: str | None) -> str:
    """Verify a file of a manual source that the user downloaded into ``dest``."""
    target = dest / entry.path
    if not target.is_file():
        raise DownloadError(
            f"{target}: not here yet; {manifest.name} has no direct download: get {entry.path} from "
            f"{manifest.source.landing_page} and save it under this name, then run the same "
            "command again to verify it"
        )
    if entry.size is not None and target.stat().st_size != entry.size:
        raise DownloadError(
            f"{target}: {target.stat().st_size} bytes, the manifest says {entry.size}; the download "
            "is incomplete or a different file: download it again"
        )
    got = sha256_file(target)
    if expected is not None and got != expected:
        raise DownloadError(
            f"{target}: checksum mismatch (expected sha256 {expected[:16]}…, got {got[:16]}…); "
            "this is not the published file: download it again"
        )
    return got


def _makedirs(folder: Path, made: list[Path]) -> None:
    """``mkdir -p``, appending each folder it creates (outermost first) to ``made``.

    Raises ``FileExistsError`` (one line) when a file stands where a folder must be."""
    wanted = folder
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    if not folder.is_dir():
        raise FileExistsError(
            f"{folder}: is a file, so the folder {wanted} cannot be made; move the file away "
            "or fetch into another folder (--to DIR)"
        )
    for f in reversed(missing):
        f.mkdir(exist_ok=True)
        made.append(f)


def _local_root(manifest: Manifest, manifest_path: Path | None) -> Path:
    root = Path(manifest.source.root or ".")
    if not root.is_absolute():
        if manifest_path is None:
            raise ValueError(
                f"{manifest.name}: source.root {root} is relative to the manifest file; pass the "
                "manifest path (or --mirror DIR)"
            )
        root = manifest_path.resolve().parent / root
    return root


# ---------------------------------------------------------------------- verification
def verify_dataset(manifest: Manifest | None, directory: str | os.PathLike) -> list[FileCheck]:
    """Check every file of a dataset folder against the manifest or the lock file.

    With ``manifest=None`` the folder's lock file alone says what to check (every file that
    was verified when it was fetched).
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = manifest.fetch_argument() if manifest is not None else "NAME"
        raise FileNotFoundError(
            f"{directory}: dataset folder not found; fetch it with 'cryoal data fetch {what} "
            f"--to {directory}'"
        )
    lock = read_lock(directory)
    if manifest is None:
        if not lock:
            raise FileNotFoundError(
                f"{directory}: no {LOCK_NAME} here; this is not a folder 'cryoal data fetch' "
                "wrote (pass the dataset name instead)"
            )
        entries = [
            (p, rec.get("sha256"), rec.get("size")) for p, rec in sorted(lock["files"].items())
        ]
    else:
        entries = []
        for e in manifest.files:
            expected, _ = _expected(e, lock)
            entries.append((e.path, expected, e.size))
    checks: list[FileCheck] = []
    for path, expected, size in entries:
        target = directory / path
        if not target.is_file():
            checks.append(FileCheck(path, "missing", "not fetched yet"))
            continue
        if size is not None and target.stat().st_size != size:
            checks.append(
                FileCheck(path, "mismatch", f"{target.stat().st_size} bytes, expected {size}")
            )
            continue
        if expected is None:
            checks.append(FileCheck(path, "unverifiable", "no published or recorded checksum"))
            continue
        got = sha256_file(target)
        if got == expected:
            checks.append(FileCheck(path, "ok"))
        else:
            checks.append(
                FileCheck(path, "mismatch", f"sha256 {got[:16]}…, expected {expected[:16]}…")
            )
    return checks
