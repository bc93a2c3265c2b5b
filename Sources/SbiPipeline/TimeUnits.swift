// Time coordinates of observation files: CF "UNIT since DATE" or a plain unit, converted to the
// unit of the model's time axis. The DATE of the file is the model's time 0 (the start of the
// simulated period), so values are used as offsets from it.
import SbiCore

enum TimeUnits {
    /// Seconds per unit for the unit words CF/UDUNITS commonly use; nil for an unknown word.
    static func seconds(ofUnit word: String) -> Double? {
        switch word.lowercased() {
        case "s", "sec", "secs", "second", "seconds": return 1
        case "min", "mins", "minute", "minutes": return 60
        case "h", "hr", "hrs", "hour", "hours": return 3600
        case "d", "day", "days": return 86400
        case "week", "weeks": return 7 * 86400
        default: return nil
        }
    }

    /// The unit word of a units attribute: "days since 2026-01-01" -> "days"; "days" -> "days".
    static func unitWord(_ units: String) -> String {
        let lower = units.lowercased()
        if let r = lower.range(of: " since ") { return String(lower[..<r.lowerBound]).trimmingCharacters(in: .whitespaces) }
        return lower.trimmingCharacters(in: .whitespaces)
    }

    /// Factor taking file times to model times. `fileUnits` nil or dimensionless ("1", ""): plain
    /// numbers in the model's unit. A model without a time unit takes any file unit as is.
    static func factor(fileUnits: String?, modelUnits: String?, context: String) throws -> Double {
        guard let fileUnits, !["", "1"].contains(fileUnits.trimmingCharacters(in: .whitespaces)) else { return 1 }
        let word = unitWord(fileUnits)
        guard let fileSeconds = seconds(ofUnit: word) else {
            throw SbiError(.badInput, "\(context): the units attribute \"\(fileUnits)\" is not a time unit sbiwatch knows",
                           hint: "use seconds, minutes, hours, days or weeks, optionally \"since DATE\" (e.g. \"days since 2026-01-01\")")
        }
        guard let modelUnits, let modelSeconds = seconds(ofUnit: unitWord(modelUnits)) else { return 1 }
        return fileSeconds / modelSeconds
    }
}
