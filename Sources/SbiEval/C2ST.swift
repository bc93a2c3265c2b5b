// Classifier two-sample test, the sbibm recipe (TASKS.md, "Metric"), on sbiwatch's own core:
// z-score both sets with the reference's mean and unbiased std; an MLP (ReLU, two hidden layers
// of 10 x dim, Adam lr 1e-3, batch 200, L2 1e-4, up to 10,000 epochs, stop after 10 epochs
// without a 1e-4 improvement of the training loss, as scikit-learn's MLPClassifier);
// 5-fold shuffled cross-validation; the mean held-out accuracy. 0.5 = indistinguishable.
import SbiCore

public enum C2ST {
    public static func score(reference: [[Double]], samples: [[Double]], seed: UInt64 = 1, maxEpochs: Int = 10_000) -> Double {
        let dim = reference[0].count
        let prepared = standardise(reference: reference, samples: samples)
        let x: [[Float]] = (0..<prepared.labels.count).map { i in prepared.columns.map { $0[i] } }
        let y: [Float] = prepared.labels.map { Float($0) }
        let order = foldOrder(count: x.count, seed: seed)
        let folds = 5
        var accuracy = 0.0
        for f in 0..<folds {
            let (trainIdx, testIdx) = split(order, fold: f, of: folds)
            let mlp = BinaryMLP(inputs: dim, hidden: 10 * dim, key: RandomKey(seed: seed).split(UInt64(f)))
            mlp.fit(x: trainIdx.map { x[$0] }, y: trainIdx.map { y[$0] }, maxEpochs: maxEpochs,
                    key: RandomKey(seed: seed).split(UInt64(100 + f)))
            let p = mlp.predict(testIdx.map { x[$0] })
            var correct = 0
            for (k, i) in testIdx.enumerated() where (p[k] > 0.5 ? 1 : 0) == Int(y[i]) { correct += 1 }
            accuracy += Double(correct) / Double(testIdx.count)
        }
        return accuracy / Double(folds)
    }
}

extension C2ST {
    // Shared by both classifiers (this MLP and RandomForestC2ST.swift).

    /// Both sets z-scored with the reference's mean and unbiased std, as columns:
    /// columns[j][i] is feature j of point i (reference points first, label 0; then samples, label 1).
    static func standardise(reference: [[Double]], samples: [[Double]]) -> (columns: [[Float]], labels: [UInt8]) {
        let dim = reference[0].count
        var mean = [Double](repeating: 0, count: dim), std = [Double](repeating: 0, count: dim)
        for r in reference { for j in 0..<dim { mean[j] += r[j] } }
        for j in 0..<dim { mean[j] /= Double(reference.count) }
        for r in reference { for j in 0..<dim { std[j] += (r[j] - mean[j]) * (r[j] - mean[j]) } }
        for j in 0..<dim { std[j] = max((std[j] / Double(reference.count - 1)).squareRoot(), 1e-12) }
        let points = reference + samples
        let columns = (0..<dim).map { j in points.map { Float(($0[j] - mean[j]) / std[j]) } }
        let labels = [UInt8](repeating: 0, count: reference.count) + [UInt8](repeating: 1, count: samples.count)
        return (columns, labels)
    }

    /// The shuffled order of the points for the folds.
    static func foldOrder(count: Int, seed: UInt64) -> [Int] {
        var rng = RandomStream(key: RandomKey(seed: seed))
        return rng.permutation(count)
    }

    /// Fold `fold` of `folds`: the points at positions k of `order` with k mod folds == fold are held out.
    static func split(_ order: [Int], fold: Int, of folds: Int) -> (train: [Int], test: [Int]) {
        var train: [Int] = [], test: [Int] = []
        for (k, i) in order.enumerated() { if k % folds == fold { test.append(i) } else { train.append(i) } }
        return (train, test)
    }
}

/// inputs -> hidden (ReLU) -> hidden (ReLU) -> 1 logit; trained on the log loss with Adam.
final class BinaryMLP {
    let inputs: Int, hidden: Int
    let layout: ParameterLayout
    let params: Arena, grads: Arena
    let w1, b1, w2, b2, w3, b3: TensorSlot
    let adam: AdamOptimizer
    static let batch = 200, alpha: Float = 1e-4

    init(inputs: Int, hidden: Int, key: RandomKey) {
        self.inputs = inputs; self.hidden = hidden
        var l = ParameterLayout()
        w1 = l.add("w1", shape: [inputs, hidden]); b1 = l.add("b1", shape: [hidden])
        w2 = l.add("w2", shape: [hidden, hidden]); b2 = l.add("b2", shape: [hidden])
        w3 = l.add("w3", shape: [hidden, 1]); b3 = l.add("b3", shape: [1])
        layout = l
        params = Arena(layout: l); grads = Arena(layout: l)
        var rng = RandomStream(key: key)
        // Glorot uniform, as scikit-learn: bound sqrt(6 / (fan_in + fan_out)) (factor 2 for the logistic output)
        for (w, b, fi, fo, factor) in [(w1, b1, inputs, hidden, 6.0), (w2, b2, hidden, hidden, 6.0), (w3, b3, hidden, 1, 2.0)] {
            let bound = (factor / Double(fi + fo)).squareRoot()
            for i in 0..<w.count { params.pointer(w)[i] = Float(rng.uniform(-bound, bound)) }
            for i in 0..<b.count { params.pointer(b)[i] = Float(rng.uniform(-bound, bound)) }
        }
        var cfg = AdamConfig()
        cfg.adaptiveClip = .infinity
        adam = AdamOptimizer(layout: l, config: cfg)
    }

    /// Forward on rows x (n, inputs) with scratch; returns logits (n).
    private func forward(_ x: UnsafePointer<Float>, _ n: Int, _ h1: FloatBuffer, _ a1: FloatBuffer,
                         _ h2: FloatBuffer, _ a2: FloatBuffer, _ logit: FloatBuffer) {
        linearForward(h1.base, x, params.pointer(w1), params.pointer(b1), n, inputs, hidden)
        reluForward(a1.base, h1.base, n * hidden)
        linearForward(h2.base, a1.base, params.pointer(w2), params.pointer(b2), n, hidden, hidden)
        reluForward(a2.base, h2.base, n * hidden)
        linearForward(logit.base, a2.base, params.pointer(w3), params.pointer(b3), n, hidden, 1)
    }

    func fit(x: [[Float]], y: [Float], maxEpochs: Int, key: RandomKey) {
        let n = x.count, bs = min(BinaryMLP.batch, n)
        let xb = FloatBuffer(bs * inputs), h1 = FloatBuffer(bs * hidden), a1 = FloatBuffer(bs * hidden)
        let h2 = FloatBuffer(bs * hidden), a2 = FloatBuffer(bs * hidden), logit = FloatBuffer(bs)
        let dlogit = FloatBuffer(bs), da2 = FloatBuffer(bs * hidden), dh2 = FloatBuffer(bs * hidden)
        let da1 = FloatBuffer(bs * hidden), dh1 = FloatBuffer(bs * hidden)
        var rng = RandomStream(key: key)
        var best = Double.infinity, noImprovement = 0
        for _ in 0..<maxEpochs {
            let order = rng.permutation(n)
            var epochLoss = 0.0
            var start = 0
            while start < n {
                let m = min(bs, n - start)
                for k in 0..<m { (xb.base + k * inputs).update(from: x[order[start + k]], count: inputs) }
                forward(xb.base, m, h1, a1, h2, a2, logit)
                var batchLoss = 0.0
                for k in 0..<m {
                    let z = Double(logit.base[k]), t = Double(y[order[start + k]])
                    // log loss with logits: softplus(z) - t z
                    batchLoss += max(z, 0) - t * z + log1p(exp(-abs(z)))
                    let p = 1 / (1 + exp(-z))
                    dlogit.base[k] = Float((p - t) / Double(m))
                }
                grads.zero()
                // L2 penalty 0.5 alpha |W|^2 / m, as scikit-learn
                var l2 = 0.0
                for w in [w1, w2, w3] {
                    let p = params.pointer(w), g = grads.pointer(w)
                    for i in 0..<w.count { l2 += Double(p[i] * p[i]); g[i] += BinaryMLP.alpha * p[i] / Float(m) }
                }
                batchLoss = batchLoss / Double(m) + 0.5 * Double(BinaryMLP.alpha) * l2 / Double(m)
                da2.zero(); dh2.zero(); da1.zero(); dh1.zero()
                linearBackward(da2.base, grads.pointer(w3), grads.pointer(b3), dlogit.base, a2.base, params.pointer(w3), m, hidden, 1)
                reluBackward(dh2.base, h2.base, da2.base, m * hidden)
                linearBackward(da1.base, grads.pointer(w2), grads.pointer(b2), dh2.base, a1.base, params.pointer(w2), m, hidden, hidden)
                reluBackward(dh1.base, h1.base, da1.base, m * hidden)
                linearBackward(nil, grads.pointer(w1), grads.pointer(b1), dh1.base, xb.base, params.pointer(w1), m, inputs, hidden)
                adam.update(params, grads, learningRate: 1e-3)
                epochLoss += batchLoss * Double(m)
                start += m
            }
            epochLoss /= Double(n)
            // scikit-learn: stop when the loss has not improved by tol = 1e-4 for 10 epochs
            if epochLoss > best - 1e-4 { noImprovement += 1 } else { noImprovement = 0 }
            best = min(best, epochLoss)
            if noImprovement >= 10 { break }
        }
    }

    /// P(y = 1 | x) for rows x.
    func predict(_ x: [[Float]]) -> [Double] {
        let bs = 1000
        let xb = FloatBuffer(bs * inputs), h1 = FloatBuffer(bs * hidden), a1 = FloatBuffer(bs * hidden)
        let h2 = FloatBuffer(bs * hidden), a2 = FloatBuffer(bs * hidden), logit = FloatBuffer(bs)
        var out: [Double] = []
        var start = 0
        while start < x.count {
            let m = min(bs, x.count - start)
            for k in 0..<m { (xb.base + k * inputs).update(from: x[start + k], count: inputs) }
            forward(xb.base, m, h1, a1, h2, a2, logit)
            for k in 0..<m { out.append(1 / (1 + exp(-Double(logit.base[k])))) }
            start += m
        }
        return out
    }
}

import Foundation
