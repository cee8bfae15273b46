#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Which of the paths given to `import` or `sync` are ready to be read.
///
/// A file named on the command line is taken as ready: the person or script naming it knows
/// it is complete. A directory is scanned for `*.csv`, and there a file may still be in
/// transfer, so a file is left for a later run when:
/// - its name is one upload tools give a file in transfer (a dotfile, `*.part`, `*.tmp`,
///   `*.filepart`, `*.crdownload`), said so when the name mentions `.csv` or has such a suffix;
/// - with `--ready-marker SUFFIX`, its `NAME.csv SUFFIX` marker is not there yet (a marker
///   says the file is complete, so then its age does not matter);
/// - without a marker, it was modified less than `--settle` seconds ago (an upload that
///   stalled mid-row would otherwise queue its last row cut short).
/// Anything that is not a regular file (a FIFO, a socket, a device, a directory named
/// `x.csv`) is never opened: opening a FIFO blocks until someone writes to it.
enum InputFiles {
    struct Entry: Equatable {
        var path: String
        /// Found in a directory without a ready marker: checked for settling again once open.
        var mustBeSettled: Bool
    }

    struct Scan {
        var ready: [Entry] = []
        /// Said on the summary output: names skipped, files left for the next run.
        var notes: [String] = []
        /// Said as warnings: things that are not regular files.
        var warnings: [String] = []
        /// Paths that cannot be read at all (exit 65).
        var failures: [(path: String, message: String)] = []
        /// Files still changing, and when they will have been still for `settle` seconds.
        var unsettled: [(path: String, settlesAt: Double)] = []

        /// One line per file still changing, for the summary output.
        func unsettledNotes(settle: Double, now: Double) -> [String] {
            unsettled.map { file in
                let age = max(0, now - (file.settlesAt - settle))
                return
                    "\(file.path): not imported yet: modified \(Int(age)) s ago (less than --settle \(InputFiles.seconds(settle)) s); left for the next run"
            }
        }
    }

    static let temporarySuffixes = [".part", ".tmp", ".filepart", ".crdownload"]

    /// `scan`, and then, for `sync` (`settleWait` > 0), waiting up to `settleWait` seconds for
    /// the files still changing to settle: it says so through `announce`, sleeps until the next
    /// one should have, and looks again (a file that changed meanwhile settles later).
    static func scan(
        _ paths: [String], settle: Double, readyMarker: String?, settleWait: Double,
        announce: (String) -> Void
    ) -> Scan {
        var found = scan(paths, settle: settle, readyMarker: readyMarker, now: now())
        guard settleWait > 0 && !found.unsettled.isEmpty else { return found }
        let deadline = now() + settleWait
        announce(
            "waiting up to \(Int(settleWait.rounded(.up))) s for \(found.unsettled.count) file\(found.unsettled.count == 1 ? "" : "s") still being written to settle (--settle \(seconds(settle)))"
        )
        while let next = found.unsettled.map(\.settlesAt).min(), next <= deadline {
            let delay = max(0.05, next - now() + 0.01)
            usleep(useconds_t(min(delay, 1) * 1_000_000))
            found = scan(paths, settle: settle, readyMarker: readyMarker, now: now())
        }
        return found
    }

    static func scan(_ paths: [String], settle: Double, readyMarker: String?, now: Double) -> Scan {
        var scan = Scan()
        for path in paths {
            var info = stat()
            guard stat(path, &info) == 0 else {
                scan.failures.append((path, "\(path): cannot read: \(String(cString: strerror(errno)))"))
                continue
            }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                // Named one by one: ready, but only a regular file is read (checked on open).
                scan.ready.append(Entry(path: path, mustBeSettled: false))
                continue
            }
            scanDirectory(path, settle: settle, readyMarker: readyMarker, now: now, into: &scan)
        }
        return scan
    }

    private static func scanDirectory(
        _ path: String, settle: Double, readyMarker: String?, now: Double, into scan: inout Scan
    ) {
        guard let dir = opendir(path) else {
            scan.failures.append((path, "\(path): cannot list directory: \(String(cString: strerror(errno)))"))
            return
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        let present = Set(names)
        let prefix = path.hasSuffix("/") ? path : path + "/"
        var csvCount = 0
        for name in names.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) {
            let lower = name.lowercased()
            let full = prefix + name
            if let why = temporaryName(lower) {
                scan.notes.append("\(full): skipped: \(why), the kind of name upload tools give a file in transfer")
                continue
            }
            guard lower.hasSuffix(".csv") else { continue }
            csvCount += 1
            var info = stat()
            guard stat(full, &info) == 0 else {
                scan.warnings.append("\(full): skipped: cannot read: \(String(cString: strerror(errno)))")
                continue
            }
            if let kind = notRegular(info.st_mode) {
                scan.warnings.append("\(full): skipped: not a regular file (\(kind)); only regular files are read")
                continue
            }
            if let readyMarker {
                if !present.contains(name + readyMarker) {
                    scan.notes.append(
                        "\(full): not imported yet: its ready marker \(name + readyMarker) is not there; left for the next run"
                    )
                } else {
                    scan.ready.append(Entry(path: full, mustBeSettled: false))
                }
                continue
            }
            let modified = modificationTime(info)
            if settle > 0 && now - modified < settle {
                scan.unsettled.append((full, modified + settle))
                continue
            }
            scan.ready.append(Entry(path: full, mustBeSettled: true))
        }
        if csvCount == 0 { scan.notes.append("\(path): no .csv files in this directory") }
    }

    /// Why a (lowercased) name is a transfer's temporary name, or nil. Dotfiles are said only
    /// when they look like an export (`.x.csv.Ab12`, as rsync writes), not `.DS_Store`.
    static func temporaryName(_ lower: String) -> String? {
        if lower.hasPrefix(".") {
            return lower.contains(".csv") ? "a dotfile (hidden)" : nil
        }
        if let suffix = temporarySuffixes.first(where: { lower.hasSuffix($0) }) {
            return "a *\(suffix) name"
        }
        return nil
    }

    /// What kind of file a mode is when it is not a regular file.
    static func notRegular(_ mode: mode_t) -> String? {
        switch mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFDIR: return "a directory"
        default: return "not a regular file"
        }
    }

    static func modificationTime(_ info: stat) -> Double {
        #if canImport(Darwin)
            return Double(info.st_mtimespec.tv_sec) + Double(info.st_mtimespec.tv_nsec) / 1e9
        #else
            return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        #endif
    }

    /// `60`, `0.5`: seconds as a person writes them.
    static func seconds(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    /// The wall clock, in the same seconds as `modificationTime`.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
