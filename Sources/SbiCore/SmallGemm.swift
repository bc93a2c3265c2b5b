// A register-blocked matrix product for the small per-head products inside attention,
// where a BLAS call per head would cost more in overhead than the arithmetic.

/// C (M,N) = A (M,K) @ B (K,N), or C += A @ B with `accumulate`.
/// A is read through strides: A[m,k] = a[m * aRow + k * aCol] (so transposed or strided views need no copy).
/// B and C are row-major with leading dimensions ldb, ldc. N must be a multiple of 8.
/// Blocks of 4 rows x 16 columns keep 8 AVX2 accumulators in registers across K; the last rows
/// (m mod 4) go in blocks of 2 x 16 and 1 x 32, so even they keep four independent FMA chains.
@inline(__always)
func smallGemm(_ c: UnsafeMutablePointer<Float>, _ ldc: Int,
               _ a: UnsafePointer<Float>, _ aRow: Int, _ aCol: Int,
               _ b: UnsafePointer<Float>, _ ldb: Int,
               _ m: Int, _ n: Int, _ k: Int, accumulate: Bool) {
    let braw = UnsafeRawPointer(b)
    let craw = UnsafeMutableRawPointer(c)
    @inline(__always) func loadB(_ kk: Int, _ col: Int) -> F8 {
        braw.loadUnaligned(fromByteOffset: (kk &* ldb &+ col) &* 4, as: F8.self)
    }
    @inline(__always) func store(_ v: F8, _ row: Int, _ col: Int) {
        let off = (row &* ldc &+ col) &* 4
        let out = accumulate ? v + craw.loadUnaligned(fromByteOffset: off, as: F8.self) : v
        craw.storeBytes(of: out, toByteOffset: off, as: F8.self)
    }
    var row = 0
    while row &+ 4 <= m {
        let a0 = a + row &* aRow, a1 = a0 + aRow, a2 = a1 + aRow, a3 = a2 + aRow
        var col = 0
        while col &+ 16 <= n {
            var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8(), c20 = F8(), c21 = F8(), c30 = F8(), c31 = F8()
            for kk in 0..<k {
                let b0 = loadB(kk, col), b1 = loadB(kk, col &+ 8)
                let o = kk &* aCol
                let x0 = F8(repeating: a0[o]), x1 = F8(repeating: a1[o]), x2 = F8(repeating: a2[o]), x3 = F8(repeating: a3[o])
                c00 = c00.addingProduct(x0, b0); c01 = c01.addingProduct(x0, b1)
                c10 = c10.addingProduct(x1, b0); c11 = c11.addingProduct(x1, b1)
                c20 = c20.addingProduct(x2, b0); c21 = c21.addingProduct(x2, b1)
                c30 = c30.addingProduct(x3, b0); c31 = c31.addingProduct(x3, b1)
            }
            store(c00, row, col); store(c01, row, col &+ 8)
            store(c10, row &+ 1, col); store(c11, row &+ 1, col &+ 8)
            store(c20, row &+ 2, col); store(c21, row &+ 2, col &+ 8)
            store(c30, row &+ 3, col); store(c31, row &+ 3, col &+ 8)
            col &+= 16
        }
        if col < n {  // one block of 8 columns left
            var c0 = F8(), c1 = F8(), c2 = F8(), c3 = F8()
            for kk in 0..<k {
                let b0 = loadB(kk, col)
                let o = kk &* aCol
                c0 = c0.addingProduct(F8(repeating: a0[o]), b0); c1 = c1.addingProduct(F8(repeating: a1[o]), b0)
                c2 = c2.addingProduct(F8(repeating: a2[o]), b0); c3 = c3.addingProduct(F8(repeating: a3[o]), b0)
            }
            store(c0, row, col); store(c1, row &+ 1, col); store(c2, row &+ 2, col); store(c3, row &+ 3, col)
        }
        row &+= 4
    }
    if row &+ 2 <= m {  // two rows left: blocks of 2 x 16 (four accumulators), then 2 x 8
        let a0 = a + row &* aRow, a1 = a0 + aRow
        var col = 0
        while col &+ 16 <= n {
            var c00 = F8(), c01 = F8(), c10 = F8(), c11 = F8()
            for kk in 0..<k {
                let b0 = loadB(kk, col), b1 = loadB(kk, col &+ 8), o = kk &* aCol
                let x0 = F8(repeating: a0[o]), x1 = F8(repeating: a1[o])
                c00 = c00.addingProduct(x0, b0); c01 = c01.addingProduct(x0, b1)
                c10 = c10.addingProduct(x1, b0); c11 = c11.addingProduct(x1, b1)
            }
            store(c00, row, col); store(c01, row, col &+ 8); store(c10, row &+ 1, col); store(c11, row &+ 1, col &+ 8)
            col &+= 16
        }
        if col < n {
            var c0 = F8(), c1 = F8()
            for kk in 0..<k {
                let b0 = loadB(kk, col), o = kk &* aCol
                c0 = c0.addingProduct(F8(repeating: a0[o]), b0); c1 = c1.addingProduct(F8(repeating: a1[o]), b0)
            }
            store(c0, row, col); store(c1, row &+ 1, col)
        }
        row &+= 2
    }
    if row < m {  // one row left: blocks of 1 x 32 (four accumulators), then 1 x 8
        let a0 = a + row &* aRow
        var col = 0
        while col &+ 32 <= n {
            var c0 = F8(), c1 = F8(), c2 = F8(), c3 = F8()
            for kk in 0..<k {
                let x = F8(repeating: a0[kk &* aCol])
                c0 = c0.addingProduct(x, loadB(kk, col)); c1 = c1.addingProduct(x, loadB(kk, col &+ 8))
                c2 = c2.addingProduct(x, loadB(kk, col &+ 16)); c3 = c3.addingProduct(x, loadB(kk, col &+ 24))
            }
            store(c0, row, col); store(c1, row, col &+ 8); store(c2, row, col &+ 16); store(c3, row, col &+ 24)
            col &+= 32
        }
        while col < n {
            var c0 = F8()
            for kk in 0..<k { c0 = c0.addingProduct(F8(repeating: a0[kk &* aCol]), loadB(kk, col)) }
            store(c0, row, col)
            col &+= 8
        }
    }
}
