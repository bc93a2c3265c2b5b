// Vectorised transcendental functions on SIMD8<Float> (one AVX2 register).

public typealias F8 = SIMD8<Float>

/// e^x for 8 lanes (Cephes-style range reduction, degree-6 polynomial; relative error < 2e-7).
/// Inputs are clamped to [-87.3, 88.7], so the result is always finite and positive.
/// Only plain vector arithmetic, compares and bit casts: generic SIMD conversions
/// (`rounded`, `SIMD8<Int32>(_:rounding:)`) compile to slow per-lane code.
@inline(__always)
public func exp8(_ x: F8) -> F8 {
    let lo = F8(repeating: -87.3), hi = F8(repeating: 88.7)
    var xc = x.replacing(with: lo, where: x .< lo)
    xc = xc.replacing(with: hi, where: xc .> hi)
    // n = round(x / ln 2) by the 1.5 * 2^23 trick: adding it leaves the integer in the low mantissa bits
    let magic = F8(repeating: 12_582_912)
    let shifted = xc * 1.442_695_04 + magic
    let n = shifted - magic
    var r = xc - n * 0.693_359_375
    r = r + n * 2.121_944_4e-4
    var p = F8(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    let y = p * (r * r) + r + 1
    // 2^n: the integer n sits in the low bits of `shifted` (bit pattern 0x4B400000 + n)
    let nInt = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let pow2n = unsafeBitCast((nInt &+ 127) &<< 23, to: F8.self)
    return y * pow2n
}

/// Scalar e^x with the same algorithm as `exp8`, written so that LLVM's loop vectoriser turns
/// a loop of calls into 8-wide AVX2 code (plain arithmetic, selects and bit casts only).
@inline(__always)
public func fastExp(_ x: Float) -> Float {
    var xc = x < -87.3 ? -87.3 : x
    xc = xc > 88.7 ? 88.7 : xc
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

/// Lane-wise maximum.
@inline(__always)
public func max8(_ a: F8, _ b: F8) -> F8 { a.replacing(with: b, where: a .< b) }

/// Largest lane.
@inline(__always)
public func horizontalMax(_ v: F8) -> Float {
    let a = max8(v, F8(lowHalf: v.highHalf, highHalf: v.lowHalf))
    return Swift.max(Swift.max(a[0], a[1]), Swift.max(a[2], a[3]))
}

/// Sum of the lanes.
@inline(__always)
public func horizontalSum(_ v: F8) -> Float {
    let a = v.lowHalf + v.highHalf
    let b = a.lowHalf + a.highHalf
    return b[0] + b[1]
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
