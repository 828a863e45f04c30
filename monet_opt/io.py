"""Reading input files with one-line errors, and output that never leaves a partial file behind
(write to a temporary file, then rename)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from monet_opt.errors import InputError


MAX_YAML_BYTES = 2 << 20
"""Largest YAML input (bytes): PyYAML's safe loader reads 0.2-1 MB/s (measured on a 1 MB graph, busy
and idle 2-core machine), so a larger file would take longer than a command's time limit to parse;
such data belongs in JSON (50-100 MB/s). The largest shipped YAML file has 0.2 MB."""
MAX_JSON_BYTES = 512 << 20
"""Largest JSON input (bytes)."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings in an input file (the project's formats need 5)."""
MAX_INTEGER = 2**53
"""Largest integer magnitude in an input file: every integer below it is exact as a float too."""


class _YamlLoader(yaml.SafeLoader):
    """YAML as PyYAML's safe loader reads it, except that exponent numbers without a dot (1e9) are
    numbers, as in YAML 1.2 and JSON, not strings, and that aliases (`*name`) are refused: an
    alias can make a document refer to itself, or expand a few hundred bytes into gigabytes
    ("billion laughs"), and no format of the project needs one."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} (aliases are not supported)",
                                              event.start_mark)
        return super().compose_node(parent, index)


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def read_text(path: str | Path) -> str:
    """The file's text (UTF-8); InputError naming the file when it is missing, a directory,
    unreadable or not UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a file")
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_data(path: str | Path) -> Any:
    """A JSON (by the .json suffix) or YAML file as Python data. InputError naming the file for
    anything unreadable (`read_text`), larger than MAX_YAML_BYTES (YAML) or MAX_JSON_BYTES (JSON),
    a syntax error (with its line), a YAML alias, nesting deeper than MAX_DEPTH, or a number that
    is not finite or an integer beyond MAX_INTEGER (with its key path: no NaN, infinity or
    overflowing integer may reach a model)."""
    path = Path(path)
    is_json = path.suffix == ".json"
    limit = MAX_JSON_BYTES if is_json else MAX_YAML_BYTES
    with contextlib.suppress(OSError):
        size = path.stat().st_size
        if path.is_file() and size > limit:
            hint = "" if is_json else "; write large inputs as JSON (a .json file)"
            raise InputError(f"{path}: {size} bytes, more than the {limit >> 20} MiB a "
                             f"{'JSON' if is_json else 'YAML'} input may have{hint}")
    text = read_text(path)
    try:
        data = json.loads(text) if is_json else yaml.load(text, Loader=_YamlLoader)  # noqa: S506
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON at line {exc.lineno} ({exc.msg})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc).splitlines()[0]
        raise InputError(f"{path}: not valid YAML{where} ({problem})") from None
    except RecursionError:
        raise InputError(f"{path}: nested deeper than {MAX_DEPTH} levels") from None
    bad = _unusable_number(data, "", 0)
    if bad is not None:
        raise InputError(f"{path}: {bad}")
    return data


def file_beside(directory: Path, value: Any, source: str, key: str) -> Path:
    """The file an instance names under `key`: relative to the instance's `directory`, never the
    current one. InputError naming `source`, the key and the path when there is no such file."""
    candidate = directory / str(value)
    if not candidate.is_file():
        what = "is a directory" if candidate.is_dir() else "no such file"
        raise InputError(f"{source}: {key}: {candidate}: {what} (a file is relative to the instance)")
    return candidate


def check_keys(mapping: dict, known: tuple[str, ...], where: str) -> None:
    """InputError naming the first key of `mapping` that is not `known` (a misspelt key would
    otherwise be ignored silently)."""
    for key in mapping:
        if key not in known:
            raise InputError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")


def _unusable_number(data: Any, where: str, depth: int) -> str | None:
    """"KEY.PATH: problem" for the first NaN or infinite number, integer beyond MAX_INTEGER, or
    nesting beyond MAX_DEPTH in `data`; None when there is none."""
    name = where or "the value"
    if depth > MAX_DEPTH:
        return f"{name}: nested deeper than {MAX_DEPTH} levels"
    if isinstance(data, float) and not math.isfinite(data):
        return f"{name}: not a finite number"
    if isinstance(data, int) and not isinstance(data, bool) and abs(data) > MAX_INTEGER:
        return f"{name}: {'larger' if data > 0 else 'smaller'} than {'' if data > 0 else '-'}2**53"
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        path = f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)
        found = _unusable_number(value, path, depth + 1)
        if found is not None:
            return found
    return None


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it to `path` (with the mode a new file
    gets under the process's umask, not the temporary file's 0600), on failure or interruption
    delete it. InputError when `path` exists and is not a regular file: it is never replaced."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise InputError(f"{path}: exists and is not a regular file (not replaced)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to `path` via a temporary file in the same directory and an atomic rename."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1) + "\n")


def check_output_dir(path: str | Path, option: str = "--out") -> None:
    """Before any work, leaving nothing behind: `path` is a writable directory, or can be created as
    one (its nearest existing ancestor is a directory in which a file can be created: a probe file
    is created there and removed at once, which also catches read-only mounts and pseudo file
    systems such as /proc). InputError naming the option and the path otherwise."""
    path = Path(path)
    if not str(path):
        raise InputError(f"{option}: an empty path")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "exists and is not a directory" if existing == path else f"{existing} is not a directory"
        raise InputError(f"{option} {path}: {what}")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".monet-probe.")
    except OSError as exc:
        raise InputError(f"{option} {path}: {existing} is not writable ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


def check_output_file(path: str | Path, option: str) -> None:
    """Before any work, leaving nothing behind: `path` is a regular file or does not exist (a device,
    pipe or directory is never replaced), and its directory exists or can be created
    (`check_output_dir`)."""
    path = Path(path)
    if not str(path):
        raise InputError(f"{option}: an empty path")
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory")
    if path.exists() and not path.is_file():
        raise InputError(f"{option} {path}: exists and is not a regular file")
    check_output_dir(path.parent, f"{option} {path}: directory")


def provenance(command: str) -> str:
    """Three lines saying when, on what and by which command a result was produced (benchmark
    outputs and `monet bench` tables start with them, so that a rerun can be compared)."""
    import os
    import platform
    from datetime import datetime, timezone

    cpu = platform.processor() or platform.machine()
    return "\n".join([
        f"date:    {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {platform.system()} {platform.machine()} {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"command: {command}",
    ])


def load_mapping(path: str | Path, schema: Mapping[str, Any], message: Callable[[Any], str]) -> Mapping[str, Any]:
    """A JSON or YAML file (`load_data`) whose top level is a mapping valid against the JSON Schema
    `schema`; InputError naming the file and, through `message` (a jsonschema error -> text), the
    key of the most relevant violation."""
    data = load_data(path)
    if not isinstance(data, Mapping):
        raise InputError(f"{path}: expected a mapping at the top level")
    check_schema(data, schema, str(path), message)
    return data


def check_schema(data: Any, schema: Mapping[str, Any], source: str, message: Callable[[Any], str]) -> None:
    """InputError "`source`: `message`(error)" for the most relevant violation of `schema`, if any."""
    import jsonschema  # here, not at import: commands that read no file start faster

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        raise InputError(f"{source}: {message(jsonschema.exceptions.best_match(errors))}")
