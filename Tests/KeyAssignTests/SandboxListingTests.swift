import Testing

@testable import KeyAssignSandbox

/// The sandbox writes a listing's times byte by byte (a year of assigned keys made the String
/// forms most of its answer time); the bytes must be what the String forms say.
@Suite struct SandboxListingTests {
    @Test func assignedTimesAreTheBytesTheStringFormsGive() {
        let isos = [
            "2026-12-02T13:40:12.123Z", "2026-12-02T13:40:12Z", "2026-12-02T13:40:1", "",
            "2026-12-02T13:40:12\"x", "2026/12/02T13:40:12.000Z", "2026-12-02TT3:40:12.000Z", "2026-12-02T13:40:é1",
        ]
        for iso in isos {
            let record = AssignmentRecord(licenseKey: "k", ownerName: "A", email: "a@b", assignedAt: iso)
            let payload = SandboxListing.payload(
                [.init(licenseKey: "k", assignment: record)], createdAt: "2026-01-01T00:00:00.000Z", timestamp: 1)
            let text = String(decoding: payload, as: UTF8.self)
            let assigned = SignedReplyMaker.jsonString(SandboxListing.serverTime(iso))
            let updated = SignedReplyMaker.jsonString(SandboxListing.laravelTime(iso))
            #expect(text.contains(#""assigned_at":\#(assigned),"#), "\(iso): \(text)")
            #expect(text.contains(#""updated_at":\#(updated)}"#), "\(iso): \(text)")
        }
    }
}
