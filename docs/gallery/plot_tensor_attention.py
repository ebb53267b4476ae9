"""
Tensor attention: exact and in linear time
==========================================

Tensor (third-order) attention lets each query attend to *pairs* of tokens: the score of pair
``(j, k)`` for query ``i`` is ``exp(c Σ_l q_il k1_jl k2_kl)``, so the exact computation touches
``n³`` triples. :func:`~factorch.nn.attention.tensor_attention` does it blockwise without
storing the ``n × n²`` scores; :func:`~factorch.nn.attention.tensor_attention_approx` replaces
``exp`` by a polynomial whose features factor through the Khatri–Rao product (Alman and Song's
algorithm), which is linear in ``n`` when the entries are small, with an error bound it
checks. The plot shows both times against ``n`` and the approximation's measured error.
"""

import time

import matplotlib.pyplot as plt
import torch

from factorch.nn.attention import tensor_attention, tensor_attention_approx

g = torch.Generator().manual_seed(0)
sizes = [32, 64, 128, 256, 384]
exact_t, approx_t, errors = [], [], []
for n in sizes:
    q, k1, k2, v1, v2 = ((torch.rand(1, n, 4, generator=g, dtype=torch.float64) - 0.5)
                         for _ in range(5))  # fmt: skip
    start = time.perf_counter()
    exact = tensor_attention(q, k1, k2, v1, v2)
    exact_t.append(time.perf_counter() - start)
    start = time.perf_counter()
    fast = tensor_attention_approx(q, k1, k2, v1, v2, eps=1e-6)
    approx_t.append(time.perf_counter() - start)
    errors.append(float((fast - exact).abs().max() / exact.abs().max()))
    print(f"n = {n:4d}: exact {exact_t[-1]:.4f} s, approximate {approx_t[-1]:.4f} s, "
          f"relative error {errors[-1]:.1e}")  # fmt: skip

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
ax1.loglog(sizes, exact_t, "o-", label="exact (blockwise)")
ax1.loglog(sizes, approx_t, "s-", label="approximate (eps = 1e-6)")
ax1.set_xlabel("sequence length n")
ax1.set_ylabel("seconds (one run)")
ax1.legend()
ax2.semilogy(sizes, errors, "s-")
ax2.axhline(1e-6, color="gray", linestyle=":", label="eps requested")
ax2.legend()
ax2.set_xlabel("sequence length n")
ax2.set_ylabel("max relative error")
fig.tight_layout()
