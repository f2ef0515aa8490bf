"""HTCondor site presets, their checks, and the ``--condor-*`` command-line options.

A site preset (``condor/sites/<name>.yaml`` or a YAML path) says what each job asks for
and carries; ``site_config`` fills in every key, applies overrides and checks the
result. ``add_condor_arguments``/``condor_options_from_args`` turn the ``--condor-*``
options into the overrides that ``condor.cluster.condor_client`` and
``condor.train_job`` take. Nothing here starts a cluster or imports dask-jobqueue.
"""
from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import yaml

from core.errors import BadInputError

SITES_DIR = Path(__file__).resolve().parent / "sites"
PROJECT_ROOT = Path(__file__).resolve().parents[1]
STANDIN_BIN = Path(__file__).resolve().parent / "standin" / "bin"

#: every key a site preset may set, with its default (the generic preset spells them all out)
DEFAULTS: dict = {
    "description": "",
    "cores": 1,
    "memory": "2GB",
    "disk": "2GB",
    "processes": 1,
    "gpus": 0,
    "image": None,
    "venv": None,
    "python": None,
    "code": "shared",
    "log_directory": "outputs/condor-logs",
    "death_timeout": 60,
    "start_timeout": 300,
    "scheduler_host": None,
    "scheduler_port": 0,
    "dashboard": None,
    "environment": {},
    "x509_proxy": None,
    "token_file": None,
    "transfer_files": [],
    "job_extra": {},
    "worker_resources": {},
    "adapt": None,
}


# --------------------------------------------------------------------------- presets

def known_sites() -> list[str]:
    """The preset names shipped in condor/sites/."""
    return sorted(p.stem for p in SITES_DIR.glob("*.yaml"))


def load_site(name: str) -> dict:
    """A site preset by name (condor/sites/NAME.yaml) or YAML path, with every key filled in."""
    path = Path(name) if (name.endswith((".yaml", ".yml")) or os.sep in name) else SITES_DIR / f"{name}.yaml"
    if not path.is_file():
        where = f"{path} does not exist" if path.parent != SITES_DIR else f"no {path.name} in {SITES_DIR}"
        raise BadInputError(f"condor site {name!r}: unknown preset ({where}); "
                            f"known presets: {', '.join(known_sites())}, or give a path to a YAML file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise BadInputError(f"condor site {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise BadInputError(f"condor site {path}: expected a mapping of settings, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        raise BadInputError(f"condor site {path}: unknown key(s) {', '.join(unknown)}; "
                            f"allowed: {', '.join(DEFAULTS)}")
    config = {**DEFAULTS, **raw}
    config["name"] = name
    config["path"] = str(path)
    return config


def site_config(site: str = "generic", overrides: dict | None = None, *, gpu: bool = False) -> dict:
    """The preset with ``overrides`` applied (dict-valued keys are merged), checked."""
    config = load_site(site)
    for key, value in (overrides or {}).items():
        if key not in DEFAULTS:
            raise BadInputError(f"condor override {key!r} is not a site setting; allowed: {', '.join(DEFAULTS)}")
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        elif key == "transfer_files":
            config[key] = [*config[key], *value]
        else:
            config[key] = value
    if gpu and not int(config["gpus"] or 0):
        config["gpus"] = 1
    _check(config)
    return config


def _check(config: dict) -> None:
    from dask.utils import parse_bytes

    where = f"condor site {config['name']!r}"
    for key in ("cores", "processes", "gpus", "death_timeout", "scheduler_port"):
        try:
            config[key] = int(config[key] or 0)
        except (TypeError, ValueError):
            raise BadInputError(f"{where}: {key} must be an integer, got {config[key]!r}") from None
    if config["cores"] < 1 or config["processes"] < 1 or config["cores"] % config["processes"]:
        raise BadInputError(f"{where}: cores ({config['cores']}) must be a positive multiple of "
                            f"processes ({config['processes']})")
    if config["gpus"] < 0:
        raise BadInputError(f"{where}: gpus must be >= 0, got {config['gpus']}")
    for key in ("memory", "disk"):
        try:
            parse_bytes(str(config[key]))
        except (ValueError, TypeError):
            raise BadInputError(f"{where}: {key} {config[key]!r} is not an amount like '2GB'") from None
    if config["code"] not in ("shared", "ship"):
        raise BadInputError(f"{where}: code must be 'shared' or 'ship', got {config['code']!r}")
    for key in ("environment", "job_extra", "worker_resources"):
        if not isinstance(config[key] or {}, dict):
            raise BadInputError(f"{where}: {key} must be a mapping")
        config[key] = dict(config[key] or {})
    if not isinstance(config["transfer_files"] or [], list):
        raise BadInputError(f"{where}: transfer_files must be a list of paths")
    adapt = config["adapt"]
    if adapt is not None:
        if not (isinstance(adapt, dict) and set(adapt) <= {"minimum", "maximum"} and "maximum" in adapt):
            raise BadInputError(f"{where}: adapt must be {{minimum: N, maximum: M}}, got {adapt!r}")
        lo, hi = int(adapt.get("minimum", 0)), int(adapt["maximum"])
        if not 0 <= lo <= hi or hi < 1:
            raise BadInputError(f"{where}: adapt needs 0 <= minimum <= maximum and maximum >= 1, got {lo}:{hi}")
        config["adapt"] = {"minimum": lo, "maximum": hi}


def check_condor_available() -> str:
    """The condor_submit that would be used; BadInputError when there is none on PATH."""
    found = shutil.which("condor_submit")
    missing = [t for t in ("condor_submit", "condor_rm") if not shutil.which(t)]
    if missing:
        raise BadInputError(
            f"no {' or '.join(missing)} on PATH: run on a submit node of an HTCondor pool, or use caliber's "
            f"local stand-in pool with: export PATH=\"{STANDIN_BIN}:$PATH\" (or: source condor/standin/activate.sh)")
    return found


# --------------------------------------------------------------------------- command line

def add_condor_arguments(parser: argparse.ArgumentParser) -> None:
    """``--condor-*`` overrides of the site preset (used with ``--executor condor``)."""
    g = parser.add_argument_group("condor (with --executor condor; override the --site preset)")
    g.add_argument("--condor-cores", type=int, help="request_cpus per job")
    g.add_argument("--condor-memory", help="request_memory per job, e.g. 4GB")
    g.add_argument("--condor-disk", help="request_disk per job, e.g. 4GB")
    g.add_argument("--condor-processes", type=int, help="dask worker processes per job")
    g.add_argument("--condor-gpus", type=int, help="request_gpus per job (workers get the dask resource GPU)")
    g.add_argument("--condor-image", help="container image (+SingularityImage); 'none' for no image")
    g.add_argument("--condor-venv", help="virtual environment: a shared directory or a .tar.gz to ship")
    g.add_argument("--condor-python", help="python executable on the worker")
    g.add_argument("--condor-code", choices=("shared", "ship"), help="project code: shared path or shipped tarball")
    g.add_argument("--condor-log-dir", help="directory for worker .out/.err/.log files")
    g.add_argument("--condor-extra", action="append", default=[], metavar="'KEY = VALUE'",
                   help="extra submit-description line (repeatable), e.g. '+JobFlavour = \"workday\"'")
    g.add_argument("--condor-env", action="append", default=[], metavar="NAME=VALUE",
                   help="environment variable of the jobs (repeatable)")
    g.add_argument("--condor-adapt", metavar="MIN:MAX", help="adaptive number of jobs instead of --workers")
    g.add_argument("--condor-transfer", action="append", default=[], metavar="FILE",
                   help="file to transfer to every job (repeatable)")
    g.add_argument("--condor-x509", metavar="FILE|auto|none", help="X509 proxy to send with the jobs")
    g.add_argument("--condor-token", metavar="FILE", help="bearer token file to send (BEARER_TOKEN_FILE)")
    g.add_argument("--condor-scheduler-host", help="address the workers connect to ('hostname': this node)")
    g.add_argument("--condor-scheduler-port", type=int, help="scheduler port (0: any)")
    g.add_argument("--condor-start-timeout", type=float, help="seconds to wait for workers to connect")


def _split_pair(text: str, sep: str, what: str) -> tuple[str, str]:
    if sep not in text:
        raise BadInputError(f"{what} {text!r}: expected KEY{sep.strip()}VALUE")
    k, v = text.split(sep, 1)
    if not k.strip():
        raise BadInputError(f"{what} {text!r}: empty key")
    return k.strip(), v.strip()


def condor_options_from_args(args: argparse.Namespace) -> dict:
    """The keyword arguments of condor_client that the ``--condor-*`` options ask for."""
    simple = {"condor_cores": "cores", "condor_memory": "memory", "condor_disk": "disk",
              "condor_processes": "processes", "condor_gpus": "gpus", "condor_image": "image",
              "condor_venv": "venv", "condor_python": "python", "condor_code": "code",
              "condor_log_dir": "log_directory", "condor_x509": "x509_proxy", "condor_token": "token_file",
              "condor_scheduler_host": "scheduler_host", "condor_scheduler_port": "scheduler_port"}
    overrides: dict = {}
    for attr, key in simple.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides[key] = None if key == "image" and str(value).lower() == "none" else value
    extra = dict(_split_pair(line, "=", "--condor-extra") for line in getattr(args, "condor_extra", []) or [])
    if extra:
        overrides["job_extra"] = extra
    env = dict(_split_pair(item, "=", "--condor-env") for item in getattr(args, "condor_env", []) or [])
    if env:
        overrides["environment"] = env
    if getattr(args, "condor_transfer", None):
        overrides["transfer_files"] = list(args.condor_transfer)
    adapt = getattr(args, "condor_adapt", None)
    if adapt:
        lo, sep, hi = adapt.partition(":")
        if not sep or not lo.strip().isdigit() or not hi.strip().isdigit():
            raise BadInputError(f"--condor-adapt {adapt!r}: expected MIN:MAX, e.g. 0:20")
        overrides["adapt"] = {"minimum": int(lo), "maximum": int(hi)}
    options: dict = {"overrides": overrides} if overrides else {}
    if getattr(args, "condor_start_timeout", None) is not None:
        options["start_timeout"] = args.condor_start_timeout
    return options
