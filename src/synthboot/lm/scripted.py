"""A scripted LM for deterministic unit tests of parsing and stage logic.

`scripted_lm(replies)` is a real `dspy.LM` whose engine answers each request with the next reply
(a string, or a function of the request's last user message). The real embedded model is what
integration tests use; this is for tests that need an exact reply, like a malformed one.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage, response_to_events

Reply = str | Callable[[str], str]


class ScriptedEngine:
    supports_response_schema = True
    supported_params = frozenset({"response_format", "temperature", "max_tokens", "seed"})

    def __init__(self, replies: Iterable[Reply], *, cycle: bool = False):
        self._replies = itertools.cycle(list(replies)) if cycle else iter(list(replies))
        self._lock = threading.Lock()
        self.requests: list = []

    def complete(self, request) -> Response:
        with self._lock:
            self.requests.append(request)
            try:
                reply = next(self._replies)
            except StopIteration:
                raise RuntimeError("the scripted LM ran out of replies") from None
        prompt = request.messages[-1].text or ""
        text = reply(prompt) if callable(reply) else reply
        return Response(id=None, model="scripted", message=Message.assistant([TextPart(text)]), finish_reason="stop",
                        usage=Usage(input_tokens=len(prompt) // 4, output_tokens=len(text) // 4,
                                    total_tokens=(len(prompt) + len(text)) // 4))

    def stream(self, request):
        return response_to_events(self.complete(request))

    def close(self) -> None:
        pass


def scripted_lm(replies: Iterable[Reply], *, cycle: bool = False, name: str = "scripted/test") -> dspy.LM:
    return dspy.LM(name, engine=ScriptedEngine(replies, cycle=cycle), num_retries=0)
