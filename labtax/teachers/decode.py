"""The in-process teacher's generation loop: continuous batching over a preallocated KV cache.

`model.generate` on a left-padded batch computes every row at the longest prompt's length and keeps
decoding every row until the last one ends; a batch of 8 whose rows end at 40 and at 160 tokens runs
160 steps of 8 rows. Here instead:

- `batch_size` slots decode together, one token per slot per step. When a row ends (its
  end-of-sequence token, one of its stop strings, its token budget) its slot is refilled at once
  with the next waiting request: the width stays full until the queue is empty, then the batch
  shrinks (a finished slot is dropped, never computed).
- Each request's prompt is prefilled alone at its own length (no padded tokens computed). Requests
  wait in token-id order, so neighbours share their prompt's prefix (a leaf's system turn and seed
  examples): the prefix computed for the previous prompt is reused (its cache cut to the common
  length) and only the rest is computed.
- The batch's KV cache (`_Slab`) is one preallocated [slots, heads, capacity, head_dim] buffer per
  layer. The batch is left-padded, so every slot writes its next token into the same column: a
  step writes in place, where transformers' DynamicCache copies the whole cache to append one column
  (at 32 rows of ~600 tokens, about a gigabyte a step for a 1.5B model in fp32). A new row is
  written right-aligned into its slot; columns no active row uses any more are cut off on the left.
  Its size is bounded by the caller: slots x (longest prompt + max tokens) x bytes a token
  (`kv_bytes_per_token`), which is how the teacher keeps the cache inside its memory budget.

Sampling stays per request (`PerRequestSampler.pick`: each row draws from its own generator, once per
step it is active), greedy rows take the argmax, so a request's text is a function of its prompt and
seed, not of its batch mates or of when its slot came free. Greedy output equals `model.generate`'s
(tests/teachers/test_decode.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from labtax.compute import compute_dtype
from labtax.teachers import prefix

# Columns added to the cache at a time when it must grow (a copy of the whole buffer each time).
GROW = 64
# Unused left columns tolerated before they are cut off (cutting is a view, but attention reads them).
TRIM = 32


@dataclass
class Row:
    """One request to generate: its prompt token ids and what ends it."""

    ids: list[int]
    max_new: int
    stops: tuple[str, ...] = ()


@dataclass
class Generated:
    tokens: list[int]
    finish: str  # "stop" (end-of-sequence or a stop string) or "length"


Tick = Callable[[int, int], None]  # (rows finished, tokens generated) since the last call


def kv_bytes_per_token(model: Any) -> int:
    """Bytes one token's keys and values take in the cache, over every layer."""
    config = model.config.get_text_config(decoder=True) if hasattr(model.config, "get_text_config") else model.config
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    # The cache holds what the layers compute in (fp32 for bf16 weights widened at run time).
    size = compute_dtype(model).itemsize
    return int(2 * config.num_hidden_layers * heads * head_dim * size)


class _SlabMethods:
    """A SlabLayer's own methods (`_slab_layer_class` mixes them into transformers' DynamicLayer,
    imported on first use). One layer's keys and values: a window of `n` columns at offset `off` of a buffer allocated
    once ([slots, heads, capacity, head_dim]). Cutting unused columns on the left moves the
    offset; reaching the buffer's end moves the window back to its start (a copy of the window,
    not a new buffer), so memory stays at the buffer's size. Columns left of a row's own are
    stale or zero, always finite, and masked."""

    def __init__(self, keys: Any, values: Any, n: int) -> None:
        super().__init__()
        self.kbuf, self.vbuf, self.n, self.off = keys, values, n, 0
        self.device = keys.device
        self.is_initialized = True
        self._views()

    def _views(self) -> None:
        self.keys = self.kbuf[:, :, self.off : self.off + self.n]
        self.values = self.vbuf[:, :, self.off : self.off + self.n]

    def room(self, columns: int) -> None:
        """Make sure `columns` more fit after the window: move it to the buffer's start, or (only
        when the window itself outgrew the buffer) allocate a bigger one."""
        import torch

        if self.off + self.n + columns <= self.kbuf.shape[2]:
            return
        if self.n + columns > self.kbuf.shape[2]:
            for name in ("kbuf", "vbuf"):
                old = getattr(self, name)
                new = torch.zeros((old.shape[0], old.shape[1], self.n + columns + GROW, old.shape[3]),
                                  dtype=old.dtype, device=old.device)
                new[:, :, : self.n] = old[:, :, self.off : self.off + self.n]
                setattr(self, name, new)
        else:
            for buf in (self.kbuf, self.vbuf):
                buf[:, :, : self.n] = buf[:, :, self.off : self.off + self.n].clone()
        self.off = 0
        self._views()

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        q = key_states.shape[-2]
        self.room(q)
        end = self.off + self.n
        self.kbuf[:, :, end : end + q] = key_states
        self.vbuf[:, :, end : end + q] = value_states
        self.n += q
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return int(self.n)

    def widen(self, columns: int) -> None:
        """`columns` more on the left (a longer row arrives): the offset moves back when it can,
        else the window moves right (a bigger buffer only when it no longer fits)."""
        import torch

        if self.off < columns:
            need = self.n + columns
            for name in ("kbuf", "vbuf"):
                buf = getattr(self, name)
                window = buf[:, :, self.off : self.off + self.n].clone()
                if need + 1 > buf.shape[2]:
                    buf = torch.zeros((buf.shape[0], buf.shape[1], need + GROW, buf.shape[3]), dtype=buf.dtype,
                                      device=buf.device)
                    setattr(self, name, buf)
                buf[:, :, columns:need] = window
            self.off = columns
        self.off -= columns
        self.n += columns
        self._views()

    def trim(self, columns: int) -> None:
        self.off += columns
        self.n -= columns
        self._views()

    def batch_select_indices(self, indices: Any) -> None:
        self.kbuf, self.vbuf = self.kbuf[indices], self.vbuf[indices]
        self._views()


def _slab_layer_class() -> Any:
    """transformers' DynamicLayer with the slab's methods (transformers is imported on first use only)."""
    from transformers.cache_utils import DynamicLayer

    return type("SlabLayer", (_SlabMethods, DynamicLayer), {})


class _Slab:
    """The batch's cache (a transformers `Cache` of SlabLayers) and its slot operations."""

    def __init__(self, model: Any, slots: int, width: int, capacity: int, like: Any) -> None:
        import torch
        from transformers.cache_utils import Cache

        layer = _slab_layer_class()
        layers: list[Any] = []
        for first in like.layers:
            k, v = first.keys, first.values
            shape = (slots, k.shape[1], max(capacity, width), k.shape[3])
            layers.append(layer(torch.zeros(shape, dtype=k.dtype, device=k.device),
                                torch.zeros(shape, dtype=v.dtype, device=v.device), width))
        self.cache = Cache(layers=layers)
        self.layers = layers  # the same objects, typed for what this module does with them

    @property
    def width(self) -> int:
        return int(self.layers[0].n)

    def put(self, slot: int, row_cache: Any, length: int) -> None:
        """Write a prefilled row's cache right-aligned into `slot`; widen every slot first when the
        row is longer than the batch."""
        if length > self.width:
            shift = length - self.width
            for layer in self.layers:
                layer.widen(shift)
        for layer, src in zip(self.layers, row_cache.layers):
            end = layer.off + layer.n
            layer.kbuf[slot, :, end - length : end] = src.keys[0]
            layer.vbuf[slot, :, end - length : end] = src.values[0]

    def trim(self, columns: int) -> None:
        """Drop the `columns` leftmost columns (no active row reaches them)."""
        for layer in self.layers:
            layer.trim(columns)

    def keep(self, slots: list[int]) -> None:
        import torch

        self.cache.batch_select_indices(torch.tensor(slots, device=self.layers[0].kbuf.device))


class _Prefiller:
    """Prefill one prompt at a time, reusing the previous prompt's cache for the prefix they share."""

    def __init__(self, model: Any, device: Any) -> None:
        self.decoder = model.get_decoder()
        self.head = model.get_output_embeddings()
        self.device = device
        self.last: tuple[list[int], Any] | None = None
        self.computed = 0  # prompt tokens actually run through the model

    def __call__(self, ids: list[int]) -> tuple[Any, Any]:
        """(the prompt's batch-1 cache, the next token's logits [vocab])."""
        import torch
        from transformers.cache_utils import DynamicCache

        cache, shared = None, 0
        if self.last is not None:
            shared = min(prefix.common_prefix(self.last[0], ids), len(ids) - 1)
            if shared >= prefix.MIN_SHARED:
                # A copy cut to the shared length: the previous prompt's cache is not changed.
                cache = DynamicCache(ddp_cache_data=[(layer.keys[:, :, :shared], layer.values[:, :, :shared])
                                                     for layer in self.last[1].layers])
            else:
                shared = 0
        out = self.decoder(input_ids=torch.tensor([ids[shared:]], device=self.device), cache=cache, use_cache=True)
        self.computed += len(ids) - shared
        self.last = (ids, out.cache)
        return out.cache, self.head(out.last_hidden_state[:, -1, :])[0]


class _Decoding:
    """The state of one `generate` call, in named steps: `refill` starts the next waiting row in a
    slot, `step` decodes one token in every slot, `drop` removes the slots nothing refilled."""

    def __init__(self, model: Any, rows: Sequence[Row], *, eos: set[int], pick: Callable[[Any, list[int]], Any],
                 text_of: Callable[[list[int]], str], batch_size: int, device: Any,
                 more: Callable[[], Sequence[Row]] | None, on_done: Callable[[int, Generated], None] | None) -> None:
        self.model, self.eos, self.pick, self.text_of = model, eos, pick, text_of
        self.batch_size, self.device, self.more, self.on_done = batch_size, device, more, on_done
        self.rows = list(rows)
        self.out = [Generated([], "length") for _ in self.rows]
        # Token-id order: neighbours share prompt prefixes, which the prefiller computes once.
        self.waiting = deque(sorted(range(len(self.rows)), key=lambda i: (self.rows[i].ids, i)))
        self.prefill = _Prefiller(model, device)
        self.slab: _Slab | None = None
        self.slot_row: list[int] = []  # the row each slot generates
        self.lens: list[int] = []  # tokens in each slot's cache
        self.feed: list[int] = []  # each slot's next input token
        self.finished = self.tokens = 0  # since the last tick

    def arrivals(self) -> bool:
        """Take the requests that arrived meanwhile (`more`); False when there are none."""
        new = list(self.more()) if self.more is not None else []
        if not new:
            return False
        first = len(self.rows)
        self.rows.extend(new)
        self.out.extend(Generated([], "length") for _ in new)
        self.waiting.extend(sorted(range(first, len(self.rows)), key=lambda i: (self.rows[i].ids, i)))
        return True

    def accept(self, i: int, token: int) -> bool:
        """Record row i's next token; False when the row has ended."""
        row, request = self.out[i], self.rows[i]
        self.tokens += 1 if token not in self.eos else 0
        if token in self.eos:
            row.finish = "stop"
        else:
            row.tokens.append(int(token))
            if request.stops and any(s in self.text_of(row.tokens) for s in request.stops):
                row.finish = "stop"
            elif len(row.tokens) < request.max_new:
                return True
        self.finished += 1
        if self.on_done is not None:
            self.on_done(i, row)
        return False

    def refill(self, slot: int | None) -> bool:
        """Start the next waiting row in `slot` (a new slot when None); False when none is left.
        Its first token is picked from its prefill at once, so it joins the very next step."""
        while self.waiting or self.arrivals():
            i = self.waiting.popleft()
            cache, logits = self.prefill(self.rows[i].ids)
            token = int(self.pick(logits[None, :], [i])[0])
            if not self.accept(i, token):
                continue
            n = len(self.rows[i].ids)
            if self.slab is None:
                # Sized once for the rows known now: as wide as the longest prompt, as long as the
                # longest row can get (plus the columns tolerated before a cut, plus slack).
                width = max(len(r.ids) for r in self.rows)
                capacity = max(len(r.ids) + r.max_new for r in self.rows) + TRIM + GROW
                self.slab = _Slab(self.model, self.batch_size, width, capacity, cache)
            target = slot if slot is not None else len(self.slot_row)
            self.slab.put(target, cache, n)
            if slot is None:
                self.slot_row.append(i)
                self.lens.append(n)
                self.feed.append(token)
            else:
                self.slot_row[slot], self.lens[slot], self.feed[slot] = i, n, token
            return True
        return False

    def fill(self) -> None:
        """The first rows, one a slot; a batch narrower than `batch_size` drops its spare slots."""
        while len(self.slot_row) < self.batch_size and self.refill(None):
            pass
        if self.slab is not None and len(self.slot_row) < self.batch_size:
            self.slab.keep(list(range(len(self.slot_row))))

    def step(self) -> list[int]:
        """One token for every slot; returns the slots whose row ended."""
        import torch

        assert self.slab is not None
        width, device = self.slab.width, self.device
        lengths = torch.tensor(self.lens, device=device)
        # Each slot's cache is right-aligned: its real columns are the last `lens` ones, then this step's.
        mask = (torch.arange(width + 1, device=device)[None, :] >= (width - lengths)[:, None]).long()
        result = self.model(input_ids=torch.tensor(self.feed, device=device)[:, None], attention_mask=mask,
                            position_ids=lengths[:, None], cache=self.slab.cache, use_cache=True, logits_to_keep=1)
        self.lens = [n + 1 for n in self.lens]
        chosen = self.pick(result.logits[:, -1, :], list(self.slot_row)).tolist()
        done: list[int] = []
        for k, (i, token) in enumerate(zip(self.slot_row, chosen)):
            if self.accept(i, token):
                self.feed[k] = int(token)
            else:
                done.append(k)
        return done

    def drop(self, gone: list[int]) -> None:
        """Remove the slots nothing refilled, then the cache columns no active row reaches."""
        assert self.slab is not None
        if gone:
            keep = [k for k in range(len(self.slot_row)) if k not in set(gone)]
            self.slot_row = [self.slot_row[k] for k in keep]
            self.lens, self.feed = [self.lens[k] for k in keep], [self.feed[k] for k in keep]
            if keep:
                self.slab.keep(keep)
        if self.slot_row and self.slab.width - max(self.lens) >= TRIM:
            self.slab.trim(self.slab.width - max(self.lens))

    def report(self, tick: Tick | None) -> None:
        """Rows finished and tokens generated since the last report, to `tick` (progress)."""
        if tick is not None and (self.finished or self.tokens):
            tick(self.finished, self.tokens)
        self.finished = self.tokens = 0


def generate(model: Any, rows: Sequence[Row], *, eos: set[int], pick: Callable[[Any, list[int]], Any],
             text_of: Callable[[list[int]], str], batch_size: int, device: Any = "cpu",
             tick: Tick | None = None, more: Callable[[], Sequence[Row]] | None = None,
             on_done: Callable[[int, Generated], None] | None = None,
             stats: dict[str, int] | None = None) -> list[Generated]:
    """Generate every row (see the module docstring). `pick(logits [n, vocab], rows)` chooses the next
    token of each active row (row indexes into `rows`); `text_of(tokens)` decodes, for stop strings;
    `tick(rows finished, tokens generated)` is called after every step (progress); `more()`, asked
    whenever a slot is free and nothing waits, returns requests that arrived meanwhile (numbered after
    the ones before); `on_done(row, generated)` is called as each row ends; `stats["computed"]` gets
    the prompt tokens actually computed (a shared prefix once)."""
    run = _Decoding(model, rows, eos=eos, pick=pick, text_of=text_of, batch_size=batch_size, device=device,
                    more=more, on_done=on_done)
    run.fill()
    while run.slot_row:
        run.drop([k for k in run.step() if not run.refill(k)])
        if tick is not None:
            tick(run.finished, run.tokens)
            run.finished = run.tokens = 0
    run.report(tick)
    if stats is not None:
        stats["computed"] = run.prefill.computed
    return run.out


def step_seconds(model: Any, width: int, device: Any = "cpu", context: int = 128, steps: int = 2) -> float:
    """Seconds one decode step takes at `width` rows of `context` cached tokens (a warm-up step, then
    the least of `steps`): what the batch-width measurement compares."""
    import time

    import torch

    ids = [int(i) % int(model.config.vocab_size) for i in range(1000, 1000 + context)]
    cache, _ = _Prefiller(model, device)(ids)
    slab = _Slab(model, width, context, context + steps + 2, cache)
    for slot in range(width):
        slab.put(slot, cache, context)
    feed = torch.full((width, 1), 1000, device=device)
    best = float("inf")
    for step in range(steps + 1):
        n = slab.width
        mask = torch.ones((width, n + 1), dtype=torch.long, device=device)
        positions = torch.full((width, 1), n, device=device)
        started = time.perf_counter()
        model(input_ids=feed, attention_mask=mask, position_ids=positions, cache=slab.cache, use_cache=True,
              logits_to_keep=1)
        if step:
            best = min(best, time.perf_counter() - started)
    return best
