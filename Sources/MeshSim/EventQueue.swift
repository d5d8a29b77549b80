/// Events in time order: a binary min-heap on (time, order of scheduling), so equal times keep their order
/// and a run is the same on every machine. The heap moves small keys; the events stay put in slots.
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
            let parent = (i - 1) / 2
            guard heap[i] < heap[parent] else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (at: Int64, event: Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < heap.count, heap[l] < heap[smallest] { smallest = l }
            if r < heap.count, heap[r] < heap[smallest] { smallest = r }
            guard smallest != i else { break }
            heap.swapAt(i, smallest)
            i = smallest
        }
        let event = slots[top.slot].take()!
        free.append(top.slot)
        return (top.at, event)
    }
}
