"""Decompose a planted low-rank tensor with CP-ALS and print the fit per iteration.

Run:  python examples/cp_planted.py
"""

import torch

import factorch as ft
from factorch.decomp import IterationState, cp


def main() -> None:
    gen = torch.Generator().manual_seed(0)
    planted = ft.random.planted(
        "cp", (40, 50, 60), 4, noise=0.05, generator=gen, dtype=torch.float64
    )

    def report(state: IterationState) -> None:
        print(f"sweep {state.iteration:3d}   fit {1 - state.error:.6f}")

    res = cp(planted.tensor, 4, generator=gen, callback=report, tol=1e-9)
    print(res.model)
    print(
        f"relative error {res.error:.4f} (noise level 0.05), {res.iterations} sweeps, "
        f"converged={res.converged}, {res.time_s * 1e3:.0f} ms"
    )
    print(f"factor match with the planted model: {res.model.congruence(planted.truth):.4f}")


if __name__ == "__main__":
    main()
