// Vector-friendly math: an exponential the loop vectoriser can widen, and an 8-lane sum.

public typealias F8 = SIMD8<Float>

/// e^x (Cephes-style range reduction, degree-6 polynomial; relative error < 2e-7; inputs clamped to
/// [-87.3, 88.3], so the result is finite and positive), written so that LLVM's loop vectoriser turns
/// a loop of calls into 8-wide AVX2 code: plain arithmetic, selects and bit casts only (generic SIMD
/// conversions such as `rounded` compile to slow per-lane code).
@inline(__always)
public func fastExp(_ x: Float) -> Float {
    var xc = x < -87.3 ? -87.3 : x
    xc = xc > 88.3 ? 88.3 : xc
    let shifted = xc * 1.442_695_04 + 12_582_912
    let n = shifted - 12_582_912
    var r = xc - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    let y = p * (r * r) + r + 1
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
