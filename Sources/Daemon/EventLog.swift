import FleetAPI
import Locking

/// This peer's bounded history of changes for `GET /flotilla/v1/watch`. Indexes increase by one
/// per event; when the history is full the oldest events are dropped, and a watcher asking from
/// before the oldest kept one is told to re-list (`isTruncated`), as etcd's compacted watches do.
final class EventLog: Sendable {
    private struct State {
        var events: [FlotillaEvent] = []
        var lastIndex: UInt64 = 0
    }
    private let state = Locked(State())
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

    /// Events after `afterIndex`, waiting up to `waitMilliseconds` for one. A watcher whose
    /// index this log never reached (it watched a previous leader, whose sequence this peer does
    /// not continue) is told at once to re-list, like one that fell behind the history.
    func page(afterIndex: UInt64, waitMilliseconds: Int) async -> FlotillaEventPage {
        await notifier.wait(timeoutMilliseconds: waitMilliseconds) { self.lastIndex != afterIndex }
        return state.withLock { state in
            if afterIndex > state.lastIndex {
                return FlotillaEventPage(events: [], lastIndex: state.lastIndex, isTruncated: true)
            }
            let oldest = state.events.first?.index ?? state.lastIndex + 1
            let truncated = afterIndex < state.lastIndex && afterIndex < oldest - 1
            let events = Array(state.events.lazy.filter { $0.index > afterIndex }.prefix(pageEventsMax))
            return FlotillaEventPage(events: events, lastIndex: events.last?.index ?? afterIndex, isTruncated: truncated)
        }
    }
}
