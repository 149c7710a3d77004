#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A credential batch (SPEC.md §3.2) for tests, fast: kj_creds in
tests/lib/inputs.sh.

  gencreds.py OUT N START DISTINCT [nokey]

Writes N JSON lines to OUT, indexes START..START+N-1.  DISTINCT P-256 key
pairs are cycled (making a key is what costs), but every line gets its own
self-signed certificate (CN "device INDEX", a random serial): the
appliance refuses a batch in which two indexes carry one certificate.
With "nokey" the lines carry no "key" (issue mode's batch).
"""
import base64
import datetime
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def main():
    out, n, start, k = sys.argv[1], *map(int, sys.argv[2:5])
    nokey = sys.argv[5:] == ["nokey"]
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(k)]
    p8 = [base64.b64encode(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())).decode() for key in keys]
    now = datetime.datetime.now(datetime.timezone.utc)
    with open(out, "w") as f:
        for i in range(n):
            key, index = keys[i % k], start + i
            name = x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"device {index}")])
            cert = (x509.CertificateBuilder()
                    .subject_name(name).issuer_name(name)
                    .public_key(key.public_key())
                    .serial_number(x509.random_serial_number())
                    .not_valid_before(now)
                    .not_valid_after(now + datetime.timedelta(days=3650))
                    .sign(key, hashes.SHA256()))
            der = cert.public_bytes(serialization.Encoding.DER)
            line = f'{{"index":{index},"cert":"{base64.b64encode(der).decode()}"'
            if not nokey:
                line += f',"key":"{p8[i % k]}"'
            f.write(line + "}\n")


if __name__ == "__main__":
    main()
