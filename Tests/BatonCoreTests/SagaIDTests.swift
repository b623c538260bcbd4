import BatonCore
import Foundation
import Testing

@Suite("Saga ids")
struct SagaIDTests {
    @Test("ids are lowercase version 7 UUIDs that sort by creation time")
    func timeOrdered() {
        var random = SeededRandomNumberGenerator(seed: 3)
        let start = Date(timeIntervalSince1970: 1_800_000_000)
        let ids = (0..<50).map { SagaID.make(now: start.addingTimeInterval(Double($0) * 0.002), random: &random) }
        for id in ids {
            #expect(SagaID.isValid(id))
            #expect(Array(id)[14] == "7", "version nibble of \(id)")
            #expect("89ab".contains(Array(id)[19]), "variant of \(id)")
        }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == ids.count)
        // The first 48 bits are the Unix time in milliseconds.
        let prefix = ids[0].replacingOccurrences(of: "-", with: "").prefix(12)
        #expect(UInt64(prefix, radix: 16) == 1_800_000_000_000)
    }

    @Test("only canonical lowercase UUIDs are saga ids")
    func validation() {
        #expect(!SagaID.isValid("saga-1"))
        #expect(!SagaID.isValid("0190F5A4-7B1C-7D2E-8F00-000000000000"))
        #expect(SagaID.isValid("0190f5a4-7b1c-7d2e-8f00-000000000000"))
    }
}
