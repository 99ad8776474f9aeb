"""`mqtts://`: a mosquitto TLS listener with a private CA, as a Home Assistant add-on with its own
certificate would have; the certificate is checked, and a wrong CA is one clear line."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from interceptor.config import load_config
from interceptor.homeassistant.link import probe
from tests.conftest import start_server, wait_until
from tests.homeassistant.conftest import BASE, Broker, Observer, mqtt_toml
from tests.homeassistant.test_serve import FRED, weigh


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
                 signer: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = (builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    return builder.sign(signer, hashes.SHA256())


def make_ca(root: Path) -> tuple[Path, Path, Path]:
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test household CA")])
    ca = _certificate("Test household CA", ca_key, ca_name, ca_key, ca=True)
    server = _certificate("localhost", server_key, ca_name, ca_key, ca=False)
    paths = root / "ca.pem", root / "server.pem", root / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


def test_states_over_tls_with_a_private_ca(tmp_path: Path) -> None:
    root = tmp_path / "broker"
    root.mkdir()
    tls = make_ca(root)
    broker = Broker(root, tls=tls)
    config = tmp_path / "interceptor.toml"
    config.write_text(mqtt_toml(f"mqtts://127.0.0.1:{broker.port}", f'ca_file = "{tls[0]}"\n'), encoding="utf-8")
    observer = Observer(broker.port, ca_file=tls[0])
    served = start_server(config, tmp_path / "data")
    try:
        weigh(served.port, 1_700_000_000, 86.1, FRED)
        wait_until(lambda: observer.latest(f"{BASE}/person/fed/state"), what="Fred's state over TLS")
        assert asyncio.run(probe(load_config(config, environ={}).mqtt)) is None
        # Without the household's CA, the broker's certificate cannot be trusted: said, not crashed.
        without = load_config(config, environ={}).mqtt.model_copy(update={"ca_file": None})
        problem = asyncio.run(probe(without))
        assert problem is not None and "CERTIFICATE_VERIFY_FAILED" in problem and "[mqtt] url" in problem
    finally:
        log = served.kill()
        observer.close()
        broker.stop()
    assert "Traceback" not in log
