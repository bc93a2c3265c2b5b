// One flat Float32 buffer holding every parameter, with named views.
// The gradient arena has the same layout, so the optimizer is one loop over it.

/// Where one named tensor lives in an arena.
public struct TensorSlot: Codable, Hashable, Sendable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    /// Frozen tensors (random embeddings, Fourier frequencies) are stored and saved
    /// like parameters but never updated by the optimizer.
    public var frozen: Bool
    public var count: Int { shape.reduce(1, *) }
}

/// The ordered list of tensors in an arena.
public struct ParameterLayout: Codable, Hashable, Sendable {
    public private(set) var slots: [TensorSlot] = []
    public private(set) var totalCount = 0

    public init() {}

    /// Appends a tensor; offsets are aligned to 16 floats so rows start on cache-friendly bounds.
    @discardableResult
    public mutating func add(_ name: String, shape: [Int], frozen: Bool = false) -> TensorSlot {
        precondition(!slots.contains { $0.name == name }, "duplicate tensor name \(name)")
        let offset = (totalCount + 15) / 16 * 16
        let slot = TensorSlot(name: name, shape: shape, offset: offset, frozen: frozen)
        slots.append(slot)
        totalCount = offset + slot.count
        return slot
    }

    public func slot(named name: String) -> TensorSlot? { slots.first { $0.name == name } }

    /// Number of trainable scalars.
    public var trainableCount: Int { slots.filter { !$0.frozen }.reduce(0) { $0 + $1.count } }
}

/// A zero-initialised Float32 buffer laid out by a `ParameterLayout`. Owns its memory.
public final class Arena: @unchecked Sendable {
    public let layout: ParameterLayout
    public let base: UnsafeMutablePointer<Float>
    public var count: Int { layout.totalCount }

    public init(layout: ParameterLayout) {
        self.layout = layout
        base = .allocate(capacity: max(layout.totalCount, 1))
        base.initialize(repeating: 0, count: max(layout.totalCount, 1))
    }

    deinit { base.deallocate() }

    @inline(__always)
    public func pointer(_ slot: TensorSlot) -> UnsafeMutablePointer<Float> { base + slot.offset }

    public func zero() { base.update(repeating: 0, count: layout.totalCount) }

    /// self += other (same layout).
    public func add(_ other: Arena) {
        precondition(other.layout == layout)
        for i in 0..<layout.totalCount { base[i] += other.base[i] }
    }

    public func copy(from other: Arena) {
        precondition(other.layout == layout)
        base.update(from: other.base, count: layout.totalCount)
    }

    public func values(_ slot: TensorSlot) -> [Float] { Array(UnsafeBufferPointer(start: pointer(slot), count: slot.count)) }
}

/// A scratch buffer sized once at creation (no lazy growth).
public final class FloatBuffer: @unchecked Sendable {
    public let count: Int
    public let base: UnsafeMutablePointer<Float>
    public init(_ count: Int) {
        self.count = count
        base = .allocate(capacity: max(count, 1))
        base.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { base.deallocate() }
    public func zero() { base.update(repeating: 0, count: count) }
    public var array: [Float] { Array(UnsafeBufferPointer(start: base, count: count)) }
}
