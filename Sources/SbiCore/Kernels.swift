// Layer kernels, each a forward and a backward function (llm.c style):
// outputs first, sizes last; backward ACCUMULATES (+=) into every gradient it is given,
// including the gradient with respect to the layer input.
import CBLAS
import SbiKernelsAVX512

public enum BLAS {
    /// Pins OpenBLAS to one thread: the network's matrices are skinny, so parallelism
    /// pays off across the batch (see `BatchParallel`), not inside one product.
    public static func useSingleThread() { openblas_set_num_threads(1) }

    /// OpenBLAS's build configuration, e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64".
    public static var libraryVersion: String {
        let text = String(cString: openblas_get_config())
        return String(text.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }

    /// The CPU kernels OpenBLAS chose when it loaded, e.g. "Haswell" or "SkylakeX" (OPENBLAS_CORETYPE
    /// overrides its choice).
    public static var coreName: String { String(cString: openblas_get_corename()) }

    /// C (M,N) = alpha * A (M,K) @ B (K,N) + beta * C, row-major, optional transposes.
    @inline(__always)
    public static func gemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
                            _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int,
                            _ b: UnsafePointer<Float>, _ ldb: Int,
                            _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

// MARK: Linear

/// out (R,OC) = inp (R,C) @ weight (C,OC) + bias (OC)
public func linearForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                          _ rows: Int, _ inDim: Int, _ outDim: Int) {
    if let bias {  // plain loops: a memmove call per short row cost more than the copy
        for r in 0..<rows { let o = out + r &* outDim; for j in 0..<outDim { o[j] = bias[j] } }
    }
    BLAS.gemm(false, false, rows, outDim, inDim, 1, inp, inDim, weight, outDim, bias == nil ? 0 : 1, out, outDim)
}

/// Backward of out = inp @ W + b, given dout (R,OC):
/// dinp (R,C) += dout @ W^T;  dweight (C,OC) += inp^T @ dout;  dbias (OC) += sum_r dout[r]
/// With `overwriteInput`, dinp = dout @ W^T instead (for scratch buffers: saves zeroing them first).
public func linearBackward(_ dinp: UnsafeMutablePointer<Float>?, _ dweight: UnsafeMutablePointer<Float>?,
                           _ dbias: UnsafeMutablePointer<Float>?, _ dout: UnsafePointer<Float>,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           _ rows: Int, _ inDim: Int, _ outDim: Int, overwriteInput: Bool = false) {
    if let dinp {
        BLAS.gemm(false, true, rows, inDim, outDim, 1, dout, outDim, weight, outDim, overwriteInput ? 0 : 1, dinp, inDim)
    }
    if let dweight { BLAS.gemm(true, false, inDim, outDim, rows, 1, inp, inDim, dout, outDim, 1, dweight, outDim) }
    if let dbias {
        for r in 0..<rows {
            let row = dout + r * outDim
            for o in 0..<outDim { dbias[o] += row[o] }
        }
    }
}

// MARK: LayerNorm

/// out (R,C) = (inp - mean) * rstd * weight + bias, per row; saves mean (R) and rstd (R). eps = 1e-5.
public func layerNormForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                             _ rstd: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                             _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                             _ rows: Int, _ dim: Int) {
    // the method's width, 50, as a constant: the row loops unroll (the same arithmetic, so the same bits)
    if dim == 50 { return layerNormForwardRows(out, mean, rstd, inp, weight, bias, rows, 50) }
    layerNormForwardRows(out, mean, rstd, inp, weight, bias, rows, dim)
}

/// `layerNormForward` for a dimension the caller may pass as a constant.
@inline(__always)
func layerNormForwardRows(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                          _ rstd: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                          _ rows: Int, _ dim: Int) {
    let invDim = 1 / Float(dim)
    for r in 0..<rows {
        let x = inp + r &* dim
        let m = rowSum(x, dim) * invDim
        var v: Float = 0
        let o = out + r &* dim
        for c in 0..<dim { o[c] = x[c] - m }
        v = rowDot(o, o, dim) * invDim
        let s = 1 / (v + 1e-5).squareRoot()
        for c in 0..<dim { o[c] = bias[c].addingProduct(o[c] * s, weight[c]) }
        mean[r] = m
        rstd[r] = s
    }
}

/// Backward of layerNormForward, given dout (R,C):
/// dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * weight;
/// dweight += sum_r dout * norm;  dbias += sum_r dout
public func layerNormBackward(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>?,
                              _ dbias: UnsafeMutablePointer<Float>?, _ dout: UnsafePointer<Float>,
                              _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                              _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                              _ rows: Int, _ dim: Int) {
    if dim == 50 { return layerNormBackwardRows(dinp, dweight, dbias, dout, inp, weight, mean, rstd, rows, 50) }
    layerNormBackwardRows(dinp, dweight, dbias, dout, inp, weight, mean, rstd, rows, dim)
}

/// `layerNormBackward` for a dimension the caller may pass as a constant (see `layerNormForward`).
@inline(__always)
func layerNormBackwardRows(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>?,
                           _ dbias: UnsafeMutablePointer<Float>?, _ dout: UnsafePointer<Float>,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                           _ rows: Int, _ dim: Int) {
    let invDim = 1 / Float(dim)
    // per-row scratch for norm and dnorm (dim <= 1024 covers every config)
    precondition(dim <= 1024)
    return withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * dim) { buf in
        let norm = buf.baseAddress!, dnorm = norm + dim
        for r in 0..<rows {
            let x = inp + r &* dim, g = dout + r &* dim, dx = dinp + r &* dim
            let m = mean[r], s = rstd[r]
            for c in 0..<dim { norm[c] = (x[c] - m) * s; dnorm[c] = g[c] * weight[c] }
            let meanDnorm = rowSum(dnorm, dim) * invDim
            let meanDnormNorm = rowDot(dnorm, norm, dim) * invDim
            for c in 0..<dim { dx[c] += s * (dnorm[c] - meanDnorm - norm[c] * meanDnormNorm) }
            if let dweight { for c in 0..<dim { dweight[c] = dweight[c].addingProduct(g[c], norm[c]) } }
            if let dbias { for c in 0..<dim { dbias[c] += g[c] } }
        }
    }
}

/// sum_c x[c], with eight partial sums.
@inline(__always)
func rowSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F8()
    var c = 0
    while c + 8 <= n { acc += UnsafeRawPointer(x + c).loadUnaligned(as: F8.self); c += 8 }
    var s = horizontalSum(acc)
    while c < n { s += x[c]; c += 1 }
    return s
}

/// sum_c x[c] y[c], with eight partial sums.
@inline(__always)
func rowDot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = F8()
    var c = 0
    while c + 8 <= n {
        acc += UnsafeRawPointer(x + c).loadUnaligned(as: F8.self) * UnsafeRawPointer(y + c).loadUnaligned(as: F8.self)
        c += 8
    }
    var s = horizontalSum(acc)
    while c < n { s += x[c] * y[c]; c += 1 }
    return s
}

// MARK: GELU (tanh approximation)

private let geluScale: Float = 0.797_884_56  // sqrt(2/pi)

/// out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
/// (one exponential and one division per element; scalar loops the compiler vectorises)
public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
    if KernelPath.current == .avx512 { return geluForward512(out, inp, count, scale: geluScale) }
    for i in 0..<count {
        let x = inp[i]
        let u2 = 2 * geluScale * x.addingProduct(0.044715 * x * x, x)
        out[i] = x / (1 + fastExp(-u2))
    }
}

/// dinp (N) += dout * d/dx gelu(x) = dout * (s + x s (1 - s) 2u'),  s = sigmoid(2u)
/// (with `overwrite`: dinp = ..., for scratch buffers)
public func geluBackward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                         _ dout: UnsafePointer<Float>, _ count: Int, overwrite: Bool = false) {
    if KernelPath.current == .avx512 { return geluBackward512(dinp, inp, dout, count, scale: geluScale, overwrite: overwrite) }
    if overwrite { dinp.update(repeating: 0, count: count) }
    for i in 0..<count {
        let x = inp[i]
        let u2 = 2 * geluScale * x.addingProduct(0.044715 * x * x, x)
        let s = 1 / (1 + fastExp(-u2))
        let du2 = 2 * geluScale * (1 + 3 * 0.044715 * x * x)
        dinp[i] += dout[i] * (s + x * s * (1 - s) * du2)
    }
}

// MARK: ReLU

/// out (N) = max(x, 0)
public func reluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int) {
    for i in 0..<count { out[i] = inp[i] > 0 ? inp[i] : 0 }
}

/// dinp (N) += dout * (x > 0)
public func reluBackward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                         _ dout: UnsafePointer<Float>, _ count: Int) {
    for i in 0..<count { dinp[i] += inp[i] > 0 ? dout[i] : 0 }
}

// MARK: Residual

/// out (N) = a + b
public func residualForward(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>,
                            _ b: UnsafePointer<Float>, _ count: Int) {
    for i in 0..<count { out[i] = a[i] + b[i] }
}

/// da (N) += dout; db (N) += dout
public func residualBackward(_ da: UnsafeMutablePointer<Float>, _ db: UnsafeMutablePointer<Float>,
                             _ dout: UnsafePointer<Float>, _ count: Int) {
    for i in 0..<count { da[i] += dout[i]; db[i] += dout[i] }
}

/// out (B*T, W) += mid (B*T, W) + ctx (B, W), the context row of each example added to its T rows.
/// Eight lanes at a time with wrapping index arithmetic (the plain loop ran scalar with overflow
/// checks); every element gets the same two float additions in the same order, so the same bits.
public func addResidualAndContext(_ out: UnsafeMutablePointer<Float>, _ mid: UnsafePointer<Float>,
                                  _ ctx: UnsafePointer<Float>, _ batch: Int, _ tokens: Int, _ width: Int) {
    let vectorEnd = width & ~7
    for e in 0..<batch {
        let c = ctx + e &* width
        for tk in 0..<tokens {
            let row = (e &* tokens &+ tk) &* width
            let o = out + row, m = mid + row
            var k = 0
            while k < vectorEnd {
                let sum = load8(m + k) + load8(c + k)
                store8(load8(o + k) + sum, o + k)
                k &+= 8
            }
            while k < width { o[k] += m[k] + c[k]; k &+= 1 }
        }
    }
}

/// out (B, W) += the sum over each example's T rows of inp (B*T, W), rows added in order (the same
/// bits as the scalar loop), eight lanes at a time.
public func addRowSumsPerExample(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                                 _ batch: Int, _ tokens: Int, _ width: Int) {
    let vectorEnd = width & ~7
    for e in 0..<batch {
        let d = out + e &* width
        for tk in 0..<tokens {
            let r = inp + (e &* tokens &+ tk) &* width
            var k = 0
            while k < vectorEnd { store8(load8(d + k) + load8(r + k), d + k); k &+= 8 }
            while k < width { d[k] += r[k]; k &+= 1 }
        }
    }
}

@inline(__always) private func load8(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
}
@inline(__always) private func load8(_ p: UnsafeMutablePointer<Float>) -> SIMD8<Float> { load8(UnsafePointer(p)) }
@inline(__always) private func store8(_ v: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD8<Float>.self)
}

// MARK: Gaussian Fourier features (frozen frequencies)

/// out (R, 2F) = [sin(2 pi w_f x_r) | cos(2 pi w_f x_r)] for inp x (R) and frequencies w (F)
public func fourierForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                           _ freqs: UnsafePointer<Float>, _ rows: Int, _ numFreqs: Int) {
    for r in 0..<rows {
        let o = out + r * 2 * numFreqs
        let x = inp[r]
        for f in 0..<numFreqs {
            let a = 2 * Float.pi * freqs[f] * x
            o[f] = _sinf(a)
            o[numFreqs + f] = _cosf(a)
        }
    }
}

/// dinp (R) += sum_f dout_sin * 2 pi w cos(.) - dout_cos * 2 pi w sin(.)  (frequencies are frozen)
public func fourierBackward(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                            _ inp: UnsafePointer<Float>, _ freqs: UnsafePointer<Float>,
                            _ rows: Int, _ numFreqs: Int) {
    for r in 0..<rows {
        let g = dout + r * 2 * numFreqs
        let x = inp[r]
        var acc: Float = 0
        for f in 0..<numFreqs {
            let w = 2 * Float.pi * freqs[f]
            let a = w * x
            acc += g[f] * w * _cosf(a) - g[numFreqs + f] * w * _sinf(a)
        }
        dinp[r] += acc
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _sinf(_ x: Float) -> Float { Glibc.sinf(x) }
@inline(__always) func _cosf(_ x: Float) -> Float { Glibc.cosf(x) }
@inline(__always) func _expf(_ x: Float) -> Float { Glibc.expf(x) }
#else
import Darwin
@inline(__always) func _sinf(_ x: Float) -> Float { Darwin.sinf(x) }
@inline(__always) func _cosf(_ x: Float) -> Float { Darwin.cosf(x) }
@inline(__always) func _expf(_ x: Float) -> Float { Darwin.expf(x) }
#endif
