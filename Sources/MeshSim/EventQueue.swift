/// Events in time order: a min-heap on (time, order of scheduling), so equal times keep their order and a run is
/// the same on every machine. The heap moves small keys; the events stay put in slots. Four children a node: half
/// the depth of a binary heap, and a pop's comparisons on one cache line.
struct EventQueue<Event> {
    private struct Key {
        let at: Int64
        let order: Int
        let slot: Int
        static func < (a: Key, b: Key) -> Bool { a.at != b.at ? a.at < b.at : a.order < b.order }
    }

    private var heap: [Key] = []
    private var slots: [Event?] = []
    private var free: [Int] = []
    private var scheduled = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    var nextTime: Int64? { heap.first?.at }

    mutating func push(_ event: Event, at: Int64) {
        scheduled += 1
        let slot: Int
        if let reused = free.popLast() {
            slot = reused
            slots[slot] = event
        } else {
            slot = slots.count
            slots.append(event)
        }
        heap.append(Key(at: at, order: scheduled, slot: slot))
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 4
            guard heap[i] < heap[parent] else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// The next event (its time is `nextTime` before the pop): only the event, moved out, never copied.
    mutating func pop() -> Event? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let first = 4 * i + 1
            guard first < heap.count else { break }
            var smallest = i
            for c in first..<min(first + 4, heap.count) where heap[c] < heap[smallest] { smallest = c }
            guard smallest != i else { break }
            heap.swapAt(i, smallest)
            i = smallest
        }
        free.append(top.slot)
        return slots[top.slot].take()
    }
}
