/// How the request fields are encoded: the documented form encoding, or JSON (`--body json`).
public enum BodyEncoding: String, Sendable, CaseIterable {
    case form
    case json

    var contentType: String {
        switch self {
        case .form: return "application/x-www-form-urlencoded"
        case .json: return "application/json"
        }
    }
}

/// Builds request bodies. The API key's encoded prefix is computed once, so the per-row work
/// is appending three escaped fields to a byte buffer.
struct RequestBodyBuilder: Sendable {
    let encoding: BodyEncoding
    private let prefix: [UInt8]

    init(encoding: BodyEncoding, apiKey: String) {
        self.encoding = encoding
        var prefix: [UInt8] = []
        switch encoding {
        case .form:
            prefix.append(contentsOf: Array("api_key=".utf8))
            RequestBodyBuilder.appendFormEncoded(apiKey, to: &prefix)
        case .json:
            prefix.append(contentsOf: Array("{\"api_key\":".utf8))
            RequestBodyBuilder.appendJSONString(apiKey, to: &prefix)
        }
        self.prefix = prefix
    }

    /// Empty optional fields are left out, as the vendor's SDKs do.
    func body(licenseKey: String, ownerName: String?, email: String?) -> [UInt8] {
        var out = prefix
        out.reserveCapacity(prefix.count + 160)
        switch encoding {
        case .form:
            func field(_ name: String, _ value: String) {
                out.append(UInt8(ascii: "&"))
                out.append(contentsOf: name.utf8)
                out.append(UInt8(ascii: "="))
                RequestBodyBuilder.appendFormEncoded(value, to: &out)
            }
            field("license_key", licenseKey)
            if let ownerName, !ownerName.isEmpty { field("owner_name", ownerName) }
            if let email, !email.isEmpty { field("email", email) }
        case .json:
            func field(_ name: String, _ value: String) {
                out.append(UInt8(ascii: ","))
                RequestBodyBuilder.appendJSONString(name, to: &out)
                out.append(UInt8(ascii: ":"))
                RequestBodyBuilder.appendJSONString(value, to: &out)
            }
            field("license_key", licenseKey)
            if let ownerName, !ownerName.isEmpty { field("owner_name", ownerName) }
            if let email, !email.isEmpty { field("email", email) }
            out.append(UInt8(ascii: "}"))
        }
        return out
    }

    /// application/x-www-form-urlencoded as browsers send it: unreserved bytes as they are,
    /// everything else (including `+`, `&`, `=`, space and every non-ASCII UTF-8 byte) as %XX.
    static func appendFormEncoded(_ value: String, to out: inout [UInt8]) {
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            }
        }
    }

    static func appendJSONString(_ value: String, to out: inout [UInt8]) {
        let hex: [UInt8] = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case UInt8(ascii: "\n"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case UInt8(ascii: "\r"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case UInt8(ascii: "\t"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            default:
                // UTF-8 passes through: JSON text is UTF-8.
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}
