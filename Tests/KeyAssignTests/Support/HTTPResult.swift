import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif
@testable import KeyAssign
@testable import KeyAssignSandbox

struct HTTPResult {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
}
