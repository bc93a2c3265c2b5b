// The out-of-distribution check: could these observations come from the simulator's prior
// predictive? The statistic is the mean standardised squared distance to the k nearest reference
// simulations, read at the file's own observation times; its p-value is conformal: the rank of
// the file's statistic among the statistics of the references themselves (each against the others
// and the file: full conformal), so a well-specified file gets a p-value uniform on
// {1/(n+1), ..., 1} whatever the design.
import Foundation

public enum OutOfDistribution {
    /// Neighbours averaged in the statistic.
    public static let neighbours = 5

    /// The statistic and conformal p-value of `observed` (points) against `reference` (n, points).
    public static func test(observed: [Double], reference: [[Double]]) -> (statistic: Double, pValue: Double) {
        let n = reference.count, m = observed.count
        precondition(n > neighbours && m > 0)
        let scale = (0..<m).map { j -> Double in
            let s = standardDeviation(reference.map { $0[j] })
            let typical = reference.reduce(0.0) { $0 + abs($1[j]) } / Double(n)
            return 1 / max(s, 1e-6 * typical, 1e-12)
        }
        // distance(a, b): mean over points of ((a - b) * scale)^2
        func distance(_ a: [Double], _ b: [Double]) -> Double {
            var d = 0.0
            for j in 0..<m { let z = (a[j] - b[j]) * scale[j]; d += z * z }
            return d / Double(m)
        }
        func knn(_ distances: [Double]) -> Double {
            distances.sorted().prefix(neighbours).reduce(0, +) / Double(neighbours)
        }
        let statistic = knn(reference.map { distance(observed, $0) })
        var pairwise = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for a in 0..<n { for b in (a + 1)..<n {
            let d = distance(reference[a], reference[b])
            pairwise[a][b] = d; pairwise[b][a] = d
        } }
        // each reference scored against the others and the file (full conformal: exchangeable under the null)
        var atLeast = 0
        for a in 0..<n {
            var row = pairwise[a]
            row[a] = distance(observed, reference[a])
            if knn(row) >= statistic { atLeast += 1 }
        }
        return (statistic, Double(1 + atLeast) / Double(n + 1))
    }
}
