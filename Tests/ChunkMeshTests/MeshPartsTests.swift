@testable import ChunkMesh
@testable import MeshCore
import NIOCore
import XCTest

/// The parts `MeshPeer` is made of, each on its own: no links, no clock, no other part.
final class MeshPartsTests: XCTestCase {
    private func chunk(_ seq: UInt64, randomAccess: Bool = false) -> Chunk {
        Chunk(seq: seq, epoch: 1, ingestTime: Int64(seq) * 200_000, pts: 0, duration: 200_000,
              flags: randomAccess ? .randomAccess : [], payload: ByteBuffer(bytes: [0x47]))
    }

    private func info(_ id: PeerID, units: Int = 4, delay: Int64? = 1_000, parent: PeerID? = nil) -> PeerInfo {
        PeerInfo(id: id, delays: [delay, delay], residualUnits: units, scheduleDelay: 1_000,
                 ancestors: [parent.map { [$0] } ?? [], parent.map { [$0] } ?? []], epoch: 1)
    }

    // MARK: ChunkWindow

    func testTheWindowKeepsItsCapacityAndResumesAfterWhatItHolds() {
        var window = ChunkWindow(capacity: 8)
        for seq in 0..<20 { window.insert(chunk(UInt64(seq)), substream: seq % 2) }
        XCTAssertEqual(window.low, 12)
        XCTAssertNil(window[11])
        XCTAssertNotNil(window[12])
        XCTAssertEqual(window.newest, 19)
        XCTAssertEqual(window.resumeSeq(for: [0]), 19, "after the newest of substream 0 (18)")
        XCTAssertEqual(window.resumeSeq(for: [0, 1]), 19)
        XCTAssertTrue(window.isFarAhead(28))
        XCTAssertFalse(window.isFarAhead(27))
    }

    /// How far a substream lags the others here: a peer whose parent there passes nothing on (a mute above it)
    /// sees it grow, and stops telling a delay for it.
    func testHowFarASubstreamIsBehindTheOthers() {
        var window = ChunkWindow(capacity: 64)
        XCTAssertEqual(window.behind(in: 1), 0, "nothing held yet")
        for seq: UInt64 in 10..<30 where seq % 4 != 1 { window.insert(chunk(seq), substream: Int(seq % 4)) }
        XCTAssertEqual(window.behind(in: 0), 0, "28, the newest, is substream 0's")
        XCTAssertEqual(window.behind(in: 2), 2, "26 held")
        XCTAssertEqual(window.behind(in: 1), 18, "never had: counted from the first chunk held (10)")
        window.insert(chunk(29), substream: 1)
        XCTAssertEqual(window.behind(in: 1), 0)
        XCTAssertEqual(window.behind(in: 0), 1)
    }

    /// A substream never had resumes after the first chunk held, not after the newest: the origin reads from it
    /// how long an asker has gone without (a mute sole holder), and the parent sends no more than its horizon back.
    func testASubstreamNeverHadResumesAfterTheFirstChunkHeld() {
        var window = ChunkWindow(capacity: 64)
        XCTAssertEqual(window.resumeSeq(for: [1]), 0, "a newcomer")
        for seq: UInt64 in 10..<30 where seq % 4 != 1 { window.insert(chunk(seq), substream: Int(seq % 4)) }
        XCTAssertEqual(window.resumeSeq(for: [1]), 11, "never had: after the first chunk held (10)")
        XCTAssertEqual(window.resumeSeq(for: [0, 1]), 11, "the one behind decides")
        XCTAssertEqual(window.resumeSeq(for: [0, 2]), 27, "after 26, the newest of substream 2")
    }

    func testANewcomersBacklogStartsAtTheNewestRandomAccessChunk() {
        var window = ChunkWindow(capacity: 32, horizon: 4)
        for seq in 0..<20 { window.insert(chunk(UInt64(seq), randomAccess: seq % 5 == 0), substream: 0) }
        XCTAssertEqual(window.backlog(from: 0, in: { _ in true }).map(\.seq), [15, 16, 17, 18, 19])
        XCTAssertEqual(window.backlog(from: 3, in: { _ in true }).map(\.seq), [15, 16, 17, 18, 19], "never past the horizon")
        XCTAssertEqual(window.backlog(from: 17, in: { $0 % 2 == 0 }).map(\.seq), [18])
    }

    func testRepairsAskForGapsBehindTheNewestOfTheirSubstreamOnlyAndNotTooOften() {
        var window = ChunkWindow(capacity: 64, horizon: 100)
        for seq: UInt64 in [0, 1, 2, 3, 5, 6, 7] { window.insert(chunk(seq), substream: Int(seq % 4), substreams: 4, now: 800_000) }
        XCTAssertNil(window.repairWakeup, "4 may still be on its way: 5-7 are of other substreams")
        window.insert(chunk(8), substream: 0, substreams: 4, now: 900_000)
        XCTAssertEqual(window.repairWakeup, 900_000 + ChunkWindow.firstAskAfter, "4 is behind its substream's newest: asked a tick on")
        for seq: UInt64 in [9, 10, 11] { window.insert(chunk(seq), substream: Int(seq % 4), substreams: 4, now: 950_000) }
        XCTAssertEqual(window.repairWakeup, 900_000 + ChunkWindow.firstAskAfter, "nothing new missing")
        XCTAssertTrue(window.hasGap(substreams: 4))
        let first = window.repairsDue(now: 1_000_000, substreams: 4, retryAfter: 400_000)
        XCTAssertEqual(first.map(\.seq), [4])
        XCTAssertEqual(first.map(\.tries), [1])
        XCTAssertTrue(window.wasAsked(4))
        // The peer sleeps until the ask may be made again, not a tick at a time.
        XCTAssertEqual(window.repairWakeup, 1_400_001)
        XCTAssertEqual(window.repairsDue(now: 1_200_000, substreams: 4, retryAfter: 400_000).map(\.seq), [], "asked lately")
        XCTAssertEqual(window.repairWakeup, 1_400_001)
        XCTAssertEqual(window.repairsDue(now: 1_400_001, substreams: 4, retryAfter: 400_000).map(\.tries), [2])
        window.insert(chunk(4), substream: 0, substreams: 4, now: 1_500_000)
        XCTAssertFalse(window.hasGap(substreams: 4))
        XCTAssertFalse(window.wasAsked(4))
        XCTAssertEqual(window.repairsDue(now: 1_600_000, substreams: 4, retryAfter: 400_000).map(\.seq), [])
        XCTAssertNil(window.repairWakeup, "nothing missing: no wake-up")
        // 12 is not missing yet: 13-15 may still be on their way from other parents.
        window.insert(chunk(16), substream: 0, substreams: 4, now: 1_900_000)
        XCTAssertEqual(window.repairWakeup, 1_900_000 + ChunkWindow.firstAskAfter)
        XCTAssertEqual(window.repairsDue(now: 2_000_000, substreams: 4, retryAfter: 400_000).map(\.seq), [12])
    }

    func testARepairScanCutShortByItsLimitComesBackForTheRest() {
        var window = ChunkWindow(capacity: 64, horizon: 100)
        window.insert(chunk(0), substream: 0, substreams: 1, now: 0)
        window.insert(chunk(20), substream: 0, substreams: 1, now: 0)
        XCTAssertEqual(window.repairsDue(now: 100_000, substreams: 1, retryAfter: 400_000, limit: 8).map(\.seq), Array(1...8))
        XCTAssertEqual(window.repairWakeup, 100_000 + ChunkWindow.firstAskAfter, "11 more missing, not asked yet")
        XCTAssertEqual(window.repairsDue(now: 200_000, substreams: 1, retryAfter: 400_000, limit: 8).map(\.seq), Array(9...16))
    }

    // MARK: ChildSet

    /// The origin's sole holder of a substream gives its unit up once three askers were refused it within the
    /// window (each asker once), and not again within `preemptProtection`; never while another child takes it.
    func testASoleHolderGivesItsUnitUpToTheThirdStarvedAsker() {
        var children = ChildSet()
        children.add("mute:1", [0, 1])
        children.add("relay:1", [1])
        let t: Int64 = 100_000_000
        XCTAssertNil(children.replaceSoleHolder(of: 1, for: "a:1", now: t), "two take substream 1")
        XCTAssertNil(children.replaceSoleHolder(of: 0, for: "a:1", now: t))
        XCTAssertNil(children.replaceSoleHolder(of: 0, for: "a:1", now: t + 1), "the same asker again")
        XCTAssertNil(children.replaceSoleHolder(of: 0, for: "a:2", now: t + 2))
        XCTAssertEqual(children.replaceSoleHolder(of: 0, for: "a:3", now: t + 3), "mute:1")
        XCTAssertEqual(children.substreams["mute:1"], [1], "its unit of substream 0 is gone")
        XCTAssertEqual(children.fanOut(of: 0), 0, "the asker takes it (the caller adds it)")
        children.add("a:3", [0])
        for (i, asker) in ["b:1", "b:2", "b:3", "b:4"].enumerated() {
            XCTAssertNil(children.replaceSoleHolder(of: 0, for: PeerID(stringLiteral: asker), now: t + 4 + Int64(i)),
                         "not again within the protection")
        }
        // Past the protection, and the askers refused during it gone from the window.
        let later = t + max(ChildSet.preemptProtection, ChildSet.doubtWindow) + 10
        XCTAssertNil(children.replaceSoleHolder(of: 0, for: "c:1", now: later))
        XCTAssertNil(children.replaceSoleHolder(of: 0, for: "c:2", now: later))
        XCTAssertEqual(children.replaceSoleHolder(of: 0, for: "c:3", now: later), "a:3")
        // Askers refused long ago do not count.
        var fresh = ChildSet()
        fresh.add("h:1", [2])
        XCTAssertNil(fresh.replaceSoleHolder(of: 2, for: "d:1", now: t))
        XCTAssertNil(fresh.replaceSoleHolder(of: 2, for: "d:2", now: t))
        XCTAssertNil(fresh.replaceSoleHolder(of: 2, for: "d:3", now: t + ChildSet.doubtWindow + 1), "two of three too old")
    }

    func testALinkCarriesAChunkOnceAndRepairsComeFromABudget() {
        var children = ChildSet()
        children.add("c:1", [0, 1])
        XCTAssertTrue(children.markSent(7, to: "c:1"))
        XCTAssertFalse(children.markSent(7, to: "c:1"))
        XCTAssertEqual(children.usedUnits, 2)
        XCTAssertEqual(children.receivers(of: 1, endOfStream: false), ["c:1"])
        XCTAssertEqual(children.receivers(of: 2, endOfStream: false), [])
        XCTAssertEqual(children.receivers(of: 2, endOfStream: true), ["c:1"])
        let granted = (0..<20).filter { _ in children.takeRepair(for: "c:1", now: 0, chunkDuration: 200_000) }.count
        XCTAssertEqual(granted, ChildSet.repairBurst)
        XCTAssertTrue(children.takeRepair(for: "c:1", now: 200_000, chunkDuration: 200_000), "a chunk duration refills one")
        children.drop("c:1")
        XCTAssertTrue(children.isEmpty)
        XCTAssertTrue(children.markSent(7, to: "c:1"), "a new link owes nothing of the old one")
    }

    func testOnlyAMuchStrongerAskerEvictsAChildAndNotOverAndOver() {
        var children = ChildSet()
        children.add("weak:1", [0])
        children.add("mid:1", [0])
        let sched: [PeerID: Int64] = ["weak:1": 9_000, "mid:1": 4_000, "strong:1": 2_000, "strong:2": 2_000, "same:1": 7_000]
        XCTAssertNil(children.weaker(than: "same:1", askerSched: 7_000, in: 0, now: 0, sched: { sched[$0] }), "not 1.5× stronger")
        XCTAssertEqual(children.weaker(than: "strong:1", askerSched: 2_000, in: 0, now: 0, sched: { sched[$0] }), "weak:1")
        children.preempt("weak:1", for: "strong:1", in: 0, now: 0)
        children.add("strong:1", [0])
        children.add("weak:1", [0])
        XCTAssertEqual(children.weaker(than: "strong:2", askerSched: 2_000, in: 0, now: 1_000_000, sched: { sched[$0] }), "mid:1",
                       "the evicted child is protected a while")
        XCTAssertNil(children.weaker(than: "strong:1", askerSched: 2_000, in: 0, now: 1_000_000, sched: { sched[$0] }),
                     "an asker evicts once in a while")
    }

    /// lsp2p-sim check seed 90 (200 peers): the origin, asked for substream 1 by a strong relay, took the relay's
    /// unit of substream 0, shared with a weak viewer without room that was protected from eviction: the viewer was
    /// then the origin's only way out for 0, and nobody else got it for 10 s. The origin takes a substream's unit
    /// only from a child that leaves a holder at least as strong.
    func testTheOriginKeepsEachSubstreamsStrongestHolder() {
        var children = ChildSet()
        children.add("weak:1", [0, 1])
        children.add("relay:1", [0, 2])
        let sched: [PeerID: Int64] = ["weak:1": 523_000, "relay:1": 68_000, "asker:1": 34_000, "other:1": 30_000, "strong:1": 40_000]
        // The weak viewer lost a unit lately: protected.
        children.add("other:1", [3])
        children.preempt("weak:1", for: "other:1", in: 3, now: 0)
        children.remove("other:1", [3])
        XCTAssertNil(children.weaker(than: "asker:1", askerSched: 34_000, in: 1, now: 1_000_000, keepingEach: true, sched: { sched[$0] }),
                     "the relay's 0 would leave only the weak viewer with it, and its 2 only it has")
        children.add("strong:1", [0])
        let picked = children.weaker(than: "asker:1", askerSched: 34_000, in: 1, now: 1_000_000, keepingEach: true, sched: { sched[$0] })
        XCTAssertEqual(picked, "relay:1", "a holder as strong as it keeps 0")
        XCTAssertEqual(children.preempt("relay:1", for: "asker:1", in: 1, now: 1_000_000, keepingEach: true, sched: { sched[$0] }), 0)
    }

    /// A full origin asked for a substream it feeds to one child frees a unit of one it feeds to three, so a sole
    /// holder that passes nothing on (a mute) is not the only way into the mesh.
    func testTheOriginFreesAUnitForASecondHolderOfASubstream() {
        var children = ChildSet()
        children.add("mute:1", [1])
        children.add("a:1", [0, 2])
        children.add("b:1", [0, 3])
        children.add("c:1", [2, 3])
        let sched: [PeerID: Int64] = ["mute:1": 10_000, "a:1": 50_000, "b:1": 60_000, "c:1": 70_000, "d:1": 20_000]
        XCTAssertNil(children.weakest(keepingEach: true, sparing: 3, excluding: "asker:1", now: 0, sched: { sched[$0] }),
                     "each substream twice at most: nothing to spare for a second holder of 1")
        children.add("d:1", [0])
        let freed = children.weakest(keepingEach: true, sparing: 3, excluding: "asker:1", now: 0, sched: { sched[$0] })
        XCTAssertEqual(freed?.substream, 0, "0 is fed three times")
        XCTAssertEqual(freed?.child, "b:1", "the weakest of 0's holders (c:1, weaker, holds nothing to spare)")
    }

    func testTheOnlyChildOfASubstreamIsShedLast() {
        var children = ChildSet()
        children.add("a:1", [1])
        children.add("b:1", [1])
        children.add("only:1", [3])
        let sched: [PeerID: Int64] = ["a:1": 200_000, "b:1": 300_000, "only:1": 900_000]
        XCTAssertEqual(children.toShed(isOrigin: false, sched: { sched[$0] })?.child, "b:1", "the weakest of a shared substream")
        children.remove("a:1", [1])
        XCTAssertEqual(children.toShed(isOrigin: false, sched: { sched[$0] })?.child, "only:1", "then the weakest of all")
        XCTAssertNil(children.toShed(isOrigin: true, sched: { sched[$0] }), "the origin keeps each substream's last unit")
    }

    // MARK: Announcer

    func testNewsGoesToChildrenAtOnceAndADriftToOthersAtMostEveryBriefSpacing() {
        var news = Announcer(hysteresis: 10_000)
        var me = info("me:1", units: 2, delay: 100_000, parent: "p:1")
        func sent(_ now: Int64) -> [Bool]? {
            news.holdsBack(now: now) ? nil : news.decide(me, now: now).map { [$0.toChildren, $0.toAll] }
        }
        XCTAssertEqual(sent(0), [true, true], "the first record goes to every link")
        XCTAssertNil(sent(500_000), "the same news goes nowhere")
        XCTAssertNil(news.wakeup, "and nothing waits")
        me.delays = [105_000, 100_000]
        XCTAssertNil(sent(600_000), "a drift within the hysteresis is no news")
        // A drift beyond it: children at once, the others when `briefSpacing` has passed since they last heard.
        me.delays = [300_000, 300_000]
        XCTAssertEqual(sent(1_000_000), [true, false])
        XCTAssertFalse(news.mustSend(now: 1_500_000))
        XCTAssertTrue(news.mustSend(now: Announcer.briefSpacing))
        XCTAssertEqual(news.wakeup, Announcer.briefSpacing)
        XCTAssertEqual(sent(Announcer.briefSpacing), [false, true], "the held-back drift")
        // Room gone is urgent: to every link at once, once the spacing since the last news allows.
        me.residualUnits = 0
        news.mayHaveChanged = true
        XCTAssertTrue(news.urgent(hasRoom: false, epoch: 1, substreams: 2) { _ in true })
        XCTAssertNil(sent(Announcer.briefSpacing + 10_000), "inside the spacing: held back")
        XCTAssertTrue(news.isDue)
        XCTAssertEqual(news.wakeup, Announcer.briefSpacing + Announcer.downstreamSpacing)
        XCTAssertEqual(sent(Announcer.briefSpacing + Announcer.downstreamSpacing), [true, true])
    }

    func testUrgentNewsWaitsLessThanADrift() {
        var news = Announcer(hysteresis: 10_000)
        let me = info("me:1", units: 2, delay: 100_000, parent: "p:1")
        _ = news.decide(me, now: 0)
        XCTAssertFalse(news.mayAnnounceChange(now: 50_000, urgent: true), "nothing may have changed")
        news.mayHaveChanged = true
        XCTAssertFalse(news.urgent(hasRoom: true, epoch: 1, substreams: 2) { _ in true }, "room, run and substreams as told")
        XCTAssertTrue(news.urgent(hasRoom: true, epoch: 1, substreams: 2) { $0 == 0 }, "a substream lost")
        XCTAssertTrue(news.urgent(hasRoom: true, epoch: 2, substreams: 2) { _ in true }, "a new run")
        XCTAssertFalse(news.mayAnnounceChange(now: Announcer.urgentSpacing - 1, urgent: true))
        XCTAssertTrue(news.mayAnnounceChange(now: Announcer.urgentSpacing, urgent: true))
        XCTAssertFalse(news.mayAnnounceChange(now: Announcer.urgentSpacing, urgent: false))
        XCTAssertTrue(news.mayAnnounceChange(now: Announcer.changeSpacing, urgent: false))
        XCTAssertEqual(news.urgentWakeup, Announcer.urgentSpacing, "urgent news may go a spacing after the last")
    }

    // MARK: ParentSet and Penalties

    func testAParentIsTakenOnlyWhenAskedAndALossyOneIsFound() {
        var parents = ParentSet(count: 2)
        XCTAssertEqual(parents.accept(0, from: "p:1", now: 0).taken, false, "a yes nobody asked for")
        XCTAssertTrue(parents.ask("p:1", for: [0, 1], now: 0, linked: false), "not linked: dial")
        XCTAssertFalse(parents.ask("p:1", for: [0], now: 0, linked: false), "dialling already")
        XCTAssertEqual(parents.linkUp("p:1"), [0, 1])
        XCTAssertEqual(parents.accept(0, from: "p:1", now: 0).taken, true)
        XCTAssertEqual(parents.needed, [])
        XCTAssertEqual(parents.substreams(from: "p:1"), [0])
        // Substream 0's slots are even seqs: 12, 14, 16... Two of ten missing is lossy.
        XCTAssertFalse(parents.tally(12, substream: 0))
        XCTAssertFalse(parents.tally(16, substream: 0), "one slot missed")
        XCTAssertTrue(parents.tally(20, substream: 0), "two")
        parents.fed(0, now: 1_000)
        XCTAssertEqual(parents.starved(now: 5_000_000, timeout: 2_000_000), [0])
        XCTAssertFalse(parents.flowing(now: 5_000_000, timeout: 2_000_000))
        XCTAssertEqual(parents.drop("p:1"), [0])
        XCTAssertEqual(parents.pending.count, 0, "the ask for 1 went with the link")
    }

    func testPenaltiesDoubleAndFollowARename() {
        var penalties = Penalties()
        penalties.punish("x:1", now: 0)
        XCTAssertTrue(penalties.isAvoided("x:1", now: 29_000_000))
        XCTAssertFalse(penalties.isAvoided("x:1", now: 31_000_000))
        penalties.punish("x:1", now: 31_000_000)
        XCTAssertTrue(penalties.isAvoided("x:1", now: 31_000_000 + 59_000_000), "twice as long")
        penalties.rename("x:1", to: "y:1")
        XCTAssertTrue(penalties.isAvoided("y:1", now: 32_000_000))
        XCTAssertFalse(penalties.isAvoided("x:1", now: 32_000_000))
    }

    // MARK: Membership

    func testTheViewIsBoundedAndFresherHearsayReplacesTheStalest() {
        var members = Membership(assumedLinkDelay: 1_000)
        members.link("n:1")
        members.heard(info("n:1"), now: 0)
        for round in 0..<20 {
            members.owe("n:1")
            XCTAssertEqual(members.answer(from: "n:1"), .owed)
            members.heard(hearsay: (0..<8).map { info("h\(round)-\($0):1") }, me: "me:1", now: Int64(round + 1) * 1_000)
            XCTAssertLessThanOrEqual(members.hearsayCount, Membership.maxHearsay)
        }
        XCTAssertNotNil(members["h19-0:1"], "the newest stays")
        XCTAssertNil(members["h0-0:1"], "the stalest went")
        XCTAssertNotNil(members["n:1"], "a linked peer's own news is never pushed out")
    }

    func testAnswersAreTakenOnlyWhenOwed() {
        var members = Membership(assumedLinkDelay: 1_000)
        members.owe("n:1")
        XCTAssertEqual(members.answer(from: "n:1"), .owed)
        for _ in 0..<Membership.maxUnaskedPeers { XCTAssertEqual(members.answer(from: "n:1"), .unasked) }
        XCTAssertEqual(members.answer(from: "n:1"), .tooManyUnasked)
    }

    func testRoomHandedOutToOneJoinerIsNotHandedToTheNext() {
        var members = Membership(assumedLinkDelay: 1_000)
        var rng = SplitMixRandom(seed: 1)
        for id: PeerID in ["a:1", "j1:1", "j2:1"] { members.link(id) }
        members.heard(info("a:1", units: 4), now: 0)
        members.heard(info("j1:1", delay: nil), now: 0)
        members.heard(info("j2:1", delay: nil), now: 0)
        XCTAssertEqual(members.sample(for: "j1:1", substreams: 4, now: 1, rng: &rng).map(\.residualUnits), [4])
        XCTAssertEqual(members.sample(for: "j1:1", substreams: 4, now: 2, rng: &rng).map(\.residualUnits), [4], "asking again")
        XCTAssertEqual(members.sample(for: "j2:1", substreams: 4, now: 3, rng: &rng).map(\.residualUnits), [0], "given to j1")
        XCTAssertEqual(members.sample(for: "j2:1", substreams: 4, now: 3 + Membership.handOutMemory, rng: &rng).map(\.residualUnits), [4])
    }

    // MARK: one configuration

    func testAJoinerTakesTheOriginsKAndSizesItselfFromItsUplink() {
        var config = MeshPeerConfig(me: "j:1", isOrigin: false, bootstrap: "o:1", capacityUnits: 0, scheduleDelay: 1, seed: 1)
        config.uplink = BitRate(bitsPerSecond: 4_000_000)
        var peer = MeshPeer(config: config)
        _ = peer.handle(.start, now: 0)
        _ = peer.handle(.stream(rate: 1_000_000, substreams: 0), now: 1)
        XCTAssertEqual(peer.config.plan.count, 4, "0 is a k nobody knows yet")
        _ = peer.handle(.stream(rate: 1_000_000, substreams: 8), now: 2)
        XCTAssertEqual(peer.config.plan.count, 8)
        XCTAssertEqual(peer.config.capacityUnits, 32, "4 Mbit/s of 1 Mbit/s in 8 substreams")
        XCTAssertEqual(peer.config.scheduleDelay, 50_000, "a 200 ms chunk of 1 Mbit/s at 4 Mbit/s")
        _ = peer.handle(.connected("o:1"), now: 3)
        let origin = PeerInfo(id: "o:1", delays: Array(repeating: 0, count: 8), residualUnits: 8, scheduleDelay: 1_000,
                              ancestors: Array(repeating: [], count: 8), epoch: 0)
        _ = peer.handle(.message(from: "o:1", .announce(origin, wantPeers: false)), now: 4)
        _ = peer.handle(.message(from: "o:1", .accept(Array(0..<8))), now: 5)
        XCTAssertEqual(peer.parents.count, 8)
        _ = peer.handle(.stream(rate: 1_000_000, substreams: 4), now: 6)
        XCTAssertEqual(peer.config.plan.count, 8, "a peer with parents keeps its plan")
    }

    func testManySubstreamsOfDeepAncestryStillDecode() throws {
        let deep = (0..<60).map { "10.0.0.\($0):7000" }
        let record = PeerRecord(id: "10.0.1.1:7000", delays: Array(repeating: 1_000, count: 16), residualUnits: 3, scheduleDelay: 1_000,
                              ancestors: Array(repeating: deep, count: 16), epoch: 1)
        guard case .mesh(.announce(let back, _)) = try Message.decode(Message.mesh(.announce(record, wantPeers: false)).encode()) else {
            return XCTFail("an announce")
        }
        XCTAssertEqual(back.ancestors.count, 16)
        XCTAssertEqual(back.ancestors[0], Array(deep.prefix(WireLimits.maxAncestorNames / 16)), "the nearest ancestors kept")
    }

    // MARK: MeshCrawl

    func testTheWalkListsEveryPeerFromTheViewsOfTheOthers() {
        // o feeds a and b; a feeds c (a leaf nobody can reach: its parent's view names it).
        let views: [PeerID: [PeerInfo]] = [
            "o:1": [info("o:1", delay: 0), info("a:1", parent: "o:1"), info("b:1", parent: "o:1")],
            "a:1": [info("a:1", parent: "o:1"), info("o:1", delay: 0), info("c:1", parent: "a:1")],
            "b:1": [info("b:1", parent: "o:1"), info("o:1", delay: 0)],
        ]
        var walk = MeshCrawl<PeerID>(start: "o:1")
        var asked: [PeerID] = []
        while let id = walk.next() {
            asked.append(id)
            if let view = views[id] { walk.answer(from: id, view: view) } else { walk.failure(id) }
        }
        XCTAssertEqual(walk.listing.first?.id, "o:1", "the start first")
        XCTAssertEqual(Set(walk.listing.map(\.id)), ["o:1", "a:1", "b:1", "c:1"])
        XCTAssertEqual(walk.listing.count, 4)
        XCTAssertEqual(Set(asked), ["o:1", "a:1", "b:1", "c:1"])
        XCTAssertEqual(walk.failed, 1)
        XCTAssertEqual(walk.listing.first { $0.id == "c:1" }?.ancestors[0], ["a:1"], "c, from its parent's view")
        var limited = MeshCrawl<PeerID>(start: "o:1", limit: 1)
        _ = limited.next()
        limited.answer(from: "o:1", view: views["o:1"]!)
        XCTAssertNil(limited.next(), "the limit is kept")
    }
}

/// The hand-off: make-before-break when this peer retires, and when its parents leave.
final class HandOffTests: XCTestCase {
    func testARetiringPeerSaysItsHandOffIsDoneOnceItsLastChildHasGone() {
        var handOff = HandOff()
        XCTAssertFalse(handOff.isDone(childless: true), "nothing to hand off before retiring")
        XCTAssertTrue(handOff.retire())
        XCTAssertFalse(handOff.retire(), "once")
        XCTAssertTrue(handOff.retired)
        XCTAssertFalse(handOff.isDone(childless: false))
        XCTAssertTrue(handOff.isDone(childless: true))
        XCTAssertFalse(handOff.isDone(childless: true), "said once")
    }

    func testALeavingParentsSubstreamsAreAskedOfOthersAtAPaceThenOfAFullPeer() {
        var handOff = HandOff()
        let a: PeerID = "a:1", b: PeerID = "b:1"
        var parents: Set<PeerID> = [a, b]
        XCTAssertNil(handOff.wakeup)
        XCTAssertNil(handOff.round(now: 0) { parents.contains($0) }, "no round without a parent leaving")
        handOff.parentLeaving(a, now: 1_000_000)
        XCTAssertEqual(handOff.wakeup, 1_000_000, "at once")
        XCTAssertEqual(handOff.round(now: 1_000_000) { parents.contains($0) }, false, "a peer with room first")
        XCTAssertNil(handOff.round(now: 1_100_000) { parents.contains($0) }, "not before the spacing")
        XCTAssertEqual(handOff.wakeup, 1_000_000 + HandOff.spacing)
        XCTAssertEqual(handOff.round(now: 1_000_000 + HandOff.spacing) { parents.contains($0) }, false)
        handOff.rename(a, to: "c:1")
        parents = ["c:1", b]
        XCTAssertTrue(handOff.isMovingFrom("c:1"))
        XCTAssertEqual(handOff.round(now: 2_000_000) { parents.contains($0) }, true, "a second on: a full peer may be asked")
        // The move is made (it is no parent any more): nothing left to do, and a new leaving starts its own clock.
        parents = [b]
        XCTAssertNil(handOff.round(now: 3_000_000) { parents.contains($0) })
        XCTAssertFalse(handOff.isMoving)
        XCTAssertNil(handOff.wakeup)
        handOff.parentLeaving(b, now: 4_000_000)
        XCTAssertEqual(handOff.round(now: 4_000_000) { parents.contains($0) }, false)
    }
}

/// The parent search's memory and pace: when it searches, asks full peers, improves, probes and asks for candidates.
final class ParentSearchTests: XCTestCase {
    func testASearchThatFoundNoOneRestsUntilSomethingNewIsHeardOrASecondHasPassed() {
        var search = ParentSearch(improvementPeriod: 5_000_000)
        let both: UInt64 = 0b11, one: UInt64 = 0b10
        XCTAssertFalse(search.rests(needed: both, version: 7, now: 0), "the first search runs")
        search.searched(askedAny: false, needed: both, version: 7, now: 0)
        XCTAssertTrue(search.lastFoundNoOne)
        XCTAssertTrue(search.rests(needed: both, version: 8, now: ParentSearch.spacing - 1), "news or not, not within a tick")
        XCTAssertFalse(search.rests(needed: both, version: 8, now: ParentSearch.spacing), "something new heard")
        XCTAssertEqual(search.nextSearch(needed: both, version: 8), ParentSearch.spacing, "the peer is woken for it then")
        XCTAssertTrue(search.rests(needed: both, version: 7, now: 999_999), "nothing new heard")
        XCTAssertFalse(search.rests(needed: both, version: 7, now: 1_000_000), "a second on")
        XCTAssertEqual(search.nextSearch(needed: both, version: 7), 1_000_000)
        XCTAssertFalse(search.rests(needed: one, version: 7, now: 1), "other substreams are searched for at once")
        XCTAssertNil(search.nextSearch(needed: 0, version: 7), "nothing to search for, no wake-up")
        search.searched(askedAny: true, needed: both, version: 7, now: 2)
        XCTAssertFalse(search.rests(needed: both, version: 7, now: 3), "a search that asked someone leaves nothing to rest on")
        XCTAssertEqual(search.cause, .select)
    }

    func testTheSubstreamsNeededAsBitsAreThoseWithNeitherParentNorAsk() {
        var parents = ParentSet(count: 6)
        XCTAssertEqual(parents.neededMask, 0b111111)
        _ = parents.ask("a:1", for: [0, 2], now: 0, linked: true)
        _ = parents.accept(0, from: "a:1", now: 1)
        XCTAssertEqual(parents.needed, [1, 3, 4, 5])
        XCTAssertEqual(parents.neededMask, 0b111010)
        _ = parents.ask("b:1", for: [1, 3, 4, 5], now: 2, linked: false)
        XCTAssertEqual(parents.neededMask, 0, "all asked: nothing to search for")
        // A move asks for a substream it has a parent in (make-before-break): it is both, and others may be needed.
        var moving = ParentSet(count: 2)
        _ = moving.ask("a:1", for: [0], now: 0, linked: true)
        _ = moving.accept(0, from: "a:1", now: 1)
        _ = moving.ask("c:1", for: [0], now: 2, linked: true)
        XCTAssertEqual(moving.neededMask, 0b10, "substream 1 has neither parent nor ask")
    }

    func testFullPeersAreAskedOnlyAfterSearchesFoundNoOneForHalfASecond() {
        var search = ParentSearch(improvementPeriod: 5_000_000)
        XCTAssertFalse(search.weighed(foundAny: false, now: 1_000_000))
        XCTAssertFalse(search.weighed(foundAny: false, now: 1_000_000 + ParentSearch.fullAskAfter - 1))
        XCTAssertTrue(search.weighed(foundAny: false, now: 1_000_000 + ParentSearch.fullAskAfter))
        XCTAssertFalse(search.weighed(foundAny: true, now: 2_000_000), "a search that found someone starts the wait again")
        XCTAssertFalse(search.weighed(foundAny: false, now: 2_100_000))
    }

    func testImprovementRoundsBackOffWhileTheyFindNothingAndAMoveBringsThePaceBack() {
        var search = ParentSearch(improvementPeriod: 1_000_000)
        search.nextRound(at: 500_000)
        XCTAssertFalse(search.improvementDue(now: 499_999))
        XCTAssertTrue(search.improvementDue(now: 500_000))
        for _ in 0..<5 { search.backOff() }
        XCTAssertEqual(search.improvementPeriod, ParentSearch.maxBackoff * 1_000_000, "doubling, up to the bound")
        XCTAssertEqual(search.backoffPeriods, ParentSearch.maxBackoff)
        search.nextRound(at: 9_000_000)
        search.resumePace(soonest: 12_000_000)
        XCTAssertEqual(search.nextImprovement, 9_000_000, "never later than it was")
        XCTAssertEqual(search.improvementPeriod, 1_000_000)
        search.resumePace(soonest: 3_000_000)
        XCTAssertEqual(search.nextImprovement, 3_000_000, "a probe that found a likely move brings the round sooner")
    }

    func testAsksForCandidatesAreSpacedAndGoToTheBootstrapEveryOtherTime() {
        var search = ParentSearch(improvementPeriod: 5_000_000)
        XCTAssertEqual(search.peerAsk(now: 0), true)
        XCTAssertNil(search.peerAsk(now: ParentSearch.peerAskSpacing - 1))
        XCTAssertEqual(search.peerAsk(now: ParentSearch.peerAskSpacing), false)
        search.deferPeerAsk(now: 2 * ParentSearch.peerAskSpacing)
        XCTAssertNil(search.peerAsk(now: 2 * ParentSearch.peerAskSpacing), "a link just up is heard first")
        XCTAssertEqual(search.peerAsk(now: 3 * ParentSearch.peerAskSpacing), true)
        XCTAssertTrue(search.bootstrapRetry(now: 0))
        XCTAssertFalse(search.bootstrapRetry(now: ParentSearch.bootstrapRetry - 1))
        XCTAssertTrue(search.bootstrapRetry(now: ParentSearch.bootstrapRetry))
    }

    func testItWakesThePeerForRoundsOnceFedAndForProbesWhenOneMayDoSomething() {
        var search = ParentSearch(improvementPeriod: 5_000_000)
        search.nextRound(at: 7_000_000)
        search.probed(now: 1_000_000, fed: false)
        XCTAssertEqual(search.wakeup(fed: false, mayProbe: true), 1_000_000 + ParentSearch.probePeriod, "short of parents: a probe a second")
        XCTAssertNil(search.wakeup(fed: false, mayProbe: false))
        XCTAssertEqual(search.wakeup(fed: true, mayProbe: false), 7_000_000)
        search.probed(now: 1_000_000, fed: true)
        XCTAssertEqual(search.wakeup(fed: true, mayProbe: true), 6_000_000, "fed: a probe an improvement period")
    }
}
