// Vector-friendly math: an exponential the loop vectoriser can widen, and an 8-lane sum.

public typealias F8 = SIMD8<Float>

/// e^x (Cephes-style range reduction, degree-6 polynomial; relative error < 2e-7; inputs clamped to
/// [-87.3, 88.3], so the result is finite and positive), written so that LLVM's loop vectoriser turns
/// a loop of calls into 8-wide AVX2 code: plain arithmetic, selects and bit casts only (generic SIMD
/// conversions such as `rounded` compile to slow per-lane code). Every multiply-add is an explicit
/// fused one (`addingProduct`): Swift does not contract a * b + c by itself, and the separate
/// multiply and add made the exponential half again as long.
@inline(__always)
public func fastExp(_ x: Float) -> Float {
    var xc = x < -87.3 ? -87.3 : x
    xc = xc > 88.3 ? 88.3 : xc
    let magic: Float = 12_582_912
    let shifted = magic.addingProduct(xc, 1.442_695_04)
    let n = shifted - magic
    var r = xc.addingProduct(n, -0.693_359_375)
    r = r.addingProduct(n, 2.121_944_4e-4)
    var p: Float = 1.987_569_15e-4
    p = Float(1.398_199_95e-3).addingProduct(p, r)
    p = Float(8.333_451_9e-3).addingProduct(p, r)
    p = Float(4.166_579_59e-2).addingProduct(p, r)
    p = Float(1.666_666_55e-1).addingProduct(p, r)
    p = Float(5.000_000_12e-1).addingProduct(p, r)
    let y = r.addingProduct(p, r * r) + 1
    let nInt = Int32(bitPattern: shifted.bitPattern) &- 0x4B40_0000
    return y * Float(bitPattern: UInt32(bitPattern: (nInt &+ 127) &<< 23))
}

/// Sum of the lanes.
@inline(__always)
public func horizontalSum(_ v: F8) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    return b[0] + b[1]
}

/// Linear-interpolation quantile of sorted values (type 7): the reports' quantiles and the calibration pass's intervals.
public func quantile(_ sorted: [Double], _ p: Double) -> Double {
    guard sorted.count > 1 else { return sorted.first ?? .nan }
    let h = p * Double(sorted.count - 1)
    let k = Int(h), f = h - Double(k)
    return k + 1 < sorted.count ? sorted[k] + f * (sorted[k + 1] - sorted[k]) : sorted[k]
}
