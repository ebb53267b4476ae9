"""
Tensor regression: recovering a shaped weight
=============================================

Each sample is a 24 × 24 image and its response is ``<X, W>`` plus noise, with a weight ``W``
that is a cross (TensorLy's classic regression example, generated here). A ridge regression on
the flattened pixels has 576 coefficients to learn from 300 samples and overfits the noise;
:class:`~factorch.regression.CPRegressor` constrains ``W`` to a low CP rank (a rank-2 cross is
exact) and recovers it from the same samples. :class:`~factorch.regression.TuckerRegressor` is
the Tucker counterpart.
"""

import matplotlib.pyplot as plt
import torch

from factorch.regression import CPRegressor, TuckerRegressor

g = torch.Generator().manual_seed(0)
size, n_train, n_test = 24, 300, 1000
w_true = torch.zeros(size, size, dtype=torch.float64)
w_true[9:15, :] = 1.0  # horizontal bar
w_true[:, 9:15] = 1.0  # vertical bar: rank 2 in all
x = torch.randn(n_train + n_test, size, size, generator=g, dtype=torch.float64)
y_clean = torch.einsum("sij,ij->s", x, w_true)
y = y_clean + 0.3 * y_clean.std() * torch.randn(y_clean.shape, generator=g, dtype=torch.float64)
x_train, y_train, x_test, y_test = x[:n_train], y[:n_train], x[n_train:], y_clean[n_train:]

# Ridge regression on the flattened images (closed form), the baseline.
flat = x_train.reshape(n_train, -1)
ridge = torch.linalg.solve(flat.T @ flat + 10.0 * torch.eye(size * size, dtype=torch.float64),
                           flat.T @ y_train).reshape(size, size)  # fmt: skip

cp = CPRegressor(2, l2=0.1, generator=torch.Generator().manual_seed(1)).fit(x_train, y_train)
tucker = TuckerRegressor((2, 2), l2=0.1, generator=torch.Generator().manual_seed(1))
tucker = tucker.fit(x_train, y_train)


def test_error(pred: torch.Tensor) -> float:
    return float((pred - y_test).norm() / y_test.norm())


estimates = {
    "true weight": w_true,
    "ridge (576 coefficients)": ridge,
    "CP rank 2": cp.coef_.to_dense(),
    "Tucker (2, 2)": tucker.coef_.to_dense(),
}
errors = {
    "ridge (576 coefficients)": test_error(torch.einsum("sij,ij->s", x_test, ridge)),
    "CP rank 2": test_error(cp.predict(x_test)),
    "Tucker (2, 2)": test_error(tucker.predict(x_test)),
}
for name, err in errors.items():
    print(f"{name:26s} relative test error {err:.3f}")

fig, axes = plt.subplots(1, 4, figsize=(10, 2.8))
for ax, (name, w) in zip(axes, estimates.items()):
    ax.imshow(w.numpy(), cmap="viridis")
    ax.set_title(name + (f"\ntest error {errors[name]:.3f}" if name in errors else "\n"),
                 fontsize=9)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
