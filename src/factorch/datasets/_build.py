"""Rebuild the bundled dataset files from their pip-installed upstream copies.

Run once by a maintainer, never at import time::

    python -m factorch.datasets._build

It needs ``tensorly>=0.10`` (which ships the COVID-19 serology and IL-2 tensors as ``.npy`` files)
and ``scikit-learn`` (which ships the UCI optical digits), both test dependencies of factorch. It
writes, for each dataset, ``data/<name>.safetensors`` (key ``"tensor"``, values exactly as upstream;
missing values stay NaN) and ``data/<name>.json`` (mode names, labels, description, citation,
licence, SHA-256 of the tensor file). Provenance and licence texts are in ``data/SOURCES.md``.
The output is byte-for-byte reproducible: safetensors sorts its header and the JSON is written
with sorted keys.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

DATA_DIR = Path(__file__).parent / "data"

UC_MIT = """Copyright {year} The Regents of the University of California

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT
OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."""

CC_BY_4 = (
    "Creative Commons Attribution 4.0 International (CC BY 4.0), "
    "https://creativecommons.org/licenses/by/4.0/legalcode. Attribution: E. Alpaydin and "
    "C. Kaynak, Optical Recognition of Handwritten Digits, UCI Machine Learning Repository, "
    "1998, doi:10.24432/C50P49. Changes: the 1,797 test-set images (as copied by scikit-learn) "
    "were sorted by digit (stable sort) and stored as a uint8 tensor."
)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _write(name: str, tensor: np.ndarray, meta: dict[str, object]) -> None:
    blob = save({"tensor": torch.from_numpy(np.ascontiguousarray(tensor))})
    (DATA_DIR / f"{name}.safetensors").write_bytes(blob)
    meta = {**meta, "shape": list(tensor.shape), "sha256": hashlib.sha256(blob).hexdigest()}
    text = json.dumps(meta, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    (DATA_DIR / f"{name}.json").write_text(text, encoding="utf-8")
    print(f"{name}: {tensor.shape} {tensor.dtype}, {len(blob) / 1e3:.0f} kB")


def build_covid19_serology() -> None:
    from tensorly.datasets import load_covid19_serology  # type: ignore[import-untyped]  # no stubs; build-time only

    bunch = load_covid19_serology()
    tensor = np.asarray(bunch.tensor, dtype=np.float64)
    _write(
        "covid19_serology",
        tensor,
        {
            "mode_names": ["sample", "antigen", "receptor"],
            "labels": [[str(x) for x in ticks] for ticks in bunch.ticks],
            "description": (
                "COVID-19 systems serology: antibodies in 438 serum samples profiled by their "
                "binding to 6 SARS-CoV-2 antigens, read out by 11 antibody isotypes and Fc "
                "receptors. Sample labels give the patient's outcome (Negative, Mild, Moderate, "
                "Severe, Deceased); samples are grouped by outcome. Each antigen-receptor pair is "
                "centred across samples (mean 0) and scaled, as prepared by Tan et al. (2021); "
                "no missing values."
            ),
            "source": (
                "tensorly 0.10.0, tensorly/datasets/data/COVID19_data.npy "
                "(tensorly.datasets.load_covid19_serology), prepared by Tan et al. (2021) from "
                "the measurements of Zohar et al. (2020)"
            ),
            "citation": [
                "Tan, Z. C., Murphy, M. C., Alpay, H. S., Taylor, S. D., & Meyer, A. S. (2021). "
                "Tensor-structured decomposition improves systems serology analysis. Molecular "
                "Systems Biology, 17(9), e10243.",
                "Zohar, T., Loos, C., Fischinger, S., Atyeo, C., Wang, C., Slein, M. D., et al. "
                "(2020). Compromised humoral functional evolution tracks with SARS-CoV-2 "
                "mortality. Cell, 183(6), 1508-1519.",
            ],
            "licence": "MIT",
            "licence_text": UC_MIT.format(year=2022),
            "suggested_method": "cp",
            "suggested_rank": 2,
        },
    )


def build_il2_response() -> None:
    from tensorly.datasets import load_IL2data

    bunch = load_IL2data()
    tensor = np.asarray(bunch.tensor, dtype=np.float64)
    ligands, times, doses, cells = bunch.ticks
    _write(
        "il2_response",
        tensor,
        {
            "mode_names": ["ligand", "time", "dose", "cell type"],
            "labels": [
                [str(x) for x in ligands],
                [f"{_fmt(t)} h" for t in times],
                [f"{_fmt(d)} nM" for d in doses],
                [str(x) for x in cells],
            ],
            "description": (
                "IL-2 mutein signalling: responses of 8 immune cell types to 13 IL-2 / "
                "IL-15 muteins (mono- and bivalent) at 4 time points and 12 concentrations, "
                "scaled to [0, 1]. 192 entries were not measured and are NaN (the mask marks "
                "the observed entries)."
            ),
            "source": (
                "tensorly 0.10.0, tensorly/datasets/data/IL2_Response_Tensor.npy "
                "(tensorly.datasets.load_IL2data); labels as given by that loader"
            ),
            "citation": [
                "Orcutt-Jahns, B., Emmel, P. C., Snyder, E. M., Posner, C., Carlson, S. M., & "
                "Meyer, A. S. (2021). Multivalency enhances the specificity of Fc-cytokine "
                "fusions. bioRxiv.",
            ],
            "licence": "MIT",
            "licence_text": UC_MIT.format(year=2021),
            "suggested_method": "ntf",
            "suggested_rank": 3,
        },
    )


def build_digits_counts() -> None:
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]  # no stubs; build-time only

    digits = load_digits()
    order = np.argsort(digits.target, kind="stable")
    images = digits.images[order]
    if not np.array_equal(images, np.round(images)) or images.min() < 0 or images.max() > 16:
        raise RuntimeError("digits are not integer counts in 0..16")
    _write(
        "digits_counts",
        images.astype(np.uint8),
        {
            "mode_names": ["image", "row", "column"],
            "labels": [
                [str(int(t)) for t in digits.target[order]],
                [f"row {i}" for i in range(8)],
                [f"col {j}" for j in range(8)],
            ],
            "description": (
                "Handwritten digits as a non-negative count tensor: 1,797 images x 8 x 8 "
                "blocks; each entry counts the 'on' pixels in a 4x4 block of a 32x32 bitmap "
                "(integers 0..16). Images are sorted by digit; image labels give the digit."
            ),
            "source": (
                "scikit-learn 1.9.1, sklearn/datasets/data/digits.csv.gz "
                "(sklearn.datasets.load_digits), a copy of the test set optdigits.tes of the "
                "UCI Machine Learning Repository dataset 80"
            ),
            "citation": [
                "Alpaydin, E., & Kaynak, C. (1998). Optical Recognition of Handwritten Digits "
                "[Dataset]. UCI Machine Learning Repository. doi:10.24432/C50P49",
            ],
            "licence": "CC-BY-4.0",
            "licence_text": CC_BY_4,
            "suggested_method": "ntf",
            "suggested_rank": 10,
        },
    )


def main() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    build_covid19_serology()
    build_il2_response()
    build_digits_counts()


if __name__ == "__main__":
    main()
