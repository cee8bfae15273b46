/// The signed listing's payload, indexed by license key without copying it apart.
///
/// Each entry is a handful of (offset, length) pairs into the payload bytes, and the key
/// lookup is an open-addressing table of entry numbers hashed over the key's bytes: for
/// 200,000 keys that is ~12 MB on top of the payload itself, where a `[String: struct of
/// Strings]` costs several allocations per entry. Memory grows with the listing, never with
/// the work table: rows are looked up one at a time.
public final class ListingIndex: @unchecked Sendable {
    /// A field's bytes: in the payload, or (high bit of `start` set) in `decoded` for strings
    /// that held escapes; `count == .max` is JSON null or absent.
    struct Ref {
        var start: UInt32
        var count: UInt32
        static let null = Ref(start: 0, count: .max)
        static let decodedFlag: UInt32 = 1 << 31
    }

    struct Slot {
        var object: Ref
        var key: Ref
        var status: Ref
        var ownerName: Ref
        var ownerEmail: Ref
        var assignedAt: Ref
    }

    let payload: OwnedBytes
    public let code: Int
    public let message: String
    public let timestamp: Int64
    var slots: [Slot] = []
    /// Filled while parsing, then frozen into `decodedBytes` by `buildTable`.
    var decoded: [UInt8] = []
    private var decodedBytes = OwnedBytes(copying: [])
    private var table: [Int32] = []
    private var mask = 0
    /// Keys listed more than once (the first entry wins; reported, not guessed).
    public private(set) var duplicateKeys = 0

    init(payload: OwnedBytes, code: Int, message: String, timestamp: Int64) {
        self.payload = payload
        self.code = code
        self.message = message
        self.timestamp = timestamp
    }

    public var count: Int { slots.count }

    func bytes(_ ref: Ref) -> UnsafeBufferPointer<UInt8>? {
        if ref.count == .max { return nil }
        if ref.start & Ref.decodedFlag != 0 {
            let start = Int(ref.start & ~Ref.decodedFlag)
            return UnsafeBufferPointer(rebasing: decodedBytes.buffer[start..<(start + Int(ref.count))])
        }
        return UnsafeBufferPointer(rebasing: payload.buffer[Int(ref.start)..<(Int(ref.start) + Int(ref.count))])
    }

    private func string(_ ref: Ref) -> String? {
        bytes(ref).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Builds the key table once every slot is in.
    func buildTable() {
        decodedBytes = OwnedBytes(copying: decoded)
        decoded = []
        var size = 16
        while size < slots.count * 2 { size <<= 1 }
        mask = size - 1
        table = [Int32](repeating: -1, count: size)
        for number in slots.indices {
            guard let key = bytes(slots[number].key) else { continue }
            var position = Int(truncatingIfNeeded: Self.hash(key)) & mask
            var duplicate = false
            while table[position] >= 0 {
                if let other = bytes(slots[Int(table[position])].key), Self.same(other, key) {
                    duplicate = true
                    break
                }
                position = (position + 1) & mask
            }
            if duplicate {
                duplicateKeys += 1
            } else {
                table[position] = Int32(number)
            }
        }
    }

    public func entry(forKey key: String) -> ListingEntry? {
        var key = key
        return key.withUTF8 { wanted in
            var position = Int(truncatingIfNeeded: Self.hash(wanted)) & mask
            while !table.isEmpty && table[position] >= 0 {
                let number = Int(table[position])
                if let candidate = bytes(slots[number].key), Self.same(candidate, wanted) { return entry(at: number) }
                position = (position + 1) & mask
            }
            return nil
        }
    }

    public func entry(at number: Int) -> ListingEntry? {
        guard slots.indices.contains(number) else { return nil }
        let slot = slots[number]
        return ListingEntry(
            index: number, licenseKey: string(slot.key) ?? "", status: string(slot.status),
            ownerName: string(slot.ownerName), ownerEmail: string(slot.ownerEmail),
            assignedAt: string(slot.assignedAt), text: string(slot.object) ?? "")
    }

    static func same(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard a.count == b.count else { return false }
        guard let x = a.baseAddress, let y = b.baseAddress else { return a.count == 0 }
        return memcmp(x, y, a.count) == 0
    }

    /// FNV-1a: keys are short, and the table only needs a spread, not a defence: the
    /// listing is signed by the server.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return hash ^ (hash >> 29)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
