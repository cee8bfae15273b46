import Foundation

/// Reads how long a 429 asks us to wait: the `Retry-After` header (delta seconds or an HTTP
/// date), else a `retry_after` number in a JSON body (what the vendor's SDKs read).
enum RetryAfter {
    static func seconds(header: String?, body: [UInt8], now: Double) -> Double? {
        if let header = header?.trimmingCharacters(in: .whitespaces), !header.isEmpty {
            if let value = Double(header), value.isFinite, value >= 0 { return value }
            if let date = httpDate(header) { return max(0, date - now) }
        }
        if !body.isEmpty, body.count < 4096,
            let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
            let value = object["retry_after"]
        {
            if let number = value as? NSNumber, number.doubleValue.isFinite, number.doubleValue >= 0 {
                return number.doubleValue
            }
            if let text = value as? String, let number = Double(text), number.isFinite, number >= 0 { return number }
        }
        return nil
    }

    /// RFC 9110 IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
    static func httpDate(_ text: String) -> Double? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        return formatter.date(from: text)?.timeIntervalSince1970
    }
}
