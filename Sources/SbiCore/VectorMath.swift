// Vectorised transcendental functions on SIMD8<Float> (one AVX2 register).

public typealias F8 = SIMD8<Float>

/// e^x for 8 lanes (Cephes-style range reduction, degree-6 polynomial; relative error < 2e-7).
/// Inputs are clamped to [-87.3, 88.7], so the result is always finite and positive.
@inline(__always)
public func exp8(_ x: F8) -> F8 {
    let xc = x.clamped(lowerBound: F8(repeating: -87.3), upperBound: F8(repeating: 88.7))
    let n = (xc * 1.442_695_04).rounded(.toNearestOrEven)
    var r = xc - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var p = F8(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    let y = p * (r * r) + r + 1
    let bits = (SIMD8<Int32>(n, rounding: .towardZero) &+ 127) &<< 23
    return y * unsafeBitCast(bits, to: F8.self)
}

/// tanh for 8 lanes via 1 - 2 / (e^{2x} + 1).
@inline(__always)
public func tanh8(_ x: F8) -> F8 {
    1 - 2 / (exp8(2 * x) + 1)
}

/// Loads up to 8 floats (zero-filled past `count`).
@inline(__always)
func load8(_ p: UnsafePointer<Float>, _ count: Int) -> F8 {
    if count >= 8 { return UnsafeRawPointer(p).loadUnaligned(as: F8.self) }
    var v = F8()
    for k in 0..<count { v[k] = p[k] }
    return v
}

/// Stores the first `count` (up to 8) lanes.
@inline(__always)
func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
    if count >= 8 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self); return }
    for k in 0..<count { p[k] = v[k] }
}
