/// What a `--churn` flag says: `off`, or a comma list of `KIND:EVERY[:DOWN]` in seconds (each with an optional
/// `s`). The soak and the simulator give the kinds their meaning.
public enum ChurnList {
    public struct Item: Sendable, Equatable {
        public var kind: Substring
        public var every: Double
        public var down: Double?

        public init(kind: Substring, every: Double, down: Double?) {
            self.kind = kind
            self.every = every
            self.down = down
        }
    }

    /// The items, empty for `off`; nil when one does not parse (times must be positive).
    public static func parse(_ argument: String) -> [Item]? {
        guard argument != "off" else { return [] }
        func seconds(_ s: Substring) -> Double? {
            Double(s.hasSuffix("s") ? s.dropLast() : s).flatMap { $0 > 0 ? $0 : nil }
        }
        var items: [Item] = []
        for item in argument.split(separator: ",") {
            let f = item.split(separator: ":")
            guard (2...3).contains(f.count), let every = seconds(f[1]) else { return nil }
            var down: Double?
            if f.count == 3 { guard let d = seconds(f[2]) else { return nil }; down = d }
            items.append(Item(kind: f[0], every: every, down: down))
        }
        return items
    }
}
