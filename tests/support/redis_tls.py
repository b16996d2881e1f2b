"""A certificate authority and a server certificate for 127.0.0.1, made with openssl for one test
run, and the arguments that give a Redis or Valkey server a TLS port beside its plain one (the
rigs keep the plain port for their own checks; the service is given only the TLS port)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class TlsFiles:
    ca: str
    cert: str
    key: str

    def server_args(self, tls_port: int) -> list[str]:
        return ["--tls-port", str(tls_port), "--tls-cert-file", self.cert, "--tls-key-file", self.key,
                "--tls-ca-cert-file", self.ca, "--tls-auth-clients", "no"]

    def config_lines(self, tls_port: int) -> str:
        """The same, as configuration-file lines (a Sentinel's)."""
        return (f"tls-port {tls_port}\ntls-cert-file {self.cert}\ntls-key-file {self.key}\n"
                f"tls-ca-cert-file {self.ca}\ntls-auth-clients no\n")


def make_tls(directory: str) -> TlsFiles:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is not installed (apt-get install openssl)"
    ca, ca_key = os.path.join(directory, "ca.pem"), os.path.join(directory, "ca-key.pem")
    cert, key = os.path.join(directory, "server.pem"), os.path.join(directory, "server-key.pem")
    csr, ext = os.path.join(directory, "server.csr"), os.path.join(directory, "server.ext")
    with open(ext, "w") as file:
        file.write("subjectAltName=IP:127.0.0.1\n")
    for command in (
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "1",
         "-subj", "/CN=test Redis CA"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "1", "-extfile", ext],
    ):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return TlsFiles(ca, cert, key)
