import XCTest
@testable import SbiCore

/// Central-difference gradient check of a Float32 computation, with the loss accumulated in Double.
/// For every element x_i: numeric = (L(x_i + eps) - L(x_i - eps)) / (2 eps), compared with `analytic[i]`
/// by |a - n| <= tolerance * max(|a|, |n|, floor). Fails the test with the first mismatches.
func checkGradient(_ name: String, _ x: UnsafeMutablePointer<Float>, count: Int, analytic: [Float],
                   eps: Float = 1e-2, tolerance: Double = 2e-2, floor: Double = 1e-2,
                   file: StaticString = #filePath, line: UInt = #line, loss: () -> Double) {
    precondition(analytic.count == count)
    var failures: [String] = []
    var checked = 0
    for i in 0..<count {
        let saved = x[i]
        x[i] = saved + eps
        let up = loss()
        x[i] = saved - eps
        let down = loss()
        x[i] = saved
        let numeric = (up - down) / Double(2 * eps)
        let a = Double(analytic[i])
        let scale = max(abs(a), abs(numeric), floor)
        if abs(a - numeric) > tolerance * scale {
            failures.append("\(name)[\(i)]: analytic \(a) numeric \(numeric)")
        }
        checked += 1
    }
    XCTAssertGreaterThan(checked, 0, "\(name): nothing checked", file: file, line: line)
    XCTAssert(failures.isEmpty, "\(name): \(failures.count)/\(count) mismatches, first: \(failures.prefix(5).joined(separator: "; "))",
              file: file, line: line)
}

/// A buffer of normal random floats.
func randomBuffer(_ n: Int, seed: UInt64, std: Float = 1) -> FloatBuffer {
    let b = FloatBuffer(n)
    var r = RandomStream(seed: seed)
    r.fillNormal(b.base, count: n, std: std)
    return b
}

/// sum_i out[i] * w[i] in Double.
func weightedSum(_ out: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ n: Int) -> Double {
    var s = 0.0
    for i in 0..<n { s += Double(out[i]) * Double(w[i]) }
    return s
}

/// After a second backward, every gradient must be twice the first (backward accumulates with +=).
/// Tolerance 1e-5 relative to each element plus 1e-5 of the largest element: the second call
/// adds in a different order than 2x, and tiny elements come from cancelling sums.
func assertDoubled(_ after: [Float], _ before: [Float], _ name: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(after.count, before.count, file: file, line: line)
    let nonzero = before.filter { $0 != 0 }.count
    XCTAssertGreaterThan(nonzero, 0, "\(name): gradient is all zero", file: file, line: line)
    let largest = before.reduce(Float(0)) { max($0, abs(2 * $1)) }
    for (i, (a, b)) in zip(after, before).enumerated() where abs(a - 2 * b) > 1e-5 * (abs(2 * b) + largest) {
        XCTFail("\(name)[\(i)]: after second backward \(a), expected \(2 * b)", file: file, line: line)
        return
    }
}
