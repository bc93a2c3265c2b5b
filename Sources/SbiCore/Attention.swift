// Masked multi-head self-attention over a batch of examples with different token counts.
//
// Layouts: qkv (B,T,3*H*D) holds [q heads | k heads | v heads] per token; out (B,T,H*D).
// Everything inside is computed TRANSPOSED, key-major: for key j, a row over all queries i
// (padded to Tp = T rounded up to 8). Softmax then normalises across rows, so maxima and sums
// are element-wise over i and the inner loops are plain contiguous loops that LLVM vectorises
// (Swift has no fast-math, so horizontal float reductions would stay scalar).
// keep (B,T,Tp): keep[b,j,i] = 1 if query i may attend key j (mask AND i,j < count[b]).
// att (B,H,T,Tp): att[b,h,j,i] = softmax probability of key j for query i (0 where not kept).
// Hidden and padding keys never enter a sum, so they cannot change other tokens' outputs.

import SbiKernelsAVX512

/// Shape of one attention call.
public struct AttentionShape: Sendable {
    public var batch: Int, tokens: Int, heads: Int, keySize: Int
    public var paddedTokens: Int { (tokens + 7) / 8 * 8 }
    public var qkvStride: Int { 3 * heads * keySize }
    public var outStride: Int { heads * keySize }
    public init(batch: Int, tokens: Int, heads: Int, keySize: Int) {
        self.batch = batch; self.tokens = tokens; self.heads = heads; self.keySize = keySize
    }
}

/// Per-thread scratch for one head of one example.
public final class AttentionScratch: @unchecked Sendable {
    /// qt (D,Tp) queries transposed; rowMax, rowSum (Tp); ot (D,Tp) output or its gradient transposed;
    /// dp (T,Tp) score gradients key-major; q8, g8 (Tp,Dp) queries and output gradients with the key size
    /// padded to Dp (a multiple of 8, zero-filled); dk8, dv8 (T,Dp) key and value gradients
    let qt, rowMax, rowSum, ot, dp, q8, g8, dk8, dv8: FloatBuffer
    let paddedKeySize: Int
    public init(tokens: Int, keySize: Int) {
        let tp = (tokens + 7) / 8 * 8
        paddedKeySize = (keySize + 7) / 8 * 8
        qt = FloatBuffer(keySize * tp); rowMax = FloatBuffer(tp); rowSum = FloatBuffer(tp)
        ot = FloatBuffer(keySize * tp); dp = FloatBuffer(tokens * tp)
        q8 = FloatBuffer(tp * paddedKeySize); g8 = FloatBuffer(tp * paddedKeySize)
        dk8 = FloatBuffer(tokens * paddedKeySize); dv8 = FloatBuffer(tokens * paddedKeySize)
    }
}

/// keep (B,T,Tp) from an optional boolean mask allowed (B,T,T) (nil = dense; allowed[b,i,j] != 0 if
/// query i may attend key j) and token counts (B). A valid query always keeps its own key.
public func buildKeepMask(_ keep: UnsafeMutablePointer<Float>, _ allowed: UnsafePointer<UInt8>?,
                          _ counts: UnsafePointer<Int32>, _ shape: AttentionShape) {
    let t = shape.tokens, tp = shape.paddedTokens
    for b in 0..<shape.batch {
        let n = Int(counts[b])
        for j in 0..<t {
            let row = keep + (b * t + j) * tp
            for i in 0..<tp {
                var k: Float = 0
                if i < n && j < n {
                    k = (allowed == nil || allowed![(b * t + i) * t + j] != 0 || i == j) ? 1 : 0
                }
                row[i] = k
            }
        }
    }
}

/// out (B,T,HD), att (B,H,T,Tp) from qkv (B,T,3HD), keep (B,T,Tp) or nil, counts (B):
/// att[b,h,j,i] = softmax over kept j of (q_i . k_j / sqrt(D)); out[b,i,h,:] = sum_j att[b,h,j,i] v_j.
/// Without `keepProbabilities` (inference) att is one (T,Tp) scratch reused by every head, so it
/// stays in cache instead of streaming B*H*T*Tp floats through memory.
/// keep nil: no attention mask (every valid query keeps every valid key), so the softmax loops read
/// no mask; padding queries (i >= n, all-zero scores) get a zero normaliser instead. The results are
/// the same bits as with the all-kept mask `buildKeepMask` writes for a nil `allowed`.
public func attentionForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
                             _ qkv: UnsafePointer<Float>, _ keep: UnsafePointer<Float>?,
                             _ counts: UnsafePointer<Int32>, _ shape: AttentionShape,
                             _ scratch: AttentionScratch, keepProbabilities: Bool = true) {
    let t = shape.tokens, tp = shape.paddedTokens, d = shape.keySize, hd = shape.outStride, st = shape.qkvStride
    let scale = 1 / Float(d).squareRoot()
    let qt = scratch.qt.base, mx = scratch.rowMax.base, sum = scratch.rowSum.base, ot = scratch.ot.base
    for b in 0..<shape.batch {
        let n = Int(counts[b])
        let tok = qkv + b * t * st
        for h in 0..<shape.heads {
            let p = keepProbabilities ? att + (b * shape.heads + h) * t * tp : att
            transposeQueries(qt, tok + h &* d, scale, n: n, d: d, st: st, tp: tp)
            for i in 0..<tp { mx[i] = -1e30; sum[i] = 0 }
            // scores S (n,Tp) = K_h (n,D) @ qt (D,Tp); running max over kept keys
            headGemm(p, tp, tok + hd + h * d, st, 1, qt, tp, n, tp, d, accumulate: false)
            if KernelPath.current == .avx512 {
                softmaxNumerators512(p, mx, sum, keep.map { $0 + b * t * tp }, rows: n, tp)
                if keep == nil { for i in n..<tp { sum[i] = 0 } }
            } else if let keep {
                maskedSoftmaxNumerators(p, mx, sum, keep + b * t * tp, rows: n, tp)
            } else {
                softmaxNumerators(p, mx, sum, rows: n, tp)
                for i in n..<tp { sum[i] = 0 }
            }
            for i in 0..<tp { sum[i] = sum[i] > 0 ? 1 / sum[i] : 0 }
            if keepProbabilities {
                // normalise P in place (the backward reads it); ot (D,Tp) = V_h^T (D,n) @ P (n,Tp)
                for j in 0..<n {
                    let row = p + j * tp
                    for i in 0..<tp { row[i] *= sum[i] }
                }
                headGemm(ot, tp, tok + 2 * hd + h * d, 1, st, p, tp, d, tp, n, accumulate: false)
            } else {
                // ot = V_h^T @ unnormalised P; each query's column is scaled as it is copied out (D x Tp
                // work instead of n x Tp)
                headGemm(ot, tp, tok + 2 * hd + h * d, 1, st, p, tp, d, tp, n, accumulate: false)
            }
            if n < t { (p + n * tp).update(repeating: 0, count: (t - n) * tp) }
            copyOutHead(out + (b &* t &* hd &+ h &* d), ot, keepProbabilities ? nil : UnsafePointer(sum),
                        n: n, t: t, d: d, hd: hd, tp: tp)
        }
    }
}

/// qt (D,Tp): qt[e, i] = scale * q[i * st + e] for the n valid queries, zero past n. Row by row of qt,
/// so the writes are contiguous; wrapping index arithmetic keeps the loops free of overflow checks.
@inline(__always)
func transposeQueries(_ qt: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>, _ scale: Float,
                      n: Int, d: Int, st: Int, tp: Int) {
    for e in 0..<d {
        let row = qt + e &* tp
        var i = 0
        while i < n { row[i] = scale * q[i &* st &+ e]; i &+= 1 }
        while i < tp { row[i] = 0; i &+= 1 }
    }
}

/// One head's output rows: out[i * hd + e] = ot[e, i] (times scale[i] when given) for the n valid
/// queries, zero for the padding rows up to t. The same product per element as scaling ot first.
@inline(__always)
func copyOutHead(_ out: UnsafeMutablePointer<Float>, _ ot: UnsafePointer<Float>, _ scale: UnsafePointer<Float>?,
                 n: Int, t: Int, d: Int, hd: Int, tp: Int) {
    for i in 0..<n {
        let o = out + i &* hd
        if let scale {
            let s = scale[i]
            for e in 0..<d { o[e] = ot[e &* tp &+ i] * s }
        } else {
            for e in 0..<d { o[e] = ot[e &* tp &+ i] }
        }
    }
    for i in n..<max(n, t) { let o = out + i &* hd; for e in 0..<d { o[e] = 0 } }
}

/// Scores p (n,Tp) key-major -> exp(p - column max) in place; mx (Tp) the column maxima, sum (Tp)
/// += the column sums (sum must start at 0, mx at -1e30). Every entry is kept.
@inline(__always)
func softmaxNumerators(_ p: UnsafeMutablePointer<Float>, _ mx: UnsafeMutablePointer<Float>,
                       _ sum: UnsafeMutablePointer<Float>, rows n: Int, _ tp: Int) {
    for j in 0..<n {
        let row = p + j * tp
        for i in 0..<tp { let v = row[i]; mx[i] = v > mx[i] ? v : mx[i] }
    }
    for j in 0..<n {
        let row = p + j * tp
        for i in 0..<tp {
            let v = fastExp(row[i] - mx[i])
            row[i] = v
            sum[i] += v
        }
    }
}

/// As `softmaxNumerators` where keep (n,Tp) is nonzero, 0 elsewhere (a masked entry takes no part).
@inline(__always)
func maskedSoftmaxNumerators(_ p: UnsafeMutablePointer<Float>, _ mx: UnsafeMutablePointer<Float>,
                             _ sum: UnsafeMutablePointer<Float>, _ keep: UnsafePointer<Float>, rows n: Int, _ tp: Int) {
    for j in 0..<n {
        let row = p + j * tp, kp = keep + j * tp
        for i in 0..<tp { let v = kp[i] != 0 ? row[i] : -1e30; mx[i] = v > mx[i] ? v : mx[i] }
    }
    for j in 0..<n {
        let row = p + j * tp, kp = keep + j * tp
        for i in 0..<tp {
            let v = kp[i] != 0 ? fastExp(row[i] - mx[i]) : 0
            row[i] = v
            sum[i] += v
        }
    }
}

/// Backward of attentionForward, given dout (B,T,HD); accumulates into dqkv (B,T,3HD):
/// dP[j,i] = v_j . dO_i;  dS = P * (dP - sum_j P * dP) / sqrt(D);
/// dq_i += sum_j dS[j,i] k_j;  dk_j += sum_i dS[j,i] q_i;  dv_j += sum_i P[j,i] dO_i
public func attentionBackward(_ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                              _ qkv: UnsafePointer<Float>, _ att: UnsafePointer<Float>,
                              _ counts: UnsafePointer<Int32>, _ shape: AttentionShape,
                              _ scratch: AttentionScratch) {
    let t = shape.tokens, tp = shape.paddedTokens, d = shape.keySize, hd = shape.outStride, st = shape.qkvStride
    let scale = 1 / Float(d).squareRoot()
    let dot = scratch.rowSum.base, got = scratch.ot.base, dqt = scratch.qt.base, dpAll = scratch.dp.base
    let dp8 = scratch.paddedKeySize
    let q8 = scratch.q8.base, g8 = scratch.g8.base, dk8 = scratch.dk8.base, dv8 = scratch.dv8.base
    for b in 0..<shape.batch {
        let n = Int(counts[b])
        let tok = qkv + b * t * st, dtok = dqkv + b * t * st
        for h in 0..<shape.heads {
            let p = att + (b * shape.heads + h) * t * tp
            // got[e, i] = dO[i, e], zero past n
            got.update(repeating: 0, count: d * tp)
            for i in 0..<n { for e in 0..<d { got[e * tp + i] = dout[(b * t + i) * hd + h * d + e] } }
            // dP (n,Tp) = V_h (n,D) @ got (D,Tp);  dot[i] = sum_j P[j, i] dP[j, i]
            headGemm(dpAll, tp, tok + 2 * hd + h * d, st, 1, got, tp, n, tp, d, accumulate: false)
            // dS[j, i] = P (dP - dot) / sqrt(D) in place
            if KernelPath.current == .avx512 {
                softmaxBackward512(p, dpAll, dot, rows: n, tp, scale: scale)
            } else {
                for i in 0..<tp { dot[i] = 0 }
                for j in 0..<n {
                    let dpr = dpAll + j * tp, pr = p + j * tp
                    for i in 0..<tp { dot[i] = dot[i].addingProduct(pr[i], dpr[i]) }
                }
                for j in 0..<n {
                    let dpr = dpAll + j * tp, pr = p + j * tp
                    for i in 0..<tp { dpr[i] = pr[i] * (dpr[i] - dot[i]) * scale }
                }
            }
            // dqt (D,Tp) = K_h^T (D,n) @ dS (n,Tp)
            headGemm(dqt, tp, tok + hd + h * d, 1, st, dpAll, tp, d, tp, n, accumulate: false)
            // dK (n,Dp) = dS (n,Tp) @ q8 (Tp,Dp);  dV (n,Dp) = P (n,Tp) @ g8 (Tp,Dp), rows of q8, g8 past n zero
            q8.update(repeating: 0, count: tp * dp8)
            g8.update(repeating: 0, count: tp * dp8)
            for i in 0..<n {
                let q = tok + i * st + h * d, g = dout + (b * t + i) * hd + h * d
                for e in 0..<d { q8[i * dp8 + e] = q[e]; g8[i * dp8 + e] = g[e] }
            }
            headGemm(dk8, dp8, dpAll, tp, 1, q8, dp8, n, dp8, tp, accumulate: false)
            headGemm(dv8, dp8, p, tp, 1, g8, dp8, n, dp8, tp, accumulate: false)
            for i in 0..<n {
                let r = dtok + i * st + h * d
                for e in 0..<d {
                    r[e] += dqt[e * tp + i]
                    r[hd + e] += dk8[i * dp8 + e]
                    r[2 * hd + e] += dv8[i * dp8 + e]
                }
            }
        }
    }
}
