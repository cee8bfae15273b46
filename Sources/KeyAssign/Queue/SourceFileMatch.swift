import Foundation

/// `retry --source FILE`: which imported source file(s) FILE means, however its path is
/// written. A row's import (`WorkSourcePath`) holds the path as `import` was given it (`exports/a.csv`,
/// `./exports/a.csv`, `/srv/exports/a.csv`, from whatever directory it ran in); the path
/// given to `retry` is matched against each of them:
/// 1. the same file: lexically the same absolute path (from the current directory), or the
///    same file once symbolic links are resolved;
/// 2. else, when exactly one imported source has the same name and the two paths agree
///    component by component as far as the shorter goes (an import run from another
///    directory), that one.
/// Nothing matched is an error (exit 64) naming the imported sources nearest to FILE, never
/// "requeued 0 rows".
public enum SourceFileMatch {
    public static func resolve(
        _ given: String, in db: Database,
        currentDirectory: String = FileManager.default.currentDirectoryPath
    ) throws -> [String] {
        let statement = try db.prepare("SELECT DISTINCT \(WorkSourcePath.sql) FROM work")
        var sources: [String] = []
        while try statement.step() { if let path = statement.string(0) { sources.append(path) } }
        return try resolve(given, among: sources, currentDirectory: currentDirectory)
    }

    static func resolve(_ given: String, among sources: [String], currentDirectory: String) throws -> [String] {
        let wanted = components(given, currentDirectory: currentDirectory)
        let wantedReal = realPath(given)
        let same = sources.filter { source in
            components(source, currentDirectory: currentDirectory) == wanted
                || (wantedReal != nil && realPath(source) == wantedReal)
        }
        if !same.isEmpty { return same }
        let byTail = sources.filter { source in
            let parts = components(source, currentDirectory: currentDirectory, absolute: false)
            guard let name = parts.last, name == wanted.last else { return false }
            let shorter = min(parts.count, wanted.count)
            return Array(parts.suffix(shorter)) == Array(wanted.suffix(shorter))
        }
        if byTail.count == 1 { return byTail }
        let nearest = sources.sorted {
            (EditDistance.between(given, $0), $0) < (EditDistance.between(given, $1), $1)
        }.prefix(3)
        let listed =
            nearest.isEmpty ? "none (nothing has been imported)" : nearest.map { "\"\($0)\"" }.joined(separator: ", ")
        if byTail.count > 1 {
            throw KeyAssignError(
                .usage,
                "retry --source \(given): several imported sources have that name: "
                    + byTail.map { "\"\($0)\"" }.joined(separator: ", ") + "; give the path as one of them")
        }
        throw KeyAssignError(
            .usage, "retry --source \(given): no imported source is that file; the nearest imported sources: \(listed)")
    }

    /// The path's components, made absolute from `currentDirectory` (unless `absolute` is
    /// false and it is relative), with `.` and empty components dropped and `..` applied.
    static func components(_ path: String, currentDirectory: String, absolute: Bool = true) -> [String] {
        let full = path.hasPrefix("/") || !absolute ? path : currentDirectory + "/" + path
        var parts: [String] = []
        for part in full.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..":
                if !parts.isEmpty && parts.last != ".." {
                    parts.removeLast()
                } else if !full.hasPrefix("/") {
                    parts.append("..")
                }
            default: parts.append(String(part))
            }
        }
        return parts
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
