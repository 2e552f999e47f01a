"""TLS for the gateway's own broker connection (``mqtts://``): one context for the collector and the notifier.

The context verifies the broker's certificate and host name, against ``[mqtt] ca_file`` when it is
set (a private CA) and the system's CAs otherwise; ``cert_file`` (and ``key_file``, unless the key
is in the certificate file) is the client certificate a broker with ``require_certificate`` asks
for. A file that cannot be read is a configuration error naming its key, raised when the client is
built, so the gateway stops at start instead of retrying a connection that can never work.
"""

from __future__ import annotations

import ssl

from gateway.config import MqttSection
from gateway.errors import ConfigError


def client_context(cfg: MqttSection) -> ssl.SSLContext:
    """The TLS context of an ``mqtts://`` connection configured by ``cfg``."""
    try:
        context = ssl.create_default_context(cafile=cfg.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError([("mqtt.ca_file", f"cannot load {cfg.ca_file}: {exc}")]) from exc
    if cfg.cert_file is not None:
        try:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([("mqtt.cert_file", f"cannot load {cfg.cert_file} (key {cfg.key_file or 'in it'}): "
                                                  f"{exc}")]) from exc
    return context


def describe(exc: BaseException) -> str:
    """A connection error in words, the certificate problem first for a failed TLS handshake."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was refused: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    return str(exc) or type(exc).__name__
