import ArgumentParser
import KeyAssign

/// `--body`: its cases are the accepted values, which `--help` lists.
extension BodyEncoding: ExpressibleByArgument {}
