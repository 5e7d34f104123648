"""Layer recomputation for the fast path, optionally with each layer's input waiting in CPU memory.

``LayerCheckpoint`` runs a decoder layer without keeping anything but its input, and in the backward runs it again
with gradients and backpropagates through it (the reentrant scheme: the LoRA matrices get their gradients from that
inner backward). With an :class:`Offloader` the input does not stay on the GPU either: it is copied into a pinned
CPU buffer on a side stream while the layer computes (the copy of layer i overlaps layer i's compute; the main
stream waits for it only when layer i + 1 starts, so the GPU memory is released then), and in the backward the
input of layer i − 1 is copied back on the side stream while layer i is recomputed. torch's ``save_on_cpu`` makes
the same trip synchronously, on the compute stream, and for every saved tensor of the recomputation as well.
"""

from __future__ import annotations

import torch


class Offloader:
    """Pinned CPU copies of the layer inputs of one forward, keyed by layer index, and their way back."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self.host: dict[int, torch.Tensor] = {}
        self.order: list[int] = []
        self.pending: tuple | None = None  # (gpu tensor, copy-done event) of the last copy not yet waited for
        self.prefetched: dict[int, tuple] = {}

    def begin(self) -> None:
        """Called before a forward: a new sequence of saves."""
        self._flush()
        self.order, self.prefetched = [], {}

    def _flush(self) -> None:
        if self.pending is not None:
            if self.cuda:
                torch.cuda.current_stream().wait_event(self.pending[1])
            self.pending = None

    def save(self, key: int, t: torch.Tensor) -> None:
        buf = self.host.get(key)
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
            buf = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=self.cuda)
            self.host[key] = buf
        if not self.cuda:
            buf.copy_(t)
        else:
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                buf.copy_(t, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
            self._flush()  # the previous layer's copy ran beside that layer's compute: wait for it, free its input
            self.pending = (t, done)
        self.order.append(key)

    def _fetch(self, key: int, device: torch.device) -> tuple:
        buf = self.host[key]
        t = torch.empty(buf.shape, dtype=buf.dtype, device=device)
        if not self.cuda:
            t.copy_(buf)
            return t, None
        self.stream.wait_stream(torch.cuda.current_stream())  # t's memory may have been in use until now
        with torch.cuda.stream(self.stream):
            t.copy_(buf, non_blocking=True)
        ev = torch.cuda.Event()
        ev.record(self.stream)
        return t, ev

    def load(self, key: int, device: torch.device) -> torch.Tensor:
        """The saved input of layer ``key`` on ``device``; starts bringing back the layer saved before it."""
        self._flush()
        t, ev = self.prefetched.pop(key) if key in self.prefetched else self._fetch(key, device)
        if ev is not None:
            torch.cuda.current_stream().wait_event(ev)
        i = self.order.index(key) if key in self.order else -1
        if i > 0 and self.order[i - 1] not in self.prefetched:
            self.prefetched[self.order[i - 1]] = self._fetch(self.order[i - 1], device)
        return t


def _drop_casts() -> None:
    """The lowest-memory mode (inputs offloaded) keeps the adapters' compute-dtype copies for one layer at a time:
    made again for the recomputation instead of held for the whole step (84 MB for LoRA r16 on all projections of
    an 8B model — what put the H200's batch-1 row at 15.97 GB against 15.89 GB before the copies were cached)."""
    from tuneforge.fast.lora import _CASTS

    _CASTS.clear()


class LayerCheckpoint(torch.autograd.Function):
    """``out = run(hidden)`` with nothing saved but ``hidden`` (or its CPU copy); recomputed in the backward.
    ``params`` are the layer's trainable tensors: passing them makes the output require grad even when ``hidden``
    does not (the first adapted layer); their gradients come from the inner backward."""

    @staticmethod
    def forward(ctx, hidden, run, key, offloader, *params):
        ctx.run, ctx.key, ctx.offloader = run, key, offloader
        ctx.hidden_grad = hidden.requires_grad
        ctx.device = hidden.device
        ctx.autocast = (torch.is_autocast_enabled(hidden.device.type),
                        torch.get_autocast_dtype(hidden.device.type))
        if offloader is not None:
            offloader.save(key, hidden.detach())
        else:
            ctx.save_for_backward(hidden)
        with torch.no_grad():
            out = run(hidden)
        if offloader is not None:
            _drop_casts()
        return out

    @staticmethod
    def backward(ctx, dout):
        if ctx.offloader is not None:
            hidden = ctx.offloader.load(ctx.key, ctx.device)
        else:
            (hidden,) = ctx.saved_tensors
        x = hidden.detach().requires_grad_(ctx.hidden_grad)
        enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(ctx.device.type, dtype=dtype, enabled=enabled):
            out = ctx.run(x)
        if out.requires_grad:
            torch.autograd.backward(out, dout)
        if ctx.offloader is not None:
            _drop_casts()
        n = len(ctx.needs_input_grad) - 4
        return (x.grad if ctx.hidden_grad else None, None, None, None, *([None] * n))
