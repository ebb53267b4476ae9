"""FunBaT on the paper's synthetic continuous-indexed data: fit, predict unseen points, plot.

Draws the rank-one functional data of the FunBaT paper (``u1(x) u2(z)`` on random grids),
fits FunBaT-CP by conditional EP with the reference configuration, prints the test RMSE, the
coverage of the 95 % intervals and the correlation of the learned ``u1`` with the true one, and
writes the latent functions with their credible bands and a predicted-versus-observed map (when
matplotlib is installed) to ``functional_latent.png`` and ``functional_map.png``.

Run: ``python examples/functional_synthetic.py``  (a few seconds).
"""

from __future__ import annotations

import torch

from factorch.completion.functional import Matern, funbat, funbat_synthetic


def main() -> None:
    g = torch.Generator().manual_seed(0)
    data, (u1, _) = funbat_synthetic(generator=g)
    train, test = data.split((0.5, 0.5), generator=g)
    fit = funbat(
        train,
        1,
        structure="cp",
        kernel=Matern(1.5, 0.1, 0.5),
        damping=(0.1, 0.5, 0.2),
        max_iter=100,
        generator=g,
    )
    pred = fit.predict(test)
    learned, _ = fit.model.latent(0, data.coords[:, 0])
    corr = torch.corrcoef(torch.stack([learned[:, 0], u1]))[0, 1]
    print(
        f"{len(train)} training / {len(test)} test entries, {fit.epochs} epochs, "
        f"{fit.time_per_epoch * 1e3:.1f} ms per epoch"
    )
    print(
        f"test RMSE {pred.rmse(test.values):.2e} (test values: std {float(test.values.std()):.3f})"
    )
    print(
        f"95% interval coverage {pred.coverage(test.values):.3f}, |corr(u1, true u1)| "
        f"{abs(float(corr)):.4f}"
    )
    try:
        from factorch.plot import plot_functional_map, plot_latent_functions, save_figure

        save_figure(plot_latent_functions(fit.model), "functional_latent.png", force=True)
        save_figure(plot_functional_map(fit.model, test), "functional_map.png", force=True)
        print("wrote functional_latent.png, functional_map.png")
    except ImportError:
        print("matplotlib is not installed: no plots (pip install 'factorch[plot]')")


if __name__ == "__main__":
    main()
