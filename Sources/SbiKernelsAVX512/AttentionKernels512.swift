// Attention's inner kernels in 16-wide vectors, for CPUs with AVX-512 (F, CD, BW, DQ, VL).
//
// This module is compiled for skylake-avx512, so nothing in it may run on a CPU without AVX-512:
// SbiCore calls it only after `KernelPath` found those instructions. It holds plain functions only
// (no globals, no types), so loading it executes none of its code.
//
// Every kernel does the arithmetic of its 8-wide twin in SbiCore lane for lane: the same products
// in the same order, fused where they are fused there. So either path gives the same bits, and a
// model samples alike on any machine (tested in SbiCoreTests/KernelPathTests).
// LLVM's tuning for skylake-avx512 keeps auto-vectorised loops 256 bits wide, so the hot loops are
// written with explicit SIMD16 vectors.

typealias V16 = SIMD16<Float>
typealias V8 = SIMD8<Float>

@inline(__always) func load16(_ p: UnsafePointer<Float>) -> V16 {
    UnsafeRawPointer(p).loadUnaligned(as: V16.self)
}
@inline(__always) func load8(_ p: UnsafePointer<Float>) -> V8 {
    UnsafeRawPointer(p).loadUnaligned(as: V8.self)
}
@inline(__always) func store16(_ v: V16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V16.self)
}
@inline(__always) func store8(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self)
}

/// C (M,N) = A (M,K) @ B (K,N), or C += A @ B with `accumulate`: SbiCore's `smallGemm` with 16-wide
/// blocks. A[m,k] = a[m * aRow + k * aCol]; B, C row-major with leading dimensions ldb, ldc; N a
/// multiple of 8. Each C entry is sum_k A[m,k] B[k,n] accumulated by fused multiply-adds from 0 in
/// k order (then + C), as in the 8-wide kernel.
public func smallGemm512(_ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                         _ a: UnsafePointer<Float>, _ aRow: Int, _ aCol: Int,
                         _ b: UnsafePointer<Float>, _ ldb: Int,
                         _ m: Int, _ n: Int, _ k: Int, accumulate: Bool) {
    var row = 0
    while row &+ 5 <= m {
        gemmRows5(c, ldc, a + row &* aRow, aRow, aCol, b, ldb, row, n, k, accumulate)
        row &+= 5
    }
    if row &+ 4 <= m {
        gemmRows4(c, ldc, a + row &* aRow, aRow, aCol, b, ldb, row, n, k, accumulate)
        row &+= 4
    }
    while row < m {
        gemmRow1(c, ldc, a + row &* aRow, aCol, b, ldb, row, n, k, accumulate)
        row &+= 1
    }
}

/// Rows row..<row+5 of C: blocks of 5 x 32 (ten accumulators, 7 loads per 10 multiply-adds), then
/// 5 x 16, then 5 x 8. Five rows: attention's key size 10 is two such blocks.
@inline(__always)
func gemmRows5(_ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ a0: UnsafePointer<Float>, _ aRow: Int, _ aCol: Int,
               _ b: UnsafePointer<Float>, _ ldb: Int, _ row: Int, _ n: Int, _ k: Int, _ accumulate: Bool) {
    let a1 = a0 + aRow, a2 = a1 + aRow, a3 = a2 + aRow, a4 = a3 + aRow
    @inline(__always) func put16(_ v: V16, _ r: Int, _ col: Int) {
        let p = c + ((row &+ r) &* ldc &+ col)
        store16(accumulate ? v + load16(p) : v, p)
    }
    var col = 0
    while col &+ 32 <= n {
        var c00 = V16(), c01 = V16(), c10 = V16(), c11 = V16(), c20 = V16(), c21 = V16()
        var c30 = V16(), c31 = V16(), c40 = V16(), c41 = V16()
        for kk in 0..<k {
            let bp = b + (kk &* ldb &+ col), b0 = load16(bp), b1 = load16(bp + 16), o = kk &* aCol
            let x0 = V16(repeating: a0[o]), x1 = V16(repeating: a1[o]), x2 = V16(repeating: a2[o])
            let x3 = V16(repeating: a3[o]), x4 = V16(repeating: a4[o])
            c00 = c00.addingProduct(x0, b0); c01 = c01.addingProduct(x0, b1)
            c10 = c10.addingProduct(x1, b0); c11 = c11.addingProduct(x1, b1)
            c20 = c20.addingProduct(x2, b0); c21 = c21.addingProduct(x2, b1)
            c30 = c30.addingProduct(x3, b0); c31 = c31.addingProduct(x3, b1)
            c40 = c40.addingProduct(x4, b0); c41 = c41.addingProduct(x4, b1)
        }
        put16(c00, 0, col); put16(c01, 0, col &+ 16); put16(c10, 1, col); put16(c11, 1, col &+ 16)
        put16(c20, 2, col); put16(c21, 2, col &+ 16); put16(c30, 3, col); put16(c31, 3, col &+ 16)
        put16(c40, 4, col); put16(c41, 4, col &+ 16)
        col &+= 32
    }
    if col &+ 16 <= n {
        var c0 = V16(), c1 = V16(), c2 = V16(), c3 = V16(), c4 = V16()
        for kk in 0..<k {
            let b0 = load16(b + (kk &* ldb &+ col)), o = kk &* aCol
            c0 = c0.addingProduct(V16(repeating: a0[o]), b0); c1 = c1.addingProduct(V16(repeating: a1[o]), b0)
            c2 = c2.addingProduct(V16(repeating: a2[o]), b0); c3 = c3.addingProduct(V16(repeating: a3[o]), b0)
            c4 = c4.addingProduct(V16(repeating: a4[o]), b0)
        }
        put16(c0, 0, col); put16(c1, 1, col); put16(c2, 2, col); put16(c3, 3, col); put16(c4, 4, col)
        col &+= 16
    }
    if col < n {  // 8 columns left
        var c0 = V8(), c1 = V8(), c2 = V8(), c3 = V8(), c4 = V8()
        for kk in 0..<k {
            let b0 = load8(b + (kk &* ldb &+ col)), o = kk &* aCol
            c0 = c0.addingProduct(V8(repeating: a0[o]), b0); c1 = c1.addingProduct(V8(repeating: a1[o]), b0)
            c2 = c2.addingProduct(V8(repeating: a2[o]), b0); c3 = c3.addingProduct(V8(repeating: a3[o]), b0)
            c4 = c4.addingProduct(V8(repeating: a4[o]), b0)
        }
        @inline(__always) func put8(_ v: V8, _ r: Int) {
            let p = c + ((row &+ r) &* ldc &+ col)
            store8(accumulate ? v + load8(p) : v, p)
        }
        put8(c0, 0); put8(c1, 1); put8(c2, 2); put8(c3, 3); put8(c4, 4)
    }
}

/// Rows row..<row+4 of C: blocks of 4 x 32 (eight accumulators), then 4 x 16, then 4 x 8.
@inline(__always)
func gemmRows4(_ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ a0: UnsafePointer<Float>, _ aRow: Int, _ aCol: Int,
               _ b: UnsafePointer<Float>, _ ldb: Int, _ row: Int, _ n: Int, _ k: Int, _ accumulate: Bool) {
    let a1 = a0 + aRow, a2 = a1 + aRow, a3 = a2 + aRow
    @inline(__always) func put16(_ v: V16, _ r: Int, _ col: Int) {
        let p = c + ((row &+ r) &* ldc &+ col)
        store16(accumulate ? v + load16(p) : v, p)
    }
    var col = 0
    while col &+ 32 <= n {
        var c00 = V16(), c01 = V16(), c10 = V16(), c11 = V16(), c20 = V16(), c21 = V16(), c30 = V16(), c31 = V16()
        for kk in 0..<k {
            let bp = b + (kk &* ldb &+ col), b0 = load16(bp), b1 = load16(bp + 16), o = kk &* aCol
            let x0 = V16(repeating: a0[o]), x1 = V16(repeating: a1[o]), x2 = V16(repeating: a2[o]), x3 = V16(repeating: a3[o])
            c00 = c00.addingProduct(x0, b0); c01 = c01.addingProduct(x0, b1)
            c10 = c10.addingProduct(x1, b0); c11 = c11.addingProduct(x1, b1)
            c20 = c20.addingProduct(x2, b0); c21 = c21.addingProduct(x2, b1)
            c30 = c30.addingProduct(x3, b0); c31 = c31.addingProduct(x3, b1)
        }
        put16(c00, 0, col); put16(c01, 0, col &+ 16); put16(c10, 1, col); put16(c11, 1, col &+ 16)
        put16(c20, 2, col); put16(c21, 2, col &+ 16); put16(c30, 3, col); put16(c31, 3, col &+ 16)
        col &+= 32
    }
    if col &+ 16 <= n {
        var c0 = V16(), c1 = V16(), c2 = V16(), c3 = V16()
        for kk in 0..<k {
            let b0 = load16(b + (kk &* ldb &+ col)), o = kk &* aCol
            c0 = c0.addingProduct(V16(repeating: a0[o]), b0); c1 = c1.addingProduct(V16(repeating: a1[o]), b0)
            c2 = c2.addingProduct(V16(repeating: a2[o]), b0); c3 = c3.addingProduct(V16(repeating: a3[o]), b0)
        }
        put16(c0, 0, col); put16(c1, 1, col); put16(c2, 2, col); put16(c3, 3, col)
        col &+= 16
    }
    if col < n {  // 8 columns left
        var c0 = V8(), c1 = V8(), c2 = V8(), c3 = V8()
        for kk in 0..<k {
            let b0 = load8(b + (kk &* ldb &+ col)), o = kk &* aCol
            c0 = c0.addingProduct(V8(repeating: a0[o]), b0); c1 = c1.addingProduct(V8(repeating: a1[o]), b0)
            c2 = c2.addingProduct(V8(repeating: a2[o]), b0); c3 = c3.addingProduct(V8(repeating: a3[o]), b0)
        }
        @inline(__always) func put8(_ v: V8, _ r: Int) {
            let p = c + ((row &+ r) &* ldc &+ col)
            store8(accumulate ? v + load8(p) : v, p)
        }
        put8(c0, 0); put8(c1, 1); put8(c2, 2); put8(c3, 3)
    }
}

/// One row of C: blocks of 1 x 64 (four accumulators), then 16, then 8 columns.
@inline(__always)
func gemmRow1(_ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ a0: UnsafePointer<Float>, _ aCol: Int,
              _ b: UnsafePointer<Float>, _ ldb: Int, _ row: Int, _ n: Int, _ k: Int, _ accumulate: Bool) {
    let out = c + row &* ldc
    @inline(__always) func put16(_ v: V16, _ col: Int) { store16(accumulate ? v + load16(out + col) : v, out + col) }
    var col = 0
    while col &+ 64 <= n {
        var c0 = V16(), c1 = V16(), c2 = V16(), c3 = V16()
        for kk in 0..<k {
            let x = V16(repeating: a0[kk &* aCol]), bp = b + (kk &* ldb &+ col)
            c0 = c0.addingProduct(x, load16(bp)); c1 = c1.addingProduct(x, load16(bp + 16))
            c2 = c2.addingProduct(x, load16(bp + 32)); c3 = c3.addingProduct(x, load16(bp + 48))
        }
        put16(c0, col); put16(c1, col &+ 16); put16(c2, col &+ 32); put16(c3, col &+ 48)
        col &+= 64
    }
    while col &+ 16 <= n {
        var c0 = V16()
        for kk in 0..<k { c0 = c0.addingProduct(V16(repeating: a0[kk &* aCol]), load16(b + (kk &* ldb &+ col))) }
        put16(c0, col)
        col &+= 16
    }
    if col < n {
        var c0 = V8()
        for kk in 0..<k { c0 = c0.addingProduct(V8(repeating: a0[kk &* aCol]), load8(b + (kk &* ldb &+ col))) }
        store8(accumulate ? c0 + load8(out + col) : c0, out + col)
    }
}
