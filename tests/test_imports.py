"""Commands import only what they need: the CLI and `status` load without DSPy, LiteLLM or torch."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("dspy", "litellm", "torch", "datasets", "plotly", "transformers", "sentence_transformers")


def loaded_after(code: str) -> list[str]:
    """The heavy modules in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_cli_module_imports_no_heavy_library():
    assert loaded_after("import synthboot.cli") == []


def test_status_of_a_run_imports_no_heavy_library(tiny_run):
    # `synthboot status RUN` on a finished run (no optimize run), as the command runs it.
    assert loaded_after(f"from synthboot.cli import main\nmain(['status', {str(tiny_run)!r}])") == []


def test_dedup_file_module_imports_no_heavy_library():
    assert loaded_after("import synthboot.dedup.file, synthboot.dedup.stream, synthboot.dedup.ivf") == []


def test_optimize_reports_are_read_without_dspy():
    # `status` of an optimized run reads its reports from here.
    assert loaded_after("import synthboot.optimize_reports, synthboot.cli.render_optimize") == []


def test_the_library_still_loads_them_where_needed():
    assert "dspy" in loaded_after("import synthboot.pipeline")


def test_streamed_minhash_dedup_of_a_file_loads_neither_pandas_nor_scipy(tmp_path):
    # `synthboot dedup FILE --method minhash` as the command runs it: pandas (which pyarrow's
    # `to_numpy` pulls in) and scipy cost more to import than deduplicating 50k rows takes.
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"text": f"the same prompt number {k % 7} with words"}) + "\n"
                            for k in range(50)))
    run = (f"from synthboot.cli import main\n"
           f"main(['dedup', {str(rows)!r}, '--field', 'text', '--method', 'minhash', '--threshold', '0.85', '--out', {str(tmp_path / 'k.jsonl')!r}])\n"
           "import json, sys\nprint(json.dumps([m for m in ('pandas', 'scipy', 'synthboot.spec', 'synthboot.store')"
           " if m in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["synthboot.spec"]  # spec: the layers' defaults
    assert len((tmp_path / "k.jsonl").read_text().splitlines()) == 7
