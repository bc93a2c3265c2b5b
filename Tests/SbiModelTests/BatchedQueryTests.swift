import XCTest
@testable import SbiCore
@testable import SbiEval
@testable import SbiModel

/// Several files' queries sampled as one batch (`QueryTiming.batchedSamples`, what `bench query
/// --files` times): each file's rows must be that file's posterior, not another's.
final class BatchedQueryTests: XCTestCase {
    /// Three SIRD simulations observed at the same times, 200 samples each, on the shipped model at
    /// 6 steps: per file, the batch's posterior means of gamma and I0 agree with a separate call's
    /// within 4.5 standard errors of the difference, and the files' own posteriors differ from each
    /// other by far more (a batch that gave every row the first file's values would fail here).
    func testBatchedQueriesSampleEachFilesOwnPosterior() throws {
        let m = try ShippedModels.load("sird").model
        let plans = try QueryTiming.sirdPlans(m, files: 3, method: .interpolated)
        let settings = SamplerSettings(method: .dpmpp2mSDE, steps: 6)
        let count = 200
        let batched = try QueryTiming.batchedSamples(m, plans, count: count, settings: settings,
                                                     key: RandomKey(seed: 5), threads: 1)
        XCTAssertEqual(batched.map(\.count), [count, count, count])
        var separateMeans: [[Double]] = []
        for (k, plan) in plans.enumerated() {
            let separate = try Sampler.sample(m, tokens: plan.tokens, plan.conditioning, count: count, settings: settings,
                                              key: RandomKey(seed: 50 + UInt64(k)), threads: 1)
            var means: [Double] = []
            for node in [0, 2] {  // gamma, I0
                let j = try XCTUnwrap(plan.tokens.firstIndex(of: TokenRef(node: m.spec.offsets[node])))
                let a = moments(batched[k].map { $0[j] }), b = moments(separate.map { $0[j] })
                let se = ((a.variance + b.variance) / Double(count)).squareRoot()
                XCTAssertLessThan(abs(a.mean - b.mean), 4.5 * se, "file \(k), node \(node): batch \(a.mean), separate \(b.mean)")
                means.append(b.mean)
            }
            // the rows returned for file k are that file's (observed tokens echo its values: the slicing)
            for (token, value) in plan.observed {
                XCTAssert(batched[k].allSatisfy { abs($0[token] - value) <= 1e-5 * max(1, abs(value)) }, "file \(k), token \(token)")
            }
            separateMeans.append(means)
        }
        let spread = (0..<3).flatMap { a in (0..<3).filter { $0 > a }.map { abs(separateMeans[a][0] - separateMeans[$0][0]) } }
        XCTAssertGreaterThan(spread.max()!, 0.05, "the three simulations' gamma posteriors should differ: \(separateMeans)")
    }

    /// Queries of different token layouts cannot share a batch.
    func testBatchRefusesDifferentLayouts() throws {
        let m = try ShippedModels.load("sird").model
        var plans = try QueryTiming.sirdPlans(m, files: 2, method: .interpolated)
        var other = QueryPlan(spec: m.spec)
        try other.target(node: 0)
        plans[1] = other
        XCTAssertThrowsError(try QueryTiming.batchedSamples(m, plans, count: 2, settings: SamplerSettings(method: .dpmpp2mSDE, steps: 2),
                                                            key: RandomKey(seed: 1), threads: 1)) { error in
            XCTAssertEqual((error as? SbiError)?.code, .usage)
        }
    }
}
