"""The fault-injecting OpenAI-compatible server (tests/support/openai_server.py), checked over real HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.parse import urlparse

import dspy
import pytest

from tests.support.openai_server import free_port, serve

SCHEMA = {"type": "object", "properties": {"examples": {"type": "array", "items": {"$ref": "#/$defs/Item"}}},
          "$defs": {"Item": {"type": "object", "properties": {
              "question": {"type": "string", "maxLength": 80},
              "level": {"type": "string", "enum": ["easy", "hard"]},
              "score": {"type": "integer", "minimum": 1, "maximum": 5}}}}}


def post(base_url: str, body: dict, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    url = urlparse(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request("POST", url.path + "/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def body(topic: str = "rivers", count: int = 3) -> dict:
    return {"model": "fake", "seed": 7, "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
            "messages": [{"role": "user", "content": f"[[ ## topic ## ]]\n{topic}\n\n[[ ## count ## ]]\n{count}"}]}


def test_default_reply_fits_the_schema_and_is_stable():
    with serve() as url:
        status, _, raw = post(url, body(count=4))
        assert status == 200
        completion = json.loads(raw)
        items = json.loads(completion["choices"][0]["message"]["content"])["examples"]
        assert len(items) == 4  # the prompt's count
        assert all(len(i["question"]) <= 80 and i["level"] in ("easy", "hard") and 1 <= i["score"] <= 5 for i in items)
        assert len({i["question"] for i in items}) == 4
        assert {i["level"] for i in items} == {"easy", "hard"}
        assert json.loads(post(url, body(count=4))[2])["choices"] == completion["choices"]  # same request, same reply
        other = json.loads(json.loads(post(url, body("lakes", 4))[2])["choices"][0]["message"]["content"])
        assert other["examples"][0]["question"] != items[0]["question"]
        assert url.server.count() == 3 and url.server.count("ok") == 3


@pytest.mark.parametrize("fault,status", [("500", 500), ("502", 502), ("503", 503), ("429", 429)])
def test_http_error_faults(fault, status):
    with serve(script=[fault]) as url:
        code, headers, raw = post(url, body())
        assert code == status and "error" in json.loads(raw)
        assert "retry-after" not in headers
        assert post(url, body())[0] == 200  # past the script: normal replies
        assert [r.fault for r in url.server.requests] == [fault, "ok"]


def test_429_with_retry_after():
    with serve(script=["429:2"]) as url:
        code, headers, _ = post(url, body())
        assert code == 429 and headers["retry-after"] == "2"


@pytest.mark.parametrize("fault", ["truncated", "wrong_shape", "empty", "bad_content"])
def test_malformed_200_replies(fault):
    with serve(script=[fault]) as url:
        code, _, raw = post(url, body())
        assert code == 200
        if fault in ("truncated", "empty"):
            with pytest.raises(json.JSONDecodeError):
                json.loads(raw)
        elif fault == "wrong_shape":
            assert "choices" not in json.loads(raw)
        else:
            content = json.loads(json.loads(raw)["choices"][0]["message"]["content"])
            assert not isinstance(content["examples"], list)


def test_hang_outlasts_the_client_timeout_and_close_drops_the_connection():
    with serve(script=["hang:1", "close"]) as url:
        started = time.monotonic()
        with pytest.raises((socket.timeout, TimeoutError)):
            post(url, body(), timeout=0.3)
        assert time.monotonic() - started < 0.9
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            post(url, body())
        assert url.server.count("hang") == 1 and url.server.count("close") == 1
        assert url.server.answered() == []


def test_drip_sends_a_whole_reply_slowly():
    with serve(script=["drip:0.05"]) as url:
        started = time.monotonic()
        code, _, raw = post(url, body())
        assert code == 200 and json.loads(raw)["object"] == "chat.completion"
        assert time.monotonic() - started >= 0.3  # 8 chunks, 0.05 s apart
        deadline = time.monotonic() + 2
        while not url.server.answered() and time.monotonic() < deadline:
            time.sleep(0.01)  # the server marks the reply sent just after its last write
        assert [r.n for r in url.server.answered()] == [0]


def test_scripts_by_function_and_replaced_mid_run():
    with serve(script=lambda n, b: "503" if n % 2 else None, delay_s=0.01) as url:
        assert [post(url, body())[0] for _ in range(4)] == [200, 503, 200, 503]
        url.server.set_script(["502"])
        assert [post(url, body())[0] for _ in range(2)] == [502, 200]
        assert url.server.count() == 6 and url.server.count("503") == 2


def test_connection_refused_port():
    with pytest.raises(ConnectionRefusedError):
        post(f"http://127.0.0.1:{free_port()}/v1", body())


def test_dspy_reaches_it_and_parses_the_reply():
    """The path synthboot takes: DSPy's LM with `api_base`, JSONAdapter, typed outputs."""
    with serve() as url:
        lm = dspy.LM("openai/fake", api_base=url, api_key="test-key", num_retries=0, cache=False)

        class Rate(dspy.Signature):
            text: str = dspy.InputField()
            summary: str = dspy.OutputField()
            score: int = dspy.OutputField()
            tags: list[str] = dspy.OutputField()

        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            out = dspy.Predict(Rate)(text="a calm river")
        assert isinstance(out.summary, str) and out.summary
        assert isinstance(out.score, int) and isinstance(out.tags, list)
        request = url.server.requests[0]
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == "Bearer test-key"
