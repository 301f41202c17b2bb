"""A planted API key never lands in anything a run writes; hostile text is never run or unescaped.

Real processes against the loopback server: the key is in the environment, the server checks it
arrives (so it was really used) and, in a second run, quotes it back in a 401 as providers do.
Then every file under the test's directories, and every line printed, is searched for it.
"""

from __future__ import annotations

import json
import secrets as pysecrets

from synthboot.secrets import scrub
from tests.support.openai_server import default_content, serve
from tests.support.procs import env, loopback_spec, run, run_args

HOSTILE = "<script>alert(1)</script> {{7*7}} __import__('os').system('touch PWNED')"


def hostile_reply(body: dict) -> str:
    # LM output that tries markup, template and code injection: it must stay inert text.
    return default_content(body).replace("What is the role", HOSTILE.replace("'", "") + " What is the role")


def test_planted_key_reaches_the_server_and_nothing_else(tmp_path):
    key = "sk-canary-" + pysecrets.token_hex(16)
    dirs = {name: tmp_path / name for name in ("home", "synthboot-home", "cwd", "xdg-cache")}
    for d in dirs.values():
        d.mkdir()
    run_env = env(OPENAI_API_KEY=key, HOME=str(dirs["home"]), SYNTHBOOT_HOME=str(dirs["synthboot-home"]),
                  XDG_CACHE_HOME=str(dirs["xdg-cache"]), DSPY_CACHEDIR=str(dirs["xdg-cache"] / "dspy"))
    # Names that would escape the run directory if they were ever used in a file path.
    spec = loopback_spec(tmp_path / "spec.yaml", per_topic=2)
    text = spec.read_text().replace("name: loopback-qa", "name: ../../escaped-name").replace(
        "topics: [rivers,", "topics: ['../../escaped-topic', '/tmp/abs-topic', rivers,")
    spec.write_text(text)
    run_dir, failed_dir = tmp_path / "run", tmp_path / "run-401"
    printed: list[str] = []

    def cli(*args: str, ok: int = 0) -> None:
        proc = run(list(args), env=run_env, cwd=dirs["cwd"], timeout=600)
        printed.extend([proc.stdout, proc.stderr])
        assert proc.returncode == ok, proc.stderr[-3000:]

    with serve(reply=hostile_reply) as url:
        cli(*run_args(spec, run_dir, url))
        auth = {r.headers.get("authorization") for r in url.server.requests}
        assert auth == {f"Bearer {key}"}  # the planted key was the one used
    py = run_args(spec, run_dir)[:3]  # python -m synthboot.cli
    cli(*py, "status", str(run_dir))
    cli(*py, "export", str(run_dir), "--format", "jsonl")
    cli(*py, "export", str(run_dir), "--format", "parquet")
    cli(*py, "report", str(run_dir))
    with serve(script=lambda n, body: "401") as url:  # the provider quotes the key back in its error
        cli(*run_args(spec, failed_dir, url), ok=3)  # EXIT_PROVIDER: the key was refused
    assert "refused the request" in printed[-1] and "<redacted>" in printed[-1]

    leaks = []
    for path in tmp_path.rglob("*"):
        if path.is_file() and key.encode() in path.read_bytes():
            leaks.append(str(path.relative_to(tmp_path)))
    leaks += [f"output {i}" for i, text in enumerate(printed) if key in text]
    assert not leaks, f"the API key was written to {leaks}"

    # Nothing left the run directories: no file named from the spec's name or topics, nothing in cwd.
    assert not list(dirs["cwd"].iterdir())
    assert not [p for p in tmp_path.rglob("*escaped*")] and not list(tmp_path.parent.glob("escaped*"))
    # Hostile LM text is stored as text and escaped in the report.
    html = (run_dir / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    exported = [json.loads(line) for line in (run_dir / "export" / "jsonl" / "candidates.jsonl").open()]
    assert any("<script>alert(1)</script>" in json.dumps(row["fields"]) for row in exported if row["fields"])
    assert not (dirs["cwd"] / "PWNED").exists() and not (tmp_path / "PWNED").exists()


def test_scrub_removes_environment_secrets_and_key_shapes(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-1234567890abcdef")
    monkeypatch.setenv("HOME_DIR_PATH", "/not/a/secret/value")
    text = ("auth failed for tok-1234567890abcdef; key sk-proj-abcdefghijklmnopqrstuv; "
            "Authorization: Bearer abcdefghijklmnop1234; path /not/a/secret/value")
    out = scrub(text)
    assert "tok-1234567890abcdef" not in out and "sk-proj-abcdefghijklmnopqrstuv" not in out
    assert "abcdefghijklmnop1234" not in out and "/not/a/secret/value" in out
