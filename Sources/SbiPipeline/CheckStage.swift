// Stage 3 of the pipeline: the file's draws checked against its model (out of distribution,
// posterior predictive per series, contraction, the model's calibration) and the verdict.
import SbiChecks
import SbiCore

extension FileChecks {
    /// The checks of one file's draws; their predictive replicates are seeded apart from the draws.
    /// They judge the observations against the model, so a file with constraints is checked with its
    /// draws without them (a budget the data do not favour is not a misfit of the model); the
    /// contraction on the report's rows is that of the draws they summarise.
    static func check(_ read: ReadObservation, draws: Draws, input: InputFile, threads: Int?) throws -> FileChecks {
        do {
            return try FileChecks.run(read.model.trust, plan: read.observation.plan, draws: draws.unconstrained ?? draws.rows,
                                      reported: draws.rows, settings: draws.request.settings,
                                      key: RandomKey(seed: draws.request.seed).split(0x99C), threads: threads)
        } catch let e as SbiError {
            throw e.about(input.displayName)
        }
    }
}
