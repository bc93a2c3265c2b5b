// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011).
//
// A `RandomKey` names a stream; `split` derives independent child keys, so every
// consumer gets its own stream from one explicit seed and results do not depend on
// the order in which streams are used. The same key always gives the same numbers.

/// A 64-bit key naming one random stream.
public struct RandomKey: Hashable, Codable, Sendable {
    public var raw: UInt64

    public init(seed: UInt64) { raw = seed }

    /// A child key, independent of the parent and of every other index.
    public func split(_ index: UInt64) -> RandomKey {
        let block = Philox.block(key: raw, counterHigh: 0x5EED_5EED, counterLow: index)
        return RandomKey(seed: UInt64(block.0) | (UInt64(block.1) << 32))
    }
}

/// Philox4x32 with 10 rounds: a bijection of a 128-bit counter under a 64-bit key.
enum Philox {
    @inline(__always)
    static func block(key: UInt64, counterHigh: UInt64, counterLow: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        var c0 = UInt32(truncatingIfNeeded: counterLow)
        var c1 = UInt32(truncatingIfNeeded: counterLow >> 32)
        var c2 = UInt32(truncatingIfNeeded: counterHigh)
        var c3 = UInt32(truncatingIfNeeded: counterHigh >> 32)
        var k0 = UInt32(truncatingIfNeeded: key)
        var k1 = UInt32(truncatingIfNeeded: key >> 32)
        for _ in 0..<10 {
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            let n0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0
            let n1 = UInt32(truncatingIfNeeded: p1)
            let n2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1
            let n3 = UInt32(truncatingIfNeeded: p0)
            c0 = n0; c1 = n1; c2 = n2; c3 = n3
            k0 = k0 &+ 0x9E37_79B9
            k1 = k1 &+ 0xBB67_AE85
        }
        return (c0, c1, c2, c3)
    }
}

/// A sequential generator over one key's stream (a counter that advances).
public struct RandomStream: Sendable {
    public let key: RandomKey
    private var counter: UInt64 = 0
    private var buffer: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var used = 4
    private var spareNormal: Double? = nil

    public init(key: RandomKey) { self.key = key }
    public init(seed: UInt64) { self.key = RandomKey(seed: seed) }

    /// Everything the stream's future output depends on (for training checkpoints).
    public struct State: Codable, Hashable, Sendable {
        public var key: UInt64
        public var counter: UInt64
        public var buffer: [UInt32]
        public var used: Int
        public var spareNormal: Double?
    }

    public var state: State {
        State(key: key.raw, counter: counter, buffer: [buffer.0, buffer.1, buffer.2, buffer.3], used: used,
              spareNormal: spareNormal)
    }

    /// The stream exactly where `state` left it; nil when the state is malformed.
    public init?(state: State) {
        guard state.buffer.count == 4, (0...4).contains(state.used) else { return nil }
        key = RandomKey(seed: state.key)
        counter = state.counter
        buffer = (state.buffer[0], state.buffer[1], state.buffer[2], state.buffer[3])
        used = state.used
        spareNormal = state.spareNormal
    }

    @inline(__always)
    public mutating func nextUInt32() -> UInt32 {
        if used == 4 {
            buffer = Philox.block(key: key.raw, counterHigh: 0, counterLow: counter)
            counter &+= 1
            used = 0
        }
        defer { used += 1 }
        switch used {
        case 0: return buffer.0
        case 1: return buffer.1
        case 2: return buffer.2
        default: return buffer.3
        }
    }

    public mutating func nextUInt64() -> UInt64 {
        UInt64(nextUInt32()) | (UInt64(nextUInt32()) << 32)
    }

    /// Uniform on [0, 1) with 53 random bits.
    public mutating func uniform() -> Double {
        Double(nextUInt64() >> 11) * 0x1.0p-53
    }

    /// Uniform on [low, high).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double {
        low + (high - low) * uniform()
    }

    /// Uniform on (0, 1): never exactly zero (safe under log).
    public mutating func uniformOpen() -> Double {
        (Double(nextUInt64() >> 11) + 0.5) * 0x1.0p-53
    }

    /// Standard normal (Box-Muller; the second value of each pair is kept).
    public mutating func normal() -> Double {
        if let s = spareNormal { spareNormal = nil; return s }
        let u1 = uniformOpen(), u2 = uniform()
        let r = (-2.0 * _log(u1)).squareRoot()
        let a = 2.0 * Double.pi * u2
        spareNormal = r * _sin(a)
        return r * _cos(a)
    }

    public mutating func normal(mean: Double, std: Double) -> Double {
        mean + std * normal()
    }

    /// Uniform integer in 0..<n (Lemire's unbiased method).
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0, "int(below:) needs a positive bound")
        let bound = UInt64(n)
        var m = nextUInt64().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = nextUInt64().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// Fills `out` (n) with standard normals as Float.
    public mutating func fillNormal(_ out: UnsafeMutablePointer<Float>, count n: Int, std: Float = 1) {
        for i in 0..<n { out[i] = Float(normal()) * std }
    }

    /// A random permutation of 0..<n (Fisher-Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, int(below: i + 1)) } }
        return p
    }
}

// Glibc math without importing Foundation into the kernels.
#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _sin(_ x: Double) -> Double { Glibc.sin(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _sin(_ x: Double) -> Double { Darwin.sin(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
