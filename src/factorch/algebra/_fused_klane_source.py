"""C++ source of the fused kernel's loops with the LAST mode as the vector lane.

Part of the one library :mod:`factorch.algebra._fused` compiles (appended to
:data:`factorch.algebra._fused_source.SOURCE`). The older loops there put the rank in the vector
lanes (at rank 10 and 8 lanes per vector, 37.5 % of their multiply-adds are on padding zeros) and
lose to BLAS on ``X(M, K) @ C``. These stream the tensor once with ``K`` -- contiguous in memory --
as the lane, so no lane is padding except at the end of a row:

* ``rowsk`` -- output mode ``n`` before the last (the same contraction as ``rows``): the tensor
  viewed as ``(P, I, Q, K)``, ``C^T`` (``R x K``, zero-padded to whole vectors) held in L1, a
  register tile of up to four tensor rows times a chunk of up to eight ranks (one accumulator
  vector each); per row, ``R`` vector dot products with ``C^T``'s rows, folded into the output
  row ``i`` with the scalar weights ``wp[p, r] wq[q, r]``; one horizontal sum per output entry
  (a fixed lane tree) at the end. For a matrix (``P = Q = 1``) each tensor row is its own output
  row: ``X(M, K) @ C``, the first pass of a CP-ALS sweep.
* ``colsk`` -- output mode the last (the same contraction as ``cols``): ``out^T[r, k]`` (``R x K``)
  accumulated over blocks of tensor rows that stay in L2; inside a block a register tile of up
  to four ``k``-vectors times a chunk of ranks, fed by broadcasts of the block's weights
  ``wp[p, r] wq[q, r]`` (formed once per block in L1).

Every output entry is summed in a fixed order that depends only on the shape, the rank and the
vector width (the rank chunks and row tiles only regroup independent outputs), and threads split
independent outputs, so results are bit-identical across runs and thread counts.
"""

from __future__ import annotations

__all__ = ["KLANE_SOURCE"]

KLANE_SOURCE = r"""
namespace fcf {

#define FCF_INLINE inline __attribute__((always_inline))

#ifdef __AVX512F__
constexpr int KACC = 24;  // accumulator registers of a tile (of 32)
constexpr int KMAXRB = 8;
#else
constexpr int KACC = 12;  // (of 16)
constexpr int KMAXRB = 4;
#endif

// Lanes of v summed by a fixed halving tree (lane l with lane l + L/2, ...).
template <typename V, typename T> static FCF_INLINE T hsum(V v) {
    constexpr int L = sizeof(V) / sizeof(T);
    T s[L];
    std::memcpy(s, &v, sizeof(V));
    for (int h = L / 2; h >= 1; h /= 2)
        for (int l = 0; l < h; ++l) s[l] += s[l + h];
    return s[0];
}

// Asks for the n values that lie AHEAD bytes after p (not past end) to be brought into L2: the
// loop's arithmetic then overlaps the transfer of the rows it reads next (6-12 % faster at
// 200^3 than the hardware prefetcher alone, BENCHMARKS.md).
constexpr int64_t AHEAD = 64 * 1024;
template <typename T> static FCF_INLINE void prefetch_ahead(const T* p, const T* end, int64_t n) {
    const char* a = (const char*)p + AHEAD;
    const char* e = std::min((const char*)end, a + n * (int64_t)sizeof(T));
    for (; a < e; a += 64) __builtin_prefetch(a, 0, 2);
}

// The n < L values at p as a vector, the other lanes zero.
template <typename V, typename T> static FCF_INLINE V load_part(const T* p, int64_t n) {
    V v = V{};
    std::memcpy(&v, p, sizeof(T) * n);
    return v;
}

// Calls F<V, T, rb>::go(args...) for the chunk size rb in 1..KMAXRB.
#define FCF_RB_DISPATCH(FN, rb, ...)                                     \
    switch (rb) {                                                        \
        case 1: FN<V, T, 1>(__VA_ARGS__); break;                         \
        case 2: FN<V, T, 2>(__VA_ARGS__); break;                         \
        case 3: FN<V, T, 3>(__VA_ARGS__); break;                         \
        case 4: FN<V, T, 4>(__VA_ARGS__); break;                         \
        case 5: if (KMAXRB >= 5) FN<V, T, (KMAXRB >= 5 ? 5 : 1)>(__VA_ARGS__); break; \
        case 6: if (KMAXRB >= 6) FN<V, T, (KMAXRB >= 6 ? 6 : 1)>(__VA_ARGS__); break; \
        case 7: if (KMAXRB >= 7) FN<V, T, (KMAXRB >= 7 ? 7 : 1)>(__VA_ARGS__); break; \
        default: FN<V, T, KMAXRB>(__VA_ARGS__); break;                   \
    }

// Rank chunks: ceil(rank / KMAXRB) chunks of balanced sizes (rank 10: 5 + 5).
static inline void rank_chunk(int64_t rank, int64_t c, int64_t* r0, int* rb) {
    const int64_t n = (rank + KMAXRB - 1) / KMAXRB;
    *r0 = rank * c / n;
    *rb = (int)(rank * (c + 1) / n - *r0);
}

// acc[j][r] = lane-wise sum over k of x[j * stride + k] * ct[r * kp + k] (NR rows, RB ranks);
// ct is zero beyond kdim, the last partial vector of x is loaded with zeros beyond kdim.
template <typename V, typename T, int NR, int RB>
static FCF_INLINE void dot_tile(const T* x, int64_t stride, int64_t kdim, const T* ct, int64_t kp,
                            V (&acc)[NR][RB]) {
    constexpr int L = sizeof(V) / sizeof(T);
    for (int j = 0; j < NR; ++j)
        for (int r = 0; r < RB; ++r) acc[j][r] = V{};
    const int64_t kfull = kdim / L * L;
    for (int64_t k = 0; k < kfull; k += L) {
        V xv[NR];
        for (int j = 0; j < NR; ++j) xv[j] = load<V>(x + j * stride + k);
        for (int r = 0; r < RB; ++r) {
            V cv = load<V>(ct + r * kp + k);
            for (int j = 0; j < NR; ++j) acc[j][r] += xv[j] * cv;
        }
    }
    if (kfull < kdim) {
        V xv[NR];
        for (int j = 0; j < NR; ++j) xv[j] = load_part<V, T>(x + j * stride + kfull, kdim - kfull);
        for (int r = 0; r < RB; ++r) {
            V cv = load<V>(ct + r * kp + kfull);
            for (int j = 0; j < NR; ++j) acc[j][r] += xv[j] * cv;
        }
    }
}

// P = Q = 1 (e.g. a matrix): out[i + j, r0 + r] = w[r] sum_k x[i + j, k] ct[r0 + r, k] for the
// NR rows of one tile, w = wp[0, :] wq[0, :] (ones for a matrix: then exact).
template <typename V, typename T, int NR, int RB>
static FCF_INLINE void matrix_tile(const T* x, const T* wp, const T* wq, const T* ct, T* out,
                                   int64_t kdim, int64_t kp, int64_t si, int64_t sr, int64_t r0,
                                   int64_t i) {
    V acc[NR][RB];
    dot_tile<V, T, NR, RB>(x + i * kdim, kdim, kdim, ct + r0 * kp, kp, acc);
    for (int j = 0; j < NR; ++j)
        for (int r = 0; r < RB; ++r)
            out[(i + j) * si + (r0 + r) * sr] = (wp[r0 + r] * wq[r0 + r]) * hsum<V, T>(acc[j][r]);
}

template <typename V, typename T, int RB>
static void rowsk_matrix(const T* x, const T* wp, const T* wq, const T* ct, T* out, int64_t kdim,
                         int64_t kp, int64_t si, int64_t sr, int64_t r0, int64_t i, int64_t nr) {
    constexpr int NR = KACC / RB > 4 ? 4 : KACC / RB;
    int64_t j = 0;
    for (; j + NR <= nr; j += NR)
        matrix_tile<V, T, NR, RB>(x, wp, wq, ct, out, kdim, kp, si, sr, r0, i + j);
    for (; j < nr; ++j) matrix_tile<V, T, 1, RB>(x, wp, wq, ct, out, kdim, kp, si, sr, r0, i + j);
}

// res[r0 + r] += sum_j w(j, r) * acc[j][r] for the rows of one tile (w(j, r) = wp[p_j, r0 + r]
// wq[q_j, r0 + r]; res holds rank vectors).
template <typename V, typename T, int NR, int RB>
static FCF_INLINE void fold_tile(const T* x, int64_t stride, int64_t kdim, const T* ct, int64_t kp,
                             const T* wp, int64_t pstep, const T* wq, int64_t qstep, T* res,
                             int64_t r0) {
    constexpr int L = sizeof(V) / sizeof(T);
    V acc[NR][RB];
    dot_tile<V, T, NR, RB>(x, stride, kdim, ct + r0 * kp, kp, acc);
    for (int r = 0; r < RB; ++r) {
        V s = load<V>(res + (r0 + r) * L);
        for (int j = 0; j < NR; ++j)
            s += bcast<V>(wp[j * pstep + r0 + r] * wq[j * qstep + r0 + r]) * acc[j][r];
        store(res + (r0 + r) * L, s);
    }
}

template <typename V, typename T, int RB>
static void fold_any(const T* x, int64_t stride, int64_t kdim, const T* ct, int64_t kp,
                     const T* wp, int64_t pstep, const T* wq, int64_t qstep, T* res, int64_t r0,
                     int64_t nr) {
    constexpr int NR = KACC / RB > 4 ? 4 : KACC / RB;
    int64_t j = 0;
    for (; j + NR <= nr; j += NR)
        fold_tile<V, T, NR, RB>(x + j * stride, stride, kdim, ct, kp, wp + j * pstep, pstep,
                                wq + j * qstep, qstep, res, r0);
    for (; j < nr; ++j)
        fold_tile<V, T, 1, RB>(x + j * stride, stride, kdim, ct, kp, wp + j * pstep, pstep,
                               wq + j * qstep, qstep, res, r0);
}

// outt[r0 + r, k] += sum_m w[m, r] x[m, k] over the rows m of one block (w: block x rank, in L1)
// for the vectors [v0, v1) of k: a tile of NV k-vectors times RB ranks in registers.
template <typename V, typename T, int RB, int NV, bool PART>
static FCF_INLINE void colsk_strip(const T* x, int64_t mb, int64_t kdim, const T* w, int64_t rank,
                               T* outt, int64_t kp, int64_t r0, int64_t k, int64_t pf) {
    constexpr int L = sizeof(V) / sizeof(T);
    V acc[RB][NV];
    for (int r = 0; r < RB; ++r)
        for (int v = 0; v < NV; ++v) acc[r][v] = load<V>(outt + (r0 + r) * kp + k + v * L);
    for (int64_t m = 0; m < mb; ++m) {
        const T* xr = x + m * kdim + k;
        if (m < pf)  // the same strip of the next block (the rows right after this block)
            for (int v = 0; v < NV; ++v) __builtin_prefetch(xr + mb * kdim + v * L, 0, 2);
        V xv[NV];
        for (int v = 0; v < NV; ++v)
            xv[v] = PART ? load_part<V, T>(xr + v * L, kdim - k - v * L) : load<V>(xr + v * L);
        for (int r = 0; r < RB; ++r) {
            V wb = bcast<V>(w[m * rank + r0 + r]);
            for (int v = 0; v < NV; ++v) acc[r][v] += wb * xv[v];
        }
    }
    for (int r = 0; r < RB; ++r)
        for (int v = 0; v < NV; ++v) store(outt + (r0 + r) * kp + k + v * L, acc[r][v]);
}

// The k-vectors [v0, v1) of one rank chunk: strips of NV whole vectors, then single vectors,
// then the partial last vector of the rows (when kdim is not a whole number of vectors).
template <typename V, typename T, int RB>
static void colsk_chunk(const T* x, int64_t mb, int64_t kdim, const T* w, int64_t rank, T* outt,
                        int64_t kp, int64_t r0, int64_t v0, int64_t v1, int64_t pf) {
    constexpr int L = sizeof(V) / sizeof(T);
    constexpr int NV = KACC / RB > 4 ? 4 : KACC / RB;
    const int64_t vf = std::min<int64_t>(v1, kdim / L);
    int64_t v = v0;
    for (; v + NV <= vf; v += NV)
        colsk_strip<V, T, RB, NV, false>(x, mb, kdim, w, rank, outt, kp, r0, v * L, pf);
    for (; v < vf; ++v)
        colsk_strip<V, T, RB, 1, false>(x, mb, kdim, w, rank, outt, kp, r0, v * L, pf);
    if (v < v1) colsk_strip<V, T, RB, 1, true>(x, mb, kdim, w, rank, outt, kp, r0, v * L, pf);
}

// ct: rank x kp (kp = kdim rounded up to whole vectors, zero-padded); wp: np x rank; wq: nq x
// rank; out: ni x rank, or rank x ni when P = Q = 1 and tout (the rank axis first: what the
// CP-ALS sweep contracts next without a copy). Every rank chunk of a group of 12 tensor rows
// runs before the next group
// (the group stays in L1, and the transfer of the tensor spreads over the whole computation).
// Each chunk tiles the group's rows its own way; the rows' contributions are folded one after
// the other either way, so the order of every sum is fixed by the shape and the rank.
template <typename V, typename T>
static void run_rowsk(const T* x, const T* wp, const T* wq, const T* ct, T* out, int64_t np,
                      int64_t ni, int64_t nq, int64_t kdim, int64_t rank, int64_t threads,
                      bool tout) {
    constexpr int L = sizeof(V) / sizeof(T);
    const int64_t kp = (kdim + L - 1) / L * L;
    const int64_t nchunk = (rank + KMAXRB - 1) / KMAXRB;
    const int64_t nr = 12;
    const bool matrix = np == 1 && nq == 1;
    const int64_t si = tout ? 1 : rank, sr = tout ? ni : 1;
    const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(threads, ni));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
    for (int64_t t = 0; t < nt; ++t) {
        const int64_t b0 = ni * t / nt, b1 = ni * (t + 1) / nt;
        if (matrix) {
            for (int64_t i = b0; i < b1; i += nr) {
                const int64_t n = std::min<int64_t>(nr, b1 - i);
                prefetch_ahead(x + i * kdim, x + b1 * kdim, n * kdim);
                for (int64_t c = 0; c < nchunk; ++c) {
                    int64_t r0;
                    int rb;
                    rank_chunk(rank, c, &r0, &rb);
                    FCF_RB_DISPATCH(rowsk_matrix, rb, x, wp, wq, ct, out, kdim, kp, si, sr, r0,
                                    i, n)
                }
            }
            continue;
        }
        T* res = new T[rank * L];
        for (int64_t i = b0; i < b1; ++i) {
            std::memset(res, 0, sizeof(T) * rank * L);
            const bool over_q = nq >= nr || np < nr;
            const int64_t outer = over_q ? np : nq, inner = over_q ? nq : np;
            const int64_t stride = over_q ? kdim : ni * nq * kdim;
            for (int64_t a = 0; a < outer; ++a) {
                for (int64_t b = 0; b < inner; b += nr) {
                    const int64_t n = std::min<int64_t>(nr, inner - b);
                    const int64_t p = over_q ? a : b, q = over_q ? b : a;
                    const T* xs = x + ((p * ni + i) * nq + q) * kdim;
                    if (over_q) prefetch_ahead(xs, x + np * ni * nq * kdim, n * kdim);
                    const T* wpp = wp + p * rank;
                    const T* wqq = wq + q * rank;
                    const int64_t ps = over_q ? 0 : rank, qs = over_q ? rank : 0;
                    for (int64_t c = 0; c < nchunk; ++c) {
                        int64_t r0;
                        int rb;
                        rank_chunk(rank, c, &r0, &rb);
                        FCF_RB_DISPATCH(fold_any, rb, xs, stride, kdim, ct, kp, wpp, ps, wqq, qs,
                                        res, r0, n)
                    }
                }
            }
            for (int64_t r = 0; r < rank; ++r) out[i * rank + r] = hsum<V, T>(load<V>(res + r * L));
        }
        delete[] res;
    }
}

// outt: rank x kp (kp = kdim rounded up to whole vectors); the caller reads its first kdim
// columns. Tensor rows m = (p, q) in blocks that stay in L2; threads split the k-vectors.
template <typename V, typename T>
static void run_colsk(const T* x, const T* wp, const T* wq, T* outt, int64_t np, int64_t nq,
                      int64_t kdim, int64_t rank, int64_t threads) {
    constexpr int L = sizeof(V) / sizeof(T);
    const int64_t kp = (kdim + L - 1) / L * L;
    const int64_t nvec = kp / L;
    const int64_t nchunk = (rank + KMAXRB - 1) / KMAXRB;
    const int64_t rows = np * nq;
    const int64_t bytes = kdim * (int64_t)sizeof(T);
    const int64_t mb = std::max<int64_t>(8, std::min<int64_t>(256, (int64_t)(128 * 1024) / bytes));
    std::memset(outt, 0, sizeof(T) * rank * kp);
    const int64_t nt = std::max<int64_t>(1, std::min<int64_t>(threads, nvec));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        const int64_t t = omp_get_thread_num();
#else
        const int64_t t = 0;
#endif
        const int64_t v0 = nvec * t / nt, v1 = nvec * (t + 1) / nt;
        T* w = new T[mb * rank];
        for (int64_t m0 = 0; m0 < rows; m0 += mb) {
            const int64_t n = std::min<int64_t>(mb, rows - m0);
            for (int64_t m = 0; m < n; ++m) {
                const int64_t p = (m0 + m) / nq, q = (m0 + m) % nq;
                for (int64_t r = 0; r < rank; ++r)
                    w[m * rank + r] = wp[p * rank + r] * wq[q * rank + r];
            }
            const T* xb = x + m0 * kdim;
            for (int64_t c = 0; c < nchunk; ++c) {
                int64_t r0;
                int rb;
                rank_chunk(rank, c, &r0, &rb);
                // The first chunk also prefetches the next block, strip by strip.
                const int64_t pf = c == 0 ? std::min<int64_t>(n, rows - m0 - n) : 0;
                FCF_RB_DISPATCH(colsk_chunk, rb, xb, n, kdim, w, rank, outt, kp, r0, v0, v1, pf)
            }
        }
        delete[] w;
    }
}

#undef FCF_RB_DISPATCH
#undef FCF_INLINE

}  // namespace fcf
"""
