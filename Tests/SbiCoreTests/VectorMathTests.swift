import XCTest
@testable import SbiCore

final class VectorMathTests: XCTestCase {
    /// fastExp against Foundation's exp: relative error below 3e-7 over [-80, 80]; clamped outside.
    func testFastExpAccuracy() {
        var worst: Float = 0
        for i in 0...16000 {
            let x = -80 + Float(i) * 0.01
            let exact = Float(Foundation.exp(Double(x)))
            worst = max(worst, abs(fastExp(x) - exact) / exact)
        }
        XCTAssertLessThan(worst, 3e-7)
        XCTAssert(fastExp(-1000) > 0 && fastExp(-1000).isFinite)
        XCTAssert(fastExp(1000).isFinite)
    }
}

import Foundation
