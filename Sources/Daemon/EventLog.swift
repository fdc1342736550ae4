import FleetAPI
import Synchronization

/// This peer's bounded history of changes for `GET /flotilla/v1/watch`. Indexes increase by one
/// per event; when the history is full the oldest events are dropped, and a watcher asking from
/// before the oldest kept one is told to re-list (`isTruncated`), as etcd's compacted watches do.
final class EventLog: Sendable {
    private struct State {
        var events: [FlotillaEvent] = []
        var lastIndex: UInt64 = 0
    }
    private let state = Mutex(State())
    let notifier = ChangeNotifier()
    let eventsMax: Int
    /// Events returned by one page.
    let pageEventsMax: Int

    init(eventsMax: Int = 10_000, pageEventsMax: Int = 1_000) {
        precondition(eventsMax > 0 && pageEventsMax > 0, "event log bounds must be positive")
        self.eventsMax = eventsMax
        self.pageEventsMax = pageEventsMax
    }

    var lastIndex: UInt64 { state.withLock { $0.lastIndex } }

    func append(_ make: [(kind: FlotillaEvent.Kind, subject: String, unit: FleetUnit?, state: FleetUnitState?, machine: FlotillaMachine?)]) {
        guard !make.isEmpty else { return }
        state.withLock { state in
            for item in make {
                state.lastIndex += 1
                state.events.append(FlotillaEvent(index: state.lastIndex, kind: item.kind, subject: item.subject,
                                                  unit: item.unit, state: item.state, machine: item.machine))
            }
            if state.events.count > eventsMax { state.events.removeFirst(state.events.count - eventsMax) }
        }
        notifier.notifyAll()
    }

    func page(afterIndex: UInt64, waitMilliseconds: Int) async -> FlotillaEventPage {
        await notifier.wait(timeoutMilliseconds: waitMilliseconds) { self.lastIndex > afterIndex }
        return state.withLock { state in
            let oldest = state.events.first?.index ?? state.lastIndex + 1
            let truncated = afterIndex + 1 < oldest && afterIndex < state.lastIndex
            let selected = state.events.lazy.filter { $0.index > afterIndex }.prefix(pageEventsMax)
            let events = Array(selected)
            return FlotillaEventPage(events: events, lastIndex: events.last?.index ?? max(afterIndex, state.lastIndex),
                                     isTruncated: truncated)
        }
    }
}
