import Foundation

@testable import KeyAssign
@testable import KeyAssignSandbox

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
#endif

struct HTTPResult {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
}
