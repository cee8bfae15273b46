/// The header names keyassign recognises, per field, in tiers: the first tier with a match in
/// a file decides, so a specific name (`Billing Name`) wins over a generic one (`Name`, which
/// in a Shopify order export is the order number). Within a tier, two matches are refused as
/// ambiguous. Names are compared normalised (`ColumnMapping.normalize`: case, spaces and
/// punctuation ignored), so `billing_email`, `Billing Email` and `BillingEmail` are one name.
///
/// Where the names come from (the README's table lists them per system):
/// - Shopify order export: `Name` (order number), `Email`, `Billing Name`, `Shipping Name`.
/// - WooCommerce: `billing_first_name`, `billing_last_name`, `billing_email`; Analytics: `Customer`.
/// - Stripe: `Customer Email`, `Card Name`; customer export `name`, `email`.
/// - Paddle reports: `customer_email`, `customer_name`. FastSpring: `Customer Email`,
///   `Customer First Name`, `Customer Last Name`.
/// - Gumroad: `license_key`, `full_name`, `email`, `Purchase Email`, `Buyer Email`, `Buyer Name`.
/// - HubSpot: `First Name`, `Last Name`, `Email`. Salesforce: `FirstName`, `LastName`, `Email`
///   (a custom field: `License_Key__c`).
/// - German, French and Spanish exports: `E-Mail`, `Kunde`, `Vorname`, `Nachname`, `Courriel`,
///   `Prénom`, `Nom`, `Correo electrónico`, `Nombre`, `Apellidos`.
enum ColumnAliases {
    static let licenseKey: [[String]] = [
        [
            "license_key", "license key", "license_key__c", "licensekey__c", "licence key", "license code",
            "licence code", "product key", "activation key",
            "serial number", "serial key", "registration key", "lizenzschlüssel", "lizenzschluessel", "lizenzcode",
            "seriennummer", "produktschlüssel", "clé de licence", "cle de licence", "numéro de série",
            "numero de serie",
            "clave de licencia", "clave de producto", "número de serie", "código de licencia", "codigo de licencia",
        ],
        ["key", "serial", "license", "licence", "lizenz", "licencia", "schlüssel", "clé", "clave"],
    ]

    /// The last tier is the generic one: used only when no first/last-name pair is found.
    static let ownerName: [[String]] = [
        [
            "owner_name", "owner name", "full name", "customer name", "customer full name", "billing name",
            "billing full name",
            "buyer name", "purchaser name", "client name", "contact name", "licensee", "licensee name",
            "kundenname", "vollständiger name", "name des kunden", "käufer name", "nom complet", "nom du client",
            "nom client", "nom de l'acheteur", "nombre completo", "nombre del cliente", "nombre cliente",
            "nombre del comprador",
        ],
        ["card name", "cardholder name", "name on card"],
        [
            "name", "owner", "customer", "buyer", "purchaser", "client", "kunde", "käufer", "nom", "acheteur",
            "cliente", "comprador", "titular",
        ],
    ]

    static let email: [[String]] = [
        [
            "email", "e-mail", "email address", "e-mail address", "customer email", "customer email address",
            "billing email",
            "billing email address", "owner_email", "purchase email", "purchaser email", "contact email",
            "client email",
            "e-mail-adresse", "email-adresse", "e-mail adresse", "kunden-e-mail", "courriel", "adresse e-mail",
            "adresse email", "adresse électronique", "adresse courriel", "correo", "correo electrónico",
            "correo electronico", "email del cliente", "correo del cliente",
        ],
        ["buyer email", "mail", "receipt email"],
    ]

    static let firstName: [[String]] = [
        [
            "first name", "billing first name", "customer first name", "given name", "vorname", "prénom", "prenom",
            "nombre de pila",
        ],
        ["nombre"],
    ]

    static let lastName: [[String]] = [
        [
            "last name", "billing last name", "customer last name", "surname", "family name", "nachname",
            "familienname",
            "nom de famille", "apellido", "apellidos",
        ]
    ]

    static func tiers(for field: ImportField) -> [[String]] {
        switch field {
        case .licenseKey: licenseKey
        case .ownerName: ownerName
        case .email: email
        case .firstName: firstName
        case .lastName: lastName
        }
    }

    /// A few of the names, for a refusal message.
    static func examples(for field: ImportField) -> String {
        switch field {
        case .licenseKey:
            "license_key, license key, serial number, key, serial, license, Lizenzschlüssel, clé de licence, …"
        case .ownerName:
            "owner_name, name, full name, customer name, billing name, buyer, customer, first name + last name, Kunde, Nom, Nombre, …"
        case .email:
            "email, e-mail, email address, customer email, billing email, purchase email, buyer email, mail, Courriel, Correo, …"
        case .firstName, .lastName: "first name, last name, …"
        }
    }
}
