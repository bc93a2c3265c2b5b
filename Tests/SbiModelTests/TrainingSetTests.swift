import Foundation
import XCTest
import SbiTestSupport
@testable import SbiChecks
@testable import SbiCore
@testable import SbiModel
@testable import SbiNetCDF
@testable import SbiTasks
@testable import SbiTraining

final class TrainingSetTests: TemporaryDirectoryTestCase {

    /// The project's own simulators written as training sets read back to the same spec and rows.
    func testRoundTrip() throws {
        for task in [SIRDTask(), LotkaVolterraTask(), SLCPTask()] as [any SimulationTask] {
            let rows = task.simulate(count: 30, key: RandomKey(seed: 1))
            let path = dir.appendingPathComponent("\(task.name).nc").path
            try TrainingSet.write(spec: task.spec, rows: rows, to: path)
            let (spec, back) = try TrainingSet.read(path: path)
            XCTAssertEqual(spec, task.spec, task.name)
            XCTAssertEqual(back, rows, task.name)
        }
    }

    /// Tokens per series in a training example: log-uniform on 1...maxPoints. For 100 points about half
    /// the draws (0.520) have at most 10 and one in seven (0.148) more than 50; the mean is
    /// `meanTokenCount` (21.19). 20,000 draws: standard errors 0.0035 and 0.0025, and 0.18 on the mean.
    func testTokenCountsAreLogUniform() {
        var rng = RandomStream(seed: 11)
        let k = (0..<20_000).map { _ in ExampleMaker.tokenCount(maxPoints: 100, &rng) }
        XCTAssertEqual(k.min(), 1)
        XCTAssertEqual(k.max(), 100)
        let share = { (p: (Int) -> Bool) in Double(k.filter(p).count) / Double(k.count) }
        XCTAssertEqual(share { $0 <= 10 }, log(11) / log(101), accuracy: 0.012)
        XCTAssertEqual(share { $0 > 50 }, 1 - log(51) / log(101), accuracy: 0.01)
        let mean = Double(k.reduce(0, +)) / Double(k.count)
        XCTAssertEqual(mean, ExampleMaker.meanTokenCount(maxPoints: 100), accuracy: 0.6)
        XCTAssertEqual(ExampleMaker.meanTokenCount(maxPoints: 1), 1)
        for _ in 0..<100 { XCTAssertEqual(ExampleMaker.tokenCount(maxPoints: 1, &rng), 1) }
    }

    /// 100 SIRD simulations (seed 3) and a freshly initialised small network normalised on them.
    func untrainedSmallSIRD() -> (SIRDTask, [[Double]], NetworkSettings, ScoreModel) {
        let task = SIRDTask()
        let rows = task.simulate(count: 100, key: RandomKey(seed: 3))
        let settings = NetworkSettings(preset: .small)
        let transformer = Transformer(config: ScoreModel.transformerConfig(spec: task.spec, settings: settings))
        let model = ScoreModel(spec: task.spec, settings: settings, params: transformer.initialParameters(key: RandomKey(seed: 1)),
                               normalization: Normalization(fitting: rows, spec: task.spec))
        return (task, rows, settings, model)
    }

    /// `--function-tokens half-dense`: a function-valued parameter's tokens are log-uniform in half the
    /// examples and uniform on 50...100 in the other half, so 0.5 + 0.5 x 0.148 = 0.574 of the examples
    /// that keep SIRD's beta(t) give it more than 50 tokens (0.148 under `log-uniform`), while the data
    /// series keep the log-uniform counts; the mean is `meanHalfDenseTokenCount`. 4,000 examples: standard
    /// errors 0.008 (shares of about 3,600 kept) and 0.6 on the mean. The scheme enters the checkpoint's identity.
    func testFunctionTokensHalfDense() throws {
        let (task, rows, settings, model) = untrainedSmallSIRD()
        let beta = task.spec.offsets[3], infected = task.spec.offsets[4]
        for choice in FunctionTokens.allCases {
            let maker = ExampleMaker(model: model, seriesNoise: .restored, functionTokens: choice)
            var rng = RandomStream(seed: 8)
            var betaCounts: [Int] = [], seriesCounts: [Int] = []
            for row in rows.map(maker.normalize) {
                for _ in 0..<40 {
                    let tokens = maker.draw(row, &rng).0
                    let b = tokens.filter { $0.node == beta }.count, i = tokens.filter { $0.node == infected }.count
                    if b > 0 { betaCounts.append(b) }
                    if i > 0 { seriesCounts.append(i) }
                }
            }
            let dense = { (k: [Int]) in Double(k.filter { $0 > 50 }.count) / Double(k.count) }
            let logShare = 1 - Foundation.log(51.0) / Foundation.log(101.0)
            XCTAssertEqual(dense(betaCounts), choice == .halfDense ? 0.5 + 0.5 * logShare : logShare, accuracy: 0.03, "\(choice)")
            XCTAssertEqual(dense(seriesCounts), logShare, accuracy: 0.03, "\(choice): series stay log-uniform")
            let mean = Double(betaCounts.reduce(0, +)) / Double(betaCounts.count)
            let expected = choice == .halfDense ? ExampleMaker.meanHalfDenseTokenCount(maxPoints: 100) : ExampleMaker.meanTokenCount(maxPoints: 100)
            XCTAssertEqual(mean, expected, accuracy: 2.5, "\(choice)")
        }
        var config = TrainingConfig(steps: 10, seed: 1)
        let plain = TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: config, simulations: rows)
        config.functionTokens = .logUniform
        XCTAssertEqual(TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: config, simulations: rows), plain)
        config.functionTokens = .halfDense
        XCTAssertNotEqual(TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: config, simulations: rows), plain)
    }

    /// `--loss-weights sqrt-variables`: a latent token of a variable with n latent tokens weighs 1/sqrt(n),
    /// scaled so an example's latent weights add up to its latent token count; observed tokens weigh 0.
    /// Crafted: node 0 one latent token, node 1 observed, node 2 four latent, node 3 one latent and one
    /// observed: 6 latent tokens, sum of sqrt(n) = 1 + 2 + 1, so scale 1.5. On SIRD examples (noise
    /// parametrisation, raw outputs), the weighted loss and gradient are the plain ones times each
    /// token's weight, the plain objective keeps no weights, and the choice enters the checkpoint
    /// identity only when set.
    func testSqrtVariableLossWeights() throws {
        let tokens = [0, 1, 2, 2, 2, 2, 3, 3].map { TokenRef(node: $0) }
        let observed: [Float] = [0, 1, 0, 0, 0, 0, 0, 1]
        var weights = [Float](repeating: -1, count: 8)
        DenoisingObjective.sqrtVariableWeights(tokens, observed: observed, into: &weights)
        XCTAssertEqual(weights, [1.5, 0, 0.75, 0.75, 0.75, 0.75, 1.5, 0])

        let (task, rows, settings, model) = untrainedSmallSIRD()
        let maker = ExampleMaker(model: model, seriesNoise: .restored)
        let batch = TokenBatch(capacity: 6, tokens: maker.maxTokens)
        let plain = DenoisingObjective(model: model, batch: batch, maker: maker)
        let weighted = DenoisingObjective(model: model, batch: batch, maker: maker, lossWeights: .sqrtVariables)
        var rng = RandomStream(seed: 21)
        for e in 0..<6 { weighted.draw(example: e, row: maker.normalize(rows[e]), rng: &rng) }
        plain.eps.base.update(from: weighted.eps.base, count: 6 * batch.tokens)
        XCTAssertNil(plain.tokenWeights)
        let d = batch.tokens, sde = model.settings.sde
        let out = (0..<(6 * d)).map { Float($0 % 7) * 0.1 - 0.3 }
        var gPlain = [Float](repeating: 0, count: 6 * d), gWeighted = gPlain
        let lossPlain = plain.loss(start: 0, count: 6, output: out, dOutput: &gPlain, normalizer: 1)
        let lossWeighted = weighted.loss(start: 0, count: 6, output: out, dOutput: &gWeighted, normalizer: 1)
        var expected = 0.0, scalarsOutweigh = 0
        for e in 0..<6 {
            let t = Double(batch.diffusionTime[e])
            let scale = model.outputScale(t), lambda = sde.lossWeight(t)
            var latentWeight = 0.0, scalarWeights: [Double] = [], otherWeights: [Double] = []
            for i in 0..<d {
                let r = e * d + i
                guard i < Int(batch.counts[e]), batch.observed[r] == 0 else {
                    XCTAssertEqual(gWeighted[r], 0); continue
                }
                let w = Double(weighted.tokenWeights!.base[r]), g = Double(gPlain[r])
                XCTAssertEqual(Double(gWeighted[r]), w * g, accuracy: 1e-6 * max(1, abs(g)))
                expected += w * (g * scale) * (g * scale) / (4 * lambda)   // the token's plain loss, times w
                latentWeight += w
                if batch.ids[r] < 3 { scalarWeights.append(w) } else { otherWeights.append(w) }
            }
            let latent = (0..<Int(batch.counts[e])).filter { batch.observed[e * d + $0] == 0 }.count
            XCTAssertEqual(latentWeight, Double(latent), accuracy: 1e-4, "an example's weights add up to its latent tokens")
            if let lightest = scalarWeights.min(), let heaviest = otherWeights.max() {
                XCTAssertGreaterThanOrEqual(lightest, heaviest - 1e-6, "a scalar (one token) weighs at least any token of a series")
                scalarsOutweigh += lightest > heaviest + 1e-6 ? 1 : 0
            }
        }
        XCTAssertEqual(lossWeighted, expected, accuracy: 1e-6 * expected)
        XCTAssertNotEqual(lossWeighted, lossPlain)
        XCTAssertGreaterThan(scalarsOutweigh, 0)

        var config = TrainingConfig(steps: 10, seed: 1)
        let identity = TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: config, simulations: rows)
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(config), as: UTF8.self).contains("loss"))
        config.lossWeights = .sqrtVariables
        XCTAssertNotEqual(TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: config, simulations: rows), identity)
    }

    /// `--forecast-masks`: with share 1 every SIRD example's mask is a forecast's: parameters (scalars and
    /// beta(t)) latent, and the observed data tokens all earlier (as a fraction of the axis) than every
    /// latent one; with positions uniform and the cut uniform on [0.2, 1), 0.6 of the data tokens are
    /// observed (about 4,000 examples of about 60 data tokens: the share's SE is well under 0.01, the cut's
    /// per-example spread dominates: 0.23 / sqrt(4,000) = 0.004). With share 0 the masks and the random
    /// stream are those of the reference's mixture alone; the share enters the checkpoint identity only when set.
    func testForecastMasks() throws {
        let (task, rows, settings, model) = untrainedSmallSIRD()
        let forecast = ExampleMaker(model: model, seriesNoise: .restored, forecastShare: 1)
        var rng = RandomStream(seed: 9)
        var observedData = 0, data = 0, ordered = 0, mixed = 0
        let mask = UnsafeMutablePointer<Float>.allocate(capacity: 1000)
        defer { mask.deallocate() }
        for row in rows.map(forecast.normalize) {
            for _ in 0..<40 {
                let tokens = forecast.draw(row, &rng).0
                forecast.conditionMask(tokens, into: mask, &rng)
                var lastObserved = -1.0, firstLatent = 2.0
                for (i, token) in tokens.enumerated() {
                    let isData = forecast.isDataNode[token.node]
                    if !isData { XCTAssertEqual(mask[i], 0, "a parameter token is latent in a forecast"); continue }
                    let position = token.time! / 50
                    data += 1
                    if mask[i] != 0 { observedData += 1; lastObserved = max(lastObserved, position) }
                    else { firstLatent = min(firstLatent, position) }
                }
                if lastObserved >= 0 && firstLatent <= 1 { mixed += 1 }
                if lastObserved <= firstLatent { ordered += 1 }
            }
        }
        XCTAssertEqual(ordered, 4000, "observed data tokens all precede the latent ones")
        XCTAssertGreaterThan(mixed, 2000, "most forecasts have data on both sides of the cut")
        XCTAssertEqual(Double(observedData) / Double(data), 0.6, accuracy: 0.03)

        // share 0: the mixture's masks, from the same random numbers
        let plain = ExampleMaker(model: model, seriesNoise: .restored)
        let other = UnsafeMutablePointer<Float>.allocate(capacity: 1000)
        defer { other.deallocate() }
        var a = RandomStream(seed: 4), b = RandomStream(seed: 4)
        let tokens = plain.draw(plain.normalize(rows[0]), &rng).0
        for _ in 0..<50 {
            plain.conditionMask(tokens, into: mask, &a)
            ConditionMaskSampler().sample(isData: tokens.map { plain.isDataNode[$0.node] }, into: other, &b)
            XCTAssert((0..<tokens.count).allSatisfy { mask[$0] == other[$0] })
        }
        XCTAssertEqual(a.uniform(), b.uniform(), "share 0 draws nothing of its own")

        var config = TrainingConfig(steps: 10, seed: 1)
        let identity = TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: config, simulations: rows)
        // unset, the share is not in the identity at all (earlier checkpoints keep theirs)
        let encoded = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        XCTAssertFalse(encoded.contains("forecast"), encoded)
        config.forecastMasks = 0.2
        XCTAssertNotEqual(TrainingCheckpoint.fingerprint(spec: task.spec, settings: settings, config: config, simulations: rows), identity)
    }

    /// A training example's data series between two grid points scatters by the declared noise (restored),
    /// not by the (1 - w)^2 + w^2 of it that plain interpolation of two noisy grid values keeps. A series
    /// of pure noise on an 11-point grid (signal 0 additive, or 1 lognormal, sd 0.3): values of tokens
    /// more than 0.3 of a cell away from any grid point (about 3,000 of them). Restored, their variance is
    /// 0.09 (one SE about 0.0025); interpolated, E[(1 - w)^2 + w^2] = 0.527 of it for w uniform on 0.3...0.7.
    func testExamplesRestoreSeriesNoiseBetweenGridPoints() throws {
        for kind in ObservationNoise.Kind.allCases {
            let axis = TimeAxis(lower: 0, upper: 10, grid: 11, maxPoints: 30)
            let spec = ModelSpec(variables: [VariableSpec(name: "a", kind: .parameter, size: 1),
                                             VariableSpec(name: "y", kind: .data, time: axis, noise: ObservationNoise(kind, std: 0.3))],
                                 edges: [.init(0, 1)])
            var rng = RandomStream(seed: 5)
            let rows = (0..<200).map { _ in [rng.normal()] + (0..<11).map { _ in kind == .additive ? 0.3 * rng.normal() : exp(0.3 * rng.normal()) } }
            let settings = NetworkSettings(preset: .small)
            let transformer = Transformer(config: ScoreModel.transformerConfig(spec: spec, settings: settings))
            let model = ScoreModel(spec: spec, settings: settings, params: transformer.initialParameters(key: RandomKey(seed: 1)),
                                   normalization: Normalization(fitting: rows, spec: spec))
            for scheme in SeriesNoise.allCases {
                let maker = ExampleMaker(model: model, seriesNoise: scheme)
                var values: [Double] = []
                for row in rows.map(maker.normalize) {
                    for _ in 0..<5 {
                        let (tokens, clean) = maker.draw(row, &rng)
                        for (token, v) in zip(tokens, clean) where token.node == 1 {
                            let w = axis.cell(at: token.time!).weight
                            guard w > 0.3, w < 0.7 else { continue }
                            let y = model.normalization.denormalize(Double(v), node: 1)
                            values.append(kind == .additive ? y : log(y))
                        }
                    }
                }
                let mean = values.reduce(0, +) / Double(values.count)
                let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)
                print("series noise \(kind) \(scheme): \(values.count) mid-cell values, variance \(variance) (declared 0.09)")
                XCTAssertGreaterThan(values.count, 2000)
                if scheme == .restored { XCTAssertEqual(variance, 0.09, accuracy: 0.01, "\(kind)") }
                else { XCTAssertEqual(variance, 0.09 * 0.527, accuracy: 0.01, "\(kind)") }
            }
        }
    }

    /// Observations made from simulated dense rows (reference sets, held-out and synthetic files) get the
    /// same treatment as training examples: a pure-noise series (sd 0.3) read at 4 mid-cell times of
    /// 500 rows scatters by the declared noise (variance 0.09, one SE about 0.003), a parameter function
    /// is interpolated plainly, and the same points read twice give the same values.
    func testObservationsBetweenGridPointsCarryTheDeclaredNoise() {
        let axis = TimeAxis(lower: 0, upper: 10, grid: 11, maxPoints: 30)
        let spec = ModelSpec(variables: [VariableSpec(name: "f", kind: .parameter, time: axis),
                                         VariableSpec(name: "y", kind: .data, time: axis, noise: ObservationNoise(.additive, std: 0.3))],
                             edges: [.init(0, 1)])
        var rng = RandomStream(seed: 8)
        let rows = (0..<500).map { _ in (0..<11).map { Double($0) } + (0..<11).map { _ in 0.3 * rng.normal() } }
        let reference = ReferenceSet(origin: "test", rows: rows)
        let times = [2.5, 4.4, 6.5, 8.6]
        let points = times.map { DensePoint(variable: 1, time: $0) } + [DensePoint(variable: 0, time: 3.25)]
        let values = reference.values(at: points, spec: spec)
        let noisy = values.flatMap { $0.prefix(4) }
        let variance = noisy.reduce(0) { $0 + $1 * $1 } / Double(noisy.count)
        print("reference values between grid points: variance \(variance) (declared 0.09)")
        XCTAssertEqual(variance, 0.09, accuracy: 0.012)
        XCTAssert(values.allSatisfy { abs($0[4] - 3.25) < 1e-6 }, "a parameter function is interpolated without noise")
        XCTAssertEqual(reference.values(at: points, spec: spec), values)
    }

    /// A training set from the SIRD simulator trains a model (tiny budget) with the right variables.
    func testTrainFromTrainingSet() throws {
        let task = SIRDTask()
        let path = dir.appendingPathComponent("sird.nc").path
        try TrainingSet.write(spec: task.spec, rows: task.simulate(count: 60, key: RandomKey(seed: 2)), to: path)
        let (spec, rows) = try TrainingSet.read(path: path)
        var config = TrainingConfig(steps: 3, seed: 1)
        config.batchSize = 8
        let (model, report) = try Trainer.train(spec: spec, simulations: rows, settings: NetworkSettings(preset: .small), config: config) { _ in }
        XCTAssertEqual(report.steps, 3)
        XCTAssertEqual(model.spec.variables.map(\.name), ["gamma", "delta", "I0", "beta", "infected", "recovered", "dead"])
        XCTAssertEqual(model.transformer.config.timeDim, 14)
    }

    /// Files that break the layout are refused with a message naming what is wrong.
    func testBadTrainingSets() throws {
        func write(_ name: String, _ body: (NetCDFWriter) throws -> Void) throws -> String {
            let path = dir.appendingPathComponent(name).path
            let w = try NetCDFWriter(path: path)
            try body(w)
            try w.close()
            return path
        }
        let noFormat = try write("noformat.nc") { w in
            let d = try w.defineDimension("simulation", length: 3)
            _ = try w.defineVariable("a", dimensions: [d])
            try w.endDefinitions()
        }
        let badKind = try write("badkind.nc") { w in
            let d = try w.defineDimension("simulation", length: 3)
            let v = try w.defineVariable("a", dimensions: [d])
            try w.setAttribute("sbiwatch_kind", "observable", variable: v)
            try w.setAttribute("sbiwatch_format", TrainingSet.format)
            try w.endDefinitions()
        }
        let unevenTime = try write("uneven.nc") { w in
            let d = try w.defineDimension("simulation", length: 2)
            let t = try w.defineDimension("time", length: 3)
            let tv = try w.defineVariable("time", dimensions: [t])
            let v = try w.defineVariable("a", dimensions: [d])
            try w.setAttribute("sbiwatch_kind", "parameter", variable: v)
            try w.setAttribute("sbiwatch_format", TrainingSet.format)
            try w.endDefinitions()
            try w.write([0, 1, 5], variable: tv)
        }
        let badEdge = try write("badedge.nc") { w in
            let d = try w.defineDimension("simulation", length: 2)
            let v = try w.defineVariable("a", dimensions: [d])
            try w.setAttribute("sbiwatch_kind", "parameter", variable: v)
            try w.setAttribute("sbiwatch_format", TrainingSet.format)
            try w.setAttribute("sbiwatch_edges", "a->zzz")
            try w.endDefinitions()
        }
        let badNoise = try write("badnoise.nc") { w in
            let d = try w.defineDimension("simulation", length: 2)
            let v = try w.defineVariable("x", dimensions: [d])
            try w.setAttribute("sbiwatch_kind", "data", variable: v)
            try w.setAttribute("sbiwatch_noise", "gaussian 0.1", variable: v)
            try w.setAttribute("sbiwatch_format", TrainingSet.format)
            try w.endDefinitions()
        }
        let notNetCDF = dir.appendingPathComponent("text.nc").path
        try "hello".write(toFile: notNetCDF, atomically: true, encoding: .utf8)
        for (path, expected) in [(noFormat, "sbiwatch_format"), (badKind, "must be \"parameter\" or \"data\""),
                                 (unevenTime, "evenly spaced"), (badEdge, "\"zzz\""), (badNoise, "sbiwatch_noise is \"gaussian 0.1\""),
                                 (notNetCDF, "not a NetCDF file")] {
            XCTAssertThrowsError(try TrainingSet.read(path: path)) { e in
                XCTAssertEqual((e as? SbiError)?.code, .badInput, path)
                XCTAssert("\(e)".contains(expected), "\(path): \(e)")
                XCTAssert("\(e)".contains(path), "\(e)")
            }
        }
    }
}
