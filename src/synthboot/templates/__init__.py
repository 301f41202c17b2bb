"""Starting specs for `synthboot init --template NAME`: one commented YAML file per kind of task.

Each template runs as written on the embedded model (tests/test_templates.py).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from synthboot.errors import SynthbootError

TEMPLATES = ("qa", "classification", "extraction", "math", "rag")


def available() -> list[str]:
    """Template names whose file ships with this version."""
    return [name for name in TEMPLATES if files(__package__).joinpath(f"{name}.yaml").is_file()]


def template_text(name: str) -> str:
    if name not in TEMPLATES:
        raise SynthbootError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATES)}")
    resource = files(__package__).joinpath(f"{name}.yaml")
    if not resource.is_file():
        raise SynthbootError(f"the {name!r} template is not available yet in this version; "
                             f"choose one of {', '.join(available())}")
    return resource.read_text(encoding="utf-8")


def write_template(name: str, path: str | Path, *, force: bool = False) -> Path:
    """Write template `name` to `path`, creating missing folders; an existing file needs `force`."""
    path = Path(path)
    text = template_text(name)
    if path.exists() and not force:
        raise SynthbootError(f"{path} exists; choose another path or add --force to overwrite it")
    if path.is_dir():
        raise SynthbootError(f"{path} is a directory; give a file name such as {path / 'spec.yaml'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("THIS.yaml", str(path)), encoding="utf-8")
        _copy_folder(files(__package__).joinpath(f"{name}-docs"), path.parent / f"{name}-docs")
    except OSError as exc:
        raise SynthbootError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


def _copy_folder(source, target: Path) -> None:
    """A template's own files (the rag template's small docs folder), beside the spec; kept if present."""
    if not source.is_dir() or target.exists():
        return
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.is_file():
            (target / item.name).write_bytes(item.read_bytes())
