#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What `stat` says of a file that was imported: while its path, size, modification time and
/// inode (on the same device) are unchanged, the file is taken as the one imported, and costs
/// a `stat`, not a read and a hash of every byte (issue 21: an export folder keeps years of
/// files). Any of them changed, the file is hashed as before, and its SHA-256 decides.
struct FileIdentity: Equatable {
    var size: Int64
    var device: Int64
    var inode: Int64
    /// Nanoseconds since the epoch.
    var modifiedNanoseconds: Int64

    init(_ info: stat) {
        size = Int64(info.st_size)
        device = Int64(bitPattern: UInt64(info.st_dev))
        inode = Int64(bitPattern: UInt64(info.st_ino))
        #if canImport(Darwin)
            modifiedNanoseconds = Int64(info.st_mtimespec.tv_sec) * 1_000_000_000 + Int64(info.st_mtimespec.tv_nsec)
        #else
            modifiedNanoseconds = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        #endif
    }
}
