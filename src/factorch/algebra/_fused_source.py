"""C++ source of the fused dense MTTKRP kernel (compiled by :mod:`factorch.algebra._fused`).

Two loop nests with the rank as the vector lane (the rank padded with zeros to a multiple of the
lane count, so no lane is masked) and a register tile of four tensor rows (the two with the last
mode as the lane, ``rowsk`` and ``colsk``, are in :mod:`._fused_klane_source`, appended):

* ``rows`` -- output mode ``n`` before the last (register tile: four consecutive ``q``, else
  four ``p``, else four output rows ``i``). The tensor is viewed as ``(P, I, Q, K)`` (the
  modes before ``n``, mode ``n``, the modes between ``n`` and the last, the last mode) and

      out[i, :] = sum_p wp[p, :] * sum_q wq[q, :] * sum_k X[p, i, q, k] * c[k, :]

  where ``wp`` and ``wq`` are the Khatri--Rao products of the factors of the modes before ``n``
  and between ``n`` and the last (``P`` or ``Q`` may be 1). Each tensor entry is read once from
  memory; the intermediate ``X(.., K) @ c`` lives in registers. Threads split ``i``.
* ``cols`` -- output mode the last. The tensor is viewed as ``(P, Q, K)`` and

      out[k, :] = sum_p sum_q (wp[p, :] * wq[q, :]) * X[p, q, k]

  with ``out`` (``K x rank``) kept in cache. Threads split ``k``.

Every sum runs in a fixed order that depends only on the shape, the rank and the vector width,
never on the thread count, so results are bit-identical across runs and thread counts on one
machine. The vector width (32 or 64 bytes) is a runtime argument; GCC vector extensions map it
onto whatever SIMD the compile flags allow.
"""

from __future__ import annotations

from ._fused_klane_source import KLANE_SOURCE

__all__ = ["ARGTYPES", "SOURCE"]

# (x, wp, wq, c, out) for float64, then for float32, then
# (kind, vbytes, P, I, Q, K, rp, threads); kind 0 = rows, 1 = cols; +2 for float32; +4 for the
# loops with the last mode as the lane (:mod:`._fused_klane_source`; rp is then the rank); +8 for
# their rank-first output of X(M, K) @ C.
ARGTYPES = [
    "const double*",
    "const double*",
    "const double*",
    "const double*",
    "double*",
    "const float*",
    "const float*",
    "const float*",
    "const float*",
    "float*",
    "int64_t",
    "int64_t",
    "int64_t",
    "int64_t",
    "int64_t",
    "int64_t",
    "int64_t",
    "int64_t",
]

SOURCE = (
    r"""
#include <cstdint>
#include <cstring>
#include <algorithm>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace fcf {

typedef double d4 __attribute__((vector_size(32)));
typedef double d8 __attribute__((vector_size(64)));
typedef float f8 __attribute__((vector_size(32)));
typedef float f16 __attribute__((vector_size(64)));

template <typename V, typename T> static inline V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
}
template <typename V, typename T> static inline void store(T* p, V v) {
    std::memcpy(p, &v, sizeof(V));
}
// s - 0 is s for every s (also -0.0), so the compiler emits a plain broadcast.
template <typename V, typename T> static inline V bcast(T s) { return s - V{}; }

// acc[:] += sum_j w[j][:] * sum_k x[j * stride + k] * c[k, :] over NR <= 4 rows (one register
// tile: NR x NV accumulators, each fed by one fused multiply-add per entry).
template <typename V, typename T, int NR, int NV>
static inline void rows_tile(const T* x, int64_t stride, int64_t kdim, const T* c, int64_t rp,
                             const V (*w)[4], V* acc) {
    constexpr int L = sizeof(V) / sizeof(T);
    V t[NR][NV];
    for (int j = 0; j < NR; ++j)
        for (int v = 0; v < NV; ++v) t[j][v] = V{};
    for (int64_t k = 0; k < kdim; ++k) {
        V cv[NV];
        for (int v = 0; v < NV; ++v) cv[v] = load<V>(c + k * rp + v * L);
        for (int j = 0; j < NR; ++j) {
            V xb = bcast<V>(x[j * stride + k]);
            for (int v = 0; v < NV; ++v) t[j][v] += xb * cv[v];
        }
    }
    for (int j = 0; j < NR; ++j)
        for (int v = 0; v < NV; ++v) acc[v] += t[j][v] * w[j][v];
}

// out[i, :NV*L] for one i: the whole rows contraction of one output row. The tile runs over
// four consecutive q (rows of X(.., K) one after the other) when there are at least four,
// else over four consecutive p (rows ni * nq * kdim apart).
template <typename V, typename T, int NV>
static void rows_one(const T* x, const T* wp, const T* wq, const T* c, T* out, int64_t np,
                     int64_t ni, int64_t nq, int64_t kdim, int64_t rp, int64_t i) {
    constexpr int L = sizeof(V) / sizeof(T);
    V res[NV], w[4][4];
    for (int v = 0; v < NV; ++v) res[v] = V{};
    if (nq >= 4 || np < 4) {
        for (int64_t p = 0; p < np; ++p) {
            const T* xs = x + (p * ni + i) * nq * kdim;
            V acc[NV];
            for (int v = 0; v < NV; ++v) acc[v] = V{};
            int64_t q = 0;
            for (; q + 4 <= nq; q += 4) {
                for (int j = 0; j < 4; ++j)
                    for (int v = 0; v < NV; ++v) w[j][v] = load<V>(wq + (q + j) * rp + v * L);
                rows_tile<V, T, 4, NV>(xs + q * kdim, kdim, kdim, c, rp, w, acc);
            }
            for (; q < nq; ++q) {
                for (int v = 0; v < NV; ++v) w[0][v] = load<V>(wq + q * rp + v * L);
                rows_tile<V, T, 1, NV>(xs + q * kdim, kdim, kdim, c, rp, w, acc);
            }
            for (int v = 0; v < NV; ++v) res[v] += acc[v] * load<V>(wp + p * rp + v * L);
        }
    } else {
        const int64_t stride = ni * nq * kdim;
        for (int64_t q = 0; q < nq; ++q) {
            const T* xs = x + (i * nq + q) * kdim;
            int64_t p = 0;
            for (; p + 4 <= np; p += 4) {
                for (int j = 0; j < 4; ++j)
                    for (int v = 0; v < NV; ++v)
                        w[j][v] = load<V>(wp + (p + j) * rp + v * L) * load<V>(wq + q * rp + v * L);
                rows_tile<V, T, 4, NV>(xs + p * stride, stride, kdim, c, rp, w, res);
            }
            for (; p < np; ++p) {
                for (int v = 0; v < NV; ++v)
                    w[0][v] = load<V>(wp + p * rp + v * L) * load<V>(wq + q * rp + v * L);
                rows_tile<V, T, 1, NV>(xs + p * stride, stride, kdim, c, rp, w, res);
            }
        }
    }
    for (int v = 0; v < NV; ++v) store(out + i * rp + v * L, res[v]);
}

// out[i0 + j, :] for NR consecutive output rows, when there are fewer than four p and four q
// to tile over (e.g. a matrix, or a 3-way tensor viewed with its first two modes merged): the
// tile runs over the output rows, each with its own accumulators.
template <typename V, typename T, int NR, int NV>
static void rows_itile(const T* x, const T* wp, const T* wq, const T* c, T* out, int64_t np,
                       int64_t ni, int64_t nq, int64_t kdim, int64_t rp, int64_t i0) {
    constexpr int L = sizeof(V) / sizeof(T);
    const int64_t stride = nq * kdim;
    V res[NR][NV];
    for (int j = 0; j < NR; ++j)
        for (int v = 0; v < NV; ++v) res[j][v] = V{};
    for (int64_t p = 0; p < np; ++p) {
        for (int64_t q = 0; q < nq; ++q) {
            const T* xs = x + ((p * ni + i0) * nq + q) * kdim;
            V t[NR][NV], w[NV];
            for (int v = 0; v < NV; ++v)
                w[v] = load<V>(wp + p * rp + v * L) * load<V>(wq + q * rp + v * L);
            for (int j = 0; j < NR; ++j)
                for (int v = 0; v < NV; ++v) t[j][v] = V{};
            for (int64_t k = 0; k < kdim; ++k) {
                V cv[NV];
                for (int v = 0; v < NV; ++v) cv[v] = load<V>(c + k * rp + v * L);
                for (int j = 0; j < NR; ++j) {
                    V xb = bcast<V>(xs[j * stride + k]);
                    for (int v = 0; v < NV; ++v) t[j][v] += xb * cv[v];
                }
            }
            for (int j = 0; j < NR; ++j)
                for (int v = 0; v < NV; ++v) res[j][v] += t[j][v] * w[v];
        }
    }
    for (int j = 0; j < NR; ++j)
        for (int v = 0; v < NV; ++v) store(out + (i0 + j) * rp + v * L, res[j][v]);
}

// out[k, :] += sum_q w_q[:] * x[q, k] over NR rows, for k in [k0, k1).
template <typename V, typename T, int NR, int NV>
static inline void cols_tile(const T* x, int64_t kdim, const V (*w)[4], T* out, int64_t rp,
                             int64_t k0, int64_t k1) {
    constexpr int L = sizeof(V) / sizeof(T);
    for (int64_t k = k0; k < k1; ++k) {
        V acc[NV];
        for (int v = 0; v < NV; ++v) acc[v] = load<V>(out + k * rp + v * L);
        for (int j = 0; j < NR; ++j) {
            V xb = bcast<V>(x[j * kdim + k]);
            for (int v = 0; v < NV; ++v) acc[v] += xb * w[j][v];
        }
        for (int v = 0; v < NV; ++v) store(out + k * rp + v * L, acc[v]);
    }
}

// out[k0:k1, :] over all (p, q), in blocks of KB values of k so the block of out stays in L1.
template <typename V, typename T, int NV>
static void cols_range(const T* x, const T* wp, const T* wq, T* out, int64_t np, int64_t nq,
                       int64_t kdim, int64_t rp, int64_t k0, int64_t k1) {
    constexpr int L = sizeof(V) / sizeof(T);
    constexpr int64_t KB = 256;
    V w[4][4];
    for (int64_t kb = k0; kb < k1; kb += KB) {
        const int64_t ke = std::min<int64_t>(k1, kb + KB);
        for (int64_t p = 0; p < np; ++p) {
            const T* xs = x + p * nq * kdim;
            int64_t q = 0;
            for (; q + 4 <= nq; q += 4) {
                for (int j = 0; j < 4; ++j)
                    for (int v = 0; v < NV; ++v)
                        w[j][v] = load<V>(wp + p * rp + v * L) * load<V>(wq + (q + j) * rp + v * L);
                cols_tile<V, T, 4, NV>(xs + q * kdim, kdim, w, out, rp, kb, ke);
            }
            for (; q < nq; ++q) {
                for (int v = 0; v < NV; ++v)
                    w[0][v] = load<V>(wp + p * rp + v * L) * load<V>(wq + q * rp + v * L);
                cols_tile<V, T, 1, NV>(xs + q * kdim, kdim, w, out, rp, kb, ke);
            }
        }
    }
}

template <typename V, typename T>
static void cols_nv(int nv, const T* x, const T* wp, const T* wq, T* out, int64_t np, int64_t nq,
                    int64_t kdim, int64_t rp, int64_t k0, int64_t k1) {
    if (nv == 1) cols_range<V, T, 1>(x, wp, wq, out, np, nq, kdim, rp, k0, k1);
    else if (nv == 2) cols_range<V, T, 2>(x, wp, wq, out, np, nq, kdim, rp, k0, k1);
    else if (nv == 3) cols_range<V, T, 3>(x, wp, wq, out, np, nq, kdim, rp, k0, k1);
    else cols_range<V, T, 4>(x, wp, wq, out, np, nq, kdim, rp, k0, k1);
}

template <typename V, typename T>
static void rows_nv(int nv, const T* x, const T* wp, const T* wq, const T* c, T* out, int64_t np,
                    int64_t ni, int64_t nq, int64_t kdim, int64_t rp, int64_t i) {
    if (nv == 1) rows_one<V, T, 1>(x, wp, wq, c, out, np, ni, nq, kdim, rp, i);
    else if (nv == 2) rows_one<V, T, 2>(x, wp, wq, c, out, np, ni, nq, kdim, rp, i);
    else if (nv == 3) rows_one<V, T, 3>(x, wp, wq, c, out, np, ni, nq, kdim, rp, i);
    else rows_one<V, T, 4>(x, wp, wq, c, out, np, ni, nq, kdim, rp, i);
}

template <typename V, typename T, int NR>
static void itile_nv(int nv, const T* x, const T* wp, const T* wq, const T* c, T* out, int64_t np,
                     int64_t ni, int64_t nq, int64_t kdim, int64_t rp, int64_t i) {
    if (nv == 1) rows_itile<V, T, NR, 1>(x, wp, wq, c, out, np, ni, nq, kdim, rp, i);
    else if (nv == 2) rows_itile<V, T, NR, 2>(x, wp, wq, c, out, np, ni, nq, kdim, rp, i);
    else if (nv == 3) rows_itile<V, T, NR, 3>(x, wp, wq, c, out, np, ni, nq, kdim, rp, i);
    else rows_itile<V, T, NR, 4>(x, wp, wq, c, out, np, ni, nq, kdim, rp, i);
}

#ifdef __AVX512F__
constexpr int64_t MAXV = 4;  // 32 vector registers: a 4 x 4 tile fits
#else
constexpr int64_t MAXV = 2;  // 16 vector registers
#endif

// Rank chunks of up to MAXV vectors: each chunk is an independent problem on shifted pointers.
template <typename V, typename T>
static void run(const T* x, const T* wp, const T* wq, const T* c, T* out, int64_t cols,
                int64_t np, int64_t ni, int64_t nq, int64_t kdim, int64_t rp, int64_t threads) {
    constexpr int L = sizeof(V) / sizeof(T);
    const int64_t nvec = rp / L;
    const int64_t work = cols ? kdim : ni;
    const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(threads, work));
    if (cols) std::memset(out, 0, sizeof(T) * kdim * rp);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t t = 0; t < nt; ++t) {
        const int64_t b0 = work * t / nt, b1 = work * (t + 1) / nt;
        for (int64_t v0 = 0; v0 < nvec; v0 += MAXV) {
            const int64_t o = v0 * L;
            const int nv = (int)std::min<int64_t>(MAXV, nvec - v0);
            const T *po = wp + o, *qo = wq + o, *co = c + o;
            T* oo = out + o;
            if (cols) {
                cols_nv<V, T>(nv, x, po, qo, oo, np, nq, kdim, rp, b0, b1);
            } else if (nq >= 4 || np >= 4) {
                for (int64_t i = b0; i < b1; ++i)
                    rows_nv<V, T>(nv, x, po, qo, co, oo, np, ni, nq, kdim, rp, i);
            } else {
                int64_t i = b0;
                for (; i + 4 <= b1; i += 4)
                    itile_nv<V, T, 4>(nv, x, po, qo, co, oo, np, ni, nq, kdim, rp, i);
                for (; i < b1; ++i)
                    itile_nv<V, T, 1>(nv, x, po, qo, co, oo, np, ni, nq, kdim, rp, i);
            }
        }
    }
}

}  // namespace fcf
"""
    + KLANE_SOURCE
    + r"""
extern "C" void kernel(const double* x64, const double* wp64, const double* wq64,
                       const double* c64, double* out64, const float* x32, const float* wp32,
                       const float* wq32, const float* c32, float* out32, int64_t kind,
                       int64_t vbytes, int64_t np, int64_t ni, int64_t nq, int64_t kdim,
                       int64_t rp, int64_t threads) {
    const int64_t cols = kind & 1;
    const bool f32 = kind & 2, klane = kind & 4, tout = kind & 8;
    using namespace fcf;
    if (klane) {  // rp is the rank (unpadded); c is C^T, out is out^T for cols
        if (!f32 && vbytes == 64) {
            if (cols) run_colsk<d8, double>(x64, wp64, wq64, out64, np, nq, kdim, rp, threads);
            else run_rowsk<d8, double>(x64, wp64, wq64, c64, out64, np, ni, nq, kdim, rp,
                                       threads, tout);
        } else if (!f32) {
            if (cols) run_colsk<d4, double>(x64, wp64, wq64, out64, np, nq, kdim, rp, threads);
            else run_rowsk<d4, double>(x64, wp64, wq64, c64, out64, np, ni, nq, kdim, rp,
                                       threads, tout);
        } else if (vbytes == 64) {
            if (cols) run_colsk<f16, float>(x32, wp32, wq32, out32, np, nq, kdim, rp, threads);
            else run_rowsk<f16, float>(x32, wp32, wq32, c32, out32, np, ni, nq, kdim, rp,
                                       threads, tout);
        } else {
            if (cols) run_colsk<f8, float>(x32, wp32, wq32, out32, np, nq, kdim, rp, threads);
            else run_rowsk<f8, float>(x32, wp32, wq32, c32, out32, np, ni, nq, kdim, rp,
                                      threads, tout);
        }
    } else if (!f32 && vbytes == 64)
        run<d8, double>(x64, wp64, wq64, c64, out64, cols, np, ni, nq, kdim, rp, threads);
    else if (!f32)
        run<d4, double>(x64, wp64, wq64, c64, out64, cols, np, ni, nq, kdim, rp, threads);
    else if (vbytes == 64)
        run<f16, float>(x32, wp32, wq32, c32, out32, cols, np, ni, nq, kdim, rp, threads);
    else
        run<f8, float>(x32, wp32, wq32, c32, out32, cols, np, ni, nq, kdim, rp, threads);
}
"""
)
