// Masked multi-head self-attention over a batch of examples with different token counts.
//
// Layouts: qkv (B,T,3*H*D) holds [q heads | k heads | v heads] per token; out (B,T,H*D).
// keep (B,T,Tp) is 1 where query i may attend key j (the attention mask AND j < count[b]),
// 0 elsewhere; Tp = T rounded up to 8 so every key row is a whole number of SIMD8 lanes.
// att (B,H,T,Tp) saves the softmax probabilities for backward (0 for hidden keys).
// Keys that are hidden or padding never enter a sum, so they cannot change other outputs.

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

/// Per-thread scratch for attention: transposed keys/values of one head and their gradients.
public final class AttentionScratch: @unchecked Sendable {
    let kt: FloatBuffer, vt: FloatBuffer, dkt: FloatBuffer, dvt: FloatBuffer, row: FloatBuffer
    public init(tokens: Int, keySize: Int) {
        let tp = (tokens + 7) / 8 * 8
        kt = FloatBuffer(keySize * tp); vt = FloatBuffer(keySize * tp)
        dkt = FloatBuffer(keySize * tp); dvt = FloatBuffer(keySize * tp)
        row = FloatBuffer(tp)
    }
}

/// keep (B,T,Tp) from an optional boolean mask allowed (B,T,T) (nil = dense) and token counts (B).
/// Rows of padding queries are all zero. The diagonal of a valid query is always kept.
public func buildKeepMask(_ keep: UnsafeMutablePointer<Float>, _ allowed: UnsafePointer<UInt8>?,
                          _ counts: UnsafePointer<Int32>, _ shape: AttentionShape) {
    let t = shape.tokens, tp = shape.paddedTokens
    for b in 0..<shape.batch {
        let n = Int(counts[b])
        for i in 0..<t {
            let row = keep + (b * t + i) * tp
            for j in 0..<tp {
                var k: Float = 0
                if i < n && j < n {
                    k = (allowed == nil || allowed![(b * t + i) * t + j] != 0 || i == j) ? 1 : 0
                }
                row[j] = k
            }
        }
    }
}

/// Copies K and V of head h of example b (n tokens) into kt, vt (D,Tp), zero past n.
@inline(__always)
private func gatherKV(_ s: AttentionScratch, _ qkv: UnsafePointer<Float>, _ b: Int, _ h: Int, _ n: Int,
                      _ shape: AttentionShape) {
    let d = shape.keySize, tp = shape.paddedTokens, hd = shape.outStride
    let kt = s.kt.base, vt = s.vt.base
    kt.update(repeating: 0, count: d * tp)
    vt.update(repeating: 0, count: d * tp)
    for j in 0..<n {
        let tok = qkv + (b * shape.tokens + j) * shape.qkvStride
        let k = tok + hd + h * d, v = tok + 2 * hd + h * d
        for c in 0..<d { kt[c * tp + j] = k[c]; vt[c * tp + j] = v[c] }
    }
}

/// out (B,T,HD), att (B,H,T,Tp) from qkv (B,T,3HD), keep (B,T,Tp), counts (B):
/// att[b,h,i,:] = softmax_j(q_i . k_j / sqrt(D) over kept j); out[b,i,h,:] = sum_j att * v_j
public func attentionForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
                             _ qkv: UnsafePointer<Float>, _ keep: UnsafePointer<Float>,
                             _ counts: UnsafePointer<Int32>, _ shape: AttentionShape,
                             _ scratch: AttentionScratch) {
    let t = shape.tokens, tp = shape.paddedTokens, d = shape.keySize, hd = shape.outStride
    let chunks = tp / 8
    let scale = 1 / Float(d).squareRoot()
    let kt = UnsafeRawPointer(scratch.kt.base), vt = UnsafeRawPointer(scratch.vt.base)
    let negInf = F8(repeating: -.infinity)
    for b in 0..<shape.batch {
        let n = Int(counts[b])
        for h in 0..<shape.heads {
            gatherKV(scratch, qkv, b, h, n, shape)
            for i in 0..<t {
                let prow = att + ((b * shape.heads + h) * t + i) * tp
                let o = out + (b * t + i) * hd + h * d
                if i >= n {
                    prow.update(repeating: 0, count: tp)
                    o.update(repeating: 0, count: d)
                    continue
                }
                let q = qkv + (b * t + i) * shape.qkvStride + h * d
                let keepRow = UnsafeRawPointer(keep + (b * t + i) * tp)
                let prowRaw = UnsafeMutableRawPointer(prow)
                var vmax = negInf
                for c in 0..<chunks {
                    var s = F8()
                    for e in 0..<d { s += q[e] * kt.loadUnaligned(fromByteOffset: (e * tp + 8 * c) * 4, as: F8.self) }
                    s *= scale
                    let kp = keepRow.loadUnaligned(fromByteOffset: 32 * c, as: F8.self)
                    s.replace(with: negInf, where: kp .== 0)
                    vmax = pointwiseMax(vmax, s)
                    prowRaw.storeBytes(of: s, toByteOffset: 32 * c, as: F8.self)
                }
                let m = vmax.max()
                var vsum = F8()
                for c in 0..<chunks {
                    let s = prowRaw.loadUnaligned(fromByteOffset: 32 * c, as: F8.self)
                    var e = exp8(s - m)
                    e.replace(with: 0, where: s .== negInf)
                    vsum += e
                    prowRaw.storeBytes(of: e, toByteOffset: 32 * c, as: F8.self)
                }
                let inv = 1 / vsum.sum()
                for c in 0..<chunks {
                    let p = prowRaw.loadUnaligned(fromByteOffset: 32 * c, as: F8.self) * inv
                    prowRaw.storeBytes(of: p, toByteOffset: 32 * c, as: F8.self)
                }
                for e in 0..<d {
                    var acc = F8()
                    for c in 0..<chunks {
                        acc += prowRaw.loadUnaligned(fromByteOffset: 32 * c, as: F8.self)
                            * vt.loadUnaligned(fromByteOffset: (e * tp + 8 * c) * 4, as: F8.self)
                    }
                    o[e] = acc.sum()
                }
            }
        }
    }
}

/// Backward of attentionForward, given dout (B,T,HD); accumulates into dqkv (B,T,3HD):
/// dP = dO V^T;  dS = P * (dP - rowsum(P * dP));  dQ += scale dS K;  dK += scale dS^T Q;  dV += P^T dO
public func attentionBackward(_ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                              _ qkv: UnsafePointer<Float>, _ att: UnsafePointer<Float>,
                              _ counts: UnsafePointer<Int32>, _ shape: AttentionShape,
                              _ scratch: AttentionScratch) {
    let t = shape.tokens, tp = shape.paddedTokens, d = shape.keySize, hd = shape.outStride
    let chunks = tp / 8
    let scale = 1 / Float(d).squareRoot()
    let kt = UnsafeRawPointer(scratch.kt.base), vt = UnsafeRawPointer(scratch.vt.base)
    let dkt = UnsafeMutableRawPointer(scratch.dkt.base), dvt = UnsafeMutableRawPointer(scratch.dvt.base)
    let ds = UnsafeMutableRawPointer(scratch.row.base)
    for b in 0..<shape.batch {
        let n = Int(counts[b])
        for h in 0..<shape.heads {
            gatherKV(scratch, qkv, b, h, n, shape)
            scratch.dkt.zero(); scratch.dvt.zero()
            for i in 0..<n {
                let prow = UnsafeRawPointer(att + ((b * shape.heads + h) * t + i) * tp)
                let g = dout + (b * t + i) * hd + h * d
                let q = qkv + (b * t + i) * shape.qkvStride + h * d
                let dq = dqkv + (b * t + i) * shape.qkvStride + h * d
                // dP = dO . V  and the row sum of P * dP
                var vdot = F8()
                for c in 0..<chunks {
                    var dp = F8()
                    for e in 0..<d { dp += g[e] * vt.loadUnaligned(fromByteOffset: (e * tp + 8 * c) * 4, as: F8.self) }
                    vdot += dp * prow.loadUnaligned(fromByteOffset: 32 * c, as: F8.self)
                    ds.storeBytes(of: dp, toByteOffset: 32 * c, as: F8.self)
                }
                let dot = vdot.sum()
                for c in 0..<chunks {
                    let p = prow.loadUnaligned(fromByteOffset: 32 * c, as: F8.self)
                    let dp = ds.load(fromByteOffset: 32 * c, as: F8.self)
                    ds.storeBytes(of: p * (dp - dot) * scale, toByteOffset: 32 * c, as: F8.self)
                }
                for e in 0..<d {
                    var acc = F8()
                    let qe = q[e], ge = g[e]
                    for c in 0..<chunks {
                        let off = (e * tp + 8 * c) * 4
                        let dsc = ds.load(fromByteOffset: 32 * c, as: F8.self)
                        acc += dsc * kt.loadUnaligned(fromByteOffset: off, as: F8.self)
                        dkt.storeBytes(of: dkt.loadUnaligned(fromByteOffset: off, as: F8.self) + dsc * qe,
                                       toByteOffset: off, as: F8.self)
                        dvt.storeBytes(of: dvt.loadUnaligned(fromByteOffset: off, as: F8.self)
                                       + prow.loadUnaligned(fromByteOffset: 32 * c, as: F8.self) * ge,
                                       toByteOffset: off, as: F8.self)
                    }
                    dq[e] += acc.sum()
                }
            }
            let dktp = scratch.dkt.base, dvtp = scratch.dvt.base
            for j in 0..<n {
                let tok = dqkv + (b * t + j) * shape.qkvStride
                let dk = tok + hd + h * d, dv = tok + 2 * hd + h * d
                for c in 0..<d { dk[c] += dktp[c * tp + j]; dv[c] += dvtp[c * tp + j] }
            }
        }
    }
}
