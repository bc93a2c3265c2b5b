// Classifier two-sample test with a random forest: the classifier the published Simformer figures
// were computed with. The reference code evaluates with sbi 0.22's `c2st(..., classifier="rf")`, a
// scikit-learn RandomForestClassifier with its defaults; sbibm's own tables use the MLP of C2ST.swift.
// Same z-scoring and 5 shuffled folds as the MLP recipe; the forest, written on sbiwatch's own core:
// 100 CART trees, Gini impurity, each on a bootstrap sample of the training fold, grown until the
// leaves are pure, floor(sqrt(dim)) candidate features per split (more when none of those can split),
// thresholds halfway between neighbouring values; prediction = mean of the trees' leaf frequencies.
import Dispatch
import SbiCore

extension C2ST {
    /// Mean held-out accuracy of a random forest telling `reference` from `samples`; rows are points.
    public static func scoreRandomForest(reference: [[Double]], samples: [[Double]], seed: UInt64 = 1,
                                         trees: Int = 100, threads: Int = 2) -> Double {
        let prepared = standardise(reference: reference, samples: samples)
        let folds = 5
        let order = foldOrder(count: prepared.labels.count, seed: seed)
        var accuracies = [Double](repeating: 0, count: folds)
        let lock = DispatchQueue(label: "sbiwatch.c2st.rf")
        let workers = max(1, min(threads, folds))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var f = worker
            while f < folds {
                let (trainIdx, testIdx) = split(order, fold: f, of: folds)
                let forest = RandomForest(features: prepared.columns, labels: prepared.labels, rows: trainIdx,
                                          trees: trees, key: RandomKey(seed: seed).split(300 + UInt64(f)))
                var correct = 0
                for i in testIdx where (forest.probability(row: i) > 0.5 ? 1 : 0) == Int(prepared.labels[i]) { correct += 1 }
                let accuracy = Double(correct) / Double(testIdx.count)
                lock.sync { accuracies[f] = accuracy }
                f += workers
            }
        }
        return accuracies.reduce(0, +) / Double(folds)
    }
}

/// A forest of fully grown CART classification trees on two classes.
struct RandomForest {
    /// One tree as flat arrays: an inner node splits on `feature` at `threshold` (left: value <= threshold);
    /// a leaf has feature -1 and the fraction of class 1 among its training points in `threshold`.
    struct Tree {
        var feature: [Int32] = [], threshold: [Float] = [], left: [Int32] = [], right: [Int32] = []
    }

    let columns: [[Float]]
    private(set) var trees: [Tree] = []

    /// columns: (dim)(points); labels: (points) of 0/1; rows: the training points' indices.
    init(features columns: [[Float]], labels: [UInt8], rows: [Int], trees count: Int, key: RandomKey) {
        self.columns = columns
        let dim = columns.count
        let tries = max(1, Int(Double(dim).squareRoot()))
        var scratch = SplitScratch(points: rows.count, features: dim)
        for t in 0..<count {
            var rng = RandomStream(key: key.split(UInt64(t)))
            // bootstrap: |rows| draws with replacement
            var sample = (0..<rows.count).map { _ in Int32(rows[rng.int(below: rows.count)]) }
            var tree = Tree()
            grow(&tree, &sample, labels: labels, tries: tries, scratch: &scratch, rng: &rng)
            trees.append(tree)
        }
    }

    /// Working memory of bestSplit, allocated once per forest: one node's (value, label) pairs and
    /// the feature order of its partial shuffle.
    struct SplitScratch {
        var values: [(Float, UInt8)], candidates: [Int]
        init(points: Int, features: Int) {
            values = [(Float, UInt8)](repeating: (0, 0), count: points)
            candidates = Array(0..<features)
        }
    }

    /// Grows the tree over its bootstrap sample, depth first (a node, then its left subtree, then its
    /// right), with an explicit stack: a tree can be as deep as its sample is large.
    private func grow(_ tree: inout Tree, _ sample: inout [Int32], labels: [UInt8], tries: Int,
                      scratch: inout SplitScratch, rng: inout RandomStream) {
        // pending nodes: their range, and the parent whose left (or right) child they become (-1: the root)
        var pending: [(lo: Int, hi: Int, parent: Int32, isLeft: Bool)] = [(0, sample.count, -1, true)]
        while let (lo, hi, parent, isLeft) = pending.popLast() {
            let node = Int32(tree.feature.count)
            tree.feature.append(-1); tree.threshold.append(0); tree.left.append(-1); tree.right.append(-1)
            if parent >= 0 { if isLeft { tree.left[Int(parent)] = node } else { tree.right[Int(parent)] = node } }
            let n = hi - lo
            var ones = 0
            for k in lo..<hi { ones += Int(labels[Int(sample[k])]) }
            tree.threshold[Int(node)] = Float(ones) / Float(n)
            if ones == 0 || ones == n || n < 2 { continue }
            guard let split = bestSplit(sample, lo, hi, ones: ones, labels: labels, tries: tries, scratch: &scratch,
                                        rng: &rng) else { continue }
            // partition sample[lo..<hi]: values <= threshold first
            let column = columns[split.feature]
            var i = lo, j = hi - 1
            while i <= j {
                if column[Int(sample[i])] <= split.threshold { i += 1 } else { sample.swapAt(i, j); j -= 1 }
            }
            tree.feature[Int(node)] = Int32(split.feature); tree.threshold[Int(node)] = split.threshold
            pending.append((i, hi, node, false))
            pending.append((lo, i, node, true))
        }
    }

    /// The split of sample[lo..<hi] with the lowest weighted Gini impurity among `tries` random features,
    /// drawing further features while none of the drawn ones can split (constant in this node).
    private func bestSplit(_ sample: [Int32], _ lo: Int, _ hi: Int, ones: Int, labels: [UInt8], tries: Int,
                           scratch: inout SplitScratch, rng: inout RandomStream) -> (feature: Int, threshold: Float)? {
        let dim = columns.count, n = hi - lo
        for j in 0..<dim { scratch.candidates[j] = j }
        var best: (feature: Int, threshold: Float)? = nil
        var bestScore = -Double.infinity
        var examined = 0
        while examined < dim && (examined < tries || best == nil) {
            // draw the next feature without replacement (a partial Fisher-Yates shuffle)
            let pick = examined + rng.int(below: dim - examined)
            scratch.candidates.swapAt(examined, pick)
            let f = scratch.candidates[examined]
            examined += 1
            let column = columns[f]
            for k in 0..<n { let p = Int(sample[lo + k]); scratch.values[k] = (column[p], labels[p]) }
            scratch.values[0..<n].sort { $0.0 < $1.0 }
            if scratch.values[0].0 == scratch.values[n - 1].0 { continue }
            // Gini decrease is maximised by maximising sum over children of (count_c^2 summed over classes) / size
            var leftOnes = 0
            for k in 0..<(n - 1) {
                leftOnes += Int(scratch.values[k].1)
                if scratch.values[k].0 == scratch.values[k + 1].0 { continue }
                let nl = Double(k + 1), nr = Double(n - k - 1)
                let l1 = Double(leftOnes), l0 = nl - l1
                let r1 = Double(ones - leftOnes), r0 = nr - r1
                let score = (l1 * l1 + l0 * l0) / nl + (r1 * r1 + r0 * r0) / nr
                if score > bestScore {
                    bestScore = score
                    var mid = scratch.values[k].0 / 2 + scratch.values[k + 1].0 / 2
                    if mid >= scratch.values[k + 1].0 { mid = scratch.values[k].0 }   // rounding: keep the left value on the left
                    best = (f, mid)
                }
            }
        }
        return best
    }

    /// The forest's probability of class 1 for point `row` of `columns`.
    func probability(row: Int) -> Double {
        var sum = 0.0
        for tree in trees {
            var node = 0
            while tree.feature[node] >= 0 {
                node = Int(columns[Int(tree.feature[node])][row] <= tree.threshold[node] ? tree.left[node] : tree.right[node])
            }
            sum += Double(tree.threshold[node])
        }
        return sum / Double(trees.count)
    }
}
