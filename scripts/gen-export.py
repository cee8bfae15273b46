#!/usr/bin/env python3
"""Writes a synthetic sales export for benchmarks: license_key,owner_name,email with UUID
keys, quoted "Last, First" names (1% with an escaped "" quote inside) and emails.
Deterministic for a given seed, so runs compare like with like.

usage: gen-export.py ROWS OUTPUT [SEED]
"""
import random
import sys
import unicodedata
import uuid

FIRST = ["Anna", "Björn", "Chloé", "Dmitri", "Elena", "François", "Giulia", "Hiro", "Ingrid", "José",
         "Katarzyna", "Lars", "Maria", "Nikolai", "Olga", "Pierre", "Quentin", "Rosa", "Søren", "Tomás"]
LAST = ["Andersson", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Horváth", "Ivanova",
        "Jensen", "Kowalski", "López", "Müller", "Novák", "O'Neill", "Petrov", "Rossi", "Schmidt", "Tanaka", "Weiß"]
DOMAINS = ["example.com", "example.org", "mail.example.net", "shop.example.de", "firma.example.at"]


def main():
    rows = int(sys.argv[1])
    out = sys.argv[2]
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 42)
    with open(out, "w", encoding="utf-8", newline="") as f:
        f.write("license_key,owner_name,email\r\n")
        buf = []
        for i in range(rows):
            key = uuid.UUID(int=rng.getrandbits(128), version=4)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            if i % 100 == 0:
                name = f'{last}, {first} ""Jr""'
            else:
                name = f"{last}, {first}"
            local = unicodedata.normalize("NFKD", f"{first}.{last}{i}".lower()).encode("ascii", "ignore").decode()
            email = f"{local.replace(chr(39), '')}@{rng.choice(DOMAINS)}"
            buf.append(f'{key},"{name}",{email}\r\n')
            if len(buf) >= 10000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


if __name__ == "__main__":
    main()
