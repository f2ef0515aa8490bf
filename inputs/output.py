"""Output files of ``runner.py run``: the writable check, the lock, atomic writing, reading back."""
from __future__ import annotations

from pathlib import Path

from core.errors import BadInputError


def load_output(path: str | Path) -> dict:
    """The accumulated output of ``runner.py run`` (clear error for a bad file)."""
    from coffea.util import load

    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: output file does not exist")
    if path.name.endswith(".uhi.json"):  # the pickle-free copy (inputs/hist_io.py)
        from inputs.hist_io import read_uhi_json

        return read_uhi_json(path)
    try:
        out = load(str(path))
    except Exception as err:
        raise BadInputError(f"{path}: not a caliber output file ({type(err).__name__}: {err})") from None
    if not isinstance(out, dict):
        raise BadInputError(f"{path}: not a caliber output file (holds {type(out).__name__})")
    return out


def check_output_writable(path: str | Path) -> Path:
    """Refuse, before any work, an output whose folder cannot be created or written.

    Creates the folder (like the run would) and writes and removes a probe file in it.
    """
    import tempfile

    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path}: output path is a directory")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise BadInputError(f"{path}: output location is not writable ({err.strerror or err})") from None
    return path


class OutputLock:
    """An exclusive lock file ``<output>.lock`` holding the owner's pid, refusing a second run.

    A lock left by a process that no longer exists (a killed run) is taken over.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = self.path.with_name(self.path.name + ".lock")

    def __enter__(self) -> "OutputLock":
        import os

        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _pid_alive(pid):
                    raise BadInputError(f"{self.path}: another run (pid {pid}) is writing this output; "
                                        f"wait for it or choose another --output") from None
                self.lock.unlink(missing_ok=True)  # stale: its run is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise BadInputError(f"{self.path}: cannot take the lock {self.lock}")

    def __exit__(self, *exc) -> None:
        self.lock.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_output(out: dict, path: str | Path) -> Path:
    """Write the accumulated output as ``path`` (.coffea) atomically: temporary file + rename.

    The one function that writes a run's output: readers never see a half-written file and
    an interrupted write leaves the previous output (if any) in place.
    """
    import os
    import uuid

    from coffea.util import save

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        save(out, str(tmp))
        os.replace(tmp, path)
    except OSError as err:
        raise BadInputError(f"{path}: cannot write the output ({err.strerror or err})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
