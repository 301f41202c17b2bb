"""One batched request's prompt and its reply bookkeeping, exactly as llama-cpp-python does them.

The batched engine (`synthboot.lm.batched`) runs its own generation loop, so it cannot call
`Llama.create_chat_completion`. `PromptBuilder` still goes through it (chat template, special
tokens, BOS, the template's stop strings, the seed, the context-window check) and stops at
`generate`, where llama-cpp-python would start evaluating: what it would have evaluated and sampled
with is the `Prompt`. `Reply` then repeats `Llama._create_completion`'s per-token rules (end of
generation, stop strings, max_tokens, multi-byte characters) so a reply has the same text, usage
and finish_reason as today's engine gives for the same tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from llama_cpp import Llama, llama_cpp


@dataclass
class Prompt:
    tokens: list[int]
    sampling: dict[str, Any]  # top_k, top_p, min_p, typical_p, temp, penalties, grammar: as `generate` got them
    seed: int
    max_tokens: int  # after llama-cpp-python's clamp to the context window
    stop: list[bytes]


class _Captured(Exception):
    def __init__(self, tokens: list[int], sampling: dict[str, Any]):
        super().__init__("prompt captured")
        self.tokens, self.sampling = tokens, sampling


class PromptBuilder(Llama):
    """A `Llama` that only builds prompts; the batched engine decodes on a context of its own."""

    _last_completion_kwargs: dict[str, Any]

    def prompt(self, messages: list[dict], **kwargs: Any) -> Prompt:
        """The prompt tokens and settings `create_chat_completion(messages, **kwargs)` would generate with."""
        try:
            self.create_chat_completion(messages=messages, **kwargs)  # type: ignore[arg-type]
        except _Captured as captured:
            completion = self._last_completion_kwargs
            tokens = captured.tokens
            # `_create_completion`'s clamp: never past the context window.
            max_tokens = completion.get("max_tokens")
            if max_tokens is None or max_tokens <= 0 or max_tokens + len(tokens) >= self._n_ctx:
                max_tokens = self._n_ctx - len(tokens)
            stop = completion.get("stop") or []
            stop = [stop] if isinstance(stop, str) else stop
            return Prompt(tokens, captured.sampling, self._seed, max_tokens, [s.encode() for s in stop])
        raise RuntimeError("create_chat_completion returned without generating")  # pragma: no cover

    def create_completion(self, prompt: Any, *args: Any, **kwargs: Any) -> Any:
        self._last_completion_kwargs = kwargs
        return super().create_completion(prompt, *args, **kwargs)

    def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
        raise _Captured(list(tokens), kwargs)


@dataclass
class Reply:
    """One sequence's output so far; `add` applies `_create_completion`'s rules to each sampled token."""

    prompt: Prompt
    tokens: list[int] = field(default_factory=list)
    text: bytes = b""
    finish_reason: str | None = None  # set when the sequence is done
    _multibyte_fix: int = 0

    def add(self, token: int, builder: Llama) -> None:
        if llama_cpp.llama_vocab_is_eog(builder._model.vocab, token):
            self.text = builder.detokenize(self.tokens, prev_tokens=self.prompt.tokens)
            self.finish_reason = "stop"
            return
        self.tokens.append(token)
        all_text = builder.detokenize(self.tokens, prev_tokens=self.prompt.tokens)
        # An incomplete UTF-8 character at the end: wait for its other bytes (as llama-cpp-python).
        for k, char in enumerate(all_text[-3:]):
            k = 3 - k
            for num, pattern in ((2, 192), (3, 224), (4, 240)):
                if num > k and pattern & char == pattern:
                    self._multibyte_fix = num - k
        if self._multibyte_fix > 0:
            self._multibyte_fix -= 1
            return
        stops = [s for s in self.prompt.stop if s in all_text]
        if stops:
            self.text = all_text[: all_text.index(stops[0])]
            self.finish_reason = "stop"
        elif len(self.tokens) >= self.prompt.max_tokens:
            self.text = builder.detokenize(self.tokens, prev_tokens=self.prompt.tokens)
            self.finish_reason = "length"

    def completion(self, model: str) -> dict[str, Any]:
        """The reply in `create_chat_completion`'s shape (what `LlamaCppEngine.complete` reads)."""
        prompt, completion = len(self.prompt.tokens), len(self.tokens)
        return {"id": f"chatcmpl-{uuid.uuid4()}", "model": model,
                "choices": [{"index": 0, "finish_reason": self.finish_reason,
                             "message": {"role": "assistant", "content": self.text.decode("utf-8", errors="ignore")}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}}
