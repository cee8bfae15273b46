import COpenSSL

/// A listing entry's identity when a new listing is stored: the first 16 bytes of the SHA-256
/// of its exact bytes. Each chunk keeps its entries' digests beside its deflated body
/// (`listing_chunks.digests`), so that storing a night's listing finds the entries kept before
/// without inflating a single chunk: inflating the chunks the last listing used grew with the
/// nights (the first listing's chunks stay in use while ever fewer of their entries do) and
/// made the last month's nights ~50 % slower than the first's (docs/benchmarks.md).
///
/// Two different entries with one digest would need a 128-bit SHA-256 collision. Even then no
/// row's state could change (rows are settled from the verified listing in memory, never from
/// the stored one); the stored listing would rebuild to other bytes and `audit` would say so.
struct EntryDigest: Hashable {
    let high: UInt64
    let low: UInt64

    static let size = 16

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(_ bytes: UnsafeRawBufferPointer) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        for index in 0..<8 {
            high = high << 8 | UInt64(bytes[index])
            low = low << 8 | UInt64(bytes[8 + index])
        }
        self.init(high: high, low: low)
    }

    func append(to out: inout [UInt8]) {
        for word in [high, low] {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift)))
            }
        }
    }

    /// SHA-256 over many entries with one fetched algorithm (an implicit fetch per call would
    /// cost more than the hashing of a ~330-byte entry).
    final class Maker {
        private let algorithm: OpaquePointer

        init() throws {
            guard let algorithm = EVP_MD_fetch(nil, "SHA256", nil) else {
                throw KeyAssignError(.config, "OpenSSL has no SHA-256: \(OpenSSLErrors.drain())")
            }
            self.algorithm = algorithm
        }

        deinit { EVP_MD_free(algorithm) }

        func digest(_ bytes: UnsafeRawBufferPointer) throws -> EntryDigest {
            var out = [UInt8](repeating: 0, count: 32)
            var length: UInt32 = 0
            let ok = out.withUnsafeMutableBufferPointer {
                EVP_Digest(bytes.baseAddress, bytes.count, $0.baseAddress, &length, algorithm, nil)
            }
            guard ok == 1, length == 32 else {
                throw KeyAssignError(.ioError, "OpenSSL: SHA-256 of a listing entry failed: \(OpenSSLErrors.drain())")
            }
            return out.withUnsafeBytes { EntryDigest($0) }
        }
    }

    /// A chunk's `digests` column: per entry, in the chunk's order, its id's step from the one
    /// before (the first from `first_entry`: 0) as a varint, then its digest; so a chunk `prune`
    /// thinned still names its ids without being inflated.
    static func encode(ids: [Int64], digests: [EntryDigest]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * (size + 1))
        var previous = ids.first ?? 0
        for (id, digest) in zip(ids, digests) {
            ListingLayout.put(&out, UInt64(id - previous))
            digest.append(to: &out)
            previous = id
        }
        return out
    }

    /// Calls `body` with each (id, digest) of a `digests` column; anything cut or out of order
    /// is `Malformed`.
    static func decode(
        firstEntry: Int64, _ bytes: UnsafeRawBufferPointer, _ body: (Int64, EntryDigest) -> Void
    ) throws(ListingLayout.Malformed) {
        var offset = 0
        var id = firstEntry
        while offset < bytes.count {
            var step: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard offset < bytes.count, shift < 42 else {
                    throw ListingLayout.Malformed(message: "chunk \(firstEntry): its digests are cut")
                }
                let byte = bytes[offset]
                offset += 1
                step |= UInt64(byte & 0x7f) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            guard bytes.count - offset >= size else {
                throw ListingLayout.Malformed(message: "chunk \(firstEntry): its digests are cut")
            }
            id += Int64(step)
            body(id, EntryDigest(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)])))
            offset += size
        }
    }
}
