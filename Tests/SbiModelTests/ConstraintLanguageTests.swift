import Foundation
import XCTest
@testable import SbiCore
@testable import SbiModel

/// The constraint language: what parses into which linear form, what is refused (exit 65, with the
/// expression quoted and a caret under the offending part), how atoms land on tokens, and the
/// gradients of the new guidance terms against finite differences.
final class ConstraintLanguageTests: XCTestCase {
    /// gamma, delta (scalars), theta (3 values), beta(t) and infected(t) on [0, 50] with 20 points.
    var spec: ModelSpec {
        let axis = TimeAxis(lower: 0, upper: 50, grid: 51, maxPoints: 20, units: "days")
        return ModelSpec(variables: [
            VariableSpec(name: "gamma", kind: .parameter, size: 1),
            VariableSpec(name: "delta", kind: .parameter, size: 1),
            VariableSpec(name: "theta", kind: .parameter, size: 3),
            VariableSpec(name: "beta", kind: .parameter, time: axis),
            VariableSpec(name: "infected", kind: .data, time: axis),
        ], edges: [])
    }

    func form(_ text: String) throws -> (terms: [String: Double], lower: Double, upper: Double, tolerance: Double?) {
        let e = try ConstraintExpression(parsing: text)
        var terms: [String: Double] = [:]
        for (w, a) in e.terms {
            let key = (a.kind == .value ? "" : a.kind.rawValue + ":") + a.name + (a.index.map { "[\($0)]" } ?? "")
                + (a.time.map { "@\($0)" } ?? "") + (a.range.map { "@\($0.lowerBound):\($0.upperBound)" } ?? "")
            terms[key, default: 0] += w
        }
        return (terms, e.lower, e.upper, e.tolerance)
    }

    func testParsesTheDocumentedForms() throws {
        var f = try form("gamma in [0.1, 0.3]")
        XCTAssertEqual(f.terms, ["gamma": 1]); XCTAssertEqual(f.lower, 0.1); XCTAssertEqual(f.upper, 0.3)
        f = try form("gamma + delta <= 0.6")
        XCTAssertEqual(f.terms, ["gamma": 1, "delta": 1]); XCTAssertEqual(f.lower, -.infinity); XCTAssertEqual(f.upper, 0.6)
        f = try form("2*theta[0] - theta[2] >= 0")
        XCTAssertEqual(f.terms, ["theta[0]": 2, "theta[2]": -1]); XCTAssertEqual(f.lower, 0); XCTAssertEqual(f.upper, .infinity)
        f = try form("infected@40 ~= 0.05 +- 0.01")
        XCTAssertEqual(f.terms, ["infected@40.0": 1]); XCTAssertEqual(f.lower, 0.05); XCTAssertEqual(f.upper, 0.05); XCTAssertEqual(f.tolerance, 0.01)
        f = try form("max(infected@30:50) <= 0.08")
        XCTAssertEqual(f.terms, ["max:infected@30.0:50.0": 1]); XCTAssertEqual(f.upper, 0.08)
        f = try form("mean(beta@0:14) >= 0.3")
        XCTAssertEqual(f.terms, ["mean:beta@0.0:14.0": 1]); XCTAssertEqual(f.lower, 0.3)
        // constants move right, variables left, on either side; factors before or after
        f = try form("0.5 + gamma/2 <= delta*3 - 1e-1")
        XCTAssertEqual(f.terms, ["gamma": 0.5, "delta": -3]); XCTAssertEqual(f.upper, -0.6, accuracy: 1e-12)
        // a lone max with a factor is scaled to weight 1
        f = try form("2*max(beta@0:10) <= 1")
        XCTAssertEqual(f.terms, ["max:beta@0.0:10.0": 1]); XCTAssertEqual(f.upper, 0.5)
        XCTAssertEqual(try ConstraintExpression.parseList("gamma <= 0.3; ; delta >= 0.1;").count, 2)
        // a max on the right-hand side, a constant before 'in'
        f = try form("0.08 >= max(infected@30:50)")
        XCTAssertEqual(f.terms, ["max:infected@30.0:50.0": 1]); XCTAssertEqual(f.lower, -.infinity); XCTAssertEqual(f.upper, 0.08)
        f = try form("gamma + 1 in [0, 2]")
        XCTAssertEqual(f.terms, ["gamma": 1]); XCTAssertEqual(f.lower, -1); XCTAssertEqual(f.upper, 1)
    }

    /// (expression, part of the message, the text the caret points at)
    func testRefusesBadExpressionsWithAPointer() {
        let cases: [(String, String, String)] = [
            ("gamma * delta <= 1", "non-linear", "delta"),
            ("gamma^2 <= 1", "unexpected character", "^"),
            ("gamma <=", "expected a variable", "="),
            ("gamma + delta", "expected a comparison", "a"),
            ("gamma = 0.2", "needs a tolerance", "="),
            ("exp(gamma) <= 1", "only max, min and mean", "("),
            ("max(beta@0:10) + gamma <= 1", "must stand alone", "max(beta@0:10)"),
            ("beta@0:10 <= 1", "needs max(...)", "beta@0:10"),
            ("gamma in [0.3, 0.1]", "lower end must be below", "in"),
            ("gamma 2 <= 1", "expected a comparison", "2"),
            ("gamma <= 1 2", "unexpected text", "2"),
            ("3 <= 4", "names no variable", "<="),
            ("infected@40 ~= 0.05 +- -1", "must be positive", "1"),
            ("gamma <= max(", "expected a variable name", "("),
            ("max(3) <= 1", "expected a variable name", "3"),
        ]
        for (text, fragment, pointed) in cases {
            XCTAssertThrowsError(try ConstraintExpression(parsing: text), text) { error in
                guard let e = error as? SbiError else { return XCTFail("\(text): \(error)") }
                XCTAssertEqual(e.code, .badInput, text)
                XCTAssertEqual(e.exitStatus, 65)
                XCTAssertTrue(e.message.contains(fragment), "\(text): \(e.message)")
                XCTAssertTrue(e.message.contains("constraint '\(text)'"), e.message)
                XCTAssertEqual(self.pointedAt(e.message, text), pointed, "\(text): \(e.message)")
            }
        }
    }

    /// The text above the carets of an error message.
    func pointedAt(_ message: String, _ text: String) -> String? {
        let lines = message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3, let caretLine = lines.last, let start = caretLine.firstIndex(of: "^") else { return nil }
        let offset = caretLine.distance(from: caretLine.startIndex, to: start) - 4
        let width = caretLine.filter { $0 == "^" }.count
        let chars = Array(text)
        guard offset >= 0, offset + width <= chars.count else { return nil }
        return String(chars[offset..<(offset + width)])
    }

    func testResolvesAtomsOntoTokens() throws {
        var plan = QueryPlan(spec: spec)
        let infected = 6, beta = 5
        for t in stride(from: 0.0, through: 30, by: 2) { try plan.observe(node: infected, time: t, value: 0.01) }
        try plan.target(node: beta, times: [0, 5, 10, 15, 20, 25, 30])
        let before = plan.tokens.count
        try plan.constrain(ConstraintExpression(parsing: "mean(beta@0:14) >= 0.3"))
        XCTAssertEqual(plan.tokens.count, before, "the query's beta tokens at 0, 5, 10 are reused")
        guard case .linear(let w) = plan.plannedConstraints[0].form else { return XCTFail("mean is linear") }
        XCTAssertEqual(w.map { plan.tokens[$0.node].time }, [0, 5, 10])
        XCTAssertEqual(w.map(\.weight), [1, 1, 1], "scaled to a largest weight of 1")
        XCTAssertEqual(plan.plannedConstraints[0].lower, 0.9, accuracy: 1e-12, "mean >= 0.3 is sum >= 0.9")
        // infected is observed up to day 30 (16 tokens): 30..50 gets new latent tokens up to the trained 20 per variable
        try plan.constrain(ConstraintExpression(parsing: "max(infected@30:50) <= 0.08"))
        guard case .maximum(let m) = plan.plannedConstraints[1].form else { return XCTFail("max") }
        XCTAssertEqual(m.count, 3, "4 of room, minus day 30 which is observed")
        XCTAssertTrue(m.allSatisfy { plan.tokens[$0].node == infected && plan.tokens[$0].time! > 30 && plan.observed[$0] == nil })
        XCTAssertEqual(plan.tokens.filter { $0.node == infected }.count, 19)
        XCTAssertEqual(plan.constraints.count, 4, "one bound per value for max <= b, plus the mean's")
        // a single time: a new latent token, and the same one again when named twice
        try plan.constrain(ConstraintExpression(parsing: "infected@40 ~= 0.05 +- 0.01"))
        let count = plan.tokens.count
        try plan.constrain(ConstraintExpression(parsing: "infected@40 <= 0.2"))
        XCTAssertEqual(plan.tokens.count, count)
        // satisfaction on draws
        let c = plan.plannedConstraints[2]
        var draw = [Double](repeating: 0, count: plan.tokens.count)
        guard case .linear(let one) = c.form else { return XCTFail() }
        draw[one[0].node] = 0.055
        XCTAssertTrue(c.isSatisfied(draw))
        draw[one[0].node] = 0.07
        XCTAssertFalse(c.isSatisfied(draw))
        XCTAssertEqual(c.fractionSatisfied([draw, draw.map { _ in 0.05 }]), 0.5)
    }

    /// A range with fewer than two of the query's latent tokens keeps that one and adds the trained
    /// density's grid around it, never a second token at a time the query already samples.
    func testRangeTokensNeverDuplicateATime() throws {
        var plan = QueryPlan(spec: spec)
        try plan.target(node: 5, times: [0])
        try plan.constrain(ConstraintExpression(parsing: "max(beta@0:10) <= 0.5"))
        guard case .maximum(let m) = plan.plannedConstraints[0].form else { return XCTFail("max") }
        let times = m.map { plan.tokens[$0].time! }
        XCTAssertEqual(times.sorted(), [0, 10.0 / 3, 20.0 / 3, 10].sorted(), "\(times)")
        XCTAssertEqual(Set(times).count, times.count, "no time twice")
        XCTAssertTrue(m.contains(plan.targets[0]), "the query's own token at 0 is constrained")
    }

    func testRefusesAtomsTheQueryCannotConstrain() throws {
        var plan = QueryPlan(spec: spec)
        try plan.observe(node: 0, value: 0.2)
        try plan.observe(node: 6, time: 10, value: 0.01)
        let cases: [(String, String, String)] = [
            ("kappa <= 1", "has no variable 'kappa'", "kappa"),
            ("gamma <= 0.3", "observed exactly", "gamma"),
            ("infected@10 <= 0.3", "observed exactly at 10", "infected@10"),
            ("theta <= 1", "has 3 values", "theta"),
            ("theta[3] <= 1", "out of range", "theta[3]"),
            ("beta@60 <= 1", "outside the time domain", "beta@60"),
            ("max(beta@-5:10) <= 1", "outside the time domain", "max(beta@-5:10)"),
            ("delta@3 <= 1", "not time-indexed", "delta@3"),
            ("beta <= 1", "is time-indexed; give a time", "beta"),
            ("delta - delta <= 1", "cancel out", "delta - delta <= 1"),
        ]
        for (text, fragment, pointed) in cases {
            var p = plan
            XCTAssertThrowsError(try p.constrain(ConstraintExpression(parsing: text)), text) { error in
                guard let e = error as? SbiError else { return XCTFail("\(text): \(error)") }
                XCTAssertEqual(e.code, .badInput, text)
                XCTAssertTrue(e.message.contains(fragment), "\(text): \(e.message)")
                XCTAssertEqual(self.pointedAt(e.message, text), pointed, "\(text): \(e.message)")
            }
        }
    }

    /// d/dx log c against central differences of log c, at points where each term is active.
    func testGuidanceGradientsMatchFiniteDifferences() {
        // per node: sharpness 1 / (sigma^2 std), noise variance (sigma std)^2, at sigma = 0.1
        let std: [Double] = [0.5, 0.2, 2, 0.8], sigma = 0.1
        let sharp = std.map { 1 / (sigma * sigma * $0) }, noise = std.map { sigma * sigma * $0 * $0 }
        let sig = { (z: Double) in log(z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z))) }
        let wts: [(node: Int, weight: Double)] = [(0, 1.5), (2, -0.7), (3, 0.4)]
        let variance = wts.reduce(0) { $0 + $1.weight * $1.weight * noise[$1.node] }
        let k = 1 / wts.reduce(0) { $0 + $1.weight * $1.weight / (sharp[$1.node] * sharp[$1.node]) }.squareRoot()
        let dot = { (x: [Double]) in wts.reduce(0) { $0 + $1.weight * x[$1.node] } }
        let cases: [(any GuidanceConstraint, ([Double]) -> Double)] = [
            (IntervalConstraint(node: 1, lower: 0.245, upper: 0.3),
             { x in sig(sharp[1] * (x[1] - 0.245)) + sig(sharp[1] * (0.3 - x[1])) }),
            (LinearBoundConstraint(weights: wts, lower: -0.2, upper: 0.1),
             { x in sig(k * (dot(x) + 0.2)) + sig(k * (0.1 - dot(x))) }),
            (SoftLinearEqualityConstraint(weights: wts, target: 0.05, tolerance: 0.03),
             { x in -(dot(x) - 0.05) * (dot(x) - 0.05) / (2 * (0.03 * 0.03 / 4 + variance)) }),
            (ExtremumConstraint(nodes: [0, 1, 3], bound: 0.3, minimum: false),
             { x in self.softExtremumLog(x, [0, 1, 3], 0.3, 1, sharp, noise) }),
            (ExtremumConstraint(nodes: [1, 2], bound: -0.1, minimum: true),
             { x in self.softExtremumLog(x, [1, 2], -0.1, -1, sharp, noise) }),
        ]
        let x: [Double] = [0.12, 0.25, -0.08, 0.3]
        for (c, logC) in cases {
            var grad = [Double](repeating: 0, count: 4)
            x.withUnsafeBufferPointer { xp in sharp.withUnsafeBufferPointer { kp in noise.withUnsafeBufferPointer { vp in
                grad.withUnsafeMutableBufferPointer { gp in
                    c.addLogGradient(x: xp.baseAddress!, scale: GuidanceScale(sharpness: kp.baseAddress!, noiseVariance: vp.baseAddress!),
                                     grad: gp.baseAddress!)
                }
            } } }
            for i in 0..<4 {
                var up = x, down = x
                up[i] += 1e-6; down[i] -= 1e-6
                let numeric = (logC(up) - logC(down)) / 2e-6
                XCTAssertEqual(grad[i], numeric, accuracy: 1e-4 * max(1, abs(numeric)), "\(type(of: c)) node \(i)")
            }
            XCTAssertTrue(grad.contains { $0 != 0 }, "\(type(of: c)) is active here")
        }
    }

    /// The soft step is as sharp in the network's normalised units whatever a variable's scale: the
    /// pull on z = x / std (d log c / dz = std d log c / dx) is the same for std 0.05 and std 2,500.
    func testGuidanceIsScaleFree() {
        let sigma = 0.3
        func pullInNormalisedUnits(std: Double) -> Double {
            let sharp = [1 / (sigma * sigma * std)], noise = [sigma * sigma * std * std]
            var grad = [0.0]
            let x = [1.2 * std]   // z = 1.2 against a bound at z = 1
            let c = LinearBoundConstraint(weights: [(0, 1)], lower: -.infinity, upper: 1 * std)
            x.withUnsafeBufferPointer { xp in sharp.withUnsafeBufferPointer { kp in noise.withUnsafeBufferPointer { vp in
                grad.withUnsafeMutableBufferPointer { gp in
                    c.addLogGradient(x: xp.baseAddress!, scale: GuidanceScale(sharpness: kp.baseAddress!, noiseVariance: vp.baseAddress!),
                                     grad: gp.baseAddress!)
                }
            } } }
            return grad[0] * std
        }
        let unit = pullInNormalisedUnits(std: 1)
        XCTAssertLessThan(unit, -1, "the bound pulls z back")
        for std in [0.05, 2556.0] { XCTAssertEqual(pullInNormalisedUnits(std: std), unit, accuracy: 1e-9 * abs(unit)) }

        // and through the sampler's own step: the score increment of a variable at z = 1.2 against a
        // bound at z = 1 is the same for std 1 and 2,556 (it was 2,556x smaller for the latter)
        func scoreIncrement(std: Double, t: Double) -> Double {
            let sde = SDE.defaultVE, mean = 40.0
            let bound = LinearBoundConstraint(weights: [(0, 1)], lower: -.infinity, upper: mean + 1 * std)
            var score = [0.0]
            Sampler.addGuidance(sde, Normalization(mean: [mean], std: [std]), 1, Conditioning(constraints: [bound]),
                                [1.2 * sde.mean(t)], t, 1, &score)
            return score[0]
        }
        for t in [0.2, 0.5, 0.8] {
            let reference = scoreIncrement(std: 1, t: t)
            XCTAssertLessThan(reference, 0, "t \(t)")
            XCTAssertEqual(scoreIncrement(std: 2556, t: t), reference, accuracy: 1e-9 * abs(reference), "t \(t)")
        }
    }

    /// log sigmoid(k (s * softmax(s x) - s * bound)) with tau^2 = mean noise variance and
    /// k = 1 / mean (1 / sharpness) (s = -1: min).
    func softExtremumLog(_ x: [Double], _ nodes: [Int], _ bound: Double, _ s: Double, _ sharp: [Double], _ noise: [Double]) -> Double {
        let tau2 = nodes.reduce(0) { $0 + noise[$1] } / Double(nodes.count), tau = tau2.squareRoot()
        let k = Double(nodes.count) / nodes.reduce(0) { $0 + 1 / sharp[$1] }
        let soft = tau * log(nodes.reduce(0) { $0 + exp(s * x[$1] / tau) })
        let z = k * (soft - s * bound)
        return log(z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z)))
    }
}
