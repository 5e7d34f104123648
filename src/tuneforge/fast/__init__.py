"""tuneforge's own training forward for LoRA/QLoRA on Llama-family decoders (the fast path).

transformers + peft run a LoRA decoder layer as ~60 module calls: every adapted projection is a peft module whose
forward casts, runs the base layer, runs ``lora_A``, scales, runs ``lora_B`` and adds (five kernels and a few
hundred microseconds of Python), and the decoder around them builds masks, output records and keyword plumbing.
On an H200 at batch 1 that Python, not the GPU, set the pace (GPU busy ~28 % in the QLoRA profile,
docs/benchmarks.md). The fast path reads the same modules' weights and computes each layer with a handful of
autograd functions of its own (``fast/lora.py``): the projections that share an input (q/k/v, gate/up) read it
once for all their ``A`` matrices, each ``B`` update is added in place into the base output, the MLP keeps only
what its backward needs, and the backward accumulates input gradients in place. The math is the plain path's
(CPU tests compare loss and every gradient, ``tests/test_fast_path.py``).

``fast/decoder.py`` decides where it applies (``fast_path_reason``) and runs the decoder; ``fast/checkpoint.py``
recomputes layers (optionally with their inputs waiting in CPU memory, copied on a side stream);
``fast/fp8.py`` holds the frozen base weights in FP8 for ``--fp8``.
"""

from tuneforge.fast.decoder import FastDecoder, build_fast_decoder, fast_path_reason

__all__ = ["FastDecoder", "build_fast_decoder", "fast_path_reason"]
