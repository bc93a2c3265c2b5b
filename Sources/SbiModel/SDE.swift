// The forward noising processes of METHOD.md ("SDE and loss"): x_t = mu(t) x_0 + sigma(t) eps.
import Foundation

/// A linear SDE dx = f(t) x dt + g(t) dW with Gaussian marginals p(x_t | x_0) = N(mu(t) x_0, sigma(t)^2).
public enum SDE: Codable, Hashable, Sendable {
    /// Variance exploding: sigma(t) = sigmaMin (sigmaMax/sigmaMin)^t, mu = 1, f = 0,
    /// g(t) = sigma(t) sqrt(2 ln(sigmaMax/sigmaMin)).
    case ve(sigmaMin: Double, sigmaMax: Double)
    /// Variance preserving: beta(t) = betaMin + t (betaMax - betaMin), mu = exp(-B(t)/2) with
    /// B(t) = int_0^t beta, sigma^2 = 1 - exp(-B(t)), f = -beta/2, g = sqrt(beta).
    case vp(betaMin: Double, betaMax: Double)

    public static let defaultVE = SDE.ve(sigmaMin: 1e-4, sigmaMax: 15)
    public static let defaultVP = SDE.vp(betaMin: 0.01, betaMax: 10)

    /// Training and sampling run on t in [tMin, 1].
    public static let tMin = 1e-5
    /// The network output is divided by max(sigma(t), outputScaleMin) to give the score.
    public static let outputScaleMin = 1e-3

    public var name: String {
        switch self { case .ve: "ve"; case .vp: "vp" }
    }

    public func mean(_ t: Double) -> Double {
        switch self {
        case .ve: return 1
        case let .vp(b0, b1): return exp(-0.5 * (b0 * t + 0.5 * t * t * (b1 - b0)))
        }
    }

    public func std(_ t: Double) -> Double {
        switch self {
        case let .ve(s0, s1): return s0 * pow(s1 / s0, t)
        case let .vp(b0, b1):
            let integral = b0 * t + 0.5 * t * t * (b1 - b0)
            return max(-expm1(-integral), 1e-12).squareRoot()
        }
    }

    /// Drift coefficient f(t) in dx = f(t) x dt + g(t) dW.
    public func driftCoefficient(_ t: Double) -> Double {
        switch self {
        case .ve: return 0
        case let .vp(b0, b1): return -0.5 * (b0 + t * (b1 - b0))
        }
    }

    public func diffusion(_ t: Double) -> Double {
        switch self {
        case let .ve(s0, s1): return std(t) * (2 * log(s1 / s0)).squareRoot()
        case let .vp(b0, b1): return (b0 + t * (b1 - b0)).squareRoot()
        }
    }

    /// Denoising score matching weight lambda(t): g(t)^2 (VE) or sigma(t)^2 (VP).
    public func lossWeight(_ t: Double) -> Double {
        switch self {
        case .ve: let g = diffusion(t); return g * g
        case .vp: let s = std(t); return max(s * s, 1e-4)
        }
    }

    /// Std of the initial distribution for a variable with data mean m and variance v:
    /// VE: N(m, sqrt(v + sigmaMax^2)); VP: N(mu(1) m, sqrt(mu(1)^2 v + sigma(1)^2)).
    public func initialStd(dataVariance v: Double) -> Double {
        let m1 = mean(1), s1 = std(1)
        return (m1 * m1 * v + s1 * s1).squareRoot()
    }
}
