// Time coordinates of observation files: CF "UNIT since DATE" or a plain unit, converted to the
// unit of the model's time axis. The DATE of the file is the model's time 0 (the start of the
// simulated period), so values are used as offsets from it.
import Foundation
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
        // searched case-insensitively in the string itself: lower-casing can change its length
        if let r = fileUnits.range(of: " since ", options: .caseInsensitive) {
            let date = String(fileUnits[r.upperBound...]).trimmingCharacters(in: .whitespaces)
            guard isReferenceTime(date) else {
                throw SbiError(.badInput, "\(context): the units attribute \"\(fileUnits)\" has the reference time \"\(date)\", which is not a date",
                               hint: "write the reference as a calendar date, e.g. \"days since 2026-10-01\" or \"hours since 2026-10-01 06:00:00\"")
            }
        }
        guard let fileSeconds = seconds(ofUnit: word) else {
            throw SbiError(.badInput, "\(context): the units attribute \"\(fileUnits)\" is not a time unit sbiwatch knows",
                           hint: "use seconds, minutes, hours, days or weeks, optionally \"since DATE\" (e.g. \"days since 2026-01-01\")")
        }
        guard let modelUnits, let modelSeconds = seconds(ofUnit: unitWord(modelUnits)) else { return 1 }
        return fileSeconds / modelSeconds
    }

    /// A CF reference time: YYYY-MM-DD (a real day of the Gregorian calendar), optionally followed
    /// by a time of day (" " or "T", HH:MM[:SS[.fff]]) and a zone ("Z", "UTC", "GMT", +HH[:MM]).
    static func isReferenceTime(_ text: String) -> Bool {
        var rest = Substring(text)
        guard let date = prefix(&rest, while: { $0.isNumber || $0 == "-" }), isDate(date) else { return false }
        if rest.isEmpty { return true }
        guard rest.first == " " || rest.first == "T" || rest.first == "t" else { return false }
        rest = rest.dropFirst().drop(while: { $0 == " " })
        if let time = prefix(&rest, while: { $0.isNumber || $0 == ":" || $0 == "." }), !time.isEmpty {
            guard isTimeOfDay(time) else { return false }
        }
        let zone = rest.trimmingCharacters(in: .whitespaces)
        return zone.isEmpty || isZone(zone)
    }

    private static func prefix(_ s: inout Substring, while keep: (Character) -> Bool) -> Substring? {
        let head = s.prefix(while: keep)
        s = s.dropFirst(head.count)
        return head
    }

    private static func isDate(_ s: Substring) -> Bool {
        let parts = s.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, (1...4).contains(parts[0].count), (1...2).contains(parts[1].count), (1...2).contains(parts[2].count),
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1...12).contains(m) else { return false }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let days = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]
        return (1...days).contains(d)
    }

    private static func isTimeOfDay(_ s: Substring) -> Bool {
        // H[H][:M[M][:S[S][.fff]]], as CF and UDUNITS write it ("0:0:0", "15:15:42.5")
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count), parts.prefix(2).allSatisfy({ (1...2).contains($0.count) }),
              let h = Int(parts[0]), (0...23).contains(h) else { return false }
        guard parts.count >= 2 else { return true }
        guard let m = Int(parts[1]), (0...59).contains(m) else { return false }
        guard parts.count == 3 else { return true }
        guard let sec = Double(parts[2]), sec >= 0, sec < 61 else { return false }
        return true
    }

    private static func isZone(_ z: String) -> Bool {
        if ["z", "utc", "gmt"].contains(z.lowercased()) { return true }
        // ±H, ±HH, ±H:MM, ±HH:MM or ±HHMM
        guard let sign = z.first, sign == "+" || sign == "-" else { return false }
        let body = z.dropFirst()
        let parts = body.split(separator: ":", omittingEmptySubsequences: false)
        let (hours, minutes): (Substring, Substring?)
        if parts.count == 2 { (hours, minutes) = (parts[0], parts[1]) }
        else if body.count == 4 { (hours, minutes) = (body.prefix(2), body.suffix(2)) }
        else { (hours, minutes) = (body, nil) }
        guard (1...2).contains(hours.count), hours.allSatisfy(\.isNumber), let hh = Int(hours), hh <= 14 else { return false }
        guard let minutes else { return true }
        return minutes.count == 2 && minutes.allSatisfy(\.isNumber) && (Int(minutes) ?? 60) < 60
    }
}

/// The date at model time 0 of a file whose time units are "UNIT since DATE", and the length of
/// one model time unit, so reports can label time axes with calendar dates.
public struct CalendarOrigin: Codable, Equatable, Sendable {
    /// The reference date, YYYY-MM-DD.
    public var date: String
    /// The reference time of day, in seconds after midnight.
    public var offsetSeconds: Double
    public var secondsPerUnit: Double

    enum CodingKeys: String, CodingKey {
        case date
        case offsetSeconds = "offset_seconds", secondsPerUnit = "seconds_per_unit"
    }

    /// nil unless `units` is "UNIT since DATE[ TIME]" with a known unit (zone offsets are not applied: UTC).
    init?(units: String?, modelUnits: String?) {
        guard let units, let r = units.lowercased().range(of: " since ") else { return nil }
        let rest = units[r.upperBound...].trimmingCharacters(in: .whitespaces)
        guard TimeUnits.isReferenceTime(rest), let fileSeconds = TimeUnits.seconds(ofUnit: TimeUnits.unitWord(units)) else { return nil }
        let parts = rest.split(whereSeparator: { $0 == " " || $0 == "T" || $0 == "t" })
        let day = parts[0].split(separator: "-").compactMap { Int($0) }
        guard day.count == 3 else { return nil }
        date = String(format: "%04d-%02d-%02d", day[0], day[1], day[2])
        // a time of day, HH:MM[:SS[.fff]], moves the origin within the day
        let clock = parts.count > 1 ? parts[1].split(separator: ":").compactMap { Double($0) } : []
        offsetSeconds = zip(clock, [3600.0, 60, 1]).reduce(0) { $0 + $1.0 * $1.1 }
        secondsPerUnit = modelUnits.flatMap { TimeUnits.seconds(ofUnit: TimeUnits.unitWord($0)) } ?? fileSeconds
    }

    /// "2026-10-14" for model time t (the day it falls on, UTC).
    public func label(_ t: Double) -> String {
        let day = date.split(separator: "-").compactMap { Int($0) }
        var c = DateComponents()
        c.year = day[0]; c.month = day[1]; c.day = day[2]
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        guard let origin = calendar.date(from: c) else { return date }
        let f = DateFormatter()
        f.calendar = calendar; f.timeZone = calendar.timeZone; f.locale = Locale(identifier: "en_US_POSIX")
        f.dateFormat = "yyyy-MM-dd"
        return f.string(from: origin.addingTimeInterval(offsetSeconds + t * secondsPerUnit))
    }
}
