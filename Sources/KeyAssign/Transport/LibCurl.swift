import CCurl

/// The process's libcurl: checked and initialised once, before the first transport.
enum LibCurl {
    /// The oldest libcurl keyassign runs on: 7.85.0, for `CURLOPT_PROTOCOLS_STR` (see CCurl.c,
    /// which refuses older headers at build time). The library found at run time can still be
    /// older than the headers it was built against, so it is checked too.
    static let minimumVersion: UInt32 = 0x07_55_00

    /// Why libcurl cannot be used, or nil when it is ready. A `static let` runs once per process,
    /// before any other thread can use libcurl (curl_global_init is not thread-safe everywhere).
    private static let problem: String? = {
        guard let info = ka_curl_version_info() else { return "cannot ask libcurl for its version" }
        if info.pointee.version_num < minimumVersion {
            let version = info.pointee.version.map { String(cString: $0) } ?? "?"
            return "libcurl \(version) is too old: keyassign needs 7.85.0 or later"
        }
        let code = curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        return code == CURLE_OK ? nil : "cannot initialise libcurl: \(describe(code))"
    }()

    /// Fails with `KeyAssignError(.config)` when the system's libcurl cannot be used.
    static func initialize() throws {
        if let problem { throw KeyAssignError(.config, problem) }
    }

    /// libcurl's own words for a result code.
    static func describe(_ code: CURLcode) -> String {
        String(cString: curl_easy_strerror(code))
    }

    /// A refused option is a configuration error: the libcurl on this machine cannot make the
    /// calls keyassign promises (the protocols, the resend guard, the trust anchors).
    static func check(_ code: CURLcode, setting option: String) throws {
        guard code == CURLE_OK else {
            throw KeyAssignError(.config, "libcurl refused \(option): \(describe(code))")
        }
    }

    static func check(_ code: CURLMcode, setting option: String) throws {
        guard code == CURLM_OK else {
            throw KeyAssignError(.config, "libcurl refused \(option): \(String(cString: curl_multi_strerror(code)))")
        }
    }
}
