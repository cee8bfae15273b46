extension StringProtocol {
    /// Trims whitespace (Unicode's, line breaks included) from both ends. `package`: the
    /// reconcile rules compare owner names and emails with it, and the sandbox reads its
    /// inputs with it.
    package func trimmingWhitespace() -> String {
        let text = String(self)
        guard let first = text.firstIndex(where: { !$0.isWhitespace }),
            let last = text.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(text[first...last])
    }
}
