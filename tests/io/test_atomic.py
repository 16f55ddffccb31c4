"""cryoal.io.atomic: recognisable partial files, stale-partial removal, sets written as one unit."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cryoal.io.atomic import (
    atomic_dir,
    atomic_path,
    find_partials,
    make_temp_file,
    parse_partial,
    partial_name,
)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_partial_names_record_the_output_host_and_pid(tmp_path: Path) -> None:
    final = tmp_path / "my.store.h5"
    tmp = make_temp_file(final)
    part = parse_partial(tmp)
    assert part is not None and part.final == final and part.pid == os.getpid()
    assert not part.stale  # this process is alive
    assert tmp.name.startswith(".my.store.h5.cryoal-partial-")
    assert parse_partial(tmp_path / ".my.store.h5.abc.partial") is None  # not ours


def test_stale_partials_of_the_same_output_are_removed_on_the_next_write(tmp_path: Path) -> None:
    final = tmp_path / "a.mrc"
    name = partial_name(final).replace(f"-{os.getpid()}-", f"-{_dead_pid()}-")
    stale = tmp_path / name
    stale.write_bytes(b"x" * 100)
    other = tmp_path / partial_name(tmp_path / "b.mrc").replace(
        f"-{os.getpid()}-", f"-{_dead_pid()}-"
    )
    other.write_bytes(b"y")
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"data")
    assert final.read_bytes() == b"data"
    assert not stale.exists() and other.exists()  # only partials of this output
    assert [p.path for p in find_partials(tmp_path)] == [other]


def test_atomic_path_names_the_output_on_a_full_disk(tmp_path: Path) -> None:
    with pytest.raises(OSError) as err, atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_is_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    with pytest.raises(KeyboardInterrupt), atomic_dir(out) as tmp:
        (tmp / "tomogram.mrc").write_bytes(b"t")
        raise KeyboardInterrupt  # Ctrl-C between two files
    assert list(tmp_path.iterdir()) == []  # no lone tomogram.mrc, no partial folder
    with atomic_dir(out) as tmp:
        (tmp / "tomogram.mrc").write_bytes(b"t")
        (tmp / "simulation.json").write_bytes(b"{}")
    assert sorted(p.name for p in out.iterdir()) == ["simulation.json", "tomogram.mrc"]
    assert [p.name for p in tmp_path.iterdir()] == ["sim"]


def test_atomic_dir_into_a_folder_with_other_files(tmp_path: Path) -> None:
    out = tmp_path / "sim"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "tomogram.mrc").write_bytes(b"old")
    with (
        pytest.raises(FileExistsError, match="tomogram.mrc: output already exists"),
        atomic_dir(out) as tmp,
    ):
        (tmp / "tomogram.mrc").write_bytes(b"new")
    assert (out / "tomogram.mrc").read_bytes() == b"old"
    with atomic_dir(out, overwrite=True, last="simulation.json") as tmp:
        (tmp / "simulation.json").write_bytes(b"{}")
        (tmp / "tomogram.mrc").write_bytes(b"new")
    assert (out / "tomogram.mrc").read_bytes() == b"new" and (out / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim"]
