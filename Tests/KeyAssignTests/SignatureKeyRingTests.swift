import Foundation
import Testing

@testable import KeyAssign
@testable import KeyAssignSandbox

@Suite struct SignatureKeyRingTests {
    private func write(_ text: String, _ path: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    /// `keyassign verify` with the given key specs on the 800 fixture.
    private func verify(_ keySpecs: [String], replies: [String] = [CLI.fixture("reply-800.json")]) throws -> CLI.Result
    {
        try CLI.run(["verify"] + keySpecs.flatMap { ["--public-key", $0] } + replies)
    }

    private func expectRefused(
        _ path: String, _ detail: String, spec: String? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let result = try verify([spec ?? path])
        #expect(result.status == 64, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains("public key \(path)"), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(detail), "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty, sourceLocation: sourceLocation)
    }

    @Test func missingFileIsAUsageErrorNamingTheFile() throws {
        let dir = try TemporaryDirectory()
        try expectRefused(dir.path + "/nope.pem", "No such file")
    }

    @Test func directoryIsRefused() throws {
        let dir = try TemporaryDirectory()
        try expectRefused(dir.path, "cannot read it")
    }

    @Test func garbageIsNotPEM() throws {
        let dir = try TemporaryDirectory()
        try write("hello, I am not a key\n", dir.path + "/g.pem")
        try expectRefused(dir.path + "/g.pem", "not a PEM file")
        // PEM armour around junk: the label is right, the content is not a key.
        try write("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", dir.path + "/j.pem")
        try expectRefused(dir.path + "/j.pem", "does not hold a readable public key")
    }

    @Test func privateKeyIsRefused() throws {
        let dir = try TemporaryDirectory()
        _ = try ReplySigner.loadOrCreate(privateKeyPath: dir.path + "/priv.pem", publicKeyPath: dir.path + "/pub.pem")
        try expectRefused(dir.path + "/priv.pem", "is a private key")
    }

    @Test func ecKeyIsRefused() throws {
        let dir = try TemporaryDirectory()
        let priv = dir.path + "/ec.pem"
        let pub = dir.path + "/ec-pub.pem"
        #expect(
            try OpenSSLCLI.run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", priv])
                .status == 0)
        #expect(try OpenSSLCLI.run(["pkey", "-in", priv, "-pubout", "-out", pub]).status == 0)
        try expectRefused(pub, "EC key; replies are signed with RSA keys")
    }

    @Test func rsa1024IsRefused() throws {
        let dir = try TemporaryDirectory()
        try write(TestKeys.small1024.publicKeyPEM, dir.path + "/small.pem")
        try expectRefused(dir.path + "/small.pem", "RSA key of 1024 bits; keyassign accepts 2048 to 8192")
    }

    @Test func sameKeyTwiceUnderOneNameIsRefused() throws {
        // Different keys may share a name (SharedKeyNameTests); the same key twice is a mistake.
        let dir = try TemporaryDirectory()
        try write(TestKeys.global.publicKeyPEM, dir.path + "/a.pem")
        try write(TestKeys.global.publicKeyPEM, dir.path + "/b.pem")
        let result = try verify([dir.path + "/a.pem", "global=" + dir.path + "/b.pem"])
        #expect(result.status == 64)
        #expect(result.stderr.contains("public key \(dir.path)/b.pem: the same key (sha256:"), "\(result.stderr)")
        #expect(result.stderr.contains("as public key \(dir.path)/a.pem, both named 'global'"), "\(result.stderr)")
    }

    @Test func pkcs1PublicKeyIsAccepted() throws {
        let dir = try TemporaryDirectory()
        // The fixture key converted to PKCS#1 must still verify the fixture.
        let pkcs1 = dir.path + "/pkcs1.pem"
        let converted = try OpenSSLCLI.run([
            "rsa", "-pubin", "-in", CLI.fixture("docs-demo-global-public.pem"), "-RSAPublicKey_out", "-out", pkcs1,
        ])
        #expect(converted.status == 0, "\(converted.output)")
        #expect(try String(contentsOfFile: pkcs1, encoding: .utf8).hasPrefix("-----BEGIN RSA PUBLIC KEY-----"))
        let result = try verify([pkcs1])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("\ttrusted\tok\t800"))
    }

    @Test func rsa4096KeyNamedProductIsAcceptedAndVerifies() throws {
        let dir = try TemporaryDirectory()
        try write(TestKeys.big4096.publicKeyPEM, dir.path + "/product.pem")
        var builder = EnvelopeBuilder()
        builder.signer = TestKeys.big4096
        builder.keyName = "product"
        try write(try builder.json(), dir.path + "/reply.json")
        let result = try verify(
            [CLI.fixture("docs-demo-global-public.pem"), "product=" + dir.path + "/product.pem"],
            replies: [dir.path + "/reply.json", CLI.fixture("reply-801.json")])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            result.stdout
                == "\(dir.path)/reply.json\ttrusted\tok\t800\n\(CLI.fixture("reply-801.json"))\ttrusted\tok\t801\n")
    }

    @Test func certificateIsNotAPublicKey() throws {
        let dir = try TemporaryDirectory()
        try write("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", dir.path + "/c.pem")
        try expectRefused(dir.path + "/c.pem", "holds a 'CERTIFICATE' block")
    }

    @Test func specSplittingOnlyTakesPlausibleNames() {
        #expect(KeyRing.split("/k/global.pem") == ("global", "/k/global.pem"))
        #expect(KeyRing.split("product=/k/p.pem") == ("product", "/k/p.pem"))
        #expect(KeyRing.split("product=/k/a=b.pem") == ("product", "/k/a=b.pem"))
        #expect(KeyRing.split("/k/a=b.pem") == ("global", "/k/a=b.pem"))
        #expect(KeyRing.split("./a=b.pem") == ("global", "./a=b.pem"))
        #expect(KeyRing.split("=x.pem") == ("global", "=x.pem"))
        #expect(KeyRing.split("my_key-2=x.pem") == ("my_key-2", "x.pem"))
    }

    @Test func pathContainingEqualsWorksFromTheCLI() throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/odd=name.pem"
        try FileManager.default.copyItem(atPath: CLI.fixture("docs-demo-global-public.pem"), toPath: path)
        let result = try verify([path])
        #expect(result.status == 0, "\(result.stderr)")
    }

    @Test func namesAndInMemoryErrors() throws {
        let ring = try KeyRing(pems: [
            "product": TestKeys.other2048.publicKeyPEM, "global": TestKeys.global.publicKeyPEM,
        ])
        #expect(ring.names == ["global", "product"])
        let error = try #require(throws: KeyAssignError.self) { try KeyRing(pems: ["global": "junk"]) }
        #expect(error.status == .config)
        #expect(error.message.contains("'global'"))
    }
}
