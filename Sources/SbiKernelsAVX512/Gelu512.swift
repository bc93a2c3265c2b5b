// GELU (tanh approximation) forward and backward, 16 elements at a time: SbiCore's `geluForward`
// and `geluBackward` lane for lane (same bits).

/// out (N) = gelu(inp), with scale = sqrt(2/pi) as in SbiCore.
public func geluForward512(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ count: Int, scale: Float) {
    var i = 0
    while i &+ 16 <= count {
        let x = load16(inp + i)
        let u2 = V16(repeating: 2 * scale) * x.addingProduct(V16(repeating: 0.044715) * x * x, x)
        store16(x / (1 + fastExp16(-u2)), out + i)
        i &+= 16
    }
    while i < count {  // the scalar tail, as SbiCore computes it
        let x = inp[i]
        let u2 = 2 * scale * x.addingProduct(0.044715 * x * x, x)
        out[i] = x / (1 + scalarExp(-u2))
        i &+= 1
    }
}

/// dinp (N) += dout * gelu'(x) (with `overwrite`, =).
public func geluBackward512(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                            _ dout: UnsafePointer<Float>, _ count: Int, scale: Float, overwrite: Bool) {
    var i = 0
    while i &+ 16 <= count {
        let x = load16(inp + i)
        let u2 = V16(repeating: 2 * scale) * x.addingProduct(V16(repeating: 0.044715) * x * x, x)
        let s = 1 / (1 + fastExp16(-u2))
        let du2 = V16(repeating: 2 * scale) * (1 + V16(repeating: 3 * 0.044715) * x * x)
        let before = overwrite ? V16() : load16(dinp + i)
        store16(before + load16(dout + i) * (s + x * s * (1 - s) * du2), dinp + i)
        i &+= 16
    }
    while i < count {
        let x = inp[i]
        let u2 = 2 * scale * x.addingProduct(0.044715 * x * x, x)
        let s = 1 / (1 + scalarExp(-u2))
        let du2 = 2 * scale * (1 + 3 * 0.044715 * x * x)
        dinp[i] = (overwrite ? 0 : dinp[i]) + dout[i] * (s + x * s * (1 - s) * du2)
        i &+= 1
    }
}

/// SbiCore's scalar `fastExp`, for the tails.
@inline(__always)
func scalarExp(_ x: Float) -> Float {
    fastExp8(V8(repeating: x))[0]
}
