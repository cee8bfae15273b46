public enum KeyAssignVersion {
    public static let string = "0.1.0"
}
