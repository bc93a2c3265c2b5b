// Softmax numerators over key-major scores, 16 queries at a time, and the exponential they use.
// Same bits as SbiCore's `softmaxNumerators`, `maskedSoftmaxNumerators` and `fastExp`.

/// SbiCore's `fastExp` on 16 lanes: the same clamps, range reduction and degree-6 polynomial, in the
/// same fused multiply-adds, so every lane is the scalar function's bits.
@inline(__always)
func fastExp16(_ x: V16) -> V16 {
    var xc = x.replacing(with: -87.3, where: x .< -87.3)
    xc = xc.replacing(with: 88.3, where: xc .> 88.3)
    let magic = V16(repeating: 12_582_912)
    let shifted = magic.addingProduct(xc, V16(repeating: 1.442_695_04))
    let n = shifted - magic
    var r = xc.addingProduct(n, V16(repeating: -0.693_359_375))
    r = r.addingProduct(n, V16(repeating: 2.121_944_4e-4))
    var p = V16(repeating: 1.987_569_15e-4)
    p = V16(repeating: 1.398_199_95e-3).addingProduct(p, r)
    p = V16(repeating: 8.333_451_9e-3).addingProduct(p, r)
    p = V16(repeating: 4.166_579_59e-2).addingProduct(p, r)
    p = V16(repeating: 1.666_666_55e-1).addingProduct(p, r)
    p = V16(repeating: 5.000_000_12e-1).addingProduct(p, r)
    let y = r.addingProduct(p, r * r) + 1
    let exponent = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
    return y * unsafeBitCast((exponent &+ 127) &<< 23, to: V16.self)
}

/// The same on 8 lanes (the last block of a padded row): the 16-lane function on both halves
/// (each lane is computed alone, so the bits are the same).
@inline(__always)
func fastExp8(_ x: V8) -> V8 {
    fastExp16(V16(lowHalf: x, highHalf: x)).lowHalf
}

/// e^x of n floats (n a multiple of 8), in place; for tests of the exponential against SbiCore's.
public func fastExpInPlace512(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i &+ 16 <= n { store16(fastExp16(load16(x + i)), x + i); i &+= 16 }
    while i &+ 8 <= n { store8(fastExp8(load8(x + i)), x + i); i &+= 8 }
}

/// Scores p (n,Tp) key-major -> exp(p - column max) in place; mx (Tp) the column maxima, sum (Tp)
/// += the column sums, over the entries where keep (n,Tp) is nonzero (nil: every entry); masked
/// entries become 0. mx must start at -1e30 and sum at 0; Tp is a multiple of 8.
/// Columns are taken 16 at a time with their maximum and sum in registers; each column's sum still
/// adds its rows in order, so the bits are those of the row-by-row 8-wide kernel.
public func softmaxNumerators512(_ p: UnsafeMutablePointer<Float>, _ mx: UnsafeMutablePointer<Float>,
                                 _ sum: UnsafeMutablePointer<Float>, _ keep: UnsafePointer<Float>?,
                                 rows n: Int, _ tp: Int) {
    var i = 0
    while i &+ 16 <= tp {
        softmaxColumns16(p + i, mx + i, sum + i, keep.map { $0 + i }, n, tp)
        i &+= 16
    }
    if i < tp { softmaxColumns8(p + i, mx + i, sum + i, keep.map { $0 + i }, n, tp) }
}

@inline(__always)
func softmaxColumns16(_ p: UnsafeMutablePointer<Float>, _ mx: UnsafeMutablePointer<Float>,
                      _ sum: UnsafeMutablePointer<Float>, _ keep: UnsafePointer<Float>?, _ n: Int, _ tp: Int) {
    let floor = V16(repeating: -1e30)
    var m = load16(mx)
    for j in 0..<n {
        var v = load16(p + j &* tp)
        if let keep { v = floor.replacing(with: v, where: load16(keep + j &* tp) .!= 0) }
        m = m.replacing(with: v, where: v .> m)
    }
    store16(m, mx)
    var s = load16(sum)
    for j in 0..<n {
        let row = p + j &* tp
        var e = fastExp16(load16(row) - m)
        if let keep { e = V16().replacing(with: e, where: load16(keep + j &* tp) .!= 0) }
        store16(e, row)
        s += e
    }
    store16(s, sum)
}

@inline(__always)
func softmaxColumns8(_ p: UnsafeMutablePointer<Float>, _ mx: UnsafeMutablePointer<Float>,
                     _ sum: UnsafeMutablePointer<Float>, _ keep: UnsafePointer<Float>?, _ n: Int, _ tp: Int) {
    let floor = V8(repeating: -1e30)
    var m = load8(mx)
    for j in 0..<n {
        var v = load8(p + j &* tp)
        if let keep { v = floor.replacing(with: v, where: load8(keep + j &* tp) .!= 0) }
        m = m.replacing(with: v, where: v .> m)
    }
    store8(m, mx)
    var s = load8(sum)
    for j in 0..<n {
        let row = p + j &* tp
        var e = fastExp8(load8(row) - m)
        if let keep { e = V8().replacing(with: e, where: load8(keep + j &* tp) .!= 0) }
        store8(e, row)
        s += e
    }
    store8(s, sum)
}

/// The softmax backward over key-major probabilities p (n,Tp) and their gradients dp (n,Tp), 16
/// queries at a time: dot[i] = sum_j p[j,i] dp[j,i] (fused multiply-adds from 0, rows in order),
/// then dp[j,i] = p[j,i] (dp[j,i] - dot[i]) scale in place. SbiCore's loops in `attentionBackward`,
/// lane for lane, with each column's running sum in a register instead of memory.
public func softmaxBackward512(_ p: UnsafePointer<Float>, _ dp: UnsafeMutablePointer<Float>, _ dot: UnsafeMutablePointer<Float>,
                               rows n: Int, _ tp: Int, scale: Float) {
    var i = 0
    while i &+ 16 <= tp {
        var acc = V16()
        for j in 0..<n { acc = acc.addingProduct(load16(p + (j &* tp &+ i)), load16(dp + (j &* tp &+ i))) }
        store16(acc, dot + i)
        for j in 0..<n {
            let o = j &* tp &+ i
            store16(load16(p + o) * (load16(dp + o) - acc) * scale, dp + o)
        }
        i &+= 16
    }
    if i < tp {
        var acc = V8()
        for j in 0..<n { acc = acc.addingProduct(load8(p + (j &* tp &+ i)), load8(dp + (j &* tp &+ i))) }
        store8(acc, dot + i)
        for j in 0..<n {
            let o = j &* tp &+ i
            store8(load8(p + o) * (load8(dp + o) - acc) * scale, dp + o)
        }
    }
}
