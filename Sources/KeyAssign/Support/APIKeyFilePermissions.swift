#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `--api-key-file`: a warning when the file can be read by its group or by others, as ssh
/// warns about a private key (an API key lets anyone assign the shop's keys to themselves).
/// A warning, not a refusal: a key shared on purpose through a group still works.
///
/// systemd's `LoadCredential=` copies are fine as they are: the directory they are in
/// (`$CREDENTIALS_DIRECTORY`) is readable by the service alone, whatever the file's mode.
public enum APIKeyFilePermissions {
    public static func warning(for path: String, environment: [String: String]) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }  // reading it will say what is wrong
        let mode = info.st_mode & 0o777
        guard mode & 0o044 != 0 else { return nil }
        if let credentials = environment["CREDENTIALS_DIRECTORY"], !credentials.isEmpty,
            let directory = realPath(credentials), let file = realPath(path), file.hasPrefix(directory + "/")
        {
            return nil
        }
        let who = [mode & 0o040 != 0 ? "its group" : nil, mode & 0o004 != 0 ? "every user" : nil]
            .compactMap { $0 }.joined(separator: " and ")
        let octal = String(mode, radix: 8)
        return
            "--api-key-file \(path) is readable by \(who) (mode 0\(octal)): anyone who reads it can assign license keys; "
            + "chmod 600 \(path) (under systemd, LoadCredential= hands the service a private copy)"
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
