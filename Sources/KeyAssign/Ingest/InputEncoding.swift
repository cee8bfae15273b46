/// A text encoding an export may come in. Everything is decoded to UTF-8 before it is parsed,
/// and stored as UTF-8.
///
/// Without `--encoding` a file is read as UTF-8 unless it starts with a byte-order mark
/// (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE), which always wins. A file read that way that turns out
/// not to be UTF-8 is refused whole (exit 65), with the encoding it looks like and the flag to
/// give: imported as it is, Windows-1252 names would be invalid rows and UTF-16 cells garbage.
public enum InputEncoding: String, Sendable, CaseIterable {
    case utf8 = "utf-8"
    case windows1252 = "windows-1252"
    case iso88591 = "iso-8859-1"
    case utf16le = "utf-16le"
    case utf16be = "utf-16be"
    case utf32le = "utf-32le"
    case utf32be = "utf-32be"

    /// Also the usual other spellings (`utf8`, `cp1252`, `latin1`, `UTF-16LE`…).
    public init?(name argument: String) {
        let name = String(argument.lowercased().map { $0 == "_" ? "-" : $0 })
        switch name {
        case "utf-8", "utf8": self = .utf8
        case "windows-1252", "cp1252", "win-1252", "windows1252": self = .windows1252
        case "iso-8859-1", "iso8859-1", "latin1", "latin-1": self = .iso88591
        case "utf-16le", "utf16le": self = .utf16le
        case "utf-16be", "utf16be": self = .utf16be
        case "utf-32le", "utf32le": self = .utf32le
        case "utf-32be", "utf32be": self = .utf32be
        default: return nil
        }
    }

    /// For messages: `UTF-16LE`, `Windows-1252`.
    public var displayName: String {
        switch self {
        case .utf8: "UTF-8"
        case .windows1252: "Windows-1252"
        case .iso88591: "ISO-8859-1"
        case .utf16le: "UTF-16LE"
        case .utf16be: "UTF-16BE"
        case .utf32le: "UTF-32LE"
        case .utf32be: "UTF-32BE"
        }
    }

    /// The encoding a byte-order mark at the start of `bytes` declares. UTF-32LE's mark begins
    /// with UTF-16LE's, so it is tested first.
    public static func fromByteOrderMark(_ bytes: [UInt8]) -> InputEncoding? {
        if bytes.starts(with: [0xFF, 0xFE, 0x00, 0x00]) { return .utf32le }
        if bytes.starts(with: [0x00, 0x00, 0xFE, 0xFF]) { return .utf32be }
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { return .utf8 }
        if bytes.starts(with: [0xFF, 0xFE]) { return .utf16le }
        if bytes.starts(with: [0xFE, 0xFF]) { return .utf16be }
        return nil
    }

    /// What a text that is not UTF-8 most likely is: NUL bytes mean UTF-16 (LE when the NUL
    /// follows the character, as in `l\0i\0`), anything else the Windows code page that Excel
    /// and most European CRMs write (a superset of ISO-8859-1's printable characters).
    public static func likely(for bytes: UnsafeRawBufferPointer) -> InputEncoding {
        var evenNUL = 0
        var oddNUL = 0
        for (offset, byte) in bytes.enumerated() where byte == 0 {
            if offset % 2 == 0 { evenNUL += 1 } else { oddNUL += 1 }
        }
        if evenNUL + oddNUL == 0 { return .windows1252 }
        return oddNUL >= evenNUL ? .utf16le : .utf16be
    }
}
