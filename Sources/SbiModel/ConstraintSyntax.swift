// The constraint language (man sbiwatch, CONSTRAINTS): one constraint per expression, parsed into a
// linear form over model variables with bounds. Grammar (whitespace is free):
//
//   constraint := sum ('<=' | '>=' | '<' | '>') sum
//               | sum ('=' | '==' | '~=') sum '+-' number      (soft equality, tolerance)
//               | sum 'in' '[' number ',' number ']'           (interval)
//   sum        := ['-'] term (('+' | '-') term)*
//   term       := number | [number '*'] atom | atom ['*' number | '/' number]
//   atom       := NAME ['[' integer ']'] ['@' number]           (a value; @ a time for time-indexed ones)
//               | ('max' | 'min' | 'mean') '(' NAME ['[' integer ']'] '@' number ':' number ')'
//
// Both sides are linear, so everything moves to the left: sum_k w_k atom_k within [lower, upper].
// max and min must stand alone on one side (a factor scales the bounds); mean is linear.
import SbiCore

/// A reference to model values inside a constraint, with where it was written.
public struct ConstraintAtom: Equatable, Sendable {
    public enum Kind: String, Equatable, Sendable { case value, max, min, mean }
    public var kind: Kind
    public var name: String
    public var index: Int?
    /// The time of a `value` atom on a time-indexed variable (nil for fixed ones).
    public var time: Double?
    /// The time range of an aggregate.
    public var range: ClosedRange<Double>?
    /// Character offsets of the atom in the expression (for error pointers).
    public var span: Range<Int>
}

/// One parsed constraint: sum_k weight_k * atom_k within [lower, upper] (either side may be
/// infinite); with a tolerance, a soft equality sum = lower = upper, give or take the tolerance.
public struct ConstraintExpression: Sendable {
    public var text: String
    public var terms: [(weight: Double, atom: ConstraintAtom)]
    public var lower: Double
    public var upper: Double
    public var tolerance: Double?

    /// Parses one expression; errors quote it and point at the offending token (exit 65).
    public init(parsing text: String) throws {
        var parser = try ConstraintParser(text: text)
        self = try parser.parseConstraint()
    }

    init(text: String, terms: [(weight: Double, atom: ConstraintAtom)], lower: Double, upper: Double, tolerance: Double?) {
        self.text = text; self.terms = terms; self.lower = lower; self.upper = upper; self.tolerance = tolerance
    }

    /// Several expressions separated by ';' (the file attribute `sbiwatch_constraints`); empty ones are skipped.
    public static func parseList(_ text: String) throws -> [ConstraintExpression] {
        try text.split(separator: ";").map { String($0) }.filter { !$0.allSatisfy(\.isWhitespace) }
            .map { try ConstraintExpression(parsing: $0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// The error for a part of the expression: the message, the expression, and a caret under `span`.
    public static func error(_ text: String, _ span: Range<Int>, _ message: String, hint: String? = nil) -> SbiError {
        let start = max(0, min(span.lowerBound, text.count)), width = max(1, min(span.count, text.count - start))
        let pointer = String(repeating: " ", count: start) + String(repeating: "^", count: width)
        return SbiError(.badInput, "constraint '\(text)': \(message)\n    \(text)\n    \(pointer)",
                        hint: hint ?? "see `man sbiwatch`, CONSTRAINTS, for the grammar")
    }
}

/// A lexical token of the constraint language.
struct ConstraintToken: Equatable {
    enum Kind: Equatable { case number(Double), name(String), symbol(String), end }
    var kind: Kind
    var span: Range<Int>
}

/// Splits an expression into numbers, names and symbols.
func constraintTokens(_ text: String) throws -> [ConstraintToken] {
    let chars = Array(text)
    var out: [ConstraintToken] = []
    var i = 0
    let twoCharacter: Set<String> = ["<=", ">=", "==", "~=", "+-"]
    while i < chars.count {
        let c = chars[i]
        if c.isWhitespace { i += 1; continue }
        if c.isNumber || (c == "." && i + 1 < chars.count && chars[i + 1].isNumber) {
            var j = i
            while j < chars.count, chars[j].isNumber || chars[j] == "." { j += 1 }
            if j < chars.count, chars[j] == "e" || chars[j] == "E" {
                var k = j + 1
                if k < chars.count, chars[k] == "+" || chars[k] == "-" { k += 1 }
                if k < chars.count, chars[k].isNumber {
                    j = k
                    while j < chars.count, chars[j].isNumber { j += 1 }
                }
            }
            guard let v = Double(String(chars[i..<j])), v.isFinite else {
                throw ConstraintExpression.error(text, i..<j, "'\(String(chars[i..<j]))' is not a number")
            }
            out.append(ConstraintToken(kind: .number(v), span: i..<j)); i = j; continue
        }
        if c.isLetter || c == "_" {
            var j = i
            while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" { j += 1 }
            out.append(ConstraintToken(kind: .name(String(chars[i..<j])), span: i..<j)); i = j; continue
        }
        if i + 1 < chars.count, twoCharacter.contains(String(chars[i...i + 1])) {
            out.append(ConstraintToken(kind: .symbol(String(chars[i...i + 1])), span: i..<(i + 2))); i += 2; continue
        }
        guard "<>=+-*/()[],@:".contains(c) else {
            throw ConstraintExpression.error(text, i..<(i + 1), "unexpected character '\(c)'")
        }
        out.append(ConstraintToken(kind: .symbol(String(c)), span: i..<(i + 1))); i += 1
    }
    out.append(ConstraintToken(kind: .end, span: chars.count..<chars.count))
    return out
}

/// A recursive-descent parser over `constraintTokens`.
struct ConstraintParser {
    let text: String
    let tokens: [ConstraintToken]
    var position = 0

    init(text: String) throws {
        self.text = text
        tokens = try constraintTokens(text)
    }

    var current: ConstraintToken { tokens[position] }

    func fail(_ message: String, at token: ConstraintToken? = nil, hint: String? = nil) -> SbiError {
        let t = token ?? current
        let span = t.kind == .end ? max(0, text.count - 1)..<max(1, text.count) : t.span
        return ConstraintExpression.error(text, span, t.kind == .end ? "\(message) (the expression ends here)" : message, hint: hint)
    }

    mutating func accept(_ symbol: String) -> Bool {
        guard current.kind == .symbol(symbol) else { return false }
        position += 1
        return true
    }

    mutating func expect(_ symbol: String, _ what: String) throws {
        guard accept(symbol) else { throw fail("expected \(what)") }
    }

    mutating func number(_ what: String) throws -> Double {
        var sign = 1.0
        if accept("-") { sign = -1 } else { _ = accept("+") }
        guard case .number(let v) = current.kind else { throw fail("expected \(what)") }
        position += 1
        return sign * v
    }
}

extension ConstraintParser {
    mutating func parseConstraint() throws -> ConstraintExpression {
        guard current.kind != .end else { throw fail("the constraint is empty") }
        let left = try parseSum()
        let relationToken = current
        let relation: String
        switch relationToken.kind {
        case .symbol(let s) where ["<=", ">=", "<", ">", "=", "==", "~="].contains(s): relation = s
        case .name("in"): relation = "in"
        default: throw fail("expected a comparison (<=, >=, ~= VALUE +- TOL or 'in [LO, HI]')")
        }
        position += 1
        var expression: ConstraintExpression
        if relation == "in" {
            try expect("[", "'[' after 'in'")
            let lo = try number("the interval's lower end")
            try expect(",", "',' between the interval's ends")
            let hi = try number("the interval's upper end")
            try expect("]", "']' closing the interval")
            guard lo < hi else { throw fail("the interval's lower end must be below its upper end", at: relationToken) }
            expression = linearForm(left, ([], 0), lower: lo, upper: hi, tolerance: nil)
        } else {
            let right = try parseSum()
            var tolerance: Double?
            if ["=", "==", "~="].contains(relation) {
                guard accept("+-") else {
                    throw fail("an equality needs a tolerance", at: relationToken,
                               hint: "write it as EXPR ~= VALUE +- TOL (to fix a value exactly, observe it instead)")
                }
                let tol = try number("the tolerance after '+-'")
                guard tol > 0 else { throw fail("the tolerance must be positive", at: tokens[position - 1]) }
                tolerance = tol
            }
            switch relation {
            case "<=", "<": expression = linearForm(left, right, lower: -.infinity, upper: 0, tolerance: nil)
            case ">=", ">": expression = linearForm(left, right, lower: 0, upper: .infinity, tolerance: nil)
            default: expression = linearForm(left, right, lower: 0, upper: 0, tolerance: tolerance)
            }
        }
        guard current.kind == .end else { throw fail("unexpected text after the constraint") }
        try checkAggregates(&expression, relationToken)
        return expression
    }

    /// left - right within [lower, upper] shifted by the constants: sum w atom in [lower - c, upper - c].
    func linearForm(_ left: (terms: [(weight: Double, atom: ConstraintAtom)], constant: Double),
                    _ right: (terms: [(weight: Double, atom: ConstraintAtom)], constant: Double),
                    lower: Double, upper: Double, tolerance: Double?) -> ConstraintExpression {
        let terms = left.terms + right.terms.map { (weight: -$0.weight, atom: $0.atom) }
        let c = left.constant - right.constant
        return ConstraintExpression(text: text, terms: terms, lower: lower - c, upper: upper - c, tolerance: tolerance)
    }

    /// Refuses constant constraints, and max/min inside a sum; scales a lone max/min to weight 1.
    func checkAggregates(_ e: inout ConstraintExpression, _ relation: ConstraintToken) throws {
        guard !e.terms.isEmpty else { throw fail("the constraint names no variable", at: relation) }
        for t in e.terms where t.atom.kind == .max || t.atom.kind == .min {
            guard e.terms.count == 1 else {
                throw ConstraintExpression.error(text, t.atom.span, "\(t.atom.kind.rawValue)(...) must stand alone on one side",
                                                 hint: "compare it with a number, e.g. \(t.atom.kind.rawValue)(infected@30:50) <= 0.08")
            }
            guard e.tolerance == nil else {
                throw ConstraintExpression.error(text, t.atom.span, "\(t.atom.kind.rawValue)(...) takes bounds (<=, >=, in), not ~=")
            }
            // w * max(x) in [lo, hi]  ->  max(x) in [lo / w, hi / w], the bounds swapped for w < 0
            // (which is how a max on the right-hand side arrives)
            let (lo, hi) = t.weight > 0 ? (e.lower / t.weight, e.upper / t.weight) : (e.upper / t.weight, e.lower / t.weight)
            e = ConstraintExpression(text: e.text, terms: [(1, t.atom)], lower: lo, upper: hi, tolerance: nil)
        }
    }

    /// sum := ['-'] term (('+' | '-') term)*
    mutating func parseSum() throws -> (terms: [(weight: Double, atom: ConstraintAtom)], constant: Double) {
        var terms: [(weight: Double, atom: ConstraintAtom)] = [], constant = 0.0
        var sign = 1.0
        if accept("-") { sign = -1 } else { _ = accept("+") }
        while true {
            let (w, atom) = try parseTerm()
            if let atom { terms.append((sign * w, atom)) } else { constant += sign * w }
            if accept("+") { sign = 1 } else if accept("-") { sign = -1 } else { break }
        }
        return (terms, constant)
    }

    /// term := number | [number '*'] atom | atom ['*' number | '/' number]: (factor, atom or nil for a constant).
    mutating func parseTerm() throws -> (Double, ConstraintAtom?) {
        var factor = 1.0
        var atom: ConstraintAtom?
        if case .number(let v) = current.kind {
            position += 1
            factor = v
            guard accept("*") else {
                if case .name(let w) = current.kind, w != "in" { throw fail("write a factor with '*', e.g. 2*\(w)") }
                return (factor, nil)
            }
        }
        guard case .name = current.kind else { throw fail("expected a variable, a number or max/min/mean(...)") }
        atom = try parseAtom()
        if let a = atom, a.kind == .value, a.range != nil {
            throw ConstraintExpression.error(text, a.span, "a time range needs max(...), min(...) or mean(...) around it",
                                             hint: "e.g. max(\(a.name)@\(num(a.range!.lowerBound)):\(num(a.range!.upperBound))) <= VALUE")
        }
        while true {
            if accept("*") {
                guard case .number(let v) = current.kind else { throw fail("a non-linear term: only numbers may multiply a variable",
                                                                            hint: "constraints are linear in the model's values") }
                position += 1; factor *= v
            } else if accept("/") {
                guard case .number(let v) = current.kind, v != 0 else { throw fail("only a non-zero number may divide a variable") }
                position += 1; factor /= v
            } else { break }
        }
        if case .symbol("(") = current.kind { throw fail("a function call: only max, min and mean are known") }
        if case .name(let word) = current.kind, word != "in" {
            throw fail("a non-linear term or a missing operator", hint: "constraints are linear in the model's values")
        }
        return (factor, atom)
    }

    func num(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x) }

    func nameText(_ t: ConstraintToken) -> String { if case .name(let s) = t.kind { return s }; return "" }
}

extension ConstraintParser {
    /// atom := NAME ['[' i ']'] ['@' t]  |  max|min|mean '(' NAME ['[' i ']'] '@' lo ':' hi ')'
    mutating func parseAtom() throws -> ConstraintAtom {
        guard case .name(let word) = current.kind else { throw fail("expected a variable name") }
        let start = current.span.lowerBound
        position += 1
        if ["max", "min", "mean"].contains(word), accept("(") {
            let inner = try parseAtom()
            guard inner.kind == .value, inner.range != nil else {
                throw ConstraintExpression.error(text, inner.span, "\(word)(...) takes a time range, e.g. \(word)(\(inner.name)@30:50)")
            }
            try expect(")", "')' closing \(word)(")
            var a = inner
            a.kind = ConstraintAtom.Kind(rawValue: word)!
            a.span = start..<tokens[position - 1].span.upperBound
            return a
        }
        var index: Int?
        if accept("[") {
            let t = current
            guard case .number(let v) = t.kind, v >= 0, v == v.rounded(), v < 1e9 else { throw fail("the index in brackets must be a whole number") }
            position += 1
            index = Int(v)
            try expect("]", "']' closing the index")
        }
        var time: Double?, range: ClosedRange<Double>?
        if accept("@") {
            let t0 = try number("a time after '@'")
            if accept(":") {
                let t1 = try number("the end of the time range")
                guard t0 < t1 else { throw fail("the time range must run from an earlier to a later time", at: tokens[position - 1]) }
                range = t0...t1
            } else { time = t0 }
        }
        return ConstraintAtom(kind: .value, name: word, index: index, time: time, range: range,
                              span: start..<tokens[position - 1].span.upperBound)
    }
}
