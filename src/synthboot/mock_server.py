"""A mock LM provider: a real OpenAI-compatible HTTP server on 127.0.0.1, free, offline, and able to misbehave.

Try a spec's plumbing (generation, parsing, every filter, splits, export) without paying for a
model: `synthboot run SPEC --out DIR --lm mock` starts one in the process, or run it apart with
`synthboot mock-server --port 8765` and point `--lm openai/mock --api-base http://127.0.0.1:8765/v1`
at it. Its examples fit the task's schema but are word salad: they test the pipeline, not the data.

    from synthboot.mock_server import serve

    with serve(script=["429", "500", "ok"]) as base_url:      # base_url = "http://127.0.0.1:PORT/v1"
        synthboot.run(spec, out, lm="openai/fake", api_base=base_url)
        base_url.server.requests                                 # every request, in order, with its fault

It answers POST /v1/chat/completions with a chat completion whose content is JSON that fits the
request's `response_format` schema (DSPy's JSONAdapter sends one): lists get as many items as the
prompt's `count` asks for, strings are distinct word salads within their length bounds, enums take
their first values in turn. Same request body, same reply.

Faults are scripted per request, in arrival order (a list of names, or a function
`(n, body) -> name | None` for request number n starting at 0); past the end of the list every
request is answered normally. Fault names (an optional parameter after a colon):

    ok               a normal reply
    401              HTTP 401 whose message quotes the API key back, as providers do
    429[:S]          HTTP 429, with `Retry-After: S` when S is given
    500, 502, 503    HTTP errors with a JSON error body
    hang[:S]         read the request, answer nothing for S seconds (default 60), then close
    close            close the connection without answering
    truncated        HTTP 200 whose JSON body is cut in half
    wrong_shape      HTTP 200 with valid JSON that is not a chat completion
    bad_content      a chat completion whose content is JSON of the wrong shape for the schema
    empty            HTTP 200 with an empty body
    drip[:S]         a normal reply sent a few bytes at a time, S seconds apart (default 0.5)

A connection refused needs no server: `free_port()` gives a port nothing listens on.

Run it by hand (for `synthboot run --lm openai/fake --api-base ...` or a benchmark):

    synthboot mock-server --port 8765 --delay 0.2 --script 429,ok
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("ok", "401", "429", "500", "502", "503", "hang", "close", "truncated", "wrong_shape", "bad_content", "empty",
          "drip")

Script = Sequence[str] | Callable[[int, dict], "str | None"] | None
Reply = Callable[[dict], str] | None

# Words for generated text: plain English so built-in rules (language, placeholder) pass, and
# enough of them that two items rarely share most of their words (the dedup stage would drop them).
_WORDS = ("river", "lantern", "garden", "copper", "violin", "harbor", "meadow", "glacier", "quartz", "falcon",
          "orchard", "canyon", "saddle", "beacon", "thimble", "compass", "prairie", "marble", "willow", "ember",
          "anchor", "cobalt", "juniper", "pebble", "summit", "tundra", "velvet", "walnut", "zephyr", "basalt",
          "cedar", "dune", "fjord", "granite", "hazel", "island", "jasper", "kelp", "lagoon", "mango",
          "nectar", "opal", "pine", "quill", "reef", "sable", "thistle", "umber", "valley", "wharf",
          "yarrow", "acorn", "bramble", "cinder", "delta", "estuary", "fennel", "grove", "heron", "ivory",
          "kestrel", "lichen", "mosaic", "nutmeg", "oasis", "pylon", "quarry", "rapids", "saffron", "timber",
          "upland", "vortex", "wicker", "yew", "alder", "birch", "cove", "drizzle", "egret", "flint",
          "gull", "hollow", "inlet", "jetty", "knoll", "ledge", "marsh", "nook", "otter", "plume",
          "ripple", "shoal", "tide", "vale", "wren", "aspen", "bluff", "crag", "dell", "elm")


@dataclass
class RecordedRequest:
    """One request as the server saw it."""

    n: int                      # arrival order, from 0
    path: str
    body: dict[str, Any] | None
    fault: str                  # the fault applied ("ok" for a normal reply)
    started: float              # time.time() when the request arrived
    finished: float | None = None  # when the reply was fully sent (None: not answered or cut off)
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """The request's messages and sampling seed, hashed: the same LM call has the same fingerprint."""
        return fingerprint(self.body or {})


def fingerprint(body: dict[str, Any]) -> str:
    messages = [(m.get("role"), _content_text(m.get("content"))) for m in body.get("messages") or []]
    return hashlib.sha256(json.dumps([messages, body.get("seed")], sort_keys=True).encode()).hexdigest()[:16]


class _HTTPServer(ThreadingHTTPServer):
    # socketserver's default backlog of 5 resets connections when a client opens 32 at once, as
    # an asyncio client does; real servers accept far more.
    request_queue_size = 128


class OpenAIServer:
    """The server; `serve()` is the usual way to run one."""

    def __init__(self, script: Script = None, *, delay_s: float = 0.0, reply: Reply = None, port: int = 0,
                 hang_s: float = 60.0, model: str = "fake"):
        self.delay_s = delay_s
        self.reply = reply
        self.hang_s = hang_s
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._script = script
        self._script_start = 0  # request number the current script's first entry applies to
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="openai-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging and dripping handlers
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- scripting and counting --------------------------------------------------------------
    def set_script(self, script: Script) -> None:
        """Replace the script; request numbers keep counting from where they are."""
        with self._lock:
            self._script = script
            self._script_start = len(self.requests)

    def count(self, fault: str | None = None) -> int:
        """Requests received so far (only those given `fault`, when named)."""
        with self._lock:
            return sum(1 for r in self.requests if fault is None or r.fault.split(":")[0] == fault)

    def answered(self) -> list[RecordedRequest]:
        """Requests whose normal reply was fully sent."""
        with self._lock:
            return [r for r in self.requests if r.finished is not None and r.fault.split(":")[0] in ("ok", "drip")]

    def _next(self, path: str, body: dict | None, headers: dict[str, str]) -> RecordedRequest:
        with self._lock:
            n = len(self.requests)
            k = n - self._script_start
            script = self._script
            if callable(script):
                fault = script(n, body or {}) or "ok"
            elif script is not None and k < len(script):
                fault = script[k]
            else:
                fault = "ok"
            if fault.split(":")[0] not in FAULTS:
                fault = "500"  # a typo in a test script must not look like success
            record = RecordedRequest(n=n, path=path, body=body, fault=fault, started=time.time(), headers=headers)
            self.requests.append(record)
            return record

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if the server is stopping."""
        return self._stopping.wait(seconds)

    # -- replies -----------------------------------------------------------------------------
    def completion(self, body: dict[str, Any]) -> dict[str, Any]:
        content = self.reply(body) if self.reply else default_content(body)
        prompt_chars = sum(len(_content_text(m.get("content"))) for m in body.get("messages") or [])
        return {
            "id": "chatcmpl-" + fingerprint(body),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_chars // 4, "completion_tokens": len(content) // 4,
                      "total_tokens": prompt_chars // 4 + len(content) // 4},
        }


@contextmanager
def serve(script: Script = None, delay_s: float = 0.0, reply: Reply = None, **kwargs: Any) -> Iterator[BaseUrl]:
    """Run a server in a thread; yields its base URL (`http://127.0.0.1:PORT/v1`), whose `.server`
    is the `OpenAIServer` (its `.requests`, `.count()`, `.set_script()`)."""
    server = OpenAIServer(script, delay_s=delay_s, reply=reply, **kwargs).start()
    try:
        yield BaseUrl(server)
    finally:
        server.stop()


class BaseUrl(str):
    """The server's base URL as a plain string, with the server attached."""

    server: OpenAIServer

    def __new__(cls, server: OpenAIServer) -> BaseUrl:
        url = super().__new__(cls, server.base_url)
        url.server = server
        return url


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _handler_for(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read .requests instead
            pass

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
            else:
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

        def do_POST(self) -> None:
            try:
                self._post()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client went away (its timeout, or a killed process): nothing to answer

        def _post(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except json.JSONDecodeError:
                body = None
            record = server._next(self.path, body, {k.lower(): v for k, v in self.headers.items()})
            if not self.path.rstrip("/").endswith("/chat/completions"):
                record.status = 404
                self._send_json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            if body is None:
                record.status = 400
                self._send_json(400, {"error": {"message": "the body is not JSON", "type": "invalid_request_error"}})
                return
            if server.delay_s and server.wait(server.delay_s):
                return
            self._fault(record, body)

        def _fault(self, record: RecordedRequest, body: dict[str, Any]) -> None:
            name, _, param = record.fault.partition(":")
            if name in ("429", "500", "502", "503"):
                status = int(name)
                headers = {"Retry-After": param} if name == "429" and param else {}
                kind = "rate_limit_error" if status == 429 else "server_error"
                record.status = status
                self._send_json(status, {"error": {"message": f"injected {name}", "type": kind, "code": kind}},
                                headers)
                return
            if name == "401":
                key = self.headers.get("Authorization", "").removeprefix("Bearer ")
                record.status = 401
                self._send_json(401, {"error": {"message": f"Incorrect API key provided: {key}. You can find your "
                                                           "API key at https://example.invalid/keys.",
                                                "type": "invalid_request_error", "code": "invalid_api_key"}})
                return
            if name == "hang":
                server.wait(float(param or server.hang_s))
                self.close_connection = True
                return
            if name == "close":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if name == "empty":
                record.status = 200
                self._send_bytes(200, b"")
                return
            if name == "wrong_shape":
                record.status = 200
                self._send_json(200, {"result": "ok", "data": [1, 2, 3]})
                return
            completion = server.completion(body)
            if name == "bad_content":
                completion["choices"][0]["message"]["content"] = json.dumps({"examples": "none", "note": 42})
            data = json.dumps(completion).encode()
            if name == "truncated":
                record.status = 200
                self._send_bytes(200, data[: len(data) // 2])
                return
            record.status = 200
            if name == "drip":
                self._drip(data, float(param or 0.5))
            else:
                self._send_bytes(200, data)
            if name in ("ok", "drip", "bad_content"):
                record.finished = time.time()

        def _drip(self, data: bytes, every_s: float) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            chunk = max(1, len(data) // 8)
            for i in range(0, len(data), chunk):
                if i and server.wait(every_s):
                    return
                self.wfile.write(data[i:i + chunk])
                self.wfile.flush()

        def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            self._send_bytes(status, json.dumps(payload).encode(), headers)

        def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

    return Handler


# -- generated content ----------------------------------------------------------------------------

def default_content(body: dict[str, Any]) -> str:
    """JSON content that fits the request's response_format schema or, without one, the output
    fields DSPy's JSONAdapter describes in the prompt (their types and JSON-schema notes)."""
    seed = fingerprint(body)
    prompt = "\n".join(_content_text(m.get("content")) for m in body.get("messages") or [])
    count = _prompt_int(prompt, "count") or 3
    schema = _schema_of(body.get("response_format")) or _prompt_schema(prompt)
    filler = _Filler(schema, seed, count)
    return json.dumps(filler.value(schema, "root"))


class _Filler:
    def __init__(self, root: dict[str, Any], seed: str, count: int):
        self.defs: dict[str, Any] = {}  # every `$defs` entry in the schema, by name (notes nest them)
        self._collect_defs(root)
        self.seed = seed
        self.count = count
        self.serial = 0  # distinct text for every string in one reply
        self.turns: dict[str, int] = {}  # per enum field: its values in turn, so the mix is even

    def value(self, node: dict[str, Any], name: str, depth: int = 0) -> Any:
        node = self._resolve(node)
        if "const" in node:
            return node["const"]
        if "enum" in node:
            turn = self.turns[name] = self.turns.get(name, int(self.seed[:4], 16)) + 1
            return node["enum"][turn % len(node["enum"])]
        for key in ("anyOf", "oneOf", "allOf"):
            if key in node:
                options = [self._resolve(o) for o in node[key]]
                usable = [o for o in options if o.get("type") != "null"] or options
                return self.value(usable[0], name, depth)
        kind = node.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "string")
        if kind == "object":
            props = node.get("properties") or {}
            return {key: self.value(sub, key, depth + 1) for key, sub in props.items()}
        if kind == "array":
            lo, hi = node.get("minItems", 0), node.get("maxItems", 50)
            n = max(lo, min(hi, self.count if depth <= 1 else 2))
            return [self.value(node.get("items") or {"type": "string"}, name, depth + 1) for _ in range(n)]
        if kind == "integer":
            return int(max(node.get("minimum", 1), min(node.get("maximum", 5), 4)))
        if kind == "number":
            return float(max(node.get("minimum", 0.0), min(node.get("maximum", 1.0), 0.5)))
        if kind == "boolean":
            return True
        return self._text(name, node.get("minLength", 0), node.get("maxLength", 400))

    def _text(self, name: str, min_len: int, max_len: int) -> str:
        self.serial += 1
        digest = hashlib.sha256(f"{self.seed}:{name}:{self.serial}".encode()).digest()
        words = [_WORDS[b % len(_WORDS)] for b in digest[:8]]
        if "question" in name.lower() or "input" in name.lower():
            text = f"What is the role of the {words[0]} {words[1]} in the {words[2]} of {' '.join(words[3:])}?"
        else:
            text = f"The {words[0]} {words[1]} shapes the {words[2]} and the {' '.join(words[3:])}."
        while len(text) < min_len:
            text += " " + text
        return text[:max_len].rstrip() if len(text) > max_len else text

    def _collect_defs(self, node: Any) -> None:
        if isinstance(node, dict):
            self.defs.update(node.get("$defs") or node.get("definitions") or {})
            for value in node.values():
                self._collect_defs(value)
        elif isinstance(node, list):
            for value in node:
                self._collect_defs(value)

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while isinstance(node, dict) and "$ref" in node:
            node = self.defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        return node if isinstance(node, dict) else {}


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    if not isinstance(response_format, dict):
        return None
    inner = response_format.get("json_schema")
    if isinstance(inner, dict) and isinstance(inner.get("schema"), dict):
        return inner["schema"]
    return response_format.get("schema") if isinstance(response_format.get("schema"), dict) else None


def _prompt_int(prompt: str, field_name: str) -> int | None:
    # DSPy's adapters write inputs as `[[ ## count ## ]]\n3` (chat) or `"count": 3` (JSON).
    match = re.findall(rf"\[\[ ## {field_name} ## \]\]\s*(\d+)", prompt) or re.findall(
        rf'"{field_name}"\s*:\s*(\d+)', prompt)
    return int(match[-1]) if match else None


def _prompt_schema(prompt: str) -> dict[str, Any]:
    """An object schema for the output fields a DSPy adapter lists in its system prompt."""
    section = prompt.split("Your output fields are:", 1)
    names = re.findall(r"^\d+\. `(\w+)`", section[1].split("All interactions", 1)[0], re.M) if len(section) > 1 else []
    props = {}
    for name in names or ["answer"]:
        # JSONAdapter writes `"name": "{name}        # note: ..."` inside a JSON template (escaped).
        match = re.search(r'"%s": "\{%s\}((?:[^"\\]|\\.)*)"' % (name, name), prompt)
        note = json.loads('"' + match.group(1) + '"') if match else ""
        props[name] = _note_schema(note)
    return {"type": "object", "properties": props}


def _note_schema(note: str) -> dict[str, Any]:
    """The JSON schema a DSPy field note (`dspy/adapters/utils.py: translate_field_type`) asks for."""
    if "must adhere to the JSON schema: " in note:
        return json.loads(note.split("must adhere to the JSON schema: ", 1)[1])
    if "single int value" in note:
        return {"type": "integer"}
    if "single float value" in note:
        return {"type": "number"}
    if "True or False" in note:
        return {"type": "boolean"}
    if " one of: " in note:
        values: list[Any] = [v.strip() for v in note.split(" one of: ", 1)[1].split(";")]
        if all(v.lstrip("-").isdigit() for v in values):
            # A numeric choice is a score (the judge's 1-5): answer the best one.
            return {"const": max(int(v) for v in values)}
        return {"enum": values}
    return {"type": "string"}


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


_shared: OpenAIServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> OpenAIServer:
    """The process's one mock server (started on first use, on a free port): what `--lm mock` talks to."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = OpenAIServer().start()
        return _shared


def run_forever(port: int = 8765, delay_s: float = 0.0, script: Sequence[str] = (),
                on_start: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C (the `synthboot mock-server` command)."""
    server = OpenAIServer(list(script), delay_s=delay_s, port=port).start()
    on_start(server.base_url)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="A fault-injecting OpenAI-compatible server on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every reply")
    parser.add_argument("--script", default="", help="comma-separated faults for the first requests")
    args = parser.parse_args(argv)
    script = [s for s in args.script.split(",") if s]
    try:
        run_forever(args.port, args.delay, script, on_start=lambda url: print(url, flush=True))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
