"""Several requests decoded together: one llama.cpp context, one sequence per request, one batch per step.

`BatchDecoder` gathers the calls DSPy's threads make at the same time and runs them on one context
with `n_seq_max = parallel` and a unified KV cache (`LlamaCppEngine(parallel=N)`):

- each request is evaluated into its own sequence id. A prompt first takes the longest prefix it
  shares with any sequence in the cache (running, or finished and kept until its id is reused) by
  `llama_memory_seq_cp`, which in a unified cache shares the cells rather than copying them; a
  request waits while a running prompt is still evaluating the prefix they share;
- every step sends one `llama_batch` holding the next token of every generating sequence plus
  pending prompt tokens up to `n_batch`, and samples each generating row from its own logits
  (`llama_get_logits_ith`) with its own `ShortlistGrammarSampler` (own grammar state, the request's
  seed);
- a sequence ends on end-of-generation, a stop string or max_tokens (`batch_prompt.Reply`, the same
  rules as llama-cpp-python), and its generated cells are freed (`llama_memory_seq_rm`); its prompt
  stays for later prefixes. An error in one sequence (its prompt, grammar or sampler) fails that
  request only.

Not the default, by measurement (BENCHMARKS.md, issue 15): on the 2-core test machine a step of 8
sequences with their own ~750-token prompts decoded fewer tokens per CPU second than one sequence
(SmolLM2: 61 vs 82-89, `bench/llama_batch_distinct.py`): each row's attention runs over every cell
of the unified cache (masked), and the weights' matmuls did not get much cheaper per row. What stays the same as the one-sequence engine:
prompt tokens, sampler chain, seed, stop rules (equal replies at `parallel=1`). What does not: with
several sequences, the attention sums run over cache cells whose order depends on the other
requests, so a reply may differ from the one decoded alone (still grammar-valid).
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
from llama_cpp import llama_cpp

from synthboot.lm.batch_prompt import Prompt, PromptBuilder, Reply
from synthboot.lm.prefix_states import common_prefix
from synthboot.lm.sampling import ShortlistGrammarSampler

N_BATCH = 512
# A request waits for a running prompt's evaluation when that gives it this many more shared tokens.
MIN_SHARED_WAIT = 32


@dataclass
class _Sequence:
    seq_id: int
    reply: Reply
    sampler: ShortlistGrammarSampler
    future: Future
    evaluated: int  # tokens of this sequence in the KV cache
    pending: list[int]  # tokens to evaluate next (the prompt's rest, then each sampled token)


class BatchDecoder:
    """One llama.cpp context serving up to `parallel` requests at once from a scheduler thread."""

    def __init__(self, model_path: str, *, parallel: int = 8, n_ctx: int = 4096, n_threads: int = 1,
                 grammar_mode: str = "shortlist"):
        self.parallel = parallel
        self.grammar_mode = grammar_mode
        self.builder = PromptBuilder(model_path=model_path, n_ctx=n_ctx, n_threads=n_threads,
                                     n_threads_batch=n_threads, verbose=False)
        params = llama_cpp.llama_context_params.from_buffer_copy(self.builder.context_params)
        # Every sequence may grow to n_ctx; the unified cache lets sequences share prefix cells.
        params.n_ctx, params.n_batch, params.n_ubatch = n_ctx * parallel, N_BATCH, N_BATCH
        params.n_seq_max, params.kv_unified = parallel, True
        self.ctx = llama_cpp.llama_init_from_model(self.builder._model.model, params)
        if not self.ctx:
            raise ValueError("llama.cpp could not create the batched context")
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
        self._ctx_view = SimpleNamespace(ctx=self.ctx)  # what ShortlistGrammarSampler.sample reads
        # What each sequence id's cells hold, in position order (for prefix sharing).
        self._held: list[np.ndarray] = [np.zeros(0, dtype=np.intc) for _ in range(parallel)]
        self._live: dict[int, _Sequence] = {}
        self._waiting: list[tuple[Prompt, ShortlistGrammarSampler, Future]] = []
        self._requests: queue.Queue = queue.Queue()
        self._closed = False
        self.tokens_shared = 0  # prompt tokens taken from the cache instead of evaluated
        self.steps = 0
        self.rows = 0  # generation rows decoded (rows / steps: mean sequences per step)
        self._thread = threading.Thread(target=self._run, name="llama-batch", daemon=True)
        self._thread.start()

    def submit(self, messages: list[dict], kwargs: dict[str, Any]) -> Future:
        """Queue one chat completion; the future gets `create_chat_completion`'s output dict."""
        future: Future = Future()
        self._requests.put((messages, kwargs, future))
        return future

    def load(self) -> int:
        """Requests queued or running (for spreading requests over decoders)."""
        return self._requests.qsize() + len(self._waiting) + len(self._live)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._requests.put(None)
        self._thread.join()
        llama_cpp.llama_batch_free(self.batch)
        llama_cpp.llama_free(self.ctx)
        self.builder.close()

    # -- the scheduler thread --------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            if not self._admit():
                return
            if self._live:
                try:
                    self._step()
                except Exception as exc:  # a bug here must not leave callers waiting forever
                    self._fail_all(exc)

    def _admit(self) -> bool:
        """Start queued requests while sequence ids are free; block when nothing runs. False: closing."""
        for waiting in list(self._waiting):
            if len(self._live) < self.parallel and self._place(*waiting):
                self._waiting.remove(waiting)
        while len(self._live) < self.parallel:
            try:
                item = self._requests.get(block=not self._live)
            except queue.Empty:
                return True
            if item is None:
                for seq in self._live.values():
                    seq.future.set_exception(RuntimeError("the batched engine was closed"))
                for _, _, future in self._waiting:
                    future.set_exception(RuntimeError("the batched engine was closed"))
                return False
            messages, kwargs, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:  # this request's prompt or grammar may fail: fail it alone
                prompt = self.builder.prompt(messages, **kwargs)
                waiting = (prompt, self._sampler(prompt), future)
                if not self._place(*waiting):
                    self._waiting.append(waiting)
            except Exception as exc:
                future.set_exception(exc)
        return True

    def _place(self, prompt: Prompt, sampler: ShortlistGrammarSampler, future: Future) -> bool:
        """Give a request a sequence id, its prompt's longest cached prefix shared. False: wait.

        A request waits while a running prompt is still evaluating a prefix it shares (the requests
        DSPy's threads send together start with the same instructions): evaluating it twice at once
        would cost what sharing saves.
        """
        tokens = np.asarray(prompt.tokens, dtype=np.intc)
        seq_id = self._free_id(tokens)
        # The longest prefix already in the cache, from any sequence; at least one token is
        # evaluated again so the step has this sequence's logits.
        source, shared = seq_id, 0
        for other, held in enumerate(self._held):
            length = min(common_prefix(held, tokens), len(tokens) - 1)
            if length > shared or (length == shared and other == seq_id):
                source, shared = other, length
        coming = max((common_prefix(np.asarray(seq.reply.prompt.tokens, dtype=np.intc), tokens)
                      for seq in self._live.values() if seq.pending and not seq.reply.tokens), default=0)
        if coming >= shared + MIN_SHARED_WAIT:
            return False
        if source == seq_id:
            llama_cpp.llama_memory_seq_rm(self.memory, seq_id, shared, -1)
        else:
            llama_cpp.llama_memory_seq_rm(self.memory, seq_id, -1, -1)
            if shared:
                llama_cpp.llama_memory_seq_cp(self.memory, source, seq_id, 0, shared)
        self.tokens_shared += shared
        self._held[seq_id] = tokens[:shared]
        self._live[seq_id] = _Sequence(seq_id, Reply(prompt), sampler, future, shared, list(prompt.tokens[shared:]))
        return True

    def _free_id(self, tokens: np.ndarray) -> int:
        """The free sequence id whose kept cells share most with `tokens` (cheapest to reuse)."""
        free = [i for i in range(self.parallel) if i not in self._live]
        return max(free, key=lambda i: common_prefix(self._held[i], tokens))

    def _sampler(self, prompt: Prompt) -> ShortlistGrammarSampler:
        s = prompt.sampling
        return ShortlistGrammarSampler(
            self.builder, s.get("grammar"), top_k=s["top_k"], top_p=s["top_p"], min_p=s["min_p"],
            typical_p=s["typical_p"], temp=s["temp"], repeat_penalty=s["repeat_penalty"],
            frequency_penalty=s["frequency_penalty"], presence_penalty=s["presence_penalty"],
            lazy=self.grammar_mode == "lazy", seed=prompt.seed)

    def _step(self) -> None:
        rows: list[tuple[int, _Sequence]] = []  # (batch index, sequence) whose logits this step samples
        batched: list[_Sequence] = []
        n = 0
        generating = [seq for seq in self._live.values() if seq.reply.tokens or len(seq.pending) == 1]
        prompting = [seq for seq in self._live.values() if seq not in generating]
        for seq in generating + prompting:
            room = N_BATCH - n
            if room <= 0:
                break
            chunk = seq.pending[:room]
            for i, token in enumerate(chunk):
                last = i == len(chunk) - 1 and len(chunk) == len(seq.pending)
                self._put(n, token, seq.evaluated + i, seq.seq_id, last)
                if last:
                    rows.append((n, seq))
                n += 1
            batched.append(seq)
            seq.pending = seq.pending[len(chunk):]
            self._held[seq.seq_id] = np.concatenate([self._held[seq.seq_id], np.asarray(chunk, dtype=np.intc)])
            seq.evaluated += len(chunk)
        self.batch.n_tokens = n
        status = llama_cpp.llama_decode(self.ctx, self.batch)
        self.steps += 1
        self.rows += len(rows)
        if status != 0:
            # This batch is lost (no KV room, or aborted): fail the requests in it; others go on.
            for seq in {seq.seq_id: seq for seq in batched}.values():
                self._finish(seq, RuntimeError(f"llama_decode failed with status {status}"))
            return
        for index, seq in rows:
            try:
                token = seq.sampler.sample(self._ctx_view, index)
                seq.reply.add(token, self.builder)
            except Exception as exc:  # this sequence's sampler or grammar: fail it alone
                self._finish(seq, exc)
                continue
            if seq.reply.finish_reason is not None:
                self._finish(seq, None)
            else:
                seq.pending = [token]

    def _put(self, i: int, token: int, pos: int, seq_id: int, logits: bool) -> None:
        batch = self.batch
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, pos, 1, logits
        batch.seq_id[i][0] = seq_id

    def _finish(self, seq: _Sequence, error: Exception | None) -> None:
        del self._live[seq.seq_id]
        # Keep the prompt's cells for later prefixes; the generated ones are this request's alone.
        keep = len(seq.reply.prompt.tokens) if error is None else 0
        llama_cpp.llama_memory_seq_rm(self.memory, seq.seq_id, keep, -1)
        self._held[seq.seq_id] = self._held[seq.seq_id][:keep]
        if error is not None:
            seq.future.set_exception(error)
        else:
            seq.future.set_result(seq.reply.completion(self.builder.model_path))

    def _fail_all(self, error: Exception) -> None:
        for seq in list(self._live.values()):
            self._finish(seq, error)
